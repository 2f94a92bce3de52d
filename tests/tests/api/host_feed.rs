//! The server side of the agent protocol (`neutrino::agent::protocol`): the per-host change
//! feed (`GET /internal/hosts/{host}/changes`, a long poll), DHCP scheduling with its DHCP port,
//! and port status reports, on SQLite and PostgreSQL, with one server and with two sharing
//! the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use neutrino::agent::protocol::{HostChanges, HostPort, dhcp_device_id};
use neutrino::store::feed::{self, FeedKind};
use neutrino_tests::api::{Db, Reply, TestApi};
use neutrino_tests::{for_both_databases, on_both_databases};
use serde_json::{Value, json};

/// The L2 agent a node agent reports: ports bound to its host go through ovs-hybrid.
fn ovs_report(host: &str) -> Value {
    json!({"agent_type": "Open vSwitch agent", "binary": "neutrino-agent", "host": host,
        "topic": "N/A", "start_flag": true,
        "configurations": {"bridge_mappings": {"physnet1": "br-ex"}, "tunnel_types": ["vxlan"],
            "tunneling_ip": "127.0.0.1", "integration_bridge": "br-int",
            "datapath_type": "netdev", "ovs_hybrid_plug": true}})
}

/// The DHCP agent a node agent reports next to its L2 agent.
fn dhcp_report(host: &str) -> Value {
    json!({"agent_type": "DHCP agent", "binary": "neutrino-agent", "host": host,
        "topic": "dhcp_agent", "start_flag": true,
        "configurations": {"dhcp_driver": "dnsmasq", "networks": 0}})
}

