//! A minimal HTTP/1.1 client for the Networking API: one keep-alive connection, requests in
//! sequence. The benchmark gives each worker its own [`Connection`], so what it measures is the
//! server, not a client-side pool; the integration tests use it for raw requests.

use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Where the API is: `http://host:port` plus an optional path prefix (no TLS).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The `Host` header: what the URL said, so absolute links point back to it.
    pub authority: String,
    /// Path prefix without a trailing slash (usually empty).
    pub prefix: String,
}

impl Endpoint {
    /// Parses and resolves `http://host:port[/prefix]`.
    pub async fn parse(url: &str) -> anyhow::Result<Endpoint> {
        let uri: Uri = url.parse().with_context(|| format!("URL {url:?}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("{url}: only http:// URLs are supported");
        }
        let authority = uri
            .authority()
            .with_context(|| format!("{url}: no host"))?
            .clone();
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await
            .with_context(|| format!("resolve {}", authority.host()))?
            .next()
            .with_context(|| format!("{} has no address", authority.host()))?;
        Ok(Endpoint {
            addr,
            authority: authority.to_string(),
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    pub fn from_addr(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            authority: addr.to_string(),
            prefix: String::new(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}{}", self.authority, self.prefix)
    }
}

/// One answer: status and the raw body.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Response {
    /// The body as JSON (`null` for an empty body).
    pub fn json(&self) -> anyhow::Result<Value> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "HTTP {}: body is not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The JSON body of a response that must have `expected` status.
    pub fn expect(self, expected: StatusCode, what: &str) -> anyhow::Result<Value> {
        if self.status != expected {
            bail!(
                "{what}: expected HTTP {expected}, got {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            );
        }
        self.json()
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    endpoint: Endpoint,
}

impl Connection {
    pub async fn open(endpoint: &Endpoint) -> anyhow::Result<Connection> {
        let stream = tokio::net::TcpStream::connect(endpoint.addr)
            .await
            .with_context(|| format!("connect to {}", endpoint.url()))?;
        // Requests are small and written at once; Nagle would only add delay to each one.
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes; either way nothing waits
            // on it any more, so an error here has no one to go to.
            let _ = conn.await;
        });
        Ok(Connection {
            sender,
            endpoint: endpoint.clone(),
        })
    }

    /// Sends one request (`path` starts with `/`, e.g. `/v2.0/ports`) and reads the whole answer.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Response> {
        self.request_with(method, path, &[], body).await
    }

    /// [`Connection::request`] with extra headers.
    pub async fn request_with(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> anyhow::Result<Response> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.endpoint.prefix))
            .header(header::HOST, &self.endpoint.authority)
            .header(header::ACCEPT, "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let bytes = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(b)?)
            }
            None => Bytes::new(),
        };
        self.sender
            .ready()
            .await
            .context("the connection to the server closed")?;
        let resp = self
            .sender
            .send_request(req.body(Full::new(bytes))?)
            .await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Response { status, body })
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Response> {
        self.request(Method::GET, path, None).await
    }

    /// A GET whose body is handed to `chunk` as it arrives instead of being kept: for answers
    /// too large to hold, and to see when their first bytes come.
    pub async fn get_streamed(
        &mut self,
        path: &str,
        mut chunk: impl FnMut(&[u8]),
    ) -> anyhow::Result<Streamed> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(format!("{}{path}", self.endpoint.prefix))
            .header(header::HOST, &self.endpoint.authority)
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))?;
        self.sender
            .ready()
            .await
            .context("the connection to the server closed")?;
        let start = std::time::Instant::now();
        let resp = self.sender.send_request(req).await?;
        let headers = start.elapsed();
        let status = resp.status();
        let mut body = resp.into_body();
        let mut first_byte = None;
        let mut bytes = 0;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data()
                && !data.is_empty()
            {
                first_byte.get_or_insert_with(|| start.elapsed());
                bytes += data.len();
                chunk(&data);
            }
        }
        Ok(Streamed {
            status,
            headers,
            first_byte,
            total: start.elapsed(),
            bytes,
        })
    }
}

