//! The (legacy) Linux bridge agent's mechanism driver.
//!
//! One Linux bridge per network, `brq<network id>`, unless a flat network's physical network is
//! in the agent's `bridge_mappings` (then that pre-existing bridge). Its uplink is the mapped
//! interface (flat), a VLAN sub-interface `<iface>.<vid>` (vlan), a `vxlan-<vni>` device
//! (vxlan) or nothing (local). Instance taps join the bridge.

use neutrino_sdk::prelude::*;

mod layout;

use layout::{Layout, Uplink};

/// The driver's name, also used in pass reasons.
pub const NAME: &str = "linuxbridge";
/// The agent that must be alive on the binding host.
pub const AGENT_TYPE: &str = "Linux bridge agent";
/// The only VIF type this driver produces.
pub const VIF_TYPE: &str = "bridge";
/// The vNIC types this driver binds.
const VNIC_TYPES: [VnicType; 1] = [VnicType::Normal];
/// The operator setting for the VXLAN multicast group (empty: no group, unicast only).
pub const VXLAN_GROUP_KEY: &str = "vxlan_group";
/// The Linux bridge agent's default `vxlan_group`.
pub const DEFAULT_VXLAN_GROUP: &str = "224.0.0.1";
/// IANA's VXLAN port, the one the agent uses.
pub const VXLAN_PORT: u16 = 4789;

/// The network types this driver can bind.
const NETWORK_TYPES: [NetworkType; 4] = [
    NetworkType::Flat,
    NetworkType::Vlan,
    NetworkType::Vxlan,
    NetworkType::Local,
];

pub struct LinuxBridge;

impl Driver for LinuxBridge {
    fn describe() -> Description {
        Description {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            agent_type: AGENT_TYPE.into(),
            vnic_types: VNIC_TYPES.to_vec(),
            network_types: NETWORK_TYPES.to_vec(),
            vif_types: vec![VIF_TYPE.into()],
            capabilities: Grant {
                link_prefixes: vec!["tap".into(), "brq".into(), "vxlan-".into()],
                ovs_bridges: vec![],
                namespace_prefixes: vec![],
                // The interfaces the host's agent maps (the operator's choice), never any other.
                physical_interfaces: vec![names::MAPPED_INTERFACES.into()],
            },
        }
    }

    fn bind_port(ctx: BindContext) -> Result<BindDecision, DriverError> {
        Ok(bind(&ctx))
    }

    fn setup_network(ctx: NetworkContext) -> Result<Plan, DriverError> {
        let layout = Layout::for_network(&ctx)?;
        let mtu = segment_mtu(&ctx.network, &ctx.segment)?;
        let Some(bridge) = layout.own_bridge() else {
            // A mapped bridge is the operator's: it exists already, with its uplink.
            return Ok(Vec::new());
        };
        let mut plan = PlanBuilder::new().bridge(bridge, mtu);
        plan = match &layout.uplink {
            Uplink::None => plan,
            Uplink::Physical(iface) => plan.attach(iface, bridge).up(iface),
            Uplink::Vlan {
                name,
                parent,
                vlan_id,
            } => plan
                .vlan(name, parent, *vlan_id, mtu)
                .attach(name, bridge)
                .up(name),
            Uplink::Vxlan {
                name,
                vni,
                local_ip,
                group,
            } => plan
                .vxlan(VxlanSpec {
                    name: name.clone(),
                    vni: *vni,
                    local_ip: Some(local_ip.clone()),
                    group: group.clone(),
                    underlay_device: None,
                    dst_port: VXLAN_PORT,
                    mtu,
                })
                .attach(name, bridge)
                .up(name),
        };
        Ok(plan.up(bridge).build())
    }

    fn teardown_network(ctx: NetworkContext) -> Result<Plan, DriverError> {
        let layout = Layout::for_network(&ctx)?;
        let Some(bridge) = layout.own_bridge() else {
            // Never remove the operator's mapped bridge (or the interface on it).
            return Ok(Vec::new());
        };
        let mut plan = PlanBuilder::new();
        match &layout.uplink {
            // The physical interface is not ours to remove; deleting the bridge releases it.
            Uplink::None | Uplink::Physical(_) => {}
            Uplink::Vlan { name, .. } | Uplink::Vxlan { name, .. } => {
                plan = plan.remove_link(name, None)
            }
        }
        Ok(plan.remove_link(bridge, None).build())
    }

    fn plug_port(ctx: PortContext) -> Result<Plan, DriverError> {
        let (tap, bridge) = port_devices(&ctx)?;
        let mac = port_mac(&ctx.port)?;
        let mtu = segment_mtu(&ctx.network, &ctx.segment)?;
        Ok(PlanBuilder::new()
            .tap_into_bridge(&tap, &bridge, &ctx.attachment, mac, mtu)
            .build())
    }

    fn unplug_port(ctx: PortContext) -> Result<Plan, DriverError> {
        let (tap, _) = port_devices(&ctx)?;
        // Removing the host end of the veth removes its peer in the attachment namespace too.
        Ok(PlanBuilder::new().remove_link(&tap, None).build())
    }
}

neutrino_sdk::export_driver!(LinuxBridge);

/// The binding decision: the SDK's agent checks, then the first segment with a layout.
fn bind(ctx: &BindContext) -> BindDecision {
    bind_with_agents(ctx, NAME, AGENT_TYPE, &VNIC_TYPES, |agent, segment| {
        let layout = Layout::new(&ctx.network, segment, agent)?;
        Ok(Bound {
            segment_id: segment.id.clone(),
            vif_type: VIF_TYPE.into(),
            vif_details: vec![
                pair("port_filter", json_bool(true)),
                pair("connectivity", json_str("l2")),
                pair("bridge_name", json_str(layout.bridge_name())),
            ],
        })
    })
}

/// The port's tap and the bridge it joins: `bridge_name` from the binding, else the same rule
/// as binding.
fn port_devices(ctx: &PortContext) -> Result<(String, String), DriverError> {
    layout::check_bindable(&ctx.segment)?;
    check_port_binding(ctx, NAME, VIF_TYPE)?;
    let tap = checked_ifname(names::tap(&ctx.port.id), "tap device of port")?;
    checked_ifname(
        ctx.attachment.interface_name.as_str(),
        "attachment interface",
    )?;
    let bridge = match pairs_get(&ctx.vif_details, "bridge_name") {
        Some(text) => json_parse_str(text).ok_or_else(|| {
            DriverError::InvalidInput(format!(
                "vif_details bridge_name is not a JSON string: {text}"
            ))
        })?,
        None => layout::bridge_rule(&ctx.network, &ctx.segment, &ctx.agent)?,
    };
    Ok((tap, checked_ifname(bridge, "bridge")?))
}

#[cfg(test)]
mod tests;
