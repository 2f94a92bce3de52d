//! `cargo bench -p neutrino-tests --bench firewall` (root only)
//!
//! The agent's security-group firewall on one host with 1,000 filtered ports in 10 groups (100
//! ports each; each group: egress anywhere, ingress from its own members, TCP 22 and 80, ICMP),
//! in a network namespace of its own (physdev rules name devices; they need not exist):
//! - a full apply, as after an agent restart or a resync (wall time and the CPU of the agent
//!   and of the tools it runs);
//! - a rule added to (or removed from) one group: 100 ports' chains rewritten, nothing else;
//! - a port joining a group: its chains, the dispatch chains, and the group's ipset;
//! - what a change costs when everything is rewritten per change, as Neutron's iptables manager
//!   does (save, diff, restore of the whole table): the same full apply, each time.
//!
//! The time is from the agent's call to `iptables-restore` having committed (the kernel then
//! enforces the rule); the server's part (commit to the agent's long poll) is measured by the
//! API tests' feed timings. NEUTRINO_BENCH_FW_PORTS and NEUTRINO_BENCH_FW_REPEATS change size.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use neutrino::agent::firewall::{Firewall, FirewallPort};
use neutrino::agent::protocol::{FilterRule, PortFilter, RemoteGroupChange};
use neutrino_tests::kernel::{self, Netns};

const GROUPS: usize = 10;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn group_id(g: usize) -> String {
    format!("{g:08x}-0000-4000-8000-000000000000")
}

fn rule(direction: &str, ethertype: &str, protocol: Option<&str>, port: Option<u32>) -> FilterRule {
    FilterRule {
        direction: direction.into(),
        ethertype: ethertype.into(),
        protocol: protocol.map(str::to_string),
        port_range_min: port,
        port_range_max: port,
        remote_ip_prefix: None,
        remote_group_id: None,
    }
}

fn group_rules(g: usize) -> Vec<FilterRule> {
    let mut rules = Vec::new();
    for ethertype in ["IPv4", "IPv6"] {
        rules.push(rule("egress", ethertype, None, None));
        rules.push(FilterRule {
            remote_group_id: Some(group_id(g)),
            ..rule("ingress", ethertype, None, None)
        });
    }
    rules.push(rule("ingress", "IPv4", Some("tcp"), Some(22)));
    rules.push(rule("ingress", "IPv4", Some("tcp"), Some(80)));
    rules.push(rule("ingress", "IPv4", Some("icmp"), None));
    rules
}

fn address(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 60, (i / 250) as u8, (i % 250 + 2) as u8))
}

fn port(i: usize, rules: Vec<FilterRule>) -> FirewallPort {
    FirewallPort {
        id: format!("{i:08x}-1111-4000-8000-000000000000"),
        device: format!("tap{i:08x}-11"),
        bridge: format!("brq{:08x}-0", i % GROUPS),
        mac: format!("fa:16:3e:00:{:02x}:{:02x}", i / 256, i % 256),
        addresses: vec![address(i)],
        filter: Some(PortFilter {
            stateful: true,
            rules,
            allowed_address_pairs: vec![],
        }),
    }
}

fn members(g: usize, ports: usize) -> RemoteGroupChange {
    RemoteGroupChange {
        id: group_id(g),
        members: Some(
            (0..ports)
                .filter(|i| i % GROUPS == g)
                .map(|i| address(i).to_string())
                .collect(),
        ),
    }
}

/// CPU seconds of this process and of its finished children.
fn cpu() -> (f64, f64) {
    let of = |who| {
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(u.ru_utime) + t(u.ru_stime)
    };
    (of(libc::RUSAGE_SELF), of(libc::RUSAGE_CHILDREN))
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn report(what: &str, samples: &mut [Duration]) {
    println!(
        "{what}: p50 {:.1?} / p99 {:.1?} / max {:.1?} ({} samples)",
        percentile(samples, 0.5),
        percentile(samples, 0.99),
        samples.iter().max().copied().unwrap_or_default(),
        samples.len()
    );
}

fn main() {
    if !kernel::is_root() {
        kernel::skip(
            "firewall bench",
            "needs root (iptables in a network namespace)",
        );
        return;
    }
    let ports = setting("NEUTRINO_BENCH_FW_PORTS", 1000);
    let repeats = setting("NEUTRINO_BENCH_FW_REPEATS", 20);
    let ns = Netns::new(&kernel::unique("fwbench"));
    kernel::in_namespace(&ns.name, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(ports, repeats));
    })
    .join()
    .expect("the bench thread");
}

async fn run(ports: usize, repeats: usize) {
    let all: Vec<FirewallPort> = (0..ports)
        .map(|i| port(i, group_rules(i % GROUPS)))
        .collect();
    let groups: Vec<RemoteGroupChange> = (0..GROUPS).map(|g| members(g, ports)).collect();
    println!("firewall bench: {ports} filtered ports in {GROUPS} groups");

    let mut firewall = Firewall::new();
    firewall.groups_changed(&groups, true);
    let (own, children) = cpu();
    let started = Instant::now();
    firewall
        .apply(all.clone(), &[], true)
        .await
        .expect("full apply");
    let full = started.elapsed();
    let (own2, children2) = cpu();
    println!(
        "full apply (agent start or resync): {full:.1?}; CPU {:.2} s (agent {:.2} s, iptables/ipset {:.2} s)",
        (own2 - own) + (children2 - children),
        own2 - own,
        children2 - children
    );

    // A rule added to group 0, then removed: its 100 ports' chains, nothing else.
    let mut rule_changes = Vec::new();
    for r in 0..repeats {
        let mut rules = group_rules(0);
        if r % 2 == 0 {
            rules.push(rule("ingress", "IPv4", Some("udp"), Some(53)));
        }
        let changed: Vec<FirewallPort> = (0..ports)
            .filter(|i| i % GROUPS == 0)
            .map(|i| port(i, rules.clone()))
            .collect();
        let started = Instant::now();
        firewall
            .apply(changed, &[], false)
            .await
            .expect("rule change");
        rule_changes.push(started.elapsed());
    }
    report(
        "a rule added to or removed from a group of 100 ports",
        &mut rule_changes,
    );

    // A new port joins group 3 (and leaves again): its chains, the dispatch, the group's set.
    let mut joins = Vec::new();
    for r in 0..repeats {
        let newcomer = port(ports + 3 + r * GROUPS, group_rules(3));
        let mut group = members(3, ports);
        let id = newcomer.id.clone();
        if let Some(m) = group.members.as_mut() {
            m.push(newcomer.addresses[0].to_string());
        }
        let started = Instant::now();
        firewall.groups_changed(&[group], false);
        firewall
            .apply(vec![newcomer], &[], false)
            .await
            .expect("join");
        joins.push(started.elapsed());
        firewall.groups_changed(&[members(3, ports)], false);
        firewall.apply(vec![], &[id], false).await.expect("leave");
    }
    report(
        "a port joining a remote group (its chains, the dispatch, the ipset)",
        &mut joins,
    );

    // Everything rewritten per change, as Neutron's iptables manager does.
    let mut rewrites = Vec::new();
    for _ in 0..repeats.min(5) {
        let started = Instant::now();
        firewall.apply(all.clone(), &[], true).await.expect("full");
        rewrites.push(started.elapsed());
    }
    report(
        "for comparison: every rule of the host rewritten per change",
        &mut rewrites,
    );
}
