//! Native unit tests: the driver is plain Rust here, fed with the SDK's fixtures.

use neutrino_sdk::prelude::*;
use neutrino_sdk::testing::{
    self, agent_with, bad_agents, bind_context, dead_agents, expect_bound, expect_invalid,
    expect_pass, live_agent, live_agents, network, network_context, port, port_context,
};

use super::*;

const MAC: &str = "fa:16:3e:12:34:56";

/// The SDK's [`testing::bind_with`] for this driver.
fn bind_with(network: Network, agents: Vec<Agent>) -> BindDecision {
    testing::bind_with::<Macvlan>(network, agents)
}

/// The port bound by a live agent to a network of type `ty`, ready to plug.
fn bound_port_context(ty: NetworkType) -> PortContext {
    testing::bound_port_context::<Macvlan>(ty, live_agent(AGENT_TYPE))
}

#[test]
fn describe_matches_the_contract() {
    let d = Macvlan::describe();
    assert_eq!(
        (d.name.as_str(), d.agent_type.as_str()),
        ("macvlan", "Macvtap agent")
    );
    assert_eq!(d.vnic_types, vec![VnicType::Normal]);
    assert_eq!(d.network_types, vec![NetworkType::Flat, NetworkType::Vlan]);
    assert_eq!(d.vif_types, vec!["macvtap"]);
    assert!(d.capabilities.link_prefixes.is_empty());
    assert_eq!(
        d.capabilities.physical_interfaces,
        vec![names::MAPPED_INTERFACES]
    );
}

#[test]
fn live_agent_binds_flat_and_vlan() {
    let b = expect_bound(bind_with(
        network(NetworkType::Flat),
        live_agents(AGENT_TYPE),
    ));
    assert_eq!(
        (b.segment_id.as_str(), b.vif_type.as_str()),
        ("seg-flat", "macvtap")
    );
    assert_eq!(
        pairs_get(&b.vif_details, "physical_interface"),
        Some("\"eth1\"")
    );
    assert_eq!(
        pairs_get(&b.vif_details, "macvtap_mode"),
        Some("\"bridge\"")
    );
    assert_eq!(
        pairs_get(&b.vif_details, "macvtap_source"),
        Some("\"eth1\"")
    );

    let b = expect_bound(bind_with(
        network(NetworkType::Vlan),
        live_agents(AGENT_TYPE),
    ));
    assert_eq!(
        pairs_get(&b.vif_details, "macvtap_source"),
        Some("\"eth1.100\"")
    );
    assert_eq!(pairs_get(&b.vif_details, "connectivity"), Some("\"l2\""));
}

#[test]
fn what_cannot_be_bound_passes_with_the_reason() {
    let mut p = port();
    p.vnic_type = VnicType::Direct;
    let d = Macvlan::bind_port(bind_context(p, network(NetworkType::Flat), vec![])).unwrap();
    assert_eq!(expect_pass(d), "vnic_type direct not supported by macvlan");
    assert_eq!(
        expect_pass(bind_with(network(NetworkType::Flat), vec![])),
        "no Macvtap agent on host compute-1"
    );
    assert_eq!(
        expect_pass(bind_with(
            network(NetworkType::Flat),
            dead_agents(AGENT_TYPE)
        )),
        "Macvtap agent on host compute-1 is not alive"
    );
    assert_eq!(
        expect_pass(bind_with(
            network(NetworkType::Vlan),
            bad_agents(AGENT_TYPE)
        )),
        "segment seg-vlan: physical network physnet1 not in interface_mappings of agent on compute-1"
    );
    assert_eq!(
        expect_pass(bind_with(
            network(NetworkType::Vxlan),
            live_agents(AGENT_TYPE)
        )),
        "segment seg-vxlan: network type vxlan not supported"
    );
}

