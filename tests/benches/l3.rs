//! Routers on one host, on real kernel objects (root), through a real server and agent
//! (linuxbridge), with 100 other routers served by the same agent (each with a gateway and an
//! interface on a network of its own):
//! - `add_router_interface` -> first packet across: the second subnet of a router is added and
//!   an instance on the first pings one on the second until an answer comes;
//! - floating IP association -> the outside reaches the instance: the floating IP is associated
//!   and a client in the outside namespace connects (TCP) to it until it gets in.
//!
//! `cargo bench -p neutrino-tests --bench l3` (prints p50 / p99 / max; skipped when not root).
//! `L3_BENCH_ROUTERS` and `L3_BENCH_SAMPLES` change the 100 routers and the 50 samples.

use std::process::Command;
use std::time::{Duration, Instant};

use neutrino_tests::dataplane::{Flavor, Node};
use neutrino_tests::kernel::is_root;
use neutrino_tests::summary;
use serde_json::{Value, json};

const PROBE_PORT: u16 = 24100;

fn main() {
    if !is_root() {
        println!("l3 bench: SKIPPED, needs root (namespaces, devices, NAT)");
        return;
    }
    let number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (routers, samples) = (
        number("L3_BENCH_ROUTERS", 100),
        number("L3_BENCH_SAMPLES", 50),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(bench(routers, samples));
}

async fn put(node: &Node, path: &str, body: Value) {
    let (code, answer) = node.call("PUT", path, Some(body)).await.expect("PUT");
    assert_eq!(code, 200, "PUT {path}: {answer}");
}

async fn bench(routers: usize, samples: usize) {
    let node = Node::start_with_outside(Flavor::LinuxBridge)
        .await
        .expect("node");
    let outside = node.outside.as_ref().unwrap();
    let (external, _) = node.external_network().await.expect("external network");
    let (_, shown) = node
        .call("GET", &format!("/v2.0/networks/{external}"), None)
        .await
        .expect("external network");
    let project = shown["network"]["project_id"].as_str().unwrap().to_string();
    put(
        &node,
        &format!("/v2.0/quotas/{project}"),
        json!({"quota": {"router": -1, "floatingip": -1, "network": -1, "subnet": -1,
            "port": -1}}),
    )
    .await;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(routers);
    for i in 0..routers {
        let network = node
            .create(
                "/v2.0/networks",
                // Local networks: the node's VNI range is small, and these carry nothing.
                json!({"network": {"name": format!("bg{i}"), "provider:network_type": "local"}}),
            )
            .await
            .expect("network");
        let network_id = network["network"]["id"].as_str().unwrap();
        let subnet = node
            .create(
                "/v2.0/subnets",
                json!({"subnet": {"network_id": network_id, "ip_version": 4, "enable_dhcp": false,
                    "cidr": format!("10.{}.{}.0/24", 200 + i / 250, i % 250)}}),
            )
            .await
            .expect("subnet");
        let router = node
            .create(
                "/v2.0/routers",
                json!({"router": {"name": format!("bg{i}"),
                    "external_gateway_info": {"network_id": external}}}),
            )
            .await
            .expect("router");
        let id = router["router"]["id"].as_str().unwrap();
        node.leave_no(&format!("qrouter-{id}"));
        ids.push(id.to_string());
        put(
            &node,
            &format!("/v2.0/routers/{id}/add_router_interface"),
            json!({"subnet_id": subnet["subnet"]["id"]}),
        )
        .await;
    }
    println!("{routers} routers made (API) in {:.1?}", started.elapsed());
    // Served: each namespace holds its interface's address and its gateway's.
    while served(&ids) < routers {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {} of {routers} routers served",
            served(&ids)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{routers} routers served by the agent (addresses in their namespaces) after {:.1?}",
        started.elapsed()
    );
    let (net_a, subnet_a) = node.network("bench-a", "10.98.0.0/24", 0).await.unwrap();
    let (net_b, subnet_b) = node.network("bench-b", "10.99.0.0/24", 0).await.unwrap();
    let a = node.boot("a", &net_a).await.unwrap();
    let c = node.boot("c", &net_b).await.unwrap();
    let router = node
        .create(
            "/v2.0/routers",
            json!({"router": {"name": "measured",
                "external_gateway_info": {"network_id": external}}}),
        )
        .await
        .expect("router");
    let id = router["router"]["id"].as_str().unwrap().to_string();
    node.leave_no(&format!("qrouter-{id}"));
    let path = format!("/v2.0/routers/{id}");
    put(
        &node,
        &format!("{path}/add_router_interface"),
        json!({"subnet_id": subnet_a}),
    )
    .await;

    let mut crossing = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        put(
            &node,
            &format!("{path}/add_router_interface"),
            json!({"subnet_id": subnet_b}),
        )
        .await;
        while !ping(&a.namespace, &c.ip) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no packet across"
            );
        }
        crossing.push(started.elapsed());
        put(
            &node,
            &format!("{path}/remove_router_interface"),
            json!({"subnet_id": subnet_b}),
        )
        .await;
        let gone = Instant::now();
        while ping(&a.namespace, &c.ip) {
            assert!(gone.elapsed() < Duration::from_secs(30), "still across");
        }
    }
    println!(
        "add_router_interface -> first packet across, {samples} samples (p50 / p99 / max): {}",
        summary(&mut crossing)
    );

    // The outside may reach a on PROBE_PORT; a listener answers there all along.
    let (_, port) = node
        .call("GET", &format!("/v2.0/ports/{}", a.port_id), None)
        .await
        .unwrap();
    node.create(
        "/v2.0/security-group-rules",
        json!({"security_group_rule": {"security_group_id": port["port"]["security_groups"][0],
            "direction": "ingress", "protocol": "tcp", "port_range_min": PROBE_PORT,
            "port_range_max": PROBE_PORT, "remote_ip_prefix": "0.0.0.0/0"}}),
    )
    .await
    .unwrap();
    let mut listener = Command::new("ip")
        .args(["netns", "exec", &a.namespace, "python3", "-c"])
        .arg(format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('',{PROBE_PORT}))\ns.listen(64)\nwhile True:\n c,_=s.accept()\n c.close()"
        ))
        .spawn()
        .expect("listener");
    let fip = node
        .create(
            "/v2.0/floatingips",
            json!({"floatingip": {"floating_network_id": external}}),
        )
        .await
        .unwrap();
    let fip_path = format!(
        "/v2.0/floatingips/{}",
        fip["floatingip"]["id"].as_str().unwrap()
    );
    let fip_ip = fip["floatingip"]["floating_ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    let mut reaching = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        put(
            &node,
            &fip_path,
            json!({"floatingip": {"port_id": a.port_id}}),
        )
        .await;
        assert!(
            connects_within(&outside.namespace, &fip_ip, Duration::from_secs(30), true),
            "the outside never got in"
        );
        reaching.push(started.elapsed());
        put(&node, &fip_path, json!({"floatingip": {"port_id": null}})).await;
        assert!(
            connects_within(&outside.namespace, &fip_ip, Duration::from_secs(30), false),
            "the outside still gets in"
        );
    }
    let _ = listener.kill();
    let _ = listener.wait();
    println!(
        "floating IP associated -> the outside reaches the instance, {samples} samples (p50 / p99 / max): {}",
        summary(&mut reaching)
    );
}

