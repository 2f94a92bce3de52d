//! The agent's security-group firewall against the kernel (root): a "host" namespace with a
//! Linux bridge and two instance namespaces on it through veth taps, as every driver here wires
//! a port; the firewall runs inside the host namespace. Rules open and close traffic, an
//! established connection is cut when its rule goes, spoofed sources and MACs are dropped,
//! remote groups follow their members, port security off opens a port, and a restarted
//! firewall keeps every rule and sweeps the chains of ports that are gone.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use neutrino::agent::firewall::{Firewall, FirewallPort};
use neutrino::agent::protocol::{FilterRule, PortFilter, RemoteGroupChange};
use neutrino_tests::kernel::{Netns, in_namespace, ip, netns_exec, require_root, unique, veth};

const A: &str = "10.50.0.1";
const B: &str = "10.50.0.2";

struct Lab {
    host: Netns,
    a: Netns,
    b: Netns,
    firewall: Option<Firewall>,
}

impl Lab {
    fn new() -> Lab {
        let host = Netns::new(&unique("fwh"));
        let a = Netns::new(&unique("fwa"));
        let b = Netns::new(&unique("fwb"));
        ip(&["-n", &host.name, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &host.name, "link", "set", "br0", "up"]);
        for (ns, tap, address) in [(&a, "tapa", A), (&b, "tapb", B)] {
            veth(&host, tap, ns, "eth0");
            ip(&["-n", &host.name, "link", "set", tap, "master", "br0"]);
            ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "eth0",
            ]);
        }
        Lab {
            host,
            a,
            b,
            firewall: Some(Firewall::new()),
        }
    }

    fn mac(&self, ns: &Netns) -> String {
        let out = ip(&["-n", &ns.name, "-j", "link", "show", "eth0"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0]["address"].as_str().unwrap().to_string()
    }

    fn port(&self, which: char, filter: Option<PortFilter>) -> FirewallPort {
        let (ns, address) = if which == 'a' {
            (&self.a, A)
        } else {
            (&self.b, B)
        };
        FirewallPort {
            id: format!("{which}0000000-port-{which}"),
            device: format!("tap{which}"),
            bridge: "br0".into(),
            mac: self.mac(ns),
            addresses: vec![address.parse().unwrap()],
            filter,
        }
    }

    /// Runs the firewall in the host namespace.
    fn apply(&mut self, groups: Vec<RemoteGroupChange>, ports: Vec<FirewallPort>, full: bool) {
        let mut firewall = self.firewall.take().unwrap();
        let firewall = in_namespace(&self.host.name, move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            firewall.groups_changed(&groups, false);
            runtime
                .block_on(firewall.apply(ports, &[], full))
                .unwrap_or_else(|e| panic!("apply: {e:#}"));
            firewall
        })
        .join()
        .unwrap();
        self.firewall = Some(firewall);
    }

    fn ping(&self, from: &str) -> bool {
        netns_exec(&self.a.name, &["ping", "-c", "1", "-W", "1", "-I", from, B]).0
    }

    fn saved(&self) -> String {
        netns_exec(&self.host.name, &["iptables-save", "-t", "filter"]).1
    }
}

fn rule(protocol: Option<&str>, port: Option<u32>) -> FilterRule {
    FilterRule {
        direction: "ingress".into(),
        ethertype: "IPv4".into(),
        protocol: protocol.map(str::to_string),
        port_range_min: port,
        port_range_max: port,
        remote_ip_prefix: Some("0.0.0.0/0".into()),
        remote_group_id: None,
    }
}

fn egress_any() -> FilterRule {
    FilterRule {
        direction: "egress".into(),
        remote_ip_prefix: None,
        ..rule(None, None)
    }
}

fn filter(rules: Vec<FilterRule>) -> Option<PortFilter> {
    Some(PortFilter {
        stateful: true,
        rules,
        allowed_address_pairs: vec![],
    })
}

