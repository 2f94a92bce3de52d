//! DHCP with real dnsmasq and a real udhcpc (root only): dnsmasq in a `qdhcp-` namespace, the
//! client in another, joined by a veth pair; the DHCP port's address is added with `ip`, as the
//! executor does in production.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, OptionCode};

use neutrino::agent::protocol::{
    DhcpNetwork, DhcpSubnet, ExtraDhcpOpt, HostPort, dhcp_interface, dhcp_namespace,
};
use neutrino::dhcp::client::{DhcpClient, Lease};
use neutrino::dhcp::{DhcpAction, DhcpManager, DhcpOptions};
use neutrino_model::{FixedIp, Network, NetworkType, Segment};
use neutrino_tests::dhcp_probe::Probe;
use neutrino_tests::kernel::{self, Netns};

const CLIENT_IF: &str = "eth0";
const WAIT: Duration = Duration::from_secs(5);

/// dnsmasq's and the client's namespaces, the manager, and the network it serves. Fields drop
/// in order: dnsmasq stops before its namespace goes.
struct Lab {
    manager: DhcpManager,
    client: DhcpClient,
    net: DhcpNetwork,
    interface: String,
    client_ns: Netns,
    _server_ns: Netns,
    _state: tempfile::TempDir,
}

fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn subnet(cidr: &str, gateway: &str) -> DhcpSubnet {
    DhcpSubnet {
        id: id(),
        ip_version: 4,
        cidr: cidr.into(),
        gateway_ip: Some(gateway.into()),
        enable_dhcp: true,
        dns_nameservers: vec![],
        host_routes: vec![],
        ipv6_address_mode: None,
    }
}

fn port(network_id: &str, subnet_id: &str, mac: &str, ip: &str, owner: &str) -> HostPort {
    HostPort {
        id: id(),
        network_id: network_id.into(),
        mac_address: mac.into(),
        fixed_ips: vec![FixedIp {
            subnet_id: subnet_id.into(),
            ip_address: ip.into(),
        }],
        device_owner: owner.into(),
        device_id: String::new(),
        admin_state_up: true,
        status: "ACTIVE".into(),
        hostname: String::new(),
        extra_dhcp_opts: vec![],
        binding: None,
        revision_number: 1,
        filter: None,
    }
}

impl Lab {
    /// None (after the SKIP line) when not root.
    fn new(test: &str) -> Option<Lab> {
        Lab::with_options(test, DhcpOptions::default())
    }

    fn with_options(test: &str, options: DhcpOptions) -> Option<Lab> {
        if !kernel::is_root() {
            kernel::skip(
                &format!("dhcp::{test}"),
                "needs root (network namespaces, dnsmasq)",
            );
            return None;
        }
        let network_id = id();
        let subnet = subnet("10.0.0.0/24", "10.0.0.1");
        let dhcp_port = port(
            &network_id,
            &subnet.id,
            "fa:16:3e:00:00:02",
            "10.0.0.2",
            "network:dhcp",
        );
        let vm = port(
            &network_id,
            &subnet.id,
            "fa:16:3e:00:00:10",
            "10.0.0.10",
            "compute:nova",
        );
        let interface = dhcp_interface(&dhcp_port.id);
        let server_ns = Netns::new(&dhcp_namespace(&network_id));
        let client_ns = Netns::new(&format!("dhcpc-{}", kernel::suffix()));
        kernel::veth(&server_ns, &interface, &client_ns, CLIENT_IF);
        kernel::ip(&[
            "-n",
            &server_ns.name,
            "addr",
            "add",
            "10.0.0.2/24",
            "dev",
            &interface,
        ]);
        let state = tempfile::tempdir().unwrap();
        open_to_dnsmasq(state.path());
        let manager = DhcpManager::new(state.path().to_path_buf(), options).unwrap();
        let client = DhcpClient::new(&state.path().join("client")).unwrap();
        let net = DhcpNetwork {
            network: Network {
                id: network_id,
                name: "dhcp-test".into(),
                project_id: "p".into(),
                mtu: 1450,
                admin_state_up: true,
                shared: false,
                external: false,
                segments: vec![Segment {
                    id: id(),
                    network_type: NetworkType::Flat,
                    physical_network: Some("physnet1".into()),
                    segmentation_id: None,
                    mtu: 1450,
                }],
            },
            subnets: vec![subnet],
            dhcp_port_id: dhcp_port.id.clone(),
            ports: vec![dhcp_port, vm],
        };
        Some(Lab {
            manager,
            client,
            net,
            interface,
            client_ns,
            _server_ns: server_ns,
            _state: state,
        })
    }

