//! Bulk creates too big for one short transaction are written in slices (`core::bulk`), other
//! requests' writes going between: still all or nothing. A bulk whose last item fails leaves
//! nothing of what its earlier slices made; a bulk cut short by a killed server (its journal
//! left behind) is undone by the sweep; a whole bulk leaves no journal.

use axum::http::{Method, StatusCode};
use neutrino::core::bulk;
use neutrino_tests::api::{Db, TestApi};
use neutrino_tests::for_both_databases;
use serde_json::json;

/// Enough networks for several slices on any machine (a slice writes for 0.5 ms).
const NETWORKS: usize = 2_000;
/// Enough ports for several slices (`bulk::PORT_SLICE` a slice).
const PORTS: usize = 5 * bulk::PORT_SLICE + 1;

async fn count(api: &TestApi, path: &str, collection: &str) -> usize {
    let r = api.call(Method::GET, path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body[collection].as_array().unwrap().len()
}

async fn journal(api: &TestApi) -> i64 {
    let mut conn = api.state.store.read_conn().await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM bulk_journal")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

for_both_databases!(
    a_sliced_network_bulk_is_all_or_nothing,
    |db: Db| async move {
        let api = TestApi::new(db).await;
        api.unlimited_quotas().await;
        let r = api
            .call(
                Method::POST,
                "/v2.0/networks",
                Some(json!({"networks": vec![json!({"name": "whole"}); NETWORKS]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["networks"].as_array().unwrap().len(), NETWORKS);
        assert_eq!(
            count(&api, "/v2.0/networks?name=whole&fields=id", "networks").await,
            NETWORKS
        );
        assert_eq!(
            journal(&api).await,
            0,
            "a finished bulk forgets its journal"
        );

        // The last network asks for a VLAN already taken: found in the last slice.
        let taken = json!({"provider:network_type": "vlan", "provider:physical_network": "physnet1",
        "provider:segmentation_id": 42});
        let r = api
            .call(
                Method::POST,
                "/v2.0/networks",
                Some(json!({"network": taken})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let mut bodies = vec![json!({"name": "doomed"}); NETWORKS];
        bodies.push(taken);
        let r = api
            .call(
                Method::POST,
                "/v2.0/networks",
                Some(json!({"networks": bodies})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert_eq!(r.body["NeutronError"]["type"], "VlanIdInUse", "{}", r.body);
        assert_eq!(
            count(&api, "/v2.0/networks?name=doomed&fields=id", "networks").await,
            0
        );
        assert_eq!(journal(&api).await, 0);
    }
);

for_both_databases!(a_sliced_port_bulk_is_all_or_nothing, |db: Db| async move {
    let api = TestApi::new(db).await;
    api.unlimited_quotas().await;
    let net = api
        .call(Method::POST, "/v2.0/networks", Some(json!({"network": {}})))
        .await
        .body["network"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let subnet = api
        .call(
            Method::POST,
            "/v2.0/subnets",
            Some(
                json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.9.0.0/16",
                "enable_dhcp": false}}),
            ),
        )
        .await
        .body["subnet"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let port = |name: &str| json!({"network_id": net, "name": name});
    let r = api
        .call(
            Method::POST,
            "/v2.0/ports",
            Some(json!({"ports": vec![port("whole"); PORTS]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        count(&api, "/v2.0/ports?name=whole&fields=id", "ports").await,
        PORTS
    );
    assert_eq!(journal(&api).await, 0);

    // The last port asks for an address the first one of this bulk took.
    let first = r.body["ports"][0]["fixed_ips"][0]["ip_address"].clone();
    let mut bodies = vec![port("doomed"); PORTS];
    bodies.push(json!({"network_id": net, "name": "doomed",
        "fixed_ips": [{"subnet_id": subnet, "ip_address": first}]}));
    let r = api
        .call(Method::POST, "/v2.0/ports", Some(json!({"ports": bodies})))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(
        r.body["NeutronError"]["type"], "IpAddressAlreadyAllocated",
        "{}",
        r.body
    );
    assert_eq!(
        count(&api, "/v2.0/ports?name=doomed&fields=id", "ports").await,
        0
    );
    assert_eq!(journal(&api).await, 0);
});

for_both_databases!(
    a_bulk_left_unfinished_is_undone_by_the_sweep,
    |db: Db| async move {
        let api = TestApi::new(db).await;
        let r = api
            .call(
                Method::POST,
                "/v2.0/networks",
                Some(json!({"networks": [{"name": "left"}, {"name": "left"}, {"name": "left"}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let ids: Vec<String> = r.body["networks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_string())
            .collect();
        // Someone put a port on one of them meanwhile: that one cannot go yet.
        let port = api
            .call(
                Method::POST,
                "/v2.0/ports",
                Some(json!({"port": {"network_id": ids[2]}})),
            )
            .await;
        assert_eq!(port.status, StatusCode::CREATED, "{}", port.body);
        // What a server killed between two slices leaves: the first slices' items journaled.
        {
            let mut conn = api.state.store.write_conn().await.unwrap();
            neutrino::store::bulk_journal::record(&mut conn, "killed-bulk", "networks", &ids)
                .await
                .unwrap();
        }
        // Recorded now: not yet abandoned for the periodic sweep.
        assert_eq!(bulk::sweep(&api.state.services).await.unwrap(), 0);
        assert_eq!(count(&api, "/v2.0/networks?name=left", "networks").await, 3);
        // As the sweep sees them once they are old enough.
        let later = "9999-12-31T00:00:00Z";
        assert_eq!(
            bulk::sweep_before(&api.state.services, later)
                .await
                .unwrap(),
            3
        );
        assert_eq!(count(&api, "/v2.0/networks?name=left", "networks").await, 1);
        assert_eq!(
            journal(&api).await,
            1,
            "the network in use waits for the next sweep"
        );
        let path = format!("/v2.0/ports/{}", port.body["port"]["id"].as_str().unwrap());
        assert_eq!(
            api.call(Method::DELETE, &path, None).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            bulk::sweep_before(&api.state.services, later)
                .await
                .unwrap(),
            1
        );
        assert_eq!(count(&api, "/v2.0/networks?name=left", "networks").await, 0);
        assert_eq!(journal(&api).await, 0);
    }
);
