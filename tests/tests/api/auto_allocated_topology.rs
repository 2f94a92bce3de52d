//! `/v2.0/auto-allocated-topology/{project_id}` (Neutron's `auto-allocated-topology`): what is
//! missing said as Neutron says it (neutron-transcript seq 79-86), the topology built on the
//! first call and answered after (also under concurrent first calls), a failure half-way that
//! leaves nothing, another project refused, and its removal; on SQLite and PostgreSQL.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use neutrino_tests::api::{Reply, TestApi};
use neutrino_tests::on_both_databases;
use serde_json::{Value, json};

const ALICE: Option<(&str, &str)> = Some(("alice-project", "member"));
const BOB: Option<(&str, &str)> = Some(("bob-project", "member"));

async fn created(api: &TestApi, collection: &str, body: Value) -> Value {
    let resource = collection.trim_end_matches('s');
    let r = api
        .call(
            Method::POST,
            &format!("/v2.0/{collection}"),
            Some(json!({ resource: body })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body[resource].clone()
}

/// The default external network, with a subnet whose allocation pool is `pool` (first, last).
async fn default_external(api: &TestApi, pool: (&str, &str)) -> (String, String) {
    let net = created(
        api,
        "networks",
        json!({"name": "public", "router:external": true, "is_default": true,
            "provider:network_type": "flat", "provider:physical_network": "physnet1"}),
    )
    .await;
    let id = net["id"].as_str().unwrap().to_string();
    let subnet = created(
        api,
        "subnets",
        json!({"network_id": id, "ip_version": 4, "cidr": "172.24.4.0/24", "enable_dhcp": false,
            "allocation_pools": [{"start": pool.0, "end": pool.1}]}),
    )
    .await;
    (id, subnet["id"].as_str().unwrap().to_string())
}

async fn default_pool(api: &TestApi) -> Value {
    created(
        api,
        "subnetpools",
        json!({"name": "default-v4", "prefixes": ["10.100.0.0/16"], "default_prefixlen": 26,
            "is_default": true, "shared": true}),
    )
    .await
}

async fn topology(api: &TestApi, who: Option<(&str, &str)>, path: &str) -> Reply {
    api.call_as(
        who,
        Method::GET,
        &format!("/v2.0/auto-allocated-topology/{path}"),
        None,
    )
    .await
}

/// The project's networks, routers and subnets (as an admin sees them).
async fn owned(api: &TestApi, project: &str) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let list = |collection: &'static str| async move {
        let r = api
            .call(
                Method::GET,
                &format!("/v2.0/{collection}?project_id={project}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body[collection].as_array().unwrap().clone()
    };
    (
        list("networks").await,
        list("routers").await,
        list("subnets").await,
    )
}

fn failure(r: &Reply, message: &str) {
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.error_type(), "AutoAllocationFailure", "{}", r.body);
    assert_eq!(r.error_message(), message);
}

on_both_databases!(
    what_is_missing_is_said_as_neutron_says_it,
    |api: TestApi| async move {
        for path in ["alice-project?fields=dry-run", "alice-project"] {
            let r = topology(&api, ALICE, path).await;
            failure(&r, "Deployment error: No default router:external network.");
        }
        default_external(&api, ("172.24.4.10", "172.24.4.200")).await;
        let r = topology(&api, ALICE, "alice-project?fields=dry-run").await;
        failure(&r, "Deployment error: No default subnetpools defined.");
        let r = topology(&api, ALICE, "alice-project").await;
        failure(
            &r,
            "Deployment error: Unable to provide project private network.",
        );
        // Nothing was made by the failures, nor by a dry run that passes.
        default_pool(&api).await;
        let r = topology(&api, ALICE, "alice-project?fields=dry-run").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(
            r.body,
            json!({"auto_allocated_topology": {"id": "dry-run=pass", "project_id": "alice-project"}})
        );
        let (networks, routers, _) = owned(&api, "alice-project").await;
        assert!(
            networks.is_empty() && routers.is_empty(),
            "{networks:?} {routers:?}"
        );

        let r = topology(&api, ALICE, "alice-project?fields=name").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.error_type(), "BadRequest");
        assert_eq!(
            r.error_message(),
            "Bad auto_allocate request: Unrecognized field."
        );
        // Another project's topology is not Alice's to ask for.
        let r = topology(&api, ALICE, "bob-project").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.error_type(), "NotAuthorized");
        let r = api
            .call_as(
                ALICE,
                Method::DELETE,
                "/v2.0/auto-allocated-topology/bob-project",
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
);

on_both_databases!(
    the_first_call_builds_it_and_later_ones_answer_it,
    |api: TestApi| async move {
        let (external, _) = default_external(&api, ("172.24.4.10", "172.24.4.200")).await;
        let pool = default_pool(&api).await;
        let r = topology(&api, ALICE, "None").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let network_id = r.body["auto_allocated_topology"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            r.body,
            json!({"auto_allocated_topology": {"id": network_id, "project_id": "alice-project",
                "tenant_id": "alice-project"}})
        );
        let again = topology(&api, ALICE, "alice-project").await;
        assert_eq!(again.body, r.body);

        let (networks, routers, subnets) = owned(&api, "alice-project").await;
        assert_eq!(networks.len(), 1, "{networks:?}");
        assert_eq!(networks[0]["id"], network_id.as_str());
        assert_eq!(networks[0]["name"], "auto_allocated_network");
        assert_eq!(networks[0]["admin_state_up"], true);
        assert_eq!(subnets.len(), 1, "{subnets:?}");
        assert_eq!(subnets[0]["name"], "auto_allocated_subnet_v4");
        assert_eq!(subnets[0]["subnetpool_id"], pool["id"]);
        assert!(subnets[0]["cidr"].as_str().unwrap().ends_with("/26"));
        assert_eq!(routers.len(), 1, "{routers:?}");
        let router = &routers[0];
        assert_eq!(router["name"], "auto_allocated_router");
        assert_eq!(
            router["external_gateway_info"]["network_id"],
            external.as_str()
        );
        let r = api
            .call(
                Method::GET,
                &format!(
                    "/v2.0/ports?device_id={}&device_owner=network:router_interface",
                    router["id"].as_str().unwrap()
                ),
                None,
            )
            .await;
        let interfaces = r.body["ports"].as_array().unwrap();
        assert_eq!(interfaces.len(), 1, "{}", r.body);
        assert_eq!(interfaces[0]["fixed_ips"][0]["subnet_id"], subnets[0]["id"]);
        assert_eq!(
            interfaces[0]["fixed_ips"][0]["ip_address"],
            subnets[0]["gateway_ip"]
        );

        // Removal: the interface, the router and the network; a second removal is a no-op.
        for _ in 0..2 {
            let r = api
                .call_as(
                    ALICE,
                    Method::DELETE,
                    "/v2.0/auto-allocated-topology/alice-project",
                    None,
                )
                .await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        }
        let (networks, routers, subnets) = owned(&api, "alice-project").await;
        assert!(
            networks.is_empty() && routers.is_empty() && subnets.is_empty(),
            "{networks:?} {routers:?} {subnets:?}"
        );
        // Asked again, a new one is built.
        let r = topology(&api, ALICE, "alice-project").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_ne!(r.body["auto_allocated_topology"]["id"], network_id.as_str());
    }
);

on_both_databases!(
    concurrent_first_calls_agree_on_one_topology,
    |api: TestApi| async move {
        default_external(&api, ("172.24.4.10", "172.24.4.200")).await;
        default_pool(&api).await;
        let api = Arc::new(api);
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let api = api.clone();
                tokio::spawn(async move { topology(&api, BOB, "bob-project").await })
            })
            .collect();
        let mut ids = Vec::new();
        for call in calls {
            let r = call.await.unwrap();
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            ids.push(r.body["auto_allocated_topology"]["id"].clone());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{ids:?}");
        let (networks, routers, subnets) = owned(&api, "bob-project").await;
        assert_eq!(
            (networks.len(), routers.len(), subnets.len()),
            (1, 1, 1),
            "{networks:?} {routers:?}"
        );
        assert_eq!(networks[0]["id"], ids[0]);
    }
);

