use neutrino_sdk::prelude::*;
use neutrino_sdk::testing::{
    self, HOST, INSTANCE_ID, agent_with, bad_agents, bind_context, dead_agents, expect_bound,
    expect_invalid, expect_pass, live_agent, live_agents, network, network_context, port,
};

use super::*;

const TAP: &str = "tap3f1c2a9e-7b";
const QBR: &str = "qbr3f1c2a9e-7b";
const QVB: &str = "qvb3f1c2a9e-7b";
const QVO: &str = "qvo3f1c2a9e-7b";
const PORT_ID: &str = testing::PORT_ID;
const MAC: &str = "fa:16:3e:12:34:56";

/// The SDK's [`testing::bind_with`] for this driver.
fn bind_with(network: Network, agents: Vec<Agent>) -> BindDecision {
    testing::bind_with::<OvsHybrid>(network, agents)
}

/// The SDK's [`testing::bound_port_context`] for this driver.
fn bound_port_context(ty: NetworkType, agent: Agent) -> PortContext {
    testing::bound_port_context::<OvsHybrid>(ty, agent)
}

fn up(name: &str, namespace: Option<&str>) -> Op {
    Op::SetLink(LinkSpec {
        name: name.into(),
        namespace: namespace.map(str::to_string),
        up: true,
        mtu: None,
        mac: None,
    })
}

fn external_ids() -> Pairs {
    vec![
        pair("iface-id", PORT_ID),
        pair("iface-status", "active"),
        pair("attached-mac", MAC),
        pair("vm-uuid", INSTANCE_ID),
    ]
}

#[test]
fn describe_matches_the_contract() {
    let d = OvsHybrid::describe();
    assert_eq!(d.name, "ovs-hybrid");
    assert_eq!(d.agent_type, "Open vSwitch agent");
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
    assert_eq!(d.vif_types, vec!["ovs".to_string()]);
    let g = d.capabilities;
    assert_eq!(
        g.link_prefixes,
        vec!["tap", "qbr", "qvb", "qvo", "vxlan-", "int-", "phy-"]
    );
    assert_eq!(g.ovs_bridges, vec!["br-*"]);
    assert!(g.namespace_prefixes.is_empty());
    assert!(g.physical_interfaces.is_empty());
}

#[test]
fn live_agent_binds_every_supported_type() {
    for ty in [
        NetworkType::Flat,
        NetworkType::Vlan,
        NetworkType::Vxlan,
        NetworkType::Local,
    ] {
        let b = expect_bound(bind_with(network(ty), live_agents(AGENT_TYPE)));
        assert_eq!(b.segment_id, format!("seg-{}", network_type_name(ty)));
        assert_eq!(b.vif_type, "ovs");
        assert_eq!(
            b.vif_details,
            vec![
                pair("port_filter", "true"),
                pair("connectivity", "\"l2\""),
                pair("ovs_hybrid_plug", "true"),
                pair("datapath_type", "\"netdev\""),
                pair("bridge_name", "\"br-int\""),
            ]
        );
    }
}

#[test]
fn vif_details_default_when_the_agent_reports_nothing() {
    let a = agent_with(AGENT_TYPE, |c| {
        c.integration_bridge = None;
        c.datapath_type = None;
        c.ovs_hybrid_plug = None;
    });
    let b = expect_bound(bind_with(network(NetworkType::Local), vec![a]));
    assert_eq!(pairs_get(&b.vif_details, "ovs_hybrid_plug"), Some("true"));
    assert_eq!(
        pairs_get(&b.vif_details, "datapath_type"),
        Some("\"system\"")
    );
    assert_eq!(pairs_get(&b.vif_details, "bridge_name"), Some("\"br-int\""));

    let a = agent_with(AGENT_TYPE, |c| {
        c.ovs_hybrid_plug = Some(false);
        c.integration_bridge = Some("br-int2".into());
    });
    let b = expect_bound(bind_with(network(NetworkType::Local), vec![a]));
    assert_eq!(pairs_get(&b.vif_details, "ovs_hybrid_plug"), Some("false"));
    assert_eq!(
        pairs_get(&b.vif_details, "bridge_name"),
        Some("\"br-int2\"")
    );
}

