//! The dataplane's per-unit costs, on real kernel objects (root):
//! - boot to lease: `POST /v2.1/servers` until the instance's NIC holds its DHCP lease (and
//!   until the server is ACTIVE), 20 boots per driver, through a real server and agent;
//! - plans for 100 ports on one host: the drivers' plug plans computed and applied by the
//!   executor, instance namespaces made beforehand.
//!
//! `cargo bench -p neutrino-tests --bench dataplane` (prints figures; skipped when not root).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use neutrino::agent::executor::{Executor, ExecutorConfig};
use neutrino::conformance::AgentFixture;
use neutrino_model::{NetworkType, Op};
use neutrino_tests::dataplane::{Flavor, Node, address_in};
use neutrino_tests::kernel::{NetnsGuard, is_root, unique};
use neutrino_tests::ovs::OvsDaemon;
use neutrino_tests::plans::NetworkStory;
use neutrino_tests::summary;
use serde_json::json;

const BOOTS: usize = 20;
const PORTS: usize = 100;

fn main() {
    if !is_root() {
        println!("dataplane bench: SKIPPED, needs root (namespaces, devices, Open vSwitch)");
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!("boot to lease, {BOOTS} boots per driver (p50 / p99 / max):");
    for flavor in [Flavor::OvsHybrid, Flavor::LinuxBridge, Flavor::FlatDhcp] {
        rt.block_on(boots(flavor));
    }
    println!("plans for {PORTS} ports on one host:");
    rt.block_on(hundred_ports("linuxbridge", "Linux bridge agent", None));
    let ovs = OvsDaemon::start().expect("Open vSwitch");
    rt.block_on(hundred_ports(
        "ovs-hybrid",
        "Open vSwitch agent",
        Some(&ovs),
    ));
}

async fn boots(flavor: Flavor) {
    let node = Node::start(flavor).await.expect("node");
    let (network, _) = node
        .network("bench", "10.93.0.0/22", 0)
        .await
        .expect("network");
    let (mut to_lease, mut to_active, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..BOOTS {
        let started = Instant::now();
        let (code, answer) = node
            .call(
                "POST",
                "/v2.1/servers",
                Some(
                    json!({"server": {"name": format!("b{i}"), "networks": [{"uuid": network}],
                                       "availability_zone": format!("nova:{}", node.host)}}),
                ),
            )
            .await
            .expect("boot");
        assert_eq!(code, 202, "{answer}");
        let id = answer["server"]["id"].as_str().unwrap().to_string();
        let namespace = neutrino::agent::protocol::instance_namespace(&id);
        while address_in(&namespace, "eth0").is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no lease for {id}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        to_lease.push(started.elapsed());
        node.wait_for_status(&id, "ACTIVE", Duration::from_secs(30))
            .await
            .expect("ACTIVE");
        to_active.push(started.elapsed());
        ids.push(id);
    }
    println!(
        "  {:<12} lease {}   ACTIVE {}",
        flavor.driver(),
        summary(&mut to_lease),
        summary(&mut to_active)
    );
    for id in ids {
        node.delete_server(&id).await.expect("delete");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn hundred_ports(driver: &str, agent_type: &str, ovs: Option<&OvsDaemon>) {
    let mut fx = AgentFixture::default();
    let (int_br, phys_br) = (unique("br-i"), unique("br-p"));
    if ovs.is_some() {
        fx.bridge_mappings = BTreeMap::from([("physnet1".into(), phys_br)]);
        fx.integration_bridge = Some(int_br);
    }
    let (nt, config): (NetworkType, &[(&str, &str)]) = match driver {
        "linuxbridge" => (NetworkType::Vxlan, &[("vxlan_group", "")]),
        _ => (NetworkType::Flat, &[]),
    };
    let runtime = neutrino_tests::runtime();
    let story = NetworkStory::new(&runtime, driver, agent_type, &fx, nt, config);
    let executor = Executor::new(ExecutorConfig {
        ovs_db: ovs.map(OvsDaemon::db_socket),
    });
    executor.apply(&story.setup()).await.expect("setup");
    let ports: Vec<_> = (0..PORTS).map(|_| story.port(1)).collect();
    let mut guards = Vec::new();
    for p in &ports {
        executor
            .apply(&[Op::EnsureNamespace(p.namespace().to_string())])
            .await
            .expect("namespace");
        guards.push(NetnsGuard::new(p.namespace()));
    }
    let planned = Instant::now();
    let plans: Vec<Vec<Op>> = ports.iter().map(|p| story.plug(p)).collect();
    let planning = planned.elapsed();
    let mut each = Vec::new();
    let applied = Instant::now();
    for plan in &plans {
        let one = Instant::now();
        executor.apply(plan).await.expect("plug");
        each.push(one.elapsed());
    }
    let total = applied.elapsed();
    println!(
        "  {driver:<12} {PORTS} plug plans computed in {planning:.1?}, applied in {total:.2?} \
         (per port {})",
        summary(&mut each)
    );
    for p in &ports {
        let _ = executor.apply(&story.unplug(p)).await;
    }
    let _ = executor.apply(&story.teardown()).await;
}
