//! The plan executor against the real kernel and a private Open vSwitch, with real plans from
//! the three bundled drivers: what a plan makes is there (namespace, controller, MAC, up),
//! applying it twice changes nothing, unplug and teardown remove it, and two instances of one
//! network reach each other (ping and TCP) while different local VLANs do not.
//!
//! Needs root; otherwise every test prints its SKIP line and returns. Every link, bridge,
//! namespace and VNI is unique per test, and guards remove them even when a test fails.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use neutrino::agent::executor::{ApplyError, Executor, ExecutorConfig, LinkInfo};
use neutrino::conformance::AgentFixture;
use neutrino_model::{
    AddressSpec, AttachSpec, BridgeSpec, LinkRef, LinkSpec, MacvlanMode, MacvlanSpec, NetworkType,
    Op, VethSpec,
};
use neutrino_tests::kernel::{
    LinkGuard, NetnsGuard, in_namespace, netns_exec, require_root, unique,
};
use neutrino_tests::ovs::OvsDaemon;
use neutrino_tests::plans::{NetworkStory, PortStory, fresh_mac};
use neutrino_tests::runtime;

/// A veth pair standing in for a physical NIC (`eth1`): the first name is the "interface".
fn physical_interface() -> (String, LinkGuard) {
    let (a, b) = (unique("phy"), unique("phz"));
    let ok = std::process::Command::new("ip")
        .args(["link", "add", &a, "type", "veth", "peer", "name", &b])
        .status()
        .expect("ip link add");
    assert!(ok.success(), "make the stand-in physical interface");
    (a.clone(), LinkGuard::new(a))
}

async fn apply(executor: &Executor, plan: &[Op]) {
    if let Err(e) = executor.apply(plan).await {
        panic!("{e}\nplan:\n{}", neutrino::plugins::render::plan(plan));
    }
}

fn link<'a>(links: &'a [LinkInfo], name: &str) -> &'a LinkInfo {
    links
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no link {name} in {links:?}"))
}

fn has(links: &[LinkInfo], name: &str) -> bool {
    links.iter().any(|l| l.name == name)
}

/// The instance's namespace (as the agent makes it) and guards for what plugging makes.
async fn instance(executor: &Executor, port: &PortStory) -> (NetnsGuard, LinkGuard) {
    let ns = port.namespace().to_string();
    let guard = NetnsGuard::new(&ns);
    apply(executor, &[Op::EnsureNamespace(ns)]).await;
    (guard, LinkGuard::new(format!("tap{}", &port.id()[..11])))
}

/// Gives the instance's eth0 an address, through the executor.
async fn address(executor: &Executor, port: &PortStory, cidr: &str) {
    let op = Op::EnsureAddress(AddressSpec {
        link: "eth0".into(),
        namespace: Some(port.namespace().into()),
        cidr: cidr.into(),
    });
    apply(executor, &[op]).await;
}

fn pings(from: &str, to: &str) -> bool {
    netns_exec(from, &["ping", "-c", "1", "-W", "2", to]).0
}

