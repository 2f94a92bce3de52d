//! The Networking API v2.0 over HTTP (axum): one module per resource, plus errors, bodies,
//! query features and auth. Data flows API -> store; nothing here writes SQL.

pub mod agents;
pub mod auth;
pub mod body;
pub mod discovery;
pub mod error;
pub mod internal;
pub mod keystone;
pub mod networks;
pub mod query;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::middleware;
use axum::routing::{MethodRouter, get, post};

use crate::heartbeat::Heartbeats;
use crate::store::Store;
use error::NeutronError;

/// Settings of `neutrino serve` that the API uses.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Project of requests that carry no identity headers (noauth).
    pub default_project: String,
    /// Type of networks created without provider attributes.
    pub tenant_network_type: String,
    /// VNIs handed to tenant VXLAN networks.
    pub vni_range: (i64, i64),
    /// MTU of the physical network; VXLAN networks get 50 less.
    pub global_physnet_mtu: i64,
    /// Neutron's `agent_down_time`: an agent whose last heartbeat is older is dead.
    pub agent_down_time: Duration,
    /// How often buffered agent heartbeats are written to the database.
    pub heartbeat_flush_interval: Duration,
    pub auth: auth::AuthStrategy,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            default_project: "admin".into(),
            tenant_network_type: "vxlan".into(),
            vni_range: (1, 65535),
            global_physnet_mtu: 1500,
            agent_down_time: crate::binding::DEFAULT_AGENT_DOWN_TIME,
            heartbeat_flush_interval: Duration::from_secs(1),
            auth: auth::AuthStrategy::NoAuth,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<ApiConfig>,
    pub heartbeats: Arc<Heartbeats>,
    /// The secret agents present to `/internal/agents/report`.
    pub agent_token: Arc<internal::AgentToken>,
    /// Set with `--auth keystone`.
    pub keystone: Option<Arc<keystone::Keystone>>,
}

/// Every route; anything else is a Neutron-shaped 404 or 405.
pub fn router(state: AppState) -> Router {
    fn neutron_405(m: MethodRouter<AppState>) -> MethodRouter<AppState> {
        m.fallback(|| async { NeutronError::method_not_allowed() })
    }
    Router::new()
        .route("/", neutron_405(get(discovery::versions)))
        .route("/v2.0/", neutron_405(get(discovery::resources)))
        .route(
            "/v2.0/extensions",
            get(discovery::extensions).fallback(|| async { NeutronError::no_such_path() }),
        )
        .route(
            "/v2.0/extensions/{alias}",
            get(discovery::show_extension).fallback(|| async { NeutronError::no_such_path() }),
        )
        .route(
            "/v2.0/networks",
            get(networks::list)
                .post(networks::create)
                .put(networks::no_collection_action)
                .delete(networks::no_collection_action),
        )
        .route(
            "/v2.0/networks/{id}",
            neutron_405(
                get(networks::show)
                    .put(networks::update)
                    .delete(networks::delete),
            ),
        )
        .merge(agents::routes())
        .route(
            "/internal/agents/report",
            neutron_405(post(internal::report)),
        )
        .fallback(|| async { NeutronError::no_such_path() })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .with_state(state)
}

/// `scheme://host` of the request, for absolute links (honours `X-Forwarded-Proto`).
pub fn base_url(headers: &HeaderMap) -> String {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let proto = header("x-forwarded-proto").unwrap_or("http");
    let host = header("host").unwrap_or("127.0.0.1:9696");
    format!("{proto}://{host}")
}

/// Neutron accepts `/v2.0/networks/<id>.json`.
pub fn strip_json_suffix(id: &str) -> &str {
    id.strip_suffix(".json").unwrap_or(id)
}
