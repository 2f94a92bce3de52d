//! Which bridge and which uplink a network gets on a host: the one rule shared by binding,
//! setup and teardown.

use neutrino_sdk::prelude::*;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{DEFAULT_VXLAN_GROUP, NAME, NETWORK_TYPES, VXLAN_GROUP_KEY};

/// The highest VXLAN network identifier (24 bits).
const MAX_VNI: u32 = (1 << 24) - 1;
/// The highest usable VLAN id.
const MAX_VLAN_ID: u32 = 4094;

/// A network's bridge on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bridge {
    /// `brq<network id>`, created and removed by this driver.
    Own(String),
    /// The operator's bridge from `bridge_mappings` (flat only); never created or removed.
    Mapped(String),
}

/// What connects an own bridge to the outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uplink {
    /// local networks, and flat networks on a mapped bridge (already wired by the operator).
    None,
    /// The physical interface itself (flat).
    Physical(String),
    /// A VLAN sub-interface of the physical interface.
    Vlan {
        name: String,
        parent: String,
        vlan_id: u16,
    },
    /// A VXLAN device.
    Vxlan {
        name: String,
        vni: u32,
        local_ip: String,
        /// The multicast group (`None`: unicast only, as with l2population).
        group: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub bridge: Bridge,
    pub uplink: Uplink,
}

impl Layout {
    /// The layout of `segment` of `network` on `agent`'s host, or why the segment does not fit
    /// that agent (a human reason, for a pass).
    pub fn new(network: &Network, segment: &Segment, agent: &Agent) -> Result<Self, String> {
        let conf = &agent.configurations;
        let ty = network_type_name(segment.network_type);
        let own = || -> Result<Bridge, String> {
            if network.id.is_empty() {
                return Err("network has an empty id".into());
            }
            Ok(Bridge::Own(valid(names::brq(&network.id), "bridge")?))
        };
        let physnet = || -> Result<&str, String> {
            segment
                .physical_network
                .as_deref()
                .ok_or_else(|| format!("{ty} segment has no physical network"))
        };
        match segment.network_type {
            NetworkType::Flat => {
                let physnet = physnet()?;
                if let Some(bridge) = pairs_get(&conf.bridge_mappings, physnet) {
                    let bridge = valid(
                        bridge.to_string(),
                        &format!("bridge of physical network {physnet}"),
                    )?;
                    return Ok(Layout {
                        bridge: Bridge::Mapped(bridge),
                        uplink: Uplink::None,
                    });
                }
                let Some(iface) = pairs_get(&conf.interface_mappings, physnet) else {
                    return Err(format!(
                        "physical network {physnet} not in interface_mappings or bridge_mappings of agent on {}",
                        agent.host
                    ));
                };
                let iface = valid(
                    iface.to_string(),
                    &format!("interface of physical network {physnet}"),
                )?;
                Ok(Layout {
                    bridge: own()?,
                    uplink: Uplink::Physical(iface),
                })
            }
            NetworkType::Vlan => {
                let physnet = physnet()?;
                let Some(iface) = pairs_get(&conf.interface_mappings, physnet) else {
                    return Err(format!(
                        "physical network {physnet} not in interface_mappings of agent on {}",
                        agent.host
                    ));
                };
                let parent = valid(
                    iface.to_string(),
                    &format!("interface of physical network {physnet}"),
                )?;
                let vlan_id = segmentation_id(segment, MAX_VLAN_ID)?;
                let vlan_id = u16::try_from(vlan_id)
                    .map_err(|_| format!("VLAN id {vlan_id} out of range"))?;
                let name = valid(
                    names::vlan_subinterface(&parent, vlan_id),
                    "VLAN sub-interface",
                )?;
                Ok(Layout {
                    bridge: own()?,
                    uplink: Uplink::Vlan {
                        name,
                        parent,
                        vlan_id,
                    },
                })
            }
            NetworkType::Vxlan => {
                if !conf.tunnel_types.iter().any(|t| t == ty) {
                    return Err(format!("tunnel type {ty} not in agent tunnel_types"));
                }
                let Some(local_ip) = conf.tunneling_ip.as_deref().filter(|ip| !ip.is_empty())
                else {
                    return Err(format!("agent on {} reports no tunneling_ip", agent.host));
                };
                if local_ip.parse::<IpAddr>().is_err() {
                    return Err(format!(
                        "tunneling_ip {local_ip:?} of agent on {} is not an IP address",
                        agent.host
                    ));
                }
                let vni = segmentation_id(segment, MAX_VNI)?;
                let name = valid(names::vxlan(vni), "VXLAN device")?;
                Ok(Layout {
                    bridge: own()?,
                    uplink: Uplink::Vxlan {
                        name,
                        vni,
                        local_ip: local_ip.to_string(),
                        group: vxlan_group(vni)?,
                    },
                })
            }
            NetworkType::Local => Ok(Layout {
                bridge: own()?,
                uplink: Uplink::None,
            }),
            NetworkType::Gre | NetworkType::Geneve => {
                Err(format!("network type {ty} not supported"))
            }
        }
    }