    fn id(&self) -> &str {
        &self.net.network.id
    }

    fn configure(&mut self) -> DhcpAction {
        self.manager
            .configure(&self.net, &self.interface)
            .unwrap()
            .action
    }

    /// A DHCP exchange from the client namespace with this MAC.
    fn lease(&self, mac: &str, timeout: Duration) -> Result<Lease, String> {
        kernel::ip(&[
            "-n",
            &self.client_ns.name,
            "link",
            "set",
            CLIENT_IF,
            "address",
            mac,
        ]);
        self.client
            .lease(&self.client_ns.name, CLIENT_IF, timeout)
            .map_err(|e| e.to_string())
    }

    fn new_port(&self, mac: &str, ip: &str) -> HostPort {
        port(self.id(), &self.net.subnets[0].id, mac, ip, "compute:nova")
    }
}

/// tempfile makes 0700 directories; dnsmasq reads its files as `nobody`.
fn open_to_dnsmasq(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_known_mac_gets_its_address_gateway_and_mtu() {
    let Some(mut lab) = Lab::new("a_known_mac_gets_its_address_gateway_and_mtu") else {
        return;
    };
    assert_eq!(lab.configure(), DhcpAction::Started);
    let lease = lab.lease("fa:16:3e:00:00:10", WAIT).unwrap();
    assert_eq!(lease.ip.to_string(), "10.0.0.10");
    assert_eq!(lease.prefix_len, 24);
    assert_eq!(
        lease.router.map(|r| r.to_string()).as_deref(),
        Some("10.0.0.1")
    );
    assert_eq!(lease.mtu, Some(1450));
    assert_eq!(lease.hostname.as_deref(), Some("host-10-0-0-10"));
    // Our script configured the client's interface, and nothing else.
    let addrs = kernel::ip(&["-n", &lab.client_ns.name, "-4", "addr", "show", CLIENT_IF]);
    assert!(addrs.contains("10.0.0.10/24"), "{addrs}");
    let routes = kernel::ip(&["-n", &lab.client_ns.name, "route", "show", "default"]);
    assert!(routes.contains("via 10.0.0.1 dev eth0"), "{routes}");
    // The ranges are static: a MAC without a host entry gets nothing.
    let stranger = lab.lease("fa:16:3e:00:00:99", Duration::from_secs(2));
    assert!(stranger.is_err(), "{stranger:?}");
    // The same network again is nothing to do.
    assert_eq!(lab.configure(), DhcpAction::Unchanged);
}

/// Issue 12, finding 5: a port whose DHCP option dnsmasq would misread (as a server of an
/// older version could have stored) gets no entries; the network and its other ports keep DHCP.
#[test]
fn a_bad_port_is_left_out_and_the_network_keeps_dhcp() {
    let Some(mut lab) = Lab::new("a_bad_port_is_left_out_and_the_network_keeps_dhcp") else {
        return;
    };
    let mut bad = lab.new_port("fa:16:3e:00:00:66", "10.0.0.66");
    bad.extra_dhcp_opts = vec![ExtraDhcpOpt {
        opt_name: "bootfile-name".into(),
        opt_value: "x\ndhcp-range=10.9.0.0,static".into(),
        ip_version: 4,
    }];
    lab.net.ports.push(bad);
    assert_eq!(lab.configure(), DhcpAction::Started);
    let lease = lab.lease("fa:16:3e:00:00:10", WAIT).unwrap();
    assert_eq!(lease.ip.to_string(), "10.0.0.10");
    let refused = lab.lease("fa:16:3e:00:00:66", Duration::from_secs(2));
    assert!(refused.is_err(), "{refused:?}");
}

#[test]
fn port_changes_reach_dnsmasq_without_a_restart() {
    let Some(mut lab) = Lab::new("port_changes_reach_dnsmasq_without_a_restart") else {
        return;
    };
    lab.configure();
    let pid = lab.manager.pid(lab.id()).unwrap();
    let id = lab.id().to_string();

    // Added: one file each for the host entry and the names, no signal.
    let mut added = lab.new_port("fa:16:3e:00:00:20", "10.0.0.20");
    let outcome = lab.manager.upsert_port(&id, &added).unwrap();
    assert_eq!(outcome.action, DhcpAction::Added);
    assert_eq!((outcome.files_written, outcome.files_removed), (2, 0));
    assert_eq!(
        lab.lease("fa:16:3e:00:00:20", WAIT).unwrap().ip.to_string(),
        "10.0.0.20"
    );

    // Readdressed: rewritten, SIGHUP, and the old lease released.
    added.fixed_ips[0].ip_address = "10.0.0.21".into();
    let outcome = lab.manager.upsert_port(&id, &added).unwrap();
    assert_eq!(outcome.action, DhcpAction::Reloaded);
    assert_eq!(
        lab.lease("fa:16:3e:00:00:20", WAIT).unwrap().ip.to_string(),
        "10.0.0.21"
    );

    // The address it left goes to another MAC at once.
    let reuse = lab.new_port("fa:16:3e:00:00:30", "10.0.0.20");
    assert_eq!(
        lab.manager.upsert_port(&id, &reuse).unwrap().action,
        DhcpAction::Added
    );
    assert_eq!(
        lab.lease("fa:16:3e:00:00:30", WAIT).unwrap().ip.to_string(),
        "10.0.0.20"
    );

    // Removed: no lease any more.
    let outcome = lab.manager.remove_port(&id, &added.id).unwrap();
    assert_eq!(outcome.action, DhcpAction::Reloaded);
    assert_eq!(outcome.files_removed, 2);
    let gone = lab.lease("fa:16:3e:00:00:20", Duration::from_secs(2));
    assert!(gone.is_err(), "{gone:?}");
    // Its lease was released: its address can go to a new port at once (IPAM hands out
    // the lowest free address), though dnsmasq had leased it to the removed MAC.
    let successor = lab.new_port("fa:16:3e:00:00:31", "10.0.0.21");
    assert_eq!(
        lab.manager.upsert_port(&id, &successor).unwrap().action,
        DhcpAction::Added
    );
    assert_eq!(
        lab.lease("fa:16:3e:00:00:31", WAIT).unwrap().ip.to_string(),
        "10.0.0.21"
    );
    // The others still get theirs, from the same dnsmasq.
    assert_eq!(
        lab.lease("fa:16:3e:00:00:10", WAIT).unwrap().ip.to_string(),
        "10.0.0.10"
    );
    assert_eq!(lab.manager.pid(&id), Some(pid));
    // Skipped owners get no entry, and removing an unknown port is nothing.
    let router_ha = port(
        &id,
        &lab.net.subnets[0].id,
        "fa:16:3e:00:00:40",
        "10.0.0.40",
        "network:router_ha_interface",
    );
    assert_eq!(
        lab.manager.upsert_port(&id, &router_ha).unwrap().action,
        DhcpAction::Unchanged
    );
    assert_eq!(
        lab.manager.remove_port(&id, "no-such-port").unwrap().action,
        DhcpAction::Unchanged
    );
}

#[test]
fn a_changed_subnet_set_restarts_dnsmasq() {
    let Some(mut lab) = Lab::new("a_changed_subnet_set_restarts_dnsmasq") else {
        return;
    };
    lab.configure();
    let pid = lab.manager.pid(lab.id()).unwrap();
    let second = subnet("10.0.1.0/24", "10.0.1.1");
    kernel::ip(&[
        "-n",
        &dhcp_namespace(lab.id()),
        "addr",
        "add",
        "10.0.1.2/24",
        "dev",
        &lab.interface,
    ]);
    let mut on_second = port(lab.id(), &second.id, "fa:16:3e:00:01:10", "10.0.1.10", "");
    on_second.hostname = "web-1".into();
    lab.net.ports.push(on_second);
    lab.net.subnets.push(second);
    assert_eq!(lab.configure(), DhcpAction::Restarted);
    let new_pid = lab.manager.pid(lab.id()).unwrap();
    assert_ne!(new_pid, pid);
    assert!(!process_exists(pid), "the old dnsmasq was reaped");
    let lease = lab.lease("fa:16:3e:00:01:10", WAIT).unwrap();
    assert_eq!(lease.ip.to_string(), "10.0.1.10");
    assert_eq!(
        lease.router.map(|r| r.to_string()).as_deref(),
        Some("10.0.1.1")
    );
    assert_eq!(lease.hostname.as_deref(), Some("web-1"));
    // The first subnet's port is still served by the new dnsmasq.
    assert_eq!(
        lab.lease("fa:16:3e:00:00:10", WAIT).unwrap().ip.to_string(),
        "10.0.0.10"
    );
}

#[test]
fn supervise_restarts_a_dead_dnsmasq() {
    let Some(mut lab) = Lab::new("supervise_restarts_a_dead_dnsmasq") else {
        return;
    };
    lab.configure();
    assert!(lab.manager.supervise().is_empty(), "nothing died yet");
    let pid = lab.manager.pid(lab.id()).unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    // Give the kernel a moment to deliver the signal.
    let deadline = std::time::Instant::now() + WAIT;
    let mut restarted = lab.manager.supervise();
    while restarted.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        restarted = lab.manager.supervise();
    }
    assert_eq!(restarted, vec![lab.id().to_string()]);
    assert_ne!(lab.manager.pid(lab.id()), Some(pid));
    assert_eq!(
        lab.lease("fa:16:3e:00:00:10", WAIT).unwrap().ip.to_string(),
        "10.0.0.10"
    );
}