async fn report(api: &TestApi, body: Value) {
    let r = api.report(body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// A node: its L2 agent, and its DHCP agent when `dhcp`.
async fn node(api: &TestApi, host: &str, dhcp: bool) {
    report(api, ovs_report(host)).await;
    if dhcp {
        report(api, dhcp_report(host)).await;
    }
}

async fn created(api: &TestApi, path: &str, resource: &str, body: Value) -> Value {
    let r = api
        .call(Method::POST, path, Some(json!({ resource: body })))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.body);
    r.body[resource].clone()
}

async fn network(api: &TestApi) -> String {
    let n = created(api, "/v2.0/networks", "network", json!({"name": "n"})).await;
    n["id"].as_str().unwrap().to_string()
}

async fn subnet(api: &TestApi, network: &str, cidr: &str, dhcp: bool) -> String {
    let s = created(
        api,
        "/v2.0/subnets",
        "subnet",
        json!({"network_id": network, "ip_version": 4, "cidr": cidr, "enable_dhcp": dhcp}),
    )
    .await;
    s["id"].as_str().unwrap().to_string()
}

async fn port(api: &TestApi, body: Value) -> Value {
    created(api, "/v2.0/ports", "port", body).await
}

async fn update_port(api: &TestApi, id: &str, body: Value) -> Value {
    let r = api
        .call(
            Method::PUT,
            &format!("/v2.0/ports/{id}"),
            Some(json!({ "port": body })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["port"].clone()
}

async fn get_port(api: &TestApi, id: &str) -> Value {
    let r = api
        .call(Method::GET, &format!("/v2.0/ports/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["port"].clone()
}

async fn dhcp_ports(api: &TestApi, network: &str) -> Vec<Value> {
    let r = api
        .call(
            Method::GET,
            &format!("/v2.0/ports?network_id={network}&device_owner=network:dhcp"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["ports"].as_array().unwrap().clone()
}

async fn poll_raw(api: &TestApi, host: &str, after: i64, timeout: u64) -> Reply {
    api.request(
        Method::GET,
        &format!("/internal/hosts/{host}/changes?after={after}&timeout={timeout}"),
        &[("x-neutrino-agent-token", &api.agent_token)],
        Vec::new(),
    )
    .await
}

async fn poll(api: &TestApi, host: &str, after: i64, timeout: u64) -> HostChanges {
    let r = poll_raw(api, host, after, timeout).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    serde_json::from_value(r.body).expect("a HostChanges")
}

async fn report_status(api: &TestApi, host: &str, statuses: &[(&str, &str)]) -> Reply {
    let ports: Vec<Value> = statuses
        .iter()
        .map(|(id, status)| json!({"id": id, "status": status}))
        .collect();
    api.request(
        Method::POST,
        &format!("/internal/hosts/{host}/ports/status"),
        &[("x-neutrino-agent-token", &api.agent_token)],
        json!({ "ports": ports }).to_string().into_bytes(),
    )
    .await
}

/// The port's entry in an answer: Some(Some(port)) present, Some(None) gone, None not named.
fn port_in(changes: &HostChanges, id: &str) -> Option<Option<HostPort>> {
    changes
        .ports
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.port.clone())
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

on_both_databases!(agents_need_their_token, |api: TestApi| async move {
    for headers in [vec![], vec![("x-neutrino-agent-token", "a guess")]] {
        let r = api
            .request(
                Method::GET,
                "/internal/hosts/h1/changes?after=0&timeout=0",
                &headers,
                Vec::new(),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(r.error_type(), "HTTPUnauthorized");
        let r = api
            .request(
                Method::POST,
                "/internal/hosts/h1/ports/status",
                &headers,
                br#"{"ports": []}"#.to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    }
    let bad = poll_raw(&api, "h1", -1, 0).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let bad = api
        .request(
            Method::GET,
            "/internal/hosts/h1/changes?after=soon",
            &[("x-neutrino-agent-token", &api.agent_token)],
            Vec::new(),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
});

on_both_databases!(
    a_poll_answers_news_at_once_and_waits_out_its_timeout_otherwise,
    |api: TestApi| async move {
        node(&api, "h1", false).await;
        let start = poll(&api, "h1", 0, 0).await;
        assert!(start.full && start.ports.is_empty(), "{start:?}");
        let net = network(&api).await;
        subnet(&api, &net, "10.1.0.0/24", false).await;
        let p = port(&api, json!({"network_id": net, "binding:host_id": "h1"})).await;

        let t = Instant::now();
        let news = poll(&api, "h1", start.revision, 10).await;
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
        assert!(!news.full);
        assert!(news.revision > start.revision);
        assert!(port_in(&news, &id_of(&p)).is_some_and(|p| p.is_some()));

        let t = Instant::now();
        let quiet = poll(&api, "h1", news.revision, 1).await;
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(950) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        assert_eq!(
            quiet,
            HostChanges {
                revision: news.revision,
                ..HostChanges::default()
            }
        );
        // Another host's news is not this host's.
        port(&api, json!({"network_id": net, "binding:host_id": "h2"})).await;
        let still = poll(&api, "h1", news.revision, 1).await;
        assert!(still.ports.is_empty(), "{still:?}");
    }
);

on_both_databases!(
    a_waiting_poll_is_woken_by_a_port_bind,
    |api: TestApi| async move {
        node(&api, "h1", false).await;
        let net = network(&api).await;
        subnet(&api, &net, "10.2.0.0/24", false).await;
        let p = port(&api, json!({"network_id": net})).await;
        let after = poll(&api, "h1", 0, 0).await.revision;
        let api = Arc::new(api);
        let waiting = {
            let api = api.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                (poll(&api, "h1", after, 20).await, t.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Timed from the commit: the first bind of a server also loads the drivers.
        update_port(&api, &id_of(&p), json!({"binding:host_id": "h1"})).await;
        let bound = Instant::now();
        let (news, waited) = waiting.await.unwrap();
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        assert!(
            bound.elapsed() < Duration::from_millis(300),
            "{:?}",
            bound.elapsed()
        );
        let got = port_in(&news, &id_of(&p))
            .flatten()
            .expect("the bound port");
        assert!(got.binding.is_some(), "{got:?}");
    }
);

on_both_databases!(
    a_bound_port_carries_its_driver_and_segment_and_unbinding_takes_it_away,
    |api: TestApi| async move {
        node(&api, "h1", false).await;
        let net = network(&api).await;
        subnet(&api, &net, "10.3.0.0/24", false).await;
        let p = port(
            &api,
            json!({"network_id": net, "binding:host_id": "h1", "dns_name": "web1",
                   "extra_dhcp_opts": [{"opt_name": "bootfile-name", "opt_value": "pxelinux.0"}]}),
        )
        .await;
        assert_eq!(p["binding:vif_type"], "ovs", "{p}");
        let full = poll(&api, "h1", 0, 0).await;
        assert!(full.full);
        let got = port_in(&full, &id_of(&p))
            .flatten()
            .expect("the bound port");
        assert_eq!(got.mac_address, p["mac_address"]);
        assert_eq!(got.fixed_ips[0].ip_address, p["fixed_ips"][0]["ip_address"]);
        assert_eq!(got.hostname, "web1");
        assert_eq!(got.status, "DOWN");
        assert_eq!(got.extra_dhcp_opts.len(), 1);
        assert_eq!(got.extra_dhcp_opts[0].opt_value, "pxelinux.0");
        assert_eq!(got.extra_dhcp_opts[0].ip_version, 4);
        let b = got.binding.expect("a binding");
        assert_eq!(b.host, "h1");
        assert_eq!(b.driver, "ovs-hybrid");
        assert_eq!(b.vif_type, "ovs");
        // The driver's details, but for `port_filter`: the host's to say, and this host's
        // agent reported no firewall.
        let mut shown = p["binding:vif_details"].clone();
        assert_eq!(shown["port_filter"], false, "{shown}");
        shown["port_filter"] = b.vif_details["port_filter"].clone();
        assert_eq!(Value::Object(b.vif_details), shown);
        assert_eq!(b.network.id, net);
        assert_eq!(b.segment.id, net);
        assert_eq!(
            neutrino_model::network_type_name(b.segment.network_type),
            "vxlan"
        );
        assert!(b.segment.segmentation_id.is_some());
        assert_eq!(b.attachment, None, "no instance asked for it");

        let unbound = update_port(&api, &id_of(&p), json!({"binding:host_id": null})).await;
        assert_eq!(unbound["status"], "DOWN");
        let news = poll(&api, "h1", full.revision, 5).await;
        assert_eq!(port_in(&news, &id_of(&p)), Some(None), "{news:?}");
        // A port that failed to bind is sent without a binding.
        let failed = port(&api, json!({"network_id": net, "binding:host_id": "h9"})).await;
        assert_eq!(failed["binding:vif_type"], "binding_failed");
        let h9 = poll(&api, "h9", 0, 0).await;
        let got = port_in(&h9, &id_of(&failed)).flatten().expect("listed");
        assert_eq!(got.binding, None);
        // Deleted: gone from the feed.
        let r = api
            .call(
                Method::DELETE,
                &format!("/v2.0/ports/{}", id_of(&failed)),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let news = poll(&api, "h9", h9.revision, 5).await;
        assert_eq!(port_in(&news, &id_of(&failed)), Some(None));
    }
);

on_both_databases!(
    dhcp_is_scheduled_with_its_port_and_unscheduled_with_its_last_subnet,
    |api: TestApi| async move {
        node(&api, "net1", true).await;
        node(&api, "c1", false).await;
        let net = network(&api).await;
        let s1 = subnet(&api, &net, "10.4.0.0/24", true).await;
        let plain = subnet(&api, &net, "10.5.0.0/24", false).await;
        let dhcp = dhcp_ports(&api, &net).await;
        assert_eq!(dhcp.len(), 1, "{dhcp:?}");
        let d = &dhcp[0];
        assert_eq!(d["device_id"], dhcp_device_id("net1", &net));
        assert_eq!(d["binding:host_id"], "net1");
        assert_eq!(
            d["binding:vif_type"], "ovs",
            "bound with the host's L2 agent"
        );
        let on: Vec<&str> = d["fixed_ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["subnet_id"].as_str().unwrap())
            .collect();
        assert_eq!(on, [s1.as_str()], "one address, on the DHCP subnet only");

        // A new DHCP subnet gives the same DHCP port an address on it.
        let s2 = subnet(&api, &net, "10.6.0.0/24", true).await;
        let dhcp = dhcp_ports(&api, &net).await;
        assert_eq!(dhcp.len(), 1);
        assert_eq!(dhcp[0]["id"], d["id"]);
        let mut on: Vec<&str> = dhcp[0]["fixed_ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["subnet_id"].as_str().unwrap())
            .collect();
        on.sort_unstable();
        let mut want = [s1.as_str(), s2.as_str()];
        want.sort_unstable();
        assert_eq!(on, want);

        let full = poll(&api, "net1", 0, 0).await;
        assert_eq!(full.dhcp_networks.len(), 1, "{full:?}");
        let served = full.dhcp_networks[0].network.clone().expect("served");
        assert_eq!(served.network.id, net);
        assert_eq!(served.dhcp_port_id, id_of(d));
        assert_eq!(served.subnets.len(), 3, "DHCP-disabled subnets too");
        assert!(
            served
                .subnets
                .iter()
                .any(|s| s.id == plain && !s.enable_dhcp)
        );
        let own = port_in(&full, &id_of(d)).flatten().expect("the DHCP port");
        let attachment = own.binding.expect("bound here").attachment.expect("qdhcp");
        assert_eq!(attachment.namespace, format!("qdhcp-{net}"));
        assert_eq!(attachment.interface_name, format!("ns-{}", &id_of(d)[..11]));
        assert_eq!(attachment.kind, neutrino_model::AttachmentKind::Dhcp);
        assert!(poll(&api, "c1", 0, 0).await.dhcp_networks.is_empty());

        // A later port of the network reaches the DHCP host (and its own host).
        let vm = port(&api, json!({"network_id": net, "binding:host_id": "c1"})).await;
        let news = poll(&api, "net1", full.revision, 5).await;
        let seen = port_in(&news, &id_of(&vm))
            .flatten()
            .expect("news for DHCP");
        assert_eq!(seen.binding, None, "bound on c1, not here");
        let c1 = poll(&api, "c1", 0, 0).await;
        assert!(
            port_in(&c1, &id_of(&vm))
                .flatten()
                .unwrap()
                .binding
                .is_some()
        );
        let r = api
            .call(Method::DELETE, &format!("/v2.0/ports/{}", id_of(&vm)), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);

        // Deleting a DHCP subnet keeps DHCP; deleting the last one unschedules it.
        let before = poll(&api, "net1", 0, 0).await.revision;
        for s in [&s1, &s2] {
            let r = api
                .call(Method::DELETE, &format!("/v2.0/subnets/{s}"), None)
                .await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        }
        assert!(dhcp_ports(&api, &net).await.is_empty());
        let news = poll(&api, "net1", before, 5).await;
        assert_eq!(news.dhcp_networks.len(), 1);
        assert_eq!(news.dhcp_networks[0].id, net);
        assert_eq!(news.dhcp_networks[0].network, None, "{news:?}");
        assert_eq!(port_in(&news, &id_of(d)), Some(None));
        let full = poll(&api, "net1", 0, 0).await;
        assert!(
            full.dhcp_networks.is_empty() && full.ports.is_empty(),
            "{full:?}"
        );
    }
);

on_both_databases!(
    a_waiting_network_goes_to_the_first_dhcp_agent_and_load_is_spread,
    |api: TestApi| async move {
        node(&api, "a", false).await;
        let early = network(&api).await;
        subnet(&api, &early, "10.7.0.0/24", true).await;
        assert!(
            dhcp_ports(&api, &early).await.is_empty(),
            "no DHCP agent yet"
        );
        report(&api, dhcp_report("a")).await;
        let dhcp = dhcp_ports(&api, &early).await;
        assert_eq!(dhcp.len(), 1, "scheduled when the agent appeared");
        assert_eq!(dhcp[0]["binding:host_id"], "a");
        // A second agent: the next network goes to the one hosting fewer.
        node(&api, "b", true).await;
        let next = network(&api).await;
        subnet(&api, &next, "10.8.0.0/24", true).await;
        assert_eq!(dhcp_ports(&api, &next).await[0]["binding:host_id"], "b");
        // Enabling DHCP on a subnet schedules its network; disabling it unschedules.
        let later = network(&api).await;
        let s = subnet(&api, &later, "10.9.0.0/24", false).await;
        assert!(dhcp_ports(&api, &later).await.is_empty());
        let set = |on: bool| json!({"subnet": {"enable_dhcp": on}});
        let path = format!("/v2.0/subnets/{s}");
        let r = api.call(Method::PUT, &path, Some(set(true))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(dhcp_ports(&api, &later).await.len(), 1);
        let r = api.call(Method::PUT, &path, Some(set(false))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(dhcp_ports(&api, &later).await.is_empty());
        // A DHCP agent that reports before its host's L2 agent: the DHCP port fails to bind,
        // and binds when the L2 agent appears.
        report(&api, dhcp_report("late")).await;
        let spare = network(&api).await;
        subnet(&api, &spare, "10.13.0.0/24", true).await;
        let d = dhcp_ports(&api, &spare).await;
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0]["binding:host_id"], "late", "it hosts no network yet");
        assert_eq!(d[0]["binding:vif_type"], "binding_failed", "{}", d[0]);
        report(&api, ovs_report("late")).await;
        let again = get_port(&api, &id_of(&d[0])).await;
        assert_eq!(again["binding:vif_type"], "ovs", "{again}");
        // Deleting the network takes its DHCP with it.
        let host = dhcp_ports(&api, &next).await[0]["binding:host_id"]
            .as_str()
            .unwrap()
            .to_string();
        let before = poll(&api, &host, 0, 0).await;
        assert_eq!(before.dhcp_networks.len(), 1);
        let r = api
            .call(Method::DELETE, &format!("/v2.0/networks/{next}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let news = poll(&api, &host, before.revision, 5).await;
        assert_eq!(news.dhcp_networks[0].network, None, "{news:?}");
    }
);

on_both_databases!(
    full_state_lists_ports_networks_and_instances_of_the_host,
    |api: TestApi| async move {
        node(&api, "h1", true).await;
        let net = network(&api).await;
        subnet(&api, &net, "10.10.0.0/24", true).await;
        let elsewhere = port(&api, json!({"network_id": net})).await;
        let nic = port(
            &api,
            json!({"network_id": net, "binding:host_id": "h1", "device_owner": "compute:nova"}),
        )
        .await;
        // An instance on h1 with that port as eth0, written as the servers API writes it.
        let server = uuid::Uuid::new_v4().to_string();
        let now = neutrino::store::now();
        sqlx::query(
            "INSERT INTO servers (id, project_id, user_id, name, host, status, created_at, \
             updated_at, build_deadline) VALUES ($1, 'p', 'u', 'vm1', 'h1', 'BUILD', $2, $2, $2)",
        )
        .bind(&server)
        .bind(&now)
        .execute(&api.state.store.write)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO server_nics (server_id, position, port_id, interface_name, created_port) \
             VALUES ($1, 0, $2, 'eth0', 0)",
        )
        .bind(&server)
        .bind(id_of(&nic))
        .execute(&api.state.store.write)
        .await
        .unwrap();
        let full = poll(&api, "h1", 0, 0).await;
        assert!(full.full);
        let dhcp = dhcp_ports(&api, &net).await;
        let mut listed: Vec<&str> = full.ports.iter().map(|c| c.id.as_str()).collect();
        listed.sort_unstable();
        let mut want = vec![id_of(&elsewhere), id_of(&nic), id_of(&dhcp[0])];
        want.sort_unstable();
        assert_eq!(listed, want, "bound here, or on a network served here");
        assert_eq!(
            full.dhcp_networks[0].network.as_ref().unwrap().ports.len(),
            3
        );
        assert_eq!(full.instances.len(), 1);
        let vm = full.instances[0].instance.clone().unwrap();
        assert_eq!(vm.id, server);
        assert_eq!(vm.nics[0].port_id, id_of(&nic));
        let attachment = port_in(&full, &id_of(&nic))
            .flatten()
            .unwrap()
            .binding
            .unwrap()
            .attachment
            .expect("the instance's NIC");
        assert_eq!(attachment.namespace, vm.namespace);
        assert_eq!(attachment.interface_name, "eth0");

        // Instance entries resolve to the instance, or to None once it is gone.
        let mut conn = api.state.store.write.acquire().await.unwrap();
        let r1 = feed::record(&mut conn, &["h1"], FeedKind::Instance, &server)
            .await
            .unwrap();
        let news = poll(&api, "h1", full.revision, 5).await;
        assert_eq!(news.revision, r1.unwrap());
        assert_eq!(news.instances[0].instance.as_ref().unwrap().id, server);
        sqlx::query("DELETE FROM servers WHERE id = $1")
            .bind(&server)
            .execute(&mut *conn)
            .await
            .unwrap();
        feed::record(&mut conn, &["h1"], FeedKind::Instance, &server)
            .await
            .unwrap();
        let gone = poll(&api, "h1", news.revision, 5).await;
        assert_eq!(gone.instances[0].instance, None);
    }
);

on_both_databases!(
    status_reports_move_a_port_down_build_active,
    |api: TestApi| async move {
        node(&api, "h1", false).await;
        node(&api, "h2", false).await;
        let net = network(&api).await;
        subnet(&api, &net, "10.11.0.0/24", false).await;
        let p = port(&api, json!({"network_id": net, "binding:host_id": "h1"})).await;
        let other = port(&api, json!({"network_id": net, "binding:host_id": "h2"})).await;
        let id = id_of(&p);
        assert_eq!(get_port(&api, &id).await["status"], "DOWN");
        let mut revision = p["revision_number"].as_i64().unwrap();
        for status in ["BUILD", "ACTIVE"] {
            let r = report_status(&api, "h1", &[(&id, status), (&id_of(&other), status)]).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(r.body, json!({"updated": 1, "ignored": 1}));
            let now = get_port(&api, &id).await;
            assert_eq!(now["status"], status);
            assert!(now["revision_number"].as_i64().unwrap() > revision);
            revision = now["revision_number"].as_i64().unwrap();
        }
        assert_eq!(
            get_port(&api, &id_of(&other)).await["status"],
            "DOWN",
            "another host's report does not touch it"
        );
        let r = report_status(&api, "h1", &[(&id, "UP")]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        let r = report_status(&api, "h1", &[("no-such-port", "ACTIVE")]).await;
        assert_eq!(r.body, json!({"updated": 0, "ignored": 1}));
        let r = api
            .request(
                Method::POST,
                "/internal/hosts/h1/ports/status",
                &[("x-neutrino-agent-token", &api.agent_token)],
                b"{not json".to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        // Moved to another host: DOWN until that host wires it.
        let moved = update_port(&api, &id, json!({"binding:host_id": "h2"})).await;
        assert_eq!(moved["status"], "DOWN");
    }
);

for_both_databases!(
    a_change_on_one_server_wakes_a_poll_on_the_other_within_a_second,
    |db: Db| async move {
        let (a, b) = TestApi::two(db).await;
        node(&a, "h1", false).await;
        let net = network(&a).await;
        subnet(&a, &net, "10.12.0.0/24", false).await;
        let p = port(&a, json!({"network_id": net})).await;
        let after = poll(&b, "h1", 0, 0).await.revision;
        let b = Arc::new(b);
        let waiting = {
            let b = b.clone();
            tokio::spawn(async move { poll(&b, "h1", after, 20).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        update_port(&a, &id_of(&p), json!({"binding:host_id": "h1"})).await;
        let changed = Instant::now();
        let news = waiting.await.unwrap();
        let took = changed.elapsed();
        // B's poll re-reads the feed once a second: A's commit is seen within about that.
        assert!(took < Duration::from_millis(1500), "{took:?}");
        eprintln!("cross-server wake-up: {took:?}");
        assert!(port_in(&news, &id_of(&p)).flatten().is_some());
    }
);

on_both_databases!(
    a_host_whose_tunnel_endpoint_changes_is_heard_of_by_its_peers,
    |api: TestApi| async move {
        let lb = |host: &str, ip: &str| {
            let mut r = ovs_report(host);
            r["configurations"]["tunneling_ip"] = json!(ip);
            r
        };
        report(&api, lb("h1", "192.0.2.1")).await;
        report(&api, lb("h2", "192.0.2.2")).await;
        let net = network(&api).await;
        subnet(&api, &net, "10.7.0.0/24", false).await;
        port(&api, json!({"network_id": net, "binding:host_id": "h1"})).await;
        port(&api, json!({"network_id": net, "binding:host_id": "h2"})).await;
        let peer_of = |changes: &HostChanges| {
            changes
                .networks
                .iter()
                .find(|n| n.id == net)
                .and_then(|n| n.peers.iter().find(|p| p.host == "h1"))
                .map(|p| p.tunnel_ip.clone())
        };
        let first = poll(&api, "h2", 0, 0).await;
        assert_eq!(peer_of(&first).as_deref(), Some("192.0.2.1"), "{first:?}");

        // h1 comes back with another address: h2 hears it without a full resync.
        report(&api, lb("h1", "192.0.2.11")).await;
        api.state.heartbeats.flush().await.unwrap();
        let news = poll(&api, "h2", first.revision, 0).await;
        assert!(!news.full);
        assert_eq!(peer_of(&news).as_deref(), Some("192.0.2.11"), "{news:?}");
        // A heartbeat that changes nothing of it marks nothing.
        report(&api, lb("h1", "192.0.2.11")).await;
        api.state.heartbeats.flush().await.unwrap();
        let quiet = poll(&api, "h2", news.revision, 0).await;
        assert!(quiet.networks.is_empty(), "{quiet:?}");
    }
);

on_both_databases!(
    a_network_with_more_remote_macs_than_the_bound_is_told_its_peers_without_them,
    |api: TestApi| async move {
        node(&api, "h1", false).await;
        node(&api, "h2", false).await;
        let net = network(&api).await;
        subnet(&api, &net, "10.8.0.0/24", false).await;
        let mut macs = Vec::new();
        for _ in 0..5 {
            let p = port(&api, json!({"network_id": net, "binding:host_id": "h1"})).await;
            macs.push(p["mac_address"].as_str().unwrap().to_string());
        }
        port(&api, json!({"network_id": net, "binding:host_id": "h2"})).await;
        macs.sort();
        let mut conn = api.state.store.read_conn().await.unwrap();
        let within = neutrino::store::l2_peers::bound_elsewhere(&mut conn, &net, "h2", 5)
            .await
            .unwrap();
        assert_eq!(
            within.into_iter().collect::<Vec<_>>(),
            vec![("h1".to_string(), macs)]
        );
        let past = neutrino::store::l2_peers::bound_elsewhere(&mut conn, &net, "h2", 4)
            .await
            .unwrap();
        assert_eq!(
            past.into_iter().collect::<Vec<_>>(),
            vec![("h1".to_string(), Vec::new())],
            "past the bound: the peer, without its MACs"
        );
    }
);

// dhcp_agents_per_network = 2: each DHCP network is served by two hosts, each with its own DHCP
// port and its own feed; a dead one is replaced by a third; the last DHCP subnet takes both.
for_both_databases!(
    several_dhcp_agents_serve_one_network_and_a_dead_one_is_replaced,
    |db: Db| async move {
        let api = TestApi::with(db, |c| {
            c.dhcp_agents_per_network = 2;
            c.agent_down_time = Duration::from_secs(2);
        })
        .await;
        node(&api, "a", true).await;
        let net = network(&api).await;
        let subnet_id = subnet(&api, &net, "10.21.0.0/24", true).await;
        let hosts_of = |ports: &[Value]| -> Vec<String> {
            let mut hosts: Vec<String> = ports
                .iter()
                .map(|p| p["binding:host_id"].as_str().unwrap().to_string())
                .collect();
            hosts.sort();
            hosts
        };
        assert_eq!(
            hosts_of(&dhcp_ports(&api, &net).await),
            ["a"],
            "one agent alive"
        );
        // A second DHCP agent appears: the network, still short of two, goes to it as well.
        node(&api, "b", true).await;
        let ports = dhcp_ports(&api, &net).await;
        assert_eq!(hosts_of(&ports), ["a", "b"]);
        let addresses: Vec<&Value> = ports.iter().map(|p| &p["fixed_ips"][0]).collect();
        assert_ne!(addresses[0], addresses[1], "each DHCP port its own address");
        // Each host's feed serves the network with its own DHCP port, and hears of new ports.
        let mut seen = Vec::new();
        for host in ["a", "b"] {
            let full = poll(&api, host, 0, 0).await;
            assert_eq!(full.dhcp_networks.len(), 1, "{host}: {full:?}");
            let served = full.dhcp_networks[0].network.as_ref().unwrap();
            let own = ports.iter().find(|p| p["binding:host_id"] == host).unwrap();
            assert_eq!(served.dhcp_port_id, id_of(own), "{host}");
            assert_eq!(
                served.ports.len(),
                2,
                "{host}: both DHCP ports are host entries"
            );
            seen.push(full.revision);
        }
        let vm = port(&api, json!({"network_id": net})).await;
        for (host, after) in ["a", "b"].into_iter().zip(seen) {
            let news = poll(&api, host, after, 5).await;
            assert!(port_in(&news, &id_of(&vm)).is_some(), "{host}: {news:?}");
        }
        // A third agent gets nothing while the network has its two.
        node(&api, "c", true).await;
        assert_eq!(hosts_of(&dhcp_ports(&api, &net).await), ["a", "b"]);
        let c_before = poll(&api, "c", 0, 0).await;
        assert!(c_before.dhcp_networks.is_empty(), "{c_before:?}");

        // b dies (a and c keep reporting past the down time): c takes b's place.
        let b_before = poll(&api, "b", 0, 0).await;
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            node(&api, "a", true).await;
            node(&api, "c", true).await;
        }
        neutrino::core::dhcp_failover::move_from_dead_agents(&api.state)
            .await
            .unwrap();
        assert_eq!(hosts_of(&dhcp_ports(&api, &net).await), ["a", "c"]);
        let b_news = poll(&api, "b", b_before.revision, 5).await;
        assert_eq!(b_news.dhcp_networks.len(), 1, "{b_news:?}");
        assert_eq!(b_news.dhcp_networks[0].network, None, "b gave it back");
        let c_news = poll(&api, "c", c_before.revision, 5).await;
        assert!(
            c_news.dhcp_networks.iter().any(|n| n.network.is_some()),
            "{c_news:?}"
        );
        // With no third alive agent, a dead one keeps its place (nobody else could serve).
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            node(&api, "a", true).await;
        }
        neutrino::core::dhcp_failover::move_from_dead_agents(&api.state)
            .await
            .unwrap();
        assert_eq!(hosts_of(&dhcp_ports(&api, &net).await), ["a", "c"]);

        // The network's last DHCP subnet goes: both hosts lose it.
        let r = api
            .call(Method::DELETE, &format!("/v2.0/ports/{}", id_of(&vm)), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let r = api
            .call(Method::DELETE, &format!("/v2.0/subnets/{subnet_id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        assert!(dhcp_ports(&api, &net).await.is_empty());
    }
);

// Security groups as a host's firewall sees them: a bound port's filter (its groups' rules),
// the members of the remote groups it names, news when a member joins, when a rule is added
// and when port security goes; ports not bound there carry no filter.
on_both_databases!(
    a_hosts_ports_carry_their_filters_and_remote_group_members,
    |api: TestApi| async move {
        node(&api, "h1", false).await;
        let net = network(&api).await;
        subnet(&api, &net, "10.31.0.0/24", false).await;
        let a = port(&api, json!({"network_id": net, "binding:host_id": "h1"})).await;
        let a_id = id_of(&a);
        assert_eq!(
            a["binding:vif_details"]["port_filter"], false,
            "h1 reported no firewall"
        );
        let default = a["security_groups"][0].as_str().unwrap().to_string();
        let ip = |p: &Value| {
            p["fixed_ips"][0]["ip_address"]
                .as_str()
                .unwrap()
                .to_string()
        };

        let full = poll(&api, "h1", 0, 0).await;
        let got = port_in(&full, &a_id).flatten().expect("the bound port");
        let filter = got.filter.expect("a filter");
        assert!(filter.stateful);
        let mut rules: Vec<(String, String, Option<String>)> = filter
            .rules
            .iter()
            .map(|r| {
                (
                    r.direction.clone(),
                    r.ethertype.clone(),
                    r.remote_group_id.clone(),
                )
            })
            .collect();
        rules.sort();
        assert_eq!(
            rules,
            [
                ("egress".into(), "IPv4".into(), None),
                ("egress".into(), "IPv6".into(), None),
                ("ingress".into(), "IPv4".into(), Some(default.clone())),
                ("ingress".into(), "IPv6".into(), Some(default.clone())),
            ]
        );
        let members = |changes: &neutrino::agent::protocol::HostChanges| {
            changes
                .remote_groups
                .iter()
                .find(|g| g.id == default)
                .and_then(|g| g.members.clone())
        };
        assert_eq!(members(&full), Some(vec![ip(&a)]), "{full:?}");

        // b joins the default group (bound nowhere): h1 hears the new member list.
        let b = port(&api, json!({"network_id": net})).await;
        let news = poll(&api, "h1", full.revision, 5).await;
        let mut want = vec![ip(&a), ip(&b)];
        want.sort();
        assert_eq!(members(&news), Some(want), "{news:?}");
        assert!(port_in(&news, &id_of(&b)).is_none(), "b is not h1's");

        // A rule on the group: h1's port is news, with the rule.
        let rule = api
            .call(
                Method::POST,
                "/v2.0/security-group-rules",
                Some(json!({"security_group_rule": {"security_group_id": default,
                    "direction": "ingress", "protocol": "tcp", "port_range_min": 22,
                    "port_range_max": 22}})),
            )
            .await;
        assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.body);
        let news = poll(&api, "h1", news.revision, 5).await;
        let got = port_in(&news, &a_id).flatten().expect("a is news");
        assert!(
            got.filter
                .expect("a filter")
                .rules
                .iter()
                .any(|r| r.port_range_min == Some(22) && r.protocol.as_deref() == Some("tcp")),
            "{news:?}"
        );

        // b leaves: the members shrink. Port security off: a is unfiltered.
        let r = api
            .call(Method::DELETE, &format!("/v2.0/ports/{}", id_of(&b)), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let news = poll(&api, "h1", news.revision, 5).await;
        assert_eq!(members(&news), Some(vec![ip(&a)]), "{news:?}");
        update_port(
            &api,
            &a_id,
            json!({"security_groups": [], "port_security_enabled": false}),
        )
        .await;
        let news = poll(&api, "h1", news.revision, 5).await;
        let got = port_in(&news, &a_id).flatten().expect("a is news");
        assert_eq!(got.filter, None, "{news:?}");
    }
);

// The hosts that hear of a group's new members are those its naming groups have bound ports
// on, and they follow the bindings: a port moved to another host takes the news with it, a
// port bound nowhere brings none.
on_both_databases!(
    the_hosts_told_of_a_groups_members_follow_the_bindings,
    |api: TestApi| async move {
        node(&api, "h1", false).await;
        node(&api, "h2", false).await;
        let net = network(&api).await;
        subnet(&api, &net, "10.32.0.0/24", false).await;
        let a = port(&api, json!({"network_id": net, "binding:host_id": "h1"})).await;
        let default = a["security_groups"][0].as_str().unwrap().to_string();
        let hosts_naming = || async {
            let mut conn = api.state.store.read_conn().await.unwrap();
            neutrino::store::port_groups::hosts_naming(&mut conn, &default)
                .await
                .unwrap()
        };
        assert_eq!(hosts_naming().await, ["h1"]);
        port(&api, json!({"network_id": net})).await;
        assert_eq!(
            hosts_naming().await,
            ["h1"],
            "an unbound member adds no host"
        );

        let h2 = poll(&api, "h2", 0, 0).await;
        update_port(&api, &id_of(&a), json!({"binding:host_id": "h2"})).await;
        assert_eq!(hosts_naming().await, ["h2"], "a moved: h1 has none left");
        let news = poll(&api, "h2", h2.revision, 5).await;
        assert!(
            news.remote_groups.iter().any(|g| g.id == default),
            "{news:?}"
        );
        let b = port(&api, json!({"network_id": net, "binding:host_id": "h1"})).await;
        assert_eq!(hosts_naming().await, ["h1", "h2"]);
        // A group naming the default one: its bound ports' hosts hear too.
        let other = created(
            &api,
            "/v2.0/security-groups",
            "security_group",
            json!({"name": "web"}),
        )
        .await;
        let rule = api
            .call(
                Method::POST,
                "/v2.0/security-group-rules",
                Some(
                    json!({"security_group_rule": {"security_group_id": other["id"],
                    "direction": "ingress", "remote_group_id": default}}),
                ),
            )
            .await;
        assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.body);
        node(&api, "h3", false).await;
        port(
            &api,
            json!({"network_id": net, "binding:host_id": "h3",
                "security_groups": [other["id"]]}),
        )
        .await;
        assert_eq!(hosts_naming().await, ["h1", "h2", "h3"]);
        let r = api
            .call(Method::DELETE, &format!("/v2.0/ports/{}", id_of(&b)), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        assert_eq!(hosts_naming().await, ["h2", "h3"]);
    }
);

/// The L3 agent a node agent reports.
fn l3_report(host: &str) -> Value {
    json!({"agent_type": "L3 agent", "binary": "neutrino-l3-agent", "host": host,
        "topic": "l3_agent", "start_flag": true,
        "configurations": {"agent_mode": "legacy", "handle_internal_only_routers": true}})
}

async fn report_fip_status(api: &TestApi, host: &str, statuses: &[(&str, &str)]) -> Reply {
    let fips: Vec<Value> = statuses
        .iter()
        .map(|(id, status)| json!({"id": id, "status": status}))
        .collect();
    api.request(
        Method::POST,
        &format!("/internal/hosts/{host}/floatingips/status"),
        &[("x-neutrino-agent-token", &api.agent_token)],
        json!({ "floating_ips": fips }).to_string().into_bytes(),
    )
    .await
}

// What an L3 agent's host hears of the routers it serves: the router whole (namespace, its
// interfaces and gateway with their devices' names and addresses, routes, floating IPs) on a
// full answer and after each change, the router's ports bound there with a `router`
// attachment in its namespace, and "no longer yours" when it goes; floating IP statuses come
// back from that host only.
on_both_databases!(
    a_router_s_host_hears_the_whole_router,
    |api: TestApi| async move {
        node(&api, "net1", false).await;
        report(&api, l3_report("net1")).await;
        let external = created(
            &api,
            "/v2.0/networks",
            "network",
            json!({"name": "public", "router:external": true,
                "provider:network_type": "flat", "provider:physical_network": "physnet1"}),
        )
        .await;
        let external = external["id"].as_str().unwrap().to_string();
        created(
            &api,
            "/v2.0/subnets",
            "subnet",
            json!({"network_id": external, "ip_version": 4, "cidr": "172.24.4.0/24",
                "gateway_ip": "172.24.4.1", "enable_dhcp": false}),
        )
        .await;
        let net = network(&api).await;
        let subnet_id = subnet(&api, &net, "10.0.0.0/24", false).await;
        let router = created(
            &api,
            "/v2.0/routers",
            "router",
            json!({"name": "r", "external_gateway_info": {"network_id": external}}),
        )
        .await;
        let router_id = router["id"].as_str().unwrap().to_string();
        let gateway_ip = router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .to_string();
        let r = api
            .call(
                Method::PUT,
                &format!("/v2.0/routers/{router_id}/add_router_interface"),
                Some(json!({"subnet_id": subnet_id})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let interface_port = r.body["port_id"].as_str().unwrap().to_string();
        let instance = port(&api, json!({"network_id": net, "name": "vm"})).await;
        let fixed = instance["fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .to_string();
        let fip = created(
            &api,
            "/v2.0/floatingips",
            "floatingip",
            json!({"floating_network_id": external, "port_id": instance["id"]}),
        )
        .await;
        let fip_id = fip["id"].as_str().unwrap().to_string();
        assert_eq!(fip["status"], "DOWN");

        let full = poll(&api, "net1", 0, 0).await;
        assert_eq!(full.routers.len(), 1, "{:?}", full.routers);
        let served = full.routers[0].router.clone().expect("the router");
        assert_eq!(served.namespace, format!("qrouter-{router_id}"));
        assert!(served.admin_state_up);
        assert_eq!(served.interfaces.len(), 1);
        let interface = &served.interfaces[0];
        assert_eq!(interface.port_id, interface_port);
        assert_eq!(
            interface.interface_name,
            format!("qr-{}", &interface_port[..11])
        );
        assert_eq!(interface.addresses, vec!["10.0.0.1/24".to_string()]);
        let gateway = served.gateway.as_ref().expect("a gateway");
        assert!(gateway.device.interface_name.starts_with("qg-"));
        assert_eq!(gateway.device.addresses, vec![format!("{gateway_ip}/24")]);
        assert_eq!(gateway.gateway_ips, vec!["172.24.4.1".to_string()]);
        assert!(gateway.enable_snat);
        assert_eq!(served.floating_ips.len(), 1);
        assert_eq!(served.floating_ips[0].fixed_ip_address, fixed);
        assert_eq!(
            served.floating_ips[0].floating_ip_address,
            fip["floating_ip_address"].as_str().unwrap()
        );
        // The router's ports are bound here, into its namespace.
        let bound = port_in(&full, &interface_port)
            .flatten()
            .expect("the interface port in the answer");
        let attachment = bound.binding.and_then(|b| b.attachment).expect("attached");
        assert_eq!(attachment.kind, neutrino_model::AttachmentKind::Router);
        assert_eq!(attachment.namespace, served.namespace);
        assert_eq!(attachment.interface_name, interface.interface_name);

        // Floating IP status: from the router's host only, ACTIVE or ERROR.
        let r = report_fip_status(&api, "net2", &[(&fip_id, "ACTIVE")]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body, json!({"updated": 0, "ignored": 1}));
        let r = report_fip_status(&api, "net1", &[(&fip_id, "DOWN")]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        let r = report_fip_status(&api, "net1", &[(&fip_id, "ACTIVE")]).await;
        assert_eq!(r.body, json!({"updated": 1, "ignored": 0}));
        let shown = api
            .call(Method::GET, &format!("/v2.0/floatingips/{fip_id}"), None)
            .await;
        assert_eq!(shown.body["floatingip"]["status"], "ACTIVE");

        // A change of the router is news for its host: the router whole again.
        let after = full.revision;
        let r = api
            .call(
                Method::PUT,
                &format!("/v2.0/floatingips/{fip_id}"),
                Some(json!({"floatingip": {"port_id": null}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let changes = poll(&api, "net1", after, 5).await;
        let told = changes
            .routers
            .iter()
            .find(|c| c.id == router_id)
            .and_then(|c| c.router.clone())
            .expect("the router changed");
        assert!(told.floating_ips.is_empty(), "{told:?}");

        // The router goes: its host hears it is no longer its own.
        let after = changes.revision;
        let r = api
            .call(Method::DELETE, &format!("/v2.0/floatingips/{fip_id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let r = api
            .call(
                Method::PUT,
                &format!("/v2.0/routers/{router_id}/remove_router_interface"),
                Some(json!({"subnet_id": subnet_id})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = api
            .call(Method::DELETE, &format!("/v2.0/routers/{router_id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let changes = poll(&api, "net1", after, 5).await;
        let gone = changes.routers.iter().find(|c| c.id == router_id);
        assert_eq!(
            gone.map(|c| c.router.is_none()),
            Some(true),
            "{:?}",
            changes.routers
        );
        assert_eq!(port_in(&changes, &interface_port), Some(None));
        assert!(poll(&api, "net1", 0, 0).await.routers.is_empty());
    }
);
