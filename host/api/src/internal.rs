//! The internal API agents talk to: `POST /internal/agents/report`, Neutron's `report_state`.
//!
//! It is not under `/v2.0` and not an extension: agents authenticate with a secret in
//! `X-Neutrino-Agent-Token`, never with user credentials, and never reach the database
//! themselves. Each host has its own credential (`neutrino agent enroll HOST`, kept in the store
//! as a SHA-256 digest, revoked by `neutrino agent revoke HOST`): it is good for that host's
//! feed, statuses and reports only. A shared token good for every host exists only when the
//! server was started with `--shared-agent-token` (the `--agent-token-file`, by default
//! `<data-dir>/agent-token`).

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
use neutrino_store::Store;
use neutrino_store::agent_credentials;
use neutrino_store::agents::Reported;

pub use neutrino_proto::TOKEN_HEADER;

/// The agents' shared secret (`serve --shared-agent-token`). Only its SHA-256 is kept, and presented tokens are compared by
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
                let token = new_token()?;
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

/// Who a request of the internal API speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentIdentity {
    /// The shared token of `serve --shared-agent-token`: every host.
    AnyHost,
    /// A host's own credential.
    Host(String),
}

impl AgentIdentity {
    /// Ok when this credential may act for `host`; 403 otherwise, naming no other host.
    pub fn may_act_for(&self, host: &str) -> ApiResult<()> {
        match self {
            AgentIdentity::AnyHost => Ok(()),
            AgentIdentity::Host(h) if h == host => Ok(()),
            AgentIdentity::Host(_) => Err(NeutronError::new(
                StatusCode::FORBIDDEN,
                "HTTPForbidden",
                "This agent credential is not valid for the requested host.",
            )),
        }
    }
}

/// The hex SHA-256 of a token as the store keeps it (surrounding blanks ignored).
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// A new random token: 32 bytes, hex.
pub fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no random source for the agent token: {e}"))?;
    Ok(hex::encode(bytes))
}

/// Gives `host` a new credential and answers its token (only its digest is stored). The host's
/// previous token, if any, stops working.
pub async fn enroll(store: &Store, host: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !host.trim().is_empty() && host.len() <= 255 && host == host.trim(),
        "a host name is 1 to 255 characters without surrounding blanks"
    );
    let token = new_token()?;
    agent_credentials::enroll(&store.write, host, &token_digest(&token))
        .await
        .with_context(|| format!("enrolling host {host}"))?;
    Ok(token)
}

/// Removes `host`'s credential; answers whether it had one.
pub async fn revoke(store: &Store, host: &str) -> anyhow::Result<bool> {
    agent_credentials::revoke(&store.write, host)
        .await
        .with_context(|| format!("revoking host {host}"))
}

fn unauthorized() -> NeutronError {
    NeutronError::new(
        StatusCode::UNAUTHORIZED,
        "HTTPUnauthorized",
        "A valid X-Neutrino-Agent-Token header is required on the agents' internal API.",
    )
}

/// Every internal endpoint starts with this: the request must carry a host's credential, or the
/// shared token when the server accepts one.
pub async fn authenticate_agent(state: &AppState, headers: &HeaderMap) -> ApiResult<AgentIdentity> {
    let Some(presented) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(unauthorized());
    };
    if state
        .shared_agent_token
        .as_ref()
        .is_some_and(|t| t.matches(presented))
    {
        return Ok(AgentIdentity::AnyHost);
    }
    match agent_credentials::host_of(&state.store.read, &token_digest(presented)).await? {
        Some(host) => Ok(AgentIdentity::Host(host)),
        None => Err(unauthorized()),
    }
}

/// [`authenticate_agent`], then the credential must be good for `host`.
pub async fn authorize_agent(state: &AppState, headers: &HeaderMap, host: &str) -> ApiResult<()> {
    authenticate_agent(state, headers).await?.may_act_for(host)
}

