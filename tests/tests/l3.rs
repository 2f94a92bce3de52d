//! The L3 agent's routers against the kernel (root). Each test builds, in namespaces of its
//! own, what the drivers would plug: a `qrouter-` namespace holding `qr-` devices (veth ends
//! whose peers are `eth0` of one instance namespace per internal subnet) and a `qg-` device
//! whose peer is in an "outside" namespace, the external network's stand-in (with the external
//! gateway 172.30.0.1). Nothing touches the host's own network. Traffic is real: ping, and TCP
//! between threads that entered the namespaces, the listener telling the peer address it saw.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use neutrino::agent::executor::{Executor, ExecutorConfig};
use neutrino::agent::l3::{Applied, Routers, tools};
use neutrino::agent::protocol::{
    FloatingIpStatus, HostFloatingIp, HostRouter, RouterDevice, RouterGateway,
};
use neutrino_tests::kernel::{Netns, in_namespace, ip, netns_exec, require_root, unique, veth};

const QR_A: &str = "qr-aaaaaaaa-a1";
const QR_B: &str = "qr-bbbbbbbb-b1";
const QG: &str = "qg-cccccccc-c1";
const A: &str = "10.61.0.5";
const B: &str = "10.62.0.5";
const OUTSIDE: &str = "172.30.0.1";
const ROUTER_GW: &str = "172.30.0.3";
const FIP: &str = "172.30.0.10";

struct Lab {
    routers: Routers,
    runtime: tokio::runtime::Runtime,
    router: HostRouter,
    // Dropped (deleted) after the routers: the namespaces go even when a test fails.
    a: Netns,
    b: Netns,
    outside: Netns,
    ns: Netns,
}

impl Lab {
    fn new() -> Lab {
        let id = uuid_like();
        let ns = Netns::new(&format!("qrouter-{id}"));
        let a = Netns::new(&unique("l3a"));
        let b = Netns::new(&unique("l3b"));
        let outside = Netns::new(&unique("l3o"));
        // The drivers' part: the devices, up, with their MACs; the instances' own config.
        veth(&ns, QR_A, &a, "eth0");
        veth(&ns, QR_B, &b, "eth0");
        veth(&ns, QG, &outside, "eth0");
        for (inst, address, gateway) in [(&a, A, "10.61.0.1"), (&b, B, "10.62.0.1")] {
            ip(&[
                "-n",
                &inst.name,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &inst.name, "route", "add", "default", "via", gateway]);
        }
        ip(&[
            "-n",
            &outside.name,
            "addr",
            "add",
            &format!("{OUTSIDE}/24"),
            "dev",
            "eth0",
        ]);
        // The outside can answer the internal subnets only through the router's gateway
        // address (only without SNAT does it see those sources).
        ip(&[
            "-n",
            &outside.name,
            "route",
            "add",
            "10.61.0.0/16",
            "via",
            ROUTER_GW,
        ]);
        let mac = |name: &str| {
            let out = ip(&["-n", &ns.name, "-j", "link", "show", name]);
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            v[0]["address"].as_str().unwrap().to_string()
        };
        let device = |name: &str, address: &str| RouterDevice {
            port_id: format!("{}-port", &name[3..]),
            network_id: format!("net-{name}"),
            interface_name: name.into(),
            mac_address: mac(name),
            addresses: vec![address.into()],
        };
        let router = HostRouter {
            id: id.clone(),
            admin_state_up: true,
            namespace: ns.name.clone(),
            interfaces: vec![device(QR_A, "10.61.0.1/24"), device(QR_B, "10.62.0.1/24")],
            gateway: Some(RouterGateway {
                device: device(QG, &format!("{ROUTER_GW}/24")),
                gateway_ips: vec![OUTSIDE.into()],
                enable_snat: true,
            }),
            routes: vec![],
            floating_ips: vec![],
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Lab {
            routers: Routers::new(Executor::new(ExecutorConfig::default())),
            runtime,
            router,
            a,
            b,
            outside,
            ns,
        }
    }

    fn apply(&mut self) -> Applied {
        let router = self.router.clone();
        self.runtime.block_on(self.routers.apply(&router))
    }

    /// Applies and expects no error.
    fn apply_ok(&mut self) -> Vec<FloatingIpStatus> {
        let applied = self.apply();
        assert!(applied.errors.is_empty(), "{:?}", applied.errors);
        applied.statuses
    }

    /// What an apply may change: the router namespace's addresses, routes, NAT and mangle.
    fn state(&self) -> String {
        let addresses = ip(&["-n", &self.ns.name, "-br", "addr"]);
        let routes = ip(&["-n", &self.ns.name, "route"]);
        let routes6 = ip(&["-n", &self.ns.name, "-6", "route"]);
        let tables = self
            .runtime
            .block_on(tools::iptables_save(&self.ns.name))
            .unwrap();
        // Without comments (dates) and chain counters (traffic).
        let tables: String = tables
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| match l.strip_prefix(':') {
                Some(chain) => format!(":{}\n", chain.split(" [").next().unwrap_or(chain)),
                None => format!("{l}\n"),
            })
            .collect();
        format!("{addresses}\n{routes}\n{routes6}\n{tables}")
    }

