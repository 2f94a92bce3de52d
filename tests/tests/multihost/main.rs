//! Many hosts, end to end, on simulated hosts (tests/src/rig.rs: each host its own network, PID,
//! mount and UTS namespaces, an underlay on a private switch, the server on the underlay):
//! tenant VXLAN networks that span hosts (Linux bridge unicast and multicast, Open vSwitch),
//! forwarding entries that follow ports, DHCP that fails over to another host. Root only.

use std::time::{Duration, Instant};

use neutrino_tests::kernel::require_root;
use neutrino_tests::rig::{Instance, Rig, RigOptions};
use serde_json::json;

/// Instances on two hosts that are not the DHCP host: their leases come across the underlay;
/// they reach each other by ping and TCP, and the network's MTU (1450) holds end to end.
fn vxlan_spans_hosts(test: &str, vxlan_group: &str) {
    if !require_root(test) {
        return;
    }
    let started = Instant::now();
    let mut options = RigOptions::linuxbridge(3);
    options.vxlan_group = vxlan_group.into();
    options.dhcp_hosts = vec![0];
    let rig = Rig::start(options).unwrap_or_else(|e| panic!("{test}: rig: {e:#}"));
    let (network, vni) = rig.ok("create the network", rig.network("span", "10.100.0.0/24"));
    let dhcp = rig.ok("find the DHCP host", rig.dhcp_host(&network));
    rig.check(
        dhcp == Some(0),
        "DHCP scheduling",
        format!("network {network} served by {dhcp:?}, not host0 (the only DHCP host)"),
    );
    let (a, b) = boot_pair(&rig, &network, 1, 2);
    for x in [&a, &b] {
        let held = rig.address_of(x);
        rig.check(
            held.as_deref() == Some(x.ip.as_str()),
            "leases",
            format!(
                "instance {} on host{} holds {held:?}, its port has {}",
                x.id, x.host, x.ip
            ),
        );
    }
    reach_each_other(&rig, &a, &b, &format!("vxlan-{vni}"));
    eprintln!("{test}: {:.1?}", started.elapsed());
}

#[test]
fn linuxbridge_unicast_vxlan_spans_hosts() {
    vxlan_spans_hosts("linuxbridge_unicast_vxlan_spans_hosts", "");
}

#[test]
fn linuxbridge_multicast_vxlan_spans_hosts() {
    vxlan_spans_hosts("linuxbridge_multicast_vxlan_spans_hosts", "239.1.1.1");
}

/// Boots one instance on each of two hosts at once; both ACTIVE, no port ever in ERROR.
fn boot_pair(rig: &Rig, network: &str, on_a: usize, on_b: usize) -> (Instance, Instance) {
    let boot_started = Instant::now();
    let a = rig.ok(
        &format!("boot a on host{on_a}"),
        rig.boot_request("a", network, on_a),
    );
    let b = rig.ok(
        &format!("boot b on host{on_b}"),
        rig.boot_request("b", network, on_b),
    );
    let timeout = Duration::from_secs(rig.options.boot_timeout + 5);
    let a = rig.ok(
        &format!("a ACTIVE on host{on_a}"),
        rig.wait_active(&a, on_a, timeout),
    );
    let b = rig.ok(
        &format!("b ACTIVE on host{on_b}"),
        rig.wait_active(&b, on_b, timeout),
    );
    eprintln!(
        "two boots on host{on_a} and host{on_b} ACTIVE in {:.1?}",
        boot_started.elapsed()
    );
    // Not even on the way: a plug that failed once (its namespace not made yet) and was
    // retried is a bug too.
    let errors = rig.port_errors();
    rig.check(
        errors.is_empty(),
        "no port ever reported ERROR",
        errors.join("\n"),
    );
    (a, b)
}

