//! Group commit for port creates. On SQLite one connection writes at a time, so the cost of a
//! create is mostly its round trips to that connection; taking the creates that are waiting
//! and writing them in one transaction saves the BEGIN, COMMIT and hand-over of each. The
//! ports are drafted in that transaction too, so the network, its subnets and the default
//! security group are read once per batch (`DraftLookups`), not once per port.
//!
//! One task per server writes. It takes every create waiting (up to [`MAX_BATCH`]), writes
//! them in one transaction and answers each, keeping the connection for the next batch while
//! creates keep coming (up to [`HOLD`] batches). If any of them fails (an address taken, a pool
//! exhausted, ...), the batch is rolled back and each create runs again alone, so one
//! request's error never becomes another's.

use neutrino_store as store;
use std::collections::HashMap;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::RequestContext;
use crate::Services;
use crate::error::{CoreResult, NeutronError, Status};
use crate::port_binding;
use crate::ports::{DraftLookups, draft_with, write_draft};
use crate::quotas;
use neutrino_store::port_writes::{Finished, PortWrites};
use neutrino_store::ports::Port;

/// Creates written in one transaction at most (a bound on how long one commit holds others).
const MAX_BATCH: usize = 64;
/// Batches written one after the other on one connection at most, before other writers may
/// have it.
const HOLD: usize = 8;

/// One create request: its bodies and the project of each, written all or nothing.
struct Job {
    ctx: RequestContext,
    bodies: Vec<Map<String, Value>>,
    projects: Vec<String>,
    /// A slice of a bulk written in slices: its ports are recorded in the bulk journal.
    bulk: Option<String>,
    reply: oneshot::Sender<CoreResult<Vec<Port>>>,
}

/// The handle requests queue their creates on. It holds no `Services` (which hold it): a
/// cycle would keep a stopped server's state, its drivers' engine included, forever.
pub struct PortWriter {
    jobs: mpsc::Sender<Job>,
}

impl PortWriter {
    /// Starts the writing task of `state`'s server.
    pub fn start(state: Services) -> PortWriter {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(state, queue));
        PortWriter { jobs }
    }

    /// Creates the ports of one request (bodies checked for attributes and policy, with the
    /// project of each), or one slice of a bulk written in slices (`bulk`, see `bulk`);
    /// answers the ports written, bound through `state` (the server's).
    pub async fn create(
        &self,
        state: &Services,
        ctx: &RequestContext,
        bodies: &[Map<String, Value>],
        projects: &[String],
        bulk: Option<&str>,
    ) -> CoreResult<Vec<Port>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            ctx: ctx.clone(),
            bodies: bodies.to_vec(),
            projects: projects.to_vec(),
            bulk: bulk.map(str::to_string),
            reply,
        };
        let gone = || NeutronError::internal("the port writer has stopped");
        self.jobs.send(job).await.map_err(|_| gone())?;
        // The caller makes the API dicts in the request's task, not in the one writing task.
        let mut created = answer.await.map_err(|_| gone())??;
        // Ports with a host are written unbound and bound now, after their commit and outside
        // any write transaction: a slow driver delays this request only.
        for port in created.iter_mut().filter(|p| !p.binding_host.is_empty()) {
            if let Some(bound) = port_binding::bind_committed(state, &port.id).await? {
                *port = bound;
            }
        }
        Ok(created)
    }
}

async fn run(state: Services, mut queue: mpsc::Receiver<Job>) {
    // The connection is taken when a create comes, and kept for the batches that follow while
    // creates keep coming (up to HOLD of them), instead of going back to the pool and being
    // taken again between them; other writers get it when the queue runs dry. What the drafts
    // read is kept over the hold as long as it stays valid (see `DraftLookups::revalidate`).
    while let Some(first) = queue.recv().await {
        let mut conn = None;
        let mut lookups = DraftLookups::default();
        let mut next = Some(first);
        let mut held = 0;
        while let Some(first) = next.take() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            write_batch(&state, &mut conn, &mut lookups, batch).await;
            held += 1;
            if held < HOLD {
                next = queue.try_recv().ok();
            }
        }
    }
}

