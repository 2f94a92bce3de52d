//! `/v2.1/servers`: boot, list, list with details, show, delete, and a server's interfaces
//! (`os-interface`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::error::{NovaError, NovaResult, nova_error};
use super::{request, view};
use crate::auth::RequestContext;
use crate::{AppState, base_url, path_id};
use neutrino_core::compute::boot;
use neutrino_core::compute::network_choice;
use neutrino_core::compute::nics::{self, FeedEntries};
use neutrino_store as store;
use neutrino_store::servers::{self as repo, Address, Server, Servers};

/// `POST /v2.1/servers` -> 202. A boot that cannot be placed or whose ports cannot be bound
/// is still accepted, as in Nova, and shows ERROR with the reason; a request that names what
/// does not exist or is in use is refused, with nothing left behind.
pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    bytes: Bytes,
) -> NovaResult<(StatusCode, Json<Value>)> {
    if !ctx.can_write() {
        return Err(NovaError::forbidden("os_compute_api:servers:create"));
    }
    let boot = request::parse(&bytes)?;
    if boot.forced_host.is_some() && !ctx.is_admin() {
        return Err(NovaError::forbidden(
            "os_compute_api:servers:create:forced_host",
        ));
    }
    let nics = network_choice::resolve(&state, &ctx, &boot.networks)
        .await
        .map_err(nova_error)?;
    let server = boot::boot(
        &state,
        &ctx,
        &boot.name,
        &nics,
        &boot.security_groups,
        boot.forced_host.as_deref(),
    )
    .await
    .map_err(nova_error)?;
    tracing::info!(
        "server {} ({}) on {:?}: {}",
        server.id,
        server.name,
        server.host,
        server.status
    );
    let base = base_url(&headers);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"server": view::created(&server, &boot.security_groups, &base)})),
    ))
}

/// Servers the caller may see: its project's; an admin's, every project's.
fn visible_to(ctx: &RequestContext) -> Option<&str> {
    (!ctx.is_admin()).then_some(ctx.project_id.as_str())
}

/// `GET /v2.1/servers`: id, name and links.
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
) -> NovaResult<Json<Value>> {
    let base = base_url(&headers);
    let servers: Vec<Value> = repo::list(&state.store.read, visible_to(&ctx))
        .await?
        .iter()
        .map(|s| view::summary(s, &base))
        .collect();
    Ok(Json(json!({ "servers": servers })))
}

/// `GET /v2.1/servers/detail`.
pub async fn list_detail(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
) -> NovaResult<Json<Value>> {
    let base = base_url(&headers);
    let project = visible_to(&ctx);
    let servers = repo::list(&state.store.read, project).await?;
    let which = match project {
        Some(p) => Servers::OfProject(p),
        None => Servers::All,
    };
    let addresses = repo::addresses(&state.store.read, which).await?;
    let details: Vec<Value> = servers
        .iter()
        .map(|s| {
            let mine: Vec<&Address> = addresses.iter().filter(|a| a.server_id == s.id).collect();
            view::detail(s, &mine, &base, ctx.is_admin())
        })
        .collect();
    Ok(Json(json!({ "servers": details })))
}

/// `GET /v2.1/servers/{id}`.
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> NovaResult<Json<Value>> {
    let id = path_id(&id, NovaError::instance_not_found)?;
    let mut conn = state.store.read_conn().await?;
    let server = visible(&mut conn, &ctx, id).await?;
    drop(conn);
    let addresses = repo::addresses(&state.store.read, Servers::One(id)).await?;
    let addresses: Vec<&Address> = addresses.iter().collect();
    let base = base_url(&headers);
    Ok(Json(
        json!({"server": view::detail(&server, &addresses, &base, ctx.is_admin())}),
    ))
}

/// `GET /v2.1/servers/{id}/os-interface` -> Nova's `interfaceAttachments`: each NIC's port with
/// its status as `port_state`.
///
/// A port whose wiring the agent found gone (DOWN, or ERROR) after the server became ACTIVE
/// shows here and in the Networking API, while the server stays ACTIVE: that is what Nova does
/// (a `network-vif-unplugged` event changes no vm_state; the instance itself still runs, and
/// the agent rebuilds the wiring, after which the port is ACTIVE again). A server in BUILD is
/// made ACTIVE only when every port is ACTIVE and holds its lease
/// (`store::servers::NicState::ready`), so a port that goes down first keeps it in BUILD.
pub async fn interfaces(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> NovaResult<Json<Value>> {
    let id = path_id(&id, NovaError::instance_not_found)?;
    let mut conn = state.store.read_conn().await?;
    visible(&mut conn, &ctx, id).await?;
    let mut attachments = Vec::new();
    for nic in repo::nic_states(&mut conn, id).await? {
        let Some(port) = store::ports::get(&mut conn, &nic.port_id).await? else {
            continue;
        };
        attachments.push(json!({
            "port_id": port.id,
            "net_id": port.network_id,
            "mac_addr": port.mac_address,
            "port_state": port.status,
            "fixed_ips": port.fixed_ips.iter().map(|ip| json!({
                "subnet_id": ip.subnet_id,
                "ip_address": ip.ip_address,
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(Json(json!({"interfaceAttachments": attachments})))
}

/// `DELETE /v2.1/servers/{id}` -> 204: the ports it created are deleted, given ones cleared
/// and unbound, its host's feed told.
pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> NovaResult<StatusCode> {
    let id = path_id(&id, NovaError::instance_not_found)?;
    let mut tx = state.store.begin_write().await?;
    nics::lock_server(&state, &mut tx, id).await?;
    let server = visible(&mut tx, &ctx, id).await?;
    if !ctx.can_write() {
        return Err(NovaError::forbidden("os_compute_api:servers:delete"));
    }
    let mut feed = FeedEntries::default();
    nics::release(&state, &mut tx, &server, &mut feed)
        .await
        .map_err(NovaError::from)?;
    repo::delete(&mut tx, id).await?;
    let revision = feed.record(&mut tx).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    Ok(StatusCode::NO_CONTENT)
}

/// A server the caller may see, or 404.
async fn visible(conn: &mut store::Conn, ctx: &RequestContext, id: &str) -> NovaResult<Server> {
    match repo::get(conn, id).await? {
        Some(s) if ctx.owns(&s.project_id) => Ok(s),
        _ => Err(NovaError::instance_not_found(id)),
    }
}
