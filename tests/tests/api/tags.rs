//! Tags (`standard-attr-tag`, `tag-creation`) on networks, subnets, ports and security
//! groups, on SQLite and PostgreSQL: the tag sub-resources with Neutron's statuses and error
//! types (`neutron/extensions/tagging.py`, `services/tag/tag_plugin.py`), tags shown on each
//! resource, the revision moving with a change, the four list filters, and the policy.

use axum::http::{Method, StatusCode};
use neutrino_tests::api::{Reply, TestApi};
use neutrino_tests::on_both_databases;
use serde_json::{Value, json};

const ALICE: Option<(&str, &str)> = Some(("alice-project", "member"));
const ALICE_READER: Option<(&str, &str)> = Some(("alice-project", "reader"));
const BOB: Option<(&str, &str)> = Some(("bob-project", "member"));

async fn call(
    api: &TestApi,
    who: Option<(&str, &str)>,
    m: Method,
    path: &str,
    b: Option<Value>,
) -> Reply {
    api.call_as(who, m, path, b).await
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

async fn create(api: &TestApi, who: Option<(&str, &str)>, collection: &str, body: Value) -> String {
    let r = call(
        api,
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

/// One resource of each tagged collection, `who`'s: (collection, singular, id).
async fn one_of_each(
    api: &TestApi,
    who: Option<(&str, &str)>,
) -> Vec<(&'static str, &'static str, String)> {
    let net = create(api, who, "networks", json!({"network": {"name": "n"}})).await;
    let subnet = create(
        api,
        who,
        "subnets",
        json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.0.0.0/24"}}),
    )
    .await;
    let port = create(api, who, "ports", json!({"port": {"network_id": net}})).await;
    let group = create(
        api,
        who,
        "security-groups",
        json!({"security_group": {"name": "web"}}),
    )
    .await;
    vec![
        ("networks", "network", net),
        ("subnets", "subnet", subnet),
        ("ports", "port", port),
        ("security-groups", "security_group", group),
    ]
}

async fn shown(api: &TestApi, collection: &str, member: &str, id: &str) -> Value {
    let r = call(
        api,
        ALICE,
        Method::GET,
        &format!("/v2.0/{collection}/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body[member].clone()
}

on_both_databases!(
    tag_sub_resources_on_every_tagged_resource,
    |api: TestApi| async move {
        for (collection, member, id) in one_of_each(&api, ALICE).await {
            let tags = format!("/v2.0/{collection}/{id}/tags");
            let before = shown(&api, collection, member, &id).await;
            assert_eq!(before["tags"], json!([]), "{collection}");
            let revision = before["revision_number"].as_i64().unwrap();

            // Replace all: 200, the body echoed; shown sorted.
            let r = call(
                &api,
                ALICE,
                Method::PUT,
                &tags,
                Some(json!({"tags": ["red", "blue"]})),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{collection}: {}", r.body);
            assert_eq!(r.body, json!({"tags": ["red", "blue"]}));
            let r = call(&api, ALICE, Method::GET, &tags, None).await;
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.body, json!({"tags": ["blue", "red"]}), "{collection}");
            let after = shown(&api, collection, member, &id).await;
            assert_eq!(after["tags"], json!(["blue", "red"]), "{collection}");
            assert_eq!(after["revision_number"], revision + 1, "{collection}");

            // The same set again changes nothing: the revision stays.
            let r = call(
                &api,
                ALICE,
                Method::PUT,
                &tags,
                Some(json!({"tags": ["blue", "red"]})),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(
                shown(&api, collection, member, &id).await["revision_number"],
                revision + 1
            );

            // Add one: 201 without a body; again: still 201, a no-op.
            for _ in 0..2 {
                let r = call(&api, ALICE, Method::PUT, &format!("{tags}/green"), None).await;
                assert_eq!(r.status, StatusCode::CREATED, "{collection}: {}", r.body);
                assert_eq!(r.body, Value::Null);
            }
            assert_eq!(
                shown(&api, collection, member, &id).await["revision_number"],
                revision + 2
            );

            // One tag: 204 when present, TagNotFound when not.
            let r = call(&api, ALICE, Method::GET, &format!("{tags}/green"), None).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT);
            let r = call(&api, ALICE, Method::GET, &format!("{tags}/purple"), None).await;
            assert_error(
                &r,
                StatusCode::NOT_FOUND,
                "TagNotFound",
                "Tag purple could not be found.",
            );

            // Delete one: 204, then TagNotFound.
            let r = call(&api, ALICE, Method::DELETE, &format!("{tags}/green"), None).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT);
            let r = call(&api, ALICE, Method::DELETE, &format!("{tags}/green"), None).await;
            assert_error(
                &r,
                StatusCode::NOT_FOUND,
                "TagNotFound",
                "Tag green could not be found.",
            );

            // Add many (tag-creation): 200, the missing ones added.
            let r = call(
                &api,
                ALICE,
                Method::POST,
                &tags,
                Some(json!({"tags": ["red", "white"]})),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(r.body, json!({"tags": ["red", "white"]}));
            let r = call(&api, ALICE, Method::GET, &tags, None).await;
            assert_eq!(r.body, json!({"tags": ["blue", "red", "white"]}));

            // The list shows them too, with fields= as well.
            let list = call(
                &api,
                ALICE,
                Method::GET,
                &format!("/v2.0/{collection}?id={id}"),
                None,
            )
            .await;
            let key = collection.replace('-', "_");
            assert_eq!(
                list.body[&key][0]["tags"],
                json!(["blue", "red", "white"]),
                "{}",
                list.body
            );
            let list = call(
                &api,
                ALICE,
                Method::GET,
                &format!("/v2.0/{collection}?id={id}&fields=tags"),
                None,
            )
            .await;
            assert_eq!(
                list.body[&key][0],
                json!({"tags": ["blue", "red", "white"]}),
                "{}",
                list.body
            );

            // Delete all: 204, none left; an update answers the tags it keeps.
            let r = call(&api, ALICE, Method::DELETE, &tags, None).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT);
            let r = call(&api, ALICE, Method::GET, &tags, None).await;
            assert_eq!(r.body, json!({"tags": []}));
            call(&api, ALICE, Method::PUT, &format!("{tags}/kept"), None).await;
            let r = call(
                &api,
                ALICE,
                Method::PUT,
                &format!("/v2.0/{collection}/{id}"),
                Some(json!({ member: {"description": "d"} })),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(r.body[member]["tags"], json!(["kept"]), "{collection}");
        }
    }
);

on_both_databases!(
    tags_are_checked_as_neutron_does,
    |api: TestApi| async move {
        let net = create(&api, ALICE, "networks", json!({"network": {"name": "n"}})).await;
        let tags = format!("/v2.0/networks/{net}/tags");
        let put = |body: Value| call(&api, ALICE, Method::PUT, &tags, Some(body));

        let r = put(json!(["a"])).await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "Invalid tags body",
        );
        let r = put(json!({"tag": ["a"]})).await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "Invalid tags body",
        );
        let r = put(json!({"tags": "a"})).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "InvalidInput", "is not a list");
        let r = put(json!({"tags": ["a", "b", "a"]})).await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "Duplicate items in the list: 'a'",
        );
        let r = put(json!({"tags": [1]})).await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "is not a valid string",
        );
        // At most 255 characters (Neutron's MAX_TAG_LEN), counted as characters.
        let long = "é".repeat(256);
        let r = put(json!({ "tags": [long] })).await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "exceeds maximum length of 255",
        );
        let r = call(
            &api,
            ALICE,
            Method::PUT,
            &format!("{tags}/{}", "x".repeat(256)),
            None,
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "exceeds maximum length of 255",
        );
        // Neutron refuses neither commas nor spaces in a tag (a comma cannot be filtered on).
        let r = put(json!({ "tags": ["é".repeat(255), "a,b", "with space"] })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = call(
            &api,
            ALICE,
            Method::GET,
            &format!("{tags}/with%20space"),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);

        // At most 50 per resource, whichever way they come.
        let fifty: Vec<String> = (0..50).map(|i| format!("t{i:02}")).collect();
        let r = put(json!({ "tags": fifty })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let limit = "Bad networks request: The number of tags exceed the per-resource limit of 50.";
        let r = call(&api, ALICE, Method::PUT, &format!("{tags}/one-more"), None).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "BadRequest", limit);
        let r = call(
            &api,
            ALICE,
            Method::POST,
            &tags,
            Some(json!({"tags": ["one-more"]})),
        )
        .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "BadRequest", limit);
        let mut many = fifty.clone();
        many.push("one-more".into());
        let r = put(json!({ "tags": many })).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "BadRequest", limit);
        // Present ones do not count twice.
        let r = call(&api, ALICE, Method::PUT, &format!("{tags}/t00"), None).await;
        assert_eq!(r.status, StatusCode::CREATED);
        let r = call(&api, ALICE, Method::GET, &tags, None).await;
        assert_eq!(r.body["tags"], json!(fifty));
    }
);

