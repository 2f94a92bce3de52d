//! The internal API agents talk to: `POST /internal/agents/report`, Neutron's `report_state`.
//!
//! It is not under `/v2.0` and not an extension: agents authenticate with a shared secret in
//! `X-Neutrino-Agent-Token` (the `--agent-token-file`, by default `<data-dir>/agent-token`),
//! never with user credentials, and never reach the database themselves.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::AppState;
use super::body;
use super::error::{ApiResult, NeutronError};
use crate::heartbeat::{Outcome, Report};
use neutrino_core::dhcp_scheduling;
use neutrino_store::agents::Reported;

pub use neutrino_proto::TOKEN_HEADER;

/// The agents' shared secret. Only its SHA-256 is kept, and presented tokens are compared by
/// digest, so the comparison's timing says nothing about the secret.
#[derive(Clone)]
pub struct AgentToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for AgentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentToken(<secret>)")
    }
}

impl AgentToken {
    pub fn new(token: &str) -> AgentToken {
        AgentToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        presented == self.digest
    }

    /// Reads the token file, or creates it (mode 0600) with a new random token. Servers sharing
    /// a directory may race to create it: the loser reads the winner's.
    pub fn load_or_create(path: &Path) -> anyhow::Result<AgentToken> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_file_text(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes)
                    .map_err(|e| anyhow::anyhow!("no random source for the agent token: {e}"))?;
                let token = hex::encode(bytes);
                let created = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path);
                match created {
                    Ok(mut file) => {
                        file.write_all(format!("{token}\n").as_bytes())
                            .with_context(|| format!("writing {}", path.display()))?;
                        tracing::info!("created the agent token file {}", path.display());
                        Ok(AgentToken::new(&token))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let text = std::fs::read_to_string(path)
                            .with_context(|| format!("reading {}", path.display()))?;
                        Self::from_file_text(path, &text)
                    }
                    Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
                }
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn from_file_text(path: &Path, text: &str) -> anyhow::Result<AgentToken> {
        let token = text.trim();
        anyhow::ensure!(
            !token.is_empty(),
            "the agent token file {} is empty",
            path.display()
        );
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                "the agent token file {} is readable by others than its owner",
                path.display()
            );
        }
        Ok(AgentToken::new(token))
    }
}

/// Every internal endpoint starts with this: the request must carry the agents' token.
pub fn authorize_agent(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let authorized = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| state.agent_token.matches(t));
    if authorized {
        Ok(())
    } else {
        Err(NeutronError::new(
            StatusCode::UNAUTHORIZED,
            "HTTPUnauthorized",
            "A valid X-Neutrino-Agent-Token header is required on the agents' internal API.",
        ))
    }
}

/// `POST /internal/agents/report` with `{"agent": {...}}` -> `{"result": "new"|"alive"|"revived"}`.
pub async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    authorize_agent(&state, &headers)?;
    let body = body::update_body(&bytes, "agent")?;
    let report = parse_report(&body)?;
    let outcome = state.heartbeats.report(&report).await?;
    // A DHCP agent that appears, revives or restarts may take the networks waiting for one.
    if report.agent_type == dhcp_scheduling::DHCP_AGENT_TYPE
        && (outcome != Outcome::Alive || report.start_flag)
        && let Err(e) = dhcp_scheduling::schedule_waiting(&state).await
    {
        tracing::warn!(
            "scheduling networks to the DHCP agent of {}: {}",
            report.host,
            e.message
        );
    }
    // An L2 agent that appears or revives may bind the DHCP ports that failed without it.
    if report.agent_type != dhcp_scheduling::DHCP_AGENT_TYPE
        && outcome != Outcome::Alive
        && let Err(e) = dhcp_scheduling::rebind_dhcp_ports(&state, &report.host).await
    {
        tracing::warn!(
            "binding the DHCP ports of {} again: {}",
            report.host,
            e.message
        );
    }
    Ok(Json(json!({"result": outcome.as_str()})))
}

/// The report's attributes. Keys the server does not use (`resource_versions`, the agent's own
/// timestamp, ...) are accepted and ignored, so agents may be newer than the server.
pub fn parse_report(b: &Map<String, Value>) -> ApiResult<Report> {
    let required = |key: &str| -> ApiResult<String> {
        match body::string(b, key, 255)? {
            Some(v) if !v.trim().is_empty() => Ok(v),
            Some(_) => Err(NeutronError::bad_request(format!(
                "Invalid input for {key}. Reason: '' is not a valid value."
            ))),
            None => Err(NeutronError::bad_request(format!(
                "Failed to parse request. Required attribute '{key}' not specified"
            ))),
        }
    };
    let agent_type = required("agent_type")?;
    let host = required("host")?;
    let configurations = match b.get("configurations") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for configurations. Reason: '{other}' is not a dictionary."
            )));
        }
    };
    let availability_zone = match b.get("availability_zone") {
        Some(Value::Null) => None,
        _ => body::string(b, "availability_zone", 255)?,
    };
    Ok(Report {
        agent_type,
        host,
        reported: Reported {
            binary: body::string(b, "binary", 255)?.unwrap_or_default(),
            topic: body::string(b, "topic", 255)?.unwrap_or_else(|| "N/A".into()),
            availability_zone,
            configurations,
            // Nothing here syncs resources elsewhere (placement), so there is nothing pending.
            resources_synced: Some(body::boolean(b, "resources_synced")?.unwrap_or(true)),
        },
        start_flag: body::boolean(b, "start_flag")?.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_is_created_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent-token");
        let created = AgentToken::load_or_create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64, "32 random bytes, hex");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(created.matches(text.trim()));
        assert!(created.matches(&text), "surrounding blanks are ignored");
        assert!(!created.matches("guess"));
        let reloaded = AgentToken::load_or_create(&path).unwrap();
        assert!(reloaded.matches(text.trim()));
        assert_eq!(format!("{reloaded:?}"), "AgentToken(<secret>)");
        std::fs::write(&path, "  \n").unwrap();
        assert!(AgentToken::load_or_create(&path).is_err());
    }
}
