//! nova-network's FlatDHCP networking as an ML2 mechanism driver.
//!
//! One Linux bridge per physical network (the bridge mapped to it, else the operator's
//! `flat_network_bridge`, `br100` by default) with the physical `flat_interface` enslaved; every
//! instance tap joins that bridge. Only flat networks are bound, only for normal vNICs, and only
//! on hosts with a live "Flat DHCP agent" that maps the segment's physical network.

use neutrino_sdk::prelude::*;

/// The driver's name, also used in pass reasons.
pub const NAME: &str = "flatdhcp";
/// The agent that must be alive on the binding host.
pub const AGENT_TYPE: &str = "Flat DHCP agent";
/// The only VIF type this driver produces.
pub const VIF_TYPE: &str = "bridge";
/// The vNIC types this driver binds.
const VNIC_TYPES: [VnicType; 1] = [VnicType::Normal];
/// The operator setting naming the bridge of a physical network without a bridge mapping.
pub const BRIDGE_KEY: &str = "flat_network_bridge";
/// nova-manage / devstack's conventional flat bridge.
pub const DEFAULT_BRIDGE: &str = "br100";
/// Every bridge this driver creates starts with this (it is the grant's link prefix).
const BRIDGE_PREFIX: &str = "br";

pub struct FlatDhcp;