on_both_databases!(
    a_failure_half_way_leaves_nothing,
    |api: TestApi| async move {
        // One address on the external network, taken: the router gets no gateway.
        let (external, _) = default_external(&api, ("172.24.4.10", "172.24.4.10")).await;
        created(&api, "ports", json!({"network_id": external})).await;
        default_pool(&api).await;
        let r = topology(&api, ALICE, "alice-project").await;
        failure(
            &r,
            "Deployment error: Unable to provide external connectivity.",
        );
        let (networks, routers, subnets) = owned(&api, "alice-project").await;
        assert!(
            networks.is_empty() && routers.is_empty() && subnets.is_empty(),
            "{networks:?} {routers:?} {subnets:?}"
        );
        // Over quota is the project's own to fix, and said so.
        let r = api
            .call(
                Method::PUT,
                "/v2.0/quotas/bob-project",
                Some(json!({"quota": {"network": 0}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = topology(&api, BOB, "bob-project").await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert_eq!(r.error_type(), "OverQuota", "{}", r.body);
    }
);

on_both_databases!(
    readers_do_not_build_and_a_topology_in_use_stays,
    |api: TestApi| async move {
        default_external(&api, ("172.24.4.10", "172.24.4.200")).await;
        default_pool(&api).await;
        let reader = Some(("alice-project", "reader"));
        let r = topology(&api, reader, "alice-project").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let (networks, routers, _) = owned(&api, "alice-project").await;
        assert!(
            networks.is_empty() && routers.is_empty(),
            "{networks:?} {routers:?}"
        );
        // Once made, a reader reads it.
        let made = topology(&api, ALICE, "alice-project").await;
        assert_eq!(made.status, StatusCode::OK, "{}", made.body);
        let read = topology(&api, reader, "alice-project").await;
        assert_eq!(read.body, made.body);

        // A port on its network: removal says so, and the topology stays.
        let network = made.body["auto_allocated_topology"]["id"].clone();
        let r = api
            .call_as(
                ALICE,
                Method::POST,
                "/v2.0/ports",
                Some(json!({"port": {"network_id": network}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let port = r.body["port"]["id"].as_str().unwrap().to_string();
        let r = api
            .call_as(
                ALICE,
                Method::DELETE,
                "/v2.0/auto-allocated-topology/alice-project",
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert_eq!(r.error_type(), "NetworkInUse");
        let again = topology(&api, ALICE, "alice-project").await;
        assert_eq!(again.body["auto_allocated_topology"]["id"], network);
        let r = api
            .call_as(ALICE, Method::DELETE, &format!("/v2.0/ports/{port}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let r = api
            .call_as(
                ALICE,
                Method::DELETE,
                "/v2.0/auto-allocated-topology/alice-project",
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let (networks, routers, _) = owned(&api, "alice-project").await;
        assert!(
            networks.is_empty() && routers.is_empty(),
            "{networks:?} {routers:?}"
        );
    }
);