/// Ping both ways, a TCP echo, and the MTU: 1422 bytes of ICMP payload with DF set fit in
/// 1450 (+ 8 + 20), 1423 do not.
fn reach_each_other(rig: &Rig, a: &Instance, b: &Instance, device: &str) {
    let fdb = |i: usize| {
        format!(
            "{device} on host{i}: {:?}",
            rig.hosts[i].vxlan_fdb(device).map_err(|e| e.to_string())
        )
    };
    let why = |out: String| format!("{out}\n{}\n{}", fdb(a.host), fdb(b.host));
    if let Err(out) = rig.ping_eventually(a, &b.ip, 5) {
        rig.check(
            false,
            &format!("ping from host{} to host{}", a.host, b.host),
            why(out),
        );
    }
    if let Err(out) = rig.ping_eventually(b, &a.ip, 3) {
        rig.check(
            false,
            &format!("ping from host{} to host{}", b.host, a.host),
            why(out),
        );
    }
    rig.ok(
        &format!("TCP from host{} to host{}", a.host, b.host),
        rig.tcp_echo(b, a),
    );
    let (fits, out) = rig.ping(a, &b.ip, 1422);
    rig.check(
        fits,
        "MTU",
        format!("1422 bytes with DF did not pass: {}", why(out)),
    );
    let (too_big, out) = rig.ping(a, &b.ip, 1423);
    rig.check(
        !too_big,
        "MTU",
        format!("1423 bytes with DF passed a 1450 MTU network: {out}"),
    );
}

