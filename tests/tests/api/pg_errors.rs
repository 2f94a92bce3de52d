//! PostgreSQL errors that must not reach users as 500s (issue 12, finding 8): NUL bytes in
//! bodies, path ids and filters answer alike on both backends; a network delete racing port
//! creates answers as Neutron does.

use axum::http::{Method, StatusCode};
use neutrino_tests::api::{Db, TestApi};
use neutrino_tests::on_both_databases;
use serde_json::{Value, json};

async fn created(api: &TestApi, path: &str, body: Value) -> Value {
    let r = api.call(Method::POST, path, Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.body);
    r.body
}

fn ids(body: &Value, collection: &str) -> Vec<String> {
    body[collection]
        .as_array()
        .unwrap_or_else(|| panic!("no {collection} in {body}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

// PostgreSQL text cannot hold U+0000: the same answers on both backends, never a 500.
on_both_databases!(nul_bytes, |api: TestApi| async move {
    let net = created(&api, "/v2.0/networks", json!({"network": {"name": "net1"}})).await;
    let net = net["network"]["id"].as_str().unwrap().to_string();
    let sub = created(
        &api,
        "/v2.0/subnets",
        json!({"subnet": {"network_id": net, "cidr": "10.0.0.0/24", "ip_version": 4}}),
    )
    .await;
    let sub = sub["subnet"]["id"].as_str().unwrap().to_string();
    let port = created(&api, "/v2.0/ports", json!({"port": {"network_id": net}})).await;
    let port = port["port"]["id"].as_str().unwrap().to_string();

    // Bodies: 400 InvalidInput naming the attribute.
    let bodies = [
        (
            Method::POST,
            "/v2.0/networks".to_string(),
            json!({"network": {"name": "a\u{0}b"}}),
        ),
        (
            Method::POST,
            "/v2.0/networks".to_string(),
            json!({"networks": [{"name": "ok"}, {"description": "\u{0}"}]}),
        ),
        (
            Method::PUT,
            format!("/v2.0/networks/{net}"),
            json!({"network": {"name": "\u{0}"}}),
        ),
        (
            Method::POST,
            "/v2.0/subnets".to_string(),
            json!({"subnet": {"network_id": net, "cidr": "10.1.0.0/24", "ip_version": 4, "name": "s\u{0}"}}),
        ),
        (
            Method::PUT,
            format!("/v2.0/subnets/{sub}"),
            json!({"subnet": {"description": "\u{0}"}}),
        ),
        (
            Method::POST,
            "/v2.0/ports".to_string(),
            json!({"port": {"network_id": net, "name": "p\u{0}"}}),
        ),
        (
            Method::POST,
            "/v2.0/ports".to_string(),
            json!({"port": {"network_id": format!("{net}\u{0}")}}),
        ),
        (
            Method::PUT,
            format!("/v2.0/ports/{port}"),
            json!({"port": {"device_id": "\u{0}"}}),
        ),
        (
            Method::POST,
            "/v2.0/ports".to_string(),
            json!({"port": {"network_id": net, "fixed_ips": [{"ip_address": "10.0.0.9\u{0}"}]}}),
        ),
    ];
    for (method, path, body) in bodies {
        let r = api.call(method.clone(), &path, Some(body.clone())).await;
        assert_eq!(
            (r.status, r.error_type()),
            (StatusCode::BAD_REQUEST, "InvalidInput"),
            "{method} {path} {body}: {}",
            r.body
        );
        assert!(r.error_message().contains("NUL"), "{}", r.body);
    }
    let r = api
        .call(
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {"name": "a\u{0}b"}})),
        )
        .await;
    assert_eq!(
        r.error_message(),
        "Invalid input for operation: 'name' must not contain a NUL character (U+0000)."
    );
    let r = api
        .call(
            Method::POST,
            "/v2.1/servers",
            Some(json!({"server": {"name": "vm\u{0}", "networks": "none"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // Path ids: the resource's 404, also after a real id.
    for (collection, kind, id) in [
        ("networks", "NetworkNotFound", &net),
        ("subnets", "SubnetNotFound", &sub),
        ("ports", "PortNotFound", &port),
        ("agents", "AgentNotFound", &net),
    ] {
        for path in [
            format!("/v2.0/{collection}/%00"),
            format!("/v2.0/{collection}/{id}%00"),
            format!("/v2.0/{collection}/{id}%00.json"),
        ] {
            for method in [Method::GET, Method::PUT, Method::DELETE] {
                let resource = collection.trim_end_matches('s');
                let body =
                    (method == Method::PUT).then(|| json!({ resource: {"description": "d"} }));
                let r = api.call(method.clone(), &path, body).await;
                assert_eq!(
                    (r.status, r.error_type()),
                    (StatusCode::NOT_FOUND, kind),
                    "{method} {path}: {}",
                    r.body
                );
            }
        }
    }
    let r = api
        .call(Method::GET, &format!("/v2.0/ports/{port}%00/binding"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    for method in [Method::GET, Method::DELETE] {
        let r = api.call(method, "/v2.1/servers/a%00", None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    }
    let r = api.call(Method::GET, "/v2.0/quotas/p%00", None).await;
    assert_eq!(
        (r.status, r.error_type()),
        (StatusCode::BAD_REQUEST, "InvalidInput")
    );

    // Filters: a value with a NUL matches nothing; the others still match.
    for (path, collection, expected) in [
        ("/v2.0/networks?name=%00", "networks", vec![]),
        ("/v2.0/networks?name=net1%00", "networks", vec![]),
        (
            "/v2.0/networks?name=x%00&name=net1",
            "networks",
            vec![net.clone()],
        ),
        ("/v2.0/networks?id=%00", "networks", vec![]),
        ("/v2.0/networks?tags=%00", "networks", vec![]),
        ("/v2.0/networks?subnets=%00", "networks", vec![]),
        (
            "/v2.0/networks?subnets=%00&subnets=SUB",
            "networks",
            vec![net.clone()],
        ),
        ("/v2.0/subnets?network_id=%00", "subnets", vec![]),
        ("/v2.0/subnets?cidr=10.0.0.0/24%00", "subnets", vec![]),
        ("/v2.0/ports?mac_address=%00", "ports", vec![]),
        (
            "/v2.0/ports?device_id=%00&device_id=",
            "ports",
            vec![port.clone()],
        ),
        (
            "/v2.0/ports?fixed_ips=ip_address%3D10.0.0.2%00",
            "ports",
            vec![],
        ),
        ("/v2.0/ports?fixed_ips=subnet_id%3D%00", "ports", vec![]),
        (
            "/v2.0/ports?fixed_ips=ip_address_substr%3D%00",
            "ports",
            vec![],
        ),
        (
            "/v2.0/ports?network_id=%00&network_id=NET",
            "ports",
            vec![port.clone()],
        ),
    ] {
        let path = path.replace("NET", &net).replace("SUB", &sub);
        let r = api.call(Method::GET, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        assert_eq!(ids(&r.body, collection), expected, "{path}");
    }
    let r = api
        .call(Method::GET, "/v2.0/networks?limit=1&marker=%00", None)
        .await;
    assert_eq!(
        (r.status, r.error_type()),
        (StatusCode::NOT_FOUND, "NetworkNotFound")
    );
});

/// A network delete racing 50 port creates on two servers sharing PostgreSQL: every create
/// is 201 or 404 NetworkNotFound, the delete 204 or 409 NetworkInUse (never a 500, a 503 or
/// IpAddressGenerationFailure), and no port is left on a network that is gone.
async fn delete_races_port_creates(db: Db) {
    let (a, b) = TestApi::two(db).await;
    a.unlimited_quotas().await;
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let mut deleted = 0;
    for round in 0..4 {
        let net = created(&a, "/v2.0/networks", json!({"network": {"name": "race"}})).await;
        let net = net["network"]["id"].as_str().unwrap().to_string();
        created(
            &a,
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net, "cidr": "10.0.0.0/24", "ip_version": 4}}),
        )
        .await;
        let mut creates = tokio::task::JoinSet::new();
        // Odd rounds: the delete starts first, the creates meet it on its way.
        let early = (round % 2 == 1).then(|| {
            let (b, net) = (b.clone(), net.clone());
            tokio::spawn(async move {
                b.call(Method::DELETE, &format!("/v2.0/networks/{net}"), None)
                    .await
            })
        });
        for i in 0..50 {
            let api = if i % 2 == 0 { a.clone() } else { b.clone() };
            let net = net.clone();
            creates.spawn(async move {
                api.call(
                    Method::POST,
                    "/v2.0/ports",
                    Some(json!({"port": {"network_id": net}})),
                )
                .await
            });
        }
        // Even rounds: a few creates start first, then the delete, from the other server.
        let del = match early {
            Some(del) => del.await.unwrap(),
            None => {
                tokio::time::sleep(std::time::Duration::from_millis(2 * round)).await;
                b.call(Method::DELETE, &format!("/v2.0/networks/{net}"), None)
                    .await
            }
        };
        assert!(
            del.status == StatusCode::NO_CONTENT
                || (del.status, del.error_type()) == (StatusCode::CONFLICT, "NetworkInUse"),
            "delete: {} {}",
            del.status,
            del.body
        );
        let mut made = 0;
        while let Some(r) = creates.join_next().await {
            let r = r.unwrap();
            match (r.status, r.error_type()) {
                (StatusCode::CREATED, _) => made += 1,
                (StatusCode::NOT_FOUND, "NetworkNotFound") => {}
                other => panic!("create: {other:?} {}", r.body),
            }
        }
        let left = a
            .call(Method::GET, &format!("/v2.0/ports?network_id={net}"), None)
            .await;
        let left = ids(&left.body, "ports");
        if del.status == StatusCode::NO_CONTENT {
            deleted += 1;
            assert!(left.is_empty(), "ports on a deleted network: {left:?}");
        } else {
            assert!(made > 0, "NetworkInUse with no port made");
        }
        // No port anywhere on a network that is gone.
        let all = a.call(Method::GET, "/v2.0/ports", None).await;
        for p in all.body["ports"].as_array().unwrap() {
            let n = p["network_id"].as_str().unwrap();
            let shown = a
                .call(Method::GET, &format!("/v2.0/networks/{n}"), None)
                .await;
            assert_eq!(shown.status, StatusCode::OK, "orphan port {}", p["id"]);
        }
    }
    eprintln!("network deletes that won the race: {deleted} of 4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_races_port_creates_postgres() {
    delete_races_port_creates(Db::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_races_port_creates_sqlite() {
    delete_races_port_creates(Db::Sqlite).await
}

/// A network delete racing subnet creates and server boots on two servers sharing one
/// database: each subnet create is 201 or 404 NetworkNotFound, each boot 202 or Nova's 400
/// (the network is gone), the delete 204 or 409 NetworkInUse; never a 500 or a 503 (PostgreSQL
/// deadlocks and foreign keys that vanish under a write are run again, as Neutron's DB retry).
async fn delete_races_subnet_creates_and_boots(db: Db) {
    let (a, b) = TestApi::two(db).await;
    a.unlimited_quotas().await;
    let agent = a
        .report(
            json!({"agent_type": "Open vSwitch agent", "binary": "neutrino-agent",
            "host": "race-host", "topic": "N/A", "start_flag": true,
            "configurations": {"bridge_mappings": {}, "tunnel_types": ["vxlan"],
                "tunneling_ip": "127.0.0.1", "integration_bridge": "br-int",
                "datapath_type": "netdev", "ovs_hybrid_plug": true}}),
        )
        .await;
    assert_eq!(agent.status, StatusCode::OK, "{}", agent.body);
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let (mut subnets_made, mut boots_made, mut deleted) = (0, 0, 0);
    for round in 0..6u64 {
        let net = created(&a, "/v2.0/networks", json!({"network": {"name": "race"}})).await;
        let net = net["network"]["id"].as_str().unwrap().to_string();
        created(
            &a,
            "/v2.0/subnets",
            json!({"subnet": {"network_id": net, "cidr": "10.0.0.0/24", "ip_version": 4}}),
        )
        .await;
        let mut subnets = tokio::task::JoinSet::new();
        let mut boots = tokio::task::JoinSet::new();
        for i in 0..16u64 {
            let api = if i % 2 == 0 { a.clone() } else { b.clone() };
            let net = net.clone();
            if i % 4 < 2 {
                subnets.spawn(async move {
                    let cidr = format!("10.{}.0.0/24", i + 1);
                    api.call(
                        Method::POST,
                        "/v2.0/subnets",
                        Some(json!({"subnet": {"network_id": net, "cidr": cidr, "ip_version": 4}})),
                    )
                    .await
                });
            } else {
                boots.spawn(async move {
                    api.call(
                        Method::POST,
                        "/v2.1/servers",
                        Some(json!({"server": {"name": format!("vm{i}"), "networks": [{"uuid": net}]}})),
                    )
                    .await
                });
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(3 * (round % 3))).await;
        let del = b
            .call(Method::DELETE, &format!("/v2.0/networks/{net}"), None)
            .await;
        assert!(
            del.status == StatusCode::NO_CONTENT
                || (del.status, del.error_type()) == (StatusCode::CONFLICT, "NetworkInUse"),
            "delete: {} {}",
            del.status,
            del.body
        );
        if del.status == StatusCode::NO_CONTENT {
            deleted += 1;
        }
        while let Some(r) = subnets.join_next().await {
            let r = r.unwrap();
            match (r.status, r.error_type()) {
                (StatusCode::CREATED, _) => subnets_made += 1,
                (StatusCode::NOT_FOUND, "NetworkNotFound") => {}
                other => panic!("subnet create: {other:?} {}", r.body),
            }
        }
        while let Some(r) = boots.join_next().await {
            let r = r.unwrap();
            match r.status {
                StatusCode::ACCEPTED => boots_made += 1,
                StatusCode::BAD_REQUEST => {
                    let message = r.body["badRequest"]["message"].as_str().unwrap_or("");
                    assert!(message.contains(&net), "boot: {}", r.body);
                }
                other => panic!("boot: {other} {}", r.body),
            }
        }
        // Nothing is left on a network that is gone.
        if del.status == StatusCode::NO_CONTENT {
            for collection in ["subnets", "ports"] {
                let left = a
                    .call(
                        Method::GET,
                        &format!("/v2.0/{collection}?network_id={net}"),
                        None,
                    )
                    .await;
                assert_eq!(ids(&left.body, collection), Vec::<String>::new());
            }
        }
    }
    eprintln!(
        "subnets made: {subnets_made}, boots made: {boots_made}, network deletes that won: {deleted} of 6"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_races_subnet_creates_and_boots_postgres() {
    delete_races_subnet_creates_and_boots(Db::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_races_subnet_creates_and_boots_sqlite() {
    delete_races_subnet_creates_and_boots(Db::Sqlite).await
}