/// Writes a batch in one transaction; if that fails, each job alone, so that one request's
/// error never becomes another's. A database that cannot serve (unreachable, disk full) is
/// every job's answer at once: trying each alone would hold the last for as many failures.
async fn write_batch(
    state: &Services,
    conn: &mut Option<store::PooledConn>,
    lookups: &mut DraftLookups,
    batch: Vec<Job>,
) {
    let mut unavailable = None;
    // Several ports (of several jobs, or one bulk slice) are tried together first.
    if batch.iter().map(|j| j.bodies.len()).sum::<usize>() > 1 {
        match write_on(state, conn, lookups, &batch, Writes::Grouped).await {
            Ok(results) => {
                for (job, created) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(created));
                }
                return;
            }
            Err(e) if e.status == Status::SERVICE_UNAVAILABLE => unavailable = Some(e),
            Err(_) => {}
        }
    }
    for job in batch {
        let result = match &unavailable {
            Some(e) => Err(e.clone()),
            None => write_on(
                state,
                conn,
                lookups,
                std::slice::from_ref(&job),
                Writes::Alone,
            )
            .await
            .map(|mut r| r.remove(0)),
        };
        if let Err(e) = &result
            && e.status == Status::SERVICE_UNAVAILABLE
        {
            unavailable = Some(e.clone());
        }
        let _ = job.reply.send(result);
    }
}

/// [`write`] on the writer's connection, taken first if it has none. A connection the failure
/// left unusable (its COMMIT or ROLLBACK failed, as on a full disk, or it broke) is closed, so
/// the next write takes a fresh one instead of failing on it for good.
async fn write_on(
    state: &Services,
    conn: &mut Option<store::PooledConn>,
    lookups: &mut DraftLookups,
    jobs: &[Job],
    writes: Writes,
) -> CoreResult<Vec<Vec<Port>>> {
    // A deadlock with a network delete, or a network or subnet deleted under the write, runs
    // the transaction again (as `retry::retrying` does): it then answers NetworkNotFound (or
    // writes), never a 500.
    let mut run = 1;
    loop {
        match write_once(state, conn, lookups, jobs, writes).await {
            Err(e) if e.again && run < crate::retry::TRIES => {
                tracing::debug!("port create: run {run} conflicted ({e}); running it again");
                // What the drafts read may be what the other transaction deleted.
                *lookups = DraftLookups::default();
                tokio::time::sleep(crate::retry::backoff(run)).await;
                run += 1;
            }
            other => return other,
        }
    }
}

async fn write_once(
    state: &Services,
    conn: &mut Option<store::PooledConn>,
    lookups: &mut DraftLookups,
    jobs: &[Job],
    writes: Writes,
) -> CoreResult<Vec<Vec<Port>>> {
    let held = match conn {
        Some(held) => held,
        None => conn.insert(state.store.write_conn().await?),
    };
    let mut result = write(state, held, lookups, jobs, writes).await;
    if let Err(e) = &mut result
        && e.kind == "IpAddressGenerationFailure"
        && network_gone(held, jobs).await
    {
        // The subnet's free addresses went with a network deleted under the write: run
        // again, it answers NetworkNotFound.
        e.again = true;
    }
    if result.is_err() && !store::usable(held).await {
        tracing::warn!("the port writer's connection is unusable after a failed write; closing it");
        if let Some(broken) = conn.take() {
            store::discard(broken);
        }
        // What was read on it is checked against that connection's view.
        *lookups = DraftLookups::default();
    }
    result
}

/// Whether a network a job's ports are on is gone (deleted since the transaction read it).
async fn network_gone(conn: &mut store::Conn, jobs: &[Job]) -> bool {
    for b in jobs.iter().flat_map(|j| &j.bodies) {
        if let Some(Value::String(network)) = b.get("network_id")
            && matches!(store::networks::get(&mut *conn, network).await, Ok(None))
        {
            return true;
        }
    }
    false
}

/// How a transaction writes its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// Held back and written together at the end, a few statements for all the ports; a
    /// refused row fails the batch, which then runs one job at a time, [`Writes::Alone`].
    Grouped,
    /// Each row written at once, so that each error is its own port's.
    Alone,
}

