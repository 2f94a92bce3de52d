//! A server's boot: its NICs planned, a host picked, then the server, its ports and NICs
//! written in one transaction, the ports bound after it (outside any write transaction), and
//! the host's feed entries written. A boot that cannot be placed or whose ports cannot be bound
//! is still written, in ERROR with the reason and no ports, as in Nova.

use chrono::Utc;

use super::nics::{self, FeedEntries, NicRequest, PlannedNic};
use super::scheduler::{self, NO_VALID_HOST};
use crate::error::CoreResult;
use crate::port_binding;
use crate::{RequestContext, Services};
use neutrino_store as store;
use neutrino_store::agents::stored_time;
use neutrino_store::servers::{self as repo, BUILD, ERROR, Server};

/// How often a boot is tried again after a generated value (a MAC) collided.
const RETRIES: usize = 3;

/// Boots a server named `name` for the caller with one NIC per request, its created ports in
/// `security_groups` (names or ids; none: the project's default group), on `forced_host`
/// when given (the caller checked it may force one). Errors keep Neutron's type; a refused
/// boot writes nothing.
pub async fn boot(
    state: &Services,
    ctx: &RequestContext,
    name: &str,
    nic_requests: &[NicRequest],
    security_groups: &[String],
    forced_host: Option<&str>,
) -> CoreResult<Server> {
    let now = Utc::now();
    let mut server = Server {
        id: store::new_id(),
        project_id: ctx.project_id.clone(),
        user_id: ctx.user_id.clone(),
        name: name.to_string(),
        host: String::new(),
        status: BUILD.into(),
        fault: None,
        created_at: store::now(),
        updated_at: store::now(),
        build_deadline: stored_time(now + state.config.boot_timeout),
    };
    let groups = if security_groups.is_empty() {
        None
    } else {
        Some(crate::security_groups::ids_for_boot(state, ctx, security_groups).await?)
    };
    let planned = nics::plan(state, ctx, &server.id, nic_requests, groups.as_deref()).await?;
    match scheduler::pick_host(state, forced_host).await? {
        Some(host) => {
            server.host = host;
            place(state, ctx, &mut server, planned).await?;
        }
        None => fail_unplaced(state, &mut server, NO_VALID_HOST).await?,
    }
    Ok(server)
}

/// Writes the server, its ports (unbound) and NICs in one transaction; then binds the ports,
/// outside any write transaction (a slow driver holds none); then either gives the host the
/// server and its ports (its feed entries), or, when a port could not be bound, releases the
/// ports and fails the server with the reason.
async fn place(
    state: &Services,
    ctx: &RequestContext,
    server: &mut Server,
    planned: Vec<PlannedNic>,
) -> CoreResult<()> {
    // Run again whole when the write met a concurrent one (a network delete: a deadlock, or
    // the network gone under it), as Neutron's DB retry does.
    let written: &Server = server;
    let port_ids = crate::retry::retrying("server boot", || {
        write_server(state, ctx, written, &planned)
    })
    .await?;
    let mut bound = Vec::with_capacity(port_ids.len());
    let mut fault = None;
    for id in &port_ids {
        match port_binding::bind_committed(state, id).await? {
            Some(port) => bound.push(port),
            None => {
                fault = Some(format!(
                    "Port {id} was deleted while the server was booting"
                ));
                break;
            }
        }
    }
    if let Some(fault) = fault.or_else(|| nics::binding_failure(&bound)) {
        return fail_unbound(state, server, &fault).await;
    }
    let mut tx = state.store.begin_write().await?;
    let mut feed = FeedEntries::default();
    let port_ids: Vec<&str> = port_ids.iter().map(String::as_str).collect();
    feed.server(server, &port_ids);
    let revision = feed.record(&mut tx).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    Ok(())
}

/// One run of a placed boot's write: the server, its ports (unbound) and NICs in one
/// transaction, committed; answers the ports' ids.
async fn write_server(
    state: &Services,
    ctx: &RequestContext,
    server: &Server,
    planned: &[PlannedNic],
) -> CoreResult<Vec<String>> {
    let mut attempt = 0;
    loop {
        let mut tx = state.store.begin_write().await?;
        let creates = planned
            .iter()
            .filter(|nic| matches!(nic, PlannedNic::Create { .. }))
            .count() as i64;
        let deltas = [(ctx.project_id.clone(), creates)];
        crate::quotas::Ledger::check(&mut tx, state.store.backend, "port", &deltas).await?;
        let attached = match nics::attach(state, ctx, &mut tx, server, planned.to_vec()).await {
            Ok(attached) => attached,
            // Dropping the transaction rolls back whatever was created or taken.
            Err(e) if e.kind == "RetryRequest" && attempt < RETRIES => {
                attempt += 1;
                continue;
            }
            Err(mut e) => {
                drop(tx);
                if e.kind == "IpAddressGenerationFailure" && network_gone(state, planned).await? {
                    // The subnets' free addresses went with a network deleted under the
                    // write (PostgreSQL read it before that delete committed): run again, it
                    // answers NetworkNotFound.
                    e.again = true;
                }
                return Err(e);
            }
        };
        let nics: Vec<repo::Nic> = attached.iter().map(|a| a.nic.clone()).collect();
        repo::insert(&mut tx, server, &nics).await?;
        store::commit(tx).await?;
        return Ok(nics.into_iter().map(|n| n.port_id).collect());
    }
}

/// Whether a network a planned port is on is gone.
async fn network_gone(state: &Services, planned: &[PlannedNic]) -> CoreResult<bool> {
    let mut conn = state.store.read_conn().await?;
    for nic in planned {
        if let PlannedNic::Create { body, .. } = nic
            && let Some(serde_json::Value::String(network)) = body.get("network_id")
            && store::networks::get(&mut *conn, network).await?.is_none()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A placed server one of whose ports could not be bound: its ports released (created ones
/// deleted, given ones cleared) and the server in ERROR with `fault`, as if never placed.
async fn fail_unbound(state: &Services, server: &mut Server, fault: &str) -> CoreResult<()> {
    let failed: &Server = server;
    crate::retry::retrying("failed boot", || async move {
        let mut tx = state.store.begin_write().await?;
        nics::lock_server(state, &mut tx, &failed.id).await?;
        if repo::fail_build(&mut tx, &failed.id, fault).await? {
            let mut feed = FeedEntries::default();
            nics::release(state, &mut tx, failed, &mut feed).await?;
            let revision = feed.record(&mut tx).await?;
            store::commit(tx).await?;
            state.feed.committed(revision);
        }
        Ok(())
    })
    .await?;
    server.status = ERROR.into();
    server.fault = Some(fault.to_string());
    Ok(())
}

/// Writes the server in ERROR, with no ports, and `fault`.
async fn fail_unplaced(state: &Services, server: &mut Server, fault: &str) -> CoreResult<()> {
    server.status = ERROR.into();
    server.fault = Some(fault.to_string());
    let mut tx = state.store.begin_write().await?;
    repo::insert(&mut tx, server, &[]).await?;
    store::commit(tx).await?;
    Ok(())
}
