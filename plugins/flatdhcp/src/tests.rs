use neutrino_sdk::prelude::*;
use neutrino_sdk::testing::{
    self, HOST, PORT_ID, agent_with, bad_agents, bind_context, dead_agents, expect_bound,
    expect_invalid, expect_pass, live_agent, live_agents, network, network_context, port,
    with_config,
};

use super::*;

const TAP: &str = "tap3f1c2a9e-7b";

/// The SDK's [`testing::bind_with`] for this driver.
fn bind_with(network: Network, agents: Vec<Agent>) -> BindDecision {
    testing::bind_with::<FlatDhcp>(network, agents)
}

/// An agent that maps physnet1 only to an interface (no bridge mapping).
fn interface_only_agent() -> Agent {
    agent_with(AGENT_TYPE, |c| c.bridge_mappings.clear())
}

/// The port bound by a live agent to the flat network, ready to plug.
fn bound_port_context() -> PortContext {
    testing::bound_port_context::<FlatDhcp>(NetworkType::Flat, live_agent(AGENT_TYPE))
}

#[test]
fn describe_matches_the_contract() {
    let d = FlatDhcp::describe();
    assert_eq!(d.name, "flatdhcp");
    assert_eq!(d.agent_type, "Flat DHCP agent");
    assert_eq!(d.version, "0.1.0");
    assert_eq!(d.vnic_types, vec![VnicType::Normal]);
    assert_eq!(d.network_types, vec![NetworkType::Flat]);
    assert_eq!(d.vif_types, vec!["bridge".to_string()]);
    assert_eq!(
        d.capabilities.link_prefixes,
        vec!["tap".to_string(), "br".to_string()]
    );
    assert!(d.capabilities.ovs_bridges.is_empty());
    assert!(d.capabilities.namespace_prefixes.is_empty());
    assert_eq!(
        d.capabilities.physical_interfaces,
        vec![names::MAPPED_INTERFACES.to_string()]
    );
}

#[test]
fn live_agent_binds_flat_to_the_mapped_bridge() {
    let b = expect_bound(bind_with(
        network(NetworkType::Flat),
        live_agents(AGENT_TYPE),
    ));
    assert_eq!(b.segment_id, "seg-flat");
    assert_eq!(b.vif_type, "bridge");
    assert_eq!(
        b.vif_details,
        vec![
            pair("bridge_name", "\"br-phys1\""),
            pair("port_filter", "false"),
            pair("connectivity", "\"l2\""),
        ]
    );
}

#[test]
fn without_a_bridge_mapping_the_flat_network_bridge_is_used() {
    let b = expect_bound(bind_with(
        network(NetworkType::Flat),
        vec![interface_only_agent()],
    ));
    assert_eq!(pairs_get(&b.vif_details, "bridge_name"), Some("\"br100\""));
    let b = with_config(&[("flat_network_bridge", "br-flat")], || {
        expect_bound(bind_with(
            network(NetworkType::Flat),
            vec![interface_only_agent()],
        ))
    });
    assert_eq!(
        pairs_get(&b.vif_details, "bridge_name"),
        Some("\"br-flat\"")
    );
}

#[test]
fn a_configured_bridge_outside_the_grant_is_refused() {
    let reason = with_config(&[("flat_network_bridge", "virbr0")], || {
        expect_pass(bind_with(
            network(NetworkType::Flat),
            vec![interface_only_agent()],
        ))
    });
    assert_eq!(
        reason,
        "segment seg-flat: bridge virbr0 of physical network physnet1 is outside this driver's grant (link prefix br)"
    );
    let reason = with_config(&[("flat_network_bridge", "br-much-too-long-name")], || {
        expect_pass(bind_with(
            network(NetworkType::Flat),
            vec![interface_only_agent()],
        ))
    });
    assert!(reason.contains("not a valid interface name"), "{reason}");
}

#[test]
fn unsupported_vnic_type_passes_first() {
    let mut p = port();
    p.vnic_type = VnicType::Direct;
    // Even with no agent at all, the vnic type is the reason given.
    let d = FlatDhcp::bind_port(bind_context(p, network(NetworkType::Flat), vec![])).unwrap();
    assert_eq!(expect_pass(d), "vnic_type direct not supported by flatdhcp");
}

#[test]
fn absent_agent_passes() {
    let reason = expect_pass(bind_with(network(NetworkType::Flat), vec![]));
    assert_eq!(reason, format!("no Flat DHCP agent on host {HOST}"));
    let reason = expect_pass(bind_with(
        network(NetworkType::Flat),
        live_agents("Open vSwitch agent"),
    ));
    assert_eq!(reason, "no Flat DHCP agent on host compute-1");
}