/// Drafts and writes every job's ports in one transaction.
async fn write(
    state: &Services,
    conn: &mut store::Conn,
    lookups: &mut DraftLookups,
    jobs: &[Job],
    how: Writes,
) -> CoreResult<Vec<Vec<Port>>> {
    let mut tx = state.store.begin_write_on(conn).await?;
    lookups.revalidate(&mut tx, state.store.backend).await?;
    charge_quotas(state, &mut tx, jobs).await?;
    let mut writes = match how {
        Writes::Alone => PortWrites::alone(),
        Writes::Grouped => PortWrites::grouped(),
    };
    // What every port of the batch needs is read for all of them at once, in a few
    // statements however many networks they are spread over: networks and subnets, generated
    // MACs checked, DHCP hosts, the lowest free range of the subnets default addresses come
    // from (a round trip a port each would be most of a create's cost).
    let mut generated: HashMap<String, usize> = HashMap::new();
    let mut networks: Vec<String> = Vec::new();
    let mut defaulted: Vec<String> = Vec::new();
    for b in jobs.iter().flat_map(|j| &j.bodies) {
        let Some(Value::String(network)) = b.get("network_id") else {
            continue;
        };
        networks.push(network.clone());
        if b.get("mac_address").is_none() {
            *generated.entry(network.clone()).or_default() += 1;
        }
        if b.get("fixed_ips").is_none() {
            defaulted.push(network.clone());
        }
    }
    networks.sort_unstable();
    networks.dedup();
    lookups.prefetch(&mut tx, &networks).await?;
    let generated: Vec<(String, usize)> = generated.into_iter().collect();
    writes
        .prepare_macs(&mut tx, &state.config.mac_generator, &generated)
        .await?;
    writes.prepare_dhcp_hosts(&mut tx, &networks).await?;
    let pooled = lookups.pooled_subnets(&defaulted);
    writes
        .lowest
        .prepare(&mut tx, state.store.backend, &pooled)
        .await?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut created = Vec::with_capacity(job.bodies.len());
        for (b, project) in job.bodies.iter().zip(&job.projects) {
            let mut d = draft_with(&mut tx, lookups, &job.ctx, b, project.clone()).await?;
            d.bind_after_commit();
            created.push(write_draft(state, &job.ctx, b, d, &mut tx, &mut writes).await?);
        }
        if let Some(bulk) = &job.bulk {
            let ids: Vec<String> = created.iter().map(|p| p.id.clone()).collect();
            store::bulk_journal::record(&mut tx, bulk, "ports", &ids).await?;
        }
        results.push(created);
    }
    let grouped = how == Writes::Grouped;
    let finished = writes.finish(&mut tx).await;
    let Finished::Written { revision } = finished.map_err(|e| refused(grouped, e))? else {
        return Err(batch_conflict());
    };
    store::commit(tx).await.map_err(|e| refused(grouped, e))?;
    state.feed.committed(revision);
    Ok(results)
}

/// Counts every job's ports against its projects' port quotas, before anything else is
/// locked or drafted: a job that goes over fails the batch, which then runs one job at a
/// time, where only the jobs over the quota fail (`OverQuota`).
async fn charge_quotas(state: &Services, tx: &mut store::Tx<'_>, jobs: &[Job]) -> CoreResult<()> {
    let counted = quotas::counted_port_body;
    let projects: Vec<&str> = jobs
        .iter()
        .flat_map(|j| j.bodies.iter().zip(&j.projects))
        .filter(|(b, _)| counted(b))
        .map(|(_, p)| p.as_str())
        .collect();
    if projects.is_empty() {
        return Ok(());
    }
    let mut ledger = quotas::Ledger::default();
    ledger
        .load(tx, state.store.backend, "port", &projects)
        .await?;
    for job in jobs {
        let mut deltas: Vec<(&str, i64)> = Vec::new();
        for (b, project) in job.bodies.iter().zip(&job.projects) {
            if !counted(b) {
                continue;
            }
            match deltas.iter_mut().find(|(p, _)| p == project) {
                Some((_, n)) => *n += 1,
                None => deltas.push((project, 1)),
            }
        }
        // Any job over its quota fails the whole transaction (the batch then runs one job at
        // a time).
        for (project, n) in deltas {
            ledger.charge(project, "port", n)?;
        }
    }
    Ok(())
}

/// The batch cannot be written together; its jobs are written one at a time.
fn batch_conflict() -> NeutronError {
    NeutronError::conflict(
        "BatchConflict",
        "a port of the batch conflicted; writing them one at a time",
    )
}

/// A database error at the end of a transaction. In a batch, a row refused by a constraint
/// (a network or subnet deleted since its ports were drafted) is expected: the jobs run again
/// one at a time, where the one it belongs to gets its own answer. Anything else, or alone, is
/// an internal error.
fn refused(grouped: bool, e: store::Error) -> NeutronError {
    match &e {
        e if grouped && (e.is_foreign_key_violation() || e.is_unique_violation()) => {
            tracing::debug!(
                "a batch of port creates was refused ({e}); writing them one at a time"
            );
            batch_conflict()
        }
        _ => e.into(),
    }
}
