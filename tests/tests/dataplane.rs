//! End to end, for each bundled driver, on real kernel objects: a server and an agent, a
//! network with DHCP served by a real dnsmasq, instances (network namespaces) booted through
//! `/v2.1/servers` whose real DHCP client gets exactly their port's address, and that reach
//! each other by ping and TCP but not an instance on another network. Deleting an instance
//! removes its devices and namespace; restarting the agent keeps instances working and removes
//! stale devices. Open vSwitch runs its userspace datapath, started by the test.

use neutrino_tests::dataplane::{
    Flavor, Node, address_in, link_exists, namespace_exists, ping, ping_eventually, tcp_echo,
};
use neutrino_tests::kernel::require_root;

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
    let stale = node.plant_stale_device();
    node.restart_agent().await.unwrap();
    let swept = wait_until(|| !link_exists(&stale)).await;
    assert!(swept, "stale {stale} survived the agent restart");
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
