//! The agent's side of the internal API: heartbeats, the change feed, status reports. The
//! agent knows the server only as HTTP and its token; it never reaches the database.

use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::protocol::{
    FloatingIpStatusReport, HostChanges, InstanceStatusReport, PortStatusReport,
};
use neutrino_proto::TOKEN_HEADER;

/// How long the server may hold a long poll; the client waits a little longer.
pub const POLL_SECONDS: u64 = 30;

#[derive(Clone)]
pub struct ServerClient {
    http: reqwest::Client,
    base: String,
    host: String,
    token: String,
}

impl ServerClient {
    pub fn new(server: &str, host: &str, token: &str) -> anyhow::Result<ServerClient> {
        // reqwest is built without a TLS provider of its own; ring is ours (as for Keystone).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(POLL_SECONDS + 15))
            .build()
            .context("HTTP client")?;
        Ok(ServerClient {
            http,
            base: server.trim_end_matches('/').to_string(),
            host: host.to_string(),
            token: token.trim().to_string(),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Neutron's `report_state`: the answer is `new`, `alive` or `revived`.
    pub async fn report(&self, agent: &Value) -> anyhow::Result<String> {
        let answer: Value = self
            .post("/internal/agents/report", &json!({ "agent": agent }))
            .await?;
        Ok(answer["result"].as_str().unwrap_or_default().to_string())
    }

    /// Long-polls the host's change feed for what changed after `after` (0: everything).
    pub async fn changes(&self, after: i64) -> anyhow::Result<HostChanges> {
        let url = format!(
            "{}/internal/hosts/{}/changes?after={after}&timeout={POLL_SECONDS}",
            self.base, self.host
        );
        let response = self
            .http
            .get(&url)
            .header(TOKEN_HEADER, &self.token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        decode(response).await
    }

    pub async fn port_status(&self, report: &PortStatusReport) -> anyhow::Result<()> {
        let path = format!("/internal/hosts/{}/ports/status", self.host);
        self.post::<Value>(&path, report).await.map(drop)
    }

    pub async fn instance_status(&self, report: &InstanceStatusReport) -> anyhow::Result<()> {
        let path = format!("/internal/hosts/{}/instances/status", self.host);
        self.post::<Value>(&path, report).await.map(drop)
    }

    pub async fn floating_ip_status(&self, report: &FloatingIpStatusReport) -> anyhow::Result<()> {
        let path = format!("/internal/hosts/{}/floatingips/status", self.host);
        self.post::<Value>(&path, report).await.map(drop)
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .post(&url)
            .header(TOKEN_HEADER, &self.token)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body)?)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        decode(response).await
    }
}

/// The body as `T` (an empty body as JSON `null`), or the server's error with its text.
async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> anyhow::Result<T> {
    let status = response.status();
    let url = response.url().to_string();
    let bytes = response.bytes().await?;
    anyhow::ensure!(
        status.is_success(),
        "{url}: {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
    serde_json::from_slice(bytes).with_context(|| format!("{url}: malformed answer"))
}
