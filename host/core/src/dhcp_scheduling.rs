//! DHCP scheduling, as Neutron's DHCP agent scheduler: a network with a DHCP-enabled subnet is
//! served by `dhcp_agents_per_network` DHCP agents (or as many as are alive), each chosen as
//! the alive one hosting the fewest networks, each through a DHCP port of its own (owner
//! `network:dhcp`, device_id `dhcp<uuid5(host)>-<network>`, bound to that host, one address
//! per DHCP-enabled subnet). Every agent of a network serves all its ports, as Neutron's do. Every change runs in the caller's transaction and records
//! the feed entries the hosts need; the revision returned goes to `state.feed` after commit,
//! and a new DHCP port is bound after that commit ([`bind_committed`]).

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::RequestContext;
use crate::Services;
use crate::error::CoreResult;
use crate::{port_binding, ports};
use neutrino_proto::dhcp_device_id;
use neutrino_store::dhcp_hosting::{self, Hosting};
use neutrino_store::feed::{self, FeedKind};
use neutrino_store::networks::Network;
use neutrino_store::subnets::Subnet;
use neutrino_store::{self as store, agents};

/// The agent type DHCP is scheduled to (Neutron's).
pub const DHCP_AGENT_TYPE: &str = "DHCP agent";
/// The owner of DHCP ports.
pub const DHCP_OWNER: &str = crate::subnets::AUTO_DELETE_OWNER;

use neutrino_store::Tx;

/// After a change of a network's subnets (or of their `enable_dhcp`): unschedules a network
/// that no longer needs DHCP; otherwise keeps each DHCP port's addresses on the DHCP subnets,
/// tells its hosts their subnets changed, and schedules the network to more agents while it has
/// fewer than `dhcp_agents_per_network`.
pub async fn subnets_changed(
    state: &Services,
    tx: &mut Tx<'_>,
    network_id: &str,
) -> CoreResult<Option<i64>> {
    // Two servers scheduling the same network queue here instead of both creating a port.
    lock(state, tx, network_id).await?;
    let Some(network) = store::networks::get(&mut **tx, network_id).await? else {
        return Ok(None);
    };
    let dhcp_subnets = dhcp_subnets(tx, network_id).await?;
    let hostings = dhcp_hosting::of_network(&mut **tx, network_id).await?;
    let mut newest = None;
    let mut serving = Vec::with_capacity(hostings.len());
    for h in hostings {
        if dhcp_subnets.is_empty() {
            newest = newest.max(unschedule(state, tx, &h).await?);
        } else if let Some(revision) = align(state, tx, &network, &h, &dhcp_subnets).await? {
            newest = newest.max(revision);
            serving.push(h.host);
        } else {
            // Its DHCP port was deleted by hand: the host gives the network back.
            newest = newest.max(forget(tx, &h).await?);
        }
    }
    if !dhcp_subnets.is_empty() {
        newest = newest.max(fill(state, tx, &network, &dhcp_subnets, serving).await?);
    }
    Ok(newest)
}

/// Serialises the changes of a network's DHCP hosting (scheduling, and adding or removing an
/// agent by hand) across servers sharing PostgreSQL.
pub async fn lock(state: &Services, tx: &mut Tx<'_>, network_id: &str) -> store::Result<()> {
    store::lock_named(tx, state.store.backend, &format!("dhcp/{network_id}")).await
}

/// The network's DHCP-enabled subnets: those its DHCP ports have addresses on.
pub async fn dhcp_subnets(tx: &mut Tx<'_>, network_id: &str) -> store::Result<Vec<Subnet>> {
    Ok(store::subnets::on_network(&mut **tx, network_id)
        .await?
        .into_iter()
        .filter(|s| s.enable_dhcp)
        .collect())
}

/// Before a network is deleted: its DHCP is unscheduled (the DHCP ports go with it).
pub async fn network_deleted(
    state: &Services,
    tx: &mut Tx<'_>,
    network_id: &str,
) -> CoreResult<Option<i64>> {
    let mut newest = None;
    for h in dhcp_hosting::of_network(&mut **tx, network_id).await? {
        newest = newest.max(unschedule(state, tx, &h).await?);
    }
    Ok(newest)
}

/// Schedules every network waiting for a DHCP agent, or for more of them (when one reports for
/// the first time or revives), in one transaction.
pub async fn schedule_waiting(state: &Services) -> CoreResult<usize> {
    let mut tx = state.store.begin_write().await?;
    let waiting = dhcp_hosting::waiting(&mut *tx, state.config.dhcp_agents_per_network).await?;
    let mut newest = None;
    for network_id in &waiting {
        newest = newest.max(subnets_changed(state, &mut tx, network_id).await?);
    }
    store::commit(tx).await?;
    state.feed.committed(newest);
    bind_committed(state, &waiting).await;
    Ok(waiting.len())
}