/// Accepts connections on `port` in `ns` and echoes what they send.
fn echo_server(ns: &Netns, port: u16) {
    let ready = std::sync::mpsc::channel();
    let tx = ready.0;
    in_namespace(&ns.name, move || {
        let listener = TcpListener::bind(("0.0.0.0", port)).unwrap();
        tx.send(()).unwrap();
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = stream;
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    ready.1.recv().unwrap();
}

/// A connection from namespace a to B:port, or None when it is not answered within a second.
fn connect(lab: &Lab, port: u16) -> Option<TcpStream> {
    let addr: SocketAddr = format!("{B}:{port}").parse().unwrap();
    in_namespace(&lab.a.name, move || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()
    })
    .join()
    .unwrap()
}

/// Whether a line sent on `stream` comes back within a second.
fn echoes(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    if stream.write_all(b"hello\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 6];
    stream.read_exact(&mut buf).is_ok()
}

#[test]
fn security_groups_filter_bridged_ports() {
    let test = "firewall::security_groups_filter_bridged_ports";
    if !require_root(test) {
        return;
    }
    let mut lab = Lab::new();
    echo_server(&lab.b, 80);
    echo_server(&lab.b, 22);
    assert!(lab.ping(A), "open before any filter");

    // b in "web": TCP 80 from anywhere; a may send anything.
    let a_port = lab.port('a', filter(vec![egress_any()]));
    let web = vec![egress_any(), rule(Some("tcp"), Some(80))];
    lab.apply(
        vec![],
        vec![a_port.clone(), lab.port('b', filter(web.clone()))],
        false,
    );
    assert!(connect(&lab, 80).is_some(), "TCP 80 allowed");
    assert!(connect(&lab, 22).is_none(), "TCP 22 not allowed");
    assert!(!lab.ping(A), "no ICMP rule");

    // A rule for ICMP opens ping (at once: the apply returned), removing it closes it.
    let mut with_icmp = web.clone();
    with_icmp.push(rule(Some("icmp"), None));
    let started = Instant::now();
    lab.apply(
        vec![],
        vec![lab.port('b', filter(with_icmp.clone()))],
        false,
    );
    let applied = started.elapsed();
    assert!(lab.ping(A), "ICMP rule added");
    eprintln!("{test}: a rule change applied in {applied:.1?}");
    lab.apply(vec![], vec![lab.port('b', filter(web.clone()))], false);
    assert!(!lab.ping(A), "ICMP rule removed");

    // An established connection on a rule that goes is cut.
    let mut ssh = web.clone();
    ssh.push(rule(Some("tcp"), Some(22)));
    lab.apply(vec![], vec![lab.port('b', filter(ssh))], false);
    let mut stream = connect(&lab, 22).expect("TCP 22 allowed");
    assert!(echoes(&mut stream), "the connection works");
    lab.apply(vec![], vec![lab.port('b', filter(web.clone()))], false);
    assert!(
        !echoes(&mut stream),
        "the established connection is cut with its rule"
    );

    // Spoofing: another source address, or another MAC, is dropped at a's port.
    lab.apply(
        vec![],
        vec![lab.port('b', filter(with_icmp.clone()))],
        false,
    );
    ip(&[
        "-n",
        &lab.a.name,
        "addr",
        "add",
        "10.50.0.99/24",
        "dev",
        "eth0",
    ]);
    assert!(!lab.ping("10.50.0.99"), "a spoofed source address");
    assert!(lab.ping(A), "its own address");
    // ARP: b asks who has the spoofed address; a's kernel answers for it, and the answer is
    // dropped at a's port (iptables never sees ARP): b learns no MAC for it.
    let _ = netns_exec(&lab.b.name, &["ping", "-c", "1", "-W", "1", "10.50.0.99"]);
    let neigh = netns_exec(&lab.b.name, &["ip", "neigh", "show", "10.50.0.99"]).1;
    assert!(
        !neigh.contains("lladdr"),
        "b learned a MAC for a spoofed address: {neigh}"
    );
    let neigh = netns_exec(&lab.b.name, &["ip", "neigh", "show", A]).1;
    assert!(neigh.contains("lladdr"), "b knows a's own address: {neigh}");
    let mac = a_port.mac.clone();
    ip(&[
        "-n",
        &lab.a.name,
        "link",
        "set",
        "eth0",
        "address",
        "fa:16:3e:99:99:99",
    ]);
    assert!(!lab.ping(A), "a spoofed MAC");
    ip(&["-n", &lab.a.name, "link", "set", "eth0", "address", &mac]);
    assert!(lab.ping(A), "its own MAC again");

    // A remote group: ICMP from the members of "g"; a's address joins, then leaves.
    let group = "6a1f0c62-0000-4000-8000-00000000000a".to_string();
    let from_group = FilterRule {
        remote_ip_prefix: None,
        remote_group_id: Some(group.clone()),
        ..rule(Some("icmp"), None)
    };
    let mut grouped = web.clone();
    grouped.push(from_group);
    let members = |m: &[&str]| RemoteGroupChange {
        id: group.clone(),
        members: Some(m.iter().map(|s| s.to_string()).collect()),
    };
    lab.apply(
        vec![members(&[A])],
        vec![lab.port('b', filter(grouped.clone()))],
        false,
    );
    assert!(lab.ping(A), "a is a member");
    lab.apply(vec![members(&["10.50.0.77"])], vec![], false);
    assert!(!lab.ping(A), "a left the group");
    lab.apply(vec![members(&[A, "10.50.0.77"])], vec![], false);
    assert!(lab.ping(A), "a joined again");
    // A connection a member opened on a rule from its group is cut when it leaves.
    let mut ssh_from_group = grouped.clone();
    ssh_from_group.push(FilterRule {
        remote_ip_prefix: None,
        remote_group_id: Some(group.clone()),
        ..rule(Some("tcp"), Some(22))
    });
    lab.apply(vec![], vec![lab.port('b', filter(ssh_from_group))], false);
    let mut stream = connect(&lab, 22).expect("TCP 22 from a member");
    assert!(echoes(&mut stream), "the member's connection works");
    lab.apply(vec![members(&["10.50.0.77"])], vec![], false);
    assert!(
        !echoes(&mut stream),
        "the connection is cut when its opener leaves the group"
    );
    lab.apply(vec![members(&[A, "10.50.0.77"])], vec![], false);

    // Port security off: b is open.
    lab.apply(vec![], vec![lab.port('b', None)], false);
    assert!(connect(&lab, 22).is_some() && lab.ping(A), "b unfiltered");

    // A restarted agent (a new firewall) applies everything in full: the rules hold, and the
    // chains of a port that went while it was down are swept.
    lab.apply(vec![], vec![lab.port('b', filter(web.clone()))], false);
    // Sets the run before left (killed mid-swap, or its groups no longer named): swept too.
    for set in ["nq-4deadbeef", "nq-4deadbeef-n"] {
        let (ok, out) = netns_exec(
            &lab.host.name,
            &["ipset", "create", set, "hash:net", "family", "inet"],
        );
        assert!(ok, "ipset create {set}: {out}");
    }
    lab.firewall = Some(Firewall::new());
    lab.apply(vec![], vec![lab.port('b', filter(web))], true);
    let (_, sets) = netns_exec(&lab.host.name, &["ipset", "list", "-n"]);
    assert!(
        !sets.lines().any(|s| s.starts_with("nq-")),
        "the earlier run's sets are gone:\n{sets}"
    );
    assert!(connect(&lab, 80).is_some(), "TCP 80 still allowed");
    assert!(connect(&lab, 22).is_none(), "TCP 22 still refused");
    let saved = lab.saved();
    assert!(
        !saved.contains(":nq-ia0000000"),
        "a's chains swept:\n{saved}"
    );
    assert!(saved.contains(":nq-ib0000000"), "b's chains:\n{saved}");
    assert_eq!(
        saved.matches("-A FORWARD -j nq-forward").count(),
        1,
        "{saved}"
    );
    let _ = &lab.host;
}
