//! End to end, for each bundled driver, on real kernel objects: a server and an agent, a
//! network with DHCP served by a real dnsmasq, instances (network namespaces) booted through
//! `/v2.1/servers` whose real DHCP client gets exactly their port's address, and that reach
//! each other by ping and TCP but not an instance on another network. Deleting an instance
//! removes its devices and namespace; restarting the agent keeps instances working and removes
//! stale devices. Open vSwitch runs its userspace datapath, started by the test.

use std::time::{Duration, Instant};

use neutrino_tests::dataplane::{
    Flavor, Node, address_in, link_exists, namespace_exists, ping, ping_eventually, run, tcp_echo,
    tcp_echo_on,
};
use neutrino_tests::kernel::{LinkGuard, require_root, unique};
use serde_json::json;

/// One node at a time: an agent's sweep recognises devices by our naming rules, as on a real
/// host where it is the only agent, so two agents on one kernel would sweep each other's.
static ONE_NODE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn two_instances_talk_and_others_do_not(flavor: Flavor, test: &str) {
    if !require_root(test) {
        return;
    }
    let _one = ONE_NODE_AT_A_TIME.lock().await;
    let mut node = Node::start(flavor).await.expect("node");
    let (net_a, _) = node.network("e2e-a", "10.91.0.0/24", 0).await.unwrap();
    let (net_b, _) = node.network("e2e-b", "10.92.0.0/24", 1).await.unwrap();
    let a = node.boot("a", &net_a).await.unwrap();
    let b = node.boot("b", &net_a).await.unwrap();
    let c = node.boot("c", &net_b).await.unwrap();

    // Each instance holds exactly its port's address, from DHCP.
    for server in [&a, &b, &c] {
        assert_eq!(
            address_in(&server.namespace, "eth0").as_deref(),
            Some(server.ip.as_str()),
            "{} in {}",
            server.id,
            server.namespace
        );
        assert!(server.ip.starts_with("10.9"), "{}", server.ip);
    }
    assert!(ping_eventually(&a.namespace, &b.ip, 5), "a cannot ping b");
    assert!(ping(&b.namespace, &a.ip), "b cannot ping a");
    assert!(
        tcp_echo(&b.namespace, &a.namespace, &b.ip),
        "no TCP from a to b"
    );
    assert!(
        !ping_eventually(&c.namespace, &a.ip, 2),
        "another network reaches a"
    );
    assert!(!ping(&a.namespace, &c.ip), "a reaches another network");

    // Restart the agent with a stale device of ours lying about: instances keep working, the
    // stale device goes, and what belongs stays.
    let tunnels = |node: &Node| -> Vec<String> {
        node.ovs().map_or_else(Vec::new, |ovs| {
            let ports = ovs
                .vsctl(&["list-ports", node.integration_bridge()])
                .unwrap_or_default();
            ports
                .lines()
                .filter(|p| p.starts_with("vxlan-"))
                .map(str::to_string)
                .collect()
        })
    };
    let live_tunnels = tunnels(&node);
    let stale = node.plant_stale_device();
    let stale_tunnel = node.plant_stale_tunnel();
    node.restart_agent().await.unwrap();
    let swept = wait_until(|| !link_exists(&stale)).await;
    assert!(swept, "stale {stale} survived the agent restart");
    if let (Some(tunnel), Some(ovs)) = (&stale_tunnel, node.ovs()) {
        let swept = wait_until(|| {
            !link_exists(tunnel)
                && !ovs
                    .vsctl(&["list-ports", node.integration_bridge()])
                    .unwrap_or_default()
                    .contains(tunnel.as_str())
        })
        .await;
        assert!(swept, "stale {tunnel} survived the agent restart");
        assert!(
            !live_tunnels.is_empty(),
            "the networks' own tunnels are on br-int"
        );
        assert_eq!(
            tunnels(&node),
            live_tunnels,
            "the networks' own tunnels stay"
        );
    }
    assert!(
        ping_eventually(&a.namespace, &b.ip, 3),
        "a lost b after the restart"
    );
    assert!(
        tcp_echo(&a.namespace, &b.namespace, &a.ip),
        "no TCP after the restart"
    );

    // Delete removes the instance's namespace and devices.
    node.delete_server(&b.id).await.unwrap();
    let tap = format!("tap{}", &b.port_id[..11]);
    let gone = wait_until(|| !namespace_exists(&b.namespace) && !link_exists(&tap)).await;
    assert!(gone, "{} or {tap} left behind", b.namespace);
    assert!(ping(&c.namespace, &c.ip), "c lost its own address");
    for server in [&a, &c] {
        node.delete_server(&server.id).await.unwrap();
    }
    let gone =
        wait_until(|| !namespace_exists(&a.namespace) && !namespace_exists(&c.namespace)).await;
    assert!(gone, "instances left behind");
}