#[test]
fn disable_leaves_no_process_and_no_files() {
    let Some(mut lab) = Lab::new("disable_leaves_no_process_and_no_files") else {
        return;
    };
    lab.configure();
    let pid = lab.manager.pid(lab.id()).unwrap();
    let dir = lab.manager.network_dir(lab.id());
    assert!(dir.join("shard-0/host").read_dir().unwrap().count() == 1);
    let id = lab.id().to_string();
    assert!(lab.manager.disable(&id).unwrap());
    assert!(!process_exists(pid), "dnsmasq {pid} is gone");
    assert!(!dir.exists(), "{} is removed", dir.display());
    assert!(lab.manager.networks().is_empty());
    assert!(
        !lab.manager.disable(&id).unwrap(),
        "a second disable has nothing to do"
    );
    assert!(
        lab.manager
            .upsert_port(&id, &lab.new_port("fa:16:3e:00:00:50", "10.0.0.50"))
            .is_err()
    );
}

#[test]
fn dropping_the_manager_stops_its_dnsmasqs() {
    let Some(mut lab) = Lab::new("dropping_the_manager_stops_its_dnsmasqs") else {
        return;
    };
    lab.configure();
    let pid = lab.manager.pid(lab.id()).unwrap();
    let Lab { manager, .. } = lab;
    drop(manager);
    assert!(!process_exists(pid));
}

