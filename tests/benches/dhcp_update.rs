//! `cargo bench -p neutrino-tests --bench dhcp_update` (root only)
//!
//! One DHCP change on a network of 10,000 ports under a real dnsmasq (issue target: ≤ 50 ms,
//! without rewriting the other 9,999 entries). For each kind of change (add, change of
//! address, remove), over REPEATS repetitions: the manager's own call, the files it wrote or
//! removed, and the time from the call until dnsmasq answers for it, i.e. a real DHCP exchange
//! by udhcpc from another namespace (for a removal: until dnsmasq, reloaded, answers another
//! port). A plain exchange with nothing changed is measured too, since it is part of every
//! figure. Also: `configure` of the whole network once, and until its first answer.
//!
//! NEUTRINO_BENCH_DHCP_PORTS and NEUTRINO_BENCH_DHCP_REPEATS change the size and the number of
//! repetitions (to see how dnsmasq's own costs grow with the network). `--profile dev` skips
//! the release build of the whole workspace; the manager's calls are then a debug build's.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use neutrino::agent::protocol::{
    DhcpNetwork, DhcpSubnet, HostPort, dhcp_interface, dhcp_namespace,
};
use neutrino::dhcp::client::DhcpClient;
use neutrino::dhcp::{DhcpManager, DhcpOptions, DhcpOutcome};
use neutrino::plugins::bindings::{FixedIp, Network, NetworkType, Segment};
use neutrino_tests::kernel::{self, Netns};

const PORTS: u32 = 10_000;
const REPEATS: usize = 20;
fn repeats() -> usize {
    std::env::var("NEUTRINO_BENCH_DHCP_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(REPEATS)
}
/// Ports of the network (NEUTRINO_BENCH_DHCP_PORTS overrides, to see how costs grow).
fn ports_count() -> u32 {
    std::env::var("NEUTRINO_BENCH_DHCP_PORTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PORTS)
}
const CLIENT_IF: &str = "eth0";
/// dnsmasq's own costs grow with the network (see the report): waits are generous.
const WAIT: Duration = Duration::from_secs(120);

fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The n-th address of 10.0.0.0/18 (16,384 addresses): .1 is the gateway, .2 the DHCP port.
fn address(n: u32) -> String {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + n).to_string()
}

fn mac(n: u32) -> String {
    let b = n.to_be_bytes();
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[1], b[2], b[3])
}

fn port(network_id: &str, subnet_id: &str, n: u32, owner: &str) -> HostPort {
    HostPort {
        id: id(),
        network_id: network_id.into(),
        mac_address: mac(n),
        fixed_ips: vec![FixedIp {
            subnet_id: subnet_id.into(),
            ip_address: address(n),
        }],
        device_owner: owner.into(),
        device_id: String::new(),
        admin_state_up: true,
        status: "ACTIVE".into(),
        hostname: String::new(),
        extra_dhcp_opts: vec![],
        binding: None,
    }
}

struct Samples {
    call: Vec<Duration>,
    answered: Vec<Duration>,
    files: Vec<usize>,
}

impl Samples {
    fn new() -> Samples {
        Samples {
            call: vec![],
            answered: vec![],
            files: vec![],
        }
    }

    fn record(&mut self, call: Duration, answered: Duration, outcome: DhcpOutcome) {
        self.call.push(call);
        self.answered.push(answered);
        self.files
            .push(outcome.files_written + outcome.files_removed);
    }

    fn print(&self, what: &str, action: &str) {
        let (files_min, files_max) = (
            self.files.iter().min().unwrap(),
            self.files.iter().max().unwrap(),
        );
        println!(
            "{what:<18} {action:<9} call p50 {:>9.2?} p99 {:>9.2?} | until dnsmasq answers p50 {:>9.2?} p99 {:>9.2?} | files touched {files_min}..{files_max}",
            pct(&self.call, 50),
            pct(&self.call, 99),
            pct(&self.answered, 50),
            pct(&self.answered, 99),
        );
    }
}

fn pct(samples: &[Duration], p: usize) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    s[((s.len() - 1) * p).div_ceil(100)]
}