    fn routes(&self) -> String {
        ip(&["-n", &self.ns.name, "route"])
    }

    fn fip(&mut self, status: &str) {
        self.router.floating_ips = vec![HostFloatingIp {
            id: "fip-1".into(),
            floating_ip_address: FIP.into(),
            fixed_ip_address: A.into(),
            status: status.into(),
        }];
    }
}

fn uuid_like() -> String {
    format!("{}-0000-4000-8000-000000000000", unique("l3r0"))
}

fn ping(from: &Netns, to: &str) -> bool {
    netns_exec(&from.name, &["ping", "-c", "1", "-W", "1", to]).0
}

/// Accepts connections on `port` in `ns`; every peer address it sees comes on the channel.
fn listen(ns: &Netns, port: u16) -> mpsc::Receiver<SocketAddr> {
    let (ready_tx, ready) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    in_namespace(&ns.name, move || {
        let listener = TcpListener::bind(("0.0.0.0", port)).unwrap();
        ready_tx.send(()).unwrap();
        for stream in listener.incoming().flatten() {
            if tx.send(stream.peer_addr().unwrap()).is_err() {
                return;
            }
        }
    });
    ready.recv().unwrap();
    rx
}

/// Connects from `ns` to `to:port`; the address the listener saw, or None when it was not
/// reached.
fn reach(ns: &Netns, seen: &mpsc::Receiver<SocketAddr>, to: &str, port: u16) -> Option<String> {
    let addr: SocketAddr = format!("{to}:{port}").parse().unwrap();
    let connected = in_namespace(&ns.name, move || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
    })
    .join()
    .unwrap();
    if !connected {
        return None;
    }
    let peer = seen.recv_timeout(Duration::from_secs(2)).ok()?;
    Some(peer.ip().to_string())
}

fn sysctl(ns: &Netns, key: &str) -> String {
    netns_exec(&ns.name, &["cat", &format!("/proc/sys/{key}")])
        .1
        .trim()
        .to_string()
}

#[test]
fn router_joins_subnets_and_snats_to_the_outside_idempotently() {
    let test = "router_joins_subnets_and_snats_to_the_outside_idempotently";
    if !require_root(test) {
        return;
    }
    let mut lab = Lab::new();
    assert!(!ping(&lab.a, B), "no router yet");
    let started = Instant::now();
    assert_eq!(lab.apply_ok(), vec![]);
    eprintln!("{test}: first apply in {:.1?}", started.elapsed());
    for (key, value) in [
        ("net/ipv4/ip_forward", "1"),
        ("net/ipv4/conf/all/arp_ignore", "1"),
        ("net/ipv4/conf/all/arp_announce", "2"),
        ("net/ipv6/conf/all/forwarding", "1"),
    ] {
        assert_eq!(sysctl(&lab.ns, key), value, "{key}");
    }
    assert!(ping(&lab.a, B), "a reaches b through the router");
    assert!(ping(&lab.b, A), "b reaches a");
    let b_listens = listen(&lab.b, 7001);
    assert_eq!(
        reach(&lab.a, &b_listens, B, 7001).as_deref(),
        Some(A),
        "east-west traffic is not NATed"
    );
    let outside = listen(&lab.outside, 7002);
    assert_eq!(
        reach(&lab.a, &outside, OUTSIDE, 7002).as_deref(),
        Some(ROUTER_GW),
        "the outside sees the gateway address"
    );
    let routes = lab.routes();
    assert!(
        routes.contains(&format!("default via {OUTSIDE} dev {QG}")),
        "{routes}"
    );

    // The same router again: nothing changes, no error.
    let before = lab.state();
    let started = Instant::now();
    assert_eq!(lab.apply_ok(), vec![]);
    eprintln!("{test}: unchanged apply in {:.1?}", started.elapsed());
    assert_eq!(lab.state(), before);
    // A new Routers (an agent restart) writes the same rules, again without a change.
    lab.routers = Routers::new(Executor::new(ExecutorConfig::default()));
    assert_eq!(lab.apply_ok(), vec![]);
    assert_eq!(lab.state(), before);

    // An address of another subnet added by hand on a qr- device is taken away.
    ip(&[
        "-n",
        &lab.ns.name,
        "addr",
        "add",
        "10.77.0.1/24",
        "dev",
        QR_A,
    ]);
    lab.apply_ok();
    assert_eq!(lab.state(), before);
}

