//! `/v2.0/floatingips` (`router`, `fip-port-details`) against Neutron's statuses, error types
//! and texts (shared/reference/neutron-l3-security.md section 5, neutron-transcript seqs 74,
//! 91, 117, 118), on SQLite and PostgreSQL: the external port, the association checks in
//! their order, the router chosen, disassociation by PUT and by port deletion, another
//! project's reach, two floating IPs on one fixed address at once, and the hosts' feed.

use axum::http::{Method, StatusCode};
use neutrino_tests::api::TestApi;
use neutrino_tests::on_both_databases;
use serde_json::{Value, json};

use super::routers::{
    ALICE, BOB, action, assert_error, call, connected, create, external, feed_revision, get, id,
    l3_node, private, routers_heard, update,
};

async fn fip(api: &TestApi, who: Option<(&str, &str)>, body: Value) -> axum::http::StatusCode {
    call(
        api,
        who,
        Method::POST,
        "/v2.0/floatingips",
        Some(json!({"floatingip": body})),
    )
    .await
    .status
}

on_both_databases!(
    the_transcripts_floating_ip_steps,
    |api: TestApi| async move {
        let (ext, ext_sub) = external(&api, "172.24.4.0/24").await;
        let (net, sub) = private(&api, ALICE, "10.0.0.0/24").await;
        let rid = connected(&api, ALICE, &ext, &sub).await;
        let port = create(
            &api,
            ALICE,
            "port",
            json!({"network_id": net, "name": "p2",
            "fixed_ips": [{"subnet_id": sub, "ip_address": "10.0.0.50"}]}),
        )
        .await;
        let pid = id(&port);
        // seq 74
        let f = create(
            &api,
            ALICE,
            "floatingip",
            json!({"floating_network_id": ext, "port_id": pid}),
        )
        .await;
        let fid = id(&f);
        let mut keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected = vec![
            "id",
            "tenant_id",
            "project_id",
            "floating_ip_address",
            "floating_network_id",
            "router_id",
            "port_id",
            "fixed_ip_address",
            "status",
            "description",
            "port_details",
            "tags",
            "created_at",
            "updated_at",
            "revision_number",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(f["router_id"], rid.as_str());
        assert_eq!(f["fixed_ip_address"], "10.0.0.50");
        assert_eq!(f["status"], "DOWN");
        assert_eq!(f["revision_number"], 0);
        assert_eq!(
            f["port_details"],
            json!({"name": "p2", "network_id": net,
            "mac_address": port["mac_address"], "admin_state_up": true, "status": "DOWN",
            "device_id": "", "device_owner": ""})
        );
        // The address is held by an external port of no project.
        let address = f["floating_ip_address"].as_str().unwrap();
        let ext_ports = get(&api, None, &format!("/v2.0/ports?device_id={fid}")).await;
        let ext_port = &ext_ports.body["ports"][0];
        assert_eq!(ext_port["device_owner"], "network:floatingip");
        assert_eq!(ext_port["project_id"], "");
        assert_eq!(
            ext_port["fixed_ips"][0],
            json!({"subnet_id": ext_sub, "ip_address": address})
        );
        let ext_port_id = ext_port["id"].as_str().unwrap().to_string();
        // seq 117
        let shown = get(&api, ALICE, &format!("/v2.0/floatingips/{fid}")).await;
        assert_eq!(shown.body["floatingip"], f);
        let listed = get(&api, ALICE, &format!("/v2.0/floatingips?port_id={pid}")).await;
        assert_eq!(listed.body["floatingips"], json!([f]));
        // The gateway may not change while it serves the floating IP.
        let g = update(&api, ALICE, &rid, json!({"external_gateway_info": {}})).await;
        assert_error(
            &g,
            StatusCode::CONFLICT,
            "RouterExternalGatewayInUseByFloatingIp",
            &format!(
                "Gateway cannot be updated for router {rid}, since a gateway to external network {ext} is required by one or more floating IPs."
            ),
        );
        let i = action(
            &api,
            ALICE,
            &rid,
            "remove_router_interface",
            json!({"subnet_id": sub}),
        )
        .await;
        assert_error(
            &i,
            StatusCode::CONFLICT,
            "RouterInterfaceInUseByFloatingIP",
            &format!(
                "Router interface for subnet {sub} on router {rid} cannot be deleted, as it is required by one or more floating IPs."
            ),
        );
        // Its external port is not the port API's to delete.
        let d = call(
            &api,
            None,
            Method::DELETE,
            &format!("/v2.0/ports/{ext_port_id}"),
            None,
        )
        .await;
        assert_error(
            &d,
            StatusCode::CONFLICT,
            "ServicePortInUse",
            &format!(
                "Port {ext_port_id} cannot be deleted directly via the port API: has device owner network:floatingip."
            ),
        );
        // PUT without port_id keeps the association; null disassociates.
        let kept = call(
            &api,
            ALICE,
            Method::PUT,
            &format!("/v2.0/floatingips/{fid}"),
            Some(json!({"floatingip": {"description": "d"}})),
        )
        .await;
        assert_eq!(
            kept.body["floatingip"]["port_id"],
            pid.as_str(),
            "{}",
            kept.body
        );
        let off = call(
            &api,
            ALICE,
            Method::PUT,
            &format!("/v2.0/floatingips/{fid}"),
            Some(json!({"floatingip": {"port_id": null}})),
        )
        .await;
        assert_eq!(off.status, StatusCode::OK, "{}", off.body);
        assert_eq!(
            (
                off.body["floatingip"]["port_id"].clone(),
                off.body["floatingip"]["router_id"].clone(),
                off.body["floatingip"]["port_details"].clone()
            ),
            (Value::Null, Value::Null, Value::Null)
        );
        let g = update(
            &api,
            ALICE,
            &rid,
            json!({"external_gateway_info": {"network_id": ext}}),
        )
        .await;
        assert_eq!(g.status, StatusCode::OK, "{}", g.body);
        // Associated again, then the port goes: the floating IP survives, disassociated.
        let on = call(
            &api,
            ALICE,
            Method::PUT,
            &format!("/v2.0/floatingips/{fid}"),
            Some(json!({"floatingip": {"port_id": pid, "fixed_ip_address": "10.0.0.50"}})),
        )
        .await;
        assert_eq!(
            on.body["floatingip"]["router_id"],
            rid.as_str(),
            "{}",
            on.body
        );
        // Its associated address may not leave the port.
        let moved = call(
            &api,
            ALICE,
            Method::PUT,
            &format!("/v2.0/ports/{pid}"),
            Some(json!({"port": {"fixed_ips": [{"subnet_id": sub, "ip_address": "10.0.0.51"}]}})),
        )
        .await;
        assert_error(
            &moved,
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
            &format!(
                "Cannot update the fixed_ips of the port {pid}, because its original fixed_ip has been associated to a floating ip"
            ),
        );
        let d = call(
            &api,
            ALICE,
            Method::DELETE,
            &format!("/v2.0/ports/{pid}"),
            None,
        )
        .await;
        assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.body);
        let after = get(&api, ALICE, &format!("/v2.0/floatingips/{fid}")).await;
        assert_eq!(
            after.body["floatingip"]["port_id"],
            Value::Null,
            "{}",
            after.body
        );
        assert_eq!(after.body["floatingip"]["floating_ip_address"], address);
        // seq 118: the external port goes with it.
        let d = call(
            &api,
            ALICE,
            Method::DELETE,
            &format!("/v2.0/floatingips/{fid}"),
            None,
        )
        .await;
        assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.body);
        assert_eq!(
            get(&api, None, &format!("/v2.0/ports/{ext_port_id}"))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        // seq 91
        let missing = get(&api, ALICE, &format!("/v2.0/floatingips/{fid}")).await;
        assert_error(
            &missing,
            StatusCode::NOT_FOUND,
            "FloatingIPNotFound",
            &format!("Floating IP {fid} could not be found"),
        );
    }
);

