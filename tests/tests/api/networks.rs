//! `/`, `/v2.0/`, extensions and `/v2.0/networks` against the statuses and error types a real
//! Neutron gave (shared/reference/neutron-transcript), on SQLite and PostgreSQL.

use axum::http::{Method, StatusCode};
use neutrino_tests::api::TestApi;
use neutrino_tests::on_both_databases;
use serde_json::json;

async fn create(api: &TestApi, body: serde_json::Value) -> serde_json::Value {
    let r = api
        .call(
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": body})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["network"].clone()
}

on_both_databases!(discovery, |api: TestApi| async move {
    let r = api.call(Method::GET, "/", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["versions"][0]["id"], "v2.0");
    assert_eq!(
        r.body["versions"][0]["links"][0]["href"],
        "http://neutrino.test:9696/v2.0/"
    );
    assert_eq!(
        api.call(Method::POST, "/", None).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let r = api.call(Method::GET, "/v2.0/", None).await;
    assert_eq!(r.body["resources"][0]["collection"], "networks");
    let r = api.call(Method::GET, "/v2.0", None).await;
    assert_eq!(
        (r.status, r.error_type()),
        (StatusCode::NOT_FOUND, "HTTPNotFound")
    );
    let list = api.call(Method::GET, "/v2.0/extensions", None).await.body;
    for e in list["extensions"].as_array().unwrap() {
        let one = api
            .call(
                Method::GET,
                &format!("/v2.0/extensions/{}", e["alias"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(&one.body["extension"], e, "show equals the list entry");
    }
    // transcript seq 5
    assert_eq!(
        api.call(Method::GET, "/v2.0/extensions/router", None)
            .await
            .body,
        json!({"extension": {"name": "Neutron L3 Router", "alias": "router", "description": "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway.", "updated": "2012-07-20T10:00:00-00:00", "links": []}})
    );
    assert_eq!(
        api.call(Method::GET, "/v2.0/extensions/dvr", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call(Method::GET, "/v2.0/widgets", None)
            .await
            .error_type(),
        "HTTPNotFound"
    );
});

on_both_databases!(create_show_update_delete, |api: TestApi| async move {
    let n = create(&api, json!({"name": "net1"})).await;
    assert_eq!(n["status"], "ACTIVE");
    assert_eq!(n["admin_state_up"], true);
    assert_eq!(n["tenant_id"], "admin-project");
    assert_eq!(n["project_id"], "admin-project");
    assert_eq!(n["provider:network_type"], "vxlan");
    assert_eq!(n["mtu"], 1450);
    assert_eq!(n["revision_number"], 1);
    let id = n["id"].as_str().unwrap();
    let shown = api
        .call(Method::GET, &format!("/v2.0/networks/{id}"), None)
        .await;
    assert_eq!(shown.body["network"], n);
    let json_suffix = api
        .call(Method::GET, &format!("/v2.0/networks/{id}.json"), None)
        .await;
    assert_eq!(json_suffix.body["network"]["id"], n["id"]);
    let fields = api
        .call(
            Method::GET,
            &format!("/v2.0/networks/{id}?fields=id&fields=name"),
            None,
        )
        .await;
    assert_eq!(fields.body["network"], json!({"id": id, "name": "net1"}));
    let updated = api
        .call(
            Method::PUT,
            &format!("/v2.0/networks/{id}"),
            Some(json!({"network": {"name": "net1-renamed", "mtu": 1280}})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["network"]["name"], "net1-renamed");
    assert_eq!(updated.body["network"]["mtu"], 1280);
    assert_eq!(updated.body["network"]["revision_number"], 2);
    let ro = api
        .call(
            Method::PUT,
            &format!("/v2.0/networks/{id}"),
            Some(json!({"network": {"status": "DOWN"}})),
        )
        .await;
    assert_eq!(
        (ro.status, ro.error_message()),
        (
            StatusCode::BAD_REQUEST,
            "Cannot update read-only attribute status"
        )
    );
    assert_eq!(
        api.call(Method::POST, &format!("/v2.0/networks/{id}"), None)
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        api.call(Method::DELETE, &format!("/v2.0/networks/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let gone = api
        .call(Method::GET, &format!("/v2.0/networks/{id}"), None)
        .await;
    assert_eq!(
        (gone.status, gone.error_type()),
        (StatusCode::NOT_FOUND, "NetworkNotFound")
    );
    assert_eq!(
        gone.error_message(),
        format!("Network {id} could not be found.")
    );
    let r = api.call(Method::DELETE, "/v2.0/networks", None).await;
    assert_eq!(
        (r.status, r.error_message()),
        (StatusCode::NOT_FOUND, "Network None could not be found.")
    );
    assert_eq!(
        api.call(Method::GET, "/v2.0/networks/not-a-uuid", None)
            .await
            .error_type(),
        "NetworkNotFound"
    );
});

on_both_databases!(bad_input_gets_neutron_errors, |api: TestApi| async move {
    let cases = [
        (
            json!({"network": {"name": "x", "foo": 1}}),
            "HTTPBadRequest",
            "Unrecognized attribute(s) 'foo'",
        ),
        (
            json!({}),
            "HTTPBadRequest",
            "Unable to find 'network' in request body",
        ),
        (
            json!({"netwerk": {}}),
            "HTTPBadRequest",
            "Unable to find 'network' in request body",
        ),
        (
            json!({"network": {"admin_state_up": "notbool"}}),
            "InvalidInput",
            "Invalid input for operation: 'notbool' cannot be converted to boolean.",
        ),
        (
            json!({"network": {"project_id": "a", "tenant_id": "b"}}),
            "HTTPBadRequest",
            "'project_id' and 'tenant_id' do not match",
        ),
        (
            json!({"network": {"provider:network_type": "gre"}}),
            "InvalidInput",
            "Invalid input for operation: network_type value 'gre' not supported",
        ),
        (
            json!({"network": {"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 5000}}),
            "InvalidInput",
            "Invalid input for operation: segmentation_id out of range (1 through 4094).",
        ),
    ];
    for (body, kind, message) in cases {
        let r = api
            .call(Method::POST, "/v2.0/networks", Some(body.clone()))
            .await;
        assert_eq!(
            (r.status, r.error_type(), r.error_message()),
            (StatusCode::BAD_REQUEST, kind, message),
            "{body}"
        );
        assert_eq!(r.body["NeutronError"]["detail"], "");
    }
    let r = api
        .raw(None, Method::POST, "/v2.0/networks", b"{not json".to_vec())
        .await;
    assert_eq!(
        (r.status, r.error_message()),
        (StatusCode::BAD_REQUEST, "Body contains invalid data")
    );
    let long = "x".repeat(256);
    let r = api
        .call(
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {"name": long}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.error_message().starts_with("Invalid input for name."),
        "{}",
        r.error_message()
    );
    // Nothing of the failed requests was written.
    let all = api.call(Method::GET, "/v2.0/networks", None).await;
    assert_eq!(all.body["networks"], json!([]));
});

on_both_databases!(provider_segments_are_unique, |api: TestApi| async move {
    let vlan = json!({"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 150});
    let n = create(&api, vlan.clone()).await;
    assert_eq!(
        (n["provider:segmentation_id"].clone(), n["mtu"].clone()),
        (json!(150), json!(1500))
    );
    let r = api
        .call(
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": vlan})),
        )
        .await;
    assert_eq!(
        (r.status, r.error_type()),
        (StatusCode::CONFLICT, "VlanIdInUse")
    );
    assert_eq!(
        r.error_message(),
        "Unable to create the network. The VLAN 150 on physical network physnet1 is in use."
    );
    let flat = json!({"provider:network_type": "flat", "provider:physical_network": "physnet1", "router:external": true});
    let f = create(&api, flat.clone()).await;
    assert_eq!(
        (
            f["provider:segmentation_id"].clone(),
            f["router:external"].clone()
        ),
        (json!(null), json!(true))
    );
    let r = api
        .call(
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": flat})),
        )
        .await;
    assert_eq!(
        (r.status, r.error_type()),
        (StatusCode::CONFLICT, "FlatNetworkInUse")
    );
    // Tenant networks get the lowest free VNIs, and a freed VNI is reused.
    let a = create(&api, json!({})).await;
    let b = create(&api, json!({})).await;
    assert_eq!(
        (
            a["provider:segmentation_id"].clone(),
            b["provider:segmentation_id"].clone()
        ),
        (json!(1), json!(2))
    );
    let a_id = a["id"].as_str().unwrap();
    assert_eq!(
        api.call(Method::DELETE, &format!("/v2.0/networks/{a_id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(create(&api, json!({})).await["provider:segmentation_id"], 1);
});

on_both_databases!(bulk_create_is_all_or_nothing, |api: TestApi| async move {
    let ok = api
        .call(
            Method::POST,
            "/v2.0/networks",
            Some(json!({"networks": [{"name": "a"}, {"name": "b"}]})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    assert_eq!(ok.body["networks"].as_array().unwrap().len(), 2);
    let vlan = json!({"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 7});
    let bad = api
        .call(
            Method::POST,
            "/v2.0/networks",
            Some(json!({"networks": [{"name": "c"}, vlan.clone(), vlan]})),
        )
        .await;
    assert_eq!(
        (bad.status, bad.error_type()),
        (StatusCode::CONFLICT, "VlanIdInUse")
    );
    let names: Vec<String> = api
        .call(
            Method::GET,
            "/v2.0/networks?fields=name&sort_key=name&sort_dir=asc",
            None,
        )
        .await
        .body["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["a", "b"],
        "network c was rolled back with the failed request"
    );
});

on_both_databases!(projects_are_isolated, |api: TestApi| async move {
    let alice = Some(("alice", "member"));
    let bob = Some(("bob", "member"));
    let r = api
        .call_as(
            alice,
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {"name": "a-net"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(
        r.body["network"].get("provider:network_type").is_none(),
        "provider attributes are admin-only"
    );
    let id = r.body["network"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        api.call_as(bob, Method::GET, &format!("/v2.0/networks/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call_as(bob, Method::GET, "/v2.0/networks", None)
            .await
            .body["networks"],
        json!([])
    );
    let r = api
        .call_as(
            bob,
            Method::PUT,
            &format!("/v2.0/networks/{id}"),
            Some(json!({"network": {"name": "x"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.call_as(bob, Method::DELETE, &format!("/v2.0/networks/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = api
        .call_as(
            alice,
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {"shared": true}})),
        )
        .await;
    assert_eq!(
        (r.status, r.error_type()),
        (StatusCode::FORBIDDEN, "PolicyNotAuthorized")
    );
    let reader = Some(("alice", "reader"));
    assert_eq!(
        api.call_as(reader, Method::GET, &format!("/v2.0/networks/{id}"), None)
            .await
            .status,
        StatusCode::OK
    );
    let r = api
        .call_as(
            reader,
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api
        .call_as(
            reader,
            Method::DELETE,
            &format!("/v2.0/networks/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The admin sees every project's networks.
    assert_eq!(
        api.call(Method::GET, "/v2.0/networks", None).await.body["networks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
});

/// Two servers on one database create tenant networks at the same time: every network gets
/// its own VNI and no request fails.
async fn concurrent_allocation(db: neutrino_tests::api::Db) {
    let (a, b) = TestApi::two(db).await;
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let api = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            api.call(
                Method::POST,
                "/v2.0/networks",
                Some(json!({"network": {"name": format!("n{i}")}})),
            )
            .await
        }));
    }
    let mut vnis = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        vnis.push(
            r.body["network"]["provider:segmentation_id"]
                .as_i64()
                .unwrap(),
        );
    }
    vnis.sort();
    assert_eq!(vnis, (1..=40).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_allocation_sqlite() {
    concurrent_allocation(neutrino_tests::api::Db::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_allocation_postgres() {
    concurrent_allocation(neutrino_tests::api::Db::Postgres).await
}

on_both_databases!(list_queries_over_http, |api: TestApi| async move {
    for name in ["test1", "abc1", "test10", "123test", "test1"] {
        create(&api, json!({"name": name})).await;
    }
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["networks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_string())
            .collect()
    };
    let sorted = api
        .call(
            Method::GET,
            "/v2.0/networks?sort_key=name&sort_dir=asc",
            None,
        )
        .await
        .body;
    assert_eq!(
        names(&sorted),
        ["123test", "abc1", "test1", "test1", "test10"]
    );
    let desc = api
        .call(
            Method::GET,
            "/v2.0/networks?sort_key=name&sort_dir=desc",
            None,
        )
        .await
        .body;
    assert_eq!(
        names(&desc),
        ["test10", "test1", "test1", "abc1", "123test"]
    );
    // Walk `next` links one item at a time: the same order, ending on an empty page.
    let mut path = "/v2.0/networks?sort_key=name&sort_dir=asc&limit=1".to_string();
    let mut walked = Vec::new();
    loop {
        let page = api.call(Method::GET, &path, None).await.body;
        walked.extend(names(&page));
        let links = page["networks_links"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        match links.iter().find(|l| l["rel"] == "next") {
            Some(next) => {
                let href = next["href"].as_str().unwrap();
                assert!(
                    href.starts_with("http://neutrino.test:9696/v2.0/networks?"),
                    "{href}"
                );
                path = href
                    .trim_start_matches("http://neutrino.test:9696")
                    .to_string();
            }
            None => {
                assert!(names(&page).is_empty(), "the last page is empty");
                assert!(links.iter().any(|l| l["rel"] == "previous"));
                break;
            }
        }
    }
    assert_eq!(walked, names(&sorted));
    let filtered = api
        .call(Method::GET, "/v2.0/networks?name=test1&name=abc1", None)
        .await
        .body;
    assert_eq!(filtered["networks"].as_array().unwrap().len(), 3);
    let r = api.call(Method::GET, "/v2.0/networks?foo=bar", None).await;
    assert_eq!(
        (r.status, r.error_message()),
        (
            StatusCode::BAD_REQUEST,
            "['foo'] is invalid attribute for filtering"
        )
    );
    let r = api
        .call(Method::GET, "/v2.0/networks?sort_key=nonexistent", None)
        .await;
    assert_eq!(
        r.error_message(),
        "The number of sort_keys and sort_dirs must be same"
    );
    let only_tenant = api
        .call(Method::GET, "/v2.0/networks?fields=tenant_id&limit=1", None)
        .await
        .body;
    assert_eq!(
        only_tenant["networks"][0],
        json!({"tenant_id": "admin-project"})
    );
});

// Tenant VNIs come from the pool's free ranges (issue 12): an id an admin requested is skipped,
// the range's end answers NoNetworkAvailable, and released ids come back lowest first.
async fn tenant_ids_from_free_ranges(db: neutrino_tests::api::Db) {
    let api = TestApi::with(db, |c| c.vni_range = (1, 5)).await;
    let vni = |n: &serde_json::Value| n["provider:segmentation_id"].as_i64().unwrap();
    let a = create(&api, json!({})).await;
    let b = create(&api, json!({})).await;
    assert_eq!((vni(&a), vni(&b)), (1, 2));
    let requested = create(
        &api,
        json!({"provider:network_type": "vxlan", "provider:segmentation_id": 3}),
    )
    .await;
    let c = create(&api, json!({})).await;
    let d = create(&api, json!({})).await;
    assert_eq!((vni(&c), vni(&d)), (4, 5));
    let full = api
        .call(Method::POST, "/v2.0/networks", Some(json!({"network": {}})))
        .await;
    assert_eq!(
        (full.status, full.error_type()),
        (StatusCode::SERVICE_UNAVAILABLE, "NoNetworkAvailable")
    );
    for gone in [&requested, &b] {
        let id = gone["id"].as_str().unwrap();
        let r = api
            .call(Method::DELETE, &format!("/v2.0/networks/{id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    assert_eq!(vni(&create(&api, json!({})).await), 2);
    assert_eq!(vni(&create(&api, json!({})).await), 3);
    let full = api
        .call(Method::POST, "/v2.0/networks", Some(json!({"network": {}})))
        .await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    // A failed bulk create gives its ids back too: one id left, two asked.
    let id = c["id"].as_str().unwrap();
    api.call(Method::DELETE, &format!("/v2.0/networks/{id}"), None)
        .await;
    let bulk = api
        .call(
            Method::POST,
            "/v2.0/networks",
            Some(json!({"networks": [{}, {}]})),
        )
        .await;
    assert_eq!(bulk.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(vni(&create(&api, json!({})).await), 4);
}

#[tokio::test]
async fn tenant_ids_from_free_ranges_sqlite() {
    tenant_ids_from_free_ranges(neutrino_tests::api::Db::Sqlite).await
}

#[tokio::test]
async fn tenant_ids_from_free_ranges_postgres() {
    tenant_ids_from_free_ranges(neutrino_tests::api::Db::Postgres).await
}

// Issue 14: a network may have a small MTU until it gets a subnet of an IP version that needs
// more (IPv4 68, IPv6 1280); the subnet create (or the MTU update) is what is refused.
on_both_databases!(mtu_is_checked_against_subnets, |api: TestApi| async move {
    let small = create(&api, json!({"name": "small", "mtu": 60})).await;
    assert_eq!(small["mtu"], 60);
    let id = small["id"].as_str().unwrap();
    let subnet = |version: u8, cidr: &str| json!({"subnet": {"network_id": id, "ip_version": version, "cidr": cidr}});
    let r = api
        .call(
            Method::POST,
            "/v2.0/subnets",
            Some(subnet(4, "10.60.0.0/24")),
        )
        .await;
    assert_eq!(
        (r.status, r.error_type()),
        (StatusCode::BAD_REQUEST, "InvalidInput"),
        "{}",
        r.body
    );
    let r = api
        .call(
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {"mtu": -1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // Raised to 1280: IPv4 and IPv6 subnets fit; lowering it below either is refused.
    let path = format!("/v2.0/networks/{id}");
    let r = api
        .call(Method::PUT, &path, Some(json!({"network": {"mtu": 1280}})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for (version, cidr) in [(4, "10.60.0.0/24"), (6, "fd60::/64")] {
        let r = api
            .call(Method::POST, "/v2.0/subnets", Some(subnet(version, cidr)))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    for mtu in [1279, 67] {
        let r = api
            .call(Method::PUT, &path, Some(json!({"network": {"mtu": mtu}})))
            .await;
        assert_eq!(
            (r.status, r.error_type()),
            (StatusCode::BAD_REQUEST, "InvalidInput"),
            "{mtu}: {}",
            r.body
        );
    }
});

// Issue 14: the multi-provider `segments` attribute as Terraform's provider sends it (zero
// values meaning "not given"); one segment is served, several are refused, and `segments`
// beside provider attributes is Neutron's SegmentsSetInConjunctionWithProviders.
on_both_databases!(networks_take_one_segment, |api: TestApi| async move {
    let n = create(
        &api,
        json!({"name": "tf", "segments": [{"provider:network_type": "vxlan",
            "provider:physical_network": "", "provider:segmentation_id": 0}]}),
    )
    .await;
    assert_eq!(n["provider:network_type"], "vxlan");
    assert!(n["provider:segmentation_id"].as_i64().unwrap() > 0, "{n}");
    let n = create(
        &api,
        json!({"segments": [{"provider:network_type": "vxlan",
            "provider:segmentation_id": 4242}]}),
    )
    .await;
    assert_eq!(n["provider:segmentation_id"], 4242);
    for (body, kind) in [
        (
            json!({"segments": [{"provider:network_type": "vxlan"}],
                "provider:network_type": "vxlan"}),
            "SegmentsSetInConjunctionWithProviders",
        ),
        (
            json!({"segments": [{"provider:network_type": "vxlan"},
                {"provider:network_type": "vxlan"}]}),
            "InvalidInput",
        ),
        (
            json!({"segments": [{"provider:network_type": "vxlan", "mtu": 1}]}),
            "InvalidInput",
        ),
    ] {
        let r = api
            .call(
                Method::POST,
                "/v2.0/networks",
                Some(json!({"network": body})),
            )
            .await;
        assert_eq!(
            (r.status, r.error_type()),
            (StatusCode::BAD_REQUEST, kind),
            "{body}: {}",
            r.body
        );
    }
});

// Issue 14 (`subnet-external-network`): the subnets of an external network are visible to
// every project, with `router:external`; those of a private network are not.
on_both_databases!(
    external_subnets_are_visible_to_all,
    |api: TestApi| async move {
        let ext = create(&api, json!({"name": "public", "router:external": true})).await;
        let private = create(&api, json!({"name": "private"})).await;
        for (net, cidr) in [(&ext, "203.0.113.0/24"), (&private, "10.80.0.0/24")] {
            let r = api
                .call(
                    Method::POST,
                    "/v2.0/subnets",
                    Some(
                        json!({"subnet": {"network_id": net["id"], "ip_version": 4, "cidr": cidr}}),
                    ),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        }
        let other = Some(("someone-else", "member"));
        let r = api.call_as(other, Method::GET, "/v2.0/subnets", None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let seen = r.body["subnets"].as_array().unwrap();
        assert_eq!(seen.len(), 1, "{}", r.body);
        assert_eq!(seen[0]["network_id"], ext["id"]);
        assert_eq!(seen[0]["router:external"], true);
        let r = api
            .call(
                Method::GET,
                "/v2.0/extensions/subnet-external-network",
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
);