/// `POST /internal/agents/report` with `{"agent": {...}}` -> `{"result": "new"|"alive"|"revived"}`.
pub async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let identity = authenticate_agent(&state, &headers).await?;
    let body = body::update_body(&bytes, "agent")?;
    let report = parse_report(&body)?;
    identity.may_act_for(&report.host)?;
    if state.heartbeats.names_new_endpoint(&report) {
        endpoint_unclaimed(&state, &report).await?;
    }
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
    // An L3 agent that appears, revives or restarts may take the routers waiting for one.
    if report.agent_type == neutrino_core::l3_scheduling::L3_AGENT_TYPE
        && (outcome != Outcome::Alive || report.start_flag)
        && let Err(e) = neutrino_core::l3_scheduling::schedule_waiting(&state).await
    {
        tracing::warn!(
            "scheduling routers to the L3 agent of {}: {}",
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
    // And the router ports that failed without it.
    if report.agent_type != neutrino_core::l3_scheduling::L3_AGENT_TYPE
        && report.agent_type != dhcp_scheduling::DHCP_AGENT_TYPE
        && outcome != Outcome::Alive
        && let Err(e) = neutrino_core::l3_scheduling::rebind_failed(&state, &report.host).await
    {
        tracing::warn!(
            "binding the router ports of {} again: {}",
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
    check_tunneling_ip(configurations.get("tunneling_ip"))?;
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

/// A host may not take the tunnel endpoint another host's alive agent reports: its peers would
/// send that host's tenants' traffic to it. Loopback addresses are every host's own (an
/// all-in-one server and its agents).
async fn endpoint_unclaimed(state: &AppState, report: &Report) -> ApiResult<()> {
    let Some(ip) = report
        .reported
        .configurations
        .get("tunneling_ip")
        .and_then(Value::as_str)
        .filter(|ip| {
            ip.parse::<std::net::IpAddr>()
                .is_ok_and(|a| !a.is_loopback())
        })
    else {
        return Ok(());
    };
    let mut claimants =
        neutrino_store::agents::with_tunnel_endpoint(&state.store.read, ip, &report.host).await?;
    state.heartbeats.overlay(&mut claimants);
    let now = std::time::SystemTime::now();
    match claimants
        .iter()
        .find(|a| a.alive(now, state.heartbeats.down_time()))
    {
        Some(other) => Err(NeutronError::conflict(
            "TunnelIpInUse",
            format!(
                "tunneling_ip {ip} is the tunnel endpoint of host {}.",
                other.host
            ),
        )),
        None => Ok(()),
    }
}

/// A reported tunnel endpoint is a unicast address (or none): its peers send their tenants'
/// flooded traffic there, so a host may not point them at a multicast or broadcast group or
/// at nothing.
fn check_tunneling_ip(reported: Option<&Value>) -> ApiResult<()> {
    let ip = match reported {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(s)) if s.is_empty() => return Ok(()),
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for tunneling_ip. Reason: '{other}' is not a valid IP address."
            )));
        }
    };
    let unicast = match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast())
        }
        Ok(std::net::IpAddr::V6(v6)) => !(v6.is_unspecified() || v6.is_multicast()),
        Err(_) => {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for tunneling_ip. Reason: '{ip}' is not a valid IP address."
            )));
        }
    };
    if unicast {
        Ok(())
    } else {
        Err(NeutronError::bad_request(format!(
            "Invalid input for tunneling_ip. Reason: '{ip}' is not a unicast IP address."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tunnel_endpoint_is_a_unicast_address() {
        for good in ["192.0.2.10", "127.0.0.1", "fd00::1", ""] {
            assert!(check_tunneling_ip(Some(&json!(good))).is_ok(), "{good}");
        }
        assert!(check_tunneling_ip(None).is_ok());
        assert!(check_tunneling_ip(Some(&Value::Null)).is_ok());
        for bad in [
            json!("224.0.0.1"),
            json!("255.255.255.255"),
            json!("0.0.0.0"),
            json!("::"),
            json!("ff02::1"),
            json!("10.0.0.300"),
            json!("host.example"),
            json!(["192.0.2.1"]),
            json!(7),
        ] {
            let e = check_tunneling_ip(Some(&bad)).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{bad}");
            assert!(
                e.message.starts_with("Invalid input for tunneling_ip"),
                "{bad}: {}",
                e.message
            );
        }
    }

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
