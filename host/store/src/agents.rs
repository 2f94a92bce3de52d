//! Agents: one row per (agent_type, host), created and refreshed by heartbeat reports.
//!
//! Heartbeats themselves are buffered in memory and written here in batches by
//! [`crate::heartbeat`]; this module only knows rows.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDateTime, Utc};
use neutrino_model::{self as model, AgentConfigurations};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use neutrino_model::agent_alive;

/// An agent as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: String,
    pub agent_type: String,
    pub binary: String,
    pub topic: String,
    pub host: String,
    pub admin_state_up: bool,
    pub description: Option<String>,
    pub availability_zone: Option<String>,
    /// The reported `configurations` dict.
    pub configurations: Map<String, Value>,
    pub resources_synced: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

impl Agent {
    /// Whether the last heartbeat is within `down_time` of `now`.
    pub fn alive(&self, now: SystemTime, down_time: Duration) -> bool {
        agent_alive(self.heartbeat_at.into(), now, down_time)
    }

    /// The agent as mechanism drivers see it (the model's `Agent`).
    pub fn to_binding(&self, now: SystemTime, down_time: Duration) -> model::Agent {
        model::Agent {
            id: self.id.clone(),
            agent_type: self.agent_type.clone(),
            binary: self.binary.clone(),
            host: self.host.clone(),
            alive: self.alive(now, down_time),
            admin_state_up: self.admin_state_up,
            configurations: AgentConfigurations::from_reported(&self.configurations),
        }
    }
}

/// Timestamps as stored: fixed width, so text order is time order.
const STORED: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

pub fn stored_time(t: DateTime<Utc>) -> String {
    t.format(STORED).to_string()
}

fn parse_time(text: &str) -> crate::Result<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.fZ")
        .map(|t| t.and_utc())
        .map_err(|e| sqlx::Error::Decode(format!("agent timestamp {text:?}: {e}").into()).into())
}

macro_rules! columns {
    () => {
        "id, agent_type, \"binary\", topic, host, admin_state_up, description, availability_zone, \
         configurations, resources_synced, created_at, started_at, heartbeat_at"
    };
}

fn from_row(r: &AnyRow) -> crate::Result<Agent> {
    let configurations: String = r.try_get("configurations")?;
    let configurations = match serde_json::from_str(&configurations) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(sqlx::Error::Decode(
                format!("agent configurations are not a JSON object: {configurations}").into(),
            )
            .into());
        }
    };
    Ok(Agent {
        id: r.try_get("id")?,
        agent_type: r.try_get("agent_type")?,
        binary: r.try_get("binary")?,
        topic: r.try_get("topic")?,
        host: r.try_get("host")?,
        admin_state_up: r.try_get::<i64, _>("admin_state_up")? != 0,
        description: r.try_get("description")?,
        availability_zone: r.try_get("availability_zone")?,
        configurations,
        resources_synced: r
            .try_get::<Option<i64>, _>("resources_synced")?
            .map(|v| v != 0),
        created_at: parse_time(&r.try_get::<String, _>("created_at")?)?,
        started_at: parse_time(&r.try_get::<String, _>("started_at")?)?,
        heartbeat_at: parse_time(&r.try_get::<String, _>("heartbeat_at")?)?,
    })
}

pub async fn list(pool: &AnyPool) -> crate::Result<Vec<Agent>> {
    sqlx::query(concat!("SELECT ", columns!(), " FROM agents"))
        .fetch_all(pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

pub async fn get(pool: &AnyPool, id: &str) -> crate::Result<Option<Agent>> {
    sqlx::query(concat!("SELECT ", columns!(), " FROM agents WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// The same, inside a write transaction.
pub async fn get_for_update(
    tx: &mut Transaction<'_, Any>,
    id: &str,
) -> crate::Result<Option<Agent>> {
    sqlx::query(concat!("SELECT ", columns!(), " FROM agents WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// The agent of one type on one host (the key reports come with).
pub async fn find(pool: &AnyPool, agent_type: &str, host: &str) -> crate::Result<Option<Agent>> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM agents WHERE agent_type = $1 AND host = $2"
    ))
    .bind(agent_type)
    .bind(host)
    .fetch_optional(pool)
    .await?
    .map(|r| from_row(&r))
    .transpose()
}

/// The agents of hosts other than `host` that report `tunneling_ip` as their tunnel endpoint
/// (dead ones included).
pub async fn with_tunnel_endpoint(
    pool: &AnyPool,
    tunneling_ip: &str,
    host: &str,
) -> crate::Result<Vec<Agent>> {
    // The configurations are stored as compact JSON: the pattern narrows, the parsed value
    // decides.
    let pattern = format!("%\"tunneling_ip\":\"{tunneling_ip}\"%");
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM agents WHERE host <> $1 AND configurations LIKE $2"
    ))
    .bind(host)
    .bind(pattern)
    .fetch_all(pool)
    .await?;
    let mut agents = Vec::new();
    for row in &rows {
        let agent = from_row(row)?;
        if agent
            .configurations
            .get("tunneling_ip")
            .and_then(Value::as_str)
            == Some(tunneling_ip)
        {
            agents.push(agent);
        }
    }
    Ok(agents)
}

/// Every agent of one type (e.g. every `DHCP agent`), dead ones included.
pub async fn of_type<'e, E: sqlx::Executor<'e, Database = Any>>(
    e: E,
    agent_type: &str,
) -> crate::Result<Vec<Agent>> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM agents WHERE agent_type = $1 ORDER BY host"
    ))
    .bind(agent_type)
    .fetch_all(e)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Every agent registered on `host`, of any type, dead ones included: what port binding hands
/// the mechanism drivers (through [`Agent::to_binding`]). Heartbeats reach the database in
/// batches, so `heartbeat_at` may lag the last report by about a second.
pub async fn on_host<'e, E: sqlx::Executor<'e, Database = Any>>(
    e: E,
    host: &str,
) -> crate::Result<Vec<Agent>> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM agents WHERE host = $1 ORDER BY agent_type"
    ))
    .bind(host)
    .fetch_all(e)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// What inserting a new agent came to.
