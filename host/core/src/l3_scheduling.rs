//! L3 scheduling, as Neutron's `LeastRoutersScheduler`: a router with a gateway or an
//! interface is served by one L3 agent, the alive, enabled one hosting the fewest routers
//! (ties: by host name). All the router's ports (interfaces, gateway) are bound to that host,
//! after the commit, as DHCP ports are. Without an alive L3 agent the router waits
//! ([`schedule_waiting`] runs when one reports for the first time or revives).
//!
//! Every change runs in the caller's transaction and records a `router` feed entry for the
//! hosts concerned; the caller passes the revision to `state.feed` after commit, then binds
//! the router's ports with [`bind_committed`].

use std::time::SystemTime;

use crate::Services;
use crate::error::CoreResult;
use crate::port_binding;
use neutrino_store::feed::{self, FeedKind};
use neutrino_store::routers::{self as repo, GATEWAY_OWNER, INTERFACE_OWNER};
use neutrino_store::{self as store, Tx, agents};

/// The agent type routers are scheduled to (Neutron's).
pub const L3_AGENT_TYPE: &str = "L3 agent";

/// Tells the router's host (if it has one) that the router changed.
pub async fn tell(tx: &mut Tx<'_>, router_id: &str) -> CoreResult<Option<i64>> {
    match repo::host_of(&mut **tx, router_id).await? {
        Some(host) => Ok(feed::record(tx, &[&host], FeedKind::Router, router_id).await?),
        None => Ok(None),
    }
}

/// The ids of all the router's ports: its interfaces, then its gateway.
pub async fn port_ids(conn: &mut store::Conn, router_id: &str) -> store::Result<Vec<String>> {
    let mut ids = repo::port_ids(&mut *conn, router_id, INTERFACE_OWNER).await?;
    ids.extend(repo::port_ids(&mut *conn, router_id, GATEWAY_OWNER).await?);
    Ok(ids)
}

/// The host of the alive, enabled L3 agent hosting the fewest routers (ties: by host name).
pub async fn choose_host(state: &Services, tx: &mut Tx<'_>) -> CoreResult<Option<String>> {
    let mut candidates = agents::of_type(&mut **tx, L3_AGENT_TYPE).await?;
    state.heartbeats.overlay(&mut candidates);
    let load = repo::routers_per_host(&mut **tx).await?;
    let now = SystemTime::now();
    Ok(candidates
        .into_iter()
        .filter(|a| a.admin_state_up && a.alive(now, state.config.agent_down_time))
        .min_by(|a, b| {
            let load_of = |h: &str| load.get(h).copied().unwrap_or(0);
            (load_of(&a.host), &a.host).cmp(&(load_of(&b.host), &b.host))
        })
        .map(|a| a.host))
}

/// Schedules a router that needs an agent (it has a gateway or an interface) and has none;
/// otherwise just tells its host it changed. The caller holds the router's lock.
pub async fn schedule_or_tell(
    state: &Services,
    tx: &mut Tx<'_>,
    router_id: &str,
) -> CoreResult<Option<i64>> {
    if repo::host_of(&mut **tx, router_id).await?.is_some() {
        return tell(tx, router_id).await;
    }
    if port_ids(tx, router_id).await?.is_empty() {
        return Ok(None);
    }
    match choose_host(state, tx).await? {
        Some(host) => place(tx, router_id, &host).await,
        None => {
            tracing::info!("router {router_id}: no live L3 agent, the router waits");
            Ok(None)
        }
    }
}

/// Gives the router to `host` (moving it from its host, which is told too): its ports get
/// that host, to be bound after the commit ([`bind_committed`]).
pub async fn place(tx: &mut Tx<'_>, router_id: &str, host: &str) -> CoreResult<Option<i64>> {
    let old = repo::host_of(&mut **tx, router_id).await?;
    repo::set_host(tx, router_id, host).await?;
    let ports = set_ports_host(tx, router_id, host).await?;
    let mut hosts = vec![host];
    if let Some(old) = old.as_deref().filter(|o| *o != host) {
        hosts.push(old);
    }
    Ok(ports.max(feed::record(tx, &hosts, FeedKind::Router, router_id).await?))
}