on_both_databases!(
    association_checks_in_neutrons_order,
    |api: TestApi| async move {
        let (ext, _) = external(&api, "172.24.4.0/24").await;
        let (net, sub) = private(&api, ALICE, "10.0.0.0/24").await;
        let (private_net, _) = private(&api, ALICE, "10.7.0.0/24").await;
        let r = call(
            &api,
            ALICE,
            Method::POST,
            "/v2.0/floatingips",
            Some(json!({"floatingip": {"floating_network_id": private_net}})),
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "Bad floatingip request: Network {private_net} is not a valid external network."
            ),
        );
        let r = call(&api, ALICE, Method::POST, "/v2.0/floatingips",
            Some(json!({"floatingip": {"floating_network_id": "0e4b5f6c-4f1a-4c6e-9d7e-2f0a1b2c3d4e"}}))).await;
        assert_error(&r, StatusCode::NOT_FOUND, "NetworkNotFound", "");
        let r = call(
            &api,
            ALICE,
            Method::POST,
            "/v2.0/floatingips",
            Some(
                json!({"floatingip": {"floating_network_id": ext, "fixed_ip_address": "10.0.0.5"}}),
            ),
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Bad floatingip request: fixed_ip_address cannot be specified without a port_id.",
        );
        let r = call(&api, ALICE, Method::POST, "/v2.0/floatingips",
            Some(json!({"floatingip": {"floating_network_id": ext, "floating_ip_address": "172.24.4.9"}}))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        // No router between the port's subnet and the external network.
        let port = id(&create(&api, ALICE, "port", json!({"network_id": net})).await);
        let r = call(
            &api,
            ALICE,
            Method::POST,
            "/v2.0/floatingips",
            Some(json!({"floatingip": {"floating_network_id": ext, "port_id": port}})),
        )
        .await;
        assert_error(
            &r,
            StatusCode::NOT_FOUND,
            "ExternalGatewayForFloatingIPNotFound",
            &format!(
                "External network {ext} is not reachable from subnet {sub}.  Therefore, cannot associate Port {port} with a Floating IP."
            ),
        );
        connected(&api, ALICE, &ext, &sub).await;
        let r = call(&api, ALICE, Method::POST, "/v2.0/floatingips",
            Some(json!({"floatingip": {"floating_network_id": ext, "port_id": port, "fixed_ip_address": "10.0.0.99"}}))).await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Bad floatingip request: Port {port} does not have fixed ip 10.0.0.99."),
        );
        let two = id(&create(
            &api,
            ALICE,
            "port",
            json!({"network_id": net,
            "fixed_ips": [{"subnet_id": sub}, {"subnet_id": sub}]}),
        )
        .await);
        let r = call(
            &api,
            ALICE,
            Method::POST,
            "/v2.0/floatingips",
            Some(json!({"floatingip": {"floating_network_id": ext, "port_id": two}})),
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "Bad floatingip request: Port {two} has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP."
            ),
        );
        // Another project's port, or floating IP.
        let r = call(
            &api,
            BOB,
            Method::POST,
            "/v2.0/floatingips",
            Some(json!({"floatingip": {"floating_network_id": ext, "port_id": port}})),
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "Bad floatingip request: Cannot process floating IP association with Port {port}, since that port is owned by a different project."
            ),
        );
        let f = create(
            &api,
            ALICE,
            "floatingip",
            json!({"floating_network_id": ext, "port_id": port}),
        )
        .await;
        let fid = id(&f);
        for (method, body) in [
            (Method::GET, None),
            (Method::PUT, Some(json!({"floatingip": {"port_id": null}}))),
            (Method::DELETE, None),
        ] {
            let r = call(&api, BOB, method, &format!("/v2.0/floatingips/{fid}"), body).await;
            assert_error(&r, StatusCode::NOT_FOUND, "FloatingIPNotFound", "");
        }
        assert_eq!(
            get(&api, BOB, "/v2.0/floatingips").await.body,
            json!({"floatingips": []})
        );
        // A second floating IP on the same fixed address.
        let r = call(
            &api,
            ALICE,
            Method::POST,
            "/v2.0/floatingips",
            Some(json!({"floatingip": {"floating_network_id": ext, "port_id": port}})),
        )
        .await;
        assert_eq!(
            (r.status, r.error_type()),
            (StatusCode::CONFLICT, "FloatingIPPortAlreadyAssociated"),
            "{}",
            r.body
        );
        assert!(r.error_message().ends_with(&format!("with port {port} using fixed IP {}, as that fixed IP already has a floating IP on external network {ext}.", f["fixed_ip_address"].as_str().unwrap())), "{}", r.body);
        // An admin may ask for the address.
        let r = create(
            &api,
            None,
            "floatingip",
            json!({"floating_network_id": ext, "floating_ip_address": "172.24.4.200"}),
        )
        .await;
        assert_eq!(r["floating_ip_address"], "172.24.4.200");
        assert_eq!(r["port_details"], Value::Null);
    }
);

