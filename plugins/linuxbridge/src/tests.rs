use neutrino_sdk::prelude::*;
use neutrino_sdk::testing::{
    self, HOST, agent_with, bad_agents, bind_context, dead_agents, expect_bound, expect_invalid,
    expect_pass, live_agent, live_agents, network, network_context, port, with_config,
};

use super::*;

const TAP: &str = "tap3f1c2a9e-7b";
const BRQ: &str = "brq9b7e2c1d-55";
const MAC: &str = "fa:16:3e:12:34:56";

/// The SDK's [`testing::bind_with`] for this driver.
fn bind_with(network: Network, agents: Vec<Agent>) -> BindDecision {
    testing::bind_with::<LinuxBridge>(network, agents)
}

/// The SDK's [`testing::bound_port_context`] for this driver.
fn bound_port_context(ty: NetworkType, agent: Agent) -> PortContext {
    testing::bound_port_context::<LinuxBridge>(ty, agent)
}

/// physnet1 mapped to eth1 only, so flat networks get their own `brq` bridge.
fn interface_agent() -> Agent {
    agent_with(AGENT_TYPE, |c| c.bridge_mappings.clear())
}

fn details(bridge: &str) -> Pairs {
    vec![
        pair("port_filter", "true"),
        pair("connectivity", "\"l2\""),
        pair("bridge_name", json_str(bridge)),
    ]
}

#[test]
fn describe_matches_the_contract() {
    let d = LinuxBridge::describe();
    assert_eq!(d.name, "linuxbridge");
    assert_eq!(d.agent_type, "Linux bridge agent");
    assert_eq!(d.vnic_types, vec![VnicType::Normal]);
    assert_eq!(
        d.network_types,
        vec![
            NetworkType::Flat,
            NetworkType::Vlan,
            NetworkType::Vxlan,
            NetworkType::Local
        ]
    );
    assert_eq!(d.vif_types, vec!["bridge"]);
    let g = d.capabilities;
    assert_eq!(g.link_prefixes, vec!["tap", "brq", "vxlan-"]);
    assert!(g.ovs_bridges.is_empty());
    assert!(g.namespace_prefixes.is_empty());
    assert_eq!(g.physical_interfaces, vec![names::MAPPED_INTERFACES]);
}

#[test]
fn live_agent_binds_every_supported_type() {
    for (ty, bridge) in [
        (NetworkType::Flat, "br-phys1"),
        (NetworkType::Vlan, BRQ),
        (NetworkType::Vxlan, BRQ),
        (NetworkType::Local, BRQ),
    ] {
        let b = expect_bound(bind_with(network(ty), live_agents(AGENT_TYPE)));
        assert_eq!(b.segment_id, format!("seg-{}", network_type_name(ty)));
        assert_eq!(b.vif_type, "bridge");
        assert_eq!(b.vif_details, details(bridge), "{ty:?}");
    }
}

#[test]
fn flat_on_an_interface_mapping_gets_its_own_bridge() {
    let b = expect_bound(bind_with(
        network(NetworkType::Flat),
        vec![interface_agent()],
    ));
    assert_eq!(b.vif_details, details(BRQ));
}

#[test]
fn unsupported_vnic_type_passes_first() {
    let mut p = port();
    p.vnic_type = VnicType::Macvtap;
    let d = LinuxBridge::bind_port(bind_context(p, network(NetworkType::Vlan), vec![])).unwrap();
    assert_eq!(
        expect_pass(d),
        "vnic_type macvtap not supported by linuxbridge"
    );
}

