//! Agents: heartbeat reports (`POST /internal/agents/report`) and `/v2.0/agents`, against the
//! statuses, error types and shapes a real Neutron gave (shared/reference/neutron-transcript
//! steps 54-57 and 94, transcript-rbac `bob_agents_list_filtered_empty`), on SQLite and
//! PostgreSQL, with one server and with two sharing the database.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::{Method, StatusCode};
use neutrino::store::agents;
use neutrino_tests::api::{Db, TestApi};
use neutrino_tests::{for_both_databases, on_both_databases};
use serde_json::{Value, json};

const MEMBER: Option<(&str, &str)> = Some(("project-b", "member,reader"));

/// The OVS agent of transcript step 56.
fn ovs_report(host: &str) -> Value {
    json!({
        "agent_type": "Open vSwitch agent",
        "binary": "neutron-openvswitch-agent",
        "host": host,
        "topic": "N/A",
        "start_flag": true,
        "configurations": {
            "bridge_mappings": {"physnet1": "br-ex"},
            "tunnel_types": ["vxlan"],
            "integration_bridge": "br-int",
            "datapath_type": "system",
            "ovs_hybrid_plug": false,
            "l2_population": false,
            "enable_distributed_routing": false,
            "ovs_capabilities": {"datapath_types": ["netdev", "system"], "iface_types": ["vxlan", "internal", "system", "patch"]},
            "tunneling_ip": "127.0.0.1",
            "devices": 0
        }
    })
}

fn dhcp_report(host: &str) -> Value {
    json!({"agent_type": "DHCP agent", "binary": "neutron-dhcp-agent", "host": host,
           "topic": "dhcp_agent", "configurations": {"dhcp_driver": "dnsmasq", "networks": 0}})
}

async fn report(api: &TestApi, body: Value) -> String {
    let r = api.report(body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["result"].as_str().unwrap().to_string()
}

async fn list(api: &TestApi, query: &str) -> Vec<Value> {
    let r = api
        .call(Method::GET, &format!("/v2.0/agents{query}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["agents"].as_array().unwrap().clone()
}

async fn only_agent(api: &TestApi) -> Value {
    let agents = list(api, "").await;
    assert_eq!(agents.len(), 1, "{agents:?}");
    agents[0].clone()
}

/// `2026-11-22 03:59:46`: Neutron's agent timestamps.
fn is_agent_time(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 19
        && s.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == ' ',
            13 | 16 => c == ':',
            _ => c.is_ascii_digit(),
        })
}

on_both_databases!(
    report_registers_and_lists_like_neutron,
    |api: TestApi| async move {
        assert_eq!(
            list(&api, "").await,
            Vec::<Value>::new(),
            "step 54: empty list"
        );
        assert_eq!(report(&api, ovs_report("compute1")).await, "new");
        assert_eq!(report(&api, ovs_report("compute1")).await, "alive");

        let a = only_agent(&api).await;
        let mut keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "admin_state_up",
                "agent_type",
                "alive",
                "availability_zone",
                "binary",
                "configurations",
                "created_at",
                "description",
                "heartbeat_timestamp",
                "host",
                "id",
                "resources_synced",
                "started_at",
                "topic"
            ],
            "the fields of transcript step 56"
        );
        assert_eq!(a["agent_type"], "Open vSwitch agent");
        assert_eq!(a["binary"], "neutron-openvswitch-agent");
        assert_eq!(a["topic"], "N/A");
        assert_eq!(a["host"], "compute1");
        assert_eq!(a["admin_state_up"], true);
        assert_eq!(a["alive"], true);
        assert_eq!(a["description"], Value::Null);
        assert_eq!(a["availability_zone"], Value::Null);
        assert_eq!(a["resources_synced"], true);
        assert_eq!(
            a["configurations"],
            ovs_report("compute1")["configurations"]
        );
        for t in ["created_at", "started_at", "heartbeat_timestamp"] {
            assert!(is_agent_time(&a[t]), "{t}: {}", a[t]);
        }
        let id = a["id"].as_str().unwrap();
        assert_eq!(id.len(), 36);

        let shown = api
            .call(Method::GET, &format!("/v2.0/agents/{id}"), None)
            .await;
        assert_eq!(shown.status, StatusCode::OK);
        assert_eq!(
            shown.body["agent"], a,
            "step 57: show equals the list entry"
        );
        let fields = api
            .call(
                Method::GET,
                &format!("/v2.0/agents/{id}.json?fields=host&fields=alive"),
                None,
            )
            .await;
        assert_eq!(
            fields.body["agent"],
            json!({"host": "compute1", "alive": true})
        );

        // Another type on the same host is another agent.
        assert_eq!(report(&api, dhcp_report("compute1")).await, "new");
        assert_eq!(list(&api, "").await.len(), 2);
        let missing = api
            .call(
                Method::GET,
                "/v2.0/agents/9dd1f574-b84c-4988-b5a7-cea1735d0e59",
                None,
            )
            .await;
        assert_eq!(
            (
                missing.status,
                missing.error_type(),
                missing.error_message()
            ),
            (
                StatusCode::NOT_FOUND,
                "AgentNotFound",
                "Agent 9dd1f574-b84c-4988-b5a7-cea1735d0e59 could not be found."
            ),
            "step 94"
        );
        let ext = api.call(Method::GET, "/v2.0/extensions/agent", None).await;
        assert_eq!(ext.body["extension"]["alias"], "agent");
    }
);

