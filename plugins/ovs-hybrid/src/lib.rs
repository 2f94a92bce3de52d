//! The Open vSwitch agent's mechanism driver, with os-vif's hybrid plug.
//!
//! Binds flat, vlan, local and tunnelled (vxlan) segments on hosts with a live "Open vSwitch
//! agent" whose configuration fits the segment (Neutron's `check_segment_for_agent`). Plugging
//! follows os-vif: with `ovs_hybrid_plug` the instance tap sits on a per-port Linux bridge
//! `qbr…` joined to the integration bridge by the veth pair `qvb…`/`qvo…`; without it the tap
//! itself is the OVS port.
//!
//! A VXLAN segment gets a kernel VXLAN device `vxlan-<vni>` from the agent's `tunneling_ip`,
//! joined to the integration bridge as an access port of the network's local VLAN. That is what
//! Neutron's `br-tun` flows do (local VLAN <-> tunnel id, flooding to the peers, learning) with
//! the kernel doing the tunnel: the access tag translates, the device's forwarding entries
//! (which the agent keeps from the server's l2population peers) flood and forward, and the
//! bridge's NORMAL action learns. It works the same with the userspace (netdev) datapath.
//!
//! A flat segment joins the integration bridge to its physical network's bridge by a patch
//! pair (`int-<network id>` on the integration bridge, an access port of the network's local
//! VLAN; `phy-<network id>` on the physical bridge, untagged; 11 characters of the id): what
//! Neutron's `int-br-ex`/`phy-br-ex` and their VLAN translation flows do for the one network a
//! flat physical network carries. Named after the network, the pair is the network's own, so
//! its teardown removes it: a pair left behind with a stale tag would join whatever network
//! gets that local VLAN next to the physical network.

use neutrino_sdk::prelude::*;

/// The driver's name, also used in pass reasons.
pub const NAME: &str = "ovs-hybrid";
/// The agent that must be alive on the binding host.
pub const AGENT_TYPE: &str = "Open vSwitch agent";
/// The only VIF type this driver produces.
pub const VIF_TYPE: &str = "ovs";
/// The vNIC types this driver binds.
const VNIC_TYPES: [VnicType; 1] = [VnicType::Normal];
/// The integration bridge when the agent reports none.
pub const DEFAULT_INTEGRATION_BRIDGE: &str = "br-int";
/// The datapath type when the agent reports none.
pub const DEFAULT_DATAPATH_TYPE: &str = "system";
/// The highest OVS port tag (4095 is OVS's "dead VLAN").
const MAX_OVS_TAG: u16 = 4095;
/// VXLAN's IANA port.
pub const VXLAN_PORT: u16 = 4789;
/// The highest VXLAN network identifier (24 bits).
const MAX_VNI: u32 = (1 << 24) - 1;
/// The OVS bridges this driver may touch (the grant's only entry).
const OVS_BRIDGE_GRANT: &str = "br-*";

/// The network types this driver can bind (tunnelled ones only when the agent reports them).
const NETWORK_TYPES: [NetworkType; 4] = [
    NetworkType::Flat,
    NetworkType::Vlan,
    NetworkType::Vxlan,
    NetworkType::Local,
];

pub struct OvsHybrid;

impl Driver for OvsHybrid {
    fn describe() -> Description {
        Description {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            agent_type: AGENT_TYPE.into(),
            vnic_types: VNIC_TYPES.to_vec(),
            network_types: NETWORK_TYPES.to_vec(),
            vif_types: vec![VIF_TYPE.into()],
            capabilities: Grant {
                link_prefixes: vec![
                    "tap".into(),
                    "qbr".into(),
                    "qvb".into(),
                    "qvo".into(),
                    "vxlan-".into(),
                    "int-".into(),
                    "phy-".into(),
                ],
                ovs_bridges: vec![OVS_BRIDGE_GRANT.into()],
                namespace_prefixes: vec![],
                physical_interfaces: vec![],
            },
        }
    }

    fn bind_port(ctx: BindContext) -> Result<BindDecision, DriverError> {
        Ok(bind(&ctx))
    }