#[test]
fn absent_and_dead_agents_pass() {
    assert_eq!(
        expect_pass(bind_with(network(NetworkType::Vlan), vec![])),
        format!("no Linux bridge agent on host {HOST}")
    );
    assert_eq!(
        expect_pass(bind_with(
            network(NetworkType::Vlan),
            live_agents("Open vSwitch agent")
        )),
        "no Linux bridge agent on host compute-1"
    );
    testing::take_logs();
    assert_eq!(
        expect_pass(bind_with(
            network(NetworkType::Vlan),
            dead_agents(AGENT_TYPE)
        )),
        "Linux bridge agent on host compute-1 is not alive"
    );
    assert!(
        testing::take_logs()
            .iter()
            .any(|(l, m)| *l == log::Level::Warn && m.contains("dead agent"))
    );
}

#[test]
fn bad_agent_passes_with_per_type_reasons() {
    let cases = [
        (
            NetworkType::Flat,
            "segment seg-flat: physical network physnet1 not in interface_mappings or bridge_mappings of agent on compute-1",
        ),
        (
            NetworkType::Vlan,
            "segment seg-vlan: physical network physnet1 not in interface_mappings of agent on compute-1",
        ),
        (
            NetworkType::Vxlan,
            "segment seg-vxlan: tunnel type vxlan not in agent tunnel_types",
        ),
    ];
    for (ty, expected) in cases {
        assert_eq!(
            expect_pass(bind_with(network(ty), bad_agents(AGENT_TYPE))),
            expected
        );
    }
    expect_bound(bind_with(
        network(NetworkType::Local),
        bad_agents(AGENT_TYPE),
    ));
}

#[test]
fn vlan_needs_the_interface_mapping_not_the_bridge_mapping() {
    let a = agent_with(AGENT_TYPE, |c| c.interface_mappings.clear());
    assert_eq!(
        expect_pass(bind_with(network(NetworkType::Vlan), vec![a.clone()])),
        "segment seg-vlan: physical network physnet1 not in interface_mappings of agent on compute-1"
    );
    // flat is happy with the bridge mapping alone.
    assert_eq!(
        expect_bound(bind_with(network(NetworkType::Flat), vec![a])).vif_details,
        details("br-phys1")
    );
}

#[test]
fn vxlan_needs_a_tunneling_ip_and_a_vni() {
    let a = agent_with(AGENT_TYPE, |c| c.tunneling_ip = None);
    assert_eq!(
        expect_pass(bind_with(network(NetworkType::Vxlan), vec![a])),
        "segment seg-vxlan: agent on compute-1 reports no tunneling_ip"
    );
    let mut n = network(NetworkType::Vxlan);
    n.segments[0].segmentation_id = Some(1 << 24);
    assert_eq!(
        expect_pass(bind_with(n, live_agents(AGENT_TYPE))),
        "segment seg-vxlan: vxlan segmentation id 16777216 outside 1-16777215"
    );
    let mut n = network(NetworkType::Vlan);
    n.segments[0].segmentation_id = None;
    assert_eq!(
        expect_pass(bind_with(n, live_agents(AGENT_TYPE))),
        "segment seg-vlan: vlan segment has no segmentation id"
    );
}

#[test]
fn unsupported_network_types_pass() {
    let a = agent_with(AGENT_TYPE, |c| {
        c.tunnel_types = vec!["vxlan".into(), "gre".into(), "geneve".into()]
    });
    for name in ["gre", "geneve"] {
        let ty = if name == "gre" {
            NetworkType::Gre
        } else {
            NetworkType::Geneve
        };
        assert_eq!(
            expect_pass(bind_with(network(ty), vec![a.clone()])),
            format!("segment seg-{name}: network type {name} not supported")
        );
    }
}

#[test]
fn first_fitting_segment_wins_and_reasons_list_every_segment() {
    let mut multi = network(NetworkType::Vlan);
    let mut vlan2 = multi.segments[0].clone();
    vlan2.id = "seg-a".into();
    vlan2.physical_network = Some("physnet2".into());
    let mut gre = network(NetworkType::Gre).segments.remove(0);
    gre.id = "seg-b".into();
    let local = network(NetworkType::Local).segments.remove(0);
    multi.segments = vec![vlan2.clone(), gre.clone(), local];
    assert_eq!(
        expect_bound(bind_with(multi.clone(), live_agents(AGENT_TYPE))).segment_id,
        "seg-local"
    );
    multi.segments = vec![vlan2, gre];
    assert_eq!(
        expect_pass(bind_with(multi, live_agents(AGENT_TYPE))),
        "segment seg-a: physical network physnet2 not in interface_mappings of agent on compute-1; segment seg-b: network type gre not supported"
    );
}