/// Forwarding entries follow ports: each host with a port on the network floods to each other
/// one; once the only port of a host is deleted, no peer keeps an entry towards it (neither a
/// flood entry nor the port's MAC); a port moved to another host takes its MAC's entries along.
#[test]
fn deleted_or_moved_port_leaves_every_peers_forwarding_table() {
    let test = "deleted_or_moved_port_leaves_every_peers_forwarding_table";
    if !require_root(test) {
        return;
    }
    let started = Instant::now();
    let mut options = RigOptions::linuxbridge(3);
    options.dhcp_hosts = vec![0];
    let rig = Rig::start(options).unwrap_or_else(|e| panic!("{test}: rig: {e:#}"));
    let (network, vni) = rig.ok("create the network", rig.network("fdb", "10.101.0.0/24"));
    let device = format!("vxlan-{vni}");
    let (a, b) = boot_pair(&rig, &network, 1, 2);
    // Every host holds a port (host0 the DHCP port): each floods to both others.
    let ips: Vec<String> = rig.hosts.iter().map(|h| h.ip.clone()).collect();
    let full_mesh = Rig::wait_until(Duration::from_secs(10), || {
        (0..3).all(|i| {
            let mut want: Vec<String> =
                (0..3).filter(|&j| j != i).map(|j| ips[j].clone()).collect();
            want.sort();
            rig.hosts[i]
                .flood_destinations(&device)
                .is_ok_and(|d| want.iter().all(|w| d.contains(w)))
        })
    });
    rig.check(
        full_mesh,
        "flood entries before the delete",
        fdb_dump(&rig, &device),
    );

    let deleted = Instant::now();
    rig.ok("delete b", rig.delete_server(&b.id));
    let gone = Rig::wait_until(Duration::from_secs(10), || {
        (0..2).all(|i| {
            // Entries the kernel learned from b's traffic age out on their own: only the
            // installed ones count.
            rig.hosts[i].installed_fdb(&device).is_ok_and(|entries| {
                !entries
                    .iter()
                    .any(|e| e.dst == ips[2] || e.mac.eq_ignore_ascii_case(&b.mac))
            })
        })
    });
    rig.check(
        gone,
        &format!(
            "entries towards host2 ({}) and b's MAC {} after b (host2's only port) was deleted",
            ips[2], b.mac
        ),
        fdb_dump(&rig, &device),
    );
    eprintln!(
        "{test}: entries gone from every peer {:.1?} after the delete",
        deleted.elapsed()
    );
    // host0 and host1 still hold ports: they keep flooding to each other, and a still gets
    // its DHCP server's answers.
    rig.check(
        rig.hosts[1]
            .flood_destinations(&device)
            .is_ok_and(|d| d.contains(&ips[0]))
            && rig.hosts[0]
                .flood_destinations(&device)
                .is_ok_and(|d| d.contains(&ips[1])),
        "flood entries between the hosts that keep ports",
        fdb_dump(&rig, &device),
    );
    let _ = a;

    // A port moved from host1 to host2 (its binding host changed): host0's entry for its MAC
    // follows it, and none towards host1 stays.
    let port = rig.ok(
        "a port bound to host1",
        rig.create(
            "/v2.0/ports",
            json!({"port": {"network_id": network, "binding:host_id": rig.hosts[1].name}}),
        ),
    );
    let id = port["port"]["id"].as_str().unwrap_or_default().to_string();
    let mac = port["port"]["mac_address"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    let entry_towards = |host: usize| {
        rig.hosts[0].installed_fdb(&device).is_ok_and(|entries| {
            let of_mac: Vec<&str> = entries
                .iter()
                .filter(|e| e.mac.eq_ignore_ascii_case(&mac))
                .map(|e| e.dst.as_str())
                .collect();
            of_mac == [ips[host].as_str()]
        })
    };
    let on_host1 = Rig::wait_until(Duration::from_secs(10), || entry_towards(1));
    rig.check(
        on_host1,
        &format!("host0's entry for {mac} towards host1"),
        fdb_dump(&rig, &device),
    );
    let moved = Instant::now();
    let (code, body) = rig.ok(
        "move the port to host2",
        rig.call(
            "PUT",
            &format!("/v2.0/ports/{id}"),
            Some(json!({"port": {"binding:host_id": rig.hosts[2].name}})),
        ),
    );
    rig.check(code == 200, "move the port to host2", body);
    let followed = Rig::wait_until(Duration::from_secs(10), || entry_towards(2));
    rig.check(
        followed,
        &format!("host0's entry for {mac} towards host2 only, after the move"),
        fdb_dump(&rig, &device),
    );
    eprintln!(
        "{test}: the entry followed the moved port {:.1?} after the move",
        moved.elapsed()
    );
    eprintln!("{test}: {:.1?}", started.elapsed());
}

fn fdb_dump(rig: &Rig, device: &str) -> String {
    rig.hosts
        .iter()
        .map(|h| {
            format!(
                "{device} on {} ({}): {:?}",
                h.name,
                h.ip,
                h.vxlan_fdb(device).map_err(|e| e.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Open vSwitch (hybrid plug) on VXLAN across two hosts, each with its own ovsdb-server and
/// ovs-vswitchd (netdev datapath) in its private /run/openvswitch: the instance on host1 gets
/// its lease from host0's dnsmasq, and the two instances reach each other.
#[test]
fn ovs_hybrid_vxlan_spans_hosts() {
    let test = "ovs_hybrid_vxlan_spans_hosts";
    if !require_root(test) {
        return;
    }
    let started = Instant::now();
    let options = RigOptions {
        mechanism_driver: "ovs-hybrid".into(),
        dhcp_hosts: vec![0],
        ..RigOptions::linuxbridge(2)
    };
    let rig = Rig::start(options).unwrap_or_else(|e| panic!("{test}: rig: {e:#}"));
    let (network, _) = rig.ok("create the network", rig.network("ovs", "10.102.0.0/24"));
    let (a, b) = boot_pair(&rig, &network, 1, 0);
    let ovs = |i: usize| {
        rig.hosts[i]
            .exec(&["ovs-vsctl", "--db=unix:/run/openvswitch/db.sock", "show"])
            .1
    };
    let why = |out: String| format!("{out}\nhost0 OVS:\n{}\nhost1 OVS:\n{}", ovs(0), ovs(1));
    if let Err(out) = rig.ping_eventually(&a, &b.ip, 5) {
        rig.check(false, "ping from host1 to host0", why(out));
    }
    if let Err(out) = rig.ping_eventually(&b, &a.ip, 3) {
        rig.check(false, "ping from host0 to host1", why(out));
    }
    rig.ok("TCP from host1 to host0", rig.tcp_echo(&b, &a));
    eprintln!("{test}: {:.1?}", started.elapsed());
}

/// DHCP fails over: the host serving a network's DHCP is killed; once its agent is dead
/// (agent_down_time 6 s), another DHCP host takes the network, and boots on it go ACTIVE
/// (on the new DHCP host and on a host without DHCP) by [`FAILOVER_LIMIT`] after the kill.
/// When the killed host returns, one host only runs the network's dnsmasq.
#[test]
fn dhcp_fails_over_to_another_host() {
    let test = "dhcp_fails_over_to_another_host";
    if !require_root(test) {
        return;
    }
    /// After the kill: agent_down_time (6 s) + detection and scheduling + a boot and lease.
    const FAILOVER_LIMIT: Duration = Duration::from_secs(25);
    let started = Instant::now();
    let options = RigOptions {
        dhcp_hosts: vec![0, 1],
        agent_down_time: 6,
        report_interval: 1,
        ..RigOptions::linuxbridge(3)
    };
    let mut rig = Rig::start(options).unwrap_or_else(|e| panic!("{test}: rig: {e:#}"));
    let (network, _) = rig.ok(
        "create the network",
        rig.network("failover", "10.103.0.0/24"),
    );
    let first = rig.ok("find the DHCP host", rig.dhcp_host(&network));
    let Some(first) = first.filter(|h| *h < 2) else {
        panic!(
            "network {network} served by {first:?}, not host0 or host1\n{}",
            rig.logs()
        );
    };
    let other = 1 - first;
    let serving = Rig::wait_until(Duration::from_secs(15), || {
        !rig.hosts[first].dnsmasq_for(&network).is_empty()
    });
    rig.check(serving, &format!("dnsmasq on host{first}"), "never started");
    let per_host = rig.hosts[first].dnsmasq_for(&network).len();

    let killed = Instant::now();
    rig.kill(first);
    let dead = Rig::wait_until(Duration::from_secs(20), || {
        rig.agent_alive(first).is_ok_and(|alive| !alive)
    });
    rig.check(
        dead,
        &format!("host{first}'s agent dead"),
        "still alive 20 s after the kill",
    );
    let dead_after = killed.elapsed();
    // Boots as soon as the server knows the host is dead: the new DHCP host's own and one
    // on the host without DHCP.
    let on_other = rig.ok(
        "boot on the other DHCP host",
        rig.boot_request("x", &network, other),
    );
    let on_third = rig.ok("boot on host2", rig.boot_request("y", &network, 2));
    let moved = Rig::wait_until(FAILOVER_LIMIT.saturating_sub(killed.elapsed()), || {
        rig.dhcp_host(&network).is_ok_and(|h| h == Some(other))
    });
    rig.check(
        moved,
        "failover",
        format!(
            "network {network} still served by {:?}, {:.1?} after host{first} was killed",
            rig.dhcp_host(&network).ok().flatten(),
            killed.elapsed()
        ),
    );
    let moved_after = killed.elapsed();
    let remaining = FAILOVER_LIMIT.saturating_sub(killed.elapsed());
    rig.ok(
        &format!(
            "boot on host{other} (the new DHCP host) ACTIVE by {FAILOVER_LIMIT:?} after the kill"
        ),
        rig.wait_active(&on_other, other, remaining),
    );
    let remaining = FAILOVER_LIMIT.saturating_sub(killed.elapsed());
    rig.ok(
        &format!("boot on host2 ACTIVE by {FAILOVER_LIMIT:?} after the kill"),
        rig.wait_active(&on_third, 2, remaining),
    );
    let active_after = killed.elapsed();
    eprintln!(
        "{test}: host{first} killed; dead after {dead_after:.1?}, network on host{other} after \
         {moved_after:.1?}, both boots ACTIVE after {active_after:.1?}"
    );

    // The killed host returns: it gives the network back; one host runs its dnsmasq.
    let restarted = rig.start_host(first);
    rig.ok(&format!("restart host{first}"), restarted);
    std::thread::sleep(Duration::from_secs(3));
    let settled = Instant::now();
    while settled.elapsed() < Duration::from_secs(5) {
        let counts: Vec<usize> = (0..3)
            .map(|i| rig.hosts[i].dnsmasq_for(&network).len())
            .collect();
        rig.check(
            counts[other] == per_host && counts.iter().sum::<usize>() == per_host,
            "one dnsmasq slot per network after the return",
            format!(
                "dnsmasq processes for {network} per host: {counts:?}; want {per_host} on \
                 host{other} only"
            ),
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let still = rig.ok("find the DHCP host", rig.dhcp_host(&network));
    rig.check(
        still == Some(other),
        "the network stays where it moved",
        format!("served by {still:?} after host{first} returned"),
    );
    // The returned host works: a boot there gets its lease from the new DHCP host.
    rig.ok(
        &format!("boot on the returned host{first}"),
        rig.boot("z", &network, first),
    );
    eprintln!("{test}: {:.1?}", started.elapsed());
}

/// `--dhcp-agents-per-network 2`: both DHCP hosts run the network's dnsmasq; with one of them
/// killed (and not yet dead to the server: agent_down_time is long), a boot on a third host
/// still gets its lease, from the other. The killed host returns to serving it.
#[test]
fn two_dhcp_agents_keep_a_network_answering_while_one_host_is_down() {
    let test = "two_dhcp_agents_keep_a_network_answering_while_one_host_is_down";
    if !require_root(test) {
        return;
    }
    let started = Instant::now();
    let options = RigOptions {
        dhcp_hosts: vec![0, 1],
        dhcp_agents_per_network: 2,
        agent_down_time: 120,
        ..RigOptions::linuxbridge(3)
    };
    let mut rig = Rig::start(options).unwrap_or_else(|e| panic!("{test}: rig: {e:#}"));
    let (network, _) = rig.ok("create the network", rig.network("pair", "10.104.0.0/24"));
    let dhcp_hosts = |rig: &Rig| -> Vec<String> {
        let (_, body) = rig
            .call(
                "GET",
                &format!("/v2.0/ports?network_id={network}&device_owner=network:dhcp"),
                None,
            )
            .unwrap_or_else(|e| panic!("{test}: list DHCP ports: {e:#}"));
        let mut hosts: Vec<String> = body["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                p["binding:host_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        hosts.sort();
        hosts
    };
    let names = [rig.hosts[0].name.clone(), rig.hosts[1].name.clone()];
    rig.check(
        dhcp_hosts(&rig) == names,
        "two DHCP ports",
        format!("DHCP ports on {:?}", dhcp_hosts(&rig)),
    );
    let both = Rig::wait_until(Duration::from_secs(15), || {
        (0..2).all(|i| !rig.hosts[i].dnsmasq_for(&network).is_empty())
    });
    rig.check(
        both,
        "dnsmasq on host0 and host1",
        format!(
            "dnsmasq per host: {:?}",
            (0..3)
                .map(|i| rig.hosts[i].dnsmasq_for(&network).len())
                .collect::<Vec<_>>()
        ),
    );
    let before = rig.ok("boot on host2", rig.boot("before", &network, 2));
    rig.check(
        rig.address_of(&before).as_deref() == Some(before.ip.as_str()),
        "the lease of the first boot",
        format!("eth0 has {:?}", rig.address_of(&before)),
    );

    rig.kill(0);
    let after = rig.ok(
        "boot on host2 with host0 killed",
        rig.boot("after", &network, 2),
    );
    rig.check(
        rig.address_of(&after).as_deref() == Some(after.ip.as_str()),
        "the lease of the boot while host0 is down (from host1)",
        format!("eth0 has {:?}", rig.address_of(&after)),
    );
    rig.check(
        rig.agent_alive(0).unwrap_or(false) && dhcp_hosts(&rig) == names,
        "no failover was needed",
        format!("DHCP ports on {:?}", dhcp_hosts(&rig)),
    );
    rig.ping_eventually(&after, &before.ip, 10)
        .unwrap_or_else(|e| rig.check(false, "ping between the boots", e));

    // host0 returns (on its state) and serves the network again.
    let restarted = rig.start_host(0);
    rig.ok("restart host0", restarted);
    let back = Rig::wait_until(Duration::from_secs(20), || {
        !rig.hosts[0].dnsmasq_for(&network).is_empty()
    });
    rig.check(back, "dnsmasq on the returned host0", "never started");
    eprintln!("{test}: {:.1?}", started.elapsed());
}