#[test]
fn a_large_network_is_split_among_dnsmasq_shards() {
    let options = DhcpOptions {
        ports_per_dnsmasq: 2,
        ..DhcpOptions::default()
    };
    let test = "a_large_network_is_split_among_dnsmasq_shards";
    let Some(mut lab) = Lab::with_options(test, options.clone()) else {
        return;
    };
    let id = lab.id().to_string();
    let mac = |n: u8| format!("fa:16:3e:00:00:{:02x}", 0x20 + n);
    let ip = |n: u8| format!("10.0.0.{}", 20 + n);
    for n in 0..4 {
        let p = lab.new_port(&mac(n), &ip(n));
        lab.net.ports.push(p);
    }
    // Five ports at two a process: four shards, and one process for DNS.
    assert_eq!(lab.configure(), DhcpAction::Started);
    assert_eq!(lab.manager.shards(&id), 4);
    assert_eq!(lab.manager.pids(&id).len(), 5);
    let server: Ipv4Addr = "10.0.0.2".parse().unwrap();
    let mut macs: Vec<(String, String)> = (0..4).map(|n| (mac(n), ip(n))).collect();
    macs.push(("fa:16:3e:00:00:10".into(), "10.0.0.10".into()));
    for (mac, ip) in &macs {
        // Each port gets its address (a real client, a broadcast every shard sees)...
        let lease = lab.lease(mac, WAIT).unwrap();
        assert_eq!(lease.ip.to_string(), *ip);
        assert_eq!(lease.hostname.as_deref(), Some(generated(ip).as_str()));
        // ...and its renewal, unicast to the server, is answered by its own shard, whichever
        // socket of the shards' the kernel would have picked.
        let probe = Probe::new(&lab.client_ns.name, CLIENT_IF, lease.ip);
        let ack = probe
            .renew(mac, lease.ip, server, WAIT)
            .expect("renewal answered");
        assert_eq!(ack.yiaddr(), lease.ip);
        // The DNS server announced is the namespace's, where the DNS process listens.
        assert_eq!(
            ack.opts().get(OptionCode::DomainNameServer),
            Some(&DhcpOption::DomainNameServer(vec![server]))
        );
    }

    // An agent restarted on the same state: the same split, the leases dnsmasq wrote kept
    // (a granted lease has its expiry time, a seeded one 0), every port still served.
    let state_dir = lab._state.path().to_path_buf();
    lab.manager = DhcpManager::new(state_dir, options).unwrap();
    let granted = |lab: &Lab| -> usize {
        let dir = lab.manager.network_dir(&id);
        (0..4)
            .map(|k| std::fs::read_to_string(dir.join(format!("shard-{k}/leases"))).unwrap())
            .flat_map(|text| text.lines().map(str::to_string).collect::<Vec<_>>())
            .filter(|line| !line.starts_with("0 "))
            .count()
    };
    assert_eq!(granted(&lab), macs.len());
    assert_eq!(lab.configure(), DhcpAction::Started);
    assert_eq!(lab.manager.shards(&id), 4);
    assert_eq!(granted(&lab), macs.len());
    for (mac, ip) in &macs {
        assert_eq!(lab.lease(mac, WAIT).unwrap().ip.to_string(), *ip);
    }

    // Growing past what the split holds: split anew, every port still served.
    for n in 4..8 {
        let p = lab.new_port(&mac(n), &ip(n));
        let outcome = lab.manager.upsert_port(&id, &p).unwrap();
        lab.net.ports.push(p);
        let expected = if n == 7 {
            DhcpAction::Restarted
        } else {
            DhcpAction::Added
        };
        assert_eq!(outcome.action, expected, "port {n}");
    }
    assert_eq!(lab.manager.shards(&id), 8);
    for n in [0, 7] {
        assert_eq!(lab.lease(&mac(n), WAIT).unwrap().ip.to_string(), ip(n));
    }

    // A removal reaches the port's shard: it gets nothing any more; the others still do.
    let removed = lab
        .net
        .ports
        .iter()
        .position(|p| p.mac_address == mac(3))
        .unwrap();
    let removed = lab.net.ports.remove(removed);
    let outcome = lab.manager.remove_port(&id, &removed.id).unwrap();
    assert_eq!(outcome.action, DhcpAction::Reloaded);
    assert!(lab.lease(&mac(3), Duration::from_secs(2)).is_err());
    assert_eq!(lab.lease(&mac(4), WAIT).unwrap().ip.to_string(), ip(4));

    // Shrunk to one port: one process again, the shards' files and rules gone.
    lab.net
        .ports
        .retain(|p| p.mac_address == "fa:16:3e:00:00:10" || p.id == lab.net.dhcp_port_id);
    assert_eq!(lab.configure(), DhcpAction::Restarted);
    assert_eq!(lab.manager.shards(&id), 1);
    assert_eq!(lab.manager.pids(&id).len(), 1);
    let dir = lab.manager.network_dir(&id);
    assert!(dir.join("shard-0").exists());
    assert!(!dir.join("shard-1").exists() && !dir.join("dns").exists());
    let (_, nat) = kernel::netns_exec(&dhcp_namespace(&id), &["iptables-save", "-t", "nat"]);
    assert!(!nat.contains("DNAT"), "{nat}");
    assert_eq!(
        lab.lease("fa:16:3e:00:00:10", WAIT).unwrap().ip.to_string(),
        "10.0.0.10"
    );
    assert!(lab.lease(&mac(0), Duration::from_secs(2)).is_err());
}