/// After the commit of a change of these networks' subnets ([`subnets_changed`]): binds the
/// DHCP ports a network was just given, outside any write transaction. The change stands
/// whatever the binding does; a binding that cannot be written now is left to the sweep of
/// [`port_binding::spawn_pending_sweep`].
pub async fn bind_committed(state: &Services, network_ids: &[String]) {
    for network_id in network_ids {
        if let Err(e) = bind_dhcp_port(state, network_id).await {
            tracing::warn!("network {network_id}: binding its DHCP port: {}", e.message);
        }
    }
}

async fn bind_dhcp_port(state: &Services, network_id: &str) -> CoreResult<()> {
    let mut conn = state.store.read_conn().await?;
    let mut pending = Vec::new();
    for h in dhcp_hosting::of_network(&mut *conn, network_id).await? {
        if let Some(port) = store::ports::get(&mut conn, &h.port_id).await?
            && port_binding::pending(&port)
        {
            pending.push((port.id, h.host));
        }
    }
    drop(conn);
    for (port_id, host) in pending {
        if let Some(port) = port_binding::bind_committed(state, &port_id).await?
            && port.binding_vif_type == "binding_failed"
        {
            tracing::warn!(
                "network {network_id}: the DHCP port {port_id} on {host} failed to bind (is the host's L2 agent alive?)",
            );
        }
    }
    Ok(())
}

/// When an L2 agent appears or revives on `host`: the DHCP ports there that failed to bind
/// (their DHCP agent reported first) are bound again, each outside any write transaction
/// ([`port_binding::bind_committed`]).
pub async fn rebind_dhcp_ports(state: &Services, host: &str) -> CoreResult<usize> {
    let mut conn = state.store.read_conn().await?;
    let mut failed = Vec::new();
    for h in dhcp_hosting::on_host(&mut *conn, host).await? {
        if let Some(port) = store::ports::get(&mut conn, &h.port_id).await?
            && port.binding_vif_type == "binding_failed"
        {
            failed.push(port.id);
        }
    }
    drop(conn);
    let mut rebound = 0;
    for id in &failed {
        if port_binding::bind_committed(state, id).await?.is_some() {
            rebound += 1;
        }
    }
    Ok(rebound)
}

/// Moves a network's DHCP from one (dead) host to the alive DHCP agent hosting the fewest
/// networks among those not serving it yet: the old DHCP port goes, a new one is made there.
/// None, changing nothing, when there is no such agent or the network no longer needs DHCP.
pub async fn reschedule(state: &Services, tx: &mut Tx<'_>, h: &Hosting) -> CoreResult<Option<i64>> {
    let Some(network) = store::networks::get(&mut **tx, &h.network_id).await? else {
        return Ok(None);
    };
    let dhcp_subnets = dhcp_subnets(tx, &h.network_id).await?;
    if dhcp_subnets.is_empty() {
        return Ok(None);
    }
    let others: Vec<String> = dhcp_hosting::of_network(&mut **tx, &h.network_id)
        .await?
        .into_iter()
        .map(|o| o.host)
        .filter(|o| *o != h.host)
        .collect();
    if choose_host(state, tx, &others).await?.is_none() {
        return Ok(None);
    }
    let gone = unschedule(state, tx, h).await?;
    let made = fill(state, tx, &network, &dhcp_subnets, others).await?;
    Ok(gone.max(made))
}

/// Gives the network to more DHCP agents, beside those `serving` it, until it has
/// `dhcp_agents_per_network` or no other alive agent is left.
async fn fill(
    state: &Services,
    tx: &mut Tx<'_>,
    network: &Network,
    dhcp_subnets: &[Subnet],
    mut serving: Vec<String>,
) -> CoreResult<Option<i64>> {
    let mut newest = None;
    while serving.len() < state.config.dhcp_agents_per_network {
        let Some(host) = choose_host(state, tx, &serving).await? else {
            if serving.is_empty() {
                tracing::info!("network {}: no live DHCP agent, DHCP waits", network.id);
            }
            break;
        };
        let Some(revision) = schedule(state, tx, network, dhcp_subnets, &host).await? else {
            break;
        };
        newest = newest.max(revision);
        serving.push(host);
    }
    Ok(newest)
}

/// The host of the alive, enabled DHCP agent hosting the fewest networks (ties: by host
/// name), other than the hosts in `besides`.
async fn choose_host(
    state: &Services,
    tx: &mut Tx<'_>,
    besides: &[String],
) -> CoreResult<Option<String>> {
    let mut candidates = agents::of_type(&mut **tx, DHCP_AGENT_TYPE).await?;
    state.heartbeats.overlay(&mut candidates);
    let load = dhcp_hosting::networks_per_host(&mut **tx).await?;
    let now = SystemTime::now();
    Ok(candidates
        .into_iter()
        .filter(|a| a.admin_state_up && a.alive(now, state.config.agent_down_time))
        .filter(|a| !besides.contains(&a.host))
        .min_by(|a, b| {
            let load_of = |h: &str| load.get(h).copied().unwrap_or(0);
            (load_of(&a.host), &a.host).cmp(&(load_of(&b.host), &b.host))
        })
        .map(|a| a.host))
}

