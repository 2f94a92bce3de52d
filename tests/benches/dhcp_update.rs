//! `cargo bench -p neutrino-tests --bench dhcp_update` (root only)
//!
//! One DHCP change on a network of 10,000 ports under real dnsmasq (issue target: ≤ 50 ms,
//! without rewriting the other 9,999 entries). For each kind of change (add, change of
//! address, remove), over REPEATS repetitions: the manager's own call, the files it wrote or
//! removed, and the time from the call until dnsmasq's answers show the change: a DHCP
//! DISCOVER for the port's MAC, from another namespace, resent every 2 ms until the offer is
//! the port's new address (for a removal: until a port of the same dnsmasq is answered again,
//! or the removed port's last offer, once none has come for 300 ms, whichever is later). A
//! probe exchange with nothing changed is measured too. Also: `configure` of the
//! whole network once, and until a real client (udhcpc) holds a lease.
//!
//! NEUTRINO_BENCH_DHCP_PORTS, NEUTRINO_BENCH_DHCP_REPEATS and NEUTRINO_BENCH_DHCP_PER_DNSMASQ
//! change the size, the number of repetitions and the ports one dnsmasq serves before the
//! network is split (a large value shows one dnsmasq for the whole network).
//! `--profile dev` skips the release build of the whole workspace; the manager's calls are
//! then a debug build's.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use neutrino::agent::protocol::{
    DhcpNetwork, DhcpSubnet, HostPort, dhcp_interface, dhcp_namespace,
};
use neutrino::dhcp::client::DhcpClient;
use neutrino::dhcp::{DhcpManager, DhcpOptions, DhcpOutcome};
use neutrino_model::{FixedIp, Network, NetworkType, Segment};
use neutrino_tests::dhcp_probe::Probe;
use neutrino_tests::kernel::{self, Netns};

const PORTS: u32 = 10_000;
const REPEATS: usize = 20;
/// A setting from the environment, or its default.
fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
fn repeats() -> usize {
    setting("NEUTRINO_BENCH_DHCP_REPEATS", REPEATS)
}
/// Ports of the network (NEUTRINO_BENCH_DHCP_PORTS overrides, to see how costs grow).
fn ports_count() -> u32 {
    setting("NEUTRINO_BENCH_DHCP_PORTS", PORTS)
}
/// How often the probe resends, and how long a removed port must stay unanswered.
const EVERY: Duration = Duration::from_millis(2);
const QUIET: Duration = Duration::from_millis(300);
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
        revision_number: 1,
        filter: None,
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
    let defaults = DhcpOptions::default();
    let options = DhcpOptions {
        ports_per_dnsmasq: setting(
            "NEUTRINO_BENCH_DHCP_PER_DNSMASQ",
            defaults.ports_per_dnsmasq,
        ),
        ..defaults
    };
    let mut manager = DhcpManager::new(state.path().to_path_buf(), options).unwrap();
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
    let probe_port = 10 + n_ports / 2;
    set_mac(probe_port);
    let t = Instant::now();
    let outcome = manager.configure(&net, &interface).unwrap();
    let call = t.elapsed();
    let ip = lease(probe_port).unwrap();
    assert_eq!(ip.to_string(), address(probe_port));
    println!(
        "configure (whole)  {:?}: call {call:.2?}, until udhcpc holds a lease {:.2?}, files written {}, dnsmasq processes {} ({} DHCP shards)",
        outcome.action,
        t.elapsed(),
        outcome.files_written,
        manager.pids(&network_id).len(),
        manager.shards(&network_id),
    );

    let probe = Probe::new(&client_ns.name, CLIENT_IF, Ipv4Addr::UNSPECIFIED);
    let offer = |n_mac: u32, want: &str| -> Duration {
        let t = Instant::now();
        let want: Ipv4Addr = want.parse().unwrap();
        probe
            .discover(&mac(n_mac), EVERY, WAIT, |ip| ip == want)
            .unwrap_or_else(|| panic!("no offer of {want} for {}", mac(n_mac)));
        t.elapsed()
    };
    // Until dnsmasq has forgotten a MAC: the time of its last offer after `t`.
    let forgotten = |n_mac: u32, t: Instant| -> Duration {
        let mut last = Duration::ZERO;
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < QUIET {
            if probe
                .discover(&mac(n_mac), EVERY, EVERY, |_| true)
                .is_some()
            {
                last = t.elapsed();
                quiet_since = Instant::now();
            }
            assert!(t.elapsed() < WAIT, "{} still offered", mac(n_mac));
        }
        last
    };

    // A probe exchange with nothing changed: part of every "until dnsmasq answers" figure.
    let exchange: Vec<Duration> = (0..repeats())
        .map(|_| offer(probe_port, &address(probe_port)))
        .collect();
    println!(
        "exchange alone               probe DISCOVER/OFFER p50 {:>9.2?} p99 {:>9.2?}",
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
        let t = Instant::now();
        let outcome = manager.upsert_port(&network_id, &new).unwrap();
        let call = t.elapsed();
        offer(n, &address(n));
        added.record(call, t.elapsed(), outcome);
        actions[0] = format!("{:?}", outcome.action);

        // Change of address: the same port moves to the next address.
        new.fixed_ips[0].ip_address = address(n + 1);
        let t = Instant::now();
        let outcome = manager.upsert_port(&network_id, &new).unwrap();
        let call = t.elapsed();
        offer(n, &address(n + 1));
        readdressed.record(call, t.elapsed(), outcome);
        actions[1] = format!("{:?}", outcome.action);

        // Remove: done when its dnsmasq, reloaded, answers another of its ports and no longer
        // offers this one anything.
        let shard = manager.shard_of(&network_id, &new.id);
        let neighbour = (0..n_ports)
            .find(|i| manager.shard_of(&network_id, &net.ports[1 + *i as usize].id) == shard)
            .map(|i| 10 + i)
            .expect("another port in the same dnsmasq");
        let t = Instant::now();
        let outcome = manager.remove_port(&network_id, &new.id).unwrap();
        let call = t.elapsed();
        offer(neighbour, &address(neighbour));
        let answered = t.elapsed();
        let last_offer = forgotten(n, t);
        removed.record(call, answered.max(last_offer), outcome);
        actions[2] = format!("{:?}", outcome.action);
    }
    added.print("add port", &actions[0]);
    readdressed.print("change address", &actions[1]);
    removed.print("remove port", &actions[2]);

    // A real client still gets its lease, and a removed port none.
    set_mac(probe_port);
    assert_eq!(lease(probe_port).unwrap().to_string(), address(probe_port));
    let gone = 10 + n_ports;
    set_mac(gone);
    let refused = client.lease(&client_ns.name, CLIENT_IF, Duration::from_secs(1));
    assert!(refused.is_err(), "removed port still got {refused:?}");
    println!("udhcpc: lease of a kept port, none for a removed port (checked once)");
    drop(manager);
}