on_both_databases!(
    two_floating_ips_on_one_fixed_address_at_once,
    |api: TestApi| async move {
        let (ext, _) = external(&api, "172.24.4.0/24").await;
        let (net, sub) = private(&api, ALICE, "10.0.0.0/24").await;
        connected(&api, ALICE, &ext, &sub).await;
        let port = id(&create(&api, ALICE, "port", json!({"network_id": net})).await);
        let body = json!({"floating_network_id": ext, "port_id": port});
        let (a, b) = tokio::join!(
            fip(&api, ALICE, body.clone()),
            fip(&api, ALICE, body.clone())
        );
        let mut statuses = [a, b];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);
        let listed = get(&api, ALICE, &format!("/v2.0/floatingips?port_id={port}")).await;
        assert_eq!(listed.body["floatingips"].as_array().unwrap().len(), 1);
    }
);

on_both_databases!(
    the_floating_ip_quota_is_enforced,
    |api: TestApi| async move {
        let (ext, _) = external(&api, "172.24.4.0/24").await;
        let q = call(
            &api,
            None,
            Method::PUT,
            "/v2.0/quotas/alice-project",
            Some(json!({"quota": {"floatingip": 1}})),
        )
        .await;
        assert_eq!(q.status, StatusCode::OK, "{}", q.body);
        assert_eq!(
            fip(&api, ALICE, json!({"floating_network_id": ext})).await,
            StatusCode::CREATED
        );
        let r = call(
            &api,
            ALICE,
            Method::POST,
            "/v2.0/floatingips",
            Some(json!({"floatingip": {"floating_network_id": ext}})),
        )
        .await;
        assert_error(
            &r,
            StatusCode::CONFLICT,
            "OverQuota",
            "Quota exceeded for resources: ['floatingip'].",
        );
    }
);

