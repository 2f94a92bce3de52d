//! `/v2.0/floatingips`: create, list, show, update, delete (`router`, `fip-port-details`).
//! The work is `neutrino_core::floating_ips`'.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::auth::RequestContext;
use super::body;
use super::error::{ApiResult, NeutronError};
use super::openapi::ResourceDoc;
use super::query::{CollectionSpec, ListQuery};
use super::{AppState, base_url, listing, path_id};
use neutrino_core::floating_ips as core;
use neutrino_store::floating_ips::{self as repo, FloatingIp};
use neutrino_store::{self as store};

pub const SPEC: CollectionSpec = CollectionSpec {
    collection: "floatingips",
    filterable: &[
        "id",
        "tenant_id",
        "project_id",
        "description",
        "floating_network_id",
        "floating_ip_address",
        "port_id",
        "fixed_ip_address",
        "router_id",
        "status",
        "revision_number",
        "tags",
    ],
    sortable: &[
        "id",
        "tenant_id",
        "project_id",
        "description",
        "floating_network_id",
        "floating_ip_address",
        "port_id",
        "fixed_ip_address",
        "router_id",
        "status",
        "created_at",
        "updated_at",
        "revision_number",
    ],
};

const CREATE_ATTRS: &[&str] = &[
    "tenant_id",
    "project_id",
    "description",
    "floating_network_id",
    "floating_ip_address",
    "subnet_id",
    "port_id",
    "fixed_ip_address",
];
const UPDATE_ATTRS: &[&str] = &["description", "port_id", "fixed_ip_address"];
const READ_ONLY: &[&str] = &[
    "id",
    "tenant_id",
    "project_id",
    "router_id",
    "status",
    "port_details",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
];

pub const DOC: ResourceDoc = ResourceDoc {
    resource: "floatingip",
    spec: &SPEC,
    create: CREATE_ATTRS,
    update: UPDATE_ATTRS,
    read_only: READ_ONLY,
    delete: true,
};

pub fn not_found(id: &str) -> NeutronError {
    core::not_found(id).into()
}

pub fn routes() -> Router<AppState> {
    let not_allowed = || async { NeutronError::method_not_allowed() };
    Router::new()
        .route(
            "/v2.0/floatingips",
            get(list)
                .post(create)
                .put(no_collection_action)
                .delete(no_collection_action),
        )
        .route(
            "/v2.0/floatingips/{id}",
            get(show).put(update).delete(remove).fallback(not_allowed),
        )
}

async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let b = body::update_body(&bytes, "floatingip")?;
    body::check_create_attributes(&b, CREATE_ATTRS, READ_ONLY)?;
    let f = core::create(&state, &ctx, &b).await?;
    Ok((StatusCode::CREATED, Json(json!({ "floatingip": f }))))
}

/// Floating IPs as a list reads them, each with its port's details.
struct FipRows {
    store: store::Store,
}

impl listing::Source for FipRows {
    type Row = (FloatingIp, Value);

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
            for (f, key) in rows {
                let details = match &f.fixed_port_id {
                    Some(id) => store::ports::get(&mut conn, id)
                        .await?
                        .map_or(Value::Null, |p| core::port_details(&p)),
                    None => Value::Null,
                };
                out.push(((f, details), key));
            }
            Ok(out)
        }
    }

    fn id(row: &Self::Row) -> &str {
        &row.0.id
    }

    fn item(&self, row: &Self::Row) -> Map<String, Value> {
        core::to_json(&row.0, row.1.clone())
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
    let source = FipRows {
        store: state.store.clone(),
    };
    listing::respond(
        &state.store,
        source,
        &query,
        plan,
        (!ctx.is_admin()).then(|| ctx.project_id.clone()),
        format!("{}/v2.0/floatingips", base_url(&headers)),
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
    let f = core::visible(&mut conn, &ctx, id).await?;
    let item = core::render(&mut conn, &f).await?;
    Ok(Json(json!({"floatingip": query.project(item)})))
}

async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, not_found)?;
    let b = body::update_body(&bytes, "floatingip")?;
    body::check_attributes(&b, UPDATE_ATTRS, READ_ONLY)?;
    let f = core::update(&state, &ctx, id, &b).await?;
    Ok(Json(json!({ "floatingip": f })))
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

/// `PUT` or `DELETE` on the collection: Neutron answers 404 for the floating IP "None".
async fn no_collection_action() -> NeutronError {
    not_found("None")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sort_key_has_a_column() {
        for attr in SPEC.sortable {
            assert!(repo::TABLE.column(attr).is_some(), "{attr}");
        }
    }
}