/// What [`Connection::get_streamed`] saw: the status, when the headers and the first body
/// bytes came, when the last did, and how many bytes there were.
#[derive(Debug)]
pub struct Streamed {
    pub status: StatusCode,
    pub headers: std::time::Duration,
    pub first_byte: Option<std::time::Duration>,
    pub total: std::time::Duration,
    pub bytes: usize,
}

/// Registers (or refreshes) an agent the way a node agent does: a `report_state` to the internal
/// API with the host's agent token. Returns the server's verdict (`new`, `alive`, `revived`).
pub async fn report_agent(
    conn: &mut Connection,
    token: &str,
    agent: &Value,
) -> anyhow::Result<String> {
    let r = conn
        .request_with(
            Method::POST,
            "/internal/agents/report",
            &[("x-neutrino-agent-token", token)],
            Some(&serde_json::json!({ "agent": agent })),
        )
        .await?
        .expect(StatusCode::OK, "POST /internal/agents/report")?;
    r["result"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("agent report answered {r}"))
}

/// An Open vSwitch agent's report for `host`, configured to bind VXLAN and `physnet1` (VLAN and
/// flat) ports with hybrid plug, as neutron-openvswitch-agent reports itself.
pub fn ovs_agent(host: &str) -> Value {
    serde_json::json!({
        "agent_type": "Open vSwitch agent",
        "binary": "neutron-openvswitch-agent",
        "host": host,
        "topic": "N/A",
        "start_flag": true,
        "configurations": {
            "bridge_mappings": {"physnet1": "br-phys1"},
            "integration_bridge": "br-int",
            "tunnel_types": ["vxlan"],
            "tunneling_ip": "192.0.2.10",
            "datapath_type": "netdev",
            "ovs_hybrid_plug": true,
            // As Neutrino's agent reports it: its ports are filtered (`port_filter`).
            "firewall_driver": "iptables_hybrid",
        },
    })
}

/// Whether the server routes `GET /v2.0/<collection>`: a server without the resource answers
/// 404 `HTTPNotFound` (no such path), one with it 200 (or 403 for a caller not allowed to list).
pub async fn serves(conn: &mut Connection, collection: &str) -> anyhow::Result<bool> {
    let r = conn.get(&format!("/v2.0/{collection}?limit=1")).await?;
    if r.status == StatusCode::NOT_FOUND {
        let body = r.json().unwrap_or(Value::Null);
        if body["NeutronError"]["type"] == "HTTPNotFound" {
            return Ok(false);
        }
        bail!("GET /v2.0/{collection}: unexpected 404: {body}");
    }
    Ok(true)
}

/// Lifts the caller's network, subnet and port quotas (Neutron's defaults: 100, 100, 500),
/// which a benchmark making thousands of ports would hit: `GET /v2.0/quotas/project` names the
/// caller's project, then `PUT /v2.0/quotas/{project}`. A server without quotas, or a caller
/// that may not change them, is left as it is (a note says so).
pub async fn lift_quotas(conn: &mut Connection) -> anyhow::Result<Option<String>> {
    let r = conn.get("/v2.0/quotas/project").await?;
    if r.status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let body = r.expect(StatusCode::OK, "GET /v2.0/quotas/project")?;
    let Some(project) = body["project"]["project_id"].as_str() else {
        bail!("GET /v2.0/quotas/project: no project_id in {body}");
    };
    let unlimited = serde_json::json!({"quota": {"network": -1, "subnet": -1, "port": -1}});
    let r = conn
        .request(
            Method::PUT,
            &format!("/v2.0/quotas/{project}"),
            Some(&unlimited),
        )
        .await?;
    Ok(match r.status {
        StatusCode::OK => None,
        other => Some(format!(
            "could not lift the quotas of project {project} (HTTP {other}): creates may be refused with OverQuota"
        )),
    })
}
