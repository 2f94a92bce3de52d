//! `/v2.0/quotas` (Neutron's `quotas` and `quota_details` extensions): list, show, update,
//! reset, defaults and usage, over `core::quotas`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::auth::RequestContext;
use super::body;
use super::error::{ApiResult, NeutronError};
use super::{AppState, path_id};
use neutrino_core::quotas::{self, Limits};

fn to_json(limits: &Limits) -> Map<String, Value> {
    limits
        .iter()
        .map(|(r, l)| (r.to_string(), Value::from((*l).max(-1))))
        .collect()
}

/// `GET /v2.0/quotas`: the projects with a limit set (admin).
pub async fn list(State(state): State<AppState>, ctx: RequestContext) -> ApiResult<Json<Value>> {
    let projects = quotas::list(&state, &ctx).await?;
    let items: Vec<Value> = projects
        .iter()
        .map(|(project, limits)| {
            let mut q = to_json(limits);
            q.insert("project_id".into(), Value::from(project.as_str()));
            q.insert("tenant_id".into(), Value::from(project.as_str()));
            Value::Object(q)
        })
        .collect();
    Ok(Json(json!({ "quotas": items })))
}

/// `POST /v2.0/quotas`: not a thing Neutron does.
pub async fn no_create() -> NeutronError {
    NeutronError::new(
        StatusCode::NOT_IMPLEMENTED,
        "HTTPNotImplemented",
        "POST requests are not supported on this resource.",
    )
}

/// The project of a quota path: one with a NUL cannot exist (nor be stored on PostgreSQL), a
/// 400 on both backends.
fn project_id(project: &str) -> ApiResult<&str> {
    path_id(project, |_| {
        NeutronError::invalid_input("a project id must not contain a NUL character (U+0000).")
    })
}

/// `GET /v2.0/quotas/{project}`; `project` and `tenant` name the caller's own project.
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    let project = project_id(&project)?;
    match project {
        "project" => return Ok(Json(json!({"project": {"project_id": ctx.project_id}}))),
        "tenant" => return Ok(Json(json!({"tenant": {"tenant_id": ctx.project_id}}))),
        _ => {}
    }
    let limits = quotas::show(&state, &ctx, project).await?;
    Ok(Json(json!({ "quota": to_json(&limits) })))
}

/// `GET /v2.0/quotas/{project}/default`.
pub async fn default(ctx: RequestContext, Path(project): Path<String>) -> ApiResult<Json<Value>> {
    let limits = quotas::default(&ctx, project_id(&project)?)?;
    Ok(Json(json!({ "quota": to_json(&limits) })))
}

/// `GET /v2.0/quotas/{project}/details`: limit, used and reserved (always 0: a create counts
/// and inserts in one transaction, so nothing is ever reserved) of each resource.
pub async fn details(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    let rows = quotas::details(&state, &ctx, project_id(&project)?).await?;
    let quota: Map<String, Value> = rows
        .into_iter()
        .map(|(r, limit, used)| {
            (
                r.to_string(),
                json!({"limit": limit, "used": used, "reserved": 0}),
            )
        })
        .collect();
    Ok(Json(json!({ "quota": quota })))
}

/// `PUT /v2.0/quotas/{project}` with `{"quota": {...}}` (admin).
pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(project): Path<String>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let b = body::update_body(&bytes, "quota")?;
    let limits = quotas::update(&state, &ctx, project_id(&project)?, &b).await?;
    Ok(Json(json!({ "quota": to_json(&limits) })))
}

/// `DELETE /v2.0/quotas/{project}` (admin): back to the defaults.
pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(project): Path<String>,
) -> ApiResult<Response> {
    quotas::reset(&state, &ctx, project_id(&project)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