    fn setup_network(ctx: NetworkContext) -> Result<Plan, DriverError> {
        check_bindable(&ctx.segment)?;
        let conf = &ctx.agent.configurations;
        let datapath = conf
            .datapath_type
            .as_deref()
            .unwrap_or(DEFAULT_DATAPATH_TYPE);
        let integration = checked_ovs_bridge(integration_bridge(conf).to_string())?;
        let mut plan = PlanBuilder::new().ovs_bridge(&integration, datapath);
        if let Some(physnet) = physnet_of(&ctx.segment)? {
            let Some(physical) = pairs_get(&conf.bridge_mappings, physnet) else {
                return Err(DriverError::InvalidInput(format!(
                    "physical network {physnet} not in bridge_mappings of agent on {}",
                    ctx.agent.host
                )));
            };
            let physical = checked_ovs_bridge(physical.to_string())?;
            plan = plan.ovs_bridge(&physical, datapath);
            if ctx.segment.network_type == NetworkType::Flat {
                let (int, phy) = patch_pair(&ctx.network.id)?;
                plan = plan
                    .ovs_port(
                        &integration,
                        &int,
                        OvsPortType::Patch(phy.clone()),
                        ctx.local_vlan,
                        Vec::new(),
                    )
                    .ovs_port(&physical, &phy, OvsPortType::Patch(int), None, Vec::new());
            }
        }
        if let Some(tunnel) = Tunnel::of(&ctx)? {
            let mtu = segment_mtu(&ctx.network, &ctx.segment)?;
            plan = plan
                .vxlan(VxlanSpec {
                    name: tunnel.device.clone(),
                    vni: tunnel.vni,
                    local_ip: Some(tunnel.local_ip),
                    group: None,
                    underlay_device: None,
                    dst_port: VXLAN_PORT,
                    mtu,
                })
                .up(&tunnel.device)
                .ovs_port(
                    &integration,
                    &tunnel.device,
                    OvsPortType::System,
                    ctx.local_vlan,
                    Vec::new(),
                );
        }
        Ok(plan.build())
    }

    fn teardown_network(ctx: NetworkContext) -> Result<Plan, DriverError> {
        check_bindable(&ctx.segment)?;
        // The integration bridge and the physical bridges are shared by every network on the
        // host; the agent owns them. A VXLAN network's own device goes, and a flat network's
        // patch pair (the one network of its physical network).
        let conf = &ctx.agent.configurations;
        let integration = checked_ovs_bridge(integration_bridge(conf).into())?;
        if ctx.segment.network_type == NetworkType::Flat
            && let Some(physnet) = physnet_of(&ctx.segment)?
            && let Some(physical) = pairs_get(&conf.bridge_mappings, physnet)
        {
            let physical = checked_ovs_bridge(physical.to_string())?;
            let (int, phy) = patch_pair(&ctx.network.id)?;
            return Ok(PlanBuilder::new()
                .remove_ovs_port(&integration, &int)
                .remove_ovs_port(&physical, &phy)
                .build());
        }
        let Some(tunnel) = Tunnel::of(&ctx)? else {
            return Ok(Vec::new());
        };
        Ok(PlanBuilder::new()
            .remove_ovs_port(&integration, &tunnel.device)
            .remove_link(&tunnel.device, None)
            .build())
    }

    fn plug_port(ctx: PortContext) -> Result<Plan, DriverError> {
        let wiring = Wiring::of(&ctx)?;
        let port = &ctx.port;
        let mac = port_mac(port)?;
        let mtu = segment_mtu(&ctx.network, &ctx.segment)?;
        if let Some(tag) = ctx.local_vlan.filter(|tag| *tag > MAX_OVS_TAG) {
            return Err(DriverError::InvalidInput(format!(
                "local VLAN {tag} is outside 0-{MAX_OVS_TAG}"
            )));
        }
        let ns = ctx.attachment.namespace.as_str();
        let peer = ctx.attachment.interface_name.as_str();
        // os-vif's Interface external_ids, as plain strings.
        let mut external_ids = vec![
            pair("iface-id", port.id.as_str()),
            pair("iface-status", "active"),
            pair("attached-mac", mac),
        ];
        if !port.device_id.is_empty() {
            external_ids.push(pair("vm-uuid", port.device_id.as_str()));
        }
        let tap = wiring.tap.as_str();
        let mac = Some(mac);
        let plan = match &wiring.hybrid {
            Some(Hybrid { qbr, qvb, qvo }) => PlanBuilder::new()
                .bridge(qbr, mtu)
                .veth(tap, peer, Some(ns), mac, mtu)
                .attach(tap, qbr)
                .veth(qvb, qvo, None, None, mtu)
                .attach(qvb, qbr)
                .up(qbr)
                .up(tap)
                .up(qvb)
                .up(qvo)
                .up_in(peer, ns)
                .ovs_port(
                    &wiring.bridge,
                    qvo,
                    OvsPortType::System,
                    ctx.local_vlan,
                    external_ids,
                ),
            None => PlanBuilder::new()
                .veth(tap, peer, Some(ns), mac, mtu)
                .up(tap)
                .up_in(peer, ns)
                .ovs_port(
                    &wiring.bridge,
                    tap,
                    OvsPortType::System,
                    ctx.local_vlan,
                    external_ids,
                ),
        };
        Ok(plan.build())
    }

