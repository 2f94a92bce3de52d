//! Port binding for the services: the port and network in the drivers' terms, the agents on the
//! host, and the mechanism manager's answer written back into the port.

use neutrino_store as store;
use std::time::SystemTime;

use neutrino_model as model;
use serde_json::Value;

use crate::Services;
use crate::error::{CoreResult, NeutronError};
use neutrino_runtime::binding::BindingOutcome;
use neutrino_store::networks::Network;
use neutrino_store::ports::Port;

/// Binds (or unbinds, with no host) `port`, setting its `binding:vif_type`,
/// `binding:vif_details` and the stored decisions.
pub async fn bind(
    state: &Services,
    port: &mut Port,
    network: &Network,
    conn: &mut store::Conn,
) -> CoreResult<()> {
    if port.binding_host.is_empty() {
        port.binding_vif_type = "unbound".into();
        port.binding_vif_details = "{}".into();
        port.binding_result = None;
        return Ok(());
    }
    let manager = state.mechanism_manager().await?;
    let mut agents = neutrino_store::agents::on_host(&mut *conn, &port.binding_host).await?;
    state.heartbeats.overlay(&mut agents);
    let now = SystemTime::now();
    let agents: Vec<model::Agent> = agents
        .iter()
        .map(|a| a.to_binding(now, state.config.agent_down_time))
        .collect();
    let (wit_port, wit_network) = (port_of(port), network_of(network));
    // Driver calls are synchronous and short (tens of microseconds each); they run on a
    // blocking thread so a slow or misbehaving driver never stalls the async workers.
    let result =
        tokio::task::spawn_blocking(move || manager.bind(&wit_port, &wit_network, &agents))
            .await
            .map_err(|e| NeutronError::internal(format!("binding task failed: {e}")))?;
    port.binding_vif_type = result.vif_type().to_string();
    port.binding_vif_details = match &result.outcome {
        BindingOutcome::Bound { vif_details, .. } => Value::Object(vif_details.clone()).to_string(),
        _ => "{}".into(),
    };
    port.binding_result = Some(serde_json::to_string(&result).map_err(NeutronError::internal)?);
    Ok(())
}

fn port_of(p: &Port) -> model::Port {
    let profile: serde_json::Map<String, Value> =
        serde_json::from_str(&p.binding_profile).unwrap_or_default();
    model::Port {
        id: p.id.clone(),
        network_id: p.network_id.clone(),
        name: p.name.clone(),
        mac_address: p.mac_address.clone(),
        fixed_ips: driver_fixed_ips(&p.fixed_ips),
        vnic_type: model::vnic_type_named(&p.binding_vnic_type).unwrap_or(model::VnicType::Normal),
        binding_host: p.binding_host.clone(),
        binding_profile: model::json_pairs(&profile),
        device_owner: p.device_owner.clone(),
        device_id: p.device_id.clone(),
        admin_state_up: p.admin_state_up,
    }
}

/// The network with its one segment (the provider attributes); the segment's id is the
/// network's.
pub fn network_of(n: &Network) -> model::Network {
    let mtu = u32::try_from(n.mtu).unwrap_or(1500);
    let segments = model::network_type_named(&n.network_type)
        .map(|network_type| model::Segment {
            id: n.id.clone(),
            network_type,
            physical_network: n.physical_network.clone(),
            segmentation_id: n.segmentation_id.and_then(|s| u32::try_from(s).ok()),
            mtu,
        })
        .into_iter()
        .collect();
    model::Network {
        id: n.id.clone(),
        name: n.name.clone(),
        project_id: n.project_id.clone(),
        mtu,
        admin_state_up: n.admin_state_up,
        shared: n.shared,
        external: n.external,
        segments,
    }
}

/// A port's addresses in the drivers' terms.
pub fn driver_fixed_ips(ips: &[neutrino_store::ports::FixedIp]) -> Vec<model::FixedIp> {
    ips.iter()
        .map(|f| model::FixedIp {
            subnet_id: f.subnet_id.clone(),
            ip_address: f.ip_address.clone(),
        })
        .collect()
}