on_both_databases!(
    a_floating_ips_router_host_hears_of_it,
    |api: TestApi| async move {
        l3_node(&api, "node-1").await;
        let (ext, _) = external(&api, "172.24.4.0/24").await;
        let (net, sub) = private(&api, ALICE, "10.0.0.0/24").await;
        let rid = connected(&api, ALICE, &ext, &sub).await;
        let port = id(&create(&api, ALICE, "port", json!({"network_id": net})).await);
        let before = feed_revision(&api).await;
        let f = id(&create(
            &api,
            ALICE,
            "floatingip",
            json!({"floating_network_id": ext, "port_id": port}),
        )
        .await);
        assert_eq!(routers_heard(&api, "node-1", before).await, [rid.as_str()]);
        let before = feed_revision(&api).await;
        let off = call(
            &api,
            ALICE,
            Method::PUT,
            &format!("/v2.0/floatingips/{f}"),
            Some(json!({"floatingip": {"port_id": null}})),
        )
        .await;
        assert_eq!(off.status, StatusCode::OK, "{}", off.body);
        assert_eq!(routers_heard(&api, "node-1", before).await, [rid.as_str()]);
        let before = feed_revision(&api).await;
        let d = call(
            &api,
            ALICE,
            Method::PUT,
            &format!("/v2.0/floatingips/{f}"),
            Some(json!({"floatingip": {"description": "only"}})),
        )
        .await;
        assert_eq!(d.status, StatusCode::OK, "{}", d.body);
        assert!(routers_heard(&api, "node-1", before).await.is_empty());
        let on = call(
            &api,
            ALICE,
            Method::PUT,
            &format!("/v2.0/floatingips/{f}"),
            Some(json!({"floatingip": {"port_id": port}})),
        )
        .await;
        assert_eq!(on.status, StatusCode::OK, "{}", on.body);
        let before = feed_revision(&api).await;
        let d = call(
            &api,
            ALICE,
            Method::DELETE,
            &format!("/v2.0/floatingips/{f}"),
            None,
        )
        .await;
        assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.body);
        assert_eq!(routers_heard(&api, "node-1", before).await, [rid]);
    }
);