/// The host name made from an address, as the server makes it.
fn generated(ip: &str) -> String {
    format!("host-{}", ip.replace('.', "-"))
}

/// Issue 10, finding 1: a port deleted while no agent ran left its lease in dnsmasq's lease
/// file; its address, which IPAM gives to the next port, must reach that port at once.
#[test]
fn a_lease_of_a_port_gone_while_no_agent_ran_is_dropped_at_start() {
    let test = "a_lease_of_a_port_gone_while_no_agent_ran_is_dropped_at_start";
    let Some(mut lab) = Lab::new(test) else {
        return;
    };
    let (old_mac, new_mac) = ("fa:16:3e:00:00:10", "fa:16:3e:00:00:11");
    assert_eq!(lab.configure(), DhcpAction::Started);
    assert_eq!(
        lab.lease(old_mac, WAIT).unwrap().ip.to_string(),
        "10.0.0.10"
    );
    let id = lab.id().to_string();
    let leases = lab.manager.network_dir(&id).join("shard-0/leases");
    // dnsmasq wrote the lease it granted (an expiry time, not the 0 of a seeded one).
    let granted = |text: &str| {
        text.lines()
            .any(|l| l.contains(old_mac) && l.contains("10.0.0.10") && !l.starts_with("0 "))
    };
    assert!(wait_for(|| granted(
        &std::fs::read_to_string(&leases).unwrap()
    )));

    // The agent stops; meanwhile the port is deleted and its address goes to a new port.
    let state_dir = lab._state.path().to_path_buf();
    lab.manager = DhcpManager::new(state_dir, DhcpOptions::default()).unwrap();
    lab.net.ports.retain(|p| p.mac_address != old_mac);
    let successor = lab.new_port(new_mac, "10.0.0.10");
    lab.net.ports.push(successor);

    // A new agent: the stale lease is gone before dnsmasq starts, and the new port is served.
    assert_eq!(lab.configure(), DhcpAction::Started);
    let text = std::fs::read_to_string(&leases).unwrap();
    assert!(!text.contains(old_mac), "stale lease kept:\n{text}");
    assert_eq!(
        lab.lease(new_mac, WAIT).unwrap().ip.to_string(),
        "10.0.0.10"
    );
    assert!(lab.lease(old_mac, Duration::from_secs(2)).is_err());
}