#[derive(Debug)]
pub enum Inserted {
    Created,
    /// Another request (or server) registered the same (agent_type, host) first.
    Exists(Box<Agent>),
}

/// Registers a new agent; a concurrent registration of the same key is not an error.
pub async fn insert(pool: &AnyPool, a: &Agent) -> crate::Result<Inserted> {
    let done = sqlx::query(concat!(
        "INSERT INTO agents (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&a.id)
    .bind(&a.agent_type)
    .bind(&a.binary)
    .bind(&a.topic)
    .bind(&a.host)
    .bind(i64::from(a.admin_state_up))
    .bind(&a.description)
    .bind(&a.availability_zone)
    .bind(Value::Object(a.configurations.clone()).to_string())
    .bind(a.resources_synced.map(i64::from))
    .bind(stored_time(a.created_at))
    .bind(stored_time(a.started_at))
    .bind(stored_time(a.heartbeat_at))
    .execute(pool)
    .await
    .map_err(crate::Error::from);
    match done {
        Ok(_) => Ok(Inserted::Created),
        Err(e) if e.is_unique_violation() => match find(pool, &a.agent_type, &a.host).await? {
            Some(existing) => Ok(Inserted::Exists(Box::new(existing))),
            // Deleted again in between: report the original conflict.
            None => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// The attributes an administrator may change.
pub async fn update_admin(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    admin_state_up: bool,
    description: Option<&str>,
) -> crate::Result<()> {
    sqlx::query("UPDATE agents SET admin_state_up = $2, description = $3 WHERE id = $1")
        .bind(id)
        .bind(i64::from(admin_state_up))
        .bind(description)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn delete(tx: &mut Transaction<'_, Any>, id: &str) -> crate::Result<bool> {
    let done = sqlx::query("DELETE FROM agents WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The reported attributes that change rarely, written only when they did.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    pub binary: String,
    pub topic: String,
    pub availability_zone: Option<String>,
    pub configurations: Map<String, Value>,
    pub resources_synced: Option<bool>,
}

/// One agent's buffered heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatWrite {
    pub id: String,
    pub heartbeat_at: DateTime<Utc>,
    /// Set when the agent (re)started since the last write.
    pub started_at: Option<DateTime<Utc>>,
    /// Set when the reported attributes changed since the last write.
    pub reported: Option<Reported>,
}

/// Writes a batch of heartbeats in the caller's transaction and returns the ids whose row is
/// gone (deleted through the API meanwhile). A heartbeat never moves backwards, so servers
/// sharing the database may flush in any order. An agent whose tunnel endpoint changed has
/// the networks its host holds bound ports on marked in the feed: their peers hear of it.
pub async fn write_heartbeats(
    tx: &mut Transaction<'_, Any>,
    batch: &[HeartbeatWrite],
) -> crate::Result<Vec<String>> {
    let mut missing = Vec::new();
    let mut moved: Vec<String> = Vec::new();
    for w in batch {
        let heartbeat = stored_time(w.heartbeat_at);
        let done = sqlx::query(
            "UPDATE agents SET heartbeat_at = CASE WHEN heartbeat_at < $2 THEN $2 ELSE heartbeat_at END \
             WHERE id = $1",
        )
        .bind(&w.id)
        .bind(&heartbeat)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            missing.push(w.id.clone());
            continue;
        }
        if let Some(started) = w.started_at {
            sqlx::query("UPDATE agents SET started_at = $2 WHERE id = $1")
                .bind(&w.id)
                .bind(stored_time(started))
                .execute(&mut **tx)
                .await?;
        }
        if let Some(r) = &w.reported {
            let (host, before): (String, String) =
                sqlx::query_as("SELECT host, configurations FROM agents WHERE id = $1")
                    .bind(&w.id)
                    .fetch_one(&mut **tx)
                    .await?;
            let before: Value = serde_json::from_str(&before).unwrap_or_default();
            if before.get("tunneling_ip") != r.configurations.get("tunneling_ip") {
                moved.push(host);
            }
            sqlx::query(
                "UPDATE agents SET \"binary\" = $2, topic = $3, availability_zone = $4, \
                 configurations = $5, resources_synced = $6 WHERE id = $1",
            )
            .bind(&w.id)
            .bind(&r.binary)
            .bind(&r.topic)
            .bind(&r.availability_zone)
            .bind(Value::Object(r.configurations.clone()).to_string())
            .bind(r.resources_synced.map(i64::from))
            .execute(&mut **tx)
            .await?;
        }
    }
    if !moved.is_empty() {
        let mut feed = crate::feed::FeedEntries::default();
        for host in &moved {
            for network in crate::l2_peers::networks_bound_on(tx, host).await? {
                feed.add_network(&network);
            }
        }
        feed.write(tx).await?;
    }
    Ok(missing)
}