#[test]
fn dead_agent_passes_and_warns() {
    testing::take_logs();
    let reason = expect_pass(bind_with(
        network(NetworkType::Flat),
        dead_agents(AGENT_TYPE),
    ));
    assert_eq!(reason, "Flat DHCP agent on host compute-1 is not alive");
    let logs = testing::take_logs();
    assert!(
        logs.iter()
            .any(|(level, line)| *level == log::Level::Warn && line.contains("dead agent")),
        "{logs:?}"
    );
}

#[test]
fn bad_agent_passes_with_the_physnet_reason() {
    let reason = expect_pass(bind_with(
        network(NetworkType::Flat),
        bad_agents(AGENT_TYPE),
    ));
    assert_eq!(
        reason,
        "segment seg-flat: physical network physnet1 not in bridge_mappings or interface_mappings of agent on compute-1"
    );
}

#[test]
fn unsupported_network_types_pass() {
    for (ty, name) in [
        (NetworkType::Vlan, "vlan"),
        (NetworkType::Vxlan, "vxlan"),
        (NetworkType::Gre, "gre"),
        (NetworkType::Geneve, "geneve"),
        (NetworkType::Local, "local"),
    ] {
        let reason = expect_pass(bind_with(network(ty), live_agents(AGENT_TYPE)));
        assert_eq!(
            reason,
            format!("segment seg-{name}: network type {name} not supported")
        );
    }
}

#[test]
fn first_fitting_segment_wins_and_reasons_list_every_segment() {
    let mut multi = network(NetworkType::Flat);
    let mut vlan = network(NetworkType::Vlan).segments.remove(0);
    vlan.id = "seg-a".into();
    let mut flat2 = multi.segments[0].clone();
    flat2.id = "seg-b".into();
    flat2.physical_network = Some("physnet2".into());
    multi.segments = vec![vlan.clone(), flat2.clone(), multi.segments[0].clone()];
    let b = expect_bound(bind_with(multi.clone(), live_agents(AGENT_TYPE)));
    assert_eq!(b.segment_id, "seg-flat");

    multi.segments = vec![vlan, flat2];
    let reason = expect_pass(bind_with(multi, live_agents(AGENT_TYPE)));
    assert_eq!(
        reason,
        "segment seg-a: network type vlan not supported; segment seg-b: physical network physnet2 not in bridge_mappings or interface_mappings of agent on compute-1"
    );
}

#[test]
fn a_live_agent_binds_even_beside_a_dead_one() {
    let mut agents = dead_agents(AGENT_TYPE);
    agents.push(live_agent(AGENT_TYPE));
    expect_bound(bind_with(network(NetworkType::Flat), agents));
}

#[test]
fn setup_creates_the_bridge_and_enslaves_the_flat_interface() {
    let ctx = network_context(network(NetworkType::Flat), live_agent(AGENT_TYPE));
    let plan = FlatDhcp::setup_network(ctx.clone()).unwrap();
    assert_eq!(
        plan,
        PlanBuilder::new()
            .bridge("br-phys1", Some(1500))
            .attach("eth1", "br-phys1")
            .up("eth1")
            .up("br-phys1")
            .build()
    );
    assert_eq!(
        FlatDhcp::setup_network(ctx).unwrap(),
        plan,
        "setup is deterministic"
    );
}

#[test]
fn setup_without_an_interface_mapping_only_makes_the_bridge() {
    let agent = agent_with(AGENT_TYPE, |c| {
        c.interface_mappings.clear();
        c.bridge_mappings.clear();
    });
    let ctx = network_context(network(NetworkType::Flat), agent);
    let plan = FlatDhcp::setup_network(ctx).unwrap();
    assert_eq!(
        plan,
        PlanBuilder::new()
            .bridge("br100", Some(1500))
            .up("br100")
            .build()
    );
}

#[test]
fn teardown_leaves_the_shared_bridge() {
    let ctx = network_context(network(NetworkType::Flat), live_agent(AGENT_TYPE));
    assert_eq!(FlatDhcp::teardown_network(ctx.clone()).unwrap(), vec![]);
    assert_eq!(FlatDhcp::teardown_network(ctx).unwrap(), vec![]);
}

#[test]
fn setup_for_a_segment_never_bound_is_invalid() {
    let ctx = network_context(network(NetworkType::Vlan), live_agent(AGENT_TYPE));
    let why = expect_invalid(FlatDhcp::setup_network(ctx));
    assert!(why.contains("binds only flat segments"), "{why}");
}

