//! The DHCP agent scheduler's sub-resources (`dhcp_agent_scheduler`), on SQLite and
//! PostgreSQL: which networks a DHCP agent serves and which agents serve a network, an admin
//! adding and removing a network by hand (with a DHCP port of the agent's own, and the hosts
//! told through their feeds), neutron-lib's error types, and the admin-only policy.

use axum::http::{Method, StatusCode};
use neutrino::agent::protocol::HostChanges;
use neutrino_tests::api::{Reply, TestApi};
use neutrino_tests::on_both_databases;
use serde_json::{Value, json};

const ALICE: Option<(&str, &str)> = Some(("alice-project", "member"));

async fn report(api: &TestApi, body: Value) {
    let r = api.report(body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// A node: its L2 agent and its DHCP agent.
async fn node(api: &TestApi, host: &str) {
    report(
        api,
        json!({"agent_type": "Open vSwitch agent", "binary": "neutrino-agent", "host": host,
        "topic": "N/A", "start_flag": true,
        "configurations": {"bridge_mappings": {"physnet1": "br-ex"}, "tunnel_types": ["vxlan"],
            "tunneling_ip": "127.0.0.1", "integration_bridge": "br-int",
            "datapath_type": "netdev", "ovs_hybrid_plug": true}}),
    )
    .await;
    report(
        api,
        json!({"agent_type": "DHCP agent", "binary": "neutrino-agent", "host": host,
        "topic": "dhcp_agent", "start_flag": true,
        "configurations": {"dhcp_driver": "dnsmasq", "networks": 0}}),
    )
    .await;
}

async fn agent_id(api: &TestApi, agent_type: &str, host: &str) -> String {
    let r = api
        .call(
            Method::GET,
            &format!("/v2.0/agents?agent_type={agent_type}&host={host}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["agents"][0]["id"].as_str().unwrap().to_string()
}

async fn created(api: &TestApi, collection: &str, resource: &str, body: Value) -> String {
    let r = api
        .call(
            Method::POST,
            &format!("/v2.0/{collection}"),
            Some(json!({ resource: body })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body[resource]["id"].as_str().unwrap().to_string()
}

/// The hosts of the network's DHCP ports, sorted, each port with one address per DHCP subnet.
async fn dhcp_hosts(api: &TestApi, network: &str, addresses: usize) -> Vec<String> {
    let r = api
        .call(
            Method::GET,
            &format!("/v2.0/ports?network_id={network}&device_owner=network:dhcp"),
            None,
        )
        .await;
    let mut hosts: Vec<String> = r.body["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["fixed_ips"].as_array().unwrap().len(), addresses, "{p}");
            p["binding:host_id"].as_str().unwrap().to_string()
        })
        .collect();
    hosts.sort();
    hosts
}

async fn poll(api: &TestApi, host: &str, after: i64) -> HostChanges {
    let r = api
        .request(
            Method::GET,
            &format!("/internal/hosts/{host}/changes?after={after}&timeout=0"),
            &[("x-neutrino-agent-token", &api.agent_token)],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    serde_json::from_value(r.body).expect("a HostChanges")
}

fn assert_error(r: &Reply, status: StatusCode, kind: &str, message: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.error_type(), kind, "{}", r.body);
    assert!(r.error_message().contains(message), "{}", r.body);
}

fn ids(body: &Value, key: &str) -> Vec<String> {
    let mut ids: Vec<String> = body[key]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

on_both_databases!(
    an_admin_adds_and_removes_a_network_by_hand,
    |api: TestApi| async move {
        node(&api, "a").await;
        node(&api, "b").await;
        let (a, b) = (
            agent_id(&api, "DHCP%20agent", "a").await,
            agent_id(&api, "DHCP%20agent", "b").await,
        );
        let net = created(&api, "networks", "network", json!({"name": "n"})).await;
        created(
            &api,
            "subnets",
            "subnet",
            json!({"network_id": net, "ip_version": 4, "cidr": "10.30.0.0/24"}),
        )
        .await;
        // Scheduled to one agent (dhcp_agents_per_network = 1), the first by name at equal load.
        assert_eq!(dhcp_hosts(&api, &net, 1).await, ["a"]);
        let r = api
            .call(
                Method::GET,
                &format!("/v2.0/agents/{a}/dhcp-networks"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(ids(&r.body, "networks"), vec![net.clone()]);
        assert_eq!(
            r.body["networks"][0]["subnets"].as_array().unwrap().len(),
            1
        );
        let r = api
            .call(
                Method::GET,
                &format!("/v2.0/agents/{b}/dhcp-networks"),
                None,
            )
            .await;
        assert_eq!(r.body, json!({"networks": []}));
        let r = api
            .call(
                Method::GET,
                &format!("/v2.0/networks/{net}/dhcp-agents"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(ids(&r.body, "agents"), vec![a.clone()]);
        assert_eq!(r.body["agents"][0]["host"], "a");
        assert_eq!(r.body["agents"][0]["alive"], true);

        // b is given the network too: its own DHCP port with an address, and its feed says so.
        let before = poll(&api, "b", 0).await;
        assert!(before.dhcp_networks.is_empty(), "{before:?}");
        let add = json!({ "network_id": net });
        let r = api
            .call(
                Method::POST,
                &format!("/v2.0/agents/{b}/dhcp-networks"),
                Some(add.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body, Value::Null);
        assert_eq!(dhcp_hosts(&api, &net, 1).await, ["a", "b"]);
        let r = api
            .call(
                Method::GET,
                &format!("/v2.0/networks/{net}/dhcp-agents"),
                None,
            )
            .await;
        let mut both = vec![a.clone(), b.clone()];
        both.sort();
        assert_eq!(ids(&r.body, "agents"), both);
        let news = poll(&api, "b", before.revision).await;
        let served = news
            .dhcp_networks
            .iter()
            .find(|n| n.id == net)
            .expect("b hears of it");
        assert!(served.network.is_some(), "{news:?}");

        // Again: already hosted there.
        let r = api
            .call(
                Method::POST,
                &format!("/v2.0/agents/{b}/dhcp-networks"),
                Some(add.clone()),
            )
            .await;
        assert_error(
            &r,
            StatusCode::CONFLICT,
            "NetworkHostedByDHCPAgent",
            &format!("The network {net} has been already hosted by the DHCP Agent {b}."),
        );
        // Not a DHCP agent, or a disabled one: InvalidDHCPAgent (an AgentNotFound, so 404).
        let l2 = agent_id(&api, "Open%20vSwitch%20agent", "a").await;
        let r = api
            .call(
                Method::POST,
                &format!("/v2.0/agents/{l2}/dhcp-networks"),
                Some(add.clone()),
            )
            .await;
        assert_error(
            &r,
            StatusCode::NOT_FOUND,
            "InvalidDHCPAgent",
            "is not a valid DHCP Agent",
        );
        let r = api
            .call(
                Method::POST,
                "/v2.0/agents/no-such-agent/dhcp-networks",
                Some(add.clone()),
            )
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, "AgentNotFound", "no-such-agent");
        let r = api
            .call(
                Method::POST,
                &format!("/v2.0/agents/{b}/dhcp-networks"),
                Some(json!({"network_id": "no-such-network"})),
            )
            .await;
        assert_error(
            &r,
            StatusCode::NOT_FOUND,
            "NetworkNotFound",
            "no-such-network",
        );
        let r = api
            .call(
                Method::GET,
                "/v2.0/networks/no-such-network/dhcp-agents",
                None,
            )
            .await;
        assert_error(
            &r,
            StatusCode::NOT_FOUND,
            "NetworkNotFound",
            "no-such-network",
        );
        let r = api
            .call(
                Method::GET,
                "/v2.0/agents/no-such-agent/dhcp-networks",
                None,
            )
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, "AgentNotFound", "no-such-agent");

        // Taken back from b: its port goes, its feed says so.
        let before = poll(&api, "b", 0).await;
        let r = api
            .call(
                Method::DELETE,
                &format!("/v2.0/agents/{b}/dhcp-networks/{net}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        assert_eq!(dhcp_hosts(&api, &net, 1).await, ["a"]);
        let news = poll(&api, "b", before.revision).await;
        let gone = news
            .dhcp_networks
            .iter()
            .find(|n| n.id == net)
            .expect("b hears of it");
        assert_eq!(gone.network, None, "{news:?}");
        let r = api
            .call(
                Method::DELETE,
                &format!("/v2.0/agents/{b}/dhcp-networks/{net}"),
                None,
            )
            .await;
        assert_error(
            &r,
            StatusCode::CONFLICT,
            "NetworkNotHostedByDhcpAgent",
            &format!("The network {net} is not hosted by the DHCP Agent {b}."),
        );

        // tempest's flow: a network without subnets added to an agent and removed again.
        let bare = created(&api, "networks", "network", json!({"name": "bare"})).await;
        let r = api
            .call(
                Method::POST,
                &format!("/v2.0/agents/{b}/dhcp-networks"),
                Some(json!({ "network_id": bare })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(dhcp_hosts(&api, &bare, 0).await, ["b"]);
        let r = api
            .call(
                Method::GET,
                &format!("/v2.0/agents/{b}/dhcp-networks"),
                None,
            )
            .await;
        assert_eq!(ids(&r.body, "networks"), vec![bare.clone()]);
        let r = api
            .call(
                Method::DELETE,
                &format!("/v2.0/agents/{b}/dhcp-networks/{bare}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        assert!(dhcp_hosts(&api, &bare, 0).await.is_empty());

        // A disabled DHCP agent is given nothing.
        let r = api
            .call(
                Method::PUT,
                &format!("/v2.0/agents/{b}"),
                Some(json!({"agent": {"admin_state_up": false}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = api
            .call(
                Method::POST,
                &format!("/v2.0/agents/{b}/dhcp-networks"),
                Some(add),
            )
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, "InvalidDHCPAgent", &b);
    }
);

on_both_databases!(
    the_dhcp_scheduler_api_is_admin_only,
    |api: TestApi| async move {
        node(&api, "a").await;
        let a = agent_id(&api, "DHCP%20agent", "a").await;
        let net = created(&api, "networks", "network", json!({"name": "n"})).await;
        for (m, path, body, rule) in [
            (
                Method::GET,
                format!("/v2.0/agents/{a}/dhcp-networks"),
                None,
                "get_dhcp-networks",
            ),
            (
                Method::POST,
                format!("/v2.0/agents/{a}/dhcp-networks"),
                Some(json!({ "network_id": net })),
                "create_dhcp-network",
            ),
            (
                Method::DELETE,
                format!("/v2.0/agents/{a}/dhcp-networks/{net}"),
                None,
                "delete_dhcp-network",
            ),
            (
                Method::GET,
                format!("/v2.0/networks/{net}/dhcp-agents"),
                None,
                "get_dhcp-agents",
            ),
        ] {
            let r = api.call_as(ALICE, m.clone(), &path, body).await;
            assert_error(&r, StatusCode::FORBIDDEN, "PolicyNotAuthorized", rule);
        }
        let r = api
            .call(Method::GET, "/v2.0/extensions/dhcp_agent_scheduler", None)
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["extension"]["name"], "DHCP Agent Scheduler");
    }
);