    /// The layout for setup/teardown: what binding decided must still hold, else the input is
    /// malformed.
    pub fn for_network(ctx: &NetworkContext) -> Result<Self, DriverError> {
        check_bindable(&ctx.segment)?;
        Layout::new(&ctx.network, &ctx.segment, &ctx.agent)
            .map_err(|why| DriverError::InvalidInput(format!("segment {}: {why}", ctx.segment.id)))
    }

    /// The bridge ports join.
    pub fn bridge_name(&self) -> &str {
        match &self.bridge {
            Bridge::Own(name) | Bridge::Mapped(name) => name,
        }
    }

    /// The bridge, when this driver creates (and removes) it.
    pub fn own_bridge(&self) -> Option<&str> {
        match &self.bridge {
            Bridge::Own(name) => Some(name),
            Bridge::Mapped(_) => None,
        }
    }
}

/// The bridge a port joins when the binding did not say: the mapped bridge of a flat physical
/// network, else `brq<network id>`.
pub fn bridge_rule(
    network: &Network,
    segment: &Segment,
    agent: &Agent,
) -> Result<String, DriverError> {
    let mapped = segment
        .physical_network
        .as_deref()
        .and_then(|physnet| pairs_get(&agent.configurations.bridge_mappings, physnet));
    if let (NetworkType::Flat, Some(bridge)) = (segment.network_type, mapped) {
        return Ok(bridge.to_string());
    }
    if network.id.is_empty() {
        return Err(DriverError::InvalidInput("network has an empty id".into()));
    }
    Ok(names::brq(&network.id))
}

/// Only segments of a type this driver binds reach setup/plug; anything else is malformed.
pub fn check_bindable(segment: &Segment) -> Result<(), DriverError> {
    check_segment_type(segment, NAME, &NETWORK_TYPES)
}

/// The multicast group of a VNI from the operator's `vxlan_group`: an address is used as is; a
/// CIDR spreads VNIs over its addresses (`network + (vni & hostmask)`, as the Linux bridge
/// agent does); an empty setting means no group.
fn vxlan_group(vni: u32) -> Result<Option<String>, String> {
    let configured = config::get_or(VXLAN_GROUP_KEY, DEFAULT_VXLAN_GROUP);
    let configured = configured.trim();
    if configured.is_empty() {
        return Ok(None);
    }
    group_of(configured, vni).map(Some).ok_or_else(|| {
        format!("config {VXLAN_GROUP_KEY} {configured:?} is not an IP address or CIDR")
    })
}

fn group_of(configured: &str, vni: u32) -> Option<String> {
    let (address, prefix) = match configured.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix.parse::<u32>().ok()?)),
        None => (configured, None),
    };
    let group = match (address.parse::<IpAddr>().ok()?, prefix) {
        (ip, None) => ip,
        (IpAddr::V4(ip), Some(prefix @ 0..=32)) => {
            let hostmask = u32::MAX.checked_shr(prefix).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(
                (u32::from(ip) & !hostmask) | (vni & hostmask),
            ))
        }
        (IpAddr::V6(ip), Some(prefix @ 0..=128)) => {
            let hostmask = u128::MAX.checked_shr(prefix).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(
                (u128::from(ip) & !hostmask) | (u128::from(vni) & hostmask),
            ))
        }
        _ => return None,
    };
    Some(group.to_string())
}

/// The segment's VLAN id / VNI, in `1..=max`.
fn segmentation_id(segment: &Segment, max: u32) -> Result<u32, String> {
    let ty = network_type_name(segment.network_type);
    match segment.segmentation_id {
        None => Err(format!("{ty} segment has no segmentation id")),
        Some(id) if !(1..=max).contains(&id) => {
            Err(format!("{ty} segmentation id {id} outside 1-{max}"))
        }
        Some(id) => Ok(id),
    }
}

fn valid(name: String, what: &str) -> Result<String, String> {
    if names::is_valid_ifname(&name) {
        Ok(name)
    } else {
        Err(format!("{what} {name:?} is not a valid interface name"))
    }
}