    fn unplug_port(ctx: PortContext) -> Result<Plan, DriverError> {
        let wiring = Wiring::of(&ctx)?;
        // Removing one end of a veth removes both; removing what is already gone succeeds.
        let plan = match &wiring.hybrid {
            Some(Hybrid { qbr, qvb, qvo }) => PlanBuilder::new()
                .remove_ovs_port(&wiring.bridge, qvo)
                .remove_link(qvb, None)
                .remove_link(&wiring.tap, None)
                .remove_link(qbr, None),
            None => PlanBuilder::new()
                .remove_ovs_port(&wiring.bridge, &wiring.tap)
                .remove_link(&wiring.tap, None),
        };
        Ok(plan.build())
    }
}

neutrino_sdk::export_driver!(OvsHybrid);

/// A VXLAN segment's device on this host.
struct Tunnel {
    device: String,
    vni: u32,
    local_ip: String,
}

impl Tunnel {
    /// None for segments that are not VXLAN.
    fn of(ctx: &NetworkContext) -> Result<Option<Tunnel>, DriverError> {
        if ctx.segment.network_type != NetworkType::Vxlan {
            return Ok(None);
        }
        let invalid = |why: String| DriverError::InvalidInput(why);
        let local_ip = tunneling_ip(&ctx.agent).map_err(invalid)?;
        let vni = ctx
            .segment
            .segmentation_id
            .filter(|vni| (1..=MAX_VNI).contains(vni))
            .ok_or_else(|| {
                invalid(format!(
                    "vxlan segment {} has no segmentation id in 1-{MAX_VNI}",
                    ctx.segment.id
                ))
            })?;
        Ok(Some(Tunnel {
            device: checked_ifname(names::vxlan(vni), "VXLAN device")?,
            vni,
            local_ip: local_ip.to_string(),
        }))
    }
}

/// The agent's tunnel endpoint, which a VXLAN segment needs.
fn tunneling_ip(agent: &Agent) -> Result<&str, String> {
    let ip = agent
        .configurations
        .tunneling_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| format!("agent on {} reports no tunneling_ip", agent.host))?;
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!(
            "tunneling_ip {ip:?} of agent on {} is not an IP address",
            agent.host
        ));
    }
    Ok(ip)
}

/// The devices of one port, as os-vif names them.
struct Wiring {
    /// The integration bridge the port joins.
    bridge: String,
    tap: String,
    hybrid: Option<Hybrid>,
}

struct Hybrid {
    qbr: String,
    qvb: String,
    qvo: String,
}

impl Wiring {
    fn of(ctx: &PortContext) -> Result<Self, DriverError> {
        check_bindable(&ctx.segment)?;
        check_port_binding(ctx, NAME, VIF_TYPE)?;
        let port_id = ctx.port.id.as_str();
        checked_ifname(&ctx.attachment.interface_name, "attachment interface")?;
        let conf = &ctx.agent.configurations;
        let bridge = match pairs_get(&ctx.vif_details, "bridge_name") {
            Some(text) => json_parse_str(text).ok_or_else(|| {
                DriverError::InvalidInput(format!(
                    "vif_details bridge_name is not a JSON string: {text}"
                ))
            })?,
            None => integration_bridge(conf).to_string(),
        };
        let hybrid = match pairs_get(&ctx.vif_details, "ovs_hybrid_plug") {
            Some(text) => json_parse_bool(text).ok_or_else(|| {
                DriverError::InvalidInput(format!(
                    "vif_details ovs_hybrid_plug is not a JSON boolean: {text}"
                ))
            })?,
            None => conf.ovs_hybrid_plug.unwrap_or(true),
        };
        let wiring = Wiring {
            bridge: checked_ovs_bridge(bridge)?,
            tap: checked_ifname(names::tap(port_id), "tap device of port")?,
            hybrid: if hybrid {
                Some(Hybrid {
                    qbr: checked_ifname(names::qbr(port_id), "hybrid bridge of port")?,
                    qvb: checked_ifname(names::qvb(port_id), "veth of port")?,
                    qvo: checked_ifname(names::qvo(port_id), "veth of port")?,
                })
            } else {
                None
            },
        };
        Ok(wiring)
    }
}