/// Issue 10, finding 5: the dnsmasq of an agent that was killed still runs on the network's
/// files and holds its sockets. The next agent stops it, waits until it has exited, and only
/// then starts its own, which must bind (no `Address already in use`) and answer at once.
#[test]
fn an_orphaned_dnsmasq_is_gone_before_the_new_one_binds() {
    let test = "an_orphaned_dnsmasq_is_gone_before_the_new_one_binds";
    let Some(mut lab) = Lab::new(test) else {
        return;
    };
    let mut orphans = Orphans(Vec::new());
    lab.configure();
    let id = lab.id().to_string();
    let state_dir = lab._state.path().to_path_buf();
    let mac = "fa:16:3e:00:00:10";
    let mut downtimes = Vec::new();
    for round in 0..8 {
        let orphan = lab.manager.pid(&id).unwrap();
        orphans.0.push(orphan);
        // The agent dies without stopping its dnsmasq: its manager is never dropped.
        let fresh = DhcpManager::new(state_dir.clone(), DhcpOptions::default()).unwrap();
        std::mem::forget(std::mem::replace(&mut lab.manager, fresh));
        assert!(running(orphan), "round {round}: the orphan runs");
        let started = std::time::Instant::now();
        let outcome = lab.manager.configure(&lab.net, &lab.interface);
        assert!(outcome.is_ok(), "round {round}: {outcome:?}");
        assert!(
            !running(orphan),
            "round {round}: orphan {orphan} still runs"
        );
        let lease = lab.lease(mac, WAIT);
        downtimes.push(started.elapsed());
        assert_eq!(lease.unwrap().ip.to_string(), "10.0.0.10", "round {round}");
        let log = lab.manager.network_dir(&id).join("shard-0/dnsmasq.log");
        let said = std::fs::read_to_string(log).unwrap_or_default();
        assert!(!said.contains("in use"), "round {round}: {said}");
    }
    let worst = downtimes.iter().max().unwrap();
    eprintln!("DHCP downtime across an unclean restart (stop, start, lease): {downtimes:?}");
    assert!(*worst < Duration::from_secs(3), "{downtimes:?}");
}

/// Processes the test left as orphans: killed if the test fails half-way (they are our
/// children, never reaped: a zombie does not count as running).
struct Orphans(Vec<u32>);

impl Drop for Orphans {
    fn drop(&mut self) {
        for pid in &self.0 {
            if running(*pid) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// Alive and not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

/// Polls `done` for up to `WAIT`.
fn wait_for(done: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}