on_both_databases!(reported_changes_reach_the_api, |api: TestApi| async move {
    assert_eq!(report(&api, ovs_report("compute1")).await, "new");
    let first = only_agent(&api).await;
    let mut changed = ovs_report("compute1");
    changed["configurations"]["bridge_mappings"] = json!({"physnet2": "br-phys2"});
    changed["availability_zone"] = json!("az1");
    changed["start_flag"] = json!(false);
    assert_eq!(report(&api, changed.clone()).await, "alive");
    // Seen at once on this server (buffered), and after the flush from the database.
    for written in [1, 0] {
        let a = only_agent(&api).await;
        assert_eq!(a["configurations"], changed["configurations"]);
        assert_eq!(a["availability_zone"], "az1");
        assert_eq!(a["started_at"], first["started_at"]);
        assert!(api.state.heartbeats.flush().await.unwrap() <= written);
    }
    let stored = agents::on_host(&api.state.store.read, "compute1")
        .await
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(stored[0].configurations.clone()),
        changed["configurations"]
    );
});

on_both_databases!(update_and_delete, |api: TestApi| async move {
    report(&api, ovs_report("compute1")).await;
    let id = only_agent(&api).await["id"].as_str().unwrap().to_string();
    let path = format!("/v2.0/agents/{id}");
    let r = api
        .call(
            Method::PUT,
            &path,
            Some(json!({"agent": {"admin_state_up": false, "description": "draining"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["agent"]["admin_state_up"], false);
    assert_eq!(r.body["agent"]["description"], "draining");
    assert_eq!(r.body["agent"]["alive"], true);
    // A heartbeat does not undo an administrator's change.
    report(&api, ovs_report("compute1")).await;
    api.state.heartbeats.flush().await.unwrap();
    let a = only_agent(&api).await;
    assert_eq!(
        (&a["admin_state_up"], &a["description"]),
        (&json!(false), &json!("draining"))
    );
    let r = api
        .call(
            Method::PUT,
            &path,
            Some(json!({"agent": {"description": null}})),
        )
        .await;
    assert_eq!(r.body["agent"]["description"], Value::Null);

    for (body, kind, message) in [
        (
            json!({"agent": {"host": "elsewhere", "description": "x"}}),
            "HTTPBadRequest",
            "Cannot update read-only attribute host",
        ),
        (
            json!({"agent": {"configurations": {}, "alive": false}}),
            "HTTPBadRequest",
            "Cannot update read-only attribute alive",
        ),
        (
            json!({"agent": {"foo": 1}}),
            "HTTPBadRequest",
            "Unrecognized attribute(s) 'foo'",
        ),
        (
            json!({"agent": {"admin_state_up": "notbool"}}),
            "InvalidInput",
            "Invalid input for operation: 'notbool' cannot be converted to boolean.",
        ),
        (
            json!({"network": {}}),
            "HTTPBadRequest",
            "Unable to find 'agent' in request body",
        ),
    ] {
        let r = api.call(Method::PUT, &path, Some(body.clone())).await;
        assert_eq!(
            (r.status, r.error_type(), r.error_message()),
            (StatusCode::BAD_REQUEST, kind, message),
            "{body}"
        );
    }
    let missing = api
        .call(
            Method::PUT,
            "/v2.0/agents/no-such-agent",
            Some(json!({"agent": {"description": "x"}})),
        )
        .await;
    assert_eq!(missing.error_type(), "AgentNotFound");

    assert_eq!(
        api.call(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    let gone = api.call(Method::GET, &path, None).await;
    assert_eq!(
        (gone.status, gone.error_type()),
        (StatusCode::NOT_FOUND, "AgentNotFound")
    );
    assert_eq!(
        api.call(Method::DELETE, &path, None).await.error_type(),
        "AgentNotFound"
    );
    // The agent's next report registers it again, as a new agent with a new id.
    assert_eq!(report(&api, ovs_report("compute1")).await, "new");
    let again = only_agent(&api).await;
    assert_ne!(again["id"], json!(id));
    assert_eq!(again["admin_state_up"], true);
    // Nothing buffered for the deleted row is left to write.
    assert_eq!(api.state.heartbeats.flush().await.unwrap(), 0);
    assert_eq!(
        api.call(Method::POST, &path, None).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        api.call(Method::DELETE, "/v2.0/agents", None)
            .await
            .error_type(),
        "AgentNotFound"
    );
});

on_both_databases!(
    non_admins_see_nothing_and_change_nothing,
    |api: TestApi| async move {
        report(&api, ovs_report("compute1")).await;
        let id = only_agent(&api).await["id"].as_str().unwrap().to_string();
        let path = format!("/v2.0/agents/{id}");
        let r = api.call_as(MEMBER, Method::GET, "/v2.0/agents", None).await;
        assert_eq!(
            (r.status, &r.body),
            (StatusCode::OK, &json!({"agents": []})),
            "transcript-rbac bob_agents_list_filtered_empty"
        );
        let r = api.call_as(MEMBER, Method::GET, &path, None).await;
        assert_eq!(
            (r.status, r.error_type(), r.error_message()),
            (
                StatusCode::FORBIDDEN,
                "PolicyNotAuthorized",
                "rule:get_agent is disallowed by policy"
            )
        );
        let r = api
            .call_as(
                MEMBER,
                Method::PUT,
                &path,
                Some(json!({"agent": {"admin_state_up": false}})),
            )
            .await;
        assert_eq!(
            (r.status, r.error_type()),
            (StatusCode::NOT_FOUND, "HTTPNotFound")
        );
        let r = api.call_as(MEMBER, Method::DELETE, &path, None).await;
        assert_eq!(
            (r.status, r.error_type()),
            (StatusCode::NOT_FOUND, "HTTPNotFound")
        );
        let r = api
            .call_as(MEMBER, Method::DELETE, "/v2.0/agents/no-such-agent", None)
            .await;
        assert_eq!(r.error_type(), "AgentNotFound");
        // Nothing changed.
        let a = only_agent(&api).await;
        assert_eq!(a["admin_state_up"], true);
        // Body validation comes first, for everyone.
        let r = api
            .call_as(
                MEMBER,
                Method::PUT,
                &path,
                Some(json!({"agent": {"host": "x"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
);

on_both_databases!(agents_cannot_be_posted, |api: TestApi| async move {
    for (body, message) in [
        (
            json!({"agent": {"agent_type": "Open vSwitch agent", "host": "compute1"}}),
            "Attribute 'agent_type' not allowed in POST",
        ),
        (
            json!({"agent": {"host": "compute1", "agent_type": "Open vSwitch agent"}}),
            "Attribute 'agent_type' not allowed in POST",
        ),
        (
            json!({"agent": {"description": "x", "host": "compute1"}}),
            "Attribute 'host' not allowed in POST",
        ),
        (
            json!({"agent": {"foo": "x", "host": "compute1"}}),
            "Unrecognized attribute(s) 'foo'",
        ),
        (json!({}), "Unable to find 'agent' in request body"),
    ] {
        let r = api
            .call(Method::POST, "/v2.0/agents", Some(body.clone()))
            .await;
        assert_eq!(
            (r.status, r.error_type(), r.error_message()),
            (StatusCode::BAD_REQUEST, "HTTPBadRequest", message),
            "{body}"
        );
    }
    let r = api
        .call(Method::POST, "/v2.0/agents", Some(json!({"agent": {}})))
        .await;
    assert_eq!(
        (r.status, r.error_type()),
        (StatusCode::BAD_REQUEST, "HTTPBadRequest")
    );
    assert!(list(&api, "").await.is_empty());
});

on_both_databases!(
    reports_need_the_token_and_a_valid_body,
    |api: TestApi| async move {
        let body = json!({"agent": ovs_report("compute1")})
            .to_string()
            .into_bytes();
        for headers in [
            vec![],
            vec![("x-neutrino-agent-token", "wrong")],
            vec![("x-auth-token", api.agent_token.as_str())],
        ] {
            let r = api
                .request(
                    Method::POST,
                    "/internal/agents/report",
                    &headers,
                    body.clone(),
                )
                .await;
            assert_eq!(
                (r.status, r.error_type()),
                (StatusCode::UNAUTHORIZED, "HTTPUnauthorized"),
                "{headers:?}"
            );
        }
        for (agent, message) in [
            (
                json!({"host": "compute1"}),
                "Failed to parse request. Required attribute 'agent_type' not specified",
            ),
            (
                json!({"agent_type": "DHCP agent"}),
                "Failed to parse request. Required attribute 'host' not specified",
            ),
            (
                json!({"agent_type": "DHCP agent", "host": ""}),
                "Invalid input for host. Reason: '' is not a valid value.",
            ),
            (
                json!({"agent_type": 7, "host": "compute1"}),
                "Invalid input for agent_type. Reason: '7' is not a valid string.",
            ),
            (
                json!({"agent_type": "DHCP agent", "host": "compute1", "configurations": [1]}),
                "Invalid input for configurations. Reason: '[1]' is not a dictionary.",
            ),
        ] {
            let r = api.report(agent.clone()).await;
            assert_eq!(
                (r.status, r.error_type(), r.error_message()),
                (StatusCode::BAD_REQUEST, "HTTPBadRequest", message),
                "{agent}"
            );
        }
        let r = api
            .report(json!({"agent_type": "DHCP agent", "host": "c1", "start_flag": "maybe"}))
            .await;
        assert_eq!(r.error_type(), "InvalidInput");
        let token = api.agent_token.clone();
        let auth = [("x-neutrino-agent-token", token.as_str())];
        let r = api
            .request(
                Method::POST,
                "/internal/agents/report",
                &auth,
                b"{nope".to_vec(),
            )
            .await;
        assert_eq!(r.error_message(), "Body contains invalid data");
        let r = api
            .request(Method::GET, "/internal/agents/report", &auth, vec![])
            .await;
        assert_eq!(
            (r.status, r.error_type()),
            (StatusCode::METHOD_NOT_ALLOWED, "HTTPMethodNotAllowed")
        );
        assert!(list(&api, "").await.is_empty(), "nothing was registered");
        // Minimal report: defaults for what was not said; unknown keys are ignored.
        let r = api
            .report(json!({"agent_type": "L3 agent", "host": "net1", "resource_versions": {}}))
            .await;
        assert_eq!(r.body, json!({"result": "new"}));
        let a = only_agent(&api).await;
        assert_eq!(
            (&a["topic"], &a["binary"], &a["configurations"]),
            (&json!("N/A"), &json!(""), &json!({}))
        );
        // The extension list does not mention the internal API.
        let exts = api.call(Method::GET, "/v2.0/extensions", None).await.body;
        assert!(!exts.to_string().contains("internal"));
    }
);

on_both_databases!(filters_sorting_and_pages, |api: TestApi| async move {
    for host in ["compute1", "compute2", "compute3"] {
        report(&api, ovs_report(host)).await;
    }
    report(&api, dhcp_report("network1")).await;
    let hosts = |agents: Vec<Value>| -> Vec<String> {
        agents
            .iter()
            .map(|a| a["host"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        hosts(list(&api, "?agent_type=DHCP+agent").await),
        ["network1"]
    );
    assert_eq!(
        hosts(
            list(
                &api,
                "?sort_key=host&sort_dir=desc&agent_type=Open%20vSwitch%20agent"
            )
            .await
        ),
        ["compute3", "compute2", "compute1"]
    );
    assert_eq!(
        hosts(
            list(
                &api,
                "?host=compute1&host=compute2&sort_key=host&sort_dir=asc"
            )
            .await
        ),
        ["compute1", "compute2"]
    );
    assert_eq!(list(&api, "?alive=true").await.len(), 4);
    assert_eq!(list(&api, "?alive=False").await.len(), 0);
    assert_eq!(list(&api, "?admin_state_up=true").await.len(), 4);
    let fields = list(&api, "?fields=host&host=network1").await;
    assert_eq!(fields, [json!({"host": "network1"})]);

    let page = api
        .call(
            Method::GET,
            "/v2.0/agents?limit=3&sort_key=host&sort_dir=asc",
            None,
        )
        .await;
    assert_eq!(
        hosts(page.body["agents"].as_array().unwrap().clone()).len(),
        3
    );
    let next = page.body["agents_links"][0]["href"].as_str().unwrap();
    assert!(
        next.starts_with("http://neutrino.test:9696/v2.0/agents?"),
        "{next}"
    );
    let next = next.trim_start_matches("http://neutrino.test:9696");
    let rest = api.call(Method::GET, next, None).await;
    assert_eq!(
        hosts(rest.body["agents"].as_array().unwrap().clone()),
        ["network1"]
    );

    for (query, kind) in [
        ("?alive=maybe", "InvalidInput"),
        ("?configurations=x", "HTTPBadRequest"),
        ("?sort_key=alive&sort_dir=asc", "HTTPBadRequest"),
        ("?limit=-1", "BadRequest"),
    ] {
        let r = api
            .call(Method::GET, &format!("/v2.0/agents{query}"), None)
            .await;
        assert_eq!(
            (r.status, r.error_type()),
            (StatusCode::BAD_REQUEST, kind),
            "{query}: {}",
            r.body
        );
    }
});

for_both_databases!(dead_agents_revive, |db: Db| async move {
    let api = TestApi::with(db, |c| c.agent_down_time = Duration::from_secs(1)).await;
    assert_eq!(report(&api, ovs_report("compute1")).await, "new");
    assert_eq!(report(&api, dhcp_report("compute1")).await, "new");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(list(&api, "?alive=true").await.len(), 0);
    assert_eq!(list(&api, "?alive=false").await.len(), 2);
    assert_eq!(report(&api, ovs_report("compute1")).await, "revived");
    assert_eq!(report(&api, ovs_report("compute1")).await, "alive");
    let alive = list(&api, "?alive=true").await;
    assert_eq!(alive.len(), 1);
    assert_eq!(alive[0]["agent_type"], "Open vSwitch agent");

    // What port binding sees: the agents of the host, dead ones included, typed for drivers.
    api.state.heartbeats.flush().await.unwrap();
    let on_host = agents::on_host(&api.state.store.read, "compute1")
        .await
        .unwrap();
    let now = SystemTime::now();
    let bound: Vec<_> = on_host
        .iter()
        .map(|a| a.to_binding(now, Duration::from_secs(1)))
        .collect();
    assert_eq!(bound.len(), 2);
    let dhcp = bound.iter().find(|a| a.agent_type == "DHCP agent").unwrap();
    assert!(!dhcp.alive);
    let ovs = bound
        .iter()
        .find(|a| a.agent_type == "Open vSwitch agent")
        .unwrap();
    assert!(ovs.alive && ovs.admin_state_up);
    let c = &ovs.configurations;
    assert_eq!(c.bridge_mappings, [("physnet1".into(), "br-ex".into())]);
    assert_eq!(c.tunnel_types, ["vxlan"]);
    assert_eq!(c.tunneling_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(c.integration_bridge.as_deref(), Some("br-int"));
    assert_eq!(c.datapath_type.as_deref(), Some("system"));
    assert_eq!(c.ovs_hybrid_plug, Some(false));
    assert!(c.extra.contains(&("l2_population".into(), "false".into())));
    assert!(c.extra.contains(&("devices".into(), "0".into())));
    assert!(
        !on_host[0]
            .to_binding(now + Duration::from_secs(5), Duration::from_secs(1))
            .alive
    );
    assert!(
        agents::on_host(&api.state.store.read, "nowhere")
            .await
            .unwrap()
            .is_empty()
    );
});

for_both_databases!(two_servers_share_agents, |db: Db| async move {
    let (a, b) = TestApi::two_with(db, |c| c.agent_down_time = Duration::from_secs(3)).await;
    assert_eq!(report(&a, ovs_report("compute1")).await, "new");
    // Written at once: the other server lists it, alive, and knows it is not new.
    let seen = only_agent(&b).await;
    assert_eq!(seen["alive"], true);
    assert_eq!(report(&b, ovs_report("compute1")).await, "alive");
    assert_eq!(only_agent(&a).await["id"], seen["id"]);

    // The agent now talks to the second server only, for longer than the down time. The
    // first still remembers an old heartbeat, but asks the database before calling it revived.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(report(&b, ovs_report("compute1")).await, "alive");
    }
    b.state.heartbeats.flush().await.unwrap();
    assert_eq!(
        only_agent(&a).await["alive"],
        true,
        "seen through the database"
    );
    assert_eq!(report(&a, ovs_report("compute1")).await, "alive");
    a.state.heartbeats.flush().await.unwrap();

    // Silent everywhere for longer than the down time: dead for both, then revived.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(only_agent(&a).await["alive"], false);
    assert_eq!(only_agent(&b).await["alive"], false);
    assert_eq!(report(&b, ovs_report("compute1")).await, "revived");

    // Deleted through one server: the other forgets it at its next write and the agent's
    // next report registers it anew.
    let id = seen["id"].as_str().unwrap();
    assert_eq!(
        a.call(Method::DELETE, &format!("/v2.0/agents/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    report(&b, ovs_report("compute1")).await;
    b.state.heartbeats.flush().await.unwrap();
    assert_eq!(report(&b, ovs_report("compute1")).await, "new");
    assert_ne!(only_agent(&a).await["id"], seen["id"]);
});

for_both_databases!(a_report_storm_stays_cheap, |db: Db| async move {
    const AGENTS: usize = 300;
    // Only the explicit flush below writes, so its count is exact.
    let (a, b) = TestApi::two_with(db, |c| {
        c.heartbeat_flush_interval = Duration::from_secs(3600)
    })
    .await;
    let a = Arc::new(a);
    let storm = |expected: &'static str| {
        let a = a.clone();
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..AGENTS {
                let a = a.clone();
                tasks.spawn(async move {
                    let mut r = ovs_report(&format!("compute{i:04}"));
                    r["configurations"]["devices"] = json!(i);
                    report(&a, r).await
                });
            }
            // The API answers in the middle of the storm.
            let r = a.call(Method::GET, "/v2.0/networks", None).await;
            assert_eq!(r.status, StatusCode::OK);
            let results = tasks.join_all().await;
            assert!(results.iter().all(|r| r == expected), "{results:?}");
        }
    };
    let started = std::time::Instant::now();
    storm("new").await;
    let registering = started.elapsed();
    let started = std::time::Instant::now();
    storm("alive").await;
    let refreshing = started.elapsed();
    println!(
        "{AGENTS} agents: registering took {registering:?}, a round of heartbeats {refreshing:?}"
    );
    // A round of heartbeats from known agents is one write per flush, not one per agent.
    let written = a.state.heartbeats.flush().await.unwrap();
    assert_eq!(written, AGENTS);
    assert_eq!(a.state.heartbeats.flush().await.unwrap(), 0);
    let listed = list(&b, "?alive=true&fields=id").await;
    assert_eq!(listed.len(), AGENTS);
    let one = agents::on_host(&b.state.store.read, "compute0042")
        .await
        .unwrap();
    assert_eq!(one[0].configurations["devices"], 42);
});

/// A host may not point its peers' flooded traffic at a group, a broadcast or nothing.
#[tokio::test]
async fn a_report_with_a_tunnel_endpoint_that_is_no_unicast_address_is_refused() {
    let api = TestApi::new(Db::Sqlite).await;
    for bad in [
        "224.0.0.1",
        "255.255.255.255",
        "0.0.0.0",
        "ff02::1",
        "not-an-address",
    ] {
        let mut body = ovs_report("h1");
        body["configurations"]["tunneling_ip"] = json!(bad);
        let r = api.report(body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        assert_eq!(r.error_type(), "HTTPBadRequest", "{bad}: {}", r.body);
    }
    assert!(list(&api, "").await.is_empty(), "nothing was recorded");
    assert_eq!(report(&api, ovs_report("h1")).await, "new");
}

// A host may not take the tunnel endpoint of another host's alive agent (its peers would send
// that host's tenants' traffic to it); loopback endpoints are every host's own.
on_both_databases!(
    a_tunnel_endpoint_another_alive_host_reports_is_refused,
    |api: TestApi| async move {
        let with_ip = |host: &str, ip: &str| {
            let mut body = ovs_report(host);
            body["configurations"]["tunneling_ip"] = json!(ip);
            body
        };
        assert_eq!(report(&api, with_ip("h1", "192.0.2.1")).await, "new");
        api.state.heartbeats.flush().await.unwrap();
        let r = api.report(with_ip("h2", "192.0.2.1")).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert_eq!(r.error_type(), "TunnelIpInUse", "{}", r.body);
        assert!(
            r.body["NeutronError"]["message"]
                .as_str()
                .unwrap()
                .contains("host h1")
        );
        assert_eq!(report(&api, with_ip("h2", "192.0.2.2")).await, "new");
        // h2 may not move onto it either; h1 may keep reporting it.
        let r = api.report(with_ip("h2", "192.0.2.1")).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert_eq!(report(&api, with_ip("h1", "192.0.2.1")).await, "alive");
        // Loopback is every all-in-one host's own.
        assert_eq!(report(&api, with_ip("h3", "127.0.0.1")).await, "new");
        assert_eq!(report(&api, with_ip("h4", "127.0.0.1")).await, "new");
        // Once h1's agent is gone, its address is free.
        let h1 = list(&api, "?host=h1").await;
        let path = format!("/v2.0/agents/{}", h1[0]["id"].as_str().unwrap());
        assert_eq!(
            api.call(Method::DELETE, &path, None).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(report(&api, with_ip("h2", "192.0.2.1")).await, "alive");
    }
);