#[test]
fn unsupported_vnic_type_passes_first() {
    let mut p = port();
    p.vnic_type = VnicType::Direct;
    let d = OvsHybrid::bind_port(bind_context(p, network(NetworkType::Vlan), vec![])).unwrap();
    assert_eq!(
        expect_pass(d),
        "vnic_type direct not supported by ovs-hybrid"
    );
}

#[test]
fn absent_agent_passes() {
    assert_eq!(
        expect_pass(bind_with(network(NetworkType::Vlan), vec![])),
        format!("no Open vSwitch agent on host {HOST}")
    );
    assert_eq!(
        expect_pass(bind_with(
            network(NetworkType::Vlan),
            live_agents("Linux bridge agent")
        )),
        "no Open vSwitch agent on host compute-1"
    );
}

#[test]
fn dead_agent_passes_and_warns() {
    testing::take_logs();
    let reason = expect_pass(bind_with(
        network(NetworkType::Vlan),
        dead_agents(AGENT_TYPE),
    ));
    assert_eq!(reason, "Open vSwitch agent on host compute-1 is not alive");
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
            "segment seg-flat: physical network physnet1 not in bridge_mappings of agent on compute-1",
        ),
        (
            NetworkType::Vlan,
            "segment seg-vlan: physical network physnet1 not in bridge_mappings of agent on compute-1",
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
    // local needs no mapping at all.
    expect_bound(bind_with(
        network(NetworkType::Local),
        bad_agents(AGENT_TYPE),
    ));
}

#[test]
fn unsupported_network_types_pass_even_if_the_agent_tunnels_them() {
    let a = agent_with(AGENT_TYPE, |c| {
        c.tunnel_types = vec!["vxlan".into(), "gre".into(), "geneve".into()]
    });
    for (ty, name) in [(NetworkType::Gre, "gre"), (NetworkType::Geneve, "geneve")] {
        let reason = expect_pass(bind_with(network(ty), vec![a.clone()]));
        assert_eq!(
            reason,
            format!("segment seg-{name}: network type {name} not supported")
        );
    }
}

#[test]
fn bridges_outside_the_grant_are_refused() {
    let a = agent_with(AGENT_TYPE, |c| {
        c.bridge_mappings = vec![pair("physnet1", "ovsbr1")]
    });
    assert_eq!(
        expect_pass(bind_with(network(NetworkType::Vlan), vec![a])),
        "segment seg-vlan: bridge ovsbr1 of physical network physnet1 is outside this driver's grant (br-*)"
    );
    let a = agent_with(AGENT_TYPE, |c| {
        c.integration_bridge = Some("integration".into())
    });
    assert_eq!(
        expect_pass(bind_with(network(NetworkType::Vxlan), vec![a])),
        "segment seg-vxlan: integration bridge integration is outside this driver's grant (br-*)"
    );
}

#[test]
fn first_fitting_segment_wins_and_reasons_list_every_segment() {
    let mut multi = network(NetworkType::Vlan);
    let mut vlan2 = multi.segments[0].clone();
    vlan2.id = "seg-a".into();
    vlan2.physical_network = Some("physnet2".into());
    let mut gre = network(NetworkType::Gre).segments.remove(0);
    gre.id = "seg-b".into();
    let vxlan = network(NetworkType::Vxlan).segments.remove(0);
    multi.segments = vec![vlan2.clone(), gre.clone(), vxlan];
    assert_eq!(
        expect_bound(bind_with(multi.clone(), live_agents(AGENT_TYPE))).segment_id,
        "seg-vxlan"
    );

    multi.segments = vec![vlan2, gre];
    assert_eq!(
        expect_pass(bind_with(multi, live_agents(AGENT_TYPE))),
        "segment seg-a: physical network physnet2 not in bridge_mappings of agent on compute-1; segment seg-b: network type gre not supported"
    );
}

