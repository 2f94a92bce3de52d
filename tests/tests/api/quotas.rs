//! Quotas (Neutron's `quotas` and `quota_details` extensions), on SQLite and PostgreSQL: the
//! API's shapes and status codes, who may read and write them, enforcement on network, subnet
//! and port creates (bulk ones whole), server boots, and two servers on one database never
//! letting a project past its limit.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use neutrino_tests::api::{Db, Reply, TestApi};
use neutrino_tests::{for_both_databases, on_both_databases};
use serde_json::{Value, json};

const ALICE: Option<(&str, &str)> = Some(("alice-project", "member"));
const BOB: Option<(&str, &str)> = Some(("bob-project", "member"));

const DEFAULTS: &[(&str, i64)] = &[
    ("network", 100),
    ("subnet", 100),
    ("subnetpool", -1),
    ("port", 500),
    ("router_route", 30),
    ("router", 10),
    ("floatingip", 50),
    ("security_group", 10),
    ("security_group_rule", 100),
];

fn default_quota() -> Value {
    Value::Object(
        DEFAULTS
            .iter()
            .map(|(r, l)| (r.to_string(), json!(l)))
            .collect(),
    )
}

async fn set(api: &TestApi, project: &str, quota: Value) -> Reply {
    api.call(
        Method::PUT,
        &format!("/v2.0/quotas/{project}"),
        Some(json!({ "quota": quota })),
    )
    .await
}

async fn create(api: &TestApi, who: Option<(&str, &str)>, collection: &str, body: Value) -> Reply {
    let resource = collection.trim_end_matches('s');
    api.call_as(
        who,
        Method::POST,
        &format!("/v2.0/{collection}"),
        Some(json!({ resource: body })),
    )
    .await
}

async fn bulk(
    api: &TestApi,
    who: Option<(&str, &str)>,
    collection: &str,
    items: Vec<Value>,
) -> Reply {
    api.call_as(
        who,
        Method::POST,
        &format!("/v2.0/{collection}"),
        Some(json!({ collection: items })),
    )
    .await
}

/// A network of `who`'s with a /24 subnet: its id.
async fn network_with_subnet(api: &TestApi, who: Option<(&str, &str)>, cidr: &str) -> String {
    let n = create(api, who, "networks", json!({"name": "q"})).await;
    assert_eq!(n.status, StatusCode::CREATED, "{}", n.body);
    let id = n.body["network"]["id"].as_str().unwrap().to_string();
    let s = create(
        api,
        who,
        "subnets",
        json!({"network_id": id, "ip_version": 4, "cidr": cidr}),
    )
    .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.body);
    id
}

fn assert_over_quota(r: &Reply, resource: &str) {
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.error_type(), "OverQuota");
    assert_eq!(
        r.error_message(),
        format!("Quota exceeded for resources: ['{resource}'].")
    );
}