/// How many of the routers have both their addresses (interface and gateway) in place.
fn served(ids: &[String]) -> usize {
    ids.iter()
        .filter(|id| {
            let namespace = format!("qrouter-{id}");
            Command::new("ip")
                .args([
                    "-n", &namespace, "-4", "-o", "addr", "show", "scope", "global",
                ])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().count() >= 2)
        })
        .count()
}

/// One ping with a 50 ms wait (the resolution of the first-packet figure).
fn ping(namespace: &str, ip: &str) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", namespace, "ping", "-c", "1", "-W", "0.05", ip,
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Connects from `namespace` to `ip`:PROBE_PORT every 50 ms (100 ms timeouts) until a
/// connection succeeds (`wanted`) or fails (`!wanted`), for up to `within`.
fn connects_within(namespace: &str, ip: &str, within: Duration, wanted: bool) -> bool {
    let script = format!(
        "import socket,time,sys\nend=time.time()+{}\nwhile time.time()<end:\n \
         try:\n  socket.create_connection(('{ip}',{PROBE_PORT}),timeout=0.1).close()\n  ok=True\n \
         except OSError:\n  ok=False\n if ok=={}:\n  sys.exit(0)\n time.sleep(0.05)\nsys.exit(1)",
        within.as_secs_f64(),
        if wanted { "True" } else { "False" },
    );
    Command::new("ip")
        .args(["netns", "exec", namespace, "python3", "-c", &script])
        .status()
        .is_ok_and(|s| s.success())
}
