//! Port binding through the API with hostile or slow drivers (issue 11): the segments a driver
//! continues with are the network's own or dynamic ones the host issues, records and releases;
//! a made-up segment reaches no host; a slow driver holds no write transaction, so other
//! projects' writes do not wait for it.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use neutrino::agent::protocol::HostChanges;
use neutrino::api::ApiConfig;
use neutrino::plugins::Limits;
use neutrino::plugins::registry::DriversConfig;
use neutrino_model::NetworkType;
use neutrino_tests::api::{Db, TestApi};
use neutrino_tests::{component, for_both_databases};
use serde_json::{Value, json};

/// Drivers `names` in order, test components found in the build's output directory.
fn drivers(names: &[&str], deadline: Duration) -> impl Fn(&mut ApiConfig) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    move |c: &mut ApiConfig| {
        c.drivers = DriversConfig {
            mechanism_drivers: names.clone(),
            plugin_dir: component("misbehaving-good").parent().map(Into::into),
            limits: Limits {
                deadline,
                // The deadline, not fuel, ends a spinning call.
                fuel: 1 << 40,
                ..Limits::default()
            },
            ..DriversConfig::default()
        };
    }
}

/// An Open vSwitch agent's heartbeat for `host` (VXLAN, physnet1 on br-ex).
pub(crate) async fn ovs_node(api: &TestApi, host: &str) {
    let r = api
        .report(
            json!({"agent_type": "Open vSwitch agent", "binary": "neutrino-agent",
            "host": host, "topic": "N/A", "start_flag": true,
            "configurations": {"bridge_mappings": {"physnet1": "br-ex"},
                "tunnel_types": ["vxlan"], "tunneling_ip": "127.0.0.1",
                "integration_bridge": "br-int"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Creates `resource` as an admin of `project`; panics unless 201.
pub(crate) async fn create(api: &TestApi, project: &str, resource: &str, body: Value) -> Value {
    let r = api
        .call_as(
            Some((project, "admin")),
            Method::POST,
            &format!("/v2.0/{resource}s"),
            Some(json!({ resource: body })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{resource}: {}", r.body);
    r.body[resource].clone()
}

/// A network of p1 with one IPv4 subnet.
pub(crate) async fn network_with_subnet(api: &TestApi, cidr: &str) -> String {
    let n = create(api, "p1", "network", json!({"name": "n"})).await;
    let id = n["id"].as_str().unwrap().to_string();
    create(
        api,
        "p1",
        "subnet",
        json!({"network_id": id, "cidr": cidr, "ip_version": 4}),
    )
    .await;
    id
}

async fn bound_port(api: &TestApi, network: &str, host: &str) -> Value {
    create(
        api,
        "p1",
        "port",
        json!({"network_id": network, "binding:host_id": host}),
    )
    .await
}

async fn binding(api: &TestApi, port: &Value) -> Value {
    let r = api
        .call(
            Method::GET,
            &format!("/v2.0/ports/{}/binding", port["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["binding"].clone()
}

/// A provider VLAN network on physnet1: its answer's status (409 when the VLAN is held).
async fn provider_vlan(api: &TestApi, vlan: u32) -> StatusCode {
    api.call(
        Method::POST,
        "/v2.0/networks",
        Some(json!({"network": {"name": format!("vlan-{vlan}"),
            "provider:network_type": "vlan", "provider:physical_network": "physnet1",
            "provider:segmentation_id": vlan}})),
    )
    .await
    .status
}

async fn delete_port(api: &TestApi, port: &Value) {
    let r = api
        .call(
            Method::DELETE,
            &format!("/v2.0/ports/{}", port["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
}

for_both_databases!(
    dynamic_segments_are_issued_shared_and_released,
    |db: Db| async move {
        let api = TestApi::with(
            db,
            drivers(
                &["misbehaving-hierarchical", "ovs-hybrid"],
                Duration::from_secs(5),
            ),
        )
        .await;
        ovs_node(&api, "h1").await;
        let n1 = network_with_subnet(&api, "10.1.0.0/24").await;
        let n2 = network_with_subnet(&api, "10.2.0.0/24").await;
        let p1 = bound_port(&api, &n1, "h1").await;
        assert_eq!(p1["binding:vif_type"], "ovs", "{p1}");
        let b1 = binding(&api, &p1).await;
        // The driver asked for a VLAN on physnet1; the host issued 1000 and recorded it.
        assert_eq!(b1["segment"]["network_type"], "vlan", "{b1}");
        assert_eq!(b1["segment"]["segmentation_id"], 1000, "{b1}");
        assert_eq!(b1["dynamic_segments"][0], b1["segment"], "{b1}");
        assert!(b1["work"]["decisions"].as_u64().unwrap() >= 2, "{b1}");
        // A second port of the network shares it; another network gets the next VLAN.
        let p2 = bound_port(&api, &n1, "h1").await;
        assert_eq!(binding(&api, &p2).await["segment"], b1["segment"]);
        let p3 = bound_port(&api, &n2, "h1").await;
        assert_eq!(binding(&api, &p3).await["segment"]["segmentation_id"], 1001);
        // Held VLANs are nobody else's: a provider network cannot take them.
        assert_eq!(provider_vlan(&api, 1000).await, StatusCode::CONFLICT);
        assert_eq!(provider_vlan(&api, 1001).await, StatusCode::CONFLICT);
        // Released when the last port using it goes: deleted, or unbound.
        delete_port(&api, &p1).await;
        assert_eq!(provider_vlan(&api, 1000).await, StatusCode::CONFLICT);
        delete_port(&api, &p2).await;
        assert_eq!(provider_vlan(&api, 1000).await, StatusCode::CREATED);
        let r = api
            .call(
                Method::PUT,
                &format!("/v2.0/ports/{}", p3["id"].as_str().unwrap()),
                Some(json!({"port": {"binding:host_id": ""}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(provider_vlan(&api, 1001).await, StatusCode::CREATED);
    }
);

for_both_databases!(
    a_made_up_vlan_is_refused_and_reaches_no_host,
    |db: Db| async move {
        let api = TestApi::with(
            db,
            drivers(
                &["misbehaving-tenant-vlan", "ovs-hybrid"],
                Duration::from_secs(5),
            ),
        )
        .await;
        ovs_node(&api, "h1").await;
        // Another project's VLAN 200.
        assert_eq!(provider_vlan(&api, 200).await, StatusCode::CREATED);
        let n = network_with_subnet(&api, "10.3.0.0/24").await;
        let p = bound_port(&api, &n, "h1").await;
        assert_eq!(p["binding:vif_type"], "ovs", "{p}");
        let b = binding(&api, &p).await;
        assert_eq!(b["segment"]["network_type"], "vxlan", "{b}");
        assert_eq!(b["levels"].as_array().unwrap().len(), 1, "{b}");
        let refused = &b["decisions"][0];
        assert_eq!(refused["decision"], "error", "{b}");
        assert!(
            refused["reason"]
                .as_str()
                .unwrap()
                .contains("segmentation id 200"),
            "{b}"
        );
        // What the host's agent is told: the network's own VXLAN segment, never VLAN 200.
        let r = api
            .request(
                Method::GET,
                "/internal/hosts/h1/changes?after=0&timeout=0",
                &[("x-neutrino-agent-token", &api.agent_token)],
                Vec::new(),
            )
            .await;
        let changes: HostChanges = serde_json::from_value(r.body).unwrap();
        let segments: Vec<_> = changes
            .ports
            .iter()
            .filter_map(|c| c.port.as_ref()?.binding.as_ref())
            .map(|b| (b.segment.network_type, b.segment.segmentation_id))
            .collect();
        assert!(!segments.is_empty());
        assert!(
            segments
                .iter()
                .all(|s| s.0 == NetworkType::Vxlan && s.1 != Some(200)),
            "{segments:?}"
        );
    }
);

/// p50 and p99 of `samples`, in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99))
}

/// Another project's writes (network creates) while project p1 keeps binding ports on h1,
/// one at a time, through `names`; answers their p50/p99 and the binds' mean time.
async fn other_projects_writes(db: Db, names: &[&str], deadline: Duration) -> (f64, f64, f64) {
    let api = std::sync::Arc::new(TestApi::with(db, drivers(names, deadline)).await);
    ovs_node(&api, "h1").await;
    // More networks and ports than Neutron's default quotas allow.
    for project in ["p1", "p2"] {
        let r = api
            .call(
                Method::PUT,
                &format!("/v2.0/quotas/{project}"),
                Some(json!({"quota": {"network": -1, "subnet": -1, "port": -1}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let n = network_with_subnet(&api, "10.4.0.0/22").await;
    bound_port(&api, &n, "h1").await; // loads the drivers
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let binder = {
        let (api, stop, n) = (api.clone(), stop.clone(), n.clone());
        tokio::spawn(async move {
            let (mut binds, started) = (0u32, Instant::now());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let p = bound_port(&api, &n, "h1").await;
                assert_eq!(p["binding:vif_type"], "ovs", "{p}");
                binds += 1;
            }
            started.elapsed().as_secs_f64() * 1000.0 / f64::from(binds.max(1))
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut samples = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        create(&api, "p2", "network", json!({"name": format!("other-{i}")})).await;
        samples.push(t.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let bind_ms = binder.await.unwrap();
    let (p50, p99) = percentiles(samples);
    (p50, p99, bind_ms)
}

for_both_databases!(
    a_driver_at_its_deadline_does_not_slow_other_projects_writes,
    |db: Db| async move {
        let deadline = Duration::from_millis(250);
        let (base50, base99, base_bind) =
            other_projects_writes(db, &["ovs-hybrid"], deadline).await;
        // misbehaving-spin runs every bind-port call to its deadline; ovs-hybrid binds next.
        let (slow50, slow99, slow_bind) =
            other_projects_writes(db, &["misbehaving-spin", "ovs-hybrid"], deadline).await;
        println!(
            "{db:?}: other projects' network creates while one project binds ports: \
             no slow driver p50 {base50:.1} ms p99 {base99:.1} ms (bind {base_bind:.1} ms); \
             a driver at its {} ms deadline p50 {slow50:.1} ms p99 {slow99:.1} ms \
             (bind {slow_bind:.1} ms)",
            deadline.as_millis()
        );
        assert!(slow_bind >= 250.0, "the slow driver ran to its deadline");
        // Inside the write transaction most writes would wait for a bind (up to 250 ms each).
        assert!(slow50 < 50.0, "p50 {slow50:.1} ms with a slow driver");
        assert!(slow99 < 250.0, "p99 {slow99:.1} ms with a slow driver");
    }
);