impl Driver for FlatDhcp {
    fn describe() -> Description {
        Description {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            agent_type: AGENT_TYPE.into(),
            vnic_types: VNIC_TYPES.to_vec(),
            network_types: vec![NetworkType::Flat],
            vif_types: vec![VIF_TYPE.into()],
            capabilities: Grant {
                link_prefixes: vec!["tap".into(), BRIDGE_PREFIX.into()],
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
        let physnet = flat_physnet(&ctx.segment)?;
        let conf = &ctx.agent.configurations;
        let bridge = checked_bridge(bridge_for(conf, physnet))?;
        let mtu = segment_mtu(&ctx.network, &ctx.segment)?;
        let mut plan = PlanBuilder::new().bridge(&bridge, mtu);
        if let Some(iface) = pairs_get(&conf.interface_mappings, physnet) {
            checked_ifname(iface, "flat interface")?;
            plan = plan.attach(iface, &bridge).up(iface);
        }
        Ok(plan.up(&bridge).build())
    }

    fn teardown_network(ctx: NetworkContext) -> Result<Plan, DriverError> {
        flat_physnet(&ctx.segment)?;
        // As in nova-network, the flat bridge (and the interface enslaved to it) is shared by
        // every network on the physical network, so tearing one network down removes nothing.
        Ok(Vec::new())
    }

    fn plug_port(ctx: PortContext) -> Result<Plan, DriverError> {
        let tap = port_tap(&ctx)?;
        let bridge = plug_bridge(&ctx)?;
        let mac = port_mac(&ctx.port)?;
        let mtu = segment_mtu(&ctx.network, &ctx.segment)?;
        Ok(PlanBuilder::new()
            .tap_into_bridge(&tap, &bridge, &ctx.attachment, mac, mtu)
            .build())
    }

    fn unplug_port(ctx: PortContext) -> Result<Plan, DriverError> {
        let tap = port_tap(&ctx)?;
        // Removing the host end of the veth removes its peer in the attachment namespace too.
        Ok(PlanBuilder::new().remove_link(&tap, None).build())
    }
}

neutrino_sdk::export_driver!(FlatDhcp);

/// The binding decision: the SDK's agent checks, then the first segment with a bridge.
fn bind(ctx: &BindContext) -> BindDecision {
    bind_with_agents(ctx, NAME, AGENT_TYPE, &VNIC_TYPES, |agent, segment| {
        let bridge = try_segment(agent, segment)?;
        Ok(Bound {
            segment_id: segment.id.clone(),
            vif_type: VIF_TYPE.into(),
            vif_details: vec![
                pair("bridge_name", json_str(&bridge)),
                pair("port_filter", json_bool(false)),
                pair("connectivity", json_str("l2")),
            ],
        })
    })
}

/// The bridge this agent would use for `segment`, or why the segment does not fit.
fn try_segment(agent: &Agent, segment: &Segment) -> Result<String, String> {
    if segment.network_type != NetworkType::Flat {
        return Err(format!(
            "network type {} not supported",
            network_type_name(segment.network_type)
        ));
    }
    let Some(physnet) = segment.physical_network.as_deref() else {
        return Err("flat segment has no physical network".into());
    };
    let conf = &agent.configurations;
    if pairs_get(&conf.bridge_mappings, physnet).is_none()
        && pairs_get(&conf.interface_mappings, physnet).is_none()
    {
        return Err(format!(
            "physical network {physnet} not in bridge_mappings or interface_mappings of agent on {}",
            agent.host
        ));
    }
    let flat_interface = pairs_get(&conf.interface_mappings, physnet);
    if let Some(iface) = flat_interface.filter(|i| !names::is_valid_ifname(i)) {
        return Err(format!(
            "flat interface {iface:?} of physical network {physnet} is not a valid interface name"
        ));
    }
    let bridge = bridge_for(conf, physnet);
    if !names::is_valid_ifname(&bridge) {
        return Err(format!(
            "bridge {bridge:?} of physical network {physnet} is not a valid interface name"
        ));
    }
    if !bridge.starts_with(BRIDGE_PREFIX) {
        return Err(format!(
            "bridge {bridge} of physical network {physnet} is outside this driver's grant (link prefix {BRIDGE_PREFIX})"
        ));
    }
    Ok(bridge)
}

/// `bridge_mappings[physnet]`, else the operator's `flat_network_bridge` (`br100`).
fn bridge_for(conf: &AgentConfigurations, physnet: &str) -> String {
    match pairs_get(&conf.bridge_mappings, physnet) {
        Some(bridge) => bridge.to_string(),
        None => config::get_or(BRIDGE_KEY, DEFAULT_BRIDGE),
    }
}

/// The bridge a port plugs into: `bridge_name` from the binding, else the same rule as binding.
fn plug_bridge(ctx: &PortContext) -> Result<String, DriverError> {
    let bridge = match pairs_get(&ctx.vif_details, "bridge_name") {
        Some(text) => json_parse_str(text).ok_or_else(|| {
            DriverError::InvalidInput(format!(
                "vif_details bridge_name is not a JSON string: {text}"
            ))
        })?,
        None => bridge_for(&ctx.agent.configurations, flat_physnet(&ctx.segment)?),
    };
    checked_bridge(bridge)
}

/// The physical network of a flat segment; anything else was never bound by this driver.
fn flat_physnet(segment: &Segment) -> Result<&str, DriverError> {
    if segment.network_type != NetworkType::Flat {
        return Err(DriverError::InvalidInput(format!(
            "{NAME} binds only flat segments, not {} segment {}",
            network_type_name(segment.network_type),
            segment.id
        )));
    }
    segment.physical_network.as_deref().ok_or_else(|| {
        DriverError::InvalidInput(format!(
            "flat segment {} has no physical network",
            segment.id
        ))
    })
}

fn checked_bridge(bridge: String) -> Result<String, DriverError> {
    checked_ifname(&bridge, "bridge")?;
    if !bridge.starts_with(BRIDGE_PREFIX) {
        return Err(DriverError::InvalidInput(format!(
            "bridge {bridge} is outside this driver's grant (link prefix {BRIDGE_PREFIX})"
        )));
    }
    Ok(bridge)
}

/// The port's tap, after checking the call is one this driver can have been asked for.
fn port_tap(ctx: &PortContext) -> Result<String, DriverError> {
    flat_physnet(&ctx.segment)?;
    check_port_binding(ctx, NAME, VIF_TYPE)?;
    checked_ifname(&ctx.attachment.interface_name, "attachment interface")?;
    let tap = names::tap(&ctx.port.id);
    checked_ifname(&tap, "tap device of port")?;
    Ok(tap)
}

#[cfg(test)]
mod tests;
