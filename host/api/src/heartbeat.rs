//! The server side of agent heartbeats, built for report storms (neutron.md 6.1): thousands of
//! agents reporting at once must not queue the API behind their writes, least of all on SQLite
//! with its single writer.
//!
//! So a heartbeat from an agent this server already knows touches no database at all: its
//! time (and any change of the reported attributes) is kept in memory and written by a
//! background flush, one transaction per interval (about a second) for all agents together,
//! attributes only when they changed. New agents are written at once, so they are listed (and
//! bound to) straight away. The database row stays the meeting point of servers sharing it:
//! before calling an agent revived, a server asks the database, where another server may have
//! recorded fresher heartbeats. Readers on this server see its buffered reports through
//! [`Heartbeats::overlay`]; other servers see them within one flush interval, far below the
//! 75 s `agent_down_time`.

use neutrino_store as store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};

use neutrino_runtime::binding::agent_alive;
use neutrino_store::Store;
use neutrino_store::agents::{self, Agent, HeartbeatWrite, Inserted, Reported};

/// One `report_state` from an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub agent_type: String,
    pub host: String,
    pub reported: Reported,
    /// The first report after the agent started.
    pub start_flag: bool,
}

/// Neutron's answer to a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// First report of this (agent_type, host).
    New,
    Alive,
    /// Known, but its last heartbeat was older than `agent_down_time`.
    Revived,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::New => "new",
            Outcome::Alive => "alive",
            Outcome::Revived => "revived",
        }
    }
}

/// Writes per flush transaction: bounds how long a flush holds SQLite's write lock.
const FLUSH_CHUNK: usize = 1000;

pub struct Heartbeats {
    store: Store,
    down_time: Duration,
    state: Mutex<State>,
    /// One flush at a time, so attribute writes of one agent land in report order.
    flushing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// What this server knows of each agent it has heard from, by (agent_type, host).
    known: HashMap<(String, String), Known>,
    /// Heartbeats not written yet, by agent id.
    pending: HashMap<String, HeartbeatWrite>,
}

/// The freshest state of one agent this server has: the row as read or written, plus the
/// reports received since.
struct Known {
    id: String,
    heartbeat_at: DateTime<Utc>,
    started_at: DateTime<Utc>,
    reported: Reported,
}

impl Known {
    fn of(row: &Agent) -> Known {
        Known {
            id: row.id.clone(),
            heartbeat_at: row.heartbeat_at,
            started_at: row.started_at,
            reported: Reported {
                binary: row.binary.clone(),
                topic: row.topic.clone(),
                availability_zone: row.availability_zone.clone(),
                configurations: row.configurations.clone(),
                resources_synced: row.resources_synced,
            },
        }
    }
}

impl State {
    /// Takes a report for a known agent into memory and queues what must be written.
    fn record(&mut self, key: &(String, String), report: &Report, now: DateTime<Utc>) {
        let Some(known) = self.known.get_mut(key) else {
            return;
        };
        known.heartbeat_at = known.heartbeat_at.max(now);
        let write = self
            .pending
            .entry(known.id.clone())
            .or_insert_with(|| HeartbeatWrite {
                id: known.id.clone(),
                heartbeat_at: now,
                started_at: None,
                reported: None,
            });
        write.heartbeat_at = write.heartbeat_at.max(now);
        if report.start_flag {
            known.started_at = now;
            write.started_at = Some(now);
        }
        if known.reported != report.reported {
            known.reported = report.reported.clone();
            write.reported = Some(report.reported.clone());
        }
    }
}