/// Takes the router from its host (told); its ports are unbound. None if it had none.
pub async fn unschedule(tx: &mut Tx<'_>, router_id: &str) -> CoreResult<Option<i64>> {
    let Some(old) = repo::host_of(&mut **tx, router_id).await? else {
        return Ok(None);
    };
    repo::unset_host(tx, router_id).await?;
    let ports = set_ports_host(tx, router_id, "").await?;
    Ok(ports.max(feed::record(tx, &[&old], FeedKind::Router, router_id).await?))
}

/// Every port of the router gets `host` as its binding host, left unbound until
/// [`bind_committed`] binds it.
async fn set_ports_host(tx: &mut Tx<'_>, router_id: &str, host: &str) -> CoreResult<Option<i64>> {
    let mut newest = None;
    for id in port_ids(tx, router_id).await? {
        let Some(mut port) = store::ports::get(tx, &id).await? else {
            continue;
        };
        if port.binding_host == host && !port_binding::pending(&port) {
            continue;
        }
        let old_host = std::mem::replace(&mut port.binding_host, host.to_string());
        port_binding::defer(&mut port);
        port.updated_at = store::now();
        port.revision_number += 1;
        store::ports::update(tx, &port).await?;
        // The old host forgets the port; the new one hears of it once bound.
        let revision =
            store::dhcp_hosting::record_port(tx, &port.network_id, &port.id, &[&old_host]).await?;
        newest = newest.max(revision);
    }
    Ok(newest)
}

/// Schedules every router waiting for an L3 agent (when one reports for the first time or
/// revives), in one transaction, and binds their ports after it.
pub async fn schedule_waiting(state: &Services) -> CoreResult<usize> {
    let mut tx = state.store.begin_write().await?;
    let waiting = repo::waiting(&mut *tx).await?;
    let mut newest = None;
    let mut placed = Vec::new();
    for router_id in waiting {
        repo::lock(&mut tx, state.store.backend, &router_id).await?;
        let Some(host) = choose_host(state, &mut tx).await? else {
            break;
        };
        newest = newest.max(place(&mut tx, &router_id, &host).await?);
        placed.push(router_id);
    }
    store::commit(tx).await?;
    state.feed.committed(newest);
    for router_id in &placed {
        bind_committed(state, router_id).await;
    }
    Ok(placed.len())
}

/// After the commit of a change of a router: binds those of its ports waiting for their
/// binding, outside any write transaction. The change stands whatever the binding does; a
/// binding that cannot be written now is left to the pending sweep.
pub async fn bind_committed(state: &Services, router_id: &str) {
    if let Err(e) = bind_ports(state, router_id).await {
        tracing::warn!("router {router_id}: binding its ports: {}", e.message);
    }
}

