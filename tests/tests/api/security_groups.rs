//! Security groups and rules (Neutron's `security-group` extension), on SQLite and PostgreSQL:
//! the default group and its rules, the groups' and rules' API (filters, fields, sorting,
//! paging), the rule checks with Neutron's error types and texts (reference section 1), ports'
//! groups and port security, quotas, policy, the compute API's groups by name, and the
//! migration that gives existing default groups their rules.

use axum::http::{Method, StatusCode};
use neutrino_tests::api::{Db, Reply, TestApi};
use neutrino_tests::{for_both_databases, on_both_databases};
use serde_json::{Value, json};

const ALICE: Option<(&str, &str)> = Some(("alice-project", "member"));
const ALICE_READER: Option<(&str, &str)> = Some(("alice-project", "reader"));
const BOB: Option<(&str, &str)> = Some(("bob-project", "member"));

async fn get(api: &TestApi, who: Option<(&str, &str)>, path: &str) -> Reply {
    api.call_as(who, Method::GET, path, None).await
}

async fn post(api: &TestApi, who: Option<(&str, &str)>, path: &str, body: Value) -> Reply {
    api.call_as(who, Method::POST, path, Some(body)).await
}

async fn put(api: &TestApi, who: Option<(&str, &str)>, path: &str, body: Value) -> Reply {
    api.call_as(who, Method::PUT, path, Some(body)).await
}

async fn delete(api: &TestApi, who: Option<(&str, &str)>, path: &str) -> Reply {
    api.call_as(who, Method::DELETE, path, None).await
}

/// Creates a group of `who`'s: its id.
async fn group(api: &TestApi, who: Option<(&str, &str)>, name: &str) -> String {
    let r = post(
        api,
        who,
        "/v2.0/security-groups",
        json!({"security_group": {"name": name}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["security_group"]["id"].as_str().unwrap().to_string()
}

async fn add_rule(api: &TestApi, who: Option<(&str, &str)>, rule: Value) -> Reply {
    post(
        api,
        who,
        "/v2.0/security-group-rules",
        json!({ "security_group_rule": rule }),
    )
    .await
}

/// `who`'s default group (listing makes it): the group's dict.
async fn default_group(api: &TestApi, who: Option<(&str, &str)>) -> Value {
    let r = get(api, who, "/v2.0/security-groups?name=default").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let groups = r.body["security_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{}", r.body);
    groups[0].clone()
}

fn assert_error(r: &Reply, status: StatusCode, kind: &str, message: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.error_type(), kind, "{}", r.body);
    assert!(
        r.error_message().contains(message),
        "{:?} does not contain {message:?}",
        r.error_message()
    );
}

/// A network of `who`'s with a subnet: its id.
async fn network(api: &TestApi, who: Option<(&str, &str)>) -> String {
    let n = post(
        api,
        who,
        "/v2.0/networks",
        json!({"network": {"name": "n"}}),
    )
    .await;
    assert_eq!(n.status, StatusCode::CREATED, "{}", n.body);
    let id = n.body["network"]["id"].as_str().unwrap().to_string();
    let s = post(
        api,
        who,
        "/v2.0/subnets",
        json!({"subnet": {"network_id": id, "ip_version": 4, "cidr": "10.0.0.0/24"}}),
    )
    .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.body);
    id
}

/// (direction, ethertype, remote_group_id is the group) of each rule, sorted.
fn rule_shapes(group: &Value) -> Vec<(String, String, bool)> {
    let id = &group["id"];
    let mut shapes: Vec<(String, String, bool)> = group["security_group_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["security_group_id"], *id);
            assert_eq!(r["protocol"], Value::Null);
            assert_eq!(r["remote_ip_prefix"], Value::Null);
            (
                r["direction"].as_str().unwrap().to_string(),
                r["ethertype"].as_str().unwrap().to_string(),
                r["remote_group_id"] == *id,
            )
        })
        .collect();
    shapes.sort();
    shapes
}

fn neutron_default_rules() -> Vec<(String, String, bool)> {
    vec![
        ("egress".into(), "IPv4".into(), false),
        ("egress".into(), "IPv6".into(), false),
        ("ingress".into(), "IPv4".into(), true),
        ("ingress".into(), "IPv6".into(), true),
    ]
}

on_both_databases!(
    listing_makes_the_default_group_with_neutrons_rules,
    |api: TestApi| async move {
        let g = default_group(&api, ALICE).await;
        assert_eq!(g["name"], "default");
        assert_eq!(g["description"], "Default security group");
        assert_eq!(g["project_id"], "alice-project");
        assert_eq!(g["tenant_id"], "alice-project");
        assert_eq!(g["stateful"], true);
        assert_eq!(g["shared"], false);
        assert_eq!(rule_shapes(&g), neutron_default_rules());
        // The attributes Neutron shows (the recorded transcript's, steps 110 and 111).
        let mut keys: Vec<&str> = g.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "created_at",
                "description",
                "id",
                "name",
                "project_id",
                "revision_number",
                "security_group_rules",
                "shared",
                "stateful",
                "tags",
                "tenant_id",
                "updated_at"
            ]
        );
        let rule = &g["security_group_rules"][0];
        let mut keys: Vec<&str> = rule
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "belongs_to_default_sg",
                "created_at",
                "description",
                "direction",
                "ethertype",
                "id",
                "normalized_cidr",
                "port_range_max",
                "port_range_min",
                "project_id",
                "protocol",
                "remote_address_group_id",
                "remote_group_id",
                "remote_ip_prefix",
                "revision_number",
                "security_group_id",
                "tenant_id",
                "updated_at"
            ]
        );
        assert_eq!(rule["description"], Value::Null);
        // Listed again: the same group, not a second one.
        assert_eq!(default_group(&api, ALICE).await["id"], g["id"]);
        // The rules list shows them too, as the default group's.
        let r = get(&api, ALICE, "/v2.0/security-group-rules").await;
        let rules = r.body["security_group_rules"].as_array().unwrap();
        assert_eq!(rules.len(), 4, "{}", r.body);
        assert!(rules.iter().all(|r| r["belongs_to_default_sg"] == true));
        // A port made before any list uses the same group (bob's first need is a port).
        let net = network(&api, BOB).await;
        let p = post(
            &api,
            BOB,
            "/v2.0/ports",
            json!({"port": {"network_id": net}}),
        )
        .await;
        assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
        let bobs = default_group(&api, BOB).await;
        assert_eq!(p.body["port"]["security_groups"], json!([bobs["id"]]));
        assert_eq!(rule_shapes(&bobs), neutron_default_rules());
        // The extensions say what is served.
        let ext = get(&api, None, "/v2.0/extensions").await;
        let aliases: Vec<&str> = ext.body["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["alias"].as_str().unwrap())
            .collect();
        for alias in [
            "security-group",
            "port-security",
            "stateful-security-group",
            "security-groups-normalized-cidr",
        ] {
            assert!(aliases.contains(&alias), "{alias}");
        }
        assert!(!aliases.contains(&"security-groups-remote-address-group"));
        let one = get(&api, None, "/v2.0/extensions/security-group").await;
        assert_eq!(one.status, StatusCode::OK);
    }
);