impl Heartbeats {
    pub fn new(store: Store, down_time: Duration) -> Arc<Heartbeats> {
        Arc::new(Heartbeats {
            store,
            down_time,
            state: Mutex::new(State::default()),
            flushing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn down_time(&self) -> Duration {
        self.down_time
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn alive(&self, heartbeat: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        agent_alive(heartbeat.into(), now.into(), self.down_time)
    }

    /// Records a report: `New` agents are written at once, others are buffered.
    pub async fn report(&self, report: &Report) -> store::Result<Outcome> {
        // At the precision stored, so that memory and rows compare as equals.
        let now = Utc::now().trunc_subsecs(6);
        let key = (report.agent_type.clone(), report.host.clone());
        {
            let mut state = self.lock();
            if let Some(known) = state.known.get(&key)
                && self.alive(known.heartbeat_at, now)
            {
                state.record(&key, report, now);
                return Ok(Outcome::Alive);
            }
        }
        // Not heard of here, or silent here for longer than the down time: the database has the
        // last word, as another server may have been hearing from the agent meanwhile.
        match agents::find(&self.store.read, &report.agent_type, &report.host).await? {
            Some(row) => Ok(self.existing(&row, &key, report, now)),
            None => {
                let row = new_agent(report, now);
                match agents::insert(&self.store.write, &row).await? {
                    Inserted::Created => {
                        self.lock().known.insert(key, Known::of(&row));
                        Ok(Outcome::New)
                    }
                    Inserted::Exists(row) => Ok(self.existing(&row, &key, report, now)),
                }
            }
        }
    }

    /// A report of an agent the database has: alive or revived by the freshest heartbeat known
    /// here or there.
    fn existing(
        &self,
        row: &Agent,
        key: &(String, String),
        report: &Report,
        now: DateTime<Utc>,
    ) -> Outcome {
        let mut state = self.lock();
        let known = state
            .known
            .entry(key.clone())
            .or_insert_with(|| Known::of(row));
        if known.id != row.id {
            // Deleted and registered again through another server.
            *known = Known::of(row);
        }
        let last = known.heartbeat_at.max(row.heartbeat_at);
        known.heartbeat_at = last;
        let outcome = if self.alive(last, now) {
            Outcome::Alive
        } else {
            // Often a report_interval not well below agent_down_time (the agent flaps), or a
            // host that was down.
            tracing::warn!(
                "the {} of host {} reported after {} s of silence, more than agent_down_time:                  it was dead meanwhile (its report_interval must be well below agent_down_time)",
                key.0,
                key.1,
                (now - last).num_seconds()
            );
            Outcome::Revived
        };
        state.record(key, report, now);
        outcome
    }

    /// Whether `report` names another tunnel endpoint than the last report of its agent this
    /// server holds (or this server holds none).
    pub fn names_new_endpoint(&self, report: &Report) -> bool {
        let key = (report.agent_type.clone(), report.host.clone());
        let endpoint =
            |c: &serde_json::Map<String, serde_json::Value>| c.get("tunneling_ip").cloned();
        self.lock().known.get(&key).is_none_or(|known| {
            endpoint(&known.reported.configurations) != endpoint(&report.reported.configurations)
        })
    }

    /// Brings rows read from the database up to date with the reports this server holds.
    pub fn overlay(&self, rows: &mut [Agent]) {
        let state = self.lock();
        for row in rows {
            let key = (row.agent_type.clone(), row.host.clone());
            let Some(known) = state.known.get(&key) else {
                continue;
            };
            if known.id != row.id || known.heartbeat_at <= row.heartbeat_at {
                continue;
            }
            row.heartbeat_at = known.heartbeat_at;
            row.started_at = row.started_at.max(known.started_at);
            let r = &known.reported;
            row.binary.clone_from(&r.binary);
            row.topic.clone_from(&r.topic);
            row.availability_zone.clone_from(&r.availability_zone);
            row.configurations.clone_from(&r.configurations);
            row.resources_synced = r.resources_synced;
        }
    }

    /// Drops what this server holds of a deleted agent, so its next report registers it anew.
    pub fn forget(&self, row: &Agent) {
        let mut state = self.lock();
        let key = (row.agent_type.clone(), row.host.clone());
        if state.known.get(&key).is_some_and(|k| k.id == row.id) {
            state.known.remove(&key);
        }
        state.pending.remove(&row.id);
    }

    /// Writes the buffered heartbeats. On failure they are queued again (merged with newer
    /// reports) for the next flush.
    pub async fn flush(&self) -> store::Result<usize> {
        let _one_at_a_time = self.flushing.lock().await;
        let batch: Vec<HeartbeatWrite> = std::mem::take(&mut self.lock().pending)
            .into_values()
            .collect();
        let mut written = 0;
        for (i, chunk) in batch.chunks(FLUSH_CHUNK).enumerate() {
            match self.write(chunk).await {
                Ok(missing) => {
                    written += chunk.len() - missing.len();
                    let mut state = self.lock();
                    state.known.retain(|_, k| !missing.contains(&k.id));
                }
                Err(e) => {
                    self.requeue(&batch[i * FLUSH_CHUNK..]);
                    return Err(e);
                }
            }
        }
        Ok(written)
    }

    async fn write(&self, chunk: &[HeartbeatWrite]) -> store::Result<Vec<String>> {
        let mut tx = self.store.begin_write().await?;
        let missing = agents::write_heartbeats(&mut tx, chunk).await?;
        store::commit(tx).await?;
        Ok(missing)
    }

    fn requeue(&self, failed: &[HeartbeatWrite]) {
        let mut state = self.lock();
        for old in failed {
            match state.pending.get_mut(&old.id) {
                // A newer report arrived meanwhile: it wins, but keeps what only the old had.
                Some(newer) => {
                    newer.heartbeat_at = newer.heartbeat_at.max(old.heartbeat_at);
                    newer.started_at = newer.started_at.or(old.started_at);
                    if newer.reported.is_none() {
                        newer.reported.clone_from(&old.reported);
                    }
                }
                None => {
                    state.pending.insert(old.id.clone(), old.clone());
                }
            }
        }
    }

    /// Flushes every `every` until the last `Arc` is dropped.
    pub fn spawn_flusher(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(heartbeats) = weak.upgrade() else {
                    break;
                };
                if let Err(e) = heartbeats.flush().await {
                    tracing::warn!("writing agent heartbeats failed, retrying: {e}");
                }
            }
        });
    }
}

/// The row of a newly reporting agent: enabled (Neutron's `enable_new_agents`), started now.
fn new_agent(report: &Report, now: DateTime<Utc>) -> Agent {
    let r = &report.reported;
    Agent {
        id: store::new_id(),
        agent_type: report.agent_type.clone(),
        binary: r.binary.clone(),
        topic: r.topic.clone(),
        host: report.host.clone(),
        admin_state_up: true,
        description: None,
        availability_zone: r.availability_zone.clone(),
        configurations: r.configurations.clone(),
        resources_synced: r.resources_synced,
        created_at: now,
        started_at: now,
        heartbeat_at: now,
    }
}

impl neutrino_core::HeartbeatOverlay for Heartbeats {
    fn overlay(&self, rows: &mut [Agent]) {
        Heartbeats::overlay(self, rows)
    }
}
