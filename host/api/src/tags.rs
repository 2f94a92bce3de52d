//! `/v2.0/{networks|subnets|ports|security-groups|subnetpools|routers|floatingips}/{id}/tags[/{tag}]` (`standard-attr-tag`,
//! `tag-creation`), with Neutron's statuses (`tagging.py`'s `action_status`): the list 200,
//! one tag 204 or `TagNotFound`, replace all 200 echoing the body, add many (POST) 200
//! echoing the body, add one 201 without a body, delete one or all 204.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::auth::RequestContext;
use super::body;
use super::error::{ApiResult, NeutronError};
use super::{AppState, path_id};
use neutrino_core::tags::{self, Change, Kind};
use neutrino_store as store;

/// The collections whose items carry tags, by URL.
pub const TAGGED: &[(&str, Kind)] = &[
    ("networks", Kind::Network),
    ("subnets", Kind::Subnet),
    ("ports", Kind::Port),
    ("security-groups", Kind::SecurityGroup),
    ("subnetpools", Kind::SubnetPool),
    ("routers", Kind::Router),
    ("floatingips", Kind::FloatingIp),
];

/// The item's dict with its stored tags (shows and updates read them beside the item).
pub async fn with_tags(
    conn: &mut store::Conn,
    kind: Kind,
    id: &str,
    mut item: Map<String, Value>,
) -> ApiResult<Map<String, Value>> {
    let tags = store::tags::of(conn, kind, id).await?;
    item.insert("tags".into(), json!(tags));
    Ok(item)
}

/// [`with_tags`] on a read connection of its own (after a write committed).
pub async fn read_with_tags(
    state: &AppState,
    kind: Kind,
    id: &str,
    item: Map<String, Value>,
) -> ApiResult<Map<String, Value>> {
    let mut conn = state.store.read_conn().await?;
    with_tags(&mut conn, kind, id, item).await
}

/// A tag named in a path. No tag holds a NUL (no body may carry one, and PostgreSQL cannot
/// store it): reading one is `TagNotFound`, writing one is refused as a bad string.
fn path_tag(tag: &str, writing: bool) -> ApiResult<&str> {
    if !tag.contains('\0') {
        return Ok(tag);
    }
    Err(if writing {
        NeutronError::invalid_input(format!("'{}' is not a valid string", tag.escape_debug()))
    } else {
        NeutronError::not_found(
            "TagNotFound",
            format!("Tag {} could not be found.", tag.escape_debug()),
        )
    })
}

async fn index(
    state: AppState,
    ctx: RequestContext,
    kind: Kind,
    id: String,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, |i| tags::not_found(kind, i))?;
    let list = tags::list(&state, &ctx, kind, id).await?;
    Ok(Json(json!({ "tags": list })))
}

async fn show(
    state: AppState,
    ctx: RequestContext,
    kind: Kind,
    (id, tag): (String, String),
) -> ApiResult<StatusCode> {
    let id = path_id(&id, |i| tags::not_found(kind, i))?;
    let tag = path_tag(&tag, false)?;
    tags::check_has(&state, &ctx, kind, id, tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT .../tags` (replace) and `POST .../tags` (add): both echo the body, as Neutron does.
async fn write_many(
    state: AppState,
    ctx: RequestContext,
    kind: Kind,
    id: String,
    bytes: Bytes,
    replace: bool,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id, |i| tags::not_found(kind, i))?;
    let b = body::parse(&bytes)?;
    let wanted = tags::tags_of_body(&b)?;
    let change = if replace {
        Change::Replace(wanted)
    } else {
        Change::Add(wanted)
    };
    tags::change(&state, &ctx, kind, id, change).await?;
    Ok(Json(b))
}

async fn add_one(
    state: AppState,
    ctx: RequestContext,
    kind: Kind,
    (id, tag): (String, String),
) -> ApiResult<StatusCode> {
    let id = path_id(&id, |i| tags::not_found(kind, i))?;
    let tag = path_tag(&tag, true)?;
    tags::check_tag(tag)?;
    tags::change(&state, &ctx, kind, id, Change::Add(vec![tag.to_string()])).await?;
    Ok(StatusCode::CREATED)
}

async fn delete_one(
    state: AppState,
    ctx: RequestContext,
    kind: Kind,
    (id, tag): (String, String),
) -> ApiResult<StatusCode> {
    let id = path_id(&id, |i| tags::not_found(kind, i))?;
    let tag = path_tag(&tag, false)?;
    tags::check_tag(tag)?;
    tags::change(&state, &ctx, kind, id, Change::Remove(tag.to_string())).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_all(
    state: AppState,
    ctx: RequestContext,
    kind: Kind,
    id: String,
) -> ApiResult<StatusCode> {
    let id = path_id(&id, |i| tags::not_found(kind, i))?;
    tags::change(&state, &ctx, kind, id, Change::Clear).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn method_not_allowed() -> Response {
    NeutronError::method_not_allowed().into_response()
}

/// The tag routes of every tagged collection.
pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for &(collection, kind) in TAGGED {
        let all = get(
            move |State(s): State<AppState>, ctx: RequestContext, Path(id): Path<String>| {
                index(s, ctx, kind, id)
            },
        )
        .put(
            move |State(s): State<AppState>,
                  ctx: RequestContext,
                  Path(id): Path<String>,
                  bytes: Bytes| write_many(s, ctx, kind, id, bytes, true),
        )
        .post(
            move |State(s): State<AppState>,
                  ctx: RequestContext,
                  Path(id): Path<String>,
                  bytes: Bytes| write_many(s, ctx, kind, id, bytes, false),
        )
        .delete(
            move |State(s): State<AppState>, ctx: RequestContext, Path(id): Path<String>| {
                delete_all(s, ctx, kind, id)
            },
        )
        .fallback(|| async { method_not_allowed() });
        let one = get(
            move |State(s): State<AppState>,
                  ctx: RequestContext,
                  Path(path): Path<(String, String)>| show(s, ctx, kind, path),
        )
        .put(
            move |State(s): State<AppState>,
                  ctx: RequestContext,
                  Path(path): Path<(String, String)>| add_one(s, ctx, kind, path),
        )
        .delete(
            move |State(s): State<AppState>,
                  ctx: RequestContext,
                  Path(path): Path<(String, String)>| delete_one(s, ctx, kind, path),
        )
        .fallback(|| async { method_not_allowed() });
        router = router
            .route(&format!("/v2.0/{collection}/{{id}}/tags"), all)
            .route(&format!("/v2.0/{collection}/{{id}}/tags/{{tag}}"), one);
    }
    router
}