for_both_databases!(
    two_first_requests_make_one_default_group,
    |db: Db| async move {
        let (a, b) = TestApi::two(db).await;
        let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let api = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                get(&api, ALICE, "/v2.0/security-groups").await
            }));
        }
        for t in tasks {
            let r = t.await.unwrap();
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
        let g = default_group(&a, ALICE).await;
        assert_eq!(rule_shapes(&g), neutron_default_rules());
        let all = get(&a, ALICE, "/v2.0/security-groups").await;
        assert_eq!(all.body["security_groups"].as_array().unwrap().len(), 1);
        let rules = get(&a, ALICE, "/v2.0/security-group-rules").await;
        assert_eq!(
            rules.body["security_group_rules"].as_array().unwrap().len(),
            4
        );
    }
);

on_both_databases!(groups_crud_and_list_features, |api: TestApi| async move {
    let r = post(
        &api,
        ALICE,
        "/v2.0/security-groups",
        json!({"security_group": {"name": "web", "description": "http"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let web = &r.body["security_group"];
    assert_eq!(web["description"], "http");
    assert_eq!(web["stateful"], true);
    assert_eq!(web["revision_number"], 1);
    // A new group has the template's egress rules only.
    let shapes = rule_shapes(web);
    assert_eq!(shapes, neutron_default_rules()[..2].to_vec());
    let web_id = web["id"].as_str().unwrap().to_string();
    // Bulk, with a stateless one.
    let r = post(
        &api,
        ALICE,
        "/v2.0/security-groups",
        json!({"security_groups": [{"name": "db"}, {"name": "cache", "stateful": false}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["security_groups"][1]["stateful"], false);
    // `default` in any case is refused, on create and on rename.
    for name in ["default", "DeFault"] {
        let r = post(
            &api,
            ALICE,
            "/v2.0/security-groups",
            json!({"security_group": {"name": name}}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::CONFLICT,
            "SecurityGroupDefaultAlreadyExists",
            "Default security group already exists.",
        );
    }
    let r = put(
        &api,
        ALICE,
        &format!("/v2.0/security-groups/{web_id}"),
        json!({"security_group": {"name": "Default"}}),
    )
    .await;
    assert_eq!(r.error_type(), "SecurityGroupDefaultAlreadyExists");
    let r = post(
        &api,
        ALICE,
        "/v2.0/security-groups",
        json!({"security_group": {"name": "x", "security_group_rules": []}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // Filters, fields, sorting, paging.
    let r = get(
        &api,
        ALICE,
        "/v2.0/security-groups?name=db&fields=id&fields=name",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let listed = r.body["security_groups"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "name"]
    );
    let r = get(&api, ALICE, "/v2.0/security-groups?stateful=false").await;
    let names: Vec<&str> = r.body["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cache"]);
    let r = get(
        &api,
        ALICE,
        "/v2.0/security-groups?sort_key=name&sort_dir=desc&fields=name",
    )
    .await;
    let names: Vec<&str> = r.body["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "default", "db", "cache"]);
    let page = get(
        &api,
        ALICE,
        "/v2.0/security-groups?sort_key=name&sort_dir=asc&limit=2&fields=name&fields=id",
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let first: Vec<&str> = page.body["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(first, ["cache", "db"]);
    let last_id = page.body["security_groups"][1]["id"].as_str().unwrap();
    assert!(page.body["security_groups_links"].is_array());
    let next = get(
        &api,
        ALICE,
        &format!(
            "/v2.0/security-groups?sort_key=name&sort_dir=asc&limit=2&fields=name&marker={last_id}"
        ),
    )
    .await;
    let second: Vec<&str> = next.body["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(second, ["default", "web"]);
    let r = get(&api, ALICE, "/v2.0/security-groups?color=red").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Show with fields; update; delete.
    let r = get(
        &api,
        ALICE,
        &format!("/v2.0/security-groups/{web_id}?fields=name"),
    )
    .await;
    assert_eq!(r.body, json!({"security_group": {"name": "web"}}));
    let r = put(
        &api,
        ALICE,
        &format!("/v2.0/security-groups/{web_id}"),
        json!({"security_group": {"name": "www", "description": "d", "stateful": false}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["security_group"]["name"], "www");
    assert_eq!(r.body["security_group"]["stateful"], false);
    assert_eq!(r.body["security_group"]["revision_number"], 2);
    let r = put(
        &api,
        ALICE,
        &format!("/v2.0/security-groups/{web_id}"),
        json!({"security_group": {"id": "x"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = delete(&api, ALICE, &format!("/v2.0/security-groups/{web_id}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = get(&api, ALICE, &format!("/v2.0/security-groups/{web_id}")).await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "SecurityGroupNotFound",
        &format!("Security group {web_id} does not exist"),
    );
    // Its rules went with it.
    let r = get(
        &api,
        ALICE,
        &format!("/v2.0/security-group-rules?security_group_id={web_id}"),
    )
    .await;
    assert_eq!(r.body["security_group_rules"], json!([]));
});

on_both_databases!(the_default_group_is_protected, |api: TestApi| async move {
    let g = default_group(&api, ALICE).await;
    let path = format!("/v2.0/security-groups/{}", g["id"].as_str().unwrap());
    // The name may not even be sent, by anyone.
    for who in [ALICE, None] {
        let r = put(
            &api,
            who,
            &path,
            json!({"security_group": {"name": "default"}}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::CONFLICT,
            "SecurityGroupCannotUpdateDefault",
            "Updating default security group not allowed.",
        );
    }
    let r = put(
        &api,
        ALICE,
        &path,
        json!({"security_group": {"description": "mine"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = delete(&api, ALICE, &path).await;
    assert_error(
        &r,
        StatusCode::CONFLICT,
        "SecurityGroupCannotRemoveDefault",
        "Insufficient rights for removing default security group.",
    );
    // An admin may; the project gets a new one on its next need.
    let r = delete(&api, None, &path).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let again = default_group(&api, ALICE).await;
    assert_ne!(again["id"], g["id"]);
    assert_eq!(rule_shapes(&again), neutron_default_rules());
});

on_both_databases!(
    rules_are_checked_as_neutron_does,
    |api: TestApi| async move {
        let g = group(&api, ALICE, "web").await;
        let rule = |extra: Value| {
            let mut r = json!({"security_group_id": g, "direction": "ingress"});
            for (k, v) in extra.as_object().unwrap() {
                r[k] = v.clone();
            }
            r
        };
        for (extra, status, kind, message) in [
            (json!({"direction": null}), 400, "HTTPBadRequest", ""),
            (
                json!({"direction": "sideways"}),
                400,
                "HTTPBadRequest",
                "'sideways' is not in ['ingress', 'egress']",
            ),
            (
                json!({"ethertype": "IPv5"}),
                400,
                "SecurityGroupRuleInvalidEtherType",
                "Security group rule for ethertype 'IPv5' not supported.",
            ),
            (
                json!({"protocol": "bogus"}),
                400,
                "SecurityGroupRuleInvalidProtocol",
                "Security group rule protocol bogus not supported.",
            ),
            (
                json!({"protocol": 256}),
                400,
                "SecurityGroupRuleInvalidProtocol",
                "integer representations [0 to 255]",
            ),
            (
                json!({"protocol": "tcp", "port_range_min": -16, "port_range_max": 80}),
                400,
                "SecurityGroupInvalidPortValue",
                "Invalid value for port -16",
            ),
            (
                json!({"protocol": "tcp", "port_range_min": 80, "port_range_max": 79}),
                400,
                "SecurityGroupInvalidPortRange",
                "port_range_min must be <= port_range_max",
            ),
            (
                json!({"protocol": "tcp", "port_range_min": 80, "port_range_max": 65536}),
                400,
                "SecurityGroupInvalidPortValue",
                "Invalid value for port 65536",
            ),
            (
                json!({"protocol": "tcp", "port_range_max": 6}),
                400,
                "SecurityGroupInvalidPortRange",
                "port_range_min must be <= port_range_max",
            ),
            (
                json!({"protocol": "icmp", "port_range_min": 1, "port_range_max": 256}),
                400,
                "SecurityGroupInvalidIcmpValue",
                "Invalid value for ICMP code",
            ),
            (
                json!({"protocol": "icmp", "port_range_min": -1, "port_range_max": 25}),
                400,
                "SecurityGroupInvalidPortValue",
                "Invalid value",
            ),
            (
                json!({"protocol": "icmp", "port_range_max": 6}),
                400,
                "SecurityGroupMissingIcmpType",
                "ICMP type (port-range-min) is missing",
            ),
            (
                json!({"protocol": "icmp", "port_range_min": 300, "port_range_max": 1}),
                400,
                "SecurityGroupInvalidIcmpValue",
                "Invalid value for ICMP type",
            ),
            (
                json!({"port_range_min": 22, "port_range_max": 22}),
                400,
                "SecurityGroupProtocolRequiredWithPorts",
                "Must also specify protocol if port range is given.",
            ),
            (
                json!({"protocol": "gre", "port_range_min": 22, "port_range_max": 22}),
                400,
                "SecurityGroupInvalidProtocolForPort",
                "Ports cannot be specified for protocol 47.",
            ),
            (
                json!({"remote_ip_prefix": "10.0.0.0/33"}),
                400,
                "InvalidCIDR",
                "Invalid CIDR 10.0.0.0/33 given as IP prefix.",
            ),
            (
                json!({"remote_ip_prefix": "2001:db8::/64"}),
                400,
                "SecurityGroupRuleParameterConflict",
                "Conflicting value ethertype IPv4 for CIDR 2001:db8::/64",
            ),
            (
                json!({"protocol": "icmpv6"}),
                400,
                "SecurityGroupEthertypeConflictWithProtocol",
                "Invalid ethertype IPv4 for protocol icmpv6.",
            ),
            (
                json!({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": g}),
                400,
                "SecurityGroupMultipleRemoteEntites",
                "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.",
            ),
            (
                json!({"remote_group_id": "51a6b772-7be4-4265-b22e-a5a966aa5d3c"}),
                404,
                "SecurityGroupNotFound",
                "Security group 51a6b772-7be4-4265-b22e-a5a966aa5d3c does not exist",
            ),
            (
                json!({"remote_address_group_id": "51a6b772-7be4-4265-b22e-a5a966aa5d3c"}),
                404,
                "AddressGroupNotFound",
                "",
            ),
            (
                json!({"security_group_id": "51a6b772-7be4-4265-b22e-a5a966aa5d3c"}),
                404,
                "SecurityGroupNotFound",
                "",
            ),
            (
                json!({"normalized_cidr": "10.0.0.0/8"}),
                400,
                "HTTPBadRequest",
                "not allowed in POST",
            ),
            (
                json!({"color": "red"}),
                400,
                "HTTPBadRequest",
                "Unrecognized attribute(s) 'color'",
            ),
        ] {
            let mut body = rule(extra.clone());
            if extra.get("direction") == Some(&Value::Null) {
                body.as_object_mut().unwrap().remove("direction");
            }
            let r = add_rule(&api, ALICE, body).await;
            assert_error(&r, StatusCode::from_u16(status).unwrap(), kind, message);
        }
        // Normalisation: names lower-cased, IPv6 ICMP canonical, the full range no range, a bare
        // address a /32, host bits kept with the normalised CIDR beside them.
        let r = add_rule(&api, ALICE, rule(json!({"protocol": "TCP", "port_range_min": "22", "port_range_max": 22, "remote_ip_prefix": "10.0.0.5/24", "description": "ssh"}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let ssh = r.body["security_group_rule"].clone();
        assert_eq!(ssh["protocol"], "tcp");
        assert_eq!(ssh["ethertype"], "IPv4");
        assert_eq!(ssh["port_range_min"], 22);
        assert_eq!(ssh["remote_ip_prefix"], "10.0.0.5/24");
        assert_eq!(ssh["normalized_cidr"], "10.0.0.0/24");
        assert_eq!(ssh["description"], "ssh");
        assert_eq!(ssh["project_id"], "alice-project");
        assert_eq!(ssh["belongs_to_default_sg"], false);
        assert_eq!(ssh["remote_address_group_id"], Value::Null);
        let r = add_rule(
            &api,
            ALICE,
            rule(json!({"protocol": "icmp", "ethertype": "ipv6", "port_range_min": 128})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["security_group_rule"]["protocol"], "ipv6-icmp");
        assert_eq!(r.body["security_group_rule"]["ethertype"], "IPv6");
        let r = add_rule(&api, ALICE, rule(json!({"protocol": "udp", "port_range_min": 1, "port_range_max": 65535, "remote_ip_prefix": "192.0.2.1"}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["security_group_rule"]["port_range_min"], Value::Null);
        assert_eq!(
            r.body["security_group_rule"]["remote_ip_prefix"],
            "192.0.2.1/32"
        );
        let r = add_rule(
            &api,
            ALICE,
            rule(json!({"protocol": 17, "remote_group_id": g})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["security_group_rule"]["protocol"], "17");
        // Duplicates: tcp is 6; 0.0.0.0/0 is no prefix; the description does not count.
        let r = add_rule(&api, ALICE, rule(json!({"protocol": "6", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.0.0.5/24"}))).await;
        assert_error(
            &r,
            StatusCode::CONFLICT,
            "SecurityGroupRuleExists",
            &format!(
                "Security group rule already exists. Rule id is {}.",
                ssh["id"].as_str().unwrap()
            ),
        );
        let r = add_rule(&api, ALICE, json!({"security_group_id": g, "direction": "egress", "remote_ip_prefix": "0.0.0.0/0", "description": "again"})).await;
        assert_eq!(r.error_type(), "SecurityGroupRuleExists", "{}", r.body);
        // Host bits count (prefixes are compared as written).
        let r = add_rule(&api, ALICE, rule(json!({"protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.0.0.0/24"}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        // Bulk: one group only, no duplicate inside, all or nothing.
        let other = group(&api, ALICE, "other").await;
        let r = post(
            &api,
            ALICE,
            "/v2.0/security-group-rules",
            json!({"security_group_rules": [
                rule(json!({"protocol": "tcp", "port_range_min": 80, "port_range_max": 80})),
                {"security_group_id": other, "direction": "ingress"},
            ]}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "SecurityGroupNotSingleGroupRules",
            "Only allowed to update rules for one security profile at a time",
        );
        let r = post(
            &api,
            ALICE,
            "/v2.0/security-group-rules",
            json!({"security_group_rules": [
                rule(json!({"protocol": "tcp", "port_range_min": 80, "port_range_max": 80})),
                rule(json!({"protocol": "6", "port_range_min": 80, "port_range_max": 80})),
            ]}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::CONFLICT,
            "DuplicateSecurityGroupRuleInPost",
            "Duplicate Security Group Rule in POST.",
        );
        let r = post(&api, ALICE, "/v2.0/security-group-rules", json!({"security_group_rules": [
        rule(json!({"protocol": "tcp", "port_range_min": 80, "port_range_max": 80})),
        rule(json!({"protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.0.0.5/24"})),
    ]})).await;
        assert_eq!(r.error_type(), "SecurityGroupRuleExists", "{}", r.body);
        let r = post(
            &api,
            ALICE,
            "/v2.0/security-group-rules",
            json!({"security_group_rules": [
                rule(json!({"protocol": "tcp", "port_range_min": 80, "port_range_max": 80})),
                rule(json!({"protocol": "tcp", "port_range_min": 443, "port_range_max": 443})),
            ]}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["security_group_rules"].as_array().unwrap().len(), 2);
        // The group shows them all; its revision went up with each change.
        let shown = get(&api, ALICE, &format!("/v2.0/security-groups/{g}")).await;
        assert_eq!(
            shown.body["security_group"]["security_group_rules"]
                .as_array()
                .unwrap()
                .len(),
            2 + 5 + 2
        );
        assert!(
            shown.body["security_group"]["revision_number"]
                .as_i64()
                .unwrap()
                > 1
        );
        // Rule lists: filters, sorting, fields.
        let r = get(&api, ALICE, &format!("/v2.0/security-group-rules?security_group_id={g}&protocol=tcp&sort_key=port_range_min&sort_dir=desc&fields=port_range_min")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(
            r.body["security_group_rules"],
            json!([{"port_range_min": 443}, {"port_range_min": 80}, {"port_range_min": 22}, {"port_range_min": 22}])
        );
        let r = get(&api, ALICE, "/v2.0/security-group-rules?normalized_cidr=10.0.0.0/24&fields=remote_ip_prefix&sort_key=remote_ip_prefix&sort_dir=asc").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(
            r.body["security_group_rules"],
            json!([{"remote_ip_prefix": "10.0.0.0/24"}, {"remote_ip_prefix": "10.0.0.5/24"}])
        );
        // Paging through the group's rules, forwards and back, by the listing helpers.
        let base = format!("/v2.0/security-group-rules?security_group_id={g}&fields=id");
        let all = get(&api, ALICE, &base).await;
        let all: Vec<String> = all.body["security_group_rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(all.len(), 9);
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(all, sorted, "lists are in id order");
        let mut paged = Vec::new();
        let mut marker = String::new();
        loop {
            let r = get(&api, ALICE, &format!("{base}&limit=4&marker={marker}")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let page: Vec<String> = r.body["security_group_rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect();
            assert!(r.body["security_group_rules_links"].is_array());
            if page.is_empty() {
                break;
            }
            marker = page.last().unwrap().clone();
            paged.extend(page);
        }
        assert_eq!(paged, all);
        let r = get(
            &api,
            ALICE,
            &format!("{base}&limit=2&marker={}&page_reverse=True", all[4]),
        )
        .await;
        assert_eq!(
            r.body["security_group_rules"],
            json!([{"id": all[2]}, {"id": all[3]}])
        );
        let r = get(&api, BOB, &format!("{base}&limit=2&marker={}", all[4])).await;
        assert_eq!(r.error_type(), "SecurityGroupRuleNotFound", "{}", r.body);
        // Show, no update, delete.
        let path = format!("/v2.0/security-group-rules/{}", ssh["id"].as_str().unwrap());
        let r = get(&api, ALICE, &path).await;
        assert_eq!(r.body["security_group_rule"], ssh);
        let r = put(
            &api,
            ALICE,
            &path,
            json!({"security_group_rule": {"description": "x"}}),
        )
        .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.body);
        assert_eq!(
            delete(&api, ALICE, &path).await.status,
            StatusCode::NO_CONTENT
        );
        let r = delete(&api, ALICE, &path).await;
        assert_error(
            &r,
            StatusCode::NOT_FOUND,
            "SecurityGroupRuleNotFound",
            &format!(
                "Security group rule {} does not exist",
                ssh["id"].as_str().unwrap()
            ),
        );
        // A group named by another group's rule takes that rule with it when deleted.
        let r = add_rule(
            &api,
            ALICE,
            json!({"security_group_id": other, "direction": "ingress", "remote_group_id": g}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(
            delete(&api, ALICE, &format!("/v2.0/security-groups/{g}"))
                .await
                .status,
            StatusCode::NO_CONTENT
        );
        let r = get(
            &api,
            ALICE,
            &format!("/v2.0/security-group-rules?remote_group_id={g}"),
        )
        .await;
        assert_eq!(r.body["security_group_rules"], json!([]));
    }
);

on_both_databases!(
    ports_take_groups_and_port_security_rules,
    |api: TestApi| async move {
        let net = network(&api, ALICE).await;
        let web = group(&api, ALICE, "web").await;
        let bobs = group(&api, BOB, "bobs").await;
        let r = post(
            &api,
            ALICE,
            "/v2.0/ports",
            json!({"port": {"network_id": net, "security_groups": [web]}}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["port"]["security_groups"], json!([web]));
        let port = r.body["port"]["id"].as_str().unwrap().to_string();
        // A group a port uses can be neither deleted nor made stateless.
        let r = delete(&api, ALICE, &format!("/v2.0/security-groups/{web}")).await;
        assert_error(
            &r,
            StatusCode::CONFLICT,
            "SecurityGroupInUse",
            &format!("Security Group {web} in use."),
        );
        let r = put(
            &api,
            ALICE,
            &format!("/v2.0/security-groups/{web}"),
            json!({"security_group": {"stateful": false}}),
        )
        .await;
        assert_eq!(r.error_type(), "SecurityGroupInUse", "{}", r.body);
        // Another project's group, or one that does not exist: not found, every missing id named.
        let missing = "51a6b772-7be4-4265-b22e-a5a966aa5d3c";
        let r = post(
            &api,
            ALICE,
            "/v2.0/ports",
            json!({"port": {"network_id": net, "security_groups": [bobs, web, missing]}}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::NOT_FOUND,
            "SecurityGroupNotFound",
            &format!("Security group {bobs}, {missing} does not exist"),
        );
        // Stateful and stateless together.
        let loose = post(
            &api,
            ALICE,
            "/v2.0/security-groups",
            json!({"security_group": {"name": "loose", "stateful": false}}),
        )
        .await;
        let loose = loose.body["security_group"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = put(
            &api,
            ALICE,
            &format!("/v2.0/ports/{port}"),
            json!({"port": {"security_groups": [web, loose]}}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::CONFLICT,
            "SecurityGroupConflict",
            "Cannot apply both stateful and stateless security groups",
        );
        // Port security off: no groups, no pairs.
        let r = post(&api, ALICE, "/v2.0/ports", json!({"port": {"network_id": net, "port_security_enabled": false, "security_groups": [web]}})).await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "PortSecurityAndIPRequiredForSecurityGroups",
            "Port security must be enabled and port must have an IP address in order to use security groups.",
        );
        let r = post(
            &api,
            ALICE,
            "/v2.0/ports",
            json!({"port": {"network_id": net, "port_security_enabled": false}}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["port"]["security_groups"], json!([]));
        let r = put(
            &api,
            ALICE,
            &format!("/v2.0/ports/{port}"),
            json!({"port": {"port_security_enabled": false}}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::CONFLICT,
            "PortSecurityPortHasSecurityGroup",
            "Port has security group associated. Cannot disable port security or IP address until security group is removed.",
        );
        let r = put(
            &api,
            ALICE,
            &format!("/v2.0/ports/{port}"),
            json!({"port": {"allowed_address_pairs": [{"ip_address": "10.0.0.99"}]}}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = put(
            &api,
            ALICE,
            &format!("/v2.0/ports/{port}"),
            json!({"port": {"port_security_enabled": false, "security_groups": []}}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::CONFLICT,
            "AddressPairAndPortSecurityRequired",
            "Port Security must be enabled in order to have allowed address pairs on a port.",
        );
        let r = put(&api, ALICE, &format!("/v2.0/ports/{port}"), json!({"port": {"port_security_enabled": false, "security_groups": [], "allowed_address_pairs": []}})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["port"]["security_groups"], json!([]));
        assert_eq!(r.body["port"]["port_security_enabled"], false);
        // `null` is no group (Neutron's convert_none_to_empty_list), absent is the default one.
        let r = post(
            &api,
            ALICE,
            "/v2.0/ports",
            json!({"port": {"network_id": net, "security_groups": null}}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["port"]["security_groups"], json!([]));
        let r = post(
            &api,
            ALICE,
            "/v2.0/ports",
            json!({"port": {"network_id": net}}),
        )
        .await;
        assert_eq!(
            r.body["port"]["security_groups"],
            json!([default_group(&api, ALICE).await["id"]])
        );
        // Unused now: the group can go.
        let r = delete(&api, ALICE, &format!("/v2.0/security-groups/{web}")).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }
);

on_both_databases!(
    policy_readers_and_other_projects,
    |api: TestApi| async move {
        let alices = group(&api, ALICE, "a").await;
        let bobs = group(&api, BOB, "b").await;
        let rule = add_rule(
            &api,
            ALICE,
            json!({"security_group_id": alices, "direction": "ingress", "protocol": "icmp"}),
        )
        .await;
        let rule = rule.body["security_group_rule"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        // A reader sees, and cannot write.
        assert_eq!(
            get(
                &api,
                ALICE_READER,
                &format!("/v2.0/security-groups/{alices}")
            )
            .await
            .status,
            StatusCode::OK
        );
        for r in [
            post(
                &api,
                ALICE_READER,
                "/v2.0/security-groups",
                json!({"security_group": {"name": "r"}}),
            )
            .await,
            put(
                &api,
                ALICE_READER,
                &format!("/v2.0/security-groups/{alices}"),
                json!({"security_group": {"description": "r"}}),
            )
            .await,
            delete(
                &api,
                ALICE_READER,
                &format!("/v2.0/security-groups/{alices}"),
            )
            .await,
            add_rule(
                &api,
                ALICE_READER,
                json!({"security_group_id": alices, "direction": "egress", "protocol": "tcp"}),
            )
            .await,
            delete(
                &api,
                ALICE_READER,
                &format!("/v2.0/security-group-rules/{rule}"),
            )
            .await,
        ] {
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
            assert_eq!(r.error_type(), "PolicyNotAuthorized");
        }
        // Another project's groups and rules do not exist for a member.
        for path in [
            format!("/v2.0/security-groups/{alices}"),
            format!("/v2.0/security-group-rules/{rule}"),
        ] {
            assert_eq!(get(&api, BOB, &path).await.status, StatusCode::NOT_FOUND);
            assert_eq!(delete(&api, BOB, &path).await.status, StatusCode::NOT_FOUND);
        }
        let r = put(
            &api,
            BOB,
            &format!("/v2.0/security-groups/{alices}"),
            json!({"security_group": {"description": "b"}}),
        )
        .await;
        assert_eq!(r.error_type(), "SecurityGroupNotFound");
        let r = add_rule(
            &api,
            BOB,
            json!({"security_group_id": alices, "direction": "ingress"}),
        )
        .await;
        assert_eq!(r.error_type(), "SecurityGroupNotFound");
        // A rule's remote group must be its group's project's.
        let r = add_rule(
            &api,
            BOB,
            json!({"security_group_id": bobs, "direction": "ingress", "remote_group_id": alices}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::NOT_FOUND,
            "SecurityGroupNotFound",
            &format!("Security group {alices} does not exist"),
        );
        let r = get(&api, BOB, "/v2.0/security-groups").await;
        assert!(
            r.body["security_groups"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["project_id"] == "bob-project")
        );
        let r = get(&api, BOB, "/v2.0/security-group-rules").await;
        assert!(
            r.body["security_group_rules"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["project_id"] == "bob-project")
        );
        // A member cannot make another project's default group by filtering for it.
        let r = get(&api, BOB, "/v2.0/security-groups?project_id=carol-project").await;
        assert_eq!(r.body["security_groups"], json!([]));
        let r = get(&api, None, "/v2.0/security-groups?project_id=carol-project").await;
        assert_eq!(
            r.body["security_groups"].as_array().unwrap().len(),
            1,
            "{}",
            r.body
        );
        // An admin sees every project's and may add a rule to another project's group: the
        // rule is that project's.
        let r = get(&api, None, "/v2.0/security-groups?fields=project_id").await;
        let projects: Vec<&str> = r.body["security_groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["project_id"].as_str().unwrap())
            .collect();
        assert!(projects.contains(&"alice-project") && projects.contains(&"bob-project"));
        let r = add_rule(
            &api,
            None,
            json!({"security_group_id": alices, "direction": "ingress", "protocol": "udp"}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["security_group_rule"]["project_id"], "alice-project");
        assert_eq!(
            get(&api, None, &format!("/v2.0/security-group-rules/{rule}"))
                .await
                .status,
            StatusCode::OK
        );
    }
);

on_both_databases!(quotas_of_groups_and_rules, |api: TestApi| async move {
    let set = |mut quota: Value| {
        let api = &api;
        quota["force"] = json!(true);
        async move {
            let r = api
                .call(
                    Method::PUT,
                    "/v2.0/quotas/alice-project",
                    Some(json!({"quota": quota})),
                )
                .await;
            // (`force`: limits below what is used, to see what is made past them)
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    };
    // The default group and its four rules are made even past both limits.
    set(json!({"security_group": 0, "security_group_rule": 0})).await;
    let g = default_group(&api, ALICE).await;
    assert_eq!(rule_shapes(&g), neutron_default_rules());
    let r = post(
        &api,
        ALICE,
        "/v2.0/security-groups",
        json!({"security_group": {"name": "a"}}),
    )
    .await;
    assert_error(
        &r,
        StatusCode::CONFLICT,
        "OverQuota",
        "Quota exceeded for resources: ['security_group'].",
    );
    // Groups: default + 2 fit in 3; a bulk past it is refused whole.
    set(json!({"security_group": 3, "security_group_rule": 10})).await;
    let r = post(
        &api,
        ALICE,
        "/v2.0/security-groups",
        json!({"security_groups": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
    )
    .await;
    assert_eq!(r.error_type(), "OverQuota", "{}", r.body);
    let a = group(&api, ALICE, "a").await;
    group(&api, ALICE, "b").await;
    let r = post(
        &api,
        ALICE,
        "/v2.0/security-groups",
        json!({"security_group": {"name": "c"}}),
    )
    .await;
    assert_eq!(r.error_type(), "OverQuota");
    // Rules: 4 + 2 + 2 of the templates; 2 more fit in 10, not a third.
    let rule = |port: i64| json!({"security_group_id": a, "direction": "ingress", "protocol": "tcp", "port_range_min": port, "port_range_max": port});
    let r = post(
        &api,
        ALICE,
        "/v2.0/security-group-rules",
        json!({"security_group_rules": [rule(1), rule(2), rule(3)]}),
    )
    .await;
    assert_error(
        &r,
        StatusCode::CONFLICT,
        "OverQuota",
        "Quota exceeded for resources: ['security_group_rule'].",
    );
    for port in [1, 2] {
        assert_eq!(
            add_rule(&api, ALICE, rule(port)).await.status,
            StatusCode::CREATED
        );
    }
    assert_eq!(
        add_rule(&api, ALICE, rule(3)).await.error_type(),
        "OverQuota"
    );
    let r = get(&api, ALICE, "/v2.0/quotas/alice-project/details").await;
    assert_eq!(
        r.body["quota"]["security_group"],
        json!({"limit": 3, "used": 3, "reserved": 0})
    );
    assert_eq!(
        r.body["quota"]["security_group_rule"],
        json!({"limit": 10, "used": 10, "reserved": 0})
    );
    // A limit below a new group's two template rules refuses the group (Neutron's limit check).
    set(json!({"security_group": 10, "security_group_rule": 1})).await;
    let r = post(
        &api,
        ALICE,
        "/v2.0/security-groups",
        json!({"security_group": {"name": "d"}}),
    )
    .await;
    assert_error(
        &r,
        StatusCode::CONFLICT,
        "OverQuota",
        "['security_group_rule']",
    );
});

on_both_databases!(boots_name_groups_as_nova_does, |api: TestApi| async move {
    // A host to boot on: an Open vSwitch agent (tenant networks are VXLAN).
    let r = api
        .report(
            json!({"agent_type": "Open vSwitch agent", "binary": "neutrino-agent",
            "host": "compute1", "topic": "N/A", "start_flag": true,
            "configurations": {"bridge_mappings": {}, "tunnel_types": ["vxlan"],
                "tunneling_ip": "127.0.0.1", "integration_bridge": "br-int",
                "datapath_type": "netdev", "ovs_hybrid_plug": true}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let net = network(&api, None).await;
    let web = group(&api, None, "web").await;
    group(&api, None, "twin").await;
    group(&api, None, "twin").await;
    let boot = |groups: Value| {
        let api = &api;
        let net = net.clone();
        async move {
            api.call(
                Method::POST,
                "/v2.1/servers",
                Some(json!({"server": {
                "name": "vm", "imageRef": "", "flavorRef": "1",
                "networks": [{"uuid": net}], "security_groups": groups}})),
            )
            .await
        }
    };
    let ports = || async {
        get(&api, None, "/v2.0/ports?device_owner=compute:nova")
            .await
            .body["ports"]
            .as_array()
            .unwrap()
            .len()
    };
    let r = boot(json!([{"name": "twin"}])).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(
        r.body["conflictingRequest"]["message"],
        "Multiple security groups found matching 'twin'. Use an ID to be more specific."
    );
    let r = boot(json!([{"name": "nope"}])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Security group nope not found."
    );
    let r = boot(json!([{"name": "web"}, {"bad": 1}])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // Refused boots left nothing behind.
    assert_eq!(ports().await, 0);
    let servers = get(&api, None, "/v2.1/servers").await;
    assert_eq!(servers.body["servers"], json!([]), "{}", servers.body);
    // By name and by id; the boot's ports are in those groups.
    let r = boot(json!([{"name": "web"}, {"name": "default"}])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(
        r.body["server"]["security_groups"],
        json!([{"name": "web"}, {"name": "default"}])
    );
    let default = default_group(&api, None).await["id"].clone();
    let server = r.body["server"]["id"].as_str().unwrap();
    let p = get(&api, None, &format!("/v2.0/ports?device_id={server}")).await;
    assert_eq!(
        p.body["ports"][0]["security_groups"],
        json!([web, default]),
        "{}",
        p.body
    );
    let r = boot(json!([{"name": web}])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let server = r.body["server"]["id"].as_str().unwrap();
    let p = get(&api, None, &format!("/v2.0/ports?device_id={server}")).await;
    assert_eq!(
        p.body["ports"][0]["security_groups"],
        json!([web]),
        "{}",
        p.body
    );
});

for_both_databases!(
    the_migration_gives_existing_default_groups_their_rules,
    |db: Db| async move {
        // A database as it was before security group rules: a default group without rules.
        let dir = tempfile::tempdir().unwrap();
        let database = match db {
            Db::Sqlite => format!("sqlite://{}", dir.path().join("old.db").display()),
            Db::Postgres => neutrino_tests::api::fresh_postgres_database().await,
        };
        let api = TestApi::at(database.clone()).await;
        let g = default_group(&api, ALICE).await;
        let store = api.state.store.clone();
        for sql in [
            "DROP TABLE security_group_rules",
            "ALTER TABLE security_groups DROP COLUMN stateful",
            "DELETE FROM schema_versions WHERE version = 18",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&store.write)
                .await
                .unwrap();
        }
        drop(api);
        drop(store);
        // The next server migrates it.
        let api = TestApi::at(database).await;
        let again = default_group(&api, ALICE).await;
        assert_eq!(again["id"], g["id"]);
        assert_eq!(again["stateful"], true);
        assert_eq!(rule_shapes(&again), neutron_default_rules());
        // The rules written by the migration are real rules: a duplicate of one is refused.
        let r = add_rule(
            &api,
            ALICE,
            json!({"security_group_id": g["id"], "direction": "egress", "ethertype": "IPv6"}),
        )
        .await;
        assert_eq!(r.error_type(), "SecurityGroupRuleExists", "{}", r.body);
        let ids: Vec<&str> = again["security_group_rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert!(
            ids.iter()
                .all(|id| id.len() == 36 && id.as_bytes()[14] == b'4'),
            "{ids:?}"
        );
    }
);

for_both_databases!(
    concurrent_writes_keep_rules_unique_and_groups_of_ports_real,
    |db: Db| async move {
        let (a, b) = TestApi::two(db).await;
        let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
        let g = group(&a, ALICE, "web").await;
        // The same rule from both servers at once: written once.
        let mut tasks = Vec::new();
        for i in 0..6 {
            let api = if i % 2 == 0 { a.clone() } else { b.clone() };
            let g = g.clone();
            tasks.push(tokio::spawn(async move {
                add_rule(
                    &api,
                    ALICE,
                    json!({"security_group_id": g, "direction": "ingress",
                    "protocol": "tcp", "port_range_min": 80, "port_range_max": 80}),
                )
                .await
            }));
        }
        let mut created = 0;
        for t in tasks {
            let r = t.await.unwrap();
            match r.status {
                StatusCode::CREATED => created += 1,
                _ => assert_eq!(r.error_type(), "SecurityGroupRuleExists", "{}", r.body),
            }
        }
        assert_eq!(created, 1);
        // A group's delete racing ports that name it: either the ports or the delete win,
        // never a port naming a group that is gone.
        let net = network(&a, ALICE).await;
        for round in 0..4 {
            let g = group(&a, ALICE, &format!("racing-{round}")).await;
            let mut tasks = Vec::new();
            for i in 0..4 {
                let api = if i % 2 == 0 { a.clone() } else { b.clone() };
                let (g, net) = (g.clone(), net.clone());
                tasks.push(tokio::spawn(async move {
                    if i == 1 {
                        delete(&api, ALICE, &format!("/v2.0/security-groups/{g}")).await
                    } else {
                        post(
                            &api,
                            ALICE,
                            "/v2.0/ports",
                            json!({"port": {"network_id": net, "security_groups": [g]}}),
                        )
                        .await
                    }
                }));
            }
            for t in tasks {
                let r = t.await.unwrap();
                assert!(
                    [
                        StatusCode::CREATED,
                        StatusCode::NO_CONTENT,
                        StatusCode::NOT_FOUND,
                        StatusCode::CONFLICT
                    ]
                    .contains(&r.status),
                    "{}",
                    r.body
                );
            }
            let exists = get(&a, ALICE, &format!("/v2.0/security-groups/{g}"))
                .await
                .status
                == StatusCode::OK;
            let users = get(&a, ALICE, &format!("/v2.0/ports?security_groups={g}")).await;
            let users = users.body["ports"].as_array().unwrap().len();
            assert!(
                exists || users == 0,
                "round {round}: {users} ports name a deleted group"
            );
        }
        // The same for the default group, which ports get without naming it, against an
        // admin's delete (a new default group is made for the ports that come after it).
        for round in 0..4 {
            let g = default_group(&a, ALICE).await["id"]
                .as_str()
                .unwrap()
                .to_string();
            let mut tasks = Vec::new();
            for i in 0..4 {
                let api = if i % 2 == 0 { a.clone() } else { b.clone() };
                let (g, net) = (g.clone(), net.clone());
                tasks.push(tokio::spawn(async move {
                    if i == 1 {
                        delete(&api, None, &format!("/v2.0/security-groups/{g}")).await
                    } else {
                        post(
                            &api,
                            ALICE,
                            "/v2.0/ports",
                            json!({"port": {"network_id": net}}),
                        )
                        .await
                    }
                }));
            }
            for t in tasks {
                let r = t.await.unwrap();
                assert!(
                    [
                        StatusCode::CREATED,
                        StatusCode::NO_CONTENT,
                        StatusCode::CONFLICT
                    ]
                    .contains(&r.status),
                    "{}",
                    r.body
                );
            }
            let ports = get(&a, ALICE, "/v2.0/ports?fields=security_groups").await;
            for p in ports.body["ports"].as_array().unwrap() {
                for g in p["security_groups"].as_array().unwrap() {
                    let shown = get(
                        &a,
                        ALICE,
                        &format!("/v2.0/security-groups/{}", g.as_str().unwrap()),
                    )
                    .await;
                    assert_eq!(
                        shown.status,
                        StatusCode::OK,
                        "round {round}: a port names a deleted group"
                    );
                }
            }
        }
    }
);
