//! `--auth keystone`: the caller's `X-Auth-Token` is validated by Keystone v3
//! (`GET /v3/auth/tokens`), as keystonemiddleware's `auth_token` does for Neutron.
//!
//! The token validates itself (`X-Auth-Token` and `X-Subject-Token` both the caller's token:
//! Keystone's default policy lets a user validate their own token), so the server needs no
//! service credentials. Valid tokens are cached until they expire, at most five minutes (the
//! `token_cache_time` of keystonemiddleware, which bounds how long a revoked token keeps
//! working); rejected tokens are cached briefly so a client retrying a bad token cannot make
//! every request a Keystone round trip. Cache keys are SHA-256 digests, never tokens.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::auth::RequestContext;

/// How long a valid token is trusted without asking Keystone again.
pub const VALID_CACHE_TIME: Duration = Duration::from_secs(300);
/// How long a rejected token is rejected without asking Keystone again.
pub const INVALID_CACHE_TIME: Duration = Duration::from_secs(10);
/// Past this many cached tokens, expired entries are dropped (and, if that is not enough, all).
const MAX_CACHED: usize = 50_000;
/// Validations in flight at once: a flood of distinct bad tokens costs Keystone at most this
/// many concurrent calls from us, and the rest wait (or, past [`VALIDATION_QUEUE_TIME`], 503).
pub const MAX_CONCURRENT_VALIDATIONS: usize = 16;
/// How long a request waits for a validation slot before it is answered 503.
pub const VALIDATION_QUEUE_TIME: Duration = Duration::from_secs(2);

/// Why a request is not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No token, or Keystone rejected it (or it is not scoped to a project): 401.
    Unauthorized,
    /// Keystone could not be asked: 503. Not cached.
    Unavailable(String),
}

#[derive(Debug, Clone)]
enum Cached {
    Valid {
        context: RequestContext,
        until: Instant,
    },
    Invalid {
        until: Instant,
    },
}

pub struct Keystone {
    /// `scheme://host:port[/prefix]`, without a trailing `/v3`.
    base: String,
    client: reqwest::Client,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    validations: tokio::sync::Semaphore,
    /// Set when Keystone could not be asked: while it is, one request at a time asks (the
    /// probe that sees it back) and the others answer 503 at once instead of each waiting
    /// for the client's timeout (10 s with a Keystone that accepts and never answers).
    down: Mutex<Option<String>>,
    probing: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Keystone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystone")
            .field("base", &self.base)
            .finish()
    }
}

impl Keystone {
    /// `url` is Keystone's endpoint, with or without the `/v3` suffix.
    pub fn new(url: &str) -> anyhow::Result<Keystone> {
        let base = url.trim_end_matches('/');
        let base = base.strip_suffix("/v3").unwrap_or(base).to_string();
        anyhow::ensure!(
            base.starts_with("http://") || base.starts_with("https://"),
            "--keystone-url must be an http:// or https:// URL, not {url:?}"
        );
        // reqwest is built without a TLS provider of its own; ring is ours. Installing twice
        // (a second server in one process) is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the Keystone HTTP client")?;
        Ok(Keystone {
            base,
            client,
            cache: Mutex::new(HashMap::new()),
            validations: tokio::sync::Semaphore::new(MAX_CONCURRENT_VALIDATIONS),
            down: Mutex::new(None),
            probing: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The `WWW-Authenticate` value of a 401, as keystonemiddleware sends it.
    pub fn www_authenticate(&self) -> String {
        format!("Keystone uri=\"{}\"", self.base)
    }

    /// Who the token's holder is: their project and role names.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<RequestContext, AuthFailure> {
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(AuthFailure::Unauthorized);
        };
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.cached(&key) {
            return hit;
        }
        let (outcome, until) = match self.guarded_validate(token).await {
            Ok(Some((context, expires_at))) => {
                let left = (expires_at - Utc::now()).to_std().unwrap_or_default();
                (Ok(context), Instant::now() + left.min(VALID_CACHE_TIME))
            }
            Ok(None) => (
                Err(AuthFailure::Unauthorized),
                Instant::now() + INVALID_CACHE_TIME,
            ),
            Err(reason) => {
                tracing::warn!(
                    "cannot validate a token with Keystone at {}: {reason}",
                    self.base
                );
                return Err(AuthFailure::Unavailable(reason));
            }
        };
        let entry = match &outcome {
            Ok(context) => Cached::Valid {
                context: context.clone(),
                until,
            },
            Err(_) => Cached::Invalid { until },
        };
        self.remember(key, entry);
        outcome
    }

    /// [`Keystone::validate`] within the bound on concurrent calls, and not at all while
    /// Keystone is known to be down (but for one probe at a time).
    async fn guarded_validate(
        &self,
        token: &str,
    ) -> Result<Option<(RequestContext, DateTime<Utc>)>, String> {
        use std::sync::atomic::Ordering;
        let down = self.down.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let _probe = match down {
            Some(reason) => {
                if self.probing.swap(true, Ordering::AcqRel) {
                    return Err(format!("Keystone is unreachable ({reason})"));
                }
                Some(ProbeGuard(&self.probing))
            }
            None => None,
        };
        let _slot = tokio::time::timeout(VALIDATION_QUEUE_TIME, self.validations.acquire())
            .await
            .map_err(|_| "too many token validations in flight".to_string())?
            .expect("the semaphore is never closed");
        let answer = self.validate(token).await;
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        match &answer {
            Ok(_) => {
                if down.take().is_some() {
                    tracing::warn!("Keystone at {} answers again", self.base);
                }
            }
            Err(reason) => *down = Some(reason.clone()),
        }
        answer
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Result<RequestContext, AuthFailure>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match cache.get(key)? {
            Cached::Valid { context, until } if *until > now => Some(Ok(context.clone())),
            Cached::Invalid { until } if *until > now => Some(Err(AuthFailure::Unauthorized)),
            _ => None,
        }
    }

    fn remember(&self, key: [u8; 32], entry: Cached) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            let now = Instant::now();
            cache.retain(|_, c| match c {
                Cached::Valid { until, .. } | Cached::Invalid { until } => *until > now,
            });
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(key, entry);
    }