#[test]
fn setup_flat_on_an_interface() {
    let plan = LinuxBridge::setup_network(network_context(
        network(NetworkType::Flat),
        interface_agent(),
    ))
    .unwrap();
    assert_eq!(
        plan,
        PlanBuilder::new()
            .bridge(BRQ, Some(1500))
            .attach("eth1", BRQ)
            .up("eth1")
            .up(BRQ)
            .build()
    );
}

#[test]
fn setup_and_teardown_leave_a_mapped_bridge_alone() {
    let ctx = network_context(network(NetworkType::Flat), live_agent(AGENT_TYPE));
    assert_eq!(LinuxBridge::setup_network(ctx.clone()).unwrap(), vec![]);
    assert_eq!(LinuxBridge::teardown_network(ctx).unwrap(), vec![]);
}

#[test]
fn setup_vlan_makes_a_subinterface() {
    let plan = LinuxBridge::setup_network(network_context(
        network(NetworkType::Vlan),
        live_agent(AGENT_TYPE),
    ))
    .unwrap();
    assert_eq!(
        plan,
        vec![
            Op::EnsureBridge(BridgeSpec {
                name: BRQ.into(),
                mtu: Some(1500)
            }),
            Op::EnsureVlan(VlanSpec {
                name: "eth1.100".into(),
                parent: "eth1".into(),
                vlan_id: 100,
                mtu: Some(1500)
            }),
            Op::AttachToBridge(AttachSpec {
                link: "eth1.100".into(),
                bridge: BRQ.into()
            }),
            Op::SetLink(LinkSpec {
                name: "eth1.100".into(),
                namespace: None,
                up: true,
                mtu: None,
                mac: None
            }),
            Op::SetLink(LinkSpec {
                name: BRQ.into(),
                namespace: None,
                up: true,
                mtu: None,
                mac: None
            }),
        ]
    );
}

#[test]
fn setup_vlan_on_a_long_interface_name_stays_within_15_bytes() {
    let a = agent_with(AGENT_TYPE, |c| {
        c.interface_mappings = vec![pair("physnet1", "enp129s0f1np1")]
    });
    let mut n = network(NetworkType::Vlan);
    n.segments[0].segmentation_id = Some(4094);
    let plan = LinuxBridge::setup_network(network_context(n, a)).unwrap();
    let Op::EnsureVlan(spec) = &plan[1] else {
        panic!("{plan:?}")
    };
    assert!(
        spec.name.len() <= 15 && spec.name.ends_with(".4094"),
        "{}",
        spec.name
    );
    assert_eq!(spec.parent, "enp129s0f1np1");
}

fn vxlan_spec(group: Option<&str>) -> VxlanSpec {
    VxlanSpec {
        name: "vxlan-1001".into(),
        vni: 1001,
        local_ip: Some("192.0.2.10".into()),
        group: group.map(str::to_string),
        underlay_device: None,
        dst_port: 4789,
        mtu: Some(1450),
    }
}

