//! Agent credentials scoped to their host (issue 12, finding 9): a server as `serve` runs by
//! default (no shared token) accepts a host's feed, port and instance statuses and agent reports
//! only with that host's own credential (`neutrino agent enroll HOST`), on SQLite and
//! PostgreSQL.

use axum::http::{Method, StatusCode};
use neutrino::api::internal::token_digest;
use neutrino::store::agent_credentials;
use neutrino_tests::api::{Reply, TestApi};
use neutrino_tests::for_both_databases;
use serde_json::{Value, json};

fn ovs_report(host: &str) -> Value {
    json!({"agent_type": "Open vSwitch agent", "binary": "neutrino-agent", "host": host,
        "topic": "N/A", "start_flag": true,
        "configurations": {"bridge_mappings": {"physnet1": "br-ex"}, "tunnel_types": ["vxlan"],
            "tunneling_ip": "127.0.0.1", "integration_bridge": "br-int",
            "datapath_type": "netdev", "ovs_hybrid_plug": true}})
}

async fn feed(api: &TestApi, token: &str, host: &str) -> Reply {
    api.internal(
        token,
        Method::GET,
        &format!("/internal/hosts/{host}/changes?after=0&timeout=0"),
        Vec::new(),
    )
    .await
}

async fn port_status(api: &TestApi, token: &str, host: &str, port: &str, status: &str) -> Reply {
    api.internal(
        token,
        Method::POST,
        &format!("/internal/hosts/{host}/ports/status"),
        json!({"ports": [{"id": port, "status": status}]})
            .to_string()
            .into_bytes(),
    )
    .await
}

async fn instance_status(api: &TestApi, token: &str, host: &str) -> Reply {
    api.internal(
        token,
        Method::POST,
        &format!("/internal/hosts/{host}/instances/status"),
        br#"{"instances": []}"#.to_vec(),
    )
    .await
}

/// A 403 in Neutron's shape that names neither host.
fn assert_forbidden(r: &Reply, hosts: &[&str]) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.error_type(), "HTTPForbidden", "{}", r.body);
    assert!(!r.error_message().is_empty(), "{}", r.body);
    let text = r.body.to_string();
    for h in hosts {
        assert!(!text.contains(h), "the answer names {h}: {text}");
    }
}

fn assert_unauthorized(r: &Reply) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.error_type(), "HTTPUnauthorized", "{}", r.body);
}

