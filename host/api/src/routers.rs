//! `/v2.0/routers`: create, list, show, update, delete (`router`, `ext-gw-mode`,
//! `extraroute`), the interface actions (`add_router_interface`, `remove_router_interface`),
//! the atomic route actions (`extraroute-atomic`) and the L3 agent scheduler's sub-resources
//! (`l3_agent_scheduler`). The work is `neutrino_core::routers`' and `l3_scheduling`'s.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::auth::RequestContext;
use super::body;
use super::error::{ApiResult, NeutronError};
use super::openapi::ResourceDoc;
use super::query::{CollectionSpec, ListQuery};
use super::{AppState, agents, base_url, listing, path_id};
use neutrino_core::dhcp_agent_scheduler::agent_not_found;
use neutrino_core::l3_scheduling as scheduler;
use neutrino_core::routers as core;
use neutrino_store::ports::FixedIp;
use neutrino_store::routers::{self as repo, Router as RouterRow};
use neutrino_store::{self as store};

pub const SPEC: CollectionSpec = CollectionSpec {
    collection: "routers",
    filterable: &[
        "id",
        "name",
        "description",
        "tenant_id",
        "project_id",
        "admin_state_up",
        "status",
        "revision_number",
        "tags",
    ],
    sortable: &[
        "id",
        "name",
        "description",
        "tenant_id",
        "project_id",
        "admin_state_up",
        "status",
        "created_at",
        "updated_at",
        "revision_number",
    ],
};

const CREATE_ATTRS: &[&str] = &[
    "name",
    "description",
    "tenant_id",
    "project_id",
    "admin_state_up",
    "external_gateway_info",
    "distributed",
    "ha",
    "availability_zone_hints",
    "flavor_id",
];
const UPDATE_ATTRS: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "external_gateway_info",
    "routes",
    "distributed",
    "ha",
];
const READ_ONLY: &[&str] = &[
    "id",
    "tenant_id",
    "project_id",
    "status",
    "routes",
    "availability_zones",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
];

pub const DOC: ResourceDoc = ResourceDoc {
    resource: "router",
    spec: &SPEC,
    create: CREATE_ATTRS,
    update: UPDATE_ATTRS,
    read_only: READ_ONLY,
    delete: true,
};

pub fn not_found(id: &str) -> NeutronError {
    core::not_found(id).into()
}

/// The routes of the router actions and of the L3 agent scheduler.
pub fn routes() -> Router<AppState> {
    let not_allowed = || async { NeutronError::method_not_allowed() };
    Router::new()
        .route(
            "/v2.0/routers",
            get(list)
                .post(create)
                .put(no_collection_action)
                .delete(no_collection_action),
        )
        .route(
            "/v2.0/routers/{id}",
            get(show).put(update).delete(remove).fallback(not_allowed),
        )
        .route(
            "/v2.0/routers/{id}/add_router_interface",
            put(add_interface).fallback(not_allowed),
        )
        .route(
            "/v2.0/routers/{id}/remove_router_interface",
            put(remove_interface).fallback(not_allowed),
        )
        .route(
            "/v2.0/routers/{id}/add_extraroutes",
            put(add_routes).fallback(not_allowed),
        )
        .route(
            "/v2.0/routers/{id}/remove_extraroutes",
            put(remove_routes).fallback(not_allowed),
        )
        .route(
            "/v2.0/routers/{id}/l3-agents",
            get(agents_of_router).fallback(not_allowed),
        )
        .route(
            "/v2.0/agents/{id}/l3-routers",
            get(routers_of_agent)
                .post(add_to_agent)
                .fallback(not_allowed),
        )
        .route(
            "/v2.0/agents/{id}/l3-routers/{router_id}",
            delete(remove_from_agent).fallback(not_allowed),
        )
}

/// The whole body as an object (the interface actions have no resource wrapper).
fn object(bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    match body::parse(bytes)? {
        Value::Object(m) => Ok(m),
        _ => Err(NeutronError::bad_request("Body must be a JSON object")),
    }
}

async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let b = body::update_body(&bytes, "router")?;
    body::check_create_attributes(&b, CREATE_ATTRS, READ_ONLY)?;
    let mut wrapped = Map::new();
    wrapped.insert("router".into(), Value::Object(b));
    let created = core::create(&state, &ctx, &wrapped).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Routers as a list reads them, each with its gateway port's addresses.
struct RouterRows {
    store: store::Store,
    admin: bool,
}

impl listing::Source for RouterRows {
    type Row = (RouterRow, Vec<FixedIp>);

