//! Bindings made after their commit (issue 11): a subnet's DHCP port is bound after the
//! subnet's transaction commits, a binding bumps the port's revision as any change does, and a
//! port whose server died between its commit and its binding is bound by the next start.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use neutrino::api::ApiConfig;
use neutrino::plugins::Limits;
use neutrino::plugins::registry::DriversConfig;
use neutrino_tests::api::{Db, TestApi, fresh_postgres_database};
use neutrino_tests::{component, for_both_databases};
use serde_json::{Value, json};

use crate::binding::{create, network_with_subnet, ovs_node};

async fn show_port(api: &TestApi, id: &str) -> Value {
    let r = api
        .call(Method::GET, &format!("/v2.0/ports/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["port"].clone()
}

for_both_databases!(a_binding_bumps_the_port_s_revision, |db: Db| async move {
    let api = TestApi::new(db).await;
    ovs_node(&api, "node-1").await;
    ovs_node(&api, "node-2").await;
    let network = network_with_subnet(&api, "10.93.0.0/24").await;
    let unbound = create(&api, "p1", "port", json!({"network_id": network})).await;
    assert_eq!(unbound["revision_number"], 1);
    let port = create(
        &api,
        "p1",
        "port",
        json!({"network_id": network, "binding:host_id": "node-1"}),
    )
    .await;
    assert_eq!(port["binding:vif_type"], "ovs", "{port}");
    // Written (1), then its binding written (2).
    assert_eq!(port["revision_number"], 2, "{port}");
    let id = port["id"].as_str().unwrap();
    assert_eq!(show_port(&api, id).await["revision_number"], 2);
    // Moved: the update (3), then the new binding (4).
    let r = api
        .call(
            Method::PUT,
            &format!("/v2.0/ports/{id}"),
            Some(json!({"port": {"binding:host_id": "node-2"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["port"]["binding:vif_type"], "ovs");
    assert_eq!(r.body["port"]["revision_number"], 4, "{}", r.body);
    let shown = show_port(&api, id).await;
    assert_eq!(shown["revision_number"], 4);
    assert_eq!(shown["updated_at"], r.body["port"]["updated_at"]);
});

/// A driver that spins to its deadline before ovs-hybrid binds: the subnet's DHCP port takes
/// that long to bind.
fn slow_drivers(deadline: Duration) -> impl Fn(&mut ApiConfig) {
    move |c: &mut ApiConfig| {
        c.drivers = DriversConfig {
            mechanism_drivers: vec!["misbehaving-spin".into(), "ovs-hybrid".into()],
            plugin_dir: component("misbehaving-good").parent().map(Into::into),
            limits: Limits {
                deadline,
                fuel: 1 << 40,
                ..Limits::default()
            },
            ..DriversConfig::default()
        };
    }
}

// SQLite has one writer: a DHCP port bound inside the subnet's write transaction would hold
// every other write for the slow driver's deadline.
#[tokio::test]
async fn a_subnet_s_dhcp_port_is_bound_after_its_commit() {
    let deadline = Duration::from_millis(1500);
    let api = TestApi::with(Db::Sqlite, slow_drivers(deadline)).await;
    ovs_node(&api, "node-d").await;
    let r = api
        .report(
            json!({"agent_type": "DHCP agent", "binary": "neutron-dhcp-agent", "host": "node-d",
            "topic": "dhcp_agent", "configurations": {"dhcp_driver": "dnsmasq", "networks": 0}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let network = create(&api, "p1", "network", json!({"name": "n"})).await;
    let network = network["id"].as_str().unwrap();
    let subnet = create(
        &api,
        "p1",
        "subnet",
        json!({"network_id": network, "cidr": "10.94.0.0/24", "ip_version": 4}),
    );
    let other = async {
        // Inside the slow driver's call by now.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        create(&api, "p2", "network", json!({"name": "other"})).await;
        started.elapsed()
    };
    let started = Instant::now();
    let (_, other_took) = tokio::join!(subnet, other);
    assert!(
        started.elapsed() >= deadline,
        "the slow driver was not asked"
    );
    assert!(
        other_took < deadline / 3,
        "another project's write waited {other_took:?} for the DHCP port's binding"
    );
    let r = api
        .call(
            Method::GET,
            &format!("/v2.0/ports?network_id={network}&device_owner=network:dhcp"),
            None,
        )
        .await;
    let ports = r.body["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "{}", r.body);
    assert_eq!(ports[0]["binding:host_id"], "node-d");
    assert_eq!(ports[0]["binding:vif_type"], "ovs", "{}", ports[0]);
    assert_eq!(ports[0]["revision_number"], 2, "{}", ports[0]);
}

for_both_databases!(
    a_port_left_unbound_by_a_dead_server_is_bound_at_the_next_start,
    |db: Db| async move {
        let dir = tempfile::tempdir().unwrap();
        let database = match db {
            Db::Sqlite => format!("sqlite://{}", dir.path().join("crash.db").display()),
            Db::Postgres => fresh_postgres_database().await,
        };
        let first = TestApi::at(database.clone()).await;
        ovs_node(&first, "node-r").await;
        first.state.heartbeats.flush().await.unwrap();
        let network = network_with_subnet(&first, "10.95.0.0/24").await;
        let port = create(&first, "p1", "port", json!({"network_id": network})).await;
        let id = port["id"].as_str().unwrap();
        // What a server killed between a port's commit and its binding leaves: the port
        // written with its host, unbound (as `port_binding::defer` writes it).
        let store = &first.state.store;
        let mut tx = store.begin_write().await.unwrap();
        let mut row = neutrino::store::ports::get(&mut tx, id)
            .await
            .unwrap()
            .unwrap();
        row.binding_host = "node-r".into();
        row.revision_number += 1;
        neutrino::store::ports::update(&mut tx, &row).await.unwrap();
        neutrino::store::commit(tx).await.unwrap();
        let unbound = show_port(&first, id).await;
        assert_eq!(unbound["binding:vif_type"], "unbound");
        drop(first);

        let second = TestApi::at(database).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            let port = show_port(&second, id).await;
            if port["binding:vif_type"] != "unbound" || Instant::now() > deadline {
                break port;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(port["binding:host_id"], "node-r");
        assert_eq!(port["binding:vif_type"], "ovs", "{port}");
        assert_eq!(port["revision_number"], 3, "{port}");
    }
);

/// A port bound by another server's pending sweep while its own request was deciding its
/// binding: the request keeps that binding instead of deciding again (one revision, not two).
#[tokio::test]
async fn a_binding_made_meanwhile_by_another_server_stands() {
    let deadline = Duration::from_millis(1500);
    let api = TestApi::with(Db::Sqlite, slow_drivers(deadline)).await;
    ovs_node(&api, "node-s").await;
    let network = network_with_subnet(&api, "10.96.0.0/24").await;
    let created = create(
        &api,
        "p1",
        "port",
        json!({"network_id": network, "binding:host_id": "node-s"}),
    );
    let elsewhere = async {
        // The port is written and its request is in the slow driver's call by now.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let store = &api.state.store;
        let mut tx = store.begin_write().await.unwrap();
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM ports WHERE binding_host = 'node-s'")
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        assert_eq!(ids.len(), 1);
        let mut row = neutrino::store::ports::get(&mut tx, &ids[0])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.binding_vif_type, "unbound",
            "the request has not bound it yet"
        );
        // What the other server's sweep writes.
        row.binding_vif_type = "ovs".into();
        row.revision_number += 1;
        neutrino::store::ports::update(&mut tx, &row).await.unwrap();
        neutrino::store::commit(tx).await.unwrap();
    };
    let (port, ()) = tokio::join!(created, elsewhere);
    let shown = show_port(&api, port["id"].as_str().unwrap()).await;
    assert_eq!(shown["binding:vif_type"], "ovs", "{shown}");
    assert_eq!(shown["revision_number"], 2, "{shown}");
}