#[test]
fn setup_ensures_the_integration_and_physical_bridges() {
    let plan = OvsHybrid::setup_network(network_context(
        network(NetworkType::Vlan),
        live_agent(AGENT_TYPE),
    ))
    .unwrap();
    assert_eq!(
        plan,
        vec![
            Op::EnsureOvsBridge(OvsBridgeSpec {
                name: "br-int".into(),
                datapath_type: "netdev".into()
            }),
            Op::EnsureOvsBridge(OvsBridgeSpec {
                name: "br-phys1".into(),
                datapath_type: "netdev".into()
            }),
        ]
    );
    // A flat network: the integration bridge joined to the physical bridge by a patch pair,
    // an access port of the network's local VLAN on the integration side.
    let flat = network_context(network(NetworkType::Flat), live_agent(AGENT_TYPE));
    let plan = OvsHybrid::setup_network(flat.clone()).unwrap();
    assert_eq!(
        plan,
        PlanBuilder::new()
            .ovs_bridge("br-int", "netdev")
            .ovs_bridge("br-phys1", "netdev")
            .ovs_port(
                "br-int",
                "int-9b7e2c1d-55",
                OvsPortType::Patch("phy-9b7e2c1d-55".into()),
                flat.local_vlan,
                Vec::new()
            )
            .ovs_port(
                "br-phys1",
                "phy-9b7e2c1d-55",
                OvsPortType::Patch("int-9b7e2c1d-55".into()),
                None,
                Vec::new()
            )
            .build()
    );
    assert_eq!(
        OvsHybrid::teardown_network(flat).unwrap(),
        PlanBuilder::new()
            .remove_ovs_port("br-int", "int-9b7e2c1d-55")
            .remove_ovs_port("br-phys1", "phy-9b7e2c1d-55")
            .build()
    );
    let a = agent_with(AGENT_TYPE, |c| c.datapath_type = None);
    let plan = OvsHybrid::setup_network(network_context(network(NetworkType::Local), a)).unwrap();
    assert_eq!(
        plan,
        PlanBuilder::new().ovs_bridge("br-int", "system").build()
    );
}

#[test]
fn a_vxlan_network_gets_its_tunnel_device_as_an_access_port_of_its_local_vlan() {
    let ctx = network_context(network(NetworkType::Vxlan), live_agent(AGENT_TYPE));
    let plan = OvsHybrid::setup_network(ctx.clone()).unwrap();
    assert_eq!(
        plan,
        PlanBuilder::new()
            .ovs_bridge("br-int", "netdev")
            .vxlan(VxlanSpec {
                name: "vxlan-1001".into(),
                vni: 1001,
                local_ip: Some("192.0.2.10".into()),
                group: None,
                underlay_device: None,
                dst_port: 4789,
                mtu: Some(1450),
            })
            .up("vxlan-1001")
            .ovs_port(
                "br-int",
                "vxlan-1001",
                OvsPortType::System,
                Some(1),
                Vec::new()
            )
            .build()
    );
    let teardown = OvsHybrid::teardown_network(ctx).unwrap();
    assert_eq!(
        teardown,
        PlanBuilder::new()
            .remove_ovs_port("br-int", "vxlan-1001")
            .remove_link("vxlan-1001", None)
            .build()
    );
    let no_ip = agent_with(AGENT_TYPE, |c| c.tunneling_ip = None);
    let ctx = network_context(network(NetworkType::Vxlan), no_ip.clone());
    assert!(expect_invalid(OvsHybrid::setup_network(ctx)).contains("no tunneling_ip"));
    assert_eq!(
        expect_pass(bind_with(network(NetworkType::Vxlan), vec![no_ip])),
        "segment seg-vxlan: agent on compute-1 reports no tunneling_ip"
    );
}