/// Polls `done` for up to 10 s.
async fn wait_until(done: impl Fn() -> bool) -> bool {
    for _ in 0..100 {
        if done() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    done()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_hybrid_end_to_end() {
    two_instances_talk_and_others_do_not(Flavor::OvsHybrid, "ovs_hybrid_end_to_end").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linuxbridge_end_to_end() {
    two_instances_talk_and_others_do_not(Flavor::LinuxBridge, "linuxbridge_end_to_end").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flatdhcp_end_to_end() {
    two_instances_talk_and_others_do_not(Flavor::FlatDhcp, "flatdhcp_end_to_end").await;
}

/// Issue 10, finding 2: devices removed by hand are rebuilt by the agent, and a port whose
/// wiring is missing is not ACTIVE until it is back. Linux bridge: an instance's tap, then the
/// network's `brq` bridge (replaced at once by a device of another kind, so that the repair
/// cannot succeed until the test removes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linuxbridge_removed_devices_are_rebuilt() {
    let test = "linuxbridge_removed_devices_are_rebuilt";
    if !require_root(test) {
        return;
    }
    let _one = ONE_NODE_AT_A_TIME.lock().await;
    let node = Node::start(Flavor::LinuxBridge).await.expect("node");
    let (net, _) = node.network("heal", "10.93.0.0/24", 0).await.unwrap();
    let a = node.boot("a", &net).await.unwrap();
    let b = node.boot("b", &net).await.unwrap();
    assert!(ping_eventually(&a.namespace, &b.ip, 5), "a cannot ping b");

    // b's tap (and with it the veth's end in b) is deleted: rebuilt, b leases again.
    let tap = format!("tap{}", &b.port_id[..11]);
    let removed = Instant::now();
    assert!(run(&["ip", "link", "del", &tap]));
    let rebuilt = wait_until_async(Duration::from_secs(10), || async {
        link_exists(&tap) && port_status(&node, &b.port_id).await == "ACTIVE"
    })
    .await;
    assert!(rebuilt, "{tap} not rebuilt");
    let device_back = removed.elapsed();
    let leased = wait_until_async(Duration::from_secs(10), || async {
        address_in(&b.namespace, "eth0").as_deref() == Some(b.ip.as_str())
    })
    .await;
    assert!(leased, "b did not lease {} again", b.ip);
    assert!(ping_eventually(&a.namespace, &b.ip, 5), "a lost b");
    let traffic_back = removed.elapsed();
    eprintln!(
        "tap removed: rebuilt and ACTIVE in {device_back:?}, traffic back in {traffic_back:?}"
    );
    assert!(device_back < Duration::from_secs(2), "{device_back:?}");

    // The network's bridge is deleted: rebuilt with its ports, traffic flows again.
    let bridge = format!("brq{}", &net[..11]);
    let removed = Instant::now();
    assert!(run(&["ip", "link", "del", &bridge]));
    let rebuilt = wait_until_async(Duration::from_secs(10), || async {
        is_bridge(&bridge)
            && port_status(&node, &a.port_id).await == "ACTIVE"
            && port_status(&node, &b.port_id).await == "ACTIVE"
    })
    .await;
    let device_back = removed.elapsed();
    assert!(rebuilt, "{bridge} not rebuilt");
    assert!(ping_eventually(&a.namespace, &b.ip, 5), "a lost b");
    let traffic_back = removed.elapsed();
    eprintln!(
        "bridge removed: rebuilt and ACTIVE in {device_back:?}, traffic back in {traffic_back:?}"
    );
    assert!(device_back < Duration::from_secs(2), "{device_back:?}");

    // The bridge is put aside and a device of another kind (a veth) takes its name: the
    // ports cannot be wired while it stays, so they must not be ACTIVE meanwhile. Renames make
    // no removal event: the periodic check finds it.
    let (hold, impostor) = (unique("hold"), unique("imp"));
    let _guards = [LinkGuard::new(&hold), LinkGuard::new(&impostor)];
    assert!(run(&[
        "ip",
        "link",
        "add",
        &impostor,
        "type",
        "veth",
        "peer",
        "name",
        &unique("imq")
    ]));
    let batch = format!(
        "link set dev {bridge} down\nlink set dev {bridge} name {hold}\n\
         link set dev {impostor} name {bridge}\n"
    );
    let batch_file = tempfile_with(&batch);
    let swapped = Instant::now();
    assert!(run(&["ip", "-batch", &batch_file]));
    let _ = std::fs::remove_file(batch_file);
    let noticed = wait_until_async(Duration::from_secs(15), || async {
        port_status(&node, &a.port_id).await != "ACTIVE"
            && port_status(&node, &b.port_id).await != "ACTIVE"
    })
    .await;
    assert!(noticed, "ports stayed ACTIVE without their bridge");
    eprintln!(
        "bridge replaced: ports not ACTIVE after {:?}",
        swapped.elapsed()
    );
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        for port in [&a.port_id, &b.port_id] {
            let now = port_status(&node, port).await;
            assert_ne!(now, "ACTIVE", "port {port} ACTIVE without its bridge");
        }
    }
    // The impostor goes: the bridge is made again with its ports, and traffic flows.
    assert!(run(&["ip", "link", "del", &hold]));
    let removed = Instant::now();
    assert!(run(&["ip", "link", "del", &bridge]));
    let rebuilt = wait_until_async(Duration::from_secs(10), || async {
        is_bridge(&bridge)
            && port_status(&node, &a.port_id).await == "ACTIVE"
            && port_status(&node, &b.port_id).await == "ACTIVE"
    })
    .await;
    assert!(rebuilt, "{bridge} not rebuilt after the impostor went");
    assert!(ping_eventually(&a.namespace, &b.ip, 5), "a lost b");
    eprintln!(
        "impostor removed: bridge rebuilt, traffic back in {:?}",
        removed.elapsed()
    );
}

fn is_bridge(name: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["-d", "link", "show", name])
        .output()
        .unwrap();
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("\n    bridge ")
}

async fn port_status(node: &Node, port_id: &str) -> String {
    let (_, body) = node
        .call("GET", &format!("/v2.0/ports/{port_id}"), None)
        .await
        .unwrap();
    body["port"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Polls `done` every 20 ms for up to `timeout`.
async fn wait_until_async<F, Fut>(timeout: Duration, done: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done().await
}

/// A file holding `text`, for `ip -batch`.
fn tempfile_with(text: &str) -> String {
    let path = std::env::temp_dir().join(format!("ip-batch-{}", neutrino_tests::kernel::suffix()));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Issue 14, end to end for each driver: instances in `default` reach each other; an instance
/// in `web` (TCP 80 from anywhere) answers on 80 and not on 22 nor to ping from one outside
/// the group; a rule for ICMP opens ping at once and its removal closes it; a spoofed source
/// address is dropped; port security off opens the port; an agent restart keeps every rule.
async fn security_groups_hold(flavor: Flavor, test: &str) {
    if !require_root(test) {
        return;
    }
    let _one = ONE_NODE_AT_A_TIME.lock().await;
    let mut node = Node::start(flavor).await.expect("node");
    let (net, _) = node.network("sg", "10.93.0.0/24", 0).await.unwrap();
    let group = node
        .create(
            "/v2.0/security-groups",
            json!({"security_group": {"name": "web"}}),
        )
        .await
        .unwrap();
    let web = group["security_group"]["id"].as_str().unwrap().to_string();
    let rule = |protocol: &str, port: Option<u16>| {
        json!({"security_group_rule": {"security_group_id": web, "direction": "ingress",
            "protocol": protocol, "port_range_min": port, "port_range_max": port,
            "remote_ip_prefix": "0.0.0.0/0"}})
    };
    node.create("/v2.0/security-group-rules", rule("tcp", Some(80)))
        .await
        .unwrap();
    let a = node.boot("a", &net).await.unwrap();
    let b = node.boot("b", &net).await.unwrap();
    let w = node.boot_in("w", &net, &["web"]).await.unwrap();
    assert!(
        ping_eventually(&a.namespace, &b.ip, 5),
        "default reaches default"
    );
    assert!(
        tcp_echo_on(&w.namespace, &a.namespace, &w.ip, 80),
        "web on 80"
    );
    assert!(
        !tcp_echo_on(&w.namespace, &a.namespace, &w.ip, 22),
        "web on 22"
    );
    assert!(
        !ping(&a.namespace, &w.ip),
        "ping into web without an ICMP rule"
    );
    assert!(
        !ping(&w.namespace, &a.ip),
        "default lets its own members in only"
    );

    // A rule for ICMP: ping within a second; its removal closes it.
    let started = Instant::now();
    let icmp = node
        .create("/v2.0/security-group-rules", rule("icmp", None))
        .await
        .unwrap();
    let opened = wait_until_async(Duration::from_secs(1), || async {
        ping(&a.namespace, &w.ip)
    })
    .await;
    assert!(
        opened,
        "ping not open {:?} after the rule",
        started.elapsed()
    );
    let rule_id = icmp["security_group_rule"]["id"].as_str().unwrap();
    let (status, _) = node
        .call(
            "DELETE",
            &format!("/v2.0/security-group-rules/{rule_id}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 204);
    let closed = wait_until_async(Duration::from_secs(2), || async {
        !ping(&a.namespace, &w.ip)
    })
    .await;
    assert!(closed, "ping still open after the rule went");

    // A spoofed source address from a is dropped (b lets default members in: a's own works).
    assert!(run(&[
        "ip",
        "netns",
        "exec",
        &a.namespace,
        "ip",
        "addr",
        "add",
        "10.93.0.250/24",
        "dev",
        "eth0"
    ]));
    assert!(
        !run(&[
            "ip",
            "netns",
            "exec",
            &a.namespace,
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "-I",
            "10.93.0.250",
            &b.ip
        ]),
        "a spoofed source reached b"
    );
    assert!(ping(&a.namespace, &b.ip), "a's own address");

    // The agent restarts: the rules hold (22 still closed, 80 open) before and after.
    node.restart_agent().await.unwrap();
    assert!(
        tcp_echo_on(&w.namespace, &a.namespace, &w.ip, 80),
        "web on 80 after a restart"
    );
    assert!(
        !tcp_echo_on(&w.namespace, &a.namespace, &w.ip, 22),
        "web on 22 after a restart"
    );

    // Port security off (groups removed with it): w is open.
    let (status, body) = node
        .call(
            "PUT",
            &format!("/v2.0/ports/{}", w.port_id),
            Some(json!({"port": {"security_groups": [], "port_security_enabled": false}})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let open = wait_until_async(Duration::from_secs(2), || async {
        ping(&a.namespace, &w.ip)
    })
    .await;
    assert!(open, "w without port security");
    assert!(
        tcp_echo_on(&w.namespace, &a.namespace, &w.ip, 22),
        "w on 22 without port security"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_hybrid_security_groups() {
    security_groups_hold(Flavor::OvsHybrid, "ovs_hybrid_security_groups").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linuxbridge_security_groups() {
    security_groups_hold(Flavor::LinuxBridge, "linuxbridge_security_groups").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flatdhcp_security_groups() {
    security_groups_hold(Flavor::FlatDhcp, "flatdhcp_security_groups").await;
}
