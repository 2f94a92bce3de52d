//! The Networking API v2.0 over HTTP (axum): one module per resource, plus errors, bodies,
//! query features and auth. Data flows API -> store; nothing here writes SQL.

pub mod agents;
pub mod auth;
pub mod auto_allocated_topology;
pub mod body;
pub mod compute;
pub mod connections;
pub mod dhcp_agent_scheduler;
pub mod discovery;
pub mod error;
pub mod fair_share;
pub mod floating_ips;
pub mod health;
pub mod heartbeat;
pub mod host_feed;
pub mod internal;
pub mod keystone;
pub mod listing;
pub mod networks;
pub mod observe;
pub mod openapi;
pub mod port_filters;
pub mod ports;
pub mod query;
pub mod quotas;
pub mod routers;
pub mod security_group_rules;
pub mod security_groups;
pub mod server;
pub mod subnet_pools;
pub mod subnets;
pub mod tags;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::middleware;
use axum::routing::{MethodRouter, get, post};

use crate::heartbeat::Heartbeats;
use error::NeutronError;
use neutrino_core::Services;
use neutrino_runtime::plugins::registry::DriversConfig;
use neutrino_store::Store;

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
    /// Neutron's `dhcp_agents_per_network`: how many DHCP agents serve each network.
    pub dhcp_agents_per_network: usize,
    /// The mechanism drivers ports are bound with.
    pub drivers: DriversConfig,
    /// How often buffered agent heartbeats are written to the database.
    pub heartbeat_flush_interval: Duration,
    pub auth: auth::AuthStrategy,
    /// A server not ACTIVE this long after its boot goes to ERROR (Nova's
    /// `vif_plugging_timeout`, shorter: namespaces boot in well under a second).
    pub boot_timeout: Duration,
    /// Where ports' generated MACs come from (random; seeded in tests).
    pub mac_generator: neutrino_ipam::MacGenerator,
    /// Requests of one project worked on at once while other projects have requests in the
    /// server (see `fair_share`).
    pub requests_per_project: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            default_project: "admin".into(),
            tenant_network_type: "vxlan".into(),
            vni_range: (1, 65535),
            global_physnet_mtu: 1500,
            agent_down_time: neutrino_runtime::binding::DEFAULT_AGENT_DOWN_TIME,
            dhcp_agents_per_network: 1,
            drivers: DriversConfig::default(),
            heartbeat_flush_interval: Duration::from_secs(1),
            auth: auth::AuthStrategy::NoAuth,
            boot_timeout: Duration::from_secs(60),
            mac_generator: neutrino_ipam::MacGenerator::random(),
            requests_per_project: fair_share::default_limit(),
        }
    }
}

/// The server's state: the services (which handlers reach through `Deref`: `state.store`,
/// `state.feed`, ...), the API's settings, the heartbeat buffer, the agent token and Keystone.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub config: Arc<ApiConfig>,
    pub heartbeats: Arc<Heartbeats>,
    /// The shared agent token good for every host (`serve --shared-agent-token`); hosts'
    /// own credentials are in the store.
    pub shared_agent_token: Option<Arc<internal::AgentToken>>,
    /// Set with `--auth keystone`.
    pub keystone: Option<Arc<keystone::Keystone>>,
    /// What `/healthz` reports besides the database (the embedded agent).
    pub health: Arc<health::ServerHealth>,
    /// Each project's share of the server's workers.
    pub fair_share: Arc<fair_share::FairShare>,
}