#[test]
fn teardown_of_shared_bridges_is_empty_and_idempotent() {
    for ty in [NetworkType::Vlan, NetworkType::Local] {
        let ctx = network_context(network(ty), live_agent(AGENT_TYPE));
        assert_eq!(OvsHybrid::teardown_network(ctx.clone()).unwrap(), vec![]);
        assert_eq!(OvsHybrid::teardown_network(ctx).unwrap(), vec![]);
    }
}

#[test]
fn setup_rejects_what_was_never_bound() {
    assert!(
        expect_invalid(OvsHybrid::setup_network(network_context(
            network(NetworkType::Gre),
            live_agent(AGENT_TYPE)
        )))
        .contains("never binds gre")
    );
    let a = agent_with(AGENT_TYPE, |c| c.bridge_mappings.clear());
    let why = expect_invalid(OvsHybrid::setup_network(network_context(
        network(NetworkType::Flat),
        a,
    )));
    assert_eq!(
        why,
        "physical network physnet1 not in bridge_mappings of agent on compute-1"
    );
}

#[test]
fn hybrid_plug_follows_os_vif() {
    let ctx = bound_port_context(NetworkType::Vlan, live_agent(AGENT_TYPE));
    let ns = ctx.attachment.namespace.clone();
    let plan = OvsHybrid::plug_port(ctx).unwrap();
    assert_eq!(
        plan,
        vec![
            Op::EnsureBridge(BridgeSpec {
                name: QBR.into(),
                mtu: Some(1500)
            }),
            Op::EnsureVeth(VethSpec {
                name: TAP.into(),
                peer: "eth0".into(),
                peer_namespace: Some(ns.clone()),
                peer_mac: Some(MAC.into()),
                mtu: Some(1500),
            }),
            Op::AttachToBridge(AttachSpec {
                link: TAP.into(),
                bridge: QBR.into()
            }),
            Op::EnsureVeth(VethSpec {
                name: QVB.into(),
                peer: QVO.into(),
                peer_namespace: None,
                peer_mac: None,
                mtu: Some(1500),
            }),
            Op::AttachToBridge(AttachSpec {
                link: QVB.into(),
                bridge: QBR.into()
            }),
            up(QBR, None),
            up(TAP, None),
            up(QVB, None),
            up(QVO, None),
            up("eth0", Some(&ns)),
            Op::EnsureOvsPort(OvsPortSpec {
                bridge: "br-int".into(),
                name: QVO.into(),
                port_type: OvsPortType::System,
                tag: Some(1),
                external_ids: external_ids(),
            }),
        ]
    );
}

#[test]
fn plain_plug_makes_the_tap_the_ovs_port() {
    let a = agent_with(AGENT_TYPE, |c| c.ovs_hybrid_plug = Some(false));
    let mut ctx = bound_port_context(NetworkType::Vxlan, a);
    ctx.local_vlan = Some(7);
    let ns = ctx.attachment.namespace.clone();
    let plan = OvsHybrid::plug_port(ctx).unwrap();
    assert_eq!(
        plan,
        vec![
            Op::EnsureVeth(VethSpec {
                name: TAP.into(),
                peer: "eth0".into(),
                peer_namespace: Some(ns.clone()),
                peer_mac: Some(MAC.into()),
                mtu: Some(1450),
            }),
            up(TAP, None),
            up("eth0", Some(&ns)),
            Op::EnsureOvsPort(OvsPortSpec {
                bridge: "br-int".into(),
                name: TAP.into(),
                port_type: OvsPortType::System,
                tag: Some(7),
                external_ids: external_ids(),
            }),
        ]
    );
}