    /// Asks Keystone. `Ok(None)`: the token is not (or no longer) valid for us.
    async fn validate(
        &self,
        token: &str,
    ) -> Result<Option<(RequestContext, DateTime<Utc>)>, String> {
        let response = self
            .client
            .get(format!("{}/v3/auth/tokens?nocatalog", self.base))
            .header("X-Auth-Token", token)
            .header("X-Subject-Token", token)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let status = response.status();
        match status {
            StatusCode::OK => {}
            // Unknown, expired or revoked (401/404), or not allowed to validate itself (403).
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                return Ok(None);
            }
            other => return Err(format!("Keystone answered {other}")),
        }
        let body = response.bytes().await.map_err(|e| error_chain(&e))?;
        let body: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("Keystone's token is not JSON: {e}"))?;
        Ok(context_of(&body["token"]))
    }
}

/// The one request asking a Keystone known to be down; the next may when it is dropped.
struct ProbeGuard<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// The request context of a validated token body; None when it is not scoped to a project
/// (unscoped, domain or system tokens name no project to act in) or already expired.
pub fn context_of(token: &Value) -> Option<(RequestContext, DateTime<Utc>)> {
    let project_id = token["project"]["id"].as_str()?.to_string();
    let expires_at = DateTime::parse_from_rfc3339(token["expires_at"].as_str()?)
        .ok()?
        .with_timezone(&Utc);
    if expires_at <= Utc::now() {
        return None;
    }
    let roles = token["roles"]
        .as_array()
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r["name"].as_str())
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default();
    let user_id = token["user"]["id"].as_str().unwrap_or_default().to_string();
    Some((
        RequestContext {
            project_id,
            user_id,
            roles,
        },
        expires_at,
    ))
}

/// reqwest's error and its causes ("error sending request: ... Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_project_token_gives_project_and_roles() {
        let token = json!({
            "expires_at": "2999-01-01T00:00:00.000000Z",
            "project": {"id": "p1", "name": "demo", "domain": {"id": "default"}},
            "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "Reader"}],
            "user": {"id": "u1"}
        });
        let (ctx, expires) = context_of(&token).unwrap();
        assert_eq!(ctx.project_id, "p1");
        assert_eq!(ctx.user_id, "u1");
        assert_eq!(ctx.roles, ["member", "reader"]);
        assert_eq!(expires.to_rfc3339(), "2999-01-01T00:00:00+00:00");
        let mut domain = token.clone();
        domain.as_object_mut().unwrap().remove("project");
        assert!(context_of(&domain).is_none(), "not scoped to a project");
        let mut expired = token;
        expired["expires_at"] = json!("2001-01-01T00:00:00Z");
        assert!(context_of(&expired).is_none());
    }

    #[test]
    fn the_url_may_name_v3_and_must_be_http() {
        let k = Keystone::new("http://127.0.0.1:5000/v3/").unwrap();
        assert_eq!(
            k.www_authenticate(),
            "Keystone uri=\"http://127.0.0.1:5000\""
        );
        assert!(Keystone::new("127.0.0.1:5000").is_err());
    }

    #[tokio::test]
    async fn no_token_is_unauthorized_and_an_unreachable_keystone_unavailable() {
        // A port nothing listens on: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let k = Keystone::new(&format!("http://127.0.0.1:{port}")).unwrap();
        assert_eq!(k.authenticate(None).await, Err(AuthFailure::Unauthorized));
        assert_eq!(
            k.authenticate(Some("  ")).await,
            Err(AuthFailure::Unauthorized)
        );
        match k.authenticate(Some("some-token")).await {
            Err(AuthFailure::Unavailable(reason)) => {
                assert!(reason.contains("onnect"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // Not cached: the next request asks again.
        assert!(k.cache.lock().unwrap().is_empty());
    }
}
