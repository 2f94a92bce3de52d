//! `/v2.0/agents` (the `agent` extension): list, show, update, delete. Agents are created by
//! their own heartbeat reports (`api::internal`), never through this API.
//!
//! Policy as in Neutron: everything is admin-only, but a non-admin list answers 200 with an
//! empty list (the policy hook hides each item), a non-admin show is 403, and a non-admin
//! update or delete is 404 `HTTPNotFound` (an agent has no project the caller could own, so
//! Neutron pretends it does not exist).

use neutrino_store as store;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::auth::RequestContext;
use super::body::{self, CreateBody};
use super::error::{ApiResult, NeutronError};
use super::openapi::ResourceDoc;
use super::query::{CollectionSpec, ListQuery};
use super::{AppState, base_url, path_id};
use neutrino_store::agents::{self as repo, Agent};

pub const SPEC: CollectionSpec = CollectionSpec {
    collection: "agents",
    filterable: &[
        "id",
        "agent_type",
        "binary",
        "topic",
        "host",
        "admin_state_up",
        "alive",
        "description",
        "availability_zone",
        "resources_synced",
    ],
    sortable: &[
        "id",
        "agent_type",
        "binary",
        "topic",
        "host",
        "admin_state_up",
        "created_at",
        "started_at",
        "heartbeat_timestamp",
        "description",
        "availability_zone",
    ],
};

/// Every attribute, in the order of Neutron's attribute map: validation errors name the first
/// offending attribute in this order, not in the body's.
const ATTRIBUTES: &[&str] = &[
    "id",
    "agent_type",
    "binary",
    "topic",
    "host",
    "admin_state_up",
    "created_at",
    "started_at",
    "heartbeat_timestamp",
    "alive",
    "configurations",
    "description",
    "availability_zone",
    "resources_synced",
];
const UPDATABLE: &[&str] = &["admin_state_up", "description"];

/// Agents are created by their heartbeats, never by a POST.
pub const DOC: ResourceDoc = ResourceDoc {
    resource: "agent",
    spec: &SPEC,
    create: &[],
    update: UPDATABLE,
    read_only: ATTRIBUTES,
    delete: true,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v2.0/agents",
            get(list)
                .post(create)
                .put(no_collection_action)
                .delete(no_collection_action),
        )
        .route(
            "/v2.0/agents/{id}",
            get(show)
                .put(update)
                .delete(delete)
                .fallback(|| async { NeutronError::method_not_allowed() }),
        )
}

fn not_found(id: &str) -> NeutronError {
    NeutronError::not_found("AgentNotFound", format!("Agent {id} could not be found."))
}

/// Agents' timestamps are shown the old way: `2026-11-22 03:59:46`, no zone.
fn shown_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The API dict of an agent.
pub fn to_json(a: &Agent, alive: bool) -> Map<String, Value> {
    let m = json!({
        "id": a.id, "agent_type": a.agent_type, "binary": a.binary, "topic": a.topic,
        "host": a.host, "admin_state_up": a.admin_state_up,
        "created_at": shown_time(a.created_at), "started_at": shown_time(a.started_at),
        "heartbeat_timestamp": shown_time(a.heartbeat_at),
        "description": a.description, "resources_synced": a.resources_synced,
        "availability_zone": a.availability_zone, "alive": alive,
        "configurations": a.configurations,
    });
    match m {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

/// The agent with this server's buffered heartbeats applied, as the API shows it.
pub fn shown(state: &AppState, mut a: Agent) -> Map<String, Value> {
    state.heartbeats.overlay(std::slice::from_mut(&mut a));
    let alive = a.alive(SystemTime::now(), state.heartbeats.down_time());
    to_json(&a, alive)
}

/// Unknown attributes first ("Unrecognized attribute(s)"), then the first attribute in
/// Neutron's order that `allowed` does not contain.
fn check_body(b: &Map<String, Value>, allowed: &[&str]) -> ApiResult<Option<&'static str>> {
    body::check_attributes(b, ATTRIBUTES, &[])?;
    Ok(ATTRIBUTES
        .iter()
        .copied()
        .find(|a| b.contains_key(*a) && !allowed.contains(a)))
}

pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let query = ListQuery::parse(q.as_deref(), &SPEC)?;
    let base = format!("{}/v2.0/agents", base_url(&headers));
    if !ctx.is_admin() {
        return Ok(Json(query.apply(vec![], &base)));
    }
    // Agents stay listed in memory: one per host and type, with liveness from the heartbeat
    // buffer, which SQL cannot filter or sort on.
    let mut rows = repo::list(&state.store.read).await?;
    if let Some(marker) = query.marker()
        && !rows.iter().any(|a| a.id == marker)
    {
        return Err(not_found(marker));
    }
    state.heartbeats.overlay(&mut rows);
    let now = SystemTime::now();
    let down_time = state.heartbeats.down_time();
    let items = rows
        .iter()
        .map(|a| to_json(a, a.alive(now, down_time)))
        .collect();
    Ok(Json(query.apply(items, &base)))
}

pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let query = ListQuery::parse_fields(q.as_deref(), &SPEC);
    let a = repo::get(&state.store.read, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if !ctx.is_admin() {
        return Err(NeutronError::new(
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            "rule:get_agent is disallowed by policy",
        ));
    }
    Ok(Json(json!({"agent": query.project(shown(&state, a))})))
}

pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    // Neutron validates the body before it looks the agent up or checks policy.
    let b = body::update_body(&bytes, "agent")?;
    if let Some(read_only) = check_body(&b, UPDATABLE)? {
        return Err(NeutronError::bad_request(format!(
            "Cannot update read-only attribute {read_only}"
        )));
    }
    let admin_state_up = body::boolean(&b, "admin_state_up")?;
    let description = match b.get("description") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(_) => Some(body::string(&b, "description", 255)?),
    };
    let mut tx = state.store.begin_write().await?;
    let mut a = repo::get_for_update(&mut tx, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if !ctx.is_admin() {
        return Err(NeutronError::no_such_path());
    }
    a.admin_state_up = admin_state_up.unwrap_or(a.admin_state_up);
    if let Some(d) = description {
        a.description = d;
    }
    repo::update_admin(&mut tx, id, a.admin_state_up, a.description.as_deref()).await?;
    store::commit(tx).await?;
    Ok(Json(json!({"agent": shown(&state, a)})))
}

pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, not_found)?;
    let mut tx = state.store.begin_write().await?;
    let a = repo::get_for_update(&mut tx, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if !ctx.is_admin() {
        return Err(NeutronError::no_such_path());
    }
    repo::delete(&mut tx, id).await?;
    store::commit(tx).await?;
    // After the commit: a report racing with the delete then registers the agent anew.
    state.heartbeats.forget(&a);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v2.0/agents`: no attribute may be posted, so every body is refused; Neutron's
/// validation names the first attribute given.
pub async fn create(bytes: Bytes) -> ApiResult<StatusCode> {
    let bodies = match body::create_body(&bytes, "agent", "agents")? {
        CreateBody::One(b) => vec![b],
        CreateBody::Bulk(v) => v,
    };
    for b in &bodies {
        if let Some(attribute) = check_body(b, &[])? {
            return Err(NeutronError::bad_request(format!(
                "Attribute '{attribute}' not allowed in POST"
            )));
        }
    }
    Err(NeutronError::bad_request(
        "Agents register themselves by reporting their state; they cannot be created through the API.",
    ))
}

/// `PUT` or `DELETE` on the collection, answered like Neutron does for other collections.
pub async fn no_collection_action() -> NeutronError {
    not_found("None")
}