#[test]
fn setup_vxlan_makes_a_vxlan_device() {
    let ctx = network_context(network(NetworkType::Vxlan), live_agent(AGENT_TYPE));
    let plan = LinuxBridge::setup_network(ctx.clone()).unwrap();
    assert_eq!(
        plan,
        PlanBuilder::new()
            .bridge(BRQ, Some(1450))
            .vxlan(vxlan_spec(Some("224.0.0.1")))
            .attach("vxlan-1001", BRQ)
            .up("vxlan-1001")
            .up(BRQ)
            .build()
    );
    let plan = with_config(&[("vxlan_group", "239.1.1.1")], || {
        LinuxBridge::setup_network(ctx.clone())
    })
    .unwrap();
    assert_eq!(plan[1], Op::EnsureVxlan(vxlan_spec(Some("239.1.1.1"))));
    let plan = with_config(&[("vxlan_group", "")], || LinuxBridge::setup_network(ctx)).unwrap();
    assert_eq!(plan[1], Op::EnsureVxlan(vxlan_spec(None)));
}

#[test]
fn setup_local_is_a_lone_bridge() {
    let plan = LinuxBridge::setup_network(network_context(
        network(NetworkType::Local),
        live_agent(AGENT_TYPE),
    ))
    .unwrap();
    assert_eq!(
        plan,
        PlanBuilder::new().bridge(BRQ, Some(1500)).up(BRQ).build()
    );
}

#[test]
fn teardown_removes_only_what_setup_created_and_is_idempotent() {
    let cases = [
        (
            NetworkType::Vlan,
            live_agent(AGENT_TYPE),
            PlanBuilder::new()
                .remove_link("eth1.100", None)
                .remove_link(BRQ, None),
        ),
        (
            NetworkType::Vxlan,
            live_agent(AGENT_TYPE),
            PlanBuilder::new()
                .remove_link("vxlan-1001", None)
                .remove_link(BRQ, None),
        ),
        (
            NetworkType::Local,
            live_agent(AGENT_TYPE),
            PlanBuilder::new().remove_link(BRQ, None),
        ),
        (
            NetworkType::Flat,
            interface_agent(),
            PlanBuilder::new().remove_link(BRQ, None),
        ),
    ];
    for (ty, agent, expected) in cases {
        let ctx = network_context(network(ty), agent);
        let plan = LinuxBridge::teardown_network(ctx.clone()).unwrap();
        assert_eq!(plan, expected.build(), "{ty:?}");
        assert_eq!(LinuxBridge::teardown_network(ctx).unwrap(), plan);
        assert!(plan.iter().all(|op| matches!(op, Op::RemoveLink(_))));
    }
}

#[test]
fn setup_rejects_what_cannot_be_built() {
    let why = expect_invalid(LinuxBridge::setup_network(network_context(
        network(NetworkType::Geneve),
        live_agent(AGENT_TYPE),
    )));
    assert!(why.contains("never binds geneve"), "{why}");
    let a = agent_with(AGENT_TYPE, |c| c.interface_mappings.clear());
    let why = expect_invalid(LinuxBridge::teardown_network(network_context(
        network(NetworkType::Vlan),
        a,
    )));
    assert_eq!(
        why,
        "segment seg-vlan: physical network physnet1 not in interface_mappings of agent on compute-1"
    );
}

fn plug_plan(bridge: &str, mtu: u32, ns: &str) -> Plan {
    PlanBuilder::new()
        .veth(TAP, "eth0", Some(ns), Some(MAC), Some(mtu))
        .attach(TAP, bridge)
        .up(TAP)
        .up_in("eth0", ns)
        .build()
}

#[test]
fn plug_puts_a_tap_veth_into_the_bridge() {
    let ns = testing::instance_attachment().namespace;
    let plan = LinuxBridge::plug_port(bound_port_context(
        NetworkType::Vxlan,
        live_agent(AGENT_TYPE),
    ))
    .unwrap();
    assert_eq!(plan, plug_plan(BRQ, 1450, &ns));
    assert_eq!(
        plan[0],
        Op::EnsureVeth(VethSpec {
            name: TAP.into(),
            peer: "eth0".into(),
            peer_namespace: Some(ns.clone()),
            peer_mac: Some(MAC.into()),
            mtu: Some(1450),
        })
    );
    let plan = LinuxBridge::plug_port(bound_port_context(
        NetworkType::Flat,
        live_agent(AGENT_TYPE),
    ))
    .unwrap();
    assert_eq!(plan, plug_plan("br-phys1", 1500, &ns));
}