#[test]
fn without_snat_the_outside_sees_the_instance_address() {
    let test = "without_snat_the_outside_sees_the_instance_address";
    if !require_root(test) {
        return;
    }
    let mut lab = Lab::new();
    lab.router.gateway.as_mut().unwrap().enable_snat = false;
    lab.apply_ok();
    let outside = listen(&lab.outside, 7003);
    assert_eq!(reach(&lab.a, &outside, OUTSIDE, 7003).as_deref(), Some(A));
    // And with SNAT switched on, the rule set changes to the gateway address.
    lab.router.gateway.as_mut().unwrap().enable_snat = true;
    lab.apply_ok();
    assert_eq!(
        reach(&lab.a, &outside, OUTSIDE, 7003).as_deref(),
        Some(ROUTER_GW)
    );
}

#[test]
fn floating_ip_reaches_the_instance_until_it_is_removed() {
    let test = "floating_ip_reaches_the_instance_until_it_is_removed";
    if !require_root(test) {
        return;
    }
    let mut lab = Lab::new();
    lab.apply_ok();
    let at_a = listen(&lab.a, 7004);
    assert_eq!(
        reach(&lab.outside, &at_a, FIP, 7004),
        None,
        "no floating IP yet"
    );

    lab.fip("DOWN");
    let started = Instant::now();
    let statuses = lab.apply_ok();
    eprintln!("{test}: floating IP applied in {:.1?}", started.elapsed());
    assert_eq!(
        statuses,
        vec![FloatingIpStatus {
            id: "fip-1".into(),
            status: "ACTIVE".into()
        }]
    );
    let addresses = ip(&["-n", &lab.ns.name, "addr", "show", QG]);
    assert!(addresses.contains(&format!("{FIP}/32")), "{addresses}");
    let tables = lab
        .runtime
        .block_on(tools::iptables_save(&lab.ns.name))
        .unwrap();
    for rule in [
        format!("-A neutron-l3-agent-PREROUTING -d {FIP}/32 -j DNAT --to-destination {A}"),
        format!("-A neutron-l3-agent-OUTPUT -d {FIP}/32 -j DNAT --to-destination {A}"),
        format!("-A neutron-l3-agent-float-snat -s {A}/32 -j SNAT --to-source {FIP}"),
        format!("-A neutron-l3-agent-mark -i {QG} -j MARK --set-xmark 0x2/0xffff"),
    ] {
        assert!(tables.contains(&rule), "{rule} in\n{tables}");
    }
    assert_eq!(
        reach(&lab.outside, &at_a, FIP, 7004).as_deref(),
        Some(OUTSIDE),
        "the outside reaches the instance on the floating address"
    );
    let outside = listen(&lab.outside, 7005);
    assert_eq!(
        reach(&lab.a, &outside, OUTSIDE, 7005).as_deref(),
        Some(FIP),
        "the instance is seen from its floating address"
    );
    assert_eq!(
        reach(&lab.b, &outside, OUTSIDE, 7005).as_deref(),
        Some(ROUTER_GW),
        "another instance still through the gateway address"
    );
    // Hairpin: b reaches a on its floating address through the router.
    assert_eq!(reach(&lab.b, &at_a, FIP, 7004).as_deref(), Some(ROUTER_GW));
    // Reported as ACTIVE now: nothing to report.
    lab.fip("ACTIVE");
    assert_eq!(lab.apply_ok(), vec![]);
    let (_, tracked) = netns_exec(&lab.ns.name, &["conntrack", "-L"]);
    assert!(
        tracked.contains(FIP),
        "connections of the floating IP:\n{tracked}"
    );

    // Moved to b: its old connections are forgotten, the outside now reaches b.
    lab.router.floating_ips[0].fixed_ip_address = B.into();
    assert_eq!(lab.apply_ok(), vec![]);
    let (_, tracked) = netns_exec(&lab.ns.name, &["conntrack", "-L"]);
    assert!(
        !tracked.contains(FIP),
        "connections of the move forgotten:\n{tracked}"
    );
    let at_b = listen(&lab.b, 7004);
    assert_eq!(
        reach(&lab.outside, &at_b, FIP, 7004).as_deref(),
        Some(OUTSIDE)
    );
    assert_eq!(
        reach(&lab.b, &outside, OUTSIDE, 7005).as_deref(),
        Some(FIP),
        "b is seen from the floating address now"
    );

    lab.router.floating_ips.clear();
    assert_eq!(lab.apply_ok(), vec![]);
    let addresses = ip(&["-n", &lab.ns.name, "addr", "show", QG]);
    assert!(!addresses.contains(FIP), "{addresses}");
    let tables = lab
        .runtime
        .block_on(tools::iptables_save(&lab.ns.name))
        .unwrap();
    assert!(!tables.contains(FIP) && !tables.contains(B), "{tables}");
    let (_, tracked) = netns_exec(&lab.ns.name, &["conntrack", "-L"]);
    assert!(!tracked.contains(FIP), "connections forgotten:\n{tracked}");
    assert_eq!(
        reach(&lab.outside, &at_a, FIP, 7004),
        None,
        "the floating address is gone"
    );
    assert_eq!(
        reach(&lab.a, &outside, OUTSIDE, 7005).as_deref(),
        Some(ROUTER_GW),
        "back to the gateway address"
    );

    // A floating IP that cannot be placed (the gateway device is not there) is ERROR.
    lab.fip("ACTIVE");
    lab.router.gateway.as_mut().unwrap().device.interface_name = "qg-dddddddd-d1".into();
    let applied = lab.apply();
    assert!(!applied.errors.is_empty());
    assert_eq!(
        applied.statuses,
        vec![FloatingIpStatus {
            id: "fip-1".into(),
            status: "ERROR".into()
        }]
    );
}