async fn bind_ports(state: &Services, router_id: &str) -> CoreResult<()> {
    let mut conn = state.store.read_conn().await?;
    let mut pending = Vec::new();
    for id in port_ids(&mut conn, router_id).await? {
        if let Some(port) = store::ports::get(&mut conn, &id).await?
            && port_binding::pending(&port)
        {
            pending.push(id);
        }
    }
    drop(conn);
    for id in pending {
        port_binding::bind_committed(state, &id).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The `l3_agent_scheduler` extension's API, admin-only (Neutron's policy).

fn require_admin(ctx: &crate::RequestContext, rule: &str) -> CoreResult<()> {
    if ctx.is_admin() {
        Ok(())
    } else {
        Err(crate::error::NeutronError::forbidden(rule))
    }
}

fn invalid_agent(id: &str) -> crate::error::NeutronError {
    crate::error::NeutronError::not_found(
        "InvalidL3Agent",
        format!("Agent {id} is not a L3 Agent or has been disabled"),
    )
}

async fn l3_agent(state: &Services, agent_id: &str) -> CoreResult<agents::Agent> {
    agents::get(&state.store.read, agent_id)
        .await?
        .ok_or_else(|| crate::dhcp_agent_scheduler::agent_not_found(agent_id))
}

/// `GET /v2.0/routers/{id}/l3-agents`: the L3 agent serving the router (none while it waits).
pub async fn agents_of_router(
    state: &Services,
    ctx: &crate::RequestContext,
    router_id: &str,
) -> CoreResult<Vec<agents::Agent>> {
    require_admin(ctx, "get_l3-agents")?;
    let mut conn = state.store.read_conn().await?;
    crate::routers::visible(&mut conn, ctx, router_id).await?;
    let Some(host) = repo::host_of(&mut *conn, router_id).await? else {
        return Ok(Vec::new());
    };
    Ok(agents::of_type(&mut *conn, L3_AGENT_TYPE)
        .await?
        .into_iter()
        .filter(|a| a.host == host)
        .collect())
}

/// `GET /v2.0/agents/{id}/l3-routers`: the ids of the routers the agent serves (none for an
/// agent of another type).
pub async fn routers_of_agent(
    state: &Services,
    ctx: &crate::RequestContext,
    agent_id: &str,
) -> CoreResult<Vec<String>> {
    require_admin(ctx, "get_l3-routers")?;
    let agent = l3_agent(state, agent_id).await?;
    if agent.agent_type != L3_AGENT_TYPE {
        return Ok(Vec::new());
    }
    let mut conn = state.store.read_conn().await?;
    Ok(repo::on_host(&mut *conn, &agent.host).await?)
}

/// `POST /v2.0/agents/{id}/l3-routers` with `{"router_id"}`: the (enabled) L3 agent serves
/// the router, taking it from the agent serving it if any (`RouterHostedByL3Agent` when it
/// serves it already). Its ports are bound to the agent's host after the commit.
pub async fn add_router(
    state: &Services,
    ctx: &crate::RequestContext,
    agent_id: &str,
    router_id: &str,
) -> CoreResult<()> {
    require_admin(ctx, "create_l3-router")?;
    let mut tx = state.store.begin_write().await?;
    repo::lock(&mut tx, state.store.backend, router_id).await?;
    crate::routers::visible(&mut tx, ctx, router_id).await?;
    let agent = agents::get_for_update(&mut tx, agent_id)
        .await?
        .ok_or_else(|| crate::dhcp_agent_scheduler::agent_not_found(agent_id))?;
    if agent.agent_type != L3_AGENT_TYPE || !agent.admin_state_up {
        return Err(invalid_agent(agent_id));
    }
    if repo::host_of(&mut *tx, router_id).await?.as_deref() == Some(agent.host.as_str()) {
        return Err(crate::error::NeutronError::conflict(
            "RouterHostedByL3Agent",
            format!("The router {router_id} has been already hosted by the L3 Agent {agent_id}."),
        ));
    }
    let revision = place(&mut tx, router_id, &agent.host).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    bind_committed(state, router_id).await;
    Ok(())
}

/// `DELETE /v2.0/agents/{id}/l3-routers/{router_id}`: the agent no longer serves the router
/// (`RouterNotHostedByL3Agent` when it did not); its ports are unbound, its host told.
pub async fn remove_router(
    state: &Services,
    ctx: &crate::RequestContext,
    agent_id: &str,
    router_id: &str,
) -> CoreResult<()> {
    require_admin(ctx, "delete_l3-router")?;
    let agent = l3_agent(state, agent_id).await?;
    let mut tx = state.store.begin_write().await?;
    repo::lock(&mut tx, state.store.backend, router_id).await?;
    crate::routers::visible(&mut tx, ctx, router_id).await?;
    if repo::host_of(&mut *tx, router_id).await?.as_deref() != Some(agent.host.as_str())
        || agent.agent_type != L3_AGENT_TYPE
    {
        return Err(crate::error::NeutronError::conflict(
            "RouterNotHostedByL3Agent",
            format!("The router {router_id} is not hosted by L3 agent {agent_id}."),
        ));
    }
    let revision = unschedule(&mut tx, router_id).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    Ok(())
}

/// When an L2 agent appears or revives on `host`: the router ports there that failed to bind
/// (the L3 agent reported first) are bound again, outside any write transaction.
pub async fn rebind_failed(state: &Services, host: &str) -> CoreResult<usize> {
    let mut conn = state.store.read_conn().await?;
    let mut failed = Vec::new();
    for router_id in repo::on_host(&mut *conn, host).await? {
        for id in port_ids(&mut conn, &router_id).await? {
            if let Some(port) = store::ports::get(&mut conn, &id).await?
                && port.binding_vif_type == "binding_failed"
            {
                failed.push(id);
            }
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