#[test]
fn plug_without_bridge_name_uses_the_binding_rule() {
    let ns = testing::instance_attachment().namespace;
    let mut ctx = bound_port_context(NetworkType::Flat, live_agent(AGENT_TYPE));
    ctx.vif_details.clear();
    assert_eq!(
        LinuxBridge::plug_port(ctx.clone()).unwrap(),
        plug_plan("br-phys1", 1500, &ns)
    );
    ctx.agent = interface_agent();
    assert_eq!(
        LinuxBridge::plug_port(ctx).unwrap(),
        plug_plan(BRQ, 1500, &ns)
    );
}

#[test]
fn unplug_removes_the_tap_and_is_idempotent() {
    let ctx = bound_port_context(NetworkType::Vlan, live_agent(AGENT_TYPE));
    let plan = LinuxBridge::unplug_port(ctx.clone()).unwrap();
    assert_eq!(
        plan,
        vec![Op::RemoveLink(LinkRef {
            name: TAP.into(),
            namespace: None
        })]
    );
    assert_eq!(LinuxBridge::unplug_port(ctx).unwrap(), plan);
}

#[test]
fn plug_rejects_malformed_input() {
    let base = bound_port_context(NetworkType::Vlan, live_agent(AGENT_TYPE));

    let mut ctx = base.clone();
    ctx.port.id.clear();
    assert_eq!(
        expect_invalid(LinuxBridge::plug_port(ctx.clone())),
        "port has an empty id"
    );
    assert_eq!(
        expect_invalid(LinuxBridge::unplug_port(ctx)),
        "port has an empty id"
    );

    let mut ctx = base.clone();
    ctx.segment = network(NetworkType::Gre).segments.remove(0);
    assert!(expect_invalid(LinuxBridge::plug_port(ctx)).contains("never binds gre"));

    let mut ctx = base.clone();
    ctx.vif_type = "ovs".into();
    assert_eq!(
        expect_invalid(LinuxBridge::plug_port(ctx)),
        "linuxbridge binds vif_type bridge, not ovs"
    );

    let mut ctx = base.clone();
    ctx.vif_details = vec![pair("bridge_name", "42")];
    assert!(expect_invalid(LinuxBridge::plug_port(ctx)).contains("not a JSON string"));

    let mut ctx = base;
    ctx.vif_details = vec![pair("bridge_name", "\"a-bridge-name-too-long\"")];
    assert!(expect_invalid(LinuxBridge::plug_port(ctx)).contains("not a valid interface name"));
}

#[test]
fn every_created_name_fits_the_kernel_and_the_grant() {
    let grant = LinuxBridge::describe().capabilities;
    let physical = ["eth1", "eth1.100", "br-phys1"];
    let mut ops = Vec::new();
    for ty in [
        NetworkType::Flat,
        NetworkType::Vlan,
        NetworkType::Vxlan,
        NetworkType::Local,
    ] {
        for a in [live_agent(AGENT_TYPE), interface_agent()] {
            let ctx = bound_port_context(ty, a.clone());
            ops.extend(LinuxBridge::plug_port(ctx.clone()).unwrap());
            ops.extend(LinuxBridge::unplug_port(ctx).unwrap());
            ops.extend(
                LinuxBridge::setup_network(network_context(network(ty), a.clone())).unwrap(),
            );
            ops.extend(LinuxBridge::teardown_network(network_context(network(ty), a)).unwrap());
        }
    }
    let ns = testing::instance_attachment().namespace;
    let check = |name: &str| {
        assert!(name.len() <= names::IFNAMSIZ_MAX, "{name}");
        assert!(
            physical.contains(&name)
                || grant
                    .link_prefixes
                    .iter()
                    .any(|p| name.starts_with(p.as_str())),
            "{name} outside the grant"
        );
    };
    for op in &ops {
        match op {
            Op::EnsureBridge(b) => check(&b.name),
            Op::EnsureVeth(v) => {
                check(&v.name);
                assert_eq!(v.peer_namespace.as_deref(), Some(ns.as_str()));
            }
            Op::AttachToBridge(a) => {
                check(&a.link);
                check(&a.bridge);
            }
            Op::SetLink(l) if l.namespace.is_some() => {
                assert_eq!(l.namespace.as_deref(), Some(ns.as_str()))
            }
            Op::SetLink(l) => check(&l.name),
            Op::RemoveLink(l) => check(&l.name),
            Op::EnsureVlan(v) => {
                check(&v.name);
                check(&v.parent);
            }
            Op::EnsureVxlan(v) => check(&v.name),
            other => panic!("unexpected op {other:?}"),
        }
    }
}