#[test]
fn setup_and_teardown_manage_the_vlan_subinterface() {
    let ctx = network_context(network(NetworkType::Vlan), live_agent(AGENT_TYPE));
    assert_eq!(
        Macvlan::setup_network(ctx.clone()).unwrap(),
        PlanBuilder::new()
            .vlan("eth1.100", "eth1", 100, Some(1500))
            .up("eth1.100")
            .build()
    );
    let teardown = Macvlan::teardown_network(ctx.clone()).unwrap();
    assert_eq!(
        teardown,
        PlanBuilder::new().remove_link("eth1.100", None).build()
    );
    assert_eq!(
        Macvlan::teardown_network(ctx).unwrap(),
        teardown,
        "teardown is idempotent"
    );

    let ctx = network_context(network(NetworkType::Flat), live_agent(AGENT_TYPE));
    assert_eq!(Macvlan::setup_network(ctx.clone()).unwrap(), vec![]);
    assert_eq!(Macvlan::teardown_network(ctx).unwrap(), vec![]);
}

#[test]
fn plug_creates_the_macvlan_in_the_attachment_namespace() {
    let ns = testing::instance_attachment().namespace;
    let plan = Macvlan::plug_port(bound_port_context(NetworkType::Flat)).unwrap();
    assert_eq!(
        plan,
        vec![
            Op::EnsureMacvlan(MacvlanSpec {
                name: "eth0".into(),
                parent: "eth1".into(),
                mode: MacvlanMode::Bridge,
                namespace: Some(ns.clone()),
                mac: Some(MAC.into()),
                mtu: Some(1500),
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
fn plug_on_vlan_ensures_the_subinterface_first() {
    let ns = testing::instance_attachment().namespace;
    let plan = Macvlan::plug_port(bound_port_context(NetworkType::Vlan)).unwrap();
    assert_eq!(
        plan,
        PlanBuilder::new()
            .vlan("eth1.100", "eth1", 100, Some(1500))
            .up("eth1.100")
            .macvlan(
                "eth0",
                "eth1.100",
                MacvlanMode::Bridge,
                Some(&ns),
                Some(MAC),
                Some(1500)
            )
            .up_in("eth0", &ns)
            .build()
    );
}

#[test]
fn unplug_removes_the_macvlan_and_is_idempotent() {
    let ns = testing::instance_attachment().namespace;
    let ctx = bound_port_context(NetworkType::Vlan);
    let plan = Macvlan::unplug_port(ctx.clone()).unwrap();
    assert_eq!(
        plan,
        vec![Op::RemoveLink(LinkRef {
            name: "eth0".into(),
            namespace: Some(ns)
        })]
    );
    assert_eq!(Macvlan::unplug_port(ctx).unwrap(), plan);
}

#[test]
fn malformed_input_is_an_error() {
    let mut ctx = bound_port_context(NetworkType::Flat);
    ctx.port.id.clear();
    assert_eq!(
        expect_invalid(Macvlan::plug_port(ctx)),
        "port has an empty id"
    );

    let mut ctx = bound_port_context(NetworkType::Flat);
    ctx.segment = network(NetworkType::Vxlan).segments.remove(0);
    assert!(expect_invalid(Macvlan::unplug_port(ctx)).contains("never binds vxlan"));

    let mut ctx = bound_port_context(NetworkType::Flat);
    ctx.vif_details = vec![pair("physical_interface", "eth1")];
    assert!(expect_invalid(Macvlan::plug_port(ctx)).contains("not a JSON string"));
}

#[test]
fn long_interface_names_stay_within_15_bytes() {
    let agent = agent_with(AGENT_TYPE, |c| {
        c.interface_mappings = vec![pair("physnet1", "enp129s0f1np1")]
    });
    let mut n = network(NetworkType::Vlan);
    n.segments[0].segmentation_id = Some(4094);
    let b = expect_bound(bind_with(n.clone(), vec![agent.clone()]));
    let ctx = port_context(port(), n, agent, &b.vif_type, b.vif_details);
    for op in Macvlan::plug_port(ctx).unwrap() {
        let name = match op {
            Op::EnsureVlan(v) => v.name,
            Op::EnsureMacvlan(m) => m.parent,
            Op::SetLink(l) => l.name,
            other => panic!("unexpected {other:?}"),
        };
        assert!(name.len() <= names::IFNAMSIZ_MAX, "{name}");
    }
}

#[test]
fn plug_rejects_a_bad_mac() {
    let mut ctx = bound_port_context(NetworkType::Flat);
    ctx.port.mac_address = "not-a-mac".into();
    assert!(expect_invalid(Macvlan::plug_port(ctx)).contains("no usable MAC address"));
}