on_both_databases!(only_owners_and_admins_tag, |api: TestApi| async move {
    let mine = one_of_each(&api, ALICE).await;
    for (collection, _, id) in &mine {
        let tags = format!("/v2.0/{collection}/{id}/tags");
        // Another project does not see the resource: the resource's own 404.
        for (m, path) in [
            (Method::GET, tags.clone()),
            (Method::PUT, format!("{tags}/x")),
            (Method::DELETE, tags.clone()),
            (Method::GET, format!("{tags}/x")),
        ] {
            let r = call(&api, BOB, m.clone(), &path, None).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {path}: {}", r.body);
            assert!(
                r.error_type().ends_with("NotFound") && r.error_type() != "TagNotFound",
                "{}",
                r.body
            );
        }
        // A reader of the project may look, not change.
        let r = call(&api, ALICE_READER, Method::GET, &tags, None).await;
        assert_eq!(r.status, StatusCode::OK);
        let r = call(&api, ALICE_READER, Method::PUT, &format!("{tags}/x"), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.error_type(), "PolicyNotAuthorized");
        // An admin may tag anyone's.
        let r = call(&api, None, Method::PUT, &format!("{tags}/by-admin"), None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let r = call(
        &api,
        ALICE,
        Method::GET,
        "/v2.0/networks/no-such-network/tags",
        None,
    )
    .await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "NetworkNotFound",
        "no-such-network",
    );
    let r = call(
        &api,
        ALICE,
        Method::PUT,
        "/v2.0/ports/no-such-port/tags",
        Some(json!({"tags": []})),
    )
    .await;
    assert_error(&r, StatusCode::NOT_FOUND, "PortNotFound", "no-such-port");

    // A shared network: others see it and its tags, and may not change them.
    let shared = create(
        &api,
        None,
        "networks",
        json!({"network": {"name": "s", "shared": true}}),
    )
    .await;
    call(
        &api,
        None,
        Method::PUT,
        &format!("/v2.0/networks/{shared}/tags/public"),
        None,
    )
    .await;
    let r = call(
        &api,
        BOB,
        Method::GET,
        &format!("/v2.0/networks/{shared}/tags"),
        None,
    )
    .await;
    assert_eq!(r.body, json!({"tags": ["public"]}));
    let r = call(
        &api,
        BOB,
        Method::DELETE,
        &format!("/v2.0/networks/{shared}/tags/public"),
        None,
    )
    .await;
    assert_error(
        &r,
        StatusCode::FORBIDDEN,
        "PolicyNotAuthorized",
        "delete_network:tags",
    );
});

/// Ids of a list answer.
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

on_both_databases!(tag_filters_as_neutron, |api: TestApi| async move {
    // networks n1 {red, blue}, n2 {red}, n3 {}, n4 {blue, green}
    let mut nets = Vec::new();
    for (name, tags) in [
        ("n1", vec!["red", "blue"]),
        ("n2", vec!["red"]),
        ("n3", vec![]),
        ("n4", vec!["blue", "green"]),
    ] {
        let id = create(&api, ALICE, "networks", json!({"network": {"name": name}})).await;
        let r = call(
            &api,
            ALICE,
            Method::PUT,
            &format!("/v2.0/networks/{id}/tags"),
            Some(json!({ "tags": tags })),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        nets.push(id);
    }
    let pick = |which: &[usize]| {
        let mut v: Vec<String> = which.iter().map(|i| nets[*i].clone()).collect();
        v.sort();
        v
    };
    for (query, want) in [
        ("tags=red,blue", pick(&[0])),
        ("tags=red&tags=blue", pick(&[0])),
        ("tags=red", pick(&[0, 1])),
        ("tags-any=blue,green", pick(&[0, 3])),
        ("tags-any=purple", pick(&[])),
        ("not-tags=red,blue", pick(&[1, 2, 3])),
        ("not-tags-any=red", pick(&[2, 3])),
        ("not-tags-any=red,green", pick(&[2])),
        ("tags=red&not-tags=blue", pick(&[1])),
        ("tags-any=red,green&not-tags-any=blue", pick(&[1])),
        ("tags=", pick(&[0, 1, 2, 3])),
    ] {
        let r = call(
            &api,
            ALICE,
            Method::GET,
            &format!("/v2.0/networks?{query}"),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
        assert_eq!(ids(&r.body, "networks"), want, "{query}");
    }
    // Paged, sorted by name: the filter holds across pages.
    let r = call(
        &api,
        ALICE,
        Method::GET,
        "/v2.0/networks?tags-any=blue&sort_key=name&sort_dir=desc&limit=1",
        None,
    )
    .await;
    assert_eq!(r.body["networks"][0]["id"], json!(nets[3]));
    let next = r.body["networks_links"][0]["href"].as_str().unwrap();
    let next = &next[next.find("/v2.0").unwrap()..];
    let r = call(&api, ALICE, Method::GET, next, None).await;
    assert_eq!(r.body["networks"][0]["id"], json!(nets[0]), "{}", r.body);

    // The other collections filter by their own tags, not their namesakes'.
    let each = one_of_each(&api, ALICE).await;
    for (collection, _, id) in &each {
        call(
            &api,
            ALICE,
            Method::PUT,
            &format!("/v2.0/{collection}/{id}/tags/only-{collection}"),
            None,
        )
        .await;
    }
    for (collection, _, id) in &each {
        let key = collection.replace('-', "_");
        let r = call(
            &api,
            ALICE,
            Method::GET,
            &format!("/v2.0/{collection}?tags=only-{collection}"),
            None,
        )
        .await;
        assert_eq!(ids(&r.body, &key), vec![id.clone()], "{collection}");
        let r = call(
            &api,
            ALICE,
            Method::GET,
            &format!("/v2.0/{collection}?not-tags-any=only-{collection}"),
            None,
        )
        .await;
        assert!(!ids(&r.body, &key).contains(id), "{collection}");
        // Networks and groups have untagged namesakes to keep (n1.., the default group).
        assert!(
            !ids(&r.body, &key).is_empty() || matches!(*collection, "subnets" | "ports"),
            "{collection}: {}",
            r.body
        );
        // Another kind's tag matches nothing here.
        let r = call(
            &api,
            ALICE,
            Method::GET,
            &format!("/v2.0/{collection}?tags=only-networks&tags-any=only-ports"),
            None,
        )
        .await;
        assert!(ids(&r.body, &key).is_empty(), "{collection}: {}", r.body);
    }

    // A deleted resource's tags go with it.
    let port = &each[2].2;
    let r = call(
        &api,
        ALICE,
        Method::DELETE,
        &format!("/v2.0/ports/{port}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(&api, None, Method::GET, "/v2.0/ports?tags=only-ports", None).await;
    assert!(ids(&r.body, "ports").is_empty());
});

on_both_databases!(tag_extensions_are_advertised, |api: TestApi| async move {
    for alias in [
        "standard-attr-tag",
        "tag-creation",
        "ip-substring-filtering",
    ] {
        let r = call(
            &api,
            ALICE,
            Method::GET,
            &format!("/v2.0/extensions/{alias}"),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{alias}");
        assert_eq!(r.body["extension"]["alias"], alias);
    }
});