#[test]
fn a_vxlan_group_cidr_spreads_vnis_over_its_addresses() {
    let ctx = network_context(network(NetworkType::Vxlan), live_agent(AGENT_TYPE));
    // 1001 = 0x03e9: 239.1.0.0/16 + 0.0.3.233.
    let plan = with_config(&[("vxlan_group", "239.1.0.0/16")], || {
        LinuxBridge::setup_network(ctx.clone())
    })
    .unwrap();
    assert_eq!(plan[1], Op::EnsureVxlan(vxlan_spec(Some("239.1.3.233"))));
    let plan = with_config(&[("vxlan_group", "239.1.2.3/32")], || {
        LinuxBridge::setup_network(ctx.clone())
    })
    .unwrap();
    assert_eq!(plan[1], Op::EnsureVxlan(vxlan_spec(Some("239.1.2.3"))));
    let plan = with_config(&[("vxlan_group", "ff05::/120")], || {
        LinuxBridge::setup_network(ctx)
    })
    .unwrap();
    assert_eq!(plan[1], Op::EnsureVxlan(vxlan_spec(Some("ff05::e9"))));
}

#[test]
fn a_bad_vxlan_group_or_tunneling_ip_is_a_reason_not_a_broken_plan() {
    with_config(&[("vxlan_group", "not-an-address")], || {
        assert_eq!(
            expect_pass(bind_with(
                network(NetworkType::Vxlan),
                live_agents(AGENT_TYPE)
            )),
            "segment seg-vxlan: config vxlan_group \"not-an-address\" is not an IP address or CIDR"
        );
        let ctx = network_context(network(NetworkType::Vxlan), live_agent(AGENT_TYPE));
        assert!(expect_invalid(LinuxBridge::setup_network(ctx)).contains("vxlan_group"));
    });
    let a = agent_with(AGENT_TYPE, |c| c.tunneling_ip = Some("192.0.2".into()));
    assert_eq!(
        expect_pass(bind_with(network(NetworkType::Vxlan), vec![a])),
        "segment seg-vxlan: tunneling_ip \"192.0.2\" of agent on compute-1 is not an IP address"
    );
}

#[test]
fn plug_rejects_a_bad_mac_or_mtu() {
    let mut ctx = bound_port_context(NetworkType::Vlan, live_agent(AGENT_TYPE));
    ctx.port.mac_address = "not-a-mac".into();
    assert!(expect_invalid(LinuxBridge::plug_port(ctx.clone())).contains("no usable MAC address"));
    // Unplug needs no MAC.
    assert_eq!(LinuxBridge::unplug_port(ctx).unwrap().len(), 1);
    let mut ctx = bound_port_context(NetworkType::Vlan, live_agent(AGENT_TYPE));
    ctx.segment.mtu = 70_000;
    assert!(expect_invalid(LinuxBridge::plug_port(ctx)).contains("outside 68-65535"));
}
