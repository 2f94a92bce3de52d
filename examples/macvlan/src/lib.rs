//! An example mechanism driver written only against `neutrino-sdk`: Neutron's macvtap driver,
//! with a macvlan device standing in for libvirt's macvtap.
//!
//! A port on a flat or vlan network becomes a macvlan (mode bridge) on the physical interface
//! the "Macvtap agent" maps the network's physical network to (or on its VLAN sub-interface),
//! created directly as the attachment's interface in the attachment's namespace. No bridge, no
//! veth, no host-side device: so the grant needs no link prefix at all.
//!
//! Copy this crate to start a driver of your own; `README.md` walks through the rest.

use neutrino_sdk::prelude::*;

/// The driver's name, also used in pass reasons.
pub const NAME: &str = "macvlan";
/// The agent that must be alive on the binding host.
pub const AGENT_TYPE: &str = "Macvtap agent";
/// The only VIF type this driver produces.
pub const VIF_TYPE: &str = "macvtap";

pub struct Macvlan;

impl Driver for Macvlan {
    fn describe() -> Description {
        Description {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            agent_type: AGENT_TYPE.into(),
            vnic_types: vec![VnicType::Normal],
            network_types: vec![NetworkType::Flat, NetworkType::Vlan],
            vif_types: vec![VIF_TYPE.into()],
            capabilities: Grant {
                // Links are created only inside the attachment namespace (always granted) and
                // as VLAN sub-interfaces `<phys>.<vid>` of granted physical interfaces.
                link_prefixes: vec![],
                ovs_bridges: vec![],
                namespace_prefixes: vec![],
                physical_interfaces: vec!["*".into()],
            },
        }
    }