#[test]
fn plug_reads_the_binding_not_the_current_agent() {
    // Bound hybrid; the agent has since changed its mind: the binding's vif_details rule.
    let mut ctx = bound_port_context(NetworkType::Local, live_agent(AGENT_TYPE));
    ctx.agent = agent_with(AGENT_TYPE, |c| {
        c.ovs_hybrid_plug = Some(false);
        c.integration_bridge = Some("br-other".into());
    });
    let plan = OvsHybrid::plug_port(ctx.clone()).unwrap();
    assert_eq!(
        plan[0],
        Op::EnsureBridge(BridgeSpec {
            name: QBR.into(),
            mtu: Some(1500)
        })
    );
    let Some(Op::EnsureOvsPort(spec)) = plan.last() else {
        panic!("{plan:?}")
    };
    assert_eq!(spec.bridge, "br-int");
    // Without vif_details the agent's configuration decides.
    ctx.vif_details.clear();
    let plan = OvsHybrid::plug_port(ctx).unwrap();
    assert_eq!(plan.len(), 4);
    let Some(Op::EnsureOvsPort(spec)) = plan.last() else {
        panic!("{plan:?}")
    };
    assert_eq!(spec.bridge, "br-other");
}

#[test]
fn ports_without_a_device_have_no_vm_uuid() {
    let mut ctx = bound_port_context(NetworkType::Local, live_agent(AGENT_TYPE));
    ctx.port.device_id.clear();
    ctx.local_vlan = None;
    let plan = OvsHybrid::plug_port(ctx).unwrap();
    let Some(Op::EnsureOvsPort(spec)) = plan.last() else {
        panic!("{plan:?}")
    };
    assert_eq!(spec.tag, None);
    assert_eq!(spec.external_ids, external_ids()[..3].to_vec());
}

#[test]
fn hybrid_unplug_removes_everything_and_is_idempotent() {
    let ctx = bound_port_context(NetworkType::Flat, live_agent(AGENT_TYPE));
    let plan = OvsHybrid::unplug_port(ctx.clone()).unwrap();
    assert_eq!(
        plan,
        vec![
            Op::RemoveOvsPort(OvsPortRef {
                bridge: "br-int".into(),
                name: QVO.into()
            }),
            Op::RemoveLink(LinkRef {
                name: QVB.into(),
                namespace: None
            }),
            Op::RemoveLink(LinkRef {
                name: TAP.into(),
                namespace: None
            }),
            Op::RemoveLink(LinkRef {
                name: QBR.into(),
                namespace: None
            }),
        ]
    );
    assert_eq!(OvsHybrid::unplug_port(ctx).unwrap(), plan);
}

#[test]
fn plain_unplug_removes_the_tap_port() {
    let ctx = bound_port_context(
        NetworkType::Vlan,
        agent_with(AGENT_TYPE, |c| c.ovs_hybrid_plug = Some(false)),
    );
    let plan = OvsHybrid::unplug_port(ctx).unwrap();
    assert_eq!(
        plan,
        vec![
            Op::RemoveOvsPort(OvsPortRef {
                bridge: "br-int".into(),
                name: TAP.into()
            }),
            Op::RemoveLink(LinkRef {
                name: TAP.into(),
                namespace: None
            }),
        ]
    );
}

#[test]
fn plug_rejects_malformed_input() {
    let base = bound_port_context(NetworkType::Vlan, live_agent(AGENT_TYPE));

    let mut ctx = base.clone();
    ctx.port.id.clear();
    assert_eq!(
        expect_invalid(OvsHybrid::plug_port(ctx.clone())),
        "port has an empty id"
    );
    assert_eq!(
        expect_invalid(OvsHybrid::unplug_port(ctx)),
        "port has an empty id"
    );

    let mut ctx = base.clone();
    ctx.segment = network(NetworkType::Geneve).segments.remove(0);
    assert!(expect_invalid(OvsHybrid::plug_port(ctx.clone())).contains("never binds geneve"));
    assert!(expect_invalid(OvsHybrid::unplug_port(ctx)).contains("never binds geneve"));

    let mut ctx = base.clone();
    ctx.vif_type = "bridge".into();
    assert_eq!(
        expect_invalid(OvsHybrid::plug_port(ctx)),
        "ovs-hybrid binds vif_type ovs, not bridge"
    );

    let mut ctx = base.clone();
    ctx.vif_details = vec![pair("ovs_hybrid_plug", "\"yes\"")];
    assert!(expect_invalid(OvsHybrid::plug_port(ctx)).contains("not a JSON boolean"));

    let mut ctx = base.clone();
    ctx.vif_details = vec![pair("bridge_name", "\"ovs-system\"")];
    assert!(expect_invalid(OvsHybrid::plug_port(ctx)).contains("grant"));

    let mut ctx = base;
    ctx.attachment.interface_name = "an-interface-name-too-long".into();
    assert!(expect_invalid(OvsHybrid::plug_port(ctx)).contains("not a valid interface name"));
}

