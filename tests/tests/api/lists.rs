//! Lists answered by the database: keyset pages with markers forward and back across a table
//! far larger than a page, sort keys in both directions, unknown markers, `fixed_ips` filters,
//! a project's own ports in pages, lists longer than one read streamed whole, and subnets by
//! their network's `shared`; on SQLite and PostgreSQL. Every expectation is computed here from
//! the full list, not written down.

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use neutrino_tests::api::{Reply, TestApi};
use neutrino_tests::on_both_databases;
use serde_json::{Value, json};

const BASE: &str = "http://neutrino.test:9696";

async fn get(api: &TestApi, who: Option<(&str, &str)>, path: &str) -> Reply {
    let r = api.call_as(who, Method::GET, path, None).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    r
}

/// A network with a /20 subnet; returns the network and subnet ids.
async fn network(api: &TestApi) -> (String, String) {
    let r = api
        .call(
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {"name": "big"}})),
        )
        .await;
    let net = r.body["network"]["id"].as_str().unwrap().to_string();
    let subnet = subnet(api, &net, "10.0.0.0/20").await;
    (net, subnet)
}

async fn subnet(api: &TestApi, net: &str, cidr: &str) -> String {
    let r = api
        .call(
            Method::POST,
            "/v2.0/subnets",
            Some(json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": cidr}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["subnet"]["id"].as_str().unwrap().to_string()
}

/// Creates `count` ports in bulks of 500, with names repeating (ties for the id to break) and
/// every fifth for project `p-a`.
async fn ports(api: &TestApi, net: &str, count: usize) {
    for start in (0..count).step_by(500) {
        let bodies: Vec<Value> = (start..count.min(start + 500))
            .map(|i| {
                let mut p = json!({"network_id": net, "name": format!("n{:03}", (i * 37) % 400)});
                if i % 5 == 0 {
                    p["project_id"] = json!("p-a");
                }
                p
            })
            .collect();
        let r = api
            .call(Method::POST, "/v2.0/ports", Some(json!({"ports": bodies})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
}

/// Compares two id lists, saying where they part (not printing thousands of ids).
#[track_caller]
fn same(got: &[String], expected: &[String], what: &str) {
    if got != expected {
        let at = got.iter().zip(expected).position(|(a, b)| a != b);
        panic!(
            "{what}: {} ids, expected {}; first difference at {at:?}",
            got.len(),
            expected.len()
        );
    }
}

fn items(body: &Value) -> &Vec<Value> {
    body["ports"].as_array().expect("ports")
}

fn ids(body: &Value) -> Vec<String> {
    items(body)
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

fn link(body: &Value, rel: &str) -> Option<String> {
    body["ports_links"]
        .as_array()?
        .iter()
        .find(|l| l["rel"] == rel)
        .map(|l| {
            let href = l["href"].as_str().unwrap();
            href.strip_prefix(BASE).expect("absolute link").to_string()
        })
}

/// Follows `rel` links from `first` until there is none; returns every page's ids in order of
/// visit and the last body.
async fn walk(
    api: &TestApi,
    who: Option<(&str, &str)>,
    first: &str,
    rel: &str,
    limit: usize,
) -> (Vec<Vec<String>>, Value) {
    let mut body = get(api, who, first).await.body;
    let mut pages = vec![ids(&body)];
    while let Some(next) = link(&body, rel) {
        body = get(api, who, &next).await.body;
        let page = ids(&body);
        assert!(page.len() <= limit, "a page longer than the limit");
        pages.push(page);
        assert!(pages.len() < 10_000, "runaway paging");
    }
    (pages, body)
}

/// The ports sorted as the API sorts: by `keys` (attribute, ascending) then id ascending.
fn sorted(all: &[Value], keys: &[(&str, bool)]) -> Vec<String> {
    let mut all = all.to_vec();
    all.sort_by(|a, b| {
        for (key, ascending) in keys {
            let (x, y) = (a[key].as_str().unwrap(), b[key].as_str().unwrap());
            let o = if *ascending { x.cmp(y) } else { y.cmp(x) };
            if o.is_ne() {
                return o;
            }
        }
        a["id"].as_str().cmp(&b["id"].as_str())
    });
    all.iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

on_both_databases!(
    pages_forward_and_back_across_a_large_table,
    |api: TestApi| async move {
        api.unlimited_quotas().await;
        let (net, _) = network(&api).await;
        ports(&api, &net, 2_500).await;

        // Longer than one read of the database: streamed, whole, in id order.
        let all = get(&api, None, "/v2.0/ports").await.body;
        let all = items(&all).clone();
        assert_eq!(all.len(), 2_500);
        let by_id = sorted(&all, &[]);
        let listed: Vec<String> = all
            .iter()
            .map(|p| p["id"].as_str().unwrap().into())
            .collect();
        same(&listed, &by_id, "streamed list");
        assert!(
            all.iter()
                .all(|p| p["fixed_ips"].as_array().unwrap().len() == 1)
        );
        // Backwards without a limit: the whole list reversed.
        let reversed = ids(&get(&api, None, "/v2.0/ports?page_reverse=True&fields=id")
            .await
            .body);
        same(
            &reversed,
            &by_id.iter().rev().cloned().collect::<Vec<_>>(),
            "reversed",
        );
        // A filter checked row by row (a list attribute) over several reads.
        let admins = all.iter().find(|p| p["project_id"] != "p-a").unwrap();
        let group = admins["security_groups"][0].as_str().unwrap();
        let in_group = get(
            &api,
            None,
            &format!("/v2.0/ports?security_groups={group}&fields=id"),
        )
        .await;
        let expected: Vec<String> = by_id
            .iter()
            .filter(|id| {
                let p = all.iter().find(|p| p["id"] == id.as_str()).unwrap();
                p["security_groups"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(group))
            })
            .cloned()
            .collect();
        // Every fifth port is another project's, with its own default group.
        assert_eq!(expected.len(), 2_000);
        same(&ids(&in_group.body), &expected, "in the group");

        for (query, keys) in [
            ("sort_key=name&sort_dir=desc", vec![("name", false)]),
            (
                "sort_key=mac_address&sort_dir=desc",
                vec![("mac_address", false)],
            ),
            (
                "sort_key=name&sort_dir=asc&sort_key=mac_address&sort_dir=desc",
                vec![("name", true), ("mac_address", false)],
            ),
            ("", vec![]),
        ] {
            let expected = sorted(&all, &keys);
            let first = format!("/v2.0/ports?limit=100&{query}&fields=id&fields=name");
            let (pages, last) = walk(&api, None, &first, "next", 100).await;
            same(&pages.concat(), &expected, &format!("forward: {query}"));
            // 25 full pages, then the empty one that ends the walk.
            assert_eq!(pages.len(), 26, "{query}");
            assert!(ids(&last).is_empty());
            assert!(
                items(&last)
                    .iter()
                    .all(|p| p.as_object().unwrap().len() == 2)
            );

            // Back from the empty last page with `previous` links.
            let previous = link(&last, "previous").expect("previous on the last page");
            let (pages, _) = walk(&api, None, &previous, "previous", 100).await;
            let back: Vec<String> = pages.iter().rev().flatten().cloned().collect();
            same(&back, &expected, &format!("backward: {query}"));

            // A marker in the middle, both ways.
            let marker = &expected[1_234];
            let page = ids(&get(
                &api,
                None,
                &format!("/v2.0/ports?limit=100&{query}&marker={marker}"),
            )
            .await
            .body);
            same(
                &page,
                &expected[1_235..1_335],
                &format!("after a marker: {query}"),
            );
            let page = ids(&get(
                &api,
                None,
                &format!("/v2.0/ports?limit=100&{query}&marker={marker}&page_reverse=True"),
            )
            .await
            .body);
            same(
                &page,
                &expected[1_134..1_234],
                &format!("before a marker: {query}"),
            );
        }
    }
);

on_both_databases!(unknown_marker_is_not_found, |api: TestApi| async move {
    let (net, _) = network(&api).await;
    ports(&api, &net, 10).await;
    let missing = "8b6e7f2c-0000-4000-8000-000000000000";
    for path in [
        format!("/v2.0/ports?limit=2&marker={missing}"),
        format!("/v2.0/ports?limit=2&marker={missing}&page_reverse=True"),
    ] {
        let r = api.call(Method::GET, &path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        assert_eq!(r.error_type(), "PortNotFound");
        assert_eq!(
            r.error_message(),
            format!("Port {missing} could not be found.")
        );
    }
    // Without a limit the marker is not read, as in neutron.
    let r = get(&api, None, &format!("/v2.0/ports?marker={missing}")).await;
    assert_eq!(ids(&r.body).len(), 10);
    // Another project's port is no marker for a project.
    let all = get(&api, None, "/v2.0/ports").await.body;
    let theirs = items(&all)
        .iter()
        .find(|p| p["project_id"] != "p-a")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api
        .call_as(
            Some(("p-a", "member")),
            Method::GET,
            &format!("/v2.0/ports?limit=1&marker={theirs}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_type(), "PortNotFound");
    // Networks, subnets and agents answer with theirs.
    for (collection, kind, name) in [
        ("networks", "NetworkNotFound", "Network"),
        ("subnets", "SubnetNotFound", "Subnet"),
        ("agents", "AgentNotFound", "Agent"),
    ] {
        let r = api
            .call(
                Method::GET,
                &format!("/v2.0/{collection}?limit=1&marker={missing}"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        assert_eq!(r.error_type(), kind);
        assert_eq!(
            r.error_message(),
            format!("{name} {missing} could not be found.")
        );
    }
});

on_both_databases!(fixed_ips_filters_in_pages, |api: TestApi| async move {
    let (net, big) = network(&api).await;
    ports(&api, &net, 300).await;
    let small = subnet(&api, &net, "10.9.0.0/24").await;
    // Ten ports with an address on the second subnet too.
    let r = api
        .call(
            Method::POST,
            "/v2.0/ports",
            Some(json!({"ports": (0..10).map(|i| json!({
                "network_id": net,
                "name": format!("two-{i}"),
                "fixed_ips": [{"subnet_id": big}, {"subnet_id": small}],
            })).collect::<Vec<_>>()})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let all = get(&api, None, "/v2.0/ports").await.body;
    let all = items(&all).clone();
    let matching = |test: &dyn Fn(&Value) -> bool| -> Vec<String> {
        let mut ids: Vec<String> = all
            .iter()
            .filter(|p| p["fixed_ips"].as_array().unwrap().iter().any(test))
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let address = all[150]["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    // The first three octets of an address of a port with two.
    let two = all
        .iter()
        .find(|p| p["fixed_ips"].as_array().unwrap().len() == 2)
        .unwrap();
    let on_big = two["fixed_ips"][0]["ip_address"].as_str().unwrap();
    let prefix = format!("{}.", on_big.rsplit_once('.').unwrap().0);
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!("fixed_ips=ip_address%3D{address}"),
            matching(&|f| f["ip_address"] == address.as_str()),
        ),
        (
            format!("fixed_ips=subnet_id%3D{small}"),
            matching(&|f| f["subnet_id"] == small.as_str()),
        ),
        (
            "fixed_ips=ip_address_substr%3D.1.".to_string(),
            matching(&|f| f["ip_address"].as_str().unwrap().contains(".1.")),
        ),
        (
            // Each key on its own: some address is on `small`, another has the prefix.
            format!("fixed_ips=subnet_id%3D{small}&fixed_ips=ip_address_substr%3D{prefix}"),
            {
                let on_small: HashSet<String> = matching(&|f| f["subnet_id"] == small.as_str())
                    .into_iter()
                    .collect();
                matching(&|f| f["ip_address"].as_str().unwrap().contains(&prefix))
                    .into_iter()
                    .filter(|id| on_small.contains(id))
                    .collect()
            },
        ),
    ];
    for (filter, expected) in cases {
        assert!(!expected.is_empty(), "{filter} matches nothing");
        let whole = ids(&get(&api, None, &format!("/v2.0/ports?{filter}")).await.body);
        same(&whole, &expected, &filter);
        let (pages, _) = walk(
            &api,
            None,
            &format!("/v2.0/ports?{filter}&limit=7"),
            "next",
            7,
        )
        .await;
        same(&pages.concat(), &expected, &format!("{filter} in pages"));
    }
});

on_both_databases!(
    a_project_pages_through_its_own_ports,
    |api: TestApi| async move {
        let (net, _) = network(&api).await;
        ports(&api, &net, 600).await;
        let all = get(&api, None, "/v2.0/ports").await.body;
        let all = items(&all).clone();
        let own: Vec<Value> = all
            .iter()
            .filter(|p| p["project_id"] == "p-a")
            .cloned()
            .collect();
        assert_eq!(own.len(), 120);
        let who = Some(("p-a", "member"));
        for (query, keys) in [
            ("", vec![]),
            ("&sort_key=name&sort_dir=desc", vec![("name", false)]),
        ] {
            let expected = sorted(&own, &keys);
            let (pages, last) = walk(
                &api,
                who,
                &format!("/v2.0/ports?limit=25{query}"),
                "next",
                25,
            )
            .await;
            same(
                &pages.concat(),
                &expected,
                &format!("own, forward: {query}"),
            );
            let previous = link(&last, "previous").unwrap();
            let (pages, _) = walk(&api, who, &previous, "previous", 25).await;
            let back: Vec<String> = pages
                .iter()
                .rev()
                .flatten()
                .chain(&ids(&last))
                .cloned()
                .collect();
            same(&back, &expected, &format!("own, backward: {query}"));
        }
        // A project's list never shows the binding host, nor filters or sorts by it.
        let mine = get(&api, who, "/v2.0/ports?binding:host_id=").await.body;
        assert!(ids(&mine).is_empty());
        let mine = get(&api, who, "/v2.0/ports?limit=5").await.body;
        assert!(
            items(&mine)
                .iter()
                .all(|p| p.get("binding:host_id").is_none())
        );
        // No port has this tag: a tag filter keeps none.
        assert!(ids(&get(&api, who, "/v2.0/ports?tags=x&limit=5").await.body).is_empty());
        // Another project sees none of them.
        let theirs = get(&api, Some(("p-b", "member")), "/v2.0/ports?limit=5")
            .await
            .body;
        assert!(ids(&theirs).is_empty());
    }
);

const ALICE: Option<(&str, &str)> = Some(("alice-project", "member"));

/// Creates one item as `who`: its id.
async fn created(
    api: &TestApi,
    who: Option<(&str, &str)>,
    collection: &str,
    body: Value,
) -> String {
    let r = api
        .call_as(
            who,
            Method::POST,
            &format!("/v2.0/{collection}"),
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let item = r.body.as_object().unwrap().values().next().unwrap();
    item["id"].as_str().unwrap().to_string()
}

// Subnets filter by `shared` (their network's, which a subnet does not show), as Neutron's
// subnet attribute map allows; before, this was 400 "['shared'] is invalid attribute for
// filtering".
on_both_databases!(
    subnets_filter_by_their_networks_sharing,
    |api: TestApi| async move {
        let shared = created(
            &api,
            None,
            "networks",
            json!({"network": {"name": "s", "shared": true}}),
        )
        .await;
        let private = created(&api, ALICE, "networks", json!({"network": {"name": "p"}})).await;
        let mut subnets = Vec::new();
        for (net, cidr) in [(&shared, "10.1.0.0/24"), (&private, "10.2.0.0/24")] {
            let who = if *net == shared { None } else { ALICE };
            let id = created(
                &api,
                who,
                "subnets",
                json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": cidr}}),
            )
            .await;
            subnets.push(id);
        }
        for (query, want) in [
            ("shared=true", vec![subnets[0].clone()]),
            ("shared=True", vec![subnets[0].clone()]),
            ("shared=false", vec![subnets[1].clone()]),
            ("shared=0&cidr=10.2.0.0/24", vec![subnets[1].clone()]),
            ("shared=1&cidr=10.2.0.0/24", vec![]),
        ] {
            let r = get(&api, ALICE, &format!("/v2.0/subnets?{query}")).await;
            let mut found: Vec<String> = r.body["subnets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_string())
                .collect();
            found.sort();
            assert_eq!(found, want, "{query}");
            assert!(r.body["subnets"][0].get("shared").is_none(), "not shown");
        }
        let r = api
            .call_as(ALICE, Method::GET, "/v2.0/subnets?shared=maybe", None)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.error_type(), "InvalidInput", "{}", r.body);
        assert!(
            r.error_message()
                .contains("'maybe' cannot be converted to boolean")
        );
    }
);
