//! DHCP failover, as Neutron's `allow_automatic_dhcp_failover`: a network one of whose DHCP
//! agents has been dead for longer than `agent_down_time` is given to an alive DHCP agent not
//! serving it yet. Its DHCP port
//! is deleted with the old hosting and a new one is made on the new host (the lowest free
//! address, usually the one just freed), so the old host's agent, when it returns, hears that
//! the network and its port are no longer its own: it stops the network's dnsmasq and removes
//! the namespace. Servers sharing PostgreSQL may all look: each network is moved under its
//! scheduling lock and only if it is still on a dead host, so exactly one of them moves it.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use crate::Services;
use crate::dhcp_scheduling::{self, DHCP_AGENT_TYPE};
use crate::error::CoreResult;
use neutrino_store::{self as store, agents, dhcp_hosting};

/// Starts the periodic look in the current runtime: every half `agent_down_time` (at least a
/// second), as Neutron checks.
pub fn spawn(state: Services) {
    let every = (state.config.agent_down_time / 2).max(Duration::from_secs(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match move_from_dead_agents(&state).await {
                Ok(0) => {}
                Ok(moved) => tracing::info!("DHCP failover: {moved} networks moved"),
                Err(e) => tracing::warn!("DHCP failover: {e}"),
            }
        }
    });
}

/// Hosts whose DHCP agent is registered and dead.
async fn dead_dhcp_hosts(state: &Services) -> CoreResult<BTreeSet<String>> {
    let mut conn = state.store.read_conn().await?;
    let mut dhcp_agents = agents::of_type(&mut *conn, DHCP_AGENT_TYPE).await?;
    state.heartbeats.overlay(&mut dhcp_agents);
    let now = SystemTime::now();
    Ok(dhcp_agents
        .into_iter()
        .filter(|a| !a.alive(now, state.config.agent_down_time))
        .map(|a| a.host)
        .collect())
}

/// Moves every network served by a dead DHCP agent to an alive one (when there is one);
/// returns how many moved.
pub async fn move_from_dead_agents(state: &Services) -> CoreResult<usize> {
    let dead = dead_dhcp_hosts(state).await?;
    if dead.is_empty() {
        return Ok(0);
    }
    let mut stranded = Vec::new();
    {
        let mut conn = state.store.read_conn().await?;
        for host in &dead {
            stranded.extend(dhcp_hosting::on_host(&mut *conn, host).await?);
        }
    }
    let mut moved = 0;
    for hosting in stranded {
        let mut tx = state.store.begin_write().await?;
        // The same lock scheduling takes: a subnet change or another server waits.
        store::lock_named(
            &mut tx,
            state.store.backend,
            &format!("dhcp/{}", hosting.network_id),
        )
        .await?;
        let current = dhcp_hosting::of_network(&mut *tx, &hosting.network_id).await?;
        if !current.contains(&hosting) {
            store::rollback(tx).await?;
            continue;
        }
        let Some(revision) = dhcp_scheduling::reschedule(state, &mut tx, &hosting).await? else {
            store::rollback(tx).await?;
            continue;
        };
        store::commit(tx).await?;
        state.feed.committed(Some(revision));
        // The new DHCP port is bound now, after the commit, as every DHCP port is.
        dhcp_scheduling::bind_committed(state, std::slice::from_ref(&hosting.network_id)).await;
        moved += 1;
        let now = dhcp_hosting::of_network(&state.store.read, &hosting.network_id).await?;
        let hosts: Vec<String> = now.into_iter().map(|h| h.host).collect();
        tracing::warn!(
            "network {}: its DHCP agent on {} is dead; DHCP now on {}",
            hosting.network_id,
            hosting.host,
            hosts.join(", ")
        );
    }
    Ok(moved)
}
