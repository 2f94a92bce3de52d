//! `/v2.0/routers` (`router`, `ext-gw-mode`, `extraroute`, `extraroute-atomic`,
//! `l3_agent_scheduler`) against Neutron's statuses, error types and texts
//! (shared/reference/neutron-l3-security.md section 4, neutron-transcript seqs 64-124 and
//! transcript-rbac seqs 27-28), on SQLite and PostgreSQL: gateways, interfaces, routes,
//! another project's reach, hostile input, concurrency, L3 scheduling and the hosts' feed.

use axum::http::{Method, StatusCode};
use neutrino::store::feed::{self, FeedKind};
use neutrino_tests::api::{Reply, TestApi};
use neutrino_tests::on_both_databases;
use serde_json::{Value, json};

pub const ALICE: Option<(&str, &str)> = Some(("alice-project", "member"));
pub const BOB: Option<(&str, &str)> = Some(("bob-project", "member"));

pub async fn call(
    api: &TestApi,
    who: Option<(&str, &str)>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    api.call_as(who, method, path, body).await
}

pub async fn create(
    api: &TestApi,
    who: Option<(&str, &str)>,
    resource: &str,
    body: Value,
) -> Value {
    let collection = format!("{resource}s");
    let r = call(
        api,
        who,
        Method::POST,
        &format!("/v2.0/{collection}"),
        Some(json!({ resource: body })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body[resource].clone()
}

pub fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

pub fn assert_error(r: &Reply, status: StatusCode, kind: &str, message: &str) {
    assert_eq!((r.status, r.error_type()), (status, kind), "{}", r.body);
    if !message.is_empty() {
        assert_eq!(r.error_message(), message, "{}", r.body);
    }
}

/// An external network (admin's) with one subnet: (network, subnet).
pub async fn external(api: &TestApi, cidr: &str) -> (String, String) {
    let net = create(
        api,
        None,
        "network",
        json!({"name": "public", "router:external": true}),
    )
    .await;
    let sub = create(
        api,
        None,
        "subnet",
        json!({"network_id": id(&net), "cidr": cidr, "ip_version": 4, "enable_dhcp": false}),
    )
    .await;
    (id(&net), id(&sub))
}

/// A project network with one subnet: (network, subnet).
pub async fn private(api: &TestApi, who: Option<(&str, &str)>, cidr: &str) -> (String, String) {
    let net = create(api, who, "network", json!({"name": "private"})).await;
    let sub = create(
        api,
        who,
        "subnet",
        json!({"network_id": id(&net), "cidr": cidr, "ip_version": 4, "enable_dhcp": false}),
    )
    .await;
    (id(&net), id(&sub))
}

pub async fn router(api: &TestApi, who: Option<(&str, &str)>, body: Value) -> Value {
    create(api, who, "router", body).await
}

pub async fn action(
    api: &TestApi,
    who: Option<(&str, &str)>,
    router: &str,
    what: &str,
    body: Value,
) -> Reply {
    call(
        api,
        who,
        Method::PUT,
        &format!("/v2.0/routers/{router}/{what}"),
        Some(body),
    )
    .await
}

pub async fn update(api: &TestApi, who: Option<(&str, &str)>, router: &str, body: Value) -> Reply {
    call(
        api,
        who,
        Method::PUT,
        &format!("/v2.0/routers/{router}"),
        Some(json!({ "router": body })),
    )
    .await
}

/// A router of `who` with a gateway on `ext` and an interface on `subnet`.
pub async fn connected(
    api: &TestApi,
    who: Option<(&str, &str)>,
    ext: &str,
    subnet: &str,
) -> String {
    let r = id(&router(api, who, json!({"name": "r"})).await);
    let a = action(
        api,
        who,
        &r,
        "add_router_interface",
        json!({"subnet_id": subnet}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let g = update(
        api,
        who,
        &r,
        json!({"external_gateway_info": {"network_id": ext}}),
    )
    .await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.body);
    r
}

pub async fn get(api: &TestApi, who: Option<(&str, &str)>, path: &str) -> Reply {
    call(api, who, Method::GET, path, None).await
}

/// An L3 agent (and the L2 agent the ports bind through) on `host`.
pub async fn l3_node(api: &TestApi, host: &str) {
    for report in [
        json!({"agent_type": "Open vSwitch agent", "binary": "neutrino-agent", "host": host,
            "topic": "N/A", "start_flag": true,
            "configurations": {"bridge_mappings": {"physnet1": "br-ex"}, "tunnel_types": ["vxlan"],
                "tunneling_ip": "127.0.0.1", "integration_bridge": "br-int",
                "datapath_type": "netdev", "ovs_hybrid_plug": true}}),
        json!({"agent_type": "L3 agent", "binary": "neutron-l3-agent", "host": host,
            "topic": "l3_agent", "start_flag": true,
            "configurations": {"agent_mode": "legacy", "routers": 0}}),
    ] {
        let r = api.report(report).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
}

pub async fn feed_revision(api: &TestApi) -> i64 {
    let mut conn = api.state.store.read_conn().await.unwrap();
    feed::revision(&mut conn).await.unwrap()
}

/// The routers `host` heard of after revision `after`.
pub async fn routers_heard(api: &TestApi, host: &str, after: i64) -> Vec<String> {
    let mut conn = api.state.store.read_conn().await.unwrap();
    feed::changes_since(&mut conn, host, after, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .filter(|(k, _)| *k == FeedKind::Router)
        .map(|(_, id)| id)
        .collect()
}

async fn router_ports(api: &TestApi, router: &str) -> Vec<Value> {
    let r = get(api, None, &format!("/v2.0/ports?device_id={router}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["ports"].as_array().unwrap().clone()
}

on_both_databases!(the_transcripts_router_steps, |api: TestApi| async move {
    let (ext, ext_sub) = external(&api, "172.24.4.0/24").await;
    let (net, sub) = private(&api, ALICE, "10.0.0.0/24").await;
    // seq 64
    let r = router(&api, ALICE, json!({"name": "r1"})).await;
    let rid = id(&r);
    let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = vec![
        "id",
        "name",
        "project_id",
        "admin_state_up",
        "status",
        "external_gateway_info",
        "description",
        "availability_zones",
        "availability_zone_hints",
        "routes",
        "flavor_id",
        "tags",
        "created_at",
        "updated_at",
        "revision_number",
        "tenant_id",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(r["status"], "ACTIVE");
    assert_eq!(r["external_gateway_info"], Value::Null);
    assert_eq!(r["revision_number"], 1);
    assert_eq!(r["project_id"], "alice-project");
    // An admin sees distributed and ha.
    let shown = get(&api, None, &format!("/v2.0/routers/{rid}")).await;
    assert_eq!(
        (
            shown.body["router"]["distributed"].clone(),
            shown.body["router"]["ha"].clone()
        ),
        (json!(false), json!(false))
    );
    // seq 65
    let a = action(
        &api,
        ALICE,
        &rid,
        "add_router_interface",
        json!({"subnet_id": sub}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let port_id = a.body["port_id"].as_str().unwrap().to_string();
    assert_eq!(
        a.body,
        json!({"id": rid, "project_id": "alice-project", "port_id": port_id,
                "network_id": net, "subnet_id": sub, "subnet_ids": [sub]})
    );
    let port = get(&api, ALICE, &format!("/v2.0/ports/{port_id}"))
        .await
        .body["port"]
        .clone();
    assert_eq!(port["device_owner"], "network:router_interface");
    assert_eq!(port["device_id"], rid.as_str());
    assert_eq!(port["fixed_ips"][0]["ip_address"], "10.0.0.1");
    assert_eq!(port["project_id"], "alice-project");
    // seq 66
    let again = action(
        &api,
        ALICE,
        &rid,
        "add_router_interface",
        json!({"subnet_id": sub}),
    )
    .await;
    assert_error(
        &again,
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &format!("Bad router request: Router already has a port on subnet {sub}."),
    );
    // seq 67
    let none = action(&api, ALICE, &rid, "add_router_interface", json!({})).await;
    assert_error(
        &none,
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "Bad router request: Either subnet_id or port_id must be specified.",
    );
    // seq 68
    let missing = "face7393-7d56-4ef1-8a51-4934d21cb58c";
    let m = action(
        &api,
        ALICE,
        missing,
        "add_router_interface",
        json!({"subnet_id": sub}),
    )
    .await;
    assert_error(
        &m,
        StatusCode::NOT_FOUND,
        "RouterNotFound",
        &format!("Router {missing} could not be found"),
    );
    // seq 70
    let g = update(
        &api,
        ALICE,
        &rid,
        json!({"external_gateway_info": {"network_id": ext}}),
    )
    .await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.body);
    let info = &g.body["router"]["external_gateway_info"];
    assert_eq!(info["network_id"], ext.as_str());
    assert_eq!(info["enable_snat"], true);
    assert_eq!(info["external_fixed_ips"][0]["subnet_id"], ext_sub.as_str());
    assert_eq!(g.body["router"]["revision_number"], 3);
    // The gateway port is no project's: the project does not list it.
    let gw_ip = info["external_fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap();
    let mine = get(&api, ALICE, "/v2.0/ports").await;
    assert!(
        !mine.body.to_string().contains("network:router_gateway"),
        "{}",
        mine.body
    );
    let gw = get(
        &api,
        None,
        &format!("/v2.0/ports?device_id={rid}&device_owner=network:router_gateway"),
    )
    .await;
    assert_eq!(gw.body["ports"][0]["project_id"], "");
    assert_eq!(gw.body["ports"][0]["fixed_ips"][0]["ip_address"], gw_ip);
    // seq 71
    let bad = update(
        &api,
        ALICE,
        &rid,
        json!({"external_gateway_info": {"network_id": net}}),
    )
    .await;
    assert_error(
        &bad,
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &format!("Bad router request: Network {net} is not an external network."),
    );
    // seq 72, 73
    let shown = get(&api, ALICE, &format!("/v2.0/routers/{rid}")).await;
    assert_eq!(shown.body["router"]["external_gateway_info"], *info);
    assert!(shown.body["router"].get("distributed").is_none());
    let listed = get(&api, ALICE, "/v2.0/routers").await;
    assert_eq!(listed.body["routers"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["routers"][0]["external_gateway_info"], *info);
    // seq 77
    let in_use = call(
        &api,
        ALICE,
        Method::DELETE,
        &format!("/v2.0/routers/{rid}"),
        None,
    )
    .await;
    assert_error(
        &in_use,
        StatusCode::CONFLICT,
        "RouterInUse",
        &format!("Router {rid} has ports still attached: {port_id}"),
    );
    // seq 78
    let direct = call(
        &api,
        ALICE,
        Method::DELETE,
        &format!("/v2.0/ports/{port_id}"),
        None,
    )
    .await;
    assert_error(
        &direct,
        StatusCode::CONFLICT,
        "ServicePortInUse",
        &format!(
            "Port {port_id} cannot be deleted directly via the port API: has device owner network:router_interface."
        ),
    );
    let gw_port = gw.body["ports"][0]["id"].as_str().unwrap();
    let direct = call(
        &api,
        None,
        Method::DELETE,
        &format!("/v2.0/ports/{gw_port}"),
        None,
    )
    .await;
    assert_error(&direct, StatusCode::CONFLICT, "ServicePortInUse", "");
    // A subnet with a router interface stays.
    let sub_delete = call(
        &api,
        ALICE,
        Method::DELETE,
        &format!("/v2.0/subnets/{sub}"),
        None,
    )
    .await;
    assert_error(
        &sub_delete,
        StatusCode::CONFLICT,
        "SubnetInUse",
        &format!(
            "Unable to complete operation on subnet {sub}: One or more ports have an IP allocation from this subnet."
        ),
    );
    // seq 121
    let cleared = update(&api, ALICE, &rid, json!({"external_gateway_info": {}})).await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    assert_eq!(cleared.body["router"]["external_gateway_info"], Value::Null);
    let gone = get(&api, None, &format!("/v2.0/ports/{gw_port}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    // seq 122, 123
    let removed = action(
        &api,
        ALICE,
        &rid,
        "remove_router_interface",
        json!({"subnet_id": sub}),
    )
    .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    assert_eq!(removed.body["port_id"], port_id.as_str());
    assert_eq!(removed.body["subnet_ids"], json!([sub]));
    let again = action(
        &api,
        ALICE,
        &rid,
        "remove_router_interface",
        json!({"subnet_id": sub}),
    )
    .await;
    assert_error(
        &again,
        StatusCode::NOT_FOUND,
        "RouterInterfaceNotFoundForSubnet",
        &format!("Router {rid} has no interface on subnet {sub}"),
    );
    // seq 124, 90
    let deleted = call(
        &api,
        ALICE,
        Method::DELETE,
        &format!("/v2.0/routers/{rid}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    let missing = get(&api, ALICE, &format!("/v2.0/routers/{rid}")).await;
    assert_error(
        &missing,
        StatusCode::NOT_FOUND,
        "RouterNotFound",
        &format!("Router {rid} could not be found"),
    );
    // The subnet is free again.
    let sub_delete = call(
        &api,
        ALICE,
        Method::DELETE,
        &format!("/v2.0/subnets/{sub}"),
        None,
    )
    .await;
    assert_eq!(
        sub_delete.status,
        StatusCode::NO_CONTENT,
        "{}",
        sub_delete.body
    );
});

on_both_databases!(
    another_project_cannot_reach_a_router_or_its_subnets,
    |api: TestApi| async move {
        let (_, alice_sub) = private(&api, ALICE, "10.0.0.0/24").await;
        let alice_router = id(&router(&api, ALICE, json!({"name": "a"})).await);
        // transcript-rbac seq 27, 28
        let bob_router = router(&api, BOB, json!({"name": "bob-r"})).await;
        assert!(bob_router.get("distributed").is_none());
        assert_eq!(bob_router["revision_number"], 1);
        let bob_router = id(&bob_router);
        let r = action(
            &api,
            BOB,
            &bob_router,
            "add_router_interface",
            json!({"subnet_id": alice_sub}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::NOT_FOUND,
            "SubnetNotFound",
            &format!("Subnet {alice_sub} could not be found."),
        );
        for (method, path, body) in [
            (Method::GET, format!("/v2.0/routers/{alice_router}"), None),
            (
                Method::PUT,
                format!("/v2.0/routers/{alice_router}"),
                Some(json!({"router": {"name": "x"}})),
            ),
            (
                Method::DELETE,
                format!("/v2.0/routers/{alice_router}"),
                None,
            ),
            (
                Method::PUT,
                format!("/v2.0/routers/{alice_router}/add_router_interface"),
                Some(json!({"subnet_id": alice_sub})),
            ),
            (
                Method::PUT,
                format!("/v2.0/routers/{alice_router}/add_extraroutes"),
                Some(json!({"router": {"routes": []}})),
            ),
        ] {
            let r = call(&api, BOB, method, &path, body).await;
            assert_error(
                &r,
                StatusCode::NOT_FOUND,
                "RouterNotFound",
                &format!("Router {alice_router} could not be found"),
            );
        }
        let listed = get(&api, BOB, "/v2.0/routers").await;
        assert_eq!(listed.body["routers"].as_array().unwrap().len(), 1);
        assert_eq!(listed.body["routers"][0]["id"], bob_router.as_str());
        // Alice's router is untouched.
        let mine = get(&api, ALICE, &format!("/v2.0/routers/{alice_router}")).await;
        assert_eq!(mine.body["router"]["name"], "a");
    }
);

on_both_databases!(
    policy_and_hostile_input_are_refused,
    |api: TestApi| async move {
        let (ext, _) = external(&api, "172.24.4.0/24").await;
        let (_, sub) = private(&api, ALICE, "10.0.0.0/24").await;
        // enable_snat and external_fixed_ips are admin-only, even at their default.
        for info in [
            json!({"network_id": ext, "enable_snat": true}),
            json!({"network_id": ext, "external_fixed_ips": []}),
        ] {
            let r = call(
                &api,
                ALICE,
                Method::POST,
                "/v2.0/routers",
                Some(json!({"router": {"external_gateway_info": info}})),
            )
            .await;
            assert_eq!(
                (r.status, r.error_type()),
                (StatusCode::FORBIDDEN, "PolicyNotAuthorized"),
                "{}",
                r.body
            );
        }
        // Routes only on PUT.
        let r = call(
            &api,
            ALICE,
            Method::POST,
            "/v2.0/routers",
            Some(json!({"router": {"routes": []}})),
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
            "Attribute 'routes' not allowed in POST",
        );
        let long = call(
            &api,
            ALICE,
            Method::POST,
            "/v2.0/routers",
            Some(json!({"router": {"name": "x".repeat(256)}})),
        )
        .await;
        assert_eq!(long.status, StatusCode::BAD_REQUEST, "{}", long.body);
        let unknown = call(&api, ALICE, Method::POST, "/v2.0/routers",
            Some(json!({"router": {"external_gateway_info": {"network_id": "0e4b5f6c-4f1a-4c6e-9d7e-2f0a1b2c3d4e"}}}))).await;
        assert_error(&unknown, StatusCode::NOT_FOUND, "NetworkNotFound", "");
        let rid = id(&router(&api, ALICE, json!({})).await);
        let r = action(
            &api,
            ALICE,
            &rid,
            "add_router_interface",
            json!({"subnet_id": "not-a-uuid"}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Bad router request: 'not-a-uuid' is not a valid UUID.",
        );
        let r = action(
            &api,
            ALICE,
            &rid,
            "add_router_interface",
            json!({"subnet_id": sub, "port_id": "0e4b5f6c-4f1a-4c6e-9d7e-2f0a1b2c3d4e"}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Bad router request: Cannot specify both subnet-id and port-id.",
        );
        let r = call(&api, ALICE, Method::GET, "/v2.0/routers/not-a-uuid", None).await;
        assert_error(
            &r,
            StatusCode::NOT_FOUND,
            "RouterNotFound",
            "Router not-a-uuid could not be found",
        );
        for routes in [
            json!("nope"),
            json!([{"destination": "10.1.0.0/24"}]),
            json!([{"destination": "bad", "nexthop": "10.0.0.5"}]),
            json!([{"destination": "10.1.0.0/24", "nexthop": "x"}]),
            json!([{"destination": "10.1.0.0/24", "nexthop": "10.0.0.5", "extra": 1}]),
            json!([{"destination": "10.1.0.0/24", "nexthop": "10.0.0.5"}, {"destination": "10.1.0.0/24", "nexthop": "10.0.0.5"}]),
        ] {
            let r = update(&api, ALICE, &rid, json!({"routes": routes})).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{routes}: {}", r.body);
            assert!(
                r.error_message().starts_with("Invalid input for routes"),
                "{}",
                r.body
            );
        }
        let r = update(&api, ALICE, &rid, json!({"status": "DOWN"})).await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
            "Cannot update read-only attribute status",
        );
        // An admin's enable_snat is reset to its default by a gateway update without it;
        // an external address may not be the subnet's gateway.
        let g = update(
            &api,
            None,
            &rid,
            json!({"external_gateway_info": {"network_id": ext, "enable_snat": false}}),
        )
        .await;
        assert_eq!(
            g.body["router"]["external_gateway_info"]["enable_snat"], false,
            "{}",
            g.body
        );
        let g = update(
            &api,
            ALICE,
            &rid,
            json!({"external_gateway_info": {"network_id": ext}}),
        )
        .await;
        assert_eq!(
            g.body["router"]["external_gateway_info"]["enable_snat"], true,
            "{}",
            g.body
        );
        let g = update(
            &api,
            None,
            &rid,
            json!({"external_gateway_info": {"network_id": ext,
            "external_fixed_ips": [{"ip_address": "172.24.4.1"}]}}),
        )
        .await;
        assert_error(
            &g,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Bad router request: External IP 172.24.4.1 is the same as the gateway IP.",
        );
        let g = update(
            &api,
            None,
            &rid,
            json!({"external_gateway_info": {"network_id": ext,
            "external_fixed_ips": [{"ip_address": "172.24.4.77"}]}}),
        )
        .await;
        assert_eq!(
            g.body["router"]["external_gateway_info"]["external_fixed_ips"][0]["ip_address"],
            "172.24.4.77",
            "{}",
            g.body
        );
        // A project user may not make a distributed router; an admin sees the attribute false.
        let r = call(
            &api,
            ALICE,
            Method::POST,
            "/v2.0/routers",
            Some(json!({"router": {"distributed": false}})),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
);

on_both_databases!(
    extra_routes_are_checked_against_the_routers_ports,
    |api: TestApi| async move {
        let (_, sub) = private(&api, ALICE, "10.0.0.0/24").await;
        let rid = id(&router(&api, ALICE, json!({})).await);
        let a = action(
            &api,
            ALICE,
            &rid,
            "add_router_interface",
            json!({"subnet_id": sub}),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let far = update(
            &api,
            ALICE,
            &rid,
            json!({"routes": [{"destination": "10.9.0.0/24", "nexthop": "192.168.5.5"}]}),
        )
        .await;
        assert_error(
            &far,
            StatusCode::BAD_REQUEST,
            "InvalidRoutes",
            "Invalid format for routes: [{'destination': '10.9.0.0/24', 'nexthop': '192.168.5.5'}], the nexthop is not connected with router.",
        );
        let own = update(
            &api,
            ALICE,
            &rid,
            json!({"routes": [{"destination": "10.9.0.0/24", "nexthop": "10.0.0.1"}]}),
        )
        .await;
        assert_error(
            &own,
            StatusCode::BAD_REQUEST,
            "InvalidRoutes",
            "Invalid format for routes: [{'destination': '10.9.0.0/24', 'nexthop': '10.0.0.1'}], the nexthop is used by router.",
        );
        let ok = update(
            &api,
            ALICE,
            &rid,
            json!({"routes": [{"destination": "10.9.0.0/24", "nexthop": "10.0.0.7"}]}),
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
        assert_eq!(
            ok.body["router"]["routes"],
            json!([{"destination": "10.9.0.0/24", "nexthop": "10.0.0.7"}])
        );
        // Atomic add: duplicates dropped, ECMP kept; remove of an absent route is a no-op.
        let added = action(
            &api,
            ALICE,
            &rid,
            "add_extraroutes",
            json!({"router": {"routes": [
            {"destination": "10.9.0.0/24", "nexthop": "10.0.0.7"},
            {"destination": "10.9.0.0/24", "nexthop": "10.0.0.8"}]}}),
        )
        .await;
        assert_eq!(added.status, StatusCode::OK, "{}", added.body);
        assert_eq!(added.body["router"]["routes"].as_array().unwrap().len(), 2);
        let removed = action(
            &api,
            ALICE,
            &rid,
            "remove_extraroutes",
            json!({"router": {"routes": [
            {"destination": "10.9.0.0/24", "nexthop": "10.0.0.8"},
            {"destination": "10.8.0.0/24", "nexthop": "10.0.0.9"}]}}),
        )
        .await;
        assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
        assert_eq!(
            removed.body["router"]["routes"],
            json!([{"destination": "10.9.0.0/24", "nexthop": "10.0.0.7"}])
        );
        // The interface holds while a route's nexthop is on it.
        let r = action(
            &api,
            ALICE,
            &rid,
            "remove_router_interface",
            json!({"subnet_id": sub}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::CONFLICT,
            "RouterInterfaceInUseByRoute",
            &format!(
                "Router interface for subnet {sub} on router {rid} cannot be deleted, as it is required by one or more routes."
            ),
        );
        // At most router_route (30) routes.
        let many: Vec<Value> = (0..31)
            .map(
                |i| json!({"destination": format!("10.{}.0.0/24", 100 + i), "nexthop": "10.0.0.7"}),
            )
            .collect();
        let r = update(&api, ALICE, &rid, json!({"routes": many[..30]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = update(&api, ALICE, &rid, json!({"routes": many})).await;
        assert_error(
            &r,
            StatusCode::CONFLICT,
            "OverQuota",
            "Quota exceeded for resources: ['router_route'].",
        );
        let r = update(&api, ALICE, &rid, json!({"routes": []})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = action(
            &api,
            ALICE,
            &rid,
            "remove_router_interface",
            json!({"subnet_id": sub}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
);

on_both_databases!(interfaces_by_port_and_overlaps, |api: TestApi| async move {
    let (ext, _) = external(&api, "172.24.4.0/24").await;
    let (net, sub) = private(&api, ALICE, "10.0.0.0/24").await;
    let (_, overlapping) = private(&api, ALICE, "10.0.0.0/16").await;
    let rid = id(&router(&api, ALICE, json!({})).await);
    let a = action(
        &api,
        ALICE,
        &rid,
        "add_router_interface",
        json!({"subnet_id": sub}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let o = action(
        &api,
        ALICE,
        &rid,
        "add_router_interface",
        json!({"subnet_id": overlapping}),
    )
    .await;
    assert_error(
        &o,
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &format!(
            "Bad router request: Cidr 10.0.0.0/16 of subnet {overlapping} overlaps with cidr 10.0.0.0/24 of subnet {sub}."
        ),
    );
    // A gateway overlapping an interface is refused too.
    let (ext2, _) = external(&api, "10.0.0.0/8").await;
    let g = update(
        &api,
        ALICE,
        &rid,
        json!({"external_gateway_info": {"network_id": ext2}}),
    )
    .await;
    assert_eq!(
        (g.status, g.error_type()),
        (StatusCode::BAD_REQUEST, "BadRequest"),
        "{}",
        g.body
    );
    let g = update(
        &api,
        ALICE,
        &rid,
        json!({"external_gateway_info": {"network_id": ext}}),
    )
    .await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.body);
    // By port: an unused port of the project becomes an interface.
    let (net2, sub2) = private(&api, ALICE, "10.5.0.0/24").await;
    let port = create(&api, ALICE, "port", json!({"network_id": net2})).await;
    let a = action(
        &api,
        ALICE,
        &rid,
        "add_router_interface",
        json!({"port_id": id(&port)}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["subnet_ids"], json!([sub2]));
    let p = get(&api, ALICE, &format!("/v2.0/ports/{}", id(&port)))
        .await
        .body["port"]
        .clone();
    assert_eq!(
        (p["device_owner"].as_str(), p["device_id"].as_str()),
        (Some("network:router_interface"), Some(rid.as_str()))
    );
    // A port with a device is in use.
    let used = create(
        &api,
        ALICE,
        "port",
        json!({"network_id": net, "device_id": "vm-1"}),
    )
    .await;
    let a = action(
        &api,
        ALICE,
        &rid,
        "add_router_interface",
        json!({"port_id": id(&used)}),
    )
    .await;
    assert_error(
        &a,
        StatusCode::CONFLICT,
        "PortInUse",
        &format!(
            "Unable to complete operation on port {} for network {net}. Port already has an attached device vm-1.",
            id(&used)
        ),
    );
    // Removal by port: it must be this router's interface, on the subnet named.
    let a = action(
        &api,
        ALICE,
        &rid,
        "remove_router_interface",
        json!({"port_id": id(&used)}),
    )
    .await;
    assert_error(
        &a,
        StatusCode::NOT_FOUND,
        "RouterInterfaceNotFound",
        &format!(
            "Router {rid} does not have an interface with id {}",
            id(&used)
        ),
    );
    let a = action(
        &api,
        ALICE,
        &rid,
        "remove_router_interface",
        json!({"port_id": id(&port), "subnet_id": sub}),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "SubnetMismatchForPort", "");
    let a = action(
        &api,
        ALICE,
        &rid,
        "remove_router_interface",
        json!({"port_id": id(&port), "subnet_id": sub2}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let p = get(&api, ALICE, &format!("/v2.0/ports/{}", id(&port))).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    // Deleting the router takes its gateway port.
    let a = action(
        &api,
        ALICE,
        &rid,
        "remove_router_interface",
        json!({"subnet_id": sub}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let d = call(
        &api,
        ALICE,
        Method::DELETE,
        &format!("/v2.0/routers/{rid}"),
        None,
    )
    .await;
    assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.body);
    assert!(router_ports(&api, &rid).await.is_empty());
});

on_both_databases!(
    two_overlapping_interfaces_added_at_once_do_not_both_succeed,
    |api: TestApi| async move {
        let (_, a) = private(&api, ALICE, "10.0.0.0/24").await;
        let (_, b) = private(&api, ALICE, "10.0.0.0/25").await;
        let rid = id(&router(&api, ALICE, json!({})).await);
        let (ra, rb) = tokio::join!(
            action(
                &api,
                ALICE,
                &rid,
                "add_router_interface",
                json!({"subnet_id": a})
            ),
            action(
                &api,
                ALICE,
                &rid,
                "add_router_interface",
                json!({"subnet_id": b})
            ),
        );
        let mut statuses = [ra.status, rb.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::BAD_REQUEST],
            "{} / {}",
            ra.body,
            rb.body
        );
        assert_eq!(router_ports(&api, &rid).await.len(), 1);
    }
);

on_both_databases!(the_router_quota_is_enforced, |api: TestApi| async move {
    let q = call(
        &api,
        None,
        Method::PUT,
        "/v2.0/quotas/alice-project",
        Some(json!({"quota": {"router": 1}})),
    )
    .await;
    assert_eq!(q.status, StatusCode::OK, "{}", q.body);
    router(&api, ALICE, json!({})).await;
    let r = call(
        &api,
        ALICE,
        Method::POST,
        "/v2.0/routers",
        Some(json!({"router": {}})),
    )
    .await;
    assert_error(
        &r,
        StatusCode::CONFLICT,
        "OverQuota",
        "Quota exceeded for resources: ['router'].",
    );
    let d = get(&api, ALICE, "/v2.0/quotas/alice-project/details").await;
    assert_eq!(d.body["quota"]["router"]["used"], 1, "{}", d.body);
    assert_eq!(d.body["quota"]["router_route"]["limit"], 30, "{}", d.body);
});

on_both_databases!(
    a_router_waits_for_an_l3_agent_then_its_ports_are_bound_there,
    |api: TestApi| async move {
        let (ext, _) = external(&api, "172.24.4.0/24").await;
        let (_, sub) = private(&api, ALICE, "10.0.0.0/24").await;
        // No L3 agent: the router works and waits.
        let rid = connected(&api, ALICE, &ext, &sub).await;
        let agents = get(&api, None, &format!("/v2.0/routers/{rid}/l3-agents")).await;
        assert_eq!(agents.body, json!({"agents": []}));
        for p in router_ports(&api, &rid).await {
            assert_eq!(p["binding:host_id"], "", "{p}");
        }
        // The first L3 agent to report takes it; its ports are bound to that host.
        let before = feed_revision(&api).await;
        l3_node(&api, "node-1").await;
        let agents = get(&api, None, &format!("/v2.0/routers/{rid}/l3-agents")).await;
        assert_eq!(
            agents.body["agents"].as_array().unwrap().len(),
            1,
            "{}",
            agents.body
        );
        assert_eq!(agents.body["agents"][0]["host"], "node-1");
        assert_eq!(agents.body["agents"][0]["agent_type"], "L3 agent");
        let ports = router_ports(&api, &rid).await;
        assert_eq!(ports.len(), 2);
        for p in &ports {
            assert_eq!(p["binding:host_id"], "node-1", "{p}");
            assert_ne!(p["binding:vif_type"], "unbound", "{p}");
        }
        assert!(routers_heard(&api, "node-1", before).await.contains(&rid));
        // Its changes reach that host.
        let before = feed_revision(&api).await;
        let r = update(&api, ALICE, &rid, json!({"admin_state_up": false})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(routers_heard(&api, "node-1", before).await, [rid.as_str()]);
        // The fewest routers: a second agent takes the next router.
        l3_node(&api, "node-2").await;
        let (_, sub2) = private(&api, ALICE, "10.1.0.0/24").await;
        let before = feed_revision(&api).await;
        let r2 = id(&router(&api, ALICE, json!({})).await);
        assert!(
            routers_heard(&api, "node-2", before).await.is_empty(),
            "no port, no agent"
        );
        let a = action(
            &api,
            ALICE,
            &r2,
            "add_router_interface",
            json!({"subnet_id": sub2}),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(routers_heard(&api, "node-2", before).await, [r2.as_str()]);
        let port = get(
            &api,
            None,
            &format!("/v2.0/ports/{}", a.body["port_id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(port.body["port"]["binding:host_id"], "node-2");
        // Deleting a router tells its host.
        let before = feed_revision(&api).await;
        let a = action(
            &api,
            ALICE,
            &r2,
            "remove_router_interface",
            json!({"subnet_id": sub2}),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let d = call(
            &api,
            ALICE,
            Method::DELETE,
            &format!("/v2.0/routers/{r2}"),
            None,
        )
        .await;
        assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.body);
        assert!(routers_heard(&api, "node-2", before).await.contains(&r2));
    }
);

async fn agent_id(api: &TestApi, agent_type: &str, host: &str) -> String {
    let r = get(
        api,
        None,
        &format!("/v2.0/agents?agent_type={agent_type}&host={host}"),
    )
    .await;
    r.body["agents"][0]["id"].as_str().unwrap().to_string()
}

on_both_databases!(
    an_admin_moves_a_router_between_l3_agents,
    |api: TestApi| async move {
        let (_, sub) = private(&api, ALICE, "10.0.0.0/24").await;
        l3_node(&api, "node-1").await;
        l3_node(&api, "node-2").await;
        let (one, two) = (
            agent_id(&api, "L3%20agent", "node-1").await,
            agent_id(&api, "L3%20agent", "node-2").await,
        );
        let rid = id(&router(&api, ALICE, json!({})).await);
        let a = action(
            &api,
            ALICE,
            &rid,
            "add_router_interface",
            json!({"subnet_id": sub}),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let on_one = get(&api, None, &format!("/v2.0/agents/{one}/l3-routers")).await;
        assert_eq!(
            on_one.body["routers"][0]["id"],
            rid.as_str(),
            "{}",
            on_one.body
        );
        let again = call(
            &api,
            None,
            Method::POST,
            &format!("/v2.0/agents/{one}/l3-routers"),
            Some(json!({"router_id": rid})),
        )
        .await;
        assert_error(&again, StatusCode::CONFLICT, "RouterHostedByL3Agent", "");
        // Moved: both hosts hear of it, the port follows.
        let before = feed_revision(&api).await;
        let moved = call(
            &api,
            None,
            Method::POST,
            &format!("/v2.0/agents/{two}/l3-routers"),
            Some(json!({"router_id": rid})),
        )
        .await;
        assert_eq!(moved.status, StatusCode::CREATED, "{}", moved.body);
        assert!(routers_heard(&api, "node-1", before).await.contains(&rid));
        assert!(routers_heard(&api, "node-2", before).await.contains(&rid));
        let port = get(
            &api,
            None,
            &format!("/v2.0/ports/{}", a.body["port_id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(port.body["port"]["binding:host_id"], "node-2");
        assert_eq!(
            get(&api, None, &format!("/v2.0/agents/{one}/l3-routers"))
                .await
                .body,
            json!({"routers": []})
        );
        // Taken off: unscheduled, the host told.
        let not_there = call(
            &api,
            None,
            Method::DELETE,
            &format!("/v2.0/agents/{one}/l3-routers/{rid}"),
            None,
        )
        .await;
        assert_error(
            &not_there,
            StatusCode::CONFLICT,
            "RouterNotHostedByL3Agent",
            "",
        );
        let before = feed_revision(&api).await;
        let off = call(
            &api,
            None,
            Method::DELETE,
            &format!("/v2.0/agents/{two}/l3-routers/{rid}"),
            None,
        )
        .await;
        assert_eq!(off.status, StatusCode::NO_CONTENT, "{}", off.body);
        assert_eq!(routers_heard(&api, "node-2", before).await, [rid.as_str()]);
        let agents = get(&api, None, &format!("/v2.0/routers/{rid}/l3-agents")).await;
        assert_eq!(agents.body, json!({"agents": []}));
        // Admin only.
        let r = get(&api, ALICE, &format!("/v2.0/routers/{rid}/l3-agents")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let r = get(&api, ALICE, &format!("/v2.0/agents/{one}/l3-routers")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        // A DHCP agent cannot serve a router.
        let r = call(
            &api,
            None,
            Method::POST,
            "/v2.0/agents/0e4b5f6c-4f1a-4c6e-9d7e-2f0a1b2c3d4e/l3-routers",
            Some(json!({"router_id": rid})),
        )
        .await;
        assert_error(&r, StatusCode::NOT_FOUND, "AgentNotFound", "");
    }
);

on_both_databases!(
    routers_list_with_filters_fields_and_tags,
    |api: TestApi| async move {
        let a = id(&router(&api, ALICE, json!({"name": "a"})).await);
        let b = id(&router(&api, ALICE, json!({"name": "b", "admin_state_up": false})).await);
        let r = get(
            &api,
            ALICE,
            "/v2.0/routers?admin_state_up=false&fields=id&fields=name",
        )
        .await;
        assert_eq!(r.body, json!({"routers": [{"id": b, "name": "b"}]}));
        let t = call(
            &api,
            ALICE,
            Method::PUT,
            &format!("/v2.0/routers/{a}/tags/red"),
            None,
        )
        .await;
        assert_eq!(t.status, StatusCode::CREATED, "{}", t.body);
        let r = get(&api, ALICE, "/v2.0/routers?tags=red").await;
        assert_eq!(r.body["routers"][0]["id"], a.as_str());
        assert_eq!(r.body["routers"][0]["tags"], json!(["red"]));
        assert_eq!(r.body["routers"][0]["revision_number"], 2);
        let r = get(
            &api,
            ALICE,
            "/v2.0/routers?sort_key=name&sort_dir=desc&limit=1",
        )
        .await;
        assert_eq!(r.body["routers"][0]["name"], "b");
        assert!(r.body["routers_links"].is_array(), "{}", r.body);
    }
);
