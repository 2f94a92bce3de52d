//! Calling a driver natively, as plain Rust, in unit tests.
//!
//! The same `impl Driver` that is exported as a component is an ordinary type natively: call
//! `MyDriver::bind_port(ctx)` directly. Config comes from [`with_config`], logs go to
//! [`take_logs`], and the fixtures below follow Neutron's mechanism-driver test base: a live,
//! well-configured agent ([`live_agents`]), the same agent dead ([`dead_agents`]), and agents of
//! the right type that lack the mappings ([`bad_agents`]).
//!
//! To call a driver `D` with them: [`bind_with`] binds the fixture port, [`bound_port_context`]
//! is the plug context after such a binding, and [`expect_bound`], [`expect_pass`] and
//! [`expect_invalid`] unwrap the answers, panicking with what the driver said instead.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;

use crate::Driver;
use crate::log::Level;
use crate::names;
use crate::types::{
    Agent, AgentConfigurations, Attachment, AttachmentKind, BindContext, BindDecision, Bound,
    DriverError, FixedIp, Network, NetworkContext, NetworkType, Port, PortContext, Segment,
    VnicType,
};
use crate::{network_type_name, pair};

thread_local! {
    static CONFIG: RefCell<BTreeMap<String, String>> = const { RefCell::new(BTreeMap::new()) };
    static LOGS: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with the given operator config visible through [`crate::config`].
pub fn with_config<R>(config: &[(&str, &str)], f: impl FnOnce() -> R) -> R {
    let previous = CONFIG.with(|c| {
        c.replace(
            config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    });
    let result = f();
    CONFIG.with(|c| c.replace(previous));
    result
}

/// The log lines the driver wrote on this thread since the last call.
pub fn take_logs() -> Vec<(Level, String)> {
    LOGS.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn native_config_get(key: &str) -> Option<String> {
    CONFIG.with(|c| c.borrow().get(key).cloned())
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn native_config_keys() -> Vec<String> {
    CONFIG.with(|c| c.borrow().keys().cloned().collect())
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn native_log(level: Level, message: &str) {
    LOGS.with(|l| l.borrow_mut().push((level, message.to_string())));
}

pub const HOST: &str = "compute-1";
pub const PORT_ID: &str = "3f1c2a9e-7b44-4f7e-9a51-0c8d2b6f1e11";
pub const NETWORK_ID: &str = "9b7e2c1d-55aa-4c3e-8f10-2d4b6a8c0e12";
pub const INSTANCE_ID: &str = "c0ffee00-1111-4222-8333-444455556666";
pub const PHYSNET: &str = "physnet1";

/// A port on [`NETWORK_ID`] owned by an instance, bound to [`HOST`].
pub fn port() -> Port {
    Port {
        id: PORT_ID.into(),
        network_id: NETWORK_ID.into(),
        name: "vm-port".into(),
        mac_address: "fa:16:3e:12:34:56".into(),
        fixed_ips: vec![FixedIp {
            subnet_id: "5d1f0e3a-0000-4000-8000-000000000001".into(),
            ip_address: "10.0.0.5".into(),
        }],
        vnic_type: VnicType::Normal,
        binding_host: HOST.into(),
        binding_profile: vec![],
        device_owner: "compute:nova".into(),
        device_id: INSTANCE_ID.into(),
        admin_state_up: true,
    }
}

/// A one-segment network of the given type: flat and vlan on [`PHYSNET`], vlan 100, vxlan
/// VNI 1001, gre/geneve id 2001.
pub fn network(network_type: NetworkType) -> Network {
    let (physical_network, segmentation_id, mtu) = match network_type {
        NetworkType::Flat => (Some(PHYSNET.to_string()), None, 1500),
        NetworkType::Vlan => (Some(PHYSNET.to_string()), Some(100), 1500),
        NetworkType::Vxlan => (None, Some(1001), 1450),
        NetworkType::Gre | NetworkType::Geneve => (None, Some(2001), 1450),
        NetworkType::Local => (None, None, 1500),
    };
    Network {
        id: NETWORK_ID.into(),
        name: "net".into(),
        project_id: "demo".into(),
        mtu,
        admin_state_up: true,
        shared: false,
        external: false,
        segments: vec![Segment {
            id: format!("seg-{}", network_type_name(network_type)),
            network_type,
            physical_network,
            segmentation_id,
            mtu,
        }],
    }
}

/// `flat`, `vlan`, ... as Neutron spells network types (the same as
/// [`crate::network_type_name`]).
pub use crate::util::network_type_name as type_name;

/// Configurations that map [`PHYSNET`] everywhere and enable VXLAN.
pub fn full_configurations() -> AgentConfigurations {
    AgentConfigurations {
        bridge_mappings: vec![pair(PHYSNET, "br-phys1")],
        interface_mappings: vec![pair(PHYSNET, "eth1")],
        tunnel_types: vec!["vxlan".into()],
        tunneling_ip: Some("192.0.2.10".into()),
        integration_bridge: Some("br-int".into()),
        datapath_type: Some("netdev".into()),
        ovs_hybrid_plug: Some(true),
        extra: vec![],
    }
}

/// One agent of `agent_type` on [`HOST`].
pub fn agent(agent_type: &str, alive: bool, configurations: AgentConfigurations) -> Agent {
    Agent {
        id: "a9a9a9a9-0000-4000-8000-00000000000a".into(),
        agent_type: agent_type.into(),
        binary: "neutrino-agent".into(),
        host: HOST.into(),
        alive,
        admin_state_up: true,
        configurations,
    }
}

/// A live, fully configured agent of `agent_type` on [`HOST`].
pub fn live_agent(agent_type: &str) -> Agent {
    agent(agent_type, true, full_configurations())
}

/// A live agent of `agent_type` on [`HOST`] whose [`full_configurations`] `edit` changes.
pub fn agent_with(agent_type: &str, edit: impl FnOnce(&mut AgentConfigurations)) -> Agent {
    let mut configurations = full_configurations();
    edit(&mut configurations);
    agent(agent_type, true, configurations)
}

/// A live, fully configured agent of `agent_type` (Neutron's `AGENTS`).
pub fn live_agents(agent_type: &str) -> Vec<Agent> {
    vec![live_agent(agent_type)]
}

/// The same agent, dead (Neutron's `AGENTS_DEAD`).
pub fn dead_agents(agent_type: &str) -> Vec<Agent> {
    vec![agent(agent_type, false, full_configurations())]
}

/// A live agent with no mappings and no tunnels (Neutron's `AGENTS_BAD`), plus a live agent of
/// another type that is fully configured.
pub fn bad_agents(agent_type: &str) -> Vec<Agent> {
    vec![
        agent(
            agent_type,
            true,
            AgentConfigurations {
                bridge_mappings: vec![pair("other-physnet", "br-other")],
                interface_mappings: vec![pair("other-physnet", "eth9")],
                tunnel_types: vec![],
                tunneling_ip: None,
                integration_bridge: Some("br-int".into()),
                datapath_type: Some("netdev".into()),
                ovs_hybrid_plug: Some(true),
                extra: vec![],
            },
        ),
        agent("Some other agent", true, full_configurations()),
    ]
}

/// A level-0 bind context for `port` on `network` with `agents` on the host.
pub fn bind_context(port: Port, network: Network, agents: Vec<Agent>) -> BindContext {
    BindContext {
        host: port.binding_host.clone(),
        segments_to_bind: network.segments.clone(),
        port,
        network,
        level: 0,
        upper_levels: vec![],
        agents,
    }
}

/// A setup/teardown context for `network`'s first segment.
pub fn network_context(network: Network, agent: Agent) -> NetworkContext {
    NetworkContext {
        host: HOST.into(),
        segment: network.segments[0].clone(),
        network,
        agent,
        local_vlan: Some(1),
    }
}

/// The attachment of an instance NIC: `eth0` in namespace `inst-<instance id prefix>`.
pub fn instance_attachment() -> Attachment {
    Attachment {
        kind: AttachmentKind::Instance,
        namespace: format!("inst-{}", &INSTANCE_ID[..8]),
        interface_name: "eth0".into(),
    }
}

/// The attachment of a DHCP port of `network_id`: the device `ns-<port id prefix>`
/// ([`names::dhcp_ns_device`]) in the namespace `qdhcp-<network id>`, as Neutron's DHCP agent
/// names them.
pub fn dhcp_attachment(network_id: &str, port_id: &str) -> Attachment {
    Attachment {
        kind: AttachmentKind::Dhcp,
        namespace: format!("qdhcp-{network_id}"),
        interface_name: names::dhcp_ns_device(port_id),
    }
}

/// A plug/unplug context for `port` after a binding with `vif_type` and `vif_details`.
pub fn port_context(
    port: Port,
    network: Network,
    agent: Agent,
    vif_type: &str,
    vif_details: Vec<(String, String)>,
) -> PortContext {
    PortContext {
        host: HOST.into(),
        segment: network.segments[0].clone(),
        port,
        network,
        vif_type: vif_type.into(),
        vif_details,
        agent,
        local_vlan: Some(1),
        attachment: instance_attachment(),
    }
}

/// Driver `D`'s decision for the fixture [`port`] on `network` with `agents` on the host.
/// Panics if `bind_port` returns an error, which it never may.
#[track_caller]
pub fn bind_with<D: Driver>(network: Network, agents: Vec<Agent>) -> BindDecision {
    match D::bind_port(bind_context(port(), network, agents)) {
        Ok(decision) => decision,
        Err(e) => panic!("bind_port must never return an error, got {e:?}"),
    }
}

/// The plug/unplug context for the fixture [`port`] on `network(network_type)` with `agent`,
/// after driver `D` bound it there ([`bind_with`]; panics if it passes).
#[track_caller]
pub fn bound_port_context<D: Driver>(network_type: NetworkType, agent: Agent) -> PortContext {
    let bound = expect_bound(bind_with::<D>(network(network_type), vec![agent.clone()]));
    port_context(
        port(),
        network(network_type),
        agent,
        &bound.vif_type,
        bound.vif_details,
    )
}

/// The binding a decision made; panics with the decision when it is not a binding.
#[track_caller]
pub fn expect_bound(decision: BindDecision) -> Bound {
    match decision {
        BindDecision::Bound(bound) => bound,
        BindDecision::Pass(reason) => panic!("expected a binding, but the driver passed: {reason}"),
        other => panic!("expected a binding, got {other:?}"),
    }
}

/// The reason of a pass; panics with the decision when it is not a pass.
#[track_caller]
pub fn expect_pass(decision: BindDecision) -> String {
    match decision {
        BindDecision::Pass(reason) => reason,
        BindDecision::Bound(bound) => panic!("expected a pass, but the driver bound: {bound:?}"),
        other => panic!("expected a pass, got {other:?}"),
    }
}

/// The message of an `invalid-input` error; panics with the result when it is anything else.
#[track_caller]
pub fn expect_invalid<T: Debug>(result: Result<T, DriverError>) -> String {
    match result {
        Err(DriverError::InvalidInput(why)) => why,
        other => panic!("expected an invalid-input error, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_segments_are_named_after_their_type() {
        for (ty, id) in [
            (NetworkType::Flat, "seg-flat"),
            (NetworkType::Vlan, "seg-vlan"),
            (NetworkType::Vxlan, "seg-vxlan"),
            (NetworkType::Gre, "seg-gre"),
            (NetworkType::Geneve, "seg-geneve"),
            (NetworkType::Local, "seg-local"),
        ] {
            let net = network(ty);
            assert_eq!(net.segments.len(), 1);
            assert_eq!(net.segments[0].id, id);
            assert_eq!(net.segments[0].network_type, ty);
            assert_eq!(type_name(ty), &id[4..]);
        }
    }

    #[test]
    fn expectations_unwrap_what_they_expect() {
        let bound = Bound {
            segment_id: "seg-flat".into(),
            vif_type: "bridge".into(),
            vif_details: vec![],
        };
        assert_eq!(expect_bound(BindDecision::Bound(bound.clone())), bound);
        assert_eq!(expect_pass(BindDecision::Pass("why".into())), "why");
        let result: Result<(), DriverError> = Err(DriverError::InvalidInput("bad".into()));
        assert_eq!(expect_invalid(result), "bad");
    }

    #[test]
    #[should_panic(expected = "expected a binding, but the driver passed: no agent")]
    fn expect_bound_panics_with_the_pass_reason() {
        expect_bound(BindDecision::Pass("no agent".into()));
    }

    #[test]
    #[should_panic(expected = "expected a pass, but the driver bound: Bound {")]
    fn expect_pass_panics_with_the_binding() {
        expect_pass(BindDecision::Bound(Bound {
            segment_id: "seg-flat".into(),
            vif_type: "bridge".into(),
            vif_details: vec![],
        }));
    }

    #[test]
    #[should_panic(expected = "expected an invalid-input error, got Err(DriverError::Unsupported(")]
    fn expect_invalid_panics_with_any_other_result() {
        expect_invalid::<()>(Err(DriverError::Unsupported("later".into())));
    }

    #[test]
    fn agents_are_live_and_fully_configured_unless_edited() {
        let live = live_agent("A");
        assert!(live.alive);
        assert_eq!(live.configurations, full_configurations());
        assert_eq!(live_agents("A"), vec![live.clone()]);
        let edited = agent_with("A", |c| c.tunnel_types.clear());
        assert!(edited.alive && edited.configurations.tunnel_types.is_empty());
        assert_eq!(
            edited.configurations.bridge_mappings,
            live.configurations.bridge_mappings
        );
    }

    #[test]
    fn dhcp_attachment_follows_the_dhcp_agent() {
        assert_eq!(
            dhcp_attachment(NETWORK_ID, PORT_ID),
            Attachment {
                kind: AttachmentKind::Dhcp,
                namespace: "qdhcp-9b7e2c1d-55aa-4c3e-8f10-2d4b6a8c0e12".into(),
                interface_name: "ns-3f1c2a9e-7b".into(),
            }
        );
    }
}