#[test]
fn every_name_fits_the_kernel_and_the_grant() {
    let grant = OvsHybrid::describe().capabilities;
    let link_ok = |name: &str| {
        assert!(name.len() <= names::NIC_NAME_LEN, "{name}");
        assert!(
            grant
                .link_prefixes
                .iter()
                .any(|p| name.starts_with(p.as_str())),
            "{name}"
        );
    };
    let ovs_ok = |name: &str| assert!(name.starts_with("br-") && name.len() <= 15, "{name}");
    let ctx = bound_port_context(NetworkType::Vlan, live_agent(AGENT_TYPE));
    let mut ops = OvsHybrid::plug_port(ctx.clone()).unwrap();
    ops.extend(OvsHybrid::unplug_port(ctx).unwrap());
    ops.extend(
        OvsHybrid::setup_network(network_context(
            network(NetworkType::Vlan),
            live_agent(AGENT_TYPE),
        ))
        .unwrap(),
    );
    for op in &ops {
        match op {
            Op::EnsureBridge(b) => link_ok(&b.name),
            Op::EnsureVeth(v) => {
                link_ok(&v.name);
                if v.peer_namespace.is_none() {
                    link_ok(&v.peer);
                }
            }
            Op::AttachToBridge(a) => {
                link_ok(&a.link);
                link_ok(&a.bridge);
            }
            Op::SetLink(l) if l.namespace.is_none() => link_ok(&l.name),
            Op::SetLink(l) => {
                assert_eq!(l.namespace, Some(testing::instance_attachment().namespace))
            }
            Op::RemoveLink(l) => link_ok(&l.name),
            Op::EnsureOvsPort(p) => {
                ovs_ok(&p.bridge);
                link_ok(&p.name);
            }
            Op::RemoveOvsPort(p) => {
                ovs_ok(&p.bridge);
                link_ok(&p.name);
            }
            Op::EnsureOvsBridge(b) => ovs_ok(&b.name),
            other => panic!("unexpected op {other:?}"),
        }
    }
}

#[test]
fn plug_rejects_a_bad_mac_or_local_vlan() {
    let mut ctx = bound_port_context(NetworkType::Vlan, live_agent(AGENT_TYPE));
    ctx.port.mac_address = "fa:16:3e".into();
    assert!(expect_invalid(OvsHybrid::plug_port(ctx.clone())).contains("no usable MAC address"));
    assert_eq!(
        OvsHybrid::unplug_port(ctx).unwrap().len(),
        4,
        "unplug needs no MAC"
    );
    let mut ctx = bound_port_context(NetworkType::Vlan, live_agent(AGENT_TYPE));
    ctx.local_vlan = Some(4096);
    assert_eq!(
        expect_invalid(OvsHybrid::plug_port(ctx.clone())),
        "local VLAN 4096 is outside 0-4095"
    );
    ctx.local_vlan = Some(4095);
    let plan = OvsHybrid::plug_port(ctx).unwrap();
    let Some(Op::EnsureOvsPort(spec)) = plan.last() else {
        panic!("{plan:?}")
    };
    assert_eq!(spec.tag, Some(4095), "OVS's dead VLAN is a valid tag");
}