#[test]
fn extra_routes_admin_state_and_removal() {
    let test = "extra_routes_admin_state_and_removal";
    if !require_root(test) {
        return;
    }
    let mut lab = Lab::new();
    lab.router.routes = vec![
        ("10.99.0.0/16".into(), "10.61.0.20".into()),
        ("10.98.0.0/16".into(), "10.61.0.20".into()),
        ("10.98.0.0/16".into(), "10.62.0.20".into()),
    ];
    lab.apply_ok();
    let routes = lab.routes();
    assert!(
        routes.contains(&format!("10.99.0.0/16 via 10.61.0.20 dev {QR_A}")),
        "{routes}"
    );
    let ecmp = ip(&["-n", &lab.ns.name, "route", "show", "10.98.0.0/16"]);
    assert!(
        ecmp.contains("nexthop via 10.61.0.20") && ecmp.contains("nexthop via 10.62.0.20"),
        "one ECMP route:\n{ecmp}"
    );
    let before = lab.state();
    lab.apply_ok();
    assert_eq!(lab.state(), before, "ECMP and extra routes are stable");

    lab.router.routes = vec![("10.99.0.0/16".into(), "10.62.0.20".into())];
    lab.apply_ok();
    let routes = lab.routes();
    assert!(
        routes.contains(&format!("10.99.0.0/16 via 10.62.0.20 dev {QR_B}")),
        "{routes}"
    );
    assert!(!routes.contains("10.98.0.0"), "{routes}");
    lab.router.routes.clear();
    lab.apply_ok();
    assert!(!lab.routes().contains("10.99.0.0"), "{}", lab.routes());

    // A gateway outside the gateway's subnet: an on-link route to it first.
    ip(&[
        "-n",
        &lab.outside.name,
        "addr",
        "add",
        "192.0.2.1/32",
        "dev",
        "eth0",
    ]);
    lab.router.gateway.as_mut().unwrap().gateway_ips = vec!["192.0.2.1".into()];
    lab.apply_ok();
    let routes = lab.routes();
    assert!(
        routes.contains(&format!("192.0.2.1 dev {QG} proto static scope link")),
        "{routes}"
    );
    assert!(
        routes.contains(&format!("default via 192.0.2.1 dev {QG}")),
        "{routes}"
    );
    assert!(!routes.contains(&format!("via {OUTSIDE}")), "{routes}");
    // An address beyond the external subnet goes by that default route.
    ip(&[
        "-n",
        &lab.outside.name,
        "addr",
        "add",
        "198.51.100.1/32",
        "dev",
        "eth0",
    ]);
    let outside = listen(&lab.outside, 7006);
    assert_eq!(
        reach(&lab.a, &outside, "198.51.100.1", 7006).as_deref(),
        Some(ROUTER_GW)
    );

    // Set down: the router's addresses, routes and NAT go; set up: all back.
    lab.router.admin_state_up = false;
    lab.apply_ok();
    assert!(!ping(&lab.a, B), "a router set down forwards nothing");
    let addresses = ip(&["-n", &lab.ns.name, "-br", "addr"]);
    assert!(!addresses.contains("10.61.0.1"), "{addresses}");
    lab.router.admin_state_up = true;
    lab.apply_ok();
    assert!(ping(&lab.a, B), "up again");

    // Removed: the namespace goes (with the devices the drivers would have unplugged).
    let name = lab.ns.name.clone();
    lab.runtime
        .block_on(lab.routers.remove(&lab.router.id))
        .unwrap();
    assert!(!std::path::Path::new(&format!("/run/netns/{name}")).exists());
    let left: BTreeSet<&str> = lab.routers.served().collect();
    assert!(left.is_empty(), "{left:?}");
    // Removing again is fine.
    lab.runtime
        .block_on(lab.routers.remove(&lab.router.id))
        .unwrap();
}