#[test]
fn plug_puts_a_tap_veth_into_the_bridge() {
    let ctx = bound_port_context();
    let ns = ctx.attachment.namespace.clone();
    let plan = FlatDhcp::plug_port(ctx).unwrap();
    assert_eq!(
        plan,
        vec![
            Op::EnsureVeth(VethSpec {
                name: TAP.into(),
                peer: "eth0".into(),
                peer_namespace: Some(ns.clone()),
                peer_mac: Some("fa:16:3e:12:34:56".into()),
                mtu: Some(1500),
            }),
            Op::AttachToBridge(AttachSpec {
                link: TAP.into(),
                bridge: "br-phys1".into()
            }),
            Op::SetLink(LinkSpec {
                name: TAP.into(),
                namespace: None,
                up: true,
                mtu: None,
                mac: None
            }),
            Op::SetLink(LinkSpec {
                name: "eth0".into(),
                namespace: Some(ns),
                up: true,
                mtu: None,
                mac: None
            }),
        ]
    );
}

#[test]
fn plug_falls_back_to_the_binding_rule_without_bridge_name() {
    let mut ctx = bound_port_context();
    ctx.vif_details.clear();
    ctx.agent = interface_only_agent();
    let plan = FlatDhcp::plug_port(ctx).unwrap();
    assert_eq!(
        plan[1],
        Op::AttachToBridge(AttachSpec {
            link: TAP.into(),
            bridge: "br100".into()
        })
    );
}

#[test]
fn plug_rejects_malformed_input() {
    let mut ctx = bound_port_context();
    ctx.port.id.clear();
    assert_eq!(
        expect_invalid(FlatDhcp::plug_port(ctx.clone())),
        "port has an empty id"
    );
    assert_eq!(
        expect_invalid(FlatDhcp::unplug_port(ctx)),
        "port has an empty id"
    );

    let mut ctx = bound_port_context();
    ctx.vif_details = vec![pair("bridge_name", "br100")];
    assert!(expect_invalid(FlatDhcp::plug_port(ctx)).contains("not a JSON string"));

    let mut ctx = bound_port_context();
    ctx.segment = network(NetworkType::Vxlan).segments.remove(0);
    assert!(expect_invalid(FlatDhcp::plug_port(ctx)).contains("binds only flat segments"));
}

#[test]
fn unplug_removes_the_tap_and_is_idempotent() {
    let ctx = bound_port_context();
    let plan = FlatDhcp::unplug_port(ctx.clone()).unwrap();
    assert_eq!(
        plan,
        vec![Op::RemoveLink(LinkRef {
            name: TAP.into(),
            namespace: None
        })]
    );
    assert_eq!(FlatDhcp::unplug_port(ctx).unwrap(), plan);
}

#[test]
fn every_name_fits_the_kernel_and_the_grant() {
    let grant = FlatDhcp::describe().capabilities;
    let ctx = bound_port_context();
    let mut plans = FlatDhcp::plug_port(ctx.clone()).unwrap();
    plans.extend(FlatDhcp::unplug_port(ctx).unwrap());
    plans.extend(
        FlatDhcp::setup_network(network_context(
            network(NetworkType::Flat),
            live_agent(AGENT_TYPE),
        ))
        .unwrap(),
    );
    for op in &plans {
        let (name, namespace) = match op {
            Op::EnsureVeth(v) => (v.name.clone(), None),
            Op::EnsureBridge(b) => (b.name.clone(), None),
            Op::AttachToBridge(a) => (a.bridge.clone(), None),
            Op::SetLink(l) => (l.name.clone(), l.namespace.clone()),
            Op::RemoveLink(l) => (l.name.clone(), l.namespace.clone()),
            other => panic!("unexpected op {other:?}"),
        };
        assert!(name.len() <= names::IFNAMSIZ_MAX, "{name}");
        if namespace.is_none() && name != "eth1" {
            assert!(
                grant
                    .link_prefixes
                    .iter()
                    .any(|p| name.starts_with(p.as_str())),
                "{name}"
            );
        }
    }
    assert!(names::tap(PORT_ID).len() <= 15);
}

#[test]
fn plug_rejects_another_drivers_binding_or_a_bad_mac() {
    let mut ctx = bound_port_context();
    ctx.vif_type = "ovs".into();
    assert_eq!(
        expect_invalid(FlatDhcp::plug_port(ctx)),
        "flatdhcp binds vif_type bridge, not ovs"
    );
    let mut ctx = bound_port_context();
    ctx.port.mac_address = "FA:16:3E:12:34:5".into();
    assert!(expect_invalid(FlatDhcp::plug_port(ctx)).contains("no usable MAC address"));
}
