//! `GET` / `DELETE /v2.0/auto-allocated-topology/{project_id}` (`auto-allocated-topology`):
//! the project's network made by one call (see `neutrino_core::auto_allocate`).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiResult;
use neutrino_core::RequestContext;
use neutrino_core::auto_allocate;
use neutrino_core::error::Status;

/// The project the path names: the literal `None` is the caller's own (Neutron's quirk); a
/// project user may name only their own.
fn project_of(ctx: &RequestContext, path: &str) -> ApiResult<String> {
    let project = if path == "None" {
        ctx.project_id.clone()
    } else {
        path.to_string()
    };
    if project != ctx.project_id && !ctx.is_admin() {
        return Err(neutrino_core::error::NeutronError::new(
            Status::FORBIDDEN,
            "NotAuthorized",
            "Not authorized.",
        )
        .into());
    }
    Ok(project)
}

pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(project): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let project = project_of(&ctx, &project)?;
    let fields: Vec<String> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "fields")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(str::to_string)
                .filter(|f| !f.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    if fields.iter().any(|f| f == "dry-run") {
        auto_allocate::dry_run(&state).await?;
        return Ok(Json(json!({"auto_allocated_topology": {
            "id": "dry-run=pass", "project_id": project,
        }})));
    }
    if !fields.is_empty() {
        return Err(neutrino_core::error::NeutronError::bad(
            "BadRequest",
            "Bad auto_allocate request: Unrecognized field.",
        )
        .into());
    }
    let network_id = auto_allocate::get_or_create(&state, &ctx, &project).await?;
    Ok(Json(json!({"auto_allocated_topology": {
        "id": network_id, "project_id": project, "tenant_id": project,
    }})))
}

pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(project): Path<String>,
) -> ApiResult<StatusCode> {
    let project = project_of(&ctx, &project)?;
    ctx.require_write("delete_auto_allocated_topology")?;
    auto_allocate::delete(&state, &ctx, &project).await?;
    Ok(StatusCode::NO_CONTENT)
}
