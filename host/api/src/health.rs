//! `GET /healthz` (outside `/v2.0`, no authentication, as a load balancer or an orchestrator's
//! probe asks): whether the database answers and, when `serve` runs the local agent beside
//! the API, what that agent is doing. 200 when everything answers, 503 otherwise, with the
//! details in the body either way.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use crate::AppState;
use neutrino_store as store;

/// How long the health check waits for a database connection and its ping.
pub const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the embedded agent is doing, as its supervisor (`neutrino serve`) reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AgentState {
    /// Started (attempt `attempt`), its first reports not yet taken.
    Starting { attempt: u32 },
    /// Its reports are taken: ports and instances of this host are served.
    Up { attempt: u32, since: String },
    /// It stopped or could not start; it is tried again in `retry_in_seconds`.
    Retrying {
        attempt: u32,
        error: String,
        retry_in_seconds: u64,
    },
    /// It does not run here, and will not (not root).
    NotRunning { reason: String },
}

/// The embedded agent's host and state, shared between its supervisor and the API.
#[derive(Debug)]
pub struct EmbeddedAgentHealth {
    pub host: String,
    state: Mutex<AgentState>,
}

impl EmbeddedAgentHealth {
    pub fn new(host: impl Into<String>, state: AgentState) -> Arc<EmbeddedAgentHealth> {
        Arc::new(EmbeddedAgentHealth {
            host: host.into(),
            state: Mutex::new(state),
        })
    }

    pub fn set(&self, state: AgentState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    pub fn get(&self) -> AgentState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What `serve` runs beside the API that `/healthz` reports on (set once, before serving).
#[derive(Debug, Default)]
pub struct ServerHealth {
    agent: Mutex<Option<Arc<EmbeddedAgentHealth>>>,
}

impl ServerHealth {
    pub fn set_embedded_agent(&self, agent: Arc<EmbeddedAgentHealth>) {
        *self.agent.lock().unwrap_or_else(|e| e.into_inner()) = Some(agent);
    }

    pub fn embedded_agent(&self) -> Option<Arc<EmbeddedAgentHealth>> {
        self.agent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `GET /healthz`.
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = check_database(&state.store).await;
    let mut healthy = database.is_ok();
    let mut body = json!({
        "database": match &database {
            Ok(()) => json!({"state": "up", "backend": format!("{:?}", state.store.backend)}),
            Err(why) => json!({
                "state": "down",
                "backend": format!("{:?}", state.store.backend),
                "error": why,
            }),
        },
    });
    if let Some(agent) = state.health.embedded_agent() {
        let agent_state = agent.get();
        healthy &= matches!(
            agent_state,
            AgentState::Up { .. } | AgentState::NotRunning { .. }
        );
        let mut shown = serde_json::to_value(&agent_state).unwrap_or(Value::Null);
        shown["host"] = json!(agent.host);
        body["embedded_agent"] = shown;
    }
    body["status"] = json!(if healthy { "ok" } else { "unavailable" });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// A connection of the read pool, pinged.
async fn check_database(store: &store::Store) -> Result<(), String> {
    let check = async {
        let mut conn = store.read_conn().await.map_err(|e| e.to_string())?;
        if store::usable(&mut conn).await {
            Ok(())
        } else {
            Err("the connection does not answer".to_string())
        }
    };
    tokio::time::timeout(DATABASE_CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer within {}s",
                DATABASE_CHECK_TIMEOUT.as_secs()
            ))
        })
}