fn main() {
    if !kernel::is_root() {
        println!("dhcp_update: skipped, needs root (network namespaces, dnsmasq)");
        return;
    }
    let n_ports = ports_count();
    let network_id = id();
    let subnet = DhcpSubnet {
        id: id(),
        ip_version: 4,
        cidr: "10.0.0.0/18".into(),
        gateway_ip: Some("10.0.0.1".into()),
        enable_dhcp: true,
        dns_nameservers: vec![],
        host_routes: vec![],
        ipv6_address_mode: None,
    };
    let dhcp_port = port(&network_id, &subnet.id, 2, "network:dhcp");
    let interface = dhcp_interface(&dhcp_port.id);
    let server_ns = Netns::new(&dhcp_namespace(&network_id));
    let client_ns = Netns::new(&format!("dhcpb-{}", kernel::suffix()));
    kernel::veth(&server_ns, &interface, &client_ns, CLIENT_IF);
    kernel::ip(&[
        "-n",
        &server_ns.name,
        "addr",
        "add",
        "10.0.0.2/18",
        "dev",
        &interface,
    ]);
    let state = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut manager = DhcpManager::new(state.path().to_path_buf(), DhcpOptions::default()).unwrap();
    let client = DhcpClient::new(&state.path().join("client")).unwrap();
    let lease = |n_mac: u32| -> Result<Ipv4Addr, String> {
        client
            .lease(&client_ns.name, CLIENT_IF, WAIT)
            .map(|l| l.ip)
            .map_err(|e| format!("lease for {}: {e}", mac(n_mac)))
    };
    let set_mac = |n: u32| {
        kernel::ip(&[
            "-n",
            &client_ns.name,
            "link",
            "set",
            CLIENT_IF,
            "address",
            &mac(n),
        ])
    };

    let mut ports: Vec<HostPort> = vec![dhcp_port.clone()];
    ports.extend((0..n_ports).map(|i| port(&network_id, &subnet.id, 10 + i, "compute:nova")));
    let net = DhcpNetwork {
        network: Network {
            id: network_id.clone(),
            name: "bench".into(),
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
        subnets: vec![subnet.clone()],
        dhcp_port_id: dhcp_port.id.clone(),
        ports,
    };

    println!(
        "dhcp_update: {n_ports} ports on one network, real dnsmasq, {} repetitions each",
        repeats()
    );
    let probe = 10 + n_ports / 2;
    set_mac(probe);
    let t = Instant::now();
    let outcome = manager.configure(&net, &interface).unwrap();
    let call = t.elapsed();
    let ip = lease(probe).unwrap();
    assert_eq!(ip.to_string(), address(probe));
    println!(
        "configure (whole)  {:?}: call {call:.2?}, until dnsmasq answers {:.2?}, files written {}",
        outcome.action,
        t.elapsed(),
        outcome.files_written
    );

    // A DHCP exchange with nothing changed: part of every "until dnsmasq answers" figure.
    let mut exchange = Vec::new();
    for _ in 0..repeats() {
        let t = Instant::now();
        lease(probe).unwrap();
        exchange.push(t.elapsed());
    }
    println!(
        "exchange alone               udhcpc run p50 {:>9.2?} p99 {:>9.2?}",
        pct(&exchange, 50),
        pct(&exchange, 99)
    );

    let (mut added, mut readdressed, mut removed) =
        (Samples::new(), Samples::new(), Samples::new());
    let mut actions = [String::new(), String::new(), String::new()];
    for r in 0..repeats() as u32 {
        // Add: a port that was not there.
        let n = 10 + n_ports + 2 * r;
        let mut new = port(&network_id, &subnet.id, n, "compute:nova");
        set_mac(n);
        let t = Instant::now();
        let outcome = manager.upsert_port(&network_id, &new).unwrap();
        let call = t.elapsed();
        assert_eq!(lease(n).unwrap().to_string(), address(n));
        added.record(call, t.elapsed(), outcome);
        actions[0] = format!("{:?}", outcome.action);

        // Change of address: the same port moves to the next address.
        new.fixed_ips[0].ip_address = address(n + 1);
        let t = Instant::now();
        let outcome = manager.upsert_port(&network_id, &new).unwrap();
        let call = t.elapsed();
        assert_eq!(lease(n).unwrap().to_string(), address(n + 1));
        readdressed.record(call, t.elapsed(), outcome);
        actions[1] = format!("{:?}", outcome.action);

        // Remove: done when the reloaded dnsmasq answers another port.
        set_mac(probe);
        let t = Instant::now();
        let outcome = manager.remove_port(&network_id, &new.id).unwrap();
        let call = t.elapsed();
        assert_eq!(lease(probe).unwrap().to_string(), address(probe));
        removed.record(call, t.elapsed(), outcome);
        actions[2] = format!("{:?}", outcome.action);
    }
    added.print("add port", &actions[0]);
    readdressed.print("change address", &actions[1]);
    removed.print("remove port", &actions[2]);

    // A removed port really gets nothing any more.
    let gone = 10 + n_ports;
    set_mac(gone);
    let refused = client.lease(&client_ns.name, CLIENT_IF, Duration::from_secs(1));
    assert!(refused.is_err(), "removed port still got {refused:?}");
    println!("removed port: no lease (checked once)");
    drop(manager);
}