    /// Never an error: anything this driver cannot bind is a pass with the reason why.
    fn bind_port(ctx: BindContext) -> Result<BindDecision, DriverError> {
        let port = &ctx.port;
        if port.vnic_type != VnicType::Normal {
            return Ok(pass(format!(
                "vnic_type {} not supported by {NAME}",
                vnic_type_name(port.vnic_type)
            )));
        }
        let agents: Vec<&Agent> = agents_of_type(&ctx.agents, AGENT_TYPE).collect();
        if agents.is_empty() {
            return Ok(pass(format!("no {AGENT_TYPE} on host {}", ctx.host)));
        }
        let alive: Vec<&Agent> = agents.iter().copied().filter(|a| a.alive).collect();
        if alive.is_empty() {
            log::warn(&format!(
                "refusing to bind port {} to dead {AGENT_TYPE} on host {}",
                port.id, ctx.host
            ));
            return Ok(pass(format!(
                "{AGENT_TYPE} on host {} is not alive",
                ctx.host
            )));
        }
        if ctx.segments_to_bind.is_empty() {
            return Ok(pass(format!(
                "no segments to bind for port {} on host {}",
                port.id, ctx.host
            )));
        }
        let mut reasons: Vec<String> = Vec::new();
        for agent in alive {
            for segment in &ctx.segments_to_bind {
                match Uplink::new(segment, agent) {
                    Ok(uplink) => {
                        return Ok(BindDecision::Bound(Bound {
                            segment_id: segment.id.clone(),
                            vif_type: VIF_TYPE.into(),
                            vif_details: vec![
                                pair("port_filter", json_bool(false)),
                                pair("connectivity", json_str("l2")),
                                pair("physical_interface", json_str(&uplink.physical)),
                                pair("macvtap_mode", json_str("bridge")),
                                pair("macvtap_source", json_str(uplink.source())),
                            ],
                        }));
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
        Ok(pass(reasons.join("; ")))
    }

    /// A vlan network needs its sub-interface on the host; a flat one needs nothing.
    fn setup_network(ctx: NetworkContext) -> Result<Plan, DriverError> {
        let uplink = Uplink::for_setup(&ctx.segment, &ctx.agent)?;
        let mut plan = PlanBuilder::new();
        if let Some(vlan) = &uplink.vlan {
            plan = plan
                .vlan(
                    &vlan.name,
                    &uplink.physical,
                    vlan.id,
                    segment_mtu(&ctx.network, &ctx.segment),
                )
                .up(&vlan.name);
        }
        Ok(plan.build())
    }

    /// Only remove-* ops, so calling it again is harmless.
    fn teardown_network(ctx: NetworkContext) -> Result<Plan, DriverError> {
        let uplink = Uplink::for_setup(&ctx.segment, &ctx.agent)?;
        let mut plan = PlanBuilder::new();
        if let Some(vlan) = &uplink.vlan {
            plan = plan.remove_link(&vlan.name, None);
        }
        Ok(plan.build())
    }

    fn plug_port(ctx: PortContext) -> Result<Plan, DriverError> {
        let uplink = Uplink::for_port(&ctx)?;
        if ctx.port.mac_address.is_empty() {
            return Err(DriverError::InvalidInput(format!(
                "port {} has no MAC address",
                ctx.port.id
            )));
        }
        let mtu = segment_mtu(&ctx.network, &ctx.segment);
        let ns = ctx.attachment.namespace.as_str();
        let name = ctx.attachment.interface_name.as_str();
        let mut plan = PlanBuilder::new();
        if let Some(vlan) = &uplink.vlan {
            // Normally there from setup-network already; ensuring it again is idempotent.
            plan = plan
                .vlan(&vlan.name, &uplink.physical, vlan.id, mtu)
                .up(&vlan.name);
        }
        Ok(plan
            .macvlan(
                name,
                uplink.source(),
                MacvlanMode::Bridge,
                Some(ns),
                Some(&ctx.port.mac_address),
                mtu,
            )
            .up_in(name, ns)
            .build())
    }

    fn unplug_port(ctx: PortContext) -> Result<Plan, DriverError> {
        check_port(&ctx)?;
        let ns = ctx.attachment.namespace.as_str();
        Ok(PlanBuilder::new()
            .remove_link(&ctx.attachment.interface_name, Some(ns))
            .build())
    }
}

neutrino_sdk::export_driver!(Macvlan);

/// Where a network's macvlans hang: the mapped physical interface, or its VLAN sub-interface.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Uplink {
    physical: String,
    vlan: Option<Vlan>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Vlan {
    name: String,
    id: u16,
}

impl Uplink {
    /// The uplink of `segment` on `agent`'s host, or why the segment does not fit the agent.
    fn new(segment: &Segment, agent: &Agent) -> Result<Self, String> {
        let ty = network_type_name(segment.network_type);
        if !matches!(segment.network_type, NetworkType::Flat | NetworkType::Vlan) {
            return Err(format!("network type {ty} not supported"));
        }
        let Some(physnet) = segment.physical_network.as_deref() else {
            return Err(format!("{ty} segment has no physical network"));
        };
        let Some(physical) = pairs_get(&agent.configurations.interface_mappings, physnet) else {
            return Err(format!(
                "physical network {physnet} not in interface_mappings of agent on {}",
                agent.host
            ));
        };
        Uplink::on(physical, segment)
    }

    /// The uplink on a known physical interface.
    fn on(physical: &str, segment: &Segment) -> Result<Self, String> {
        if !names::is_valid_ifname(physical) {
            return Err(format!(
                "physical interface {physical:?} is not a valid interface name"
            ));
        }
        let vlan = match segment.network_type {
            NetworkType::Vlan => {
                let id = match segment.segmentation_id {
                    None => return Err("vlan segment has no segmentation id".into()),
                    Some(id @ 1..=4094) => id as u16,
                    Some(id) => return Err(format!("vlan segmentation id {id} outside 1-4094")),
                };
                Some(Vlan {
                    name: names::vlan_subinterface(physical, id),
                    id,
                })
            }
            _ => None,
        };
        Ok(Uplink {
            physical: physical.to_string(),
            vlan,
        })
    }

    /// For setup/teardown: binding checked all this, so a mismatch now is malformed input.
    fn for_setup(segment: &Segment, agent: &Agent) -> Result<Self, DriverError> {
        check_bindable(segment)?;
        Uplink::new(segment, agent).map_err(|why| invalid(format!("segment {}: {why}", segment.id)))
    }

    /// For plug: the physical interface recorded in the binding, else the agent's mapping.
    fn for_port(ctx: &PortContext) -> Result<Self, DriverError> {
        check_port(ctx)?;
        match pairs_get(&ctx.vif_details, "physical_interface") {
            Some(text) => {
                let physical = parse_json_str(text).ok_or_else(|| {
                    invalid(format!(
                        "vif_details physical_interface is not a JSON string: {text}"
                    ))
                })?;
                Uplink::on(&physical, &ctx.segment).map_err(invalid)
            }
            None => Uplink::for_setup(&ctx.segment, &ctx.agent),
        }
    }

    /// The macvlans' parent device.
    fn source(&self) -> &str {
        self.vlan.as_ref().map_or(&self.physical, |vlan| &vlan.name)
    }
}

fn check_bindable(segment: &Segment) -> Result<(), DriverError> {
    match segment.network_type {
        NetworkType::Flat | NetworkType::Vlan => Ok(()),
        other => Err(invalid(format!(
            "{NAME} never binds {} segments (segment {})",
            network_type_name(other),
            segment.id
        ))),
    }
}

fn check_port(ctx: &PortContext) -> Result<(), DriverError> {
    check_bindable(&ctx.segment)?;
    if ctx.vif_type != VIF_TYPE {
        return Err(invalid(format!(
            "{NAME} binds vif_type {VIF_TYPE}, not {}",
            ctx.vif_type
        )));
    }
    if ctx.port.id.is_empty() {
        return Err(invalid("port has an empty id".into()));
    }
    if !names::is_valid_ifname(&ctx.attachment.interface_name) {
        return Err(invalid(format!(
            "attachment interface {:?} is not a valid interface name",
            ctx.attachment.interface_name
        )));
    }
    Ok(())
}

fn pass(reason: String) -> BindDecision {
    log::debug(&format!("not binding: {reason}"));
    BindDecision::Pass(reason)
}

fn invalid(why: String) -> DriverError {
    DriverError::InvalidInput(why)
}

// Helpers the SDK does not provide (yet).

/// The segment's MTU, else the network's; `None` when neither is set.
fn segment_mtu(network: &Network, segment: &Segment) -> Option<u32> {
    [segment.mtu, network.mtu].into_iter().find(|mtu| *mtu > 0)
}

/// Neutron's spelling of a vNIC type.
fn vnic_type_name(vnic_type: VnicType) -> &'static str {
    match vnic_type {
        VnicType::Normal => "normal",
        VnicType::Direct => "direct",
        VnicType::Macvtap => "macvtap",
        VnicType::Baremetal => "baremetal",
        VnicType::DirectPhysical => "direct-physical",
        VnicType::VirtioForwarder => "virtio-forwarder",
        VnicType::SmartNic => "smart-nic",
        VnicType::Vdpa => "vdpa",
        VnicType::AcceleratorDirect => "accelerator-direct",
        VnicType::AcceleratorDirectPhysical => "accelerator-direct-physical",
        VnicType::RemoteManaged => "remote-managed",
    }
}

/// Neutron's spelling of a network type.
fn network_type_name(network_type: NetworkType) -> &'static str {
    match network_type {
        NetworkType::Flat => "flat",
        NetworkType::Vlan => "vlan",
        NetworkType::Vxlan => "vxlan",
        NetworkType::Gre => "gre",
        NetworkType::Geneve => "geneve",
        NetworkType::Local => "local",
    }
}

/// The string a JSON string literal in `vif-details` stands for (the common escapes only).
fn parse_json_str(text: &str) -> Option<String> {
    let inner = text.trim().strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(match chars.next()? {
                '"' => '"',
                '\\' => '\\',
                '/' => '/',
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                _ => return None,
            }),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
