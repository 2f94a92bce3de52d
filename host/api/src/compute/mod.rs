//! A minimal compute API with Nova's paths and shapes (`/v2.1/servers`), server side only: an
//! instance is a network namespace with one NIC per port, placed on one host, whose node agent
//! creates it, plugs its NICs, runs a DHCP client and reports back
//! (`/internal/hosts/{host}/instances/status`).

pub mod error;
pub mod instance_status;
pub mod request;
pub mod servers;
pub mod view;

use axum::Router;
use axum::routing::{MethodRouter, get, post};

use super::AppState;
use crate::error::NeutronError;
use error::NovaError;

pub fn routes() -> Router<AppState> {
    fn nova_405(m: MethodRouter<AppState>) -> MethodRouter<AppState> {
        m.fallback(|| async { NovaError::method_not_allowed() })
    }
    Router::new()
        .route(
            "/v2.1/servers",
            nova_405(get(servers::list).post(servers::create)),
        )
        .route("/v2.1/servers/detail", nova_405(get(servers::list_detail)))
        .route(
            "/v2.1/servers/{id}",
            nova_405(get(servers::show).delete(servers::delete)),
        )
        .route(
            "/v2.1/servers/{id}/os-interface",
            nova_405(get(servers::interfaces)),
        )
        .route(
            "/internal/hosts/{host}/instances/status",
            post(instance_status::report).fallback(|| async { NeutronError::method_not_allowed() }),
        )
}
