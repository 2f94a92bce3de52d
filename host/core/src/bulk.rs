//! Bulk creates that never hold the write path for long. A bulk small enough to be written
//! within [`SLICE`] (networks) or [`PORT_SLICE`] items (ports) is one transaction, as any
//! create. A bigger one is written in slices, one transaction each, so that other requests'
//! writes go between them (on SQLite one connection writes at a time: a bulk of tens of
//! thousands of networks in one transaction held every other project's writes for seconds).
//!
//! It stays all or nothing, as Neutron's emulated bulk is: each slice records what it made in
//! the bulk journal (`store::bulk_journal`) in its own transaction; if a slice fails, what the
//! earlier ones made is deleted and the slice's error is the answer. Until the bulk ends, what
//! it has made so far is visible to its project. A server killed in the middle leaves the
//! journal behind, and [`spawn_sweep`] (any server's) deletes those items.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::error::CoreResult;
use crate::{RequestContext, Services, networks, ports, quotas};
use neutrino_store as store;
use neutrino_store::networks::Network;
use neutrino_store::ports::Port;

/// How long one slice of a network bulk may write before it commits.
pub const SLICE: Duration = Duration::from_micros(500);
/// Networks of a bulk written in one slice at most (however fast they go).
const MAX_SLICE_ITEMS: usize = 256;
/// Ports of a bulk written in one transaction at most (in the port writer's batch) while other
/// projects are busy.
pub const PORT_SLICE: usize = 4;
/// The same for a project alone: fewer, bigger transactions.
const PORT_SLICE_ALONE: usize = 64;
/// The longest a bulk gives way between two slices (a slice slowed by a busy database should
/// not leave its bulk idle longer still).
const MAX_GIVE_WAY: Duration = Duration::from_millis(20);
/// A journal whose last slice is older than this belongs to a bulk no server is finishing.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(120);
/// How often the sweep looks for abandoned bulks.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Creates the networks of one request by `ctx` (bodies checked, with the project of each).
pub async fn create_networks(
    state: &Services,
    ctx: &RequestContext,
    bodies: &[Map<String, Value>],
    projects: &[String],
) -> CoreResult<Vec<Network>> {
    let bulk = store::new_id();
    let mut created: Vec<Network> = Vec::with_capacity(bodies.len());
    let mut sliced = false;
    while created.len() < bodies.len() {
        let started = Instant::now();
        if let Err(e) =
            network_slice(state, &bulk, bodies, projects, &mut created, &mut sliced).await
        {
            let ids: Vec<String> = created.iter().map(|n| n.id.clone()).collect();
            undo(state, &bulk, "networks", &ids).await;
            return Err(e);
        }
        if created.len() < bodies.len() {
            give_way(state, ctx, started.elapsed()).await;
        }
    }
    if sliced {
        forget(state, &bulk).await?;
    }
    Ok(created)
}

/// Writes the next networks of the bulk in one transaction, until they are all written or
/// [`SLICE`] has passed; records them in the journal if the bulk goes on after them.
async fn network_slice(
    state: &Services,
    bulk: &str,
    bodies: &[Map<String, Value>],
    projects: &[String],
    created: &mut Vec<Network>,
    sliced: &mut bool,
) -> CoreResult<()> {
    let started = Instant::now();
    let backend = state.store.backend;
    let first = created.len();
    let mut tx = state.store.begin_write().await?;
    // The whole bulk must fit the quota (checked first, not found out after thousands of
    // creates); then each slice charges its own networks, counted with what the earlier
    // slices and other requests made meanwhile.
    if first == 0 {
        quotas::Ledger::check(&mut tx, backend, "network", &per_project(projects)).await?;
    }
    let end = bodies.len().min(first + MAX_SLICE_ITEMS);
    let mut ledger = quotas::Ledger::default();
    let slice_projects: Vec<&str> = projects[first..end].iter().map(String::as_str).collect();
    ledger
        .load(&mut tx, backend, "network", &slice_projects)
        .await?;
    let mut made = Vec::new();
    for (b, project) in bodies[first..end].iter().zip(&projects[first..end]) {
        ledger.charge(project, "network", 1)?;
        made.push(networks::create_one(state, project.clone(), b, &mut tx).await?);
        if started.elapsed() >= SLICE {
            break;
        }
    }
    if first + made.len() < bodies.len() || *sliced {
        *sliced = true;
        let ids: Vec<String> = made.iter().map(|n| n.id.clone()).collect();
        store::bulk_journal::record(&mut tx, bulk, "networks", &ids).await?;
    }
    store::commit(tx).await?;
    created.extend(made);
    Ok(())
}

/// How many of `projects` each project is.
fn per_project<'a>(projects: impl IntoIterator<Item = &'a String>) -> Vec<(String, i64)> {
    let mut counts: HashMap<&String, i64> = HashMap::new();
    for project in projects {
        *counts.entry(project).or_default() += 1;
    }
    counts.into_iter().map(|(p, n)| (p.clone(), n)).collect()
}