/// Gives the network to the DHCP agent of `host` with a new DHCP port; `Some(revision)` of the
/// change, or None if the port cannot be made (no address left, ...): then the network waits
/// and the caller's change still commits, as in Neutron, where the agent's port create fails
/// alone.
async fn schedule(
    state: &Services,
    tx: &mut Tx<'_>,
    network: &Network,
    dhcp_subnets: &[Subnet],
    host: &str,
) -> CoreResult<Option<Option<i64>>> {
    // A savepoint: a failed port create leaves nothing behind in the caller's transaction.
    let mut attempt = store::savepoint(tx).await?;
    match create_dhcp_port(state, &mut attempt, network, dhcp_subnets, host).await {
        Ok(revision) => {
            store::commit(attempt).await?;
            Ok(Some(revision))
        }
        Err(e) => {
            store::rollback(attempt).await?;
            tracing::warn!(
                "network {}: no DHCP port on {host}, DHCP waits: {}",
                network.id,
                e.message
            );
            Ok(None)
        }
    }
}

/// Gives the network to the DHCP agent of `host` with a new DHCP port (one address on each
/// of `dhcp_subnets`) and tells the host; errors are the port create's. The caller holds the
/// network's `dhcp/` lock ([`lock`]).
pub async fn create_dhcp_port(
    state: &Services,
    tx: &mut Tx<'_>,
    network: &Network,
    dhcp_subnets: &[Subnet],
    host: &str,
) -> CoreResult<Option<i64>> {
    let fixed_ips: Vec<Value> = dhcp_subnets
        .iter()
        .map(|s| json!({"subnet_id": s.id}))
        .collect();
    let body = json!({
        "network_id": network.id,
        "device_owner": DHCP_OWNER,
        "device_id": dhcp_device_id(host, &network.id),
        "binding:host_id": host,
        "fixed_ips": fixed_ips,
    });
    let Value::Object(body) = body else {
        unreachable!("a JSON object literal")
    };
    // The server acts for the network's project, as Neutron's DHCP agent does with its
    // admin context.
    let ctx = RequestContext {
        project_id: network.project_id.clone(),
        user_id: network.project_id.clone(),
        roles: vec!["admin".into()],
    };
    let mut draft = ports::draft_in(tx, &ctx, &body, network.project_id.clone()).await?;
    // Bound after the caller's commit ([`bind_committed`]): a slow driver holds no write
    // transaction.
    draft.bind_after_commit();
    let (port, port_revision) = ports::write_one_draft(state, &ctx, &body, draft, tx).await?;
    dhcp_hosting::insert(
        tx,
        &Hosting {
            network_id: network.id.clone(),
            host: host.to_string(),
            port_id: port.id.clone(),
        },
    )
    .await?;
    let revision = feed::record(tx, &[host], FeedKind::DhcpNetwork, &network.id).await?;
    Ok(port_revision.max(revision))
}

/// Takes the network from one of its DHCP hosts: the DHCP port deleted, the host told. The
/// caller holds the network's `dhcp/` lock ([`lock`]).
pub async fn unschedule(state: &Services, tx: &mut Tx<'_>, h: &Hosting) -> CoreResult<Option<i64>> {
    let mut newest = None;
    if let Some(port) = store::ports::get(tx, &h.port_id).await? {
        newest = ports::remove(state, tx, &port).await?;
    }
    Ok(newest.max(forget(tx, h).await?))
}

/// The hosting row goes and its host hears that the network is no longer its own.
async fn forget(tx: &mut Tx<'_>, h: &Hosting) -> CoreResult<Option<i64>> {
    dhcp_hosting::delete(tx, h).await?;
    Ok(feed::record(tx, &[&h.host], FeedKind::DhcpNetwork, &h.network_id).await?)
}

/// The network stays where it is: its DHCP port gets an address on each DHCP subnet (and
/// none on others), and the host hears of the new subnet set. None, changing nothing, when
/// the DHCP port is gone (deleted by hand).
async fn align(
    state: &Services,
    tx: &mut Tx<'_>,
    network: &Network,
    h: &Hosting,
    dhcp_subnets: &[Subnet],
) -> CoreResult<Option<Option<i64>>> {
    let Some(mut port) = store::ports::get(tx, &h.port_id).await? else {
        return Ok(None);
    };
    if ports::align_addresses(state, tx, network, &mut port, dhcp_subnets).await? {
        port.updated_at = store::now();
        port.revision_number += 1;
        store::ports::update(tx, &port).await?;
    }
    // Told even when its addresses stayed: a deleted subnet took one with it.
    let newest =
        dhcp_hosting::record_port(tx, &network.id, &port.id, &[&port.binding_host]).await?;
    let revision = feed::record(tx, &[&h.host], FeedKind::DhcpNetwork, &network.id).await?;
    Ok(Some(newest.max(revision)))
}
