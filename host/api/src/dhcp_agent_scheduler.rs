//! `/v2.0/agents/{id}/dhcp-networks[/{network_id}]` and `/v2.0/networks/{id}/dhcp-agents`
//! (the `dhcp_agent_scheduler` extension), admin-only, with Neutron's statuses: the lists
//! 200 (`{"networks": [...]}`, `{"agents": [...]}`), an add 201 with a `null` body, a removal
//! 204. The work is `neutrino_core::dhcp_agent_scheduler`'s.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::auth::RequestContext;
use super::body;
use super::error::{ApiResult, NeutronError};
use super::{AppState, agents, networks, path_id};
use neutrino_core::dhcp_agent_scheduler::{self as scheduler, agent_not_found};
use neutrino_core::tags::Kind;
use neutrino_store as store;

pub fn routes() -> Router<AppState> {
    let not_allowed = || async { NeutronError::method_not_allowed() };
    Router::new()
        .route(
            "/v2.0/agents/{id}/dhcp-networks",
            get(networks_of_agent).post(add).fallback(not_allowed),
        )
        .route(
            "/v2.0/agents/{id}/dhcp-networks/{network_id}",
            delete(remove).fallback(not_allowed),
        )
        .route(
            "/v2.0/networks/{id}/dhcp-agents",
            get(agents_of_network).fallback(not_allowed),
        )
}

async fn networks_of_agent(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, agent_not_found)?;
    let ids = scheduler::networks_of_agent(&state, &ctx, id).await?;
    let mut conn = state.store.read_conn().await?;
    let found = store::networks::get_many(&mut conn, &ids).await?;
    drop(conn);
    let mut subnets: HashMap<String, Vec<String>> = HashMap::new();
    for (network, subnet) in store::subnets::ids_on_networks(&state.store, &ids).await? {
        subnets.entry(network).or_default().push(subnet);
    }
    let mut tags = store::tags::of_many(&state.store, Kind::Network, &ids).await?;
    let mut items: Vec<_> = found
        .iter()
        .map(|n| {
            let mut item = networks::to_json(n, subnets.remove(&n.id).unwrap_or_default(), true);
            item.insert("tags".into(), json!(tags.remove(&n.id).unwrap_or_default()));
            item
        })
        .collect();
    items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(Json(json!({ "networks": items })))
}

async fn add(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = path_id(&id, agent_not_found)?;
    let b = body::parse(&bytes)?;
    let Some(network_id) = b.get("network_id").and_then(Value::as_str) else {
        return Err(NeutronError::bad_request(
            "Invalid input: the body must be {\"network_id\": \"<id>\"}",
        ));
    };
    scheduler::add(&state, &ctx, id, network_id).await?;
    Ok((StatusCode::CREATED, Json(Value::Null)))
}

async fn remove(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((id, network_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, agent_not_found)?;
    let network_id = path_id(&network_id, neutrino_core::networks::not_found)?;
    scheduler::remove(&state, &ctx, id, network_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn agents_of_network(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, networks::not_found)?;
    let items: Vec<_> = scheduler::agents_of_network(&state, &ctx, id)
        .await?
        .into_iter()
        .map(|a| agents::shown(&state, a))
        .collect();
    Ok(Json(json!({ "agents": items })))
}