/// Creates the ports of one request through the port writer, [`PORT_SLICE`] at a time when
/// there are more and other projects are busy ([`PORT_SLICE_ALONE`] when not).
pub async fn create_ports(
    state: &Services,
    ctx: &RequestContext,
    bodies: &[Map<String, Value>],
    projects: &[String],
) -> CoreResult<Vec<Port>> {
    let writer = state.port_writer();
    if bodies.len() <= PORT_SLICE {
        return writer.create(state, ctx, bodies, projects, None).await;
    }
    // The whole bulk must fit the quota: checked first, not found out after thousands of
    // creates (each slice is charged again when written).
    let counted = bodies
        .iter()
        .zip(projects)
        .filter(|(b, _)| quotas::counted_port_body(b));
    let mut tx = state.store.begin_write().await?;
    quotas::Ledger::check(
        &mut tx,
        state.store.backend,
        "port",
        &per_project(counted.map(|(_, p)| p)),
    )
    .await?;
    drop(tx);
    let bulk = store::new_id();
    let mut created: Vec<Port> = Vec::with_capacity(bodies.len());
    let mut slice_took = Duration::ZERO;
    let mut next = 0;
    while next < bodies.len() {
        let company = give_way(state, ctx, slice_took).await;
        let end = bodies.len().min(
            next + if company {
                PORT_SLICE
            } else {
                PORT_SLICE_ALONE
            },
        );
        let started = Instant::now();
        let written = writer
            .create(
                state,
                ctx,
                &bodies[next..end],
                &projects[next..end],
                Some(&bulk),
            )
            .await;
        slice_took = started.elapsed();
        next = end;
        match written {
            Ok(ports) => created.extend(ports),
            Err(e) => {
                let ids: Vec<String> = created.iter().map(|p| p.id.clone()).collect();
                undo(state, &bulk, "ports", &ids).await;
                return Err(e);
            }
        }
    }
    forget(state, &bulk).await?;
    Ok(created)
}

/// Between two slices of a bulk whose project has company (other projects' requests in the
/// server lately), waits as long as the last slice took: the bulk has the write path and the
/// cores at most half the time, and the others' requests go in between. (Slicing alone let the
/// next slice queue at once: a single create of another project waited behind one slice or
/// two almost every time, 2.5 ms instead of 0.6.) A project alone is not slowed. Answers
/// whether the project has company (before the first slice, `slice_took` is zero).
async fn give_way(state: &Services, ctx: &RequestContext, slice_took: Duration) -> bool {
    let company = state.contention.others_busy(&ctx.project_id);
    if company && !slice_took.is_zero() {
        tokio::time::sleep(slice_took.min(MAX_GIVE_WAY)).await;
    }
    company
}

async fn forget(state: &Services, bulk: &str) -> CoreResult<()> {
    let mut conn = state.store.write_conn().await?;
    store::bulk_journal::forget(&mut conn, bulk).await?;
    Ok(())
}

/// Deletes what a failed or abandoned bulk made, each item with its own delete (as an admin:
/// the items are the bulk's own). An item that cannot be deleted now (a port was put on a
/// network meanwhile, the database failed) keeps its journal entry for the next sweep.
async fn undo(state: &Services, bulk: &str, resource: &str, ids: &[String]) {
    let admin = RequestContext {
        project_id: String::new(),
        user_id: "neutrino-bulk-undo".into(),
        roles: vec!["admin".into()],
    };
    let mut left = Vec::new();
    for id in ids {
        let deleted = match resource {
            "networks" => networks::delete(state, &admin, id).await,
            _ => ports::delete(state, &admin, id).await,
        };
        match deleted {
            Ok(()) => {}
            Err(e) if e.kind.ends_with("NotFound") => {}
            Err(_) => left.push(id.as_str()),
        }
    }
    let forgotten = match state.store.write_conn().await {
        Ok(mut conn) if left.is_empty() => store::bulk_journal::forget(&mut conn, bulk).await,
        Ok(mut conn) => store::bulk_journal::forget_except(&mut conn, bulk, &left).await,
        Err(e) => Err(e),
    };
    if !left.is_empty() || forgotten.is_err() {
        tracing::warn!(
            "bulk {bulk}: {} {resource} not undone yet; the sweep will try again",
            left.len()
        );
    }
}

/// Every [`SWEEP_INTERVAL`], undoes the bulks no server is finishing (a server was killed
/// while writing one).
pub fn spawn_sweep(state: Services) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sweep(&state).await {
                tracing::warn!("undoing abandoned bulk creates: {}", e.message);
            }
        }
    });
}

/// Undoes the bulks whose last slice is older than [`ABANDONED_AFTER`].
pub async fn sweep(state: &Services) -> CoreResult<usize> {
    sweep_before(state, &store::ago(ABANDONED_AFTER)).await
}

/// Undoes the bulks whose last slice was recorded before `before`; answers the items undone
/// or tried.
pub async fn sweep_before(state: &Services, before: &str) -> CoreResult<usize> {
    let items = {
        let mut conn = state.store.read_conn().await?;
        store::bulk_journal::unfinished(&mut conn, before).await?
    };
    // Ports first: an abandoned bulk's networks may hold an abandoned bulk's ports.
    for resource in ["ports", "networks"] {
        let mut by_bulk: Vec<(&str, Vec<String>)> = Vec::new();
        for (bulk, _, id) in items.iter().filter(|(_, r, _)| r == resource) {
            match by_bulk.last_mut() {
                Some((b, ids)) if b == bulk => ids.push(id.clone()),
                _ => by_bulk.push((bulk, vec![id.clone()])),
            }
        }
        for (bulk, ids) in by_bulk {
            tracing::warn!(
                "bulk {bulk} was left unfinished: deleting the {} {resource} it made",
                ids.len()
            );
            undo(state, bulk, resource, &ids).await;
        }
    }
    Ok(items.len())
}