async fn count(api: &TestApi, collection: &str, who: Option<(&str, &str)>) -> usize {
    let r = api
        .call_as(who, Method::GET, &format!("/v2.0/{collection}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    r.body[collection].as_array().unwrap().len()
}

on_both_databases!(shapes_and_status_codes, |api: TestApi| async move {
    // Defaults, for any project, and the extensions advertised.
    let r = api
        .call(Method::GET, "/v2.0/quotas/alice-project", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({ "quota": default_quota() }));
    let r = api
        .call(Method::GET, "/v2.0/quotas/alice-project/default", None)
        .await;
    assert_eq!(r.body, json!({ "quota": default_quota() }));
    let ext = api.call(Method::GET, "/v2.0/extensions", None).await;
    let aliases: Vec<&str> = ext.body["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["alias"].as_str().unwrap())
        .collect();
    assert!(aliases.contains(&"quotas") && aliases.contains(&"quota_details"));
    // Nothing set: an empty list, and a reset is 404.
    let r = api.call(Method::GET, "/v2.0/quotas", None).await;
    assert_eq!(r.body, json!({"quotas": []}));
    let r = api
        .call(Method::DELETE, "/v2.0/quotas/alice-project", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_type(), "TenantQuotaNotFound");
    assert_eq!(
        r.error_message(),
        "Quota for project alice-project could not be found."
    );

    // Update: answers every limit, the list shows the project.
    let r = set(&api, "alice-project", json!({"port": 20, "network": "7"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut expected = default_quota();
    expected["port"] = json!(20);
    expected["network"] = json!(7);
    assert_eq!(r.body, json!({ "quota": expected }));
    let r = api
        .call(Method::GET, "/v2.0/quotas/alice-project", None)
        .await;
    assert_eq!(r.body, json!({ "quota": expected }));
    let r = api.call(Method::GET, "/v2.0/quotas", None).await;
    let mut listed = expected.clone();
    listed["project_id"] = json!("alice-project");
    listed["tenant_id"] = json!("alice-project");
    assert_eq!(r.body, json!({ "quotas": [listed] }));
    // Unlimited is -1.
    let r = set(&api, "alice-project", json!({"subnet": -1})).await;
    assert_eq!(r.body["quota"]["subnet"], -1);

    // Bad values and keys: 400, nothing changed.
    for bad in [
        json!({"port": -2}),
        json!({"port": "many"}),
        json!({"port": 1.5}),
        json!({"port": true}),
        json!({"port": null}),
        json!({"port": 2_147_483_648_i64}),
        json!({"ports": 5}),
        json!({"port": 5, "volumes": 3}),
    ] {
        let r = set(&api, "alice-project", bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    let r = set(&api, "alice-project", json!({"port": -2})).await;
    assert_eq!(
        r.error_message(),
        "Invalid input for port. Reason: '-2' is too small - must be at least '-1'."
    );
    let r = set(&api, "alice-project", json!({"ports": 5})).await;
    assert_eq!(r.error_message(), "Unrecognized attribute(s) 'ports'");
    let r = api
        .call(
            Method::PUT,
            "/v2.0/quotas/alice-project",
            Some(json!({"port": 5})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = api
        .call(Method::GET, "/v2.0/quotas/alice-project", None)
        .await;
    assert_eq!(r.body["quota"]["port"], 20);

    // Details: limit, used, reserved; used counts the project's own resources.
    network_with_subnet(&api, ALICE, "10.1.0.0/24").await;
    let r = api
        .call(Method::GET, "/v2.0/quotas/alice-project/details", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["quota"]["network"],
        json!({"limit": 7, "used": 1, "reserved": 0})
    );
    assert_eq!(
        r.body["quota"]["subnet"],
        json!({"limit": -1, "used": 1, "reserved": 0})
    );
    assert_eq!(
        r.body["quota"]["port"],
        json!({"limit": 20, "used": 0, "reserved": 0})
    );
    assert_eq!(r.body["quota"].as_object().unwrap().len(), DEFAULTS.len());

    // A limit below what is used needs force.
    let r = set(&api, "alice-project", json!({"network": 0})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.error_message(),
        "Invalid input for operation: Quota limit 0 for network must be greater than or equal to already used 1."
    );
    let r = set(&api, "alice-project", json!({"network": 0, "force": true})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["quota"]["network"], 0);

    // POST is not supported; other methods 405.
    let r = api
        .call(Method::POST, "/v2.0/quotas", Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);
    let r = api
        .call(Method::POST, "/v2.0/quotas/alice-project", Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    // Reset: 204, then the defaults and an empty list again.
    let r = api
        .call(Method::DELETE, "/v2.0/quotas/alice-project", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api
        .call(Method::GET, "/v2.0/quotas/alice-project", None)
        .await;
    assert_eq!(r.body, json!({ "quota": default_quota() }));
    let r = api.call(Method::GET, "/v2.0/quotas", None).await;
    assert_eq!(r.body, json!({"quotas": []}));
    // The caller's own project.
    let r = api
        .call_as(ALICE, Method::GET, "/v2.0/quotas/project", None)
        .await;
    assert_eq!(r.body, json!({"project": {"project_id": "alice-project"}}));
});

on_both_databases!(members_see_only_their_own, |api: TestApi| async move {
    assert_eq!(
        set(&api, "bob-project", json!({"port": 3})).await.status,
        StatusCode::OK
    );
    // Own project: show, default, details.
    for path in [
        "/v2.0/quotas/alice-project",
        "/v2.0/quotas/alice-project/default",
        "/v2.0/quotas/alice-project/details",
    ] {
        let r = api.call_as(ALICE, Method::GET, path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }
    // Another's: 403, as Neutron.
    for path in [
        "/v2.0/quotas/bob-project",
        "/v2.0/quotas/bob-project/default",
    ] {
        let r = api.call_as(ALICE, Method::GET, path, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(r.error_message(), "rule:get_quota is disallowed by policy");
    }
    let r = api
        .call_as(ALICE, Method::GET, "/v2.0/quotas/bob-project/details", None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_type(), "AdminRequired");
    assert_eq!(
        r.error_message(),
        "User does not have admin privileges: Only admin is authorized to access quotas for another project."
    );
    let r = api.call_as(ALICE, Method::GET, "/v2.0/quotas", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Writes are the admin's, even on the member's own project.
    for (method, path, body) in [
        (
            Method::PUT,
            "/v2.0/quotas/alice-project",
            Some(json!({"quota": {"port": 1000}})),
        ),
        (
            Method::PUT,
            "/v2.0/quotas/bob-project",
            Some(json!({"quota": {"port": 1000}})),
        ),
        (Method::DELETE, "/v2.0/quotas/bob-project", None),
    ] {
        let r = api.call_as(ALICE, method.clone(), path, body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    let r = api
        .call_as(BOB, Method::GET, "/v2.0/quotas/bob-project", None)
        .await;
    assert_eq!(r.body["quota"]["port"], 3);
});

on_both_databases!(
    networks_and_subnets_are_enforced,
    |api: TestApi| async move {
        set(&api, "alice-project", json!({"network": 2, "subnet": 2})).await;
        let net = network_with_subnet(&api, ALICE, "10.0.0.0/24").await;
        // A bulk that would go over is refused whole.
        let r = bulk(
            &api,
            ALICE,
            "networks",
            vec![json!({"name": "a"}), json!({"name": "b"})],
        )
        .await;
        assert_over_quota(&r, "network");
        assert_eq!(count(&api, "networks", ALICE).await, 1);
        assert_eq!(
            create(&api, ALICE, "networks", json!({"name": "second"}))
                .await
                .status,
            StatusCode::CREATED
        );
        assert_over_quota(
            &create(&api, ALICE, "networks", json!({"name": "third"})).await,
            "network",
        );
        // Another project is not affected; nor is an admin creating for itself.
        assert_eq!(
            create(&api, BOB, "networks", json!({"name": "b"}))
                .await
                .status,
            StatusCode::CREATED
        );
        let subnet = |cidr: &str| json!({"network_id": net, "ip_version": 4, "cidr": cidr});
        let r = bulk(
            &api,
            ALICE,
            "subnets",
            vec![subnet("10.0.1.0/24"), subnet("10.0.2.0/24")],
        )
        .await;
        assert_over_quota(&r, "subnet");
        assert_eq!(count(&api, "subnets", ALICE).await, 1);
        assert_eq!(
            create(&api, ALICE, "subnets", subnet("10.0.1.0/24"))
                .await
                .status,
            StatusCode::CREATED
        );
        assert_over_quota(
            &create(&api, ALICE, "subnets", subnet("10.0.2.0/24")).await,
            "subnet",
        );
        // An admin creating for alice is held to alice's quota.
        let r = create(
            &api,
            None,
            "networks",
            json!({"name": "for-alice", "project_id": "alice-project"}),
        )
        .await;
        assert_over_quota(&r, "network");
        // Deleting frees room; raising the limit too.
        let r = api
            .call_as(ALICE, Method::GET, "/v2.0/networks?name=second", None)
            .await;
        let second = r.body["networks"][0]["id"].as_str().unwrap().to_string();
        let r = api
            .call_as(
                ALICE,
                Method::DELETE,
                &format!("/v2.0/networks/{second}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(
            create(&api, ALICE, "networks", json!({"name": "again"}))
                .await
                .status,
            StatusCode::CREATED
        );
        set(&api, "alice-project", json!({"network": -1})).await;
        let many: Vec<Value> = (0..5).map(|i| json!({"name": format!("n{i}")})).collect();
        assert_eq!(
            bulk(&api, ALICE, "networks", many).await.status,
            StatusCode::CREATED
        );
    }
);

on_both_databases!(ports_are_enforced, |api: TestApi| async move {
    let net = network_with_subnet(&api, ALICE, "10.0.0.0/24").await;
    set(&api, "alice-project", json!({"port": 3})).await;
    let port = || json!({"network_id": net});
    // A bulk over the limit writes nothing.
    let r = bulk(&api, ALICE, "ports", vec![port(), port(), port(), port()]).await;
    assert_over_quota(&r, "port");
    assert_eq!(count(&api, "ports", ALICE).await, 0);
    let r = bulk(&api, ALICE, "ports", vec![port(), port()]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Service ports (network:*) are neither counted nor refused.
    let r = create(
        &api,
        ALICE,
        "ports",
        json!({"network_id": net, "device_owner": "network:dhcp"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        create(&api, ALICE, "ports", port()).await.status,
        StatusCode::CREATED
    );
    assert_over_quota(&create(&api, ALICE, "ports", port()).await, "port");
    let r = api
        .call_as(
            ALICE,
            Method::GET,
            "/v2.0/quotas/alice-project/details",
            None,
        )
        .await;
    assert_eq!(
        r.body["quota"]["port"],
        json!({"limit": 3, "used": 3, "reserved": 0})
    );
    // Concurrent single creates (group-committed together by the port writer): only the
    // ones over the limit fail, each with OverQuota.
    set(&api, "alice-project", json!({"port": 13})).await;
    let api = Arc::new(api);
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let (api, net) = (api.clone(), net.clone());
        tasks.push(tokio::spawn(async move {
            create(&api, ALICE, "ports", json!({"network_id": net})).await
        }));
    }
    let mut made = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::CREATED => made += 1,
            _ => assert_over_quota(&r, "port"),
        }
    }
    assert_eq!(made, 10);
    assert_eq!(count(&api, "ports", ALICE).await, 14);
});

for_both_databases!(two_servers_never_exceed_a_quota, |db: Db| async move {
    const LIMIT: usize = 25;
    let (a, b) = TestApi::two(db).await;
    let net = network_with_subnet(&a, ALICE, "10.0.0.0/22").await;
    set(&a, "alice-project", json!({"port": LIMIT})).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = Vec::new();
    for i in 0..60 {
        let api = if i % 2 == 0 { a.clone() } else { b.clone() };
        let net = net.clone();
        tasks.push(tokio::spawn(async move {
            if i % 3 == 0 {
                // Bulks of three: all or nothing.
                let p = json!({"network_id": net});
                bulk(&api, ALICE, "ports", vec![p.clone(), p.clone(), p]).await
            } else {
                create(&api, ALICE, "ports", json!({"network_id": net})).await
            }
        }));
    }
    let mut made = 0;
    let mut refused = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::CREATED => {
                made += r
                    .body
                    .get("ports")
                    .map_or(1, |p| p.as_array().unwrap().len())
            }
            _ => {
                assert_over_quota(&r, "port");
                refused += 1;
            }
        }
    }
    assert!(refused > 0);
    let listed = count(&a, "ports", ALICE).await;
    assert_eq!(listed, made);
    assert!(made <= LIMIT, "{made} ports made with a quota of {LIMIT}");
    // Filled up to the limit but for less than a bulk's room.
    assert!(made + 3 > LIMIT, "{made}");
});

on_both_databases!(boots_are_enforced, |api: TestApi| async move {
    let r = api
        .report(
            json!({"agent_type": "Open vSwitch agent", "binary": "neutrino-agent",
            "host": "compute-1", "topic": "N/A", "start_flag": true,
            "configurations": {"bridge_mappings": {"physnet1": "br-ex"}, "tunnel_types": ["vxlan"],
                "tunneling_ip": "127.0.0.1", "integration_bridge": "br-int",
                "datapath_type": "netdev", "ovs_hybrid_plug": true}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let net = network_with_subnet(&api, ALICE, "10.0.0.0/24").await;
    set(&api, "alice-project", json!({"port": 1})).await;
    let boot = |name: &str| json!({"server": {"name": name, "networks": [{"uuid": net}]}});
    let first = api
        .call_as(ALICE, Method::POST, "/v2.1/servers", Some(boot("one")))
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert_eq!(count(&api, "ports", ALICE).await, 1);
    let second = api
        .call_as(ALICE, Method::POST, "/v2.1/servers", Some(boot("two")))
        .await;
    assert_eq!(second.status, StatusCode::FORBIDDEN, "{}", second.body);
    assert_eq!(
        second.body["forbidden"]["message"],
        "Maximum number of ports exceeded"
    );
    assert_eq!(count(&api, "ports", ALICE).await, 1);
});