    fn table(&self) -> &'static store::listing::Table {
        &repo::TABLE
    }

    fn fetch(
        &self,
        req: &store::listing::Request,
    ) -> impl Future<Output = store::Result<Vec<(Self::Row, store::listing::Key)>>> + Send {
        let store = self.store.clone();
        let req = req.clone();
        async move {
            let rows = repo::page(&store, &req).await?;
            let mut conn = store.read_conn().await?;
            let mut out = Vec::with_capacity(rows.len());
            for (r, key) in rows {
                let ips = match &r.gw_port_id {
                    Some(id) => store::ports::fixed_ips(&mut *conn, id).await?,
                    None => Vec::new(),
                };
                out.push(((r, ips), key));
            }
            Ok(out)
        }
    }

    fn id(row: &Self::Row) -> &str {
        &row.0.id
    }

    fn item(&self, row: &Self::Row) -> Map<String, Value> {
        core::to_json(&row.0, &row.1, self.admin)
    }
}

async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let query = ListQuery::parse(q.as_deref(), &SPEC)?;
    let plan = query.plan(&repo::TABLE, &[]);
    let source = RouterRows {
        store: state.store.clone(),
        admin: ctx.is_admin(),
    };
    listing::respond(
        &state.store,
        source,
        &query,
        plan,
        (!ctx.is_admin()).then(|| ctx.project_id.clone()),
        format!("{}/v2.0/routers", base_url(&headers)),
        not_found,
    )
    .await
}

async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let query = ListQuery::parse_fields(q.as_deref(), &SPEC);
    let mut conn = state.store.read_conn().await?;
    let r = core::visible(&mut conn, &ctx, id).await?;
    let item = core::render(&mut conn, &ctx, &r).await?;
    Ok(Json(json!({"router": query.project(item)})))
}

async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let b = body::update_body(&bytes, "router")?;
    let read_only: Vec<&str> = READ_ONLY
        .iter()
        .copied()
        .filter(|a| !UPDATE_ATTRS.contains(a))
        .collect();
    body::check_attributes(&b, UPDATE_ATTRS, &read_only)?;
    let mut wrapped = Map::new();
    wrapped.insert("router".into(), Value::Object(b));
    Ok(Json(core::update(&state, &ctx, id, &wrapped).await?))
}

async fn remove(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, not_found)?;
    core::delete(&state, &ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_interface(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let b = object(&bytes)?;
    Ok(Json(core::add_interface(&state, &ctx, id, &b).await?))
}

async fn remove_interface(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let b = object(&bytes)?;
    Ok(Json(core::remove_interface(&state, &ctx, id, &b).await?))
}

async fn add_routes(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let b = object(&bytes)?;
    Ok(Json(core::change_routes(&state, &ctx, id, &b, true).await?))
}

async fn remove_routes(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let b = object(&bytes)?;
    Ok(Json(
        core::change_routes(&state, &ctx, id, &b, false).await?,
    ))
}

/// `PUT` or `DELETE` on the collection: Neutron answers 404 for the router "None".
async fn no_collection_action() -> NeutronError {
    not_found("None")
}

async fn agents_of_router(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let items: Vec<_> = scheduler::agents_of_router(&state, &ctx, id)
        .await?
        .into_iter()
        .map(|a| agents::shown(&state, a))
        .collect();
    Ok(Json(json!({ "agents": items })))
}

async fn routers_of_agent(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, agent_not_found)?;
    let ids = scheduler::routers_of_agent(&state, &ctx, id).await?;
    let mut conn = state.store.read_conn().await?;
    let mut items = Vec::with_capacity(ids.len());
    for rid in ids {
        if let Ok(r) = core::visible(&mut conn, &ctx, &rid).await {
            items.push(Value::Object(core::render(&mut conn, &ctx, &r).await?));
        }
    }
    Ok(Json(json!({ "routers": items })))
}

async fn add_to_agent(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = path_id(&id, agent_not_found)?;
    let b = body::parse(&bytes)?;
    let Some(router_id) = b.get("router_id").and_then(Value::as_str) else {
        return Err(NeutronError::bad_request(
            "Invalid input: the body must be {\"router_id\": \"<id>\"}",
        ));
    };
    scheduler::add_router(&state, &ctx, id, router_id).await?;
    Ok((StatusCode::CREATED, Json(Value::Null)))
}

async fn remove_from_agent(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((id, router_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, agent_not_found)?;
    let router_id = path_id(&router_id, not_found)?;
    scheduler::remove_router(&state, &ctx, id, router_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sort key without a column would be dropped from the order.
    #[test]
    fn every_sort_key_has_a_column() {
        for attr in SPEC.sortable {
            assert!(repo::TABLE.column(attr).is_some(), "{attr}");
        }
    }
}
