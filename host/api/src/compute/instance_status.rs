//! `POST /internal/hosts/{host}/instances/status` with an [`InstanceStatusReport`] -> 204: the
//! agent of `host` tells which addresses its instances' DHCP clients hold, or that it gave up
//! on one. A server becomes ACTIVE when every NIC holds one of its port's fixed IPs and every
//! port is ACTIVE (`store::servers::refresh_status` checks the same when the ports' status
//! arrives later).

use neutrino_store as store;
use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::nics::{self, FeedEntries};
use crate::AppState;
use crate::error::{ApiResult, NeutronError};
use crate::internal::authorize_agent;
use neutrino_proto::InstanceStatusReport;
use neutrino_store::servers as repo;

pub async fn report(
    State(state): State<AppState>,
    Path(host): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<StatusCode> {
    authorize_agent(&state, &headers)?;
    let report: InstanceStatusReport = serde_json::from_slice(&bytes)
        .map_err(|e| NeutronError::bad_request(format!("Invalid instance status report: {e}")))?;
    for lease in report.instances.iter().flat_map(|i| &i.nics) {
        if let Some(ip) = &lease.leased_ip
            && ip.parse::<IpAddr>().is_err()
        {
            return Err(NeutronError::bad_request(format!(
                "Invalid leased_ip {ip:?} for port {}",
                lease.port_id
            )));
        }
    }
    let mut tx = state.store.begin_write().await?;
    let mut feed = FeedEntries::default();
    for instance in &report.instances {
        nics::lock_server(&state, &mut tx, &instance.id).await?;
        // An agent speaks only for its own host; a server deleted meanwhile is no error.
        let Some(server) = repo::get(&mut tx, &instance.id)
            .await?
            .filter(|s| s.host == host)
        else {
            tracing::debug!("{host} reported on {}, not one of its servers", instance.id);
            continue;
        };
        if let Some(error) = &instance.error {
            let fault = format!("The agent on {host} gave up on the instance: {error}");
            if repo::fail_build(&mut tx, &server.id, &fault).await? {
                nics::release(&state, &mut tx, &server, &mut feed).await?;
            }
            continue;
        }
        for lease in &instance.nics {
            repo::set_lease(
                &mut tx,
                &server.id,
                &lease.port_id,
                lease.leased_ip.as_deref(),
            )
            .await?;
        }
        repo::activate_if_ready(&mut tx, &server.id).await?;
    }
    let revision = feed.record(&mut tx).await?;
    store::commit(tx).await?;
    state.feed.committed(revision);
    Ok(StatusCode::NO_CONTENT)
}