impl AppState {
    pub fn new(
        store: Store,
        config: ApiConfig,
        heartbeats: Arc<Heartbeats>,
        shared_agent_token: Option<internal::AgentToken>,
        keystone: Option<Arc<keystone::Keystone>>,
    ) -> AppState {
        // The metrics recorder is in place before anything records.
        observe::prometheus();
        let mut services = Services::new(store, config.services(), heartbeats.clone());
        let fair_share = fair_share::FairShare::new(config.requests_per_project);
        services.contention = fair_share.clone();
        AppState {
            fair_share,
            services,
            config: Arc::new(config),
            heartbeats,
            shared_agent_token: shared_agent_token.map(Arc::new),
            keystone,
            health: Arc::default(),
        }
    }
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

impl ApiConfig {
    /// The settings the services read.
    pub fn services(&self) -> neutrino_core::Config {
        neutrino_core::Config {
            tenant_network_type: self.tenant_network_type.clone(),
            vni_range: self.vni_range,
            global_physnet_mtu: self.global_physnet_mtu,
            agent_down_time: self.agent_down_time,
            dhcp_agents_per_network: self.dhcp_agents_per_network,
            drivers: self.drivers.clone(),
            boot_timeout: self.boot_timeout,
            mac_generator: self.mac_generator.clone(),
        }
    }
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
        .route("/openapi.json", neutron_405(get(openapi::serve)))
        .route("/healthz", neutron_405(get(health::healthz)))
        .route("/metrics", neutron_405(get(observe::render)))
        .route(
            "/v2.0/subnets",
            get(subnets::list)
                .post(subnets::create)
                .put(subnets::no_collection_action)
                .delete(subnets::no_collection_action),
        )
        .route(
            "/v2.0/subnets/{id}",
            neutron_405(
                get(subnets::show)
                    .put(subnets::update)
                    .delete(subnets::delete),
            ),
        )
        .route(
            "/v2.0/subnetpools",
            get(subnet_pools::list)
                .post(subnet_pools::create)
                .put(subnet_pools::no_collection_action)
                .delete(subnet_pools::no_collection_action),
        )
        .route(
            "/v2.0/subnetpools/{id}",
            neutron_405(
                get(subnet_pools::show)
                    .put(subnet_pools::update)
                    .delete(subnet_pools::delete),
            ),
        )
        .route(
            "/v2.0/ports",
            get(ports::list)
                .post(ports::create)
                .put(ports::no_collection_action)
                .delete(ports::no_collection_action),
        )
        .route(
            "/v2.0/ports/{id}",
            neutron_405(get(ports::show).put(ports::update).delete(ports::delete)),
        )
        .route(
            "/v2.0/ports/{id}/binding",
            neutron_405(get(ports::show_binding)),
        )
        .route(
            "/v2.0/security-groups",
            get(security_groups::list)
                .post(security_groups::create)
                .put(security_groups::no_collection_action)
                .delete(security_groups::no_collection_action),
        )
        .route(
            "/v2.0/security-groups/{id}",
            neutron_405(
                get(security_groups::show)
                    .put(security_groups::update)
                    .delete(security_groups::delete),
            ),
        )
        .route(
            "/v2.0/security-group-rules",
            get(security_group_rules::list)
                .post(security_group_rules::create)
                .put(security_group_rules::no_collection_action)
                .delete(security_group_rules::no_collection_action),
        )
        .route(
            "/v2.0/security-group-rules/{id}",
            neutron_405(get(security_group_rules::show).delete(security_group_rules::delete)),
        )
        .route(
            "/v2.0/quotas",
            neutron_405(get(quotas::list).post(quotas::no_create)),
        )
        .route(
            "/v2.0/quotas/{project_id}",
            neutron_405(get(quotas::show).put(quotas::update).delete(quotas::delete)),
        )
        .route(
            "/v2.0/quotas/{project_id}/default",
            neutron_405(get(quotas::default)),
        )
        .route(
            "/v2.0/quotas/{project_id}/details",
            neutron_405(get(quotas::details)),
        )
        .merge(agents::routes())
        .merge(tags::routes())
        .merge(dhcp_agent_scheduler::routes())
        .merge(routers::routes())
        .merge(floating_ips::routes())
        .merge(compute::routes())
        .route(
            "/v2.0/auto-allocated-topology/{project_id}",
            neutron_405(get(auto_allocated_topology::show).delete(auto_allocated_topology::delete)),
        )
        .route(
            "/internal/agents/report",
            neutron_405(post(internal::report)),
        )
        .route(
            "/internal/hosts/{host}/changes",
            neutron_405(get(host_feed::changes)),
        )
        .route(
            "/internal/hosts/{host}/ports/status",
            neutron_405(post(host_feed::port_status)),
        )
        .route(
            "/internal/hosts/{host}/floatingips/status",
            neutron_405(post(host_feed::floating_ip_status)),
        )
        .fallback(|| async { NeutronError::no_such_path() })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            fair_share::admit,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(middleware::map_response(too_large_in_neutrons_shape))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        // Outermost, and inside the router (where the matched route template is known):
        // metrics, the request's span, its id.
        .layer(middleware::from_fn(observe::track))
        .layer(observe::trace_layer())
        .layer(middleware::from_fn(observe::request_id))
        .with_state(state)
}

/// The largest request body read, as Neutron's `max_request_body_size` (oslo.middleware's
/// default, 112 KiB): it also bounds how much one bulk create can ask of the write path.
pub const MAX_REQUEST_BODY: usize = 114_688;

/// A body over [`MAX_REQUEST_BODY`] is refused by the extractor with a plain-text 413; clients
/// read Neutron's error shape.
async fn too_large_in_neutrons_shape(
    response: axum::response::Response,
) -> axum::response::Response {
    if response.status() != axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return response;
    }
    axum::response::IntoResponse::into_response(NeutronError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "HTTPRequestEntityTooLarge",
        format!("Request is too large: larger than {MAX_REQUEST_BODY} bytes."),
    ))
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

/// The id of a resource's path (`.json` stripped). An id with a NUL names nothing (no id holds
/// one, and PostgreSQL cannot even compare it), so it is the resource's 404 on both backends
/// without asking the database.
pub fn path_id<E>(id: &str, not_found: impl FnOnce(&str) -> E) -> Result<&str, E> {
    let id = strip_json_suffix(id);
    if id.contains('\0') {
        Err(not_found(id))
    } else {
        Ok(id)
    }
}
