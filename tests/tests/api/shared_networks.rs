//! Ports on a network another project shares (issue 12, finding 3): Neutron's policy lets a
//! non-owner make a plain port there and name its subnet, nothing that lets it pose as the
//! network's devices or take addresses others rely on.

use axum::http::{Method, StatusCode};
use neutrino_tests::api::{Reply, TestApi};
use neutrino_tests::on_both_databases;
use serde_json::{Value, json};

const MEMBER: Option<(&str, &str)> = Some(("tenant-b", "member"));

async fn port_as(api: &TestApi, who: Option<(&str, &str)>, body: Value) -> Reply {
    api.call_as(
        who,
        Method::POST,
        "/v2.0/ports",
        Some(json!({ "port": body })),
    )
    .await
}

/// An admin's shared network with a /24: (network id, subnet id).
async fn shared_network(api: &TestApi) -> (String, String) {
    let r = api
        .call(
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {"name": "public", "shared": true}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let net = r.body["network"]["id"].as_str().unwrap().to_string();
    let r = api
        .call(
            Method::POST,
            "/v2.0/subnets",
            Some(json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.0.0.0/24"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let subnet = r.body["subnet"]["id"].as_str().unwrap().to_string();
    (net, subnet)
}

fn assert_denied(r: &Reply, rule: &str) {
    assert_eq!(
        (r.status, r.error_type()),
        (StatusCode::FORBIDDEN, "PolicyNotAuthorized"),
        "{}",
        r.body
    );
    assert_eq!(r.error_message(), format!("{rule} is disallowed by policy"));
}

on_both_databases!(
    a_non_owner_makes_only_plain_ports_on_a_shared_network,
    |api: TestApi| async move {
        let (net, subnet) = shared_network(&api).await;
        let refused = [
            (
                json!({"network_id": net, "fixed_ips": [{"ip_address": "10.0.0.1"}]}),
                "(rule:create_port and rule:create_port:fixed_ips:ip_address)",
            ),
            (
                json!({"network_id": net, "fixed_ips": [{"subnet_id": subnet, "ip_address": "10.0.0.7"}]}),
                "(rule:create_port and rule:create_port:fixed_ips:ip_address)",
            ),
            (
                json!({"network_id": net, "mac_address": "fa:16:3e:00:00:01"}),
                "(rule:create_port and rule:create_port:mac_address)",
            ),
            (
                json!({"network_id": net, "device_owner": "network:router_interface"}),
                "(rule:create_port and rule:create_port:device_owner)",
            ),
            (
                json!({"network_id": net, "device_owner": "network:dhcp"}),
                "(rule:create_port and rule:create_port:device_owner)",
            ),
            (
                json!({"network_id": net, "port_security_enabled": false}),
                "(rule:create_port and rule:create_port:port_security_enabled)",
            ),
            (
                json!({"network_id": net, "allowed_address_pairs": [{"ip_address": "10.0.0.0/24"}]}),
                "(rule:create_port and rule:create_port:allowed_address_pairs)",
            ),
        ];
        for (body, rule) in refused {
            assert_denied(&port_as(&api, MEMBER, body).await, rule);
        }

        // A plain port, one naming the subnet, one with an ordinary device owner: allowed.
        let r = port_as(&api, MEMBER, json!({"network_id": net})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let id = r.body["port"]["id"].as_str().unwrap().to_string();
        assert_ne!(r.body["port"]["fixed_ips"][0]["ip_address"], "10.0.0.1");
        let r = port_as(
        &api,
        MEMBER,
        json!({"network_id": net, "fixed_ips": [{"subnet_id": subnet}], "device_owner": "compute:nova"}),
    )
    .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

        // Its own port: still not a network device, its address not picked.
        let update = |body: Value| {
            let path = format!("/v2.0/ports/{id}");
            let api = &api;
            async move {
                api.call_as(MEMBER, Method::PUT, &path, Some(json!({ "port": body })))
                    .await
            }
        };
        assert_denied(
            &update(json!({"device_owner": "network:router_interface"})).await,
            "(rule:update_port and rule:update_port:device_owner)",
        );
        assert_denied(
            &update(json!({"fixed_ips": [{"ip_address": "10.0.0.1"}]})).await,
            "(rule:update_port and rule:update_port:fixed_ips:ip_address)",
        );
        assert_denied(
            &update(json!({"port_security_enabled": false})).await,
            "(rule:update_port and rule:update_port:port_security_enabled)",
        );
        let r = update(json!({"name": "mine"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);

        // The network's owner (here the admin) may do all of it.
        let r = port_as(
        &api,
        None,
        json!({"network_id": net, "fixed_ips": [{"ip_address": "10.0.0.9"}], "device_owner": "network:router_interface"}),
    )
    .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

        // A server boot asking for the gateway's address on the shared network: refused, no port.
        let before = api.call(Method::GET, "/v2.0/ports", None).await.body["ports"]
            .as_array()
            .unwrap()
            .len();
        let r = api
        .call_as(
            MEMBER,
            Method::POST,
            "/v2.1/servers",
            Some(json!({"server": {"name": "squat", "networks": [{"uuid": net, "fixed_ip": "10.0.0.1"}]}})),
        )
        .await;
        assert!(r.status.is_client_error(), "{}: {}", r.status, r.body);
        let after = api.call(Method::GET, "/v2.0/ports", None).await.body["ports"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(before, after);
    }
);
