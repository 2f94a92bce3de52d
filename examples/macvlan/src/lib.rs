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
/// The vNIC types this driver binds.
const VNIC_TYPES: [VnicType; 1] = [VnicType::Normal];
/// The network types this driver binds.
const NETWORK_TYPES: [NetworkType; 2] = [NetworkType::Flat, NetworkType::Vlan];

pub struct Macvlan;

impl Driver for Macvlan {
    fn describe() -> Description {
        Description {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            agent_type: AGENT_TYPE.into(),
            vnic_types: VNIC_TYPES.to_vec(),
            network_types: NETWORK_TYPES.to_vec(),
            vif_types: vec![VIF_TYPE.into()],
            capabilities: Grant {
                // Links are created only inside the attachment namespace (always granted) and
                // as VLAN sub-interfaces `<phys>.<vid>` of granted physical interfaces.
                link_prefixes: vec![],
                ovs_bridges: vec![],
                namespace_prefixes: vec![],
                // The interfaces the host's agent maps (the operator's choice), never any other.
                physical_interfaces: vec![names::MAPPED_INTERFACES.into()],
            },
        }
    }

    /// Never an error: anything this driver cannot bind is a pass with the reason why. The SDK
    /// checks the vNIC type and the agents; the driver only says whether a segment fits one.
    fn bind_port(ctx: BindContext) -> Result<BindDecision, DriverError> {
        Ok(bind_with_agents(
            &ctx,
            NAME,
            AGENT_TYPE,
            &VNIC_TYPES,
            |agent, segment| {
                let uplink = Uplink::new(segment, agent)?;
                Ok(Bound {
                    segment_id: segment.id.clone(),
                    vif_type: VIF_TYPE.into(),
                    vif_details: vec![
                        pair("port_filter", json_bool(false)),
                        pair("connectivity", json_str("l2")),
                        pair("physical_interface", json_str(&uplink.physical)),
                        pair("macvtap_mode", json_str("bridge")),
                        pair("macvtap_source", json_str(uplink.source())),
                    ],
                })
            },
        ))
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
                    segment_mtu(&ctx.network, &ctx.segment)?,
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
        let mac = port_mac(&ctx.port)?;
        let mtu = segment_mtu(&ctx.network, &ctx.segment)?;
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
                Some(mac),
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
        if !NETWORK_TYPES.contains(&segment.network_type) {
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
                let physical = json_parse_str(text).ok_or_else(|| {
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
    check_segment_type(segment, NAME, &NETWORK_TYPES)
}

/// A plug/unplug must be for a binding this driver made, into a usable interface name.
fn check_port(ctx: &PortContext) -> Result<(), DriverError> {
    check_bindable(&ctx.segment)?;
    check_port_binding(ctx, NAME, VIF_TYPE)?;
    checked_ifname(&ctx.attachment.interface_name, "attachment interface")?;
    Ok(())
}

fn invalid(why: String) -> DriverError {
    DriverError::InvalidInput(why)
}

#[cfg(test)]
mod tests;
