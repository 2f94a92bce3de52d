//! The minimal compute API (`/v2.1/servers`) and the agents' instance reports, on SQLite and
//! PostgreSQL: scheduling, ports created or taken over and given back, BUILD -> ACTIVE on the
//! agent's reports, the boot timeout, Nova's error shapes, project isolation, and the host's
//! change feed.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use neutrino::agent::protocol::{InstanceStatus, InstanceStatusReport, NicLease};
use neutrino::store::servers;
use neutrino_tests::api::{Db, Reply, TestApi};
use neutrino_tests::{for_both_databases, on_both_databases};
use serde_json::{Value, json};
use sqlx::Row as _;

const MEMBER: Option<(&str, &str)> = Some(("project-b", "member"));
const READER: Option<(&str, &str)> = Some(("project-b", "reader"));
const OTHER: Option<(&str, &str)> = Some(("project-c", "member"));

/// An Open vSwitch agent on `host` (tenant networks are VXLAN, which it tunnels).
async fn ovs_agent(api: &TestApi, host: &str) {
    let r = api
        .report(
            json!({"agent_type": "Open vSwitch agent", "binary": "neutrino-agent",
            "host": host, "topic": "N/A", "start_flag": true,
            "configurations": {"bridge_mappings": {"physnet1": "br-ex"}, "tunnel_types": ["vxlan"],
                "tunneling_ip": "127.0.0.1", "integration_bridge": "br-int",
                "datapath_type": "netdev", "ovs_hybrid_plug": true}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn created(api: &TestApi, who: Option<(&str, &str)>, resource: &str, body: Value) -> Value {
    let r = api
        .call_as(
            who,
            Method::POST,
            &format!("/v2.0/{resource}s"),
            Some(json!({ resource: body })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body[resource].clone()
}

/// A network named `name` with the subnet `cidr`, owned by `who`'s project; its id.
async fn network(api: &TestApi, who: Option<(&str, &str)>, name: &str, cidr: &str) -> String {
    let net = created(api, who, "network", json!({"name": name})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    created(
        api,
        who,
        "subnet",
        json!({"network_id": net, "ip_version": 4, "cidr": cidr}),
    )
    .await;
    net
}

async fn boot(api: &TestApi, who: Option<(&str, &str)>, server: Value) -> Reply {
    api.call_as(
        who,
        Method::POST,
        "/v2.1/servers",
        Some(json!({ "server": server })),
    )
    .await
}

/// Boots and expects 202; the server's id.
async fn booted(api: &TestApi, who: Option<(&str, &str)>, server: Value) -> String {
    let r = boot(api, who, server).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    r.body["server"]["id"].as_str().unwrap().to_string()
}

async fn show(api: &TestApi, id: &str) -> Value {
    let r = api
        .call(Method::GET, &format!("/v2.1/servers/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["server"].clone()
}

async fn ports_of(api: &TestApi, server_id: &str) -> Vec<Value> {
    let r = api
        .call(
            Method::GET,
            &format!("/v2.0/ports?device_id={server_id}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["ports"].as_array().unwrap().clone()
}

async fn port_count(api: &TestApi) -> usize {
    let r = api.call(Method::GET, "/v2.0/ports", None).await;
    r.body["ports"].as_array().unwrap().len()
}

/// The agent of `host` reports leases for the server's NICs.
async fn report_leases(api: &TestApi, host: &str, id: &str, leases: &[(&str, Option<&str>)]) {
    let report = InstanceStatusReport {
        instances: vec![InstanceStatus {
            id: id.to_string(),
            nics: leases
                .iter()
                .map(|(port_id, ip)| NicLease {
                    port_id: port_id.to_string(),
                    leased_ip: ip.map(str::to_string),
                })
                .collect(),
            error: None,
        }],
    };
    let r = instance_report(api, host, &report).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
}

async fn instance_report(api: &TestApi, host: &str, report: &InstanceStatusReport) -> Reply {
    api.request(
        Method::POST,
        &format!("/internal/hosts/{host}/instances/status"),
        &[("x-neutrino-agent-token", &api.agent_token)],
        serde_json::to_vec(report).unwrap(),
    )
    .await
}

/// What the ports/status endpoint does when the agent has wired the ports: their status, then
/// the servers waiting for them.
async fn ports_wired(api: &TestApi, port_ids: &[&str]) -> Vec<String> {
    let mut tx = api.state.store.begin_write().await.unwrap();
    for id in port_ids {
        sqlx::query("UPDATE ports SET status = 'ACTIVE' WHERE id = $1")
            .bind(*id)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let ids: Vec<String> = port_ids.iter().map(|s| s.to_string()).collect();
    let activated = servers::refresh_status(&mut tx, &ids).await.unwrap();
    tx.commit().await.unwrap();
    activated
}

/// The host's change-feed rows newer than `after`, as (kind, object id).
async fn feed_after(api: &TestApi, host: &str, after: i64) -> Vec<(String, String)> {
    sqlx::query(
        "SELECT kind, object_id FROM host_feed WHERE host = $1 AND revision > $2 ORDER BY revision",
    )
    .bind(host)
    .bind(after)
    .fetch_all(&api.state.store.read)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("kind"), r.get("object_id")))
    .collect()
}

async fn feed_rows(api: &TestApi, host: &str) -> Vec<(String, String)> {
    feed_after(api, host, 0).await
}

async fn feed_revision(api: &TestApi) -> i64 {
    sqlx::query_scalar("SELECT revision FROM feed_revision")
        .fetch_one(&api.state.store.read)
        .await
        .unwrap()
}

fn nova_fault(r: &Reply, name: &str, code: u16) -> String {
    assert_eq!(r.status.as_u16(), code, "{}", r.body);
    assert_eq!(r.body[name]["code"], code, "{}", r.body);
    r.body[name]["message"].as_str().unwrap().to_string()
}

on_both_databases!(
    boot_on_a_network_goes_active_on_the_agent_s_reports,
    |api: TestApi| async move {
        ovs_agent(&api, "compute1").await;
        let net = network(&api, None, "private", "10.0.0.0/24").await;
        let r = boot(
            &api,
            None,
            json!({"name": "vm1", "imageRef": "", "flavorRef": "1", "networks": [{"uuid": net}]}),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let id = r.body["server"]["id"].as_str().unwrap().to_string();
        assert_eq!(
            r.body["server"]["links"][0]["href"],
            format!("http://neutrino.test:9696/v2.1/servers/{id}")
        );

        let ports = ports_of(&api, &id).await;
        assert_eq!(ports.len(), 1, "{ports:?}");
        let port = &ports[0];
        let port_id = port["id"].as_str().unwrap();
        let ip = port["fixed_ips"][0]["ip_address"].as_str().unwrap();
        assert_eq!(port["device_owner"], "compute:nova");
        assert_eq!(port["binding:host_id"], "compute1");
        assert_eq!(port["binding:vif_type"], "ovs", "{port}");

        let s = show(&api, &id).await;
        assert_eq!(s["status"], "BUILD");
        assert_eq!(s["name"], "vm1");
        assert_eq!(s["tenant_id"], "admin-project");
        assert_eq!(s["OS-EXT-SRV-ATTR:host"], "compute1");
        assert_eq!(s["OS-EXT-AZ:availability_zone"], "nova");
        assert_eq!(s["metadata"], json!({}));
        assert_eq!(
            s["addresses"],
            json!({"private": [{"addr": ip, "version": 4, "OS-EXT-IPS:type": "fixed",
                "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]}]})
        );
        assert!(s.get("fault").is_none(), "{s}");

        // What the host's agent is told: the instance, its NIC and the port.
        let feed = feed_rows(&api, "compute1").await;
        assert!(feed.contains(&("instance".into(), id.clone())), "{feed:?}");
        assert!(feed.contains(&("port".into(), port_id.into())), "{feed:?}");
        let mut conn = api.state.store.read.acquire().await.unwrap();
        let on_host = servers::host_instances(&mut conn, "compute1", None)
            .await
            .unwrap();
        drop(conn);
        assert_eq!(on_host.len(), 1);
        assert_eq!(on_host[0].nics[0].interface_name, "eth0");
        assert_eq!(on_host[0].nics[0].mac_address, port["mac_address"]);

        // The lease alone is not enough while the port is not wired; another host's agent is
        // not listened to.
        report_leases(&api, "compute2", &id, &[(port_id, Some(ip))]).await;
        let mut conn = api.state.store.read.acquire().await.unwrap();
        assert_eq!(
            servers::nics(&mut conn, &id).await.unwrap()[0].leased_ip,
            None
        );
        drop(conn);
        report_leases(&api, "compute1", &id, &[(port_id, Some(ip))]).await;
        assert_eq!(show(&api, &id).await["status"], "BUILD");
        assert_eq!(ports_wired(&api, &[port_id]).await, vec![id.clone()]);
        let s = show(&api, &id).await;
        assert_eq!(s["status"], "ACTIVE");
        assert_eq!(s["OS-EXT-STS:vm_state"], "active");

        let unauthenticated = api
            .request(
                Method::POST,
                "/internal/hosts/compute1/instances/status",
                &[],
                b"{\"instances\": []}".to_vec(),
            )
            .await;
        assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    }
);

on_both_databases!(
    a_wrong_lease_keeps_it_building_and_the_right_one_after_wiring_activates,
    |api: TestApi| async move {
        ovs_agent(&api, "compute1").await;
        let net = network(&api, None, "private", "10.0.0.0/24").await;
        let id = booted(
            &api,
            None,
            json!({"name": "vm", "networks": [{"uuid": net}]}),
        )
        .await;
        let port = ports_of(&api, &id).await.remove(0);
        let port_id = port["id"].as_str().unwrap();
        // Ports wired first: nothing to activate yet (no lease).
        assert!(ports_wired(&api, &[port_id]).await.is_empty());
        report_leases(&api, "compute1", &id, &[(port_id, Some("10.0.0.250"))]).await;
        assert_eq!(show(&api, &id).await["status"], "BUILD", "a wrong address");
        report_leases(&api, "compute1", &id, &[(port_id, None)]).await;
        assert_eq!(show(&api, &id).await["status"], "BUILD", "no address");
        let ip = port["fixed_ips"][0]["ip_address"].as_str().unwrap();
        report_leases(&api, "compute1", &id, &[(port_id, Some(ip))]).await;
        assert_eq!(show(&api, &id).await["status"], "ACTIVE");

        let bad = api
            .request(
                Method::POST,
                "/internal/hosts/compute1/instances/status",
                &[("x-neutrino-agent-token", &api.agent_token)],
                json!({"instances": [{"id": id, "nics": [{"port_id": port_id, "leased_ip": "10.0.0"}]}]})
                    .to_string()
                    .into_bytes(),
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    }
);

for_both_databases!(
    a_boot_past_its_timeout_goes_to_error_and_its_ports_go,
    |db: Db| async move {
        // Two servers on one database both sweep; one of them fails the boot.
        // 3 s: long enough that the port is still there when the test looks it up on a
        // loaded machine (1 s failed there), short enough for the test.
        let (api, other) = TestApi::two_with(db, |c| c.boot_timeout = Duration::from_secs(3)).await;
        ovs_agent(&api, "compute1").await;
        let net = network(&api, None, "private", "10.0.0.0/24").await;
        let before = port_count(&api).await;
        let id = booted(
            &api,
            None,
            json!({"name": "slow", "networks": [{"uuid": net}]}),
        )
        .await;
        let port_id = ports_of(&api, &id).await[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        ports_wired(&api, &[&port_id]).await;
        let started = Instant::now();
        let s = loop {
            let s = show(&other, &id).await;
            if s["status"] != "BUILD" {
                break s;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "still {s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(s["status"], "ERROR", "{s}");
        let fault = s["fault"]["message"].as_str().unwrap();
        assert!(fault.contains("Build timed out"), "{fault}");
        assert!(fault.contains("eth0: no DHCP lease"), "{fault}");
        assert_eq!(s["fault"]["code"], 500);
        assert_eq!(s["addresses"], json!({}));
        assert!(ports_of(&api, &id).await.is_empty());
        assert_eq!(
            port_count(&api).await,
            before,
            "the created port is deleted"
        );
        let mut conn = api.state.store.read.acquire().await.unwrap();
        assert!(
            servers::host_instances(&mut conn, "compute1", None)
                .await
                .unwrap()
                .is_empty()
        );
        drop(conn);
        // A late lease changes nothing.
        report_leases(&api, "compute1", &id, &[(&port_id, Some("10.0.0.2"))]).await;
        assert_eq!(show(&api, &id).await["status"], "ERROR");
    }
);

on_both_databases!(
    no_live_agent_or_a_forced_host_without_one_is_no_valid_host,
    |api: TestApi| async move {
        let net = network(&api, None, "private", "10.0.0.0/24").await;
        let nowhere = booted(
            &api,
            None,
            json!({"name": "a", "networks": [{"uuid": net}]}),
        )
        .await;
        let s = show(&api, &nowhere).await;
        assert_eq!(s["status"], "ERROR");
        assert_eq!(s["fault"]["message"], "No valid host was found.");
        assert_eq!(s["OS-EXT-SRV-ATTR:host"], Value::Null);
        assert!(ports_of(&api, &nowhere).await.is_empty());

        ovs_agent(&api, "compute1").await;
        let forced = booted(
            &api,
            None,
            json!({"name": "b", "networks": [{"uuid": net}], "availability_zone": "nova:compute9"}),
        )
        .await;
        assert_eq!(
            show(&api, &forced).await["fault"]["message"],
            "No valid host was found."
        );

        // An agent an admin turned off does not count.
        let agents = api.call(Method::GET, "/v2.0/agents", None).await;
        let agent_id = agents.body["agents"][0]["id"].as_str().unwrap().to_string();
        let r = api
            .call(
                Method::PUT,
                &format!("/v2.0/agents/{agent_id}"),
                Some(json!({"agent": {"admin_state_up": false}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let off = booted(
            &api,
            None,
            json!({"name": "c", "networks": [{"uuid": net}]}),
        )
        .await;
        assert_eq!(show(&api, &off).await["status"], "ERROR");
        assert_eq!(feed_rows(&api, "compute1").await, []);
    }
);

on_both_databases!(
    scheduling_takes_the_least_loaded_host_or_the_forced_one,
    |api: TestApi| async move {
        ovs_agent(&api, "compute2").await;
        ovs_agent(&api, "compute1").await;
        let net = network(&api, None, "private", "10.0.0.0/24").await;
        let mut hosts = Vec::new();
        for name in ["a", "b", "c"] {
            let id = booted(
                &api,
                None,
                json!({"name": name, "networks": [{"uuid": net}]}),
            )
            .await;
            hosts.push(show(&api, &id).await["OS-EXT-SRV-ATTR:host"].clone());
        }
        assert_eq!(
            hosts,
            [json!("compute1"), json!("compute2"), json!("compute1")]
        );
        let forced = booted(
            &api,
            None,
            json!({"name": "d", "networks": [{"uuid": net}], "availability_zone": "nova:compute1"}),
        )
        .await;
        assert_eq!(
            show(&api, &forced).await["OS-EXT-SRV-ATTR:host"],
            "compute1"
        );
        let member = boot(
            &api,
            MEMBER,
            json!({"name": "e", "networks": [{"uuid": net}], "availability_zone": "nova:compute1"}),
        )
        .await;
        assert!(
            nova_fault(&member, "forbidden", 403).contains("forced_host"),
            "forcing a host is an admin's"
        );
    }
);

on_both_databases!(
    port_and_fixed_ip_forms_and_what_delete_gives_back,
    |api: TestApi| async move {
        ovs_agent(&api, "compute1").await;
        let net = network(&api, None, "private", "10.0.0.0/24").await;
        let given = created(
            &api,
            None,
            "port",
            json!({"network_id": net, "name": "mine"}),
        )
        .await;
        let given_id = given["id"].as_str().unwrap();
        let with_port = booted(
            &api,
            None,
            json!({"name": "p", "networks": [{"port": given_id}, {"uuid": net, "fixed_ip": "10.0.0.77"}]}),
        )
        .await;
        let ports = ports_of(&api, &with_port).await;
        assert_eq!(ports.len(), 2);
        let taken = ports.iter().find(|p| p["id"] == given_id).unwrap();
        assert_eq!(taken["device_owner"], "compute:nova");
        assert_eq!(taken["binding:host_id"], "compute1");
        assert_eq!(taken["binding:vif_type"], "ovs");
        let fixed = ports.iter().find(|p| p["id"] != given_id).unwrap();
        assert_eq!(fixed["fixed_ips"][0]["ip_address"], "10.0.0.77");
        let mut conn = api.state.store.read.acquire().await.unwrap();
        let nics = servers::nics(&mut conn, &with_port).await.unwrap();
        drop(conn);
        let names: Vec<(&str, bool)> = nics
            .iter()
            .map(|n| (n.interface_name.as_str(), n.created_port))
            .collect();
        assert_eq!(names, [("eth0", false), ("eth1", true)]);
        assert_eq!(nics[0].port_id, given_id, "NICs in the order given");
        let addresses = &show(&api, &with_port).await["addresses"]["private"];
        assert_eq!(addresses.as_array().unwrap().len(), 2, "{addresses}");

        let again = boot(
            &api,
            None,
            json!({"name": "q", "networks": [{"port": given_id}]}),
        )
        .await;
        let message = nova_fault(&again, "conflictingRequest", 409);
        assert_eq!(message, format!("Port {given_id} is still in use."));

        let fixed_id = fixed["id"].as_str().unwrap().to_string();
        let before_delete = feed_revision(&api).await;
        let r = api
            .call(Method::DELETE, &format!("/v2.1/servers/{with_port}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let r = api
            .call(Method::GET, &format!("/v2.0/ports/{given_id}"), None)
            .await;
        let back = &r.body["port"];
        assert_eq!(back["device_id"], "");
        assert_eq!(back["device_owner"], "");
        assert_eq!(back["binding:host_id"], "");
        assert_eq!(back["binding:vif_type"], "unbound");
        let gone = api
            .call(Method::GET, &format!("/v2.0/ports/{fixed_id}"), None)
            .await;
        assert_eq!(
            gone.status,
            StatusCode::NOT_FOUND,
            "the created port is deleted"
        );
        let shown = api
            .call(Method::GET, &format!("/v2.1/servers/{with_port}"), None)
            .await;
        assert_eq!(
            nova_fault(&shown, "itemNotFound", 404),
            format!("Instance {with_port} could not be found.")
        );
        // The host is told the instance and both ports changed (gone, or no longer its own).
        let mut feed = feed_after(&api, "compute1", before_delete).await;
        feed.sort();
        assert_eq!(
            feed,
            [
                ("instance".to_string(), with_port.clone()),
                ("port".to_string(), given_id.to_string()),
                ("port".to_string(), fixed_id.clone()),
            ]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
        // The given port can boot again, and the freed address is free again.
        booted(&api, None, json!({"name": "r", "networks": [{"port": given_id}, {"uuid": net, "fixed_ip": "10.0.0.77"}]})).await;
    }
);

on_both_databases!(
    an_address_in_use_fails_the_boot_and_leaves_nothing_behind,
    |api: TestApi| async move {
        ovs_agent(&api, "compute1").await;
        let first = network(&api, None, "first", "10.0.0.0/24").await;
        let second = network(&api, None, "second", "10.1.0.0/24").await;
        created(
            &api,
            None,
            "port",
            json!({"network_id": second, "fixed_ips": [{"ip_address": "10.1.0.9"}]}),
        )
        .await;
        let given = created(&api, None, "port", json!({"network_id": first})).await;
        let before = port_count(&api).await;
        let r = boot(
            &api,
            None,
            json!({"name": "x", "networks": [{"uuid": first}, {"port": given["id"]},
                {"uuid": second, "fixed_ip": "10.1.0.9"}]}),
        )
        .await;
        let message = nova_fault(&r, "badRequest", 400);
        assert!(message.contains("10.1.0.9"), "{message}");
        assert_eq!(
            port_count(&api).await,
            before,
            "the first port is rolled back"
        );
        let r = api
            .call(
                Method::GET,
                &format!("/v2.0/ports/{}", given["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(
            r.body["port"]["device_id"], "",
            "the given port is restored"
        );
        assert_eq!(r.body["port"]["binding:host_id"], "");
        let list = api.call(Method::GET, "/v2.1/servers", None).await;
        assert_eq!(list.body["servers"], json!([]));
        assert_eq!(feed_rows(&api, "compute1").await, []);
        // The address it would have had on the first network is still free.
        let next = created(&api, None, "port", json!({"network_id": first})).await;
        assert_eq!(next["fixed_ips"][0]["ip_address"], "10.0.0.3");
    }
);

on_both_databases!(
    a_port_that_cannot_be_bound_fails_the_boot_with_the_reason,
    |api: TestApi| async move {
        ovs_agent(&api, "compute1").await;
        let net = created(
            &api,
            None,
            "network",
            json!({"name": "phys", "provider:network_type": "flat",
                "provider:physical_network": "physnet9"}),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        created(
            &api,
            None,
            "subnet",
            json!({"network_id": net, "ip_version": 4, "cidr": "192.168.9.0/24"}),
        )
        .await;
        let before = port_count(&api).await;
        let id = booted(
            &api,
            None,
            json!({"name": "unbindable", "networks": [{"uuid": net}]}),
        )
        .await;
        let s = show(&api, &id).await;
        assert_eq!(s["status"], "ERROR");
        let fault = s["fault"]["message"].as_str().unwrap();
        assert!(fault.starts_with("Binding failed for port "), "{fault}");
        assert!(fault.contains("physnet9"), "the drivers' reason: {fault}");
        assert_eq!(port_count(&api).await, before);
    }
);

on_both_databases!(
    the_agent_giving_up_is_an_error_and_releases_the_ports,
    |api: TestApi| async move {
        ovs_agent(&api, "compute1").await;
        let net = network(&api, None, "private", "10.0.0.0/24").await;
        let id = booted(
            &api,
            None,
            json!({"name": "vm", "networks": [{"uuid": net}]}),
        )
        .await;
        let report = InstanceStatusReport {
            instances: vec![InstanceStatus {
                id: id.clone(),
                nics: vec![],
                error: Some("plugging eth0: no such bridge br-int".into()),
            }],
        };
        let r = instance_report(&api, "compute1", &report).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let s = show(&api, &id).await;
        assert_eq!(s["status"], "ERROR");
        assert_eq!(
            s["fault"]["message"],
            "The agent on compute1 gave up on the instance: plugging eth0: no such bridge br-int"
        );
        assert!(ports_of(&api, &id).await.is_empty());
    }
);

on_both_databases!(
    nova_errors_isolation_and_readers,
    |api: TestApi| async move {
        ovs_agent(&api, "compute1").await;
        let r = boot(
            &api,
            None,
            json!({"name": "x", "networks": [{"uuid": "9dd1f574-b84c-4988-b5a7-cea1735d0e59"}]}),
        )
        .await;
        assert_eq!(
            nova_fault(&r, "badRequest", 400),
            "Network 9dd1f574-b84c-4988-b5a7-cea1735d0e59 could not be found."
        );
        let r = boot(
            &api,
            None,
            json!({"name": "x", "networks": [{"port": "nope"}]}),
        )
        .await;
        assert_eq!(
            nova_fault(&r, "badRequest", 400),
            "Port id nope could not be found."
        );
        let r = boot(&api, None, json!({"networks": []})).await;
        nova_fault(&r, "badRequest", 400);
        let missing = api
            .call(
                Method::GET,
                "/v2.1/servers/9dd1f574-b84c-4988-b5a7-cea1735d0e59",
                None,
            )
            .await;
        assert_eq!(
            nova_fault(&missing, "itemNotFound", 404),
            "Instance 9dd1f574-b84c-4988-b5a7-cea1735d0e59 could not be found."
        );
        let r = api
            .call(
                Method::DELETE,
                "/v2.1/servers/9dd1f574-b84c-4988-b5a7-cea1735d0e59",
                None,
            )
            .await;
        nova_fault(&r, "itemNotFound", 404);

        // Project B's server, on its own network.
        let net_b = network(&api, MEMBER, "net-b", "10.2.0.0/24").await;
        let mine = booted(
            &api,
            MEMBER,
            json!({"name": "b1", "networks": [{"uuid": net_b}]}),
        )
        .await;
        let r = boot(
            &api,
            OTHER,
            json!({"name": "c1", "networks": [{"uuid": net_b}]}),
        )
        .await;
        nova_fault(&r, "badRequest", 400);
        let path = format!("/v2.1/servers/{mine}");
        let other = api.call_as(OTHER, Method::GET, &path, None).await;
        nova_fault(&other, "itemNotFound", 404);
        let other = api.call_as(OTHER, Method::DELETE, &path, None).await;
        nova_fault(&other, "itemNotFound", 404);
        let list = api.call_as(OTHER, Method::GET, "/v2.1/servers", None).await;
        assert_eq!(list.body["servers"], json!([]));

        // A reader of project B sees it but may not change anything.
        let seen = api.call_as(READER, Method::GET, &path, None).await;
        assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
        assert_eq!(seen.body["server"]["tenant_id"], "project-b");
        assert!(
            seen.body["server"].get("OS-EXT-SRV-ATTR:host").is_none(),
            "the host is an admin's business"
        );
        let r = boot(
            &api,
            READER,
            json!({"name": "r", "networks": [{"uuid": net_b}]}),
        )
        .await;
        assert_eq!(
            nova_fault(&r, "forbidden", 403),
            "Policy doesn't allow os_compute_api:servers:create to be performed."
        );
        let r = api.call_as(READER, Method::DELETE, &path, None).await;
        nova_fault(&r, "forbidden", 403);
        let list = api
            .call_as(READER, Method::GET, "/v2.1/servers", None)
            .await;
        assert_eq!(
            list.body["servers"],
            json!([{"id": mine, "name": "b1", "links": [
                {"rel": "self", "href": format!("http://neutrino.test:9696/v2.1/servers/{mine}")},
                {"rel": "bookmark", "href": format!("http://neutrino.test:9696/servers/{mine}")}]}])
        );
        let detail = api
            .call_as(READER, Method::GET, "/v2.1/servers/detail", None)
            .await;
        let details = detail.body["servers"].as_array().unwrap();
        assert_eq!(details.len(), 1);
        assert_eq!(details[0]["status"], "BUILD");
        assert_eq!(details[0]["addresses"]["net-b"][0]["version"], 4);
        // The admin sees every project's servers.
        let all = api.call(Method::GET, "/v2.1/servers/detail", None).await;
        assert_eq!(all.body["servers"].as_array().unwrap().len(), 1);
        let r = api.call_as(MEMBER, Method::DELETE, &path, None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let r = api
            .call(Method::PUT, &path, Some(json!({"server": {}})))
            .await;
        nova_fault(&r, "badMethod", 405);
    }
);

/// The agent's report of its ports' status, through the endpoint it posts to.
async fn port_status(api: &TestApi, host: &str, port_id: &str, status: &str) {
    let r = api
        .request(
            Method::POST,
            &format!("/internal/hosts/{host}/ports/status"),
            &[("x-neutrino-agent-token", &api.agent_token)],
            json!({"ports": [{"id": port_id, "status": status}]})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn interfaces(api: &TestApi, id: &str) -> Vec<Value> {
    let r = api
        .call(
            Method::GET,
            &format!("/v2.1/servers/{id}/os-interface"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["interfaceAttachments"].as_array().unwrap().clone()
}

on_both_databases!(
    a_port_that_goes_down_shows_in_os_interface_and_keeps_a_building_server_in_build,
    |api: TestApi| async move {
        ovs_agent(&api, "compute1").await;
        let net = network(&api, None, "private", "10.0.0.0/24").await;
        let server = |name: &str| json!({"name": name, "networks": [{"uuid": net}]});
        let active = booted(&api, None, server("vm1")).await;
        let port = ports_of(&api, &active).await[0].clone();
        let (port_id, ip) = (
            port["id"].as_str().unwrap(),
            port["fixed_ips"][0]["ip_address"].as_str().unwrap(),
        );
        port_status(&api, "compute1", port_id, "ACTIVE").await;
        report_leases(&api, "compute1", &active, &[(port_id, Some(ip))]).await;
        assert_eq!(show(&api, &active).await["status"], "ACTIVE");
        let attached = interfaces(&api, &active).await;
        assert_eq!(attached.len(), 1, "{attached:?}");
        assert_eq!(attached[0]["port_id"], port_id);
        assert_eq!(attached[0]["net_id"], net.as_str());
        assert_eq!(attached[0]["mac_addr"], port["mac_address"]);
        assert_eq!(attached[0]["fixed_ips"][0]["ip_address"], ip);
        assert_eq!(attached[0]["port_state"], "ACTIVE");

        // The agent found its wiring gone: the port is DOWN, shown; the server, as in Nova,
        // stays ACTIVE; repaired, the port is ACTIVE again.
        port_status(&api, "compute1", port_id, "DOWN").await;
        assert_eq!(interfaces(&api, &active).await[0]["port_state"], "DOWN");
        assert_eq!(show(&api, &active).await["status"], "ACTIVE");
        port_status(&api, "compute1", port_id, "ACTIVE").await;
        assert_eq!(interfaces(&api, &active).await[0]["port_state"], "ACTIVE");

        // A server in BUILD whose NIC holds its lease but whose port is DOWN is not promoted.
        let building = booted(&api, None, server("vm2")).await;
        let port = ports_of(&api, &building).await[0].clone();
        let (port_id, ip) = (
            port["id"].as_str().unwrap(),
            port["fixed_ips"][0]["ip_address"].as_str().unwrap(),
        );
        port_status(&api, "compute1", port_id, "ACTIVE").await;
        port_status(&api, "compute1", port_id, "ERROR").await;
        report_leases(&api, "compute1", &building, &[(port_id, Some(ip))]).await;
        assert_eq!(show(&api, &building).await["status"], "BUILD");
        assert_eq!(interfaces(&api, &building).await[0]["port_state"], "ERROR");
        port_status(&api, "compute1", port_id, "ACTIVE").await;
        assert_eq!(show(&api, &building).await["status"], "ACTIVE");

        // Another project sees no such server.
        let r = api
            .call_as(
                OTHER,
                Method::GET,
                &format!("/v2.1/servers/{active}/os-interface"),
                None,
            )
            .await;
        nova_fault(&r, "itemNotFound", 404);
    }
);

// Nova's choice of networks for a boot that names none (2.37): "none" boots with no NIC, an
// empty list takes the one network available, and more than one is ambiguous (409); "auto"
// with no network and no default external network cannot allocate (400).
on_both_databases!(
    networks_none_empty_and_ambiguous_as_nova,
    |api: TestApi| async move {
        ovs_agent(&api, "compute1").await;
        let bare = booted(&api, MEMBER, json!({"name": "bare", "networks": "none"})).await;
        assert!(ports_of(&api, &bare).await.is_empty());
        assert_eq!(show(&api, &bare).await["addresses"], json!({}));
        // Nothing was available: an empty list boots with no NIC too.
        let empty = booted(&api, MEMBER, json!({"name": "empty", "networks": []})).await;
        assert!(ports_of(&api, &empty).await.is_empty());
        let r = boot(&api, MEMBER, json!({"name": "auto", "networks": "auto"})).await;
        let message = nova_fault(&r, "badRequest", 400);
        assert_eq!(
            message,
            "Unable to automatically allocate a network for project project-b"
        );

        let only = network(&api, MEMBER, "only", "10.1.0.0/24").await;
        for networks in [json!([]), json!("auto")] {
            let id = booted(&api, MEMBER, json!({"name": "one", "networks": networks})).await;
            let ports = ports_of(&api, &id).await;
            assert_eq!(ports.len(), 1, "{networks}: {ports:?}");
            assert_eq!(ports[0]["network_id"], only.as_str());
        }
        // Another project's network is not a candidate; a shared one is.
        network(&api, OTHER, "theirs", "10.2.0.0/24").await;
        booted(&api, MEMBER, json!({"name": "still-one", "networks": []})).await;
        let shared = created(
            &api,
            None,
            "network",
            json!({"name": "shared", "shared": true}),
        )
        .await;
        for networks in [json!([]), json!("auto")] {
            let r = boot(&api, MEMBER, json!({"name": "two", "networks": networks})).await;
            let message = nova_fault(&r, "conflictingRequest", 409);
            assert_eq!(
                message, "Multiple possible networks found, use a Network ID to be more specific.",
                "{networks}"
            );
        }
        // "auto" counts only networks that are up (a half-made topology is not one).
        let r = api
            .call(
                Method::PUT,
                &format!("/v2.0/networks/{}", shared["id"].as_str().unwrap()),
                Some(json!({"network": {"shared": false}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = api
            .call_as(
                MEMBER,
                Method::PUT,
                &format!("/v2.0/networks/{only}"),
                Some(json!({"network": {"admin_state_up": false}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = boot(&api, MEMBER, json!({"name": "down", "networks": "auto"})).await;
        nova_fault(&r, "badRequest", 400);
        let id = booted(&api, MEMBER, json!({"name": "down-ok", "networks": []})).await;
        assert_eq!(ports_of(&api, &id).await.len(), 1);
    }
);