/// The binding decision: the SDK's agent checks, then the first segment the agent can carry.
fn bind(ctx: &BindContext) -> BindDecision {
    bind_with_agents(ctx, NAME, AGENT_TYPE, &VNIC_TYPES, |agent, segment| {
        try_segment(agent, segment)?;
        Ok(Bound {
            segment_id: segment.id.clone(),
            vif_type: VIF_TYPE.into(),
            vif_details: vif_details(&agent.configurations),
        })
    })
}

/// Neutron's `check_segment_for_agent` for the OVS agent, plus the grant: `Ok` when `segment`
/// fits `agent`, else why not.
fn try_segment(agent: &Agent, segment: &Segment) -> Result<(), String> {
    let conf = &agent.configurations;
    let ty = network_type_name(segment.network_type);
    if !NETWORK_TYPES.contains(&segment.network_type) {
        return Err(format!("network type {ty} not supported"));
    }
    let tunnelled = !matches!(
        segment.network_type,
        NetworkType::Flat | NetworkType::Vlan | NetworkType::Local
    );
    if tunnelled && !conf.tunnel_types.iter().any(|t| t == ty) {
        return Err(format!("tunnel type {ty} not in agent tunnel_types"));
    }
    if tunnelled {
        tunneling_ip(agent)?;
    }
    let integration = integration_bridge(conf);
    if !in_grant(integration) {
        return Err(format!(
            "integration bridge {integration} is outside this driver's grant ({OVS_BRIDGE_GRANT})"
        ));
    }
    if matches!(segment.network_type, NetworkType::Flat | NetworkType::Vlan) {
        let Some(physnet) = segment.physical_network.as_deref() else {
            return Err(format!("{ty} segment has no physical network"));
        };
        let Some(bridge) = pairs_get(&conf.bridge_mappings, physnet) else {
            return Err(format!(
                "physical network {physnet} not in bridge_mappings of agent on {}",
                agent.host
            ));
        };
        if !in_grant(bridge) {
            return Err(format!(
                "bridge {bridge} of physical network {physnet} is outside this driver's grant ({OVS_BRIDGE_GRANT})"
            ));
        }
    }
    Ok(())
}

/// What Neutron's OVS driver reports, in its order.
fn vif_details(conf: &AgentConfigurations) -> Pairs {
    vec![
        pair("port_filter", json_bool(true)),
        pair("connectivity", json_str("l2")),
        pair(
            "ovs_hybrid_plug",
            json_bool(conf.ovs_hybrid_plug.unwrap_or(true)),
        ),
        pair(
            "datapath_type",
            json_str(
                conf.datapath_type
                    .as_deref()
                    .unwrap_or(DEFAULT_DATAPATH_TYPE),
            ),
        ),
        pair("bridge_name", json_str(integration_bridge(conf))),
    ]
}

fn integration_bridge(conf: &AgentConfigurations) -> &str {
    conf.integration_bridge
        .as_deref()
        .unwrap_or(DEFAULT_INTEGRATION_BRIDGE)
}

/// True when the OVS bridge `name` is covered by this driver's grant.
fn in_grant(name: &str) -> bool {
    let prefix = OVS_BRIDGE_GRANT.trim_end_matches('*');
    names::is_valid_ifname(name) && name.starts_with(prefix)
}

/// Only segments of a type this driver binds reach setup/plug; anything else is malformed.
fn check_bindable(segment: &Segment) -> Result<(), DriverError> {
    check_segment_type(segment, NAME, &NETWORK_TYPES)
}

/// The physical network of a flat/vlan segment (`None` for other types).
fn physnet_of(segment: &Segment) -> Result<Option<&str>, DriverError> {
    match segment.network_type {
        NetworkType::Flat | NetworkType::Vlan => segment
            .physical_network
            .as_deref()
            .map(Some)
            .ok_or_else(|| {
                DriverError::InvalidInput(format!(
                    "{} segment {} has no physical network",
                    network_type_name(segment.network_type),
                    segment.id
                ))
            }),
        _ => Ok(None),
    }
}

/// The patch ports joining the integration bridge to a flat network's physical bridge.
fn patch_pair(network_id: &str) -> Result<(String, String), DriverError> {
    let id = &network_id[..network_id.len().min(11)];
    Ok((
        checked_ifname(format!("int-{id}"), "patch port")?,
        checked_ifname(format!("phy-{id}"), "patch port")?,
    ))
}

fn checked_ovs_bridge(bridge: String) -> Result<String, DriverError> {
    if in_grant(&bridge) {
        Ok(bridge)
    } else {
        Err(DriverError::InvalidInput(format!(
            "OVS bridge {bridge:?} is not a valid name inside this driver's grant ({OVS_BRIDGE_GRANT})"
        )))
    }
}

#[cfg(test)]
mod tests;
