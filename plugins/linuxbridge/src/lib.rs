//! The (legacy) Linux bridge agent's mechanism driver.
//!
//! One Linux bridge per network, `brq<network id>`, unless a flat network's physical network is
//! in the agent's `bridge_mappings` (then that pre-existing bridge). Its uplink is the mapped
//! interface (flat), a VLAN sub-interface `<iface>.<vid>` (vlan), a `vxlan-<vni>` device
//! (vxlan) or nothing (local). Instance taps join the bridge.

use neutrino_sdk::prelude::*;

mod layout;
mod util;

use layout::{Layout, Uplink};
use util::{parse_json_str, segment_mtu, vnic_type_name};

/// The driver's name, also used in pass reasons.
pub const NAME: &str = "linuxbridge";
/// The agent that must be alive on the binding host.
pub const AGENT_TYPE: &str = "Linux bridge agent";
/// The only VIF type this driver produces.
pub const VIF_TYPE: &str = "bridge";
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
            vnic_types: vec![VnicType::Normal],
            network_types: NETWORK_TYPES.to_vec(),
            vif_types: vec![VIF_TYPE.into()],
            capabilities: Grant {
                link_prefixes: vec!["tap".into(), "brq".into(), "vxlan-".into()],
                ovs_bridges: vec![],
                namespace_prefixes: vec![],
                physical_interfaces: vec!["*".into()],
            },
        }
    }

    fn bind_port(ctx: BindContext) -> Result<BindDecision, DriverError> {
        Ok(bind(&ctx))
    }

    fn setup_network(ctx: NetworkContext) -> Result<Plan, DriverError> {
        let layout = Layout::for_network(&ctx)?;
        let mtu = segment_mtu(&ctx.network, &ctx.segment);
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
            } => {
                let group = config::get_or(VXLAN_GROUP_KEY, DEFAULT_VXLAN_GROUP);
                plan.vxlan(VxlanSpec {
                    name: name.clone(),
                    vni: *vni,
                    local_ip: local_ip.clone(),
                    group: (!group.trim().is_empty()).then(|| group.trim().to_string()),
                    underlay_device: None,
                    dst_port: VXLAN_PORT,
                    mtu,
                })
                .attach(name, bridge)
                .up(name)
            }
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
        if ctx.port.mac_address.is_empty() {
            return Err(DriverError::InvalidInput(format!(
                "port {} has no MAC address",
                ctx.port.id
            )));
        }
        let ns = ctx.attachment.namespace.as_str();
        let peer = ctx.attachment.interface_name.as_str();
        Ok(PlanBuilder::new()
            .veth(
                &tap,
                peer,
                Some(ns),
                Some(&ctx.port.mac_address),
                segment_mtu(&ctx.network, &ctx.segment),
            )
            .attach(&tap, &bridge)
            .up(&tap)
            .up_in(peer, ns)
            .build())
    }

    fn unplug_port(ctx: PortContext) -> Result<Plan, DriverError> {
        let (tap, _) = port_devices(&ctx)?;
        // Removing the host end of the veth removes its peer in the attachment namespace too.
        Ok(PlanBuilder::new().remove_link(&tap, None).build())
    }
}

neutrino_sdk::export_driver!(LinuxBridge);

/// The binding decision, in the order of checks every driver follows.
fn bind(ctx: &BindContext) -> BindDecision {
    let port = &ctx.port;
    if port.vnic_type != VnicType::Normal {
        return pass(format!(
            "vnic_type {} not supported by {NAME}",
            vnic_type_name(port.vnic_type)
        ));
    }
    let agents: Vec<&Agent> = agents_of_type(&ctx.agents, AGENT_TYPE).collect();
    if agents.is_empty() {
        return pass(format!("no {AGENT_TYPE} on host {}", ctx.host));
    }
    let alive: Vec<&Agent> = agents.iter().copied().filter(|a| a.alive).collect();
    if alive.is_empty() {
        for agent in &agents {
            log::warn(&format!(
                "refusing to bind port {} to dead agent {} on host {}",
                port.id, agent.id, ctx.host
            ));
        }
        return pass(format!("{AGENT_TYPE} on host {} is not alive", ctx.host));
    }
    if ctx.segments_to_bind.is_empty() {
        return pass(format!(
            "no segments to bind for port {} on host {}",
            port.id, ctx.host
        ));
    }
    let mut reasons: Vec<String> = Vec::new();
    for agent in alive {
        for segment in &ctx.segments_to_bind {
            match Layout::new(&ctx.network, segment, agent) {
                Ok(layout) => {
                    log::debug(&format!(
                        "bound port {} to segment {} on bridge {} (agent {})",
                        port.id,
                        segment.id,
                        layout.bridge_name(),
                        agent.id
                    ));
                    return BindDecision::Bound(Bound {
                        segment_id: segment.id.clone(),
                        vif_type: VIF_TYPE.into(),
                        vif_details: vec![
                            pair("port_filter", json_bool(true)),
                            pair("connectivity", json_str("l2")),
                            pair("bridge_name", json_str(layout.bridge_name())),
                        ],
                    });
                }
                Err(why) => {
                    let reason = format!("segment {}: {why}", segment.id);
                    if !reasons.contains(&reason) {
                        reasons.push(reason);
                    }
                }
            }
        }
    }
    pass(reasons.join("; "))
}

fn pass(reason: String) -> BindDecision {
    log::debug(&format!("not binding: {reason}"));
    BindDecision::Pass(reason)
}

/// The port's tap and the bridge it joins: `bridge_name` from the binding, else the same rule
/// as binding.
fn port_devices(ctx: &PortContext) -> Result<(String, String), DriverError> {
    layout::check_bindable(&ctx.segment)?;
    if ctx.vif_type != VIF_TYPE {
        return Err(DriverError::InvalidInput(format!(
            "{NAME} binds vif_type {VIF_TYPE}, not {}",
            ctx.vif_type
        )));
    }
    if ctx.port.id.is_empty() {
        return Err(DriverError::InvalidInput("port has an empty id".into()));
    }
    let tap = layout::checked_ifname(names::tap(&ctx.port.id), "tap device of port")?;
    layout::checked_ifname(
        ctx.attachment.interface_name.as_str(),
        "attachment interface",
    )?;
    let bridge = match pairs_get(&ctx.vif_details, "bridge_name") {
        Some(text) => parse_json_str(text).ok_or_else(|| {
            DriverError::InvalidInput(format!(
                "vif_details bridge_name is not a JSON string: {text}"
            ))
        })?,
        None => layout::bridge_rule(&ctx.network, &ctx.segment, &ctx.agent)?,
    };
    Ok((tap, layout::checked_ifname(bridge, "bridge")?))
}

#[cfg(test)]
mod tests;