/// A TCP connection from namespace `from` to a listener on `to_ip` in namespace `to`, with
/// a few bytes each way.
fn tcp_works(from: &str, to: &str, to_ip: &str) -> bool {
    let addr: SocketAddr = format!("{to_ip}:7777").parse().unwrap();
    let listener = in_namespace(to, move || TcpListener::bind(addr).expect("bind"))
        .join()
        .expect("listener thread");
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok((mut conn, _)) = listener.accept() {
                conn.set_nonblocking(false).unwrap();
                let mut buf = [0u8; 5];
                if conn.read_exact(&mut buf).is_ok() && &buf == b"hello" {
                    let _ = conn.write_all(b"world");
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let client = in_namespace(from, move || {
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        conn.write_all(b"hello").ok()?;
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).ok()?;
        Some(buf == *b"world")
    })
    .join()
    .expect("client thread");
    let _ = server.join();
    client == Some(true)
}

/// What the driver's plug made: the tap on `bridge` and up, the instance's eth0 in its
/// namespace with the port's MAC and up.
async fn assert_plugged(executor: &Executor, port: &PortStory, bridge: &str) {
    let host = executor.links(None).await.unwrap();
    let tap = link(&host, &format!("tap{}", &port.id()[..11]));
    assert_eq!(tap.kind.as_deref(), Some("veth"));
    assert_eq!(tap.controller.as_deref(), Some(bridge));
    assert!(tap.up, "{tap:?}");
    assert!(!has(&host, "eth0") || host.iter().all(|l| l.mac.as_deref() != Some(port.mac())));
    let inside = executor.links(Some(port.namespace())).await.unwrap();
    let eth0 = link(&inside, "eth0");
    assert_eq!(eth0.kind.as_deref(), Some("veth"));
    assert_eq!(eth0.mac.as_deref(), Some(port.mac()));
    assert!(eth0.up, "{eth0:?}");
    assert!(link(&inside, "lo").up, "loopback up in a namespace we made");
}

async fn assert_unplugged(executor: &Executor, port: &PortStory) {
    let host = executor.links(None).await.unwrap();
    assert!(!has(&host, &format!("tap{}", &port.id()[..11])));
    let inside = executor.links(Some(port.namespace())).await.unwrap();
    assert!(
        !has(&inside, "eth0"),
        "the peer goes with the tap: {inside:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flatdhcp_instances_on_a_flat_network_talk() {
    if !require_root("flatdhcp_instances_on_a_flat_network_talk") {
        return;
    }
    let (phys, _phys_guard) = physical_interface();
    let bridge = unique("brf");
    let _bridge_guard = LinkGuard::new(&bridge);
    let fx = AgentFixture {
        bridge_mappings: BTreeMap::from([("physnet1".into(), bridge.clone())]),
        interface_mappings: BTreeMap::from([("physnet1".into(), phys.clone())]),
        ..AgentFixture::default()
    };
    let rt = runtime();
    let story = NetworkStory::new(
        &rt,
        "flatdhcp",
        "Flat DHCP agent",
        &fx,
        NetworkType::Flat,
        &[],
    );
    let executor = Executor::new(ExecutorConfig::default());
    let setup = story.setup();
    apply(&executor, &setup).await;
    let host = executor.links(None).await.unwrap();
    let br = link(&host, &bridge);
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert!(br.up);
    assert_eq!(
        link(&host, &phys).controller.as_deref(),
        Some(bridge.as_str())
    );

    let (a, b) = (story.port(1), story.port(1));
    let _ga = instance(&executor, &a).await;
    let _gb = instance(&executor, &b).await;
    let (plug_a, plug_b) = (story.plug(&a), story.plug(&b));
    apply(&executor, &plug_a).await;
    apply(&executor, &plug_b).await;
    assert_plugged(&executor, &a, &bridge).await;
    assert_plugged(&executor, &b, &bridge).await;

    // Applying again changes nothing and succeeds.
    apply(&executor, &setup).await;
    apply(&executor, &plug_a).await;
    assert_plugged(&executor, &a, &bridge).await;

    address(&executor, &a, "10.71.0.11/24").await;
    address(&executor, &b, "10.71.0.12/24").await;
    assert!(pings(a.namespace(), "10.71.0.12"));
    assert!(tcp_works(a.namespace(), b.namespace(), "10.71.0.12"));

    apply(&executor, &story.unplug(&a)).await;
    assert_unplugged(&executor, &a).await;
    apply(&executor, &story.unplug(&a)).await;
    apply(&executor, &story.teardown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linuxbridge_instances_on_a_vxlan_network_talk() {
    if !require_root("linuxbridge_instances_on_a_vxlan_network_talk") {
        return;
    }
    let fx = AgentFixture {
        bridge_mappings: BTreeMap::new(),
        interface_mappings: BTreeMap::new(),
        tunneling_ip: Some("127.0.0.1".into()),
        ..AgentFixture::default()
    };
    let rt = runtime();
    let story = NetworkStory::new(
        &rt,
        "linuxbridge",
        "Linux bridge agent",
        &fx,
        NetworkType::Vxlan,
        // Unicast: a multicast group needs an underlay device, which the driver names not.
        &[("vxlan_group", "")],
    );
    let bridge = format!("brq{}", &story.network.id[..11]);
    let vni = story.network.segments[0].segmentation_id.unwrap();
    let vxlan = format!("vxlan-{vni}");
    let _guards = (LinkGuard::new(&bridge), LinkGuard::new(&vxlan));
    let executor = Executor::new(ExecutorConfig::default());
    let setup = story.setup();
    apply(&executor, &setup).await;
    let host = executor.links(None).await.unwrap();
    assert_eq!(link(&host, &bridge).kind.as_deref(), Some("bridge"));
    let vx = link(&host, &vxlan);
    assert_eq!(vx.kind.as_deref(), Some("vxlan"));
    assert_eq!(vx.controller.as_deref(), Some(bridge.as_str()));
    assert!(vx.up);

    let (a, b) = (story.port(1), story.port(1));
    let _ga = instance(&executor, &a).await;
    let _gb = instance(&executor, &b).await;
    apply(&executor, &story.plug(&a)).await;
    apply(&executor, &story.plug(&b)).await;
    apply(&executor, &story.plug(&b)).await;
    apply(&executor, &setup).await;
    assert_plugged(&executor, &a, &bridge).await;
    assert_plugged(&executor, &b, &bridge).await;

    address(&executor, &a, "10.72.0.11/24").await;
    address(&executor, &b, "10.72.0.12/24").await;
    assert!(pings(b.namespace(), "10.72.0.11"));
    assert!(tcp_works(b.namespace(), a.namespace(), "10.72.0.11"));

    apply(&executor, &story.unplug(&a)).await;
    apply(&executor, &story.unplug(&b)).await;
    assert_unplugged(&executor, &a).await;
    assert_unplugged(&executor, &b).await;
    let teardown = story.teardown();
    apply(&executor, &teardown).await;
    apply(&executor, &teardown).await;
    let host = executor.links(None).await.unwrap();
    assert!(
        !has(&host, &bridge) && !has(&host, &vxlan),
        "teardown removes bridge and vxlan"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linuxbridge_flat_network_enslaves_the_physical_interface() {
    if !require_root("linuxbridge_flat_network_enslaves_the_physical_interface") {
        return;
    }
    let (phys, _phys_guard) = physical_interface();
    let fx = AgentFixture {
        bridge_mappings: BTreeMap::new(),
        interface_mappings: BTreeMap::from([("physnet1".into(), phys.clone())]),
        ..AgentFixture::default()
    };
    let rt = runtime();
    let story = NetworkStory::new(
        &rt,
        "linuxbridge",
        "Linux bridge agent",
        &fx,
        NetworkType::Flat,
        &[],
    );
    let bridge = format!("brq{}", &story.network.id[..11]);
    let _bridge_guard = LinkGuard::new(&bridge);
    let executor = Executor::new(ExecutorConfig::default());
    apply(&executor, &story.setup()).await;
    let port = story.port(1);
    let _g = instance(&executor, &port).await;
    apply(&executor, &story.plug(&port)).await;
    let host = executor.links(None).await.unwrap();
    let iface = link(&host, &phys);
    assert_eq!(iface.controller.as_deref(), Some(bridge.as_str()));
    assert!(iface.up);
    assert_plugged(&executor, &port, &bridge).await;
    apply(&executor, &story.unplug(&port)).await;
    apply(&executor, &story.teardown()).await;
    let host = executor.links(None).await.unwrap();
    assert!(!has(&host, &bridge));
    assert!(has(&host, &phys), "the physical interface stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_hybrid_ports_talk_within_a_local_vlan_only() {
    if !require_root("ovs_hybrid_ports_talk_within_a_local_vlan_only") {
        return;
    }
    let ovs = OvsDaemon::start().expect("start Open vSwitch");
    let (int_br, phys_br) = (unique("br-i"), unique("br-p"));
    let fx = AgentFixture {
        bridge_mappings: BTreeMap::from([("physnet1".into(), phys_br.clone())]),
        integration_bridge: Some(int_br.clone()),
        ..AgentFixture::default()
    };
    let rt = runtime();
    let story = NetworkStory::new(
        &rt,
        "ovs-hybrid",
        "Open vSwitch agent",
        &fx,
        NetworkType::Flat,
        &[],
    );
    let executor = Executor::new(ExecutorConfig {
        ovs_db: Some(ovs.db_socket()),
    });
    let setup = story.setup();
    apply(&executor, &setup).await;
    apply(&executor, &setup).await;
    let bridges = ovs.vsctl(&["list-br"]).unwrap();
    assert!(
        bridges.contains(&int_br) && bridges.contains(&phys_br),
        "{bridges}"
    );
    let datapath = ovs
        .vsctl(&["get", "Bridge", &int_br, "datapath_type"])
        .unwrap();
    assert_eq!(datapath.trim(), "netdev");

    // a and b share local VLAN 7; c is on VLAN 8.
    let ports = [story.port(7), story.port(7), story.port(8)];
    let (mut instances, mut devices) = (Vec::new(), Vec::new());
    for p in &ports {
        instances.push(instance(&executor, p).await);
        let short = &p.id()[..11];
        devices.push(LinkGuard::new(format!("qbr{short}")));
        devices.push(LinkGuard::new(format!("qvb{short}")));
        let plug = story.plug(p);
        apply(&executor, &plug).await;
        apply(&executor, &plug).await;
        assert_plugged(&executor, p, &format!("qbr{short}")).await;
    }
    let on_int = executor.ovs_ports(&int_br).await.unwrap();
    for (p, tag) in ports.iter().zip([7, 7, 8]) {
        let qvo = format!("qvo{}", &p.id()[..11]);
        let port = on_int
            .iter()
            .find(|o| o.name == qvo)
            .unwrap_or_else(|| panic!("{qvo} not on {int_br}: {on_int:?}"));
        assert_eq!(port.tag, Some(tag));
        assert_eq!(
            port.external_ids.get("iface-id").map(String::as_str),
            Some(p.id())
        );
        assert_eq!(
            port.external_ids.get("attached-mac").map(String::as_str),
            Some(p.mac())
        );
    }

    let [a, b, c] = &ports;
    address(&executor, a, "10.73.0.11/24").await;
    address(&executor, b, "10.73.0.12/24").await;
    address(&executor, c, "10.73.0.13/24").await;
    assert!(pings(a.namespace(), "10.73.0.12"));
    assert!(tcp_works(a.namespace(), b.namespace(), "10.73.0.12"));
    assert!(!pings(a.namespace(), "10.73.0.13"), "VLAN 7 reaches VLAN 8");
    assert!(!pings(c.namespace(), "10.73.0.12"), "VLAN 8 reaches VLAN 7");

    for p in &ports {
        apply(&executor, &story.unplug(p)).await;
        apply(&executor, &story.unplug(p)).await;
        assert_unplugged(&executor, p).await;
        let host = executor.links(None).await.unwrap();
        let short = &p.id()[..11];
        for dev in ["qbr", "qvb", "qvo"] {
            assert!(
                !has(&host, &format!("{dev}{short}")),
                "{dev}{short} left behind"
            );
        }
    }
    // The flat network's patch pair to its physical bridge stays with the network...
    let left = executor.ovs_ports(&int_br).await.unwrap();
    assert!(
        left.iter()
            .all(|p| p.name == int_br || p.name.starts_with("int-")),
        "only the bridge's own port and the network's patch: {left:?}"
    );
    assert_eq!(left.len(), 2, "{left:?}");
    // ...and goes with it.
    apply(&executor, &story.teardown()).await;
    for bridge in [&int_br, &phys_br] {
        let left = executor.ovs_ports(bridge).await.unwrap();
        assert!(
            left.iter().all(|p| &p.name == bridge),
            "only the bridge's own port on {bridge}: {left:?}"
        );
    }
    drop((instances, devices));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_internal_port_moves_into_its_namespace() {
    if !require_root("ovs_internal_port_moves_into_its_namespace") {
        return;
    }
    let ovs = OvsDaemon::start().expect("start Open vSwitch");
    let bridge = unique("br-x");
    let executor = Executor::new(ExecutorConfig {
        ovs_db: Some(ovs.db_socket()),
    });
    let names = [unique("tapx"), unique("tapy")];
    let spaces = [unique("qdhcp-t"), unique("qdhcp-u")];
    let _ns_guards: Vec<NetnsGuard> = spaces.iter().map(NetnsGuard::new).collect();
    let _link_guards: Vec<LinkGuard> = names.iter().map(LinkGuard::new).collect();
    let mut plan = vec![Op::EnsureOvsBridge(neutrino_model::OvsBridgeSpec {
        name: bridge.clone(),
        datapath_type: "netdev".into(),
    })];
    for (i, (name, ns)) in names.iter().zip(&spaces).enumerate() {
        plan.extend([
            Op::EnsureNamespace(ns.clone()),
            Op::EnsureOvsPort(neutrino_model::OvsPortSpec {
                bridge: bridge.clone(),
                name: name.clone(),
                port_type: neutrino_model::OvsPortType::Internal,
                tag: Some(3),
                external_ids: vec![("iface-id".into(), format!("port-{i}"))],
            }),
            Op::SetLink(LinkSpec {
                name: name.clone(),
                namespace: Some(ns.clone()),
                up: true,
                mtu: Some(1400),
                mac: Some(fresh_mac()),
            }),
            Op::EnsureAddress(AddressSpec {
                link: name.clone(),
                namespace: Some(ns.clone()),
                cidr: format!("10.74.0.{}/24", 11 + i),
            }),
        ]);
    }
    apply(&executor, &plan).await;
    apply(&executor, &plan).await;
    for (name, ns) in names.iter().zip(&spaces) {
        let inside = executor.links(Some(ns)).await.unwrap();
        assert!(link(&inside, name).up);
        let (_, features) = netns_exec(ns, &["ethtool", "-k", name]);
        assert!(
            features.contains("tx-checksumming: off"),
            "TX checksum offload still on for {name}:\n{features}"
        );
    }
    assert!(tcp_works(&spaces[0], &spaces[1], "10.74.0.12"));
    // Besides the bridge's own port.
    let ports = executor.ovs_ports(&bridge).await.unwrap();
    let ours: Vec<_> = ports.iter().filter(|p| p.name != bridge).collect();
    assert_eq!(ours.len(), 2, "{ports:?}");
    assert!(ours.iter().all(|p| p.tag == Some(3)), "{ports:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_are_the_ones_ip_netns_sees() {
    if !require_root("namespaces_are_the_ones_ip_netns_sees") {
        return;
    }
    let executor = Executor::new(ExecutorConfig::default());
    let ns = unique("nt-ns");
    let _guard = NetnsGuard::new(&ns);
    apply(&executor, &[Op::EnsureNamespace(ns.clone())]).await;
    apply(&executor, &[Op::EnsureNamespace(ns.clone())]).await;
    assert!(executor.namespaces().await.unwrap().contains(&ns));
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&ns));
    let (ok, out) = netns_exec(&ns, &["ping", "-c", "1", "-W", "1", "127.0.0.1"]);
    assert!(ok, "loopback is up inside: {out}");
    // A macvlan made straight into the namespace, on a host link.
    let (parent, _parent_guard) = physical_interface();
    let mac = fresh_mac();
    let macvlan = Op::EnsureMacvlan(MacvlanSpec {
        name: "eth0".into(),
        parent: parent.clone(),
        mode: MacvlanMode::Bridge,
        namespace: Some(ns.clone()),
        mac: Some(mac.clone()),
        mtu: Some(1400),
    });
    apply(&executor, &[macvlan.clone(), macvlan]).await;
    let inside = executor.links(Some(&ns)).await.unwrap();
    assert_eq!(link(&inside, "eth0").kind.as_deref(), Some("macvlan"));
    assert_eq!(link(&inside, "eth0").mac.as_deref(), Some(mac.as_str()));

    apply(&executor, &[Op::RemoveNamespace(ns.clone())]).await;
    apply(&executor, &[Op::RemoveNamespace(ns.clone())]).await;
    assert!(!executor.namespaces().await.unwrap().contains(&ns));
    // Links in a namespace that is gone are gone too.
    let gone = Op::RemoveLink(LinkRef {
        name: "eth0".into(),
        namespace: Some(ns.clone()),
    });
    apply(&executor, &[gone]).await;
}

// ensure-vlan is not exercised: this machine's kernel has no 802.1Q VLAN links (machine.md),
// so creating one fails here whatever the executor does.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_is_named_and_stops_the_plan() {
    if !require_root("a_failing_step_is_named_and_stops_the_plan") {
        return;
    }
    let executor = Executor::new(ExecutorConfig::default());
    let (veth, peer, missing, after) = (
        unique("tapf"),
        unique("tapg"),
        unique("brmissing"),
        unique("brafter"),
    );
    let _guards = (LinkGuard::new(&veth), LinkGuard::new(&after));
    let plan = vec![
        Op::EnsureVeth(VethSpec {
            name: veth.clone(),
            peer: peer.clone(),
            peer_namespace: None,
            peer_mac: None,
            mtu: Some(1450),
        }),
        Op::AttachToBridge(AttachSpec {
            link: veth.clone(),
            bridge: missing.clone(),
        }),
        Op::EnsureBridge(BridgeSpec {
            name: after.clone(),
            mtu: None,
        }),
    ];
    let err: ApplyError = executor.apply(&plan).await.unwrap_err();
    assert_eq!(err.index, 1);
    assert_eq!(err.op, format!("attach {veth} -> {missing}"));
    assert!(err.message.contains("does not exist"), "{err}");
    assert!(err.to_string().contains(&err.op));
    let host = executor.links(None).await.unwrap();
    assert!(
        has(&host, &veth) && has(&host, &peer),
        "steps before the failure were applied"
    );
    assert!(!has(&host, &after), "steps after the failure were not");
    // Removing what is not there succeeds.
    let removals = [
        Op::RemoveLink(LinkRef {
            name: unique("gone"),
            namespace: None,
        }),
        Op::RemoveNamespace(unique("gone-ns")),
    ];
    apply(&executor, &removals).await;
}

/// Whatever a plan says (issue 11, findings 2-4): the executor opens only
/// `/run/netns/<name>`, never removes a plain device (a physical NIC, the loopback), and
/// never hands ovs-vsctl a name it could read as an option or a separator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executor_refuses_escapes_plain_device_removals_and_option_names() {
    if !require_root("the_executor_refuses_escapes_plain_device_removals_and_option_names") {
        return;
    }
    let executor = Executor::new(ExecutorConfig::default());
    let fail = |r: Result<(), ApplyError>| r.expect_err("refused").message;

    for escape in ["../../proc/1/ns/net", "/proc/1/ns/net", ".."] {
        let m = fail(
            executor
                .apply(&[Op::SetLink(LinkSpec {
                    name: "lo".into(),
                    namespace: Some(escape.into()),
                    up: false,
                    mtu: None,
                    mac: None,
                })])
                .await,
        );
        assert!(m.contains("is not a namespace name"), "{escape}: {m}");
        assert!(m.contains("only /run/netns/<name> is ever opened"), "{m}");
    }
    // The host's loopback is still up.
    let host = executor.links(None).await.unwrap();
    assert!(link(&host, "lo").up);

    let ns = unique("qx-");
    let _guard = NetnsGuard::new(&ns);
    apply(&executor, &[Op::EnsureNamespace(ns.clone())]).await;
    let m = fail(
        executor
            .apply(&[Op::RemoveLink(LinkRef {
                name: "lo".into(),
                namespace: Some(ns.clone()),
            })])
            .await,
    );
    assert!(m.contains("is a plain device"), "{m}");
    let inside = executor.links(Some(&ns)).await.unwrap();
    assert!(
        link(&inside, "lo").up,
        "the namespace's loopback is untouched"
    );

    for name in ["--", "-x", "--if-exists"] {
        let m = fail(
            executor
                .apply(&[Op::RemoveOvsPort(neutrino_model::OvsPortRef {
                    bridge: "br-int".into(),
                    name: name.into(),
                })])
                .await,
        );
        assert!(m.contains("is not an OVS name"), "{name}: {m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_forwarding_entries_are_kept_exact_and_a_group_finds_its_underlay() {
    use neutrino::agent::executor::{FLOOD_MAC, FdbEntry};
    use neutrino_model::VxlanSpec;
    use neutrino_tests::kernel::{Netns, ip};
    use std::collections::BTreeSet;

    if !require_root("vxlan_forwarding_entries_are_kept_exact_and_a_group_finds_its_underlay") {
        return;
    }
    // Everything happens in a namespace of the test's own: an underlay veth with the local
    // address, a unicast and a multicast VXLAN device.
    let ns = Netns::new(&unique("fdb"));
    ip(&[
        "-n", &ns.name, "link", "add", "ul0", "type", "veth", "peer", "name", "ul1",
    ]);
    ip(&["-n", &ns.name, "addr", "add", "10.99.0.1/24", "dev", "ul0"]);
    ip(&["-n", &ns.name, "link", "set", "ul0", "up"]);
    ip(&["-n", &ns.name, "link", "set", "ul1", "up"]);
    let spec = |name: &str, vni: u32, group: Option<&str>| VxlanSpec {
        name: name.into(),
        vni,
        local_ip: Some("10.99.0.1".into()),
        group: group.map(str::to_string),
        underlay_device: None,
        dst_port: 4789,
        mtu: Some(1450),
    };
    let entry = |mac: &str, dst: &str| FdbEntry {
        mac: mac.into(),
        dst: dst.parse().unwrap(),
    };
    let name = ns.name.clone();
    let (unicast, multicast, group_entry) = in_namespace(&ns.name, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let executor = Executor::new(ExecutorConfig::default());
            let plan = [
                Op::EnsureVxlan(spec("vxu", 5001, None)),
                // Without an underlay device the kernel refuses a group (EINVAL): the device
                // holding the local address is used.
                Op::EnsureVxlan(spec("vxm", 5002, Some("239.1.1.7"))),
            ];
            apply(&executor, &plan).await;
            apply(&executor, &plan).await;
            let wanted: BTreeSet<FdbEntry> = [
                entry(FLOOD_MAC, "10.99.0.2"),
                entry(FLOOD_MAC, "10.99.0.3"),
                entry("fa:16:3e:00:00:02", "10.99.0.2"),
                entry("fa:16:3e:00:00:03", "10.99.0.3"),
            ]
            .into();
            let changes = executor
                .sync_forwarding("vxu", None, &wanted)
                .await
                .unwrap()
                .unwrap();
            assert_eq!((changes.added, changes.removed), (4, 0));
            let again = executor
                .sync_forwarding("vxu", None, &wanted)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (again.added, again.removed),
                (0, 0),
                "a second sync changes nothing"
            );
            // A peer leaves and a MAC moves to the other peer.
            let fewer: BTreeSet<FdbEntry> = [
                entry(FLOOD_MAC, "10.99.0.2"),
                entry("fa:16:3e:00:00:02", "10.99.0.2"),
                entry("fa:16:3e:00:00:03", "10.99.0.2"),
            ]
            .into();
            executor
                .sync_forwarding("vxu", None, &fewer)
                .await
                .unwrap()
                .unwrap();
            let unicast = executor.forwarding_entries("vxu", None).await.unwrap();
            assert_eq!(unicast, fewer);
            let mac_only: BTreeSet<FdbEntry> = [entry("fa:16:3e:00:00:09", "10.99.0.4")].into();
            executor
                .sync_forwarding("vxm", None, &mac_only)
                .await
                .unwrap()
                .unwrap();
            executor
                .sync_forwarding("vxm", None, &BTreeSet::new())
                .await
                .unwrap()
                .unwrap();
            let multicast = executor.forwarding_entries("vxm", None).await.unwrap();
            assert!(
                executor
                    .sync_forwarding("no-such", None, &BTreeSet::new())
                    .await
                    .unwrap()
                    .is_none()
            );
            let shown = std::process::Command::new("bridge")
                .args(["fdb", "show", "dev", "vxm"])
                .output()
                .unwrap();
            (
                unicast,
                multicast,
                String::from_utf8_lossy(&shown.stdout).into_owned(),
            )
        })
    })
    .join()
    .unwrap_or_else(|_| panic!("in namespace {name}"));
    assert_eq!(unicast.len(), 3);
    assert!(
        multicast.is_empty(),
        "our entries on vxm are gone: {multicast:?}"
    );
    assert!(
        group_entry.contains("dst 239.1.1.7"),
        "the group's own flood entry stays: {group_entry}"
    );
}
