//! `POST /internal/hosts/{host}/instances/status` with an [`InstanceStatusReport`] -> 204: the
//! agent of `host` tells which addresses its instances' DHCP clients hold, or that it gave up
//! on one. A server becomes ACTIVE when every NIC holds one of its port's fixed IPs and every
//! port is ACTIVE (`store::servers::refresh_status` checks the same when the ports' status
//! arrives later).

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use crate::AppState;
use crate::error::{ApiResult, NeutronError};
use crate::internal::authorize_agent;
use neutrino_core::compute::instance_status;
use neutrino_proto::InstanceStatusReport;

pub async fn report(
    State(state): State<AppState>,
    Path(host): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<StatusCode> {
    authorize_agent(&state, &headers, &host).await?;
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
    instance_status::apply(&state, &host, &report).await?;
    Ok(StatusCode::NO_CONTENT)
}
