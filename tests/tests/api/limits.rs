//! Limits on every input (issue 12, findings 4 and 5): what Neutron refuses, refused with its
//! status and error type, before anything is stored.

use axum::http::{Method, StatusCode};
use neutrino_tests::api::{Reply, TestApi};
use neutrino_tests::on_both_databases;
use serde_json::{Value, json};

async fn post(api: &TestApi, collection: &str, resource: &str, body: Value) -> Reply {
    api.call(
        Method::POST,
        &format!("/v2.0/{collection}"),
        Some(json!({ resource: body })),
    )
    .await
}

async fn network_with_subnet(api: &TestApi) -> String {
    let r = post(api, "networks", "network", json!({"name": "n"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let net = r.body["network"]["id"].as_str().unwrap().to_string();
    let r = post(
        api,
        "subnets",
        "subnet",
        json!({"network_id": net, "ip_version": 4, "cidr": "10.0.0.0/24"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    net
}

async fn port_count(api: &TestApi) -> usize {
    let r = api.call(Method::GET, "/v2.0/ports", None).await;
    r.body["ports"].as_array().unwrap().len()
}

on_both_databases!(address_pairs_are_at_most_ten, |api: TestApi| async move {
    let net = network_with_subnet(&api).await;
    let pairs = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"ip_address": format!("10.1.0.{i}")}))
            .collect()
    };
    let r = post(
        &api,
        "ports",
        "port",
        json!({"network_id": net, "allowed_address_pairs": pairs(10)}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["port"]["id"].as_str().unwrap().to_string();

    let r = post(
        &api,
        "ports",
        "port",
        json!({"network_id": net, "allowed_address_pairs": pairs(11)}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_type()),
        (StatusCode::BAD_REQUEST, "AllowedAddressPairExhausted"),
        "{}",
        r.body
    );
    assert_eq!(
        r.body["NeutronError"]["message"],
        "The number of allowed address pair exceeds the maximum 10."
    );
    let r = api
        .call(
            Method::PUT,
            &format!("/v2.0/ports/{id}"),
            Some(json!({"port": {"allowed_address_pairs": pairs(11)}})),
        )
        .await;
    assert_eq!(r.error_type(), "AllowedAddressPairExhausted", "{}", r.body);
    assert_eq!(port_count(&api).await, 1);
});

on_both_databases!(
    dhcp_options_are_checked_at_the_api,
    |api: TestApi| async move {
        let net = network_with_subnet(&api).await;
        let long_name = "x".repeat(65);
        let long_value = "v".repeat(256);
        let refused = [
            json!({"opt_name": long_name, "opt_value": "1"}),
            json!({"opt_name": "domain-search", "opt_value": long_value}),
            json!({"opt_name": "domain-search", "opt_value": "a.example\ndhcp-range=10.9.0.0,static"}),
            json!({"opt_name": "bad name", "opt_value": "1"}),
        ];
        for opt in refused {
            let r = post(
                &api,
                "ports",
                "port",
                json!({"network_id": net, "extra_dhcp_opts": [opt]}),
            )
            .await;
            assert_eq!(
                (r.status, r.error_type()),
                (StatusCode::BAD_REQUEST, "HTTPBadRequest"),
                "{opt}: {}",
                r.body
            );
        }
        assert_eq!(port_count(&api).await, 0);
        let r = post(
            &api,
            "ports",
            "port",
            json!({"network_id": net, "extra_dhcp_opts": [
                {"opt_name": "x".repeat(64), "opt_value": "v".repeat(255)},
                {"opt_name": "tftp-server", "opt_value": "10.0.0.9"},
            ]}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
);

on_both_databases!(
    a_body_over_112_kib_is_413_in_neutrons_shape,
    |api: TestApi| async move {
        let net = network_with_subnet(&api).await;
        let ports: Vec<Value> = (0..2_000)
            .map(|i| json!({"network_id": net, "name": format!("port-{i:06}-with-a-long-name")}))
            .collect();
        let body = serde_json::to_vec(&json!({ "ports": ports })).unwrap();
        assert!(body.len() > 114_688);
        let r = api.raw(None, Method::POST, "/v2.0/ports", body).await;
        assert_eq!(
            (r.status, r.error_type()),
            (StatusCode::PAYLOAD_TOO_LARGE, "HTTPRequestEntityTooLarge"),
            "{}",
            r.body
        );
        assert_eq!(port_count(&api).await, 0);
    }
);