async fn port_status_of(api: &TestApi, port: &str) -> String {
    let r = api
        .call(Method::GET, &format!("/v2.0/ports/{port}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["port"]["status"].as_str().unwrap().to_string()
}

for_both_databases!(
    a_host_credential_is_good_for_its_own_host_only,
    |db| async move {
        let api = TestApi::scoped(db).await;
        let (a, b) = ("cred-host-a", "cred-host-b");
        let token_a = api.enroll(a).await;
        let token_b = api.enroll(b).await;
        assert_ne!(token_a, token_b);
        // Each agent reports for its own host.
        let r = api.report_with(&token_a, ovs_report(a)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = api.report_with(&token_b, ovs_report(b)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        // A's credential cannot register an agent for B.
        let r = api.report_with(&token_a, ovs_report(b)).await;
        assert_forbidden(&r, &[a, b]);
        let mut dhcp_b = ovs_report(b);
        dhcp_b["agent_type"] = json!("DHCP agent");
        let r = api.report_with(&token_a, dhcp_b).await;
        assert_forbidden(&r, &[a, b]);
        let agents = api
            .call(Method::GET, &format!("/v2.0/agents?host={b}"), None)
            .await;
        assert_eq!(
            agents.body["agents"].as_array().unwrap().len(),
            1,
            "{}",
            agents.body
        );

        // A port bound to B.
        let n = api
            .call(
                Method::POST,
                "/v2.0/networks",
                Some(json!({"network": {"name": "n"}})),
            )
            .await;
        assert_eq!(n.status, StatusCode::CREATED, "{}", n.body);
        let network = n.body["network"]["id"].as_str().unwrap().to_string();
        let s = api
            .call(
                Method::POST,
                "/v2.0/subnets",
                Some(
                    json!({"subnet": {"network_id": network, "cidr": "10.9.0.0/24",
                "ip_version": 4, "enable_dhcp": false}}),
                ),
            )
            .await;
        assert_eq!(s.status, StatusCode::CREATED, "{}", s.body);
        let p = api
            .call(
                Method::POST,
                "/v2.0/ports",
                Some(json!({"port": {"network_id": network, "binding:host_id": b}})),
            )
            .await;
        assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
        let port = p.body["port"]["id"].as_str().unwrap().to_string();
        assert_eq!(port_status_of(&api, &port).await, "DOWN");

        // B's feed: B's credential reads it, A's is refused and learns nothing of it.
        let r = feed(&api, &token_b, b).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.to_string().contains(&port), "{}", r.body);
        let r = feed(&api, &token_a, b).await;
        assert_forbidden(&r, &[a, b]);
        assert!(!r.body.to_string().contains(&port));
        let r = feed(&api, &token_a, a).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(!r.body.to_string().contains(&port), "{}", r.body);

        // A cannot set B's port ACTIVE, neither through B's path nor by naming it on its own.
        let r = port_status(&api, &token_a, b, &port, "ACTIVE").await;
        assert_forbidden(&r, &[a, b]);
        let r = port_status(&api, &token_a, a, &port, "ACTIVE").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body, json!({"updated": 0, "ignored": 1}));
        assert_eq!(port_status_of(&api, &port).await, "DOWN");
        let r = instance_status(&api, &token_a, b).await;
        assert_forbidden(&r, &[a, b]);
        // B can.
        let r = port_status(&api, &token_b, b, &port, "ACTIVE").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(port_status_of(&api, &port).await, "ACTIVE");
        let r = instance_status(&api, &token_b, b).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

        // Without --shared-agent-token the token file is nobody's credential; guesses are 401.
        for token in [api.agent_token.as_str(), "a guess", ""] {
            assert_unauthorized(&feed(&api, token, a).await);
            assert_unauthorized(&api.report_with(token, ovs_report(a)).await);
            assert_unauthorized(&port_status(&api, token, b, &port, "DOWN").await);
            assert_unauthorized(&instance_status(&api, token, b).await);
        }
        // Only the token's digest is stored.
        let store = &api.state.store;
        assert_eq!(
            agent_credentials::host_of(&store.read, &token_digest(&token_a))
                .await
                .unwrap()
                .as_deref(),
            Some(a)
        );
        assert_eq!(
            agent_credentials::host_of(&store.read, &token_a)
                .await
                .unwrap(),
            None
        );
    }
);

for_both_databases!(a_revoked_credential_is_refused, |db| async move {
    let api = TestApi::scoped(db).await;
    let host = "revoked-host";
    let token = api.enroll(host).await;
    let r = api.report_with(&token, ovs_report(host)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(feed(&api, &token, host).await.status, StatusCode::OK);
    assert!(api.revoke(host).await);
    assert_unauthorized(&api.report_with(&token, ovs_report(host)).await);
    assert_unauthorized(&feed(&api, &token, host).await);
    assert_unauthorized(&instance_status(&api, &token, host).await);
    assert!(!api.revoke(host).await, "nothing left to revoke");
    // Enrolled again, the host has a new token; the revoked one stays refused.
    let again = api.enroll(host).await;
    assert_eq!(feed(&api, &again, host).await.status, StatusCode::OK);
    assert_unauthorized(&feed(&api, &token, host).await);
});

for_both_databases!(enrolling_again_replaces_the_token, |db| async move {
    let api = TestApi::scoped(db).await;
    let host = "re-enrolled-host";
    let first = api.enroll(host).await;
    let second = api.enroll(host).await;
    assert_ne!(first, second);
    assert_unauthorized(&api.report_with(&first, ovs_report(host)).await);
    let r = api.report_with(&second, ovs_report(host)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let listed = agent_credentials::list(&api.state.store.read)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
});

for_both_databases!(
    the_shared_token_serves_every_host_only_when_asked,
    |db| async move {
        // TestApi::new runs with --shared-agent-token: its token is good for any host, and hosts'
        // own credentials still keep to their host beside it.
        let api = TestApi::new(db).await;
        for host in ["shared-1", "shared-2"] {
            let r = api.report_with(&api.agent_token, ovs_report(host)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(
                feed(&api, &api.agent_token, host).await.status,
                StatusCode::OK
            );
        }
        let own = api.enroll("shared-1").await;
        assert_eq!(feed(&api, &own, "shared-1").await.status, StatusCode::OK);
        assert_forbidden(
            &feed(&api, &own, "shared-2").await,
            &["shared-1", "shared-2"],
        );
    }
);
