//! `/v2.0/subnetpools` and subnets allocated from pools (`subnet_allocation`,
//! `default-subnetpools`), against Neutron's statuses, error types and texts
//! (shared/reference/neutron-l3-security.md section 6, neutron-transcript), on SQLite and
//! PostgreSQL.

use std::collections::HashSet;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use neutrino_tests::api::{Db, Reply, TestApi};
use neutrino_tests::on_both_databases;
use serde_json::{Value, json};

const ALICE: Option<(&str, &str)> = Some(("alice-project", "member"));
const BOB: Option<(&str, &str)> = Some(("bob-project", "member"));

async fn post_as(api: &TestApi, who: Option<(&str, &str)>, collection: &str, body: Value) -> Reply {
    let resource = collection.trim_end_matches('s');
    api.call_as(
        who,
        Method::POST,
        &format!("/v2.0/{collection}"),
        Some(json!({ resource: body })),
    )
    .await
}

async fn created_as(
    api: &TestApi,
    who: Option<(&str, &str)>,
    collection: &str,
    body: Value,
) -> Value {
    let r = post_as(api, who, collection, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body[collection.trim_end_matches('s')].clone()
}

async fn pool_as(api: &TestApi, who: Option<(&str, &str)>, body: Value) -> Value {
    created_as(api, who, "subnetpools", body).await
}

async fn network_as(api: &TestApi, who: Option<(&str, &str)>) -> String {
    created_as(api, who, "networks", json!({"name": "n"})).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A subnet create from a pool on `net`, with `extra` attributes.
async fn from_pool_as(
    api: &TestApi,
    who: Option<(&str, &str)>,
    net: &str,
    pool: &Value,
    extra: Value,
) -> Reply {
    let mut body =
        json!({"network_id": net, "ip_version": pool["ip_version"], "subnetpool_id": pool["id"]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    post_as(api, who, "subnets", body).await
}

fn cidr(r: &Reply) -> &str {
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["subnet"]["cidr"].as_str().unwrap()
}

fn assert_error(r: &Reply, status: StatusCode, kind: &str, message: &str) {
    assert_eq!((r.status, r.error_type()), (status, kind), "{}", r.body);
    if !message.is_empty() {
        assert_eq!(r.error_message(), message, "{}", r.body);
    }
}

on_both_databases!(
    a_pool_shows_neutrons_attributes,
    |api: TestApi| async move {
        // As in the transcript (step 83): the prefix lengths are strings.
        let p = pool_as(
            &api,
            None,
            json!({"name": "default-v4", "prefixes": ["10.100.0.0/16"], "default_prefixlen": 26,
               "is_default": true, "shared": true}),
        )
        .await;
        assert_eq!(p["name"], "default-v4");
        assert_eq!(p["prefixes"], json!(["10.100.0.0/16"]));
        assert_eq!(
            (
                &p["default_prefixlen"],
                &p["min_prefixlen"],
                &p["max_prefixlen"]
            ),
            (&json!("26"), &json!("8"), &json!("32"))
        );
        assert_eq!(
            (&p["is_default"], &p["shared"]),
            (&json!(true), &json!(true))
        );
        assert_eq!(p["ip_version"], 4);
        assert_eq!(p["default_quota"], Value::Null);
        assert_eq!(p["address_scope_id"], Value::Null);
        assert_eq!((&p["description"], &p["tags"]), (&json!(""), &json!([])));
        assert_eq!(p["revision_number"], 0);
        assert_eq!(p["tenant_id"], p["project_id"]);
        assert!(p["created_at"].as_str().unwrap().ends_with('Z'));

        // IPv6 defaults; the default prefix length is the minimum; prefixes compacted.
        let v6 = pool_as(
        &api,
        None,
        json!({"name": "v6", "prefixes": ["2001:db8:1::/48", "2001:db8::/48", "2001:db8::/64"]}),
    )
    .await;
        assert_eq!(v6["prefixes"], json!(["2001:db8::/47"]));
        assert_eq!(
            (
                &v6["default_prefixlen"],
                &v6["min_prefixlen"],
                &v6["max_prefixlen"]
            ),
            (&json!("64"), &json!("64"), &json!("128"))
        );
        assert_eq!(
            (v6["ip_version"].clone(), v6["is_default"].clone()),
            (json!(6), json!(false))
        );

        let id = p["id"].as_str().unwrap();
        let shown = api
            .call(Method::GET, &format!("/v2.0/subnetpools/{id}"), None)
            .await;
        assert_eq!(shown.status, StatusCode::OK);
        assert_eq!(shown.body["subnetpool"], p);
        let fields = api
            .call(
                Method::GET,
                &format!("/v2.0/subnetpools/{id}?fields=id&fields=prefixes"),
                None,
            )
            .await;
        assert_eq!(
            fields.body["subnetpool"],
            json!({"id": id, "prefixes": ["10.100.0.0/16"]})
        );

        // Lists: filters, sorting, paging.
        let list = api.call(Method::GET, "/v2.0/subnetpools", None).await;
        assert_eq!(list.body["subnetpools"].as_array().unwrap().len(), 2);
        let v4 = api
            .call(Method::GET, "/v2.0/subnetpools?ip_version=4", None)
            .await;
        assert_eq!(v4.body["subnetpools"], json!([p]));
        let by_len = api
            .call(Method::GET, "/v2.0/subnetpools?default_prefixlen=64", None)
            .await;
        assert_eq!(by_len.body["subnetpools"][0]["id"], v6["id"]);
        let defaults = api
            .call(
                Method::GET,
                "/v2.0/subnetpools?is_default=true&fields=name",
                None,
            )
            .await;
        assert_eq!(
            defaults.body["subnetpools"],
            json!([{"name": "default-v4"}])
        );
        let by_prefix = api
            .call(
                Method::GET,
                "/v2.0/subnetpools?prefixes=2001:db8::/47",
                None,
            )
            .await;
        assert_eq!(by_prefix.body["subnetpools"][0]["id"], v6["id"]);
        let sorted = api
            .call(
                Method::GET,
                "/v2.0/subnetpools?sort_key=min_prefixlen&sort_dir=desc&limit=1",
                None,
            )
            .await;
        assert_eq!(sorted.body["subnetpools"][0]["id"], v6["id"]);
        let next = sorted.body["subnetpools_links"][0]["href"]
            .as_str()
            .unwrap();
        assert!(
            next.contains(&format!("marker={}", v6["id"].as_str().unwrap())),
            "{next}"
        );
        let path = &next[next.find("/v2.0").unwrap()..];
        let page2 = api.call(Method::GET, path, None).await;
        assert_eq!(page2.body["subnetpools"][0]["id"], p["id"]);

        let missing = api
            .call(
                Method::GET,
                "/v2.0/subnetpools/686aeb92-c6f1-4f12-ade9-7b9102eb6dba",
                None,
            )
            .await;
        assert_error(
            &missing,
            StatusCode::NOT_FOUND,
            "SubnetPoolNotFound",
            "Subnet pool 686aeb92-c6f1-4f12-ade9-7b9102eb6dba could not be found.",
        );
    }
);

on_both_databases!(
    a_pool_create_is_checked_as_neutron_checks_it,
    |api: TestApi| async move {
        let cases = [
            (
                json!({"prefixes": ["10.0.0.0/8"]}),
                StatusCode::BAD_REQUEST,
                "HTTPBadRequest",
                "Failed to parse request. Required attribute 'name' not specified",
            ),
            (
                json!({"name": "  ", "prefixes": ["10.0.0.0/8"]}),
                StatusCode::BAD_REQUEST,
                "HTTPBadRequest",
                "Invalid input for name. Reason: '  ' Blank strings are not permitted.",
            ),
            (
                json!({"name": "p"}),
                StatusCode::BAD_REQUEST,
                "HTTPBadRequest",
                "Failed to parse request. Required attribute 'prefixes' not specified",
            ),
            (
                json!({"name": "p", "prefixes": []}),
                StatusCode::BAD_REQUEST,
                "EmptySubnetPoolPrefixList",
                "Empty subnet pool prefix list.",
            ),
            (
                json!({"name": "p", "prefixes": ["10.0.0.0/8", "2001:db8::/32"]}),
                StatusCode::BAD_REQUEST,
                "PrefixVersionMismatch",
                "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.",
            ),
            (
                json!({"name": "p", "prefixes": ["10.0.0.0/33"]}),
                StatusCode::BAD_REQUEST,
                "HTTPBadRequest",
                "Invalid input for prefixes. Reason: '10.0.0.0/33' is not a valid IP subnet.",
            ),
            (
                json!({"name": "p", "prefixes": ["10.0.0.0/8"], "max_prefixlen": 33}),
                StatusCode::BAD_REQUEST,
                "IllegalSubnetPoolPrefixBounds",
                "Illegal prefix bounds: max_prefixlen=33, ip_version_max=32.",
            ),
            (
                json!({"name": "p", "prefixes": ["10.0.0.0/8"], "min_prefixlen": 28, "max_prefixlen": 24}),
                StatusCode::BAD_REQUEST,
                "IllegalSubnetPoolPrefixBounds",
                "Illegal prefix bounds: min_prefixlen=28, max_prefixlen=24.",
            ),
            (
                json!({"name": "p", "prefixes": ["10.0.0.0/8"], "min_prefixlen": 16, "default_prefixlen": 12}),
                StatusCode::BAD_REQUEST,
                "IllegalSubnetPoolPrefixBounds",
                "Illegal prefix bounds: default_prefixlen=12, min_prefixlen=16.",
            ),
            (
                json!({"name": "p", "prefixes": ["10.0.0.0/8"], "max_prefixlen": 24, "default_prefixlen": 26}),
                StatusCode::BAD_REQUEST,
                "IllegalSubnetPoolPrefixBounds",
                "Illegal prefix bounds: default_prefixlen=26, max_prefixlen=24.",
            ),
            (
                json!({"name": "p", "prefixes": ["10.0.0.0/8"], "min_prefixlen": -1}),
                StatusCode::BAD_REQUEST,
                "HTTPBadRequest",
                "Invalid input for min_prefixlen. Reason: '-1' should be non-negative.",
            ),
            (
                json!({"name": "p", "prefixes": ["10.0.0.0/8"], "default_quota": "many"}),
                StatusCode::BAD_REQUEST,
                "InvalidInput",
                "",
            ),
            (
                json!({"name": "p", "prefixes": ["10.0.0.0/8"], "ip_version": 4}),
                StatusCode::BAD_REQUEST,
                "HTTPBadRequest",
                "Attribute 'ip_version' not allowed in POST",
            ),
            (
                json!({"name": "p", "prefixes": ["10.0.0.0/8"], "foo": 1}),
                StatusCode::BAD_REQUEST,
                "HTTPBadRequest",
                "Unrecognized attribute(s) 'foo'",
            ),
            (
                json!({"name": "p", "prefixes": ["10.0.0.0/8"], "address_scope_id": "3cf50195-7c2f-4351-8169-6c1d1aa7f61c"}),
                StatusCode::NOT_FOUND,
                "AddressScopeNotFound",
                "Address scope 3cf50195-7c2f-4351-8169-6c1d1aa7f61c could not be found.",
            ),
        ];
        for (body, status, kind, message) in cases {
            let r = post_as(&api, None, "subnetpools", body.clone()).await;
            assert_error(&r, status, kind, message);
        }
        // Nothing was made by the refused creates, and a null address scope is fine.
        pool_as(
            &api,
            None,
            json!({"name": "p", "prefixes": ["10.0.0.5/8"], "address_scope_id": null}),
        )
        .await;
        let list = api.call(Method::GET, "/v2.0/subnetpools", None).await;
        assert_eq!(
            list.body["subnetpools"][0]["prefixes"],
            json!(["10.0.0.0/8"])
        );
        assert_eq!(list.body["subnetpools"].as_array().unwrap().len(), 1);
    }
);

on_both_databases!(
    shared_and_default_are_for_admins,
    |api: TestApi| async move {
        for attribute in ["shared", "is_default"] {
            let r = post_as(
                &api,
                ALICE,
                "subnetpools",
                json!({"name": "p", "prefixes": ["10.0.0.0/8"], attribute: true}),
            )
            .await;
            assert_error(
                &r,
                StatusCode::FORBIDDEN,
                "PolicyNotAuthorized",
                &format!(
                    "(rule:create_subnetpool and rule:create_subnetpool:{attribute}) is disallowed by policy"
                ),
            );
        }
        // Their defaults may be sent by anyone (Neutron's policy checks attributes that differ).
        let p = pool_as(
            &api,
            ALICE,
            json!({"name": "p", "prefixes": ["10.0.0.0/8"], "shared": false, "is_default": false}),
        )
        .await;
        assert_eq!(p["project_id"], "alice-project");
        let path = format!("/v2.0/subnetpools/{}", p["id"].as_str().unwrap());
        let r = api
            .call_as(
                ALICE,
                Method::PUT,
                &path,
                Some(json!({"subnetpool": {"is_default": true}})),
            )
            .await;
        assert_error(
            &r,
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            "(rule:update_subnetpool and rule:update_subnetpool:is_default) is disallowed by policy",
        );
        let r = api
            .call_as(
                ALICE,
                Method::PUT,
                &path,
                Some(json!({"subnetpool": {"shared": true}})),
            )
            .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
            "Cannot update read-only attribute shared",
        );
        // A reader may look, not change.
        let r = api
            .call_as(
                Some(("alice-project", "reader")),
                Method::DELETE,
                &path,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
);

on_both_databases!(one_default_pool_per_ip_version, |api: TestApi| async move {
    let first = pool_as(
        &api,
        None,
        json!({"name": "d4", "prefixes": ["10.0.0.0/8"], "is_default": true}),
    )
    .await;
    let second = json!({"name": "d4b", "prefixes": ["172.16.0.0/12"], "is_default": true});
    let message = "Invalid input for operation: A default subnetpool for this IP family has already been set. Only one default may exist per IP family.";
    let r = post_as(&api, None, "subnetpools", second.clone()).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "InvalidInput", message);
    // Another version has its own default.
    pool_as(
        &api,
        None,
        json!({"name": "d6", "prefixes": ["2001:db8::/32"], "is_default": true}),
    )
    .await;
    let other = pool_as(
        &api,
        None,
        json!({"name": "o4", "prefixes": ["172.16.0.0/12"]}),
    )
    .await;
    let other_path = format!("/v2.0/subnetpools/{}", other["id"].as_str().unwrap());
    let r = api
        .call(
            Method::PUT,
            &other_path,
            Some(json!({"subnetpool": {"is_default": true}})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "InvalidInput", message);
    // Moved: unset on the first, then set on the other.
    let first_path = format!("/v2.0/subnetpools/{}", first["id"].as_str().unwrap());
    let r = api
        .call(
            Method::PUT,
            &first_path,
            Some(json!({"subnetpool": {"is_default": false}})),
        )
        .await;
    assert_eq!(r.body["subnetpool"]["is_default"], false, "{}", r.body);
    let r = api
        .call(
            Method::PUT,
            &other_path,
            Some(json!({"subnetpool": {"is_default": true}})),
        )
        .await;
    assert_eq!(r.body["subnetpool"]["is_default"], true, "{}", r.body);
    assert_eq!(r.body["subnetpool"]["revision_number"], 1);
});

on_both_databases!(a_pools_prefixes_only_grow, |api: TestApi| async move {
    let p = pool_as(
        &api,
        None,
        json!({"name": "g", "prefixes": ["10.0.0.0/24"], "default_prefixlen": 24, "min_prefixlen": 24}),
    )
    .await;
    let path = format!("/v2.0/subnetpools/{}", p["id"].as_str().unwrap());
    let net = network_as(&api, None).await;
    assert_eq!(
        cidr(&from_pool_as(&api, None, &net, &p, json!({})).await),
        "10.0.0.0/24"
    );
    let full = from_pool_as(&api, None, &net, &p, json!({})).await;
    assert_error(
        &full,
        StatusCode::INTERNAL_SERVER_ERROR,
        "SubnetAllocationError",
        "Failed to allocate subnet: Insufficient prefix space to allocate subnet size /24.",
    );

    for prefixes in [json!(["10.0.1.0/24"]), json!([])] {
        let r = api
            .call(
                Method::PUT,
                &path,
                Some(json!({"subnetpool": {"prefixes": prefixes}})),
            )
            .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "IllegalSubnetPoolPrefixUpdate",
            "Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes.",
        );
    }
    let r = api
        .call(
            Method::PUT,
            &path,
            Some(json!({"subnetpool": {"prefixes": ["2001:db8::/32", "10.0.0.0/24"]}})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "PrefixVersionMismatch", "");
    let r = api
        .call(
            Method::PUT,
            &path,
            Some(json!({"subnetpool": {"default_prefixlen": 20}})),
        )
        .await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "IllegalSubnetPoolPrefixBounds",
        "Illegal prefix bounds: default_prefixlen=20, min_prefixlen=24.",
    );
    // Grown by a touching block: compacted, and the new space is allocatable.
    let r = api
        .call(
            Method::PUT,
            &path,
            Some(json!({"subnetpool": {"prefixes": ["10.0.1.0/24", "10.0.0.0/24"], "name": "grown", "default_quota": 1024}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["subnetpool"]["prefixes"], json!(["10.0.0.0/23"]));
    assert_eq!(r.body["subnetpool"]["name"], "grown");
    assert_eq!(r.body["subnetpool"]["default_quota"], 1024);
    assert_eq!(r.body["subnetpool"]["revision_number"], 1);
    assert_eq!(
        cidr(&from_pool_as(&api, None, &net, &p, json!({})).await),
        "10.0.1.0/24"
    );
});

on_both_databases!(
    subnets_get_the_best_fitting_lowest_prefix,
    |api: TestApi| async move {
        let p = pool_as(
        &api,
        None,
        json!({"name": "a", "prefixes": ["10.0.0.0/16"], "default_prefixlen": 24, "max_prefixlen": 28}),
    )
    .await;
        let net = network_as(&api, None).await;
        let first = from_pool_as(&api, None, &net, &p, json!({"name": "s1"})).await;
        assert_eq!(cidr(&first), "10.0.0.0/24");
        let s = &first.body["subnet"];
        assert_eq!(s["subnetpool_id"], p["id"]);
        assert_eq!(s["gateway_ip"], "10.0.0.1");
        assert_eq!(
            s["allocation_pools"],
            json!([{"start": "10.0.0.2", "end": "10.0.0.254"}])
        );
        // The smallest free block that holds the length, lowest first.
        assert_eq!(
            cidr(&from_pool_as(&api, None, &net, &p, json!({"prefixlen": 26})).await),
            "10.0.1.0/26"
        );
        assert_eq!(
            cidr(&from_pool_as(&api, None, &net, &p, json!({})).await),
            "10.0.2.0/24"
        );
        assert_eq!(
            cidr(&from_pool_as(&api, None, &net, &p, json!({"prefixlen": "25"})).await),
            "10.0.1.128/25"
        );
        // A specific CIDR: free and inside the pool, else Neutron's SubnetAllocationError.
        assert_eq!(
            cidr(&from_pool_as(&api, None, &net, &p, json!({"cidr": "10.0.200.0/24"})).await),
            "10.0.200.0/24"
        );
        for taken in ["10.0.200.0/25", "10.1.0.0/24"] {
            let r = from_pool_as(&api, None, &net, &p, json!({"cidr": taken})).await;
            assert_error(
                &r,
                StatusCode::INTERNAL_SERVER_ERROR,
                "SubnetAllocationError",
                "Failed to allocate subnet: Cannot allocate requested subnet from the available set of prefixes.",
            );
        }
        // A gateway without a CIDR: the block around it.
        let r = from_pool_as(
            &api,
            None,
            &net,
            &p,
            json!({"gateway_ip": "10.0.77.254", "prefixlen": 24}),
        )
        .await;
        assert_eq!(cidr(&r), "10.0.77.0/24");
        assert_eq!(r.body["subnet"]["gateway_ip"], "10.0.77.254");
        // Explicitly no gateway.
        let r = from_pool_as(&api, None, &net, &p, json!({"gateway_ip": null})).await;
        assert_eq!(cidr(&r), "10.0.3.0/24");
        assert_eq!(r.body["subnet"]["gateway_ip"], Value::Null);

        // The pool's bounds.
        let r = from_pool_as(&api, None, &net, &p, json!({"prefixlen": 29})).await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "MaxPrefixSubnetAllocationError",
            "Unable to allocate subnet with prefix length 29, maximum allowed prefix is 28.",
        );
        let r = from_pool_as(&api, None, &net, &p, json!({"prefixlen": 7})).await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "MinPrefixSubnetAllocationError",
            "Unable to allocate subnet with prefix length 7, minimum allowed prefix is 8.",
        );

        // Shown, listed and filtered with their pool.
        let id = first.body["subnet"]["id"].as_str().unwrap();
        let shown = api
            .call(Method::GET, &format!("/v2.0/subnets/{id}"), None)
            .await;
        assert_eq!(shown.body["subnet"]["subnetpool_id"], p["id"]);
        let pool_id = p["id"].as_str().unwrap();
        let listed = api
            .call(
                Method::GET,
                &format!(
                    "/v2.0/subnets?subnetpool_id={pool_id}&fields=cidr&sort_key=cidr&sort_dir=asc"
                ),
                None,
            )
            .await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        assert_eq!(
            listed.body["subnets"].as_array().unwrap().len(),
            7,
            "{}",
            listed.body
        );

        // A deleted subnet's prefix is free again: the next allocation gets it.
        let r = api
            .call(Method::DELETE, &format!("/v2.0/subnets/{id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(
            cidr(&from_pool_as(&api, None, &net, &p, json!({})).await),
            "10.0.0.0/24"
        );
    }
);

on_both_databases!(
    a_subnet_create_names_its_pool_as_neutron_wants,
    |api: TestApi| async move {
        let p4 = pool_as(
            &api,
            None,
            json!({"name": "p4", "prefixes": ["10.0.0.0/16"], "default_prefixlen": 24}),
        )
        .await;
        let net = network_as(&api, None).await;
        let cases = [
            (
                json!({"subnetpool_id": p4["id"], "use_default_subnetpool": true}),
                "Bad subnets request: subnetpool_id and use_default_subnetpool cannot both be specified.",
            ),
            (
                json!({"subnetpool_id": p4["id"], "cidr": "10.0.0.0/24", "prefixlen": 24}),
                "Bad subnets request: cidr and prefixlen must not be supplied together.",
            ),
            (
                json!({"use_default_subnetpool": true}),
                "Bad subnets request: No default subnetpool found for IPv4.",
            ),
            (
                json!({"subnetpool_id": p4["id"], "allocation_pools": [{"start": "10.0.0.5", "end": "10.0.0.9"}]}),
                // The reason ends with a period and the template adds one, as in Neutron.
                "Bad subnets request: allocation_pools allowed only for specific subnet requests..",
            ),
            (
                json!({"subnetpool_id": null}),
                "Bad subnets request: a subnetpool must be specified in the absence of a cidr.",
            ),
        ];
        for (extra, message) in cases {
            let mut body = json!({"network_id": net, "ip_version": 4});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            let r = post_as(&api, None, "subnets", body).await;
            assert_error(&r, StatusCode::BAD_REQUEST, "BadRequest", message);
        }
        let r = post_as(
            &api,
            None,
            "subnets",
            json!({"network_id": net, "ip_version": 6, "subnetpool_id": p4["id"]}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Bad subnets request: Cannot allocate IPv6 subnet from IPv4 subnet pool.",
        );
        let r = post_as(
        &api,
        None,
        "subnets",
        json!({"network_id": net, "ip_version": 4, "subnetpool_id": "3cf50195-7c2f-4351-8169-6c1d1aa7f61c"}),
    )
    .await;
        assert_error(
            &r,
            StatusCode::NOT_FOUND,
            "SubnetPoolNotFound",
            "Subnet pool 3cf50195-7c2f-4351-8169-6c1d1aa7f61c could not be found.",
        );

        // The default pool of the version.
        let d = pool_as(
        &api,
        None,
        json!({"name": "d", "prefixes": ["172.16.0.0/12"], "default_prefixlen": 20, "is_default": true, "shared": true}),
    )
    .await;
        let r = post_as(
            &api,
            None,
            "subnets",
            json!({"network_id": net, "ip_version": 4, "use_default_subnetpool": true}),
        )
        .await;
        assert_eq!(cidr(&r), "172.16.0.0/20");
        assert_eq!(r.body["subnet"]["subnetpool_id"], d["id"]);
        // One pool per network and version (Neutron's NetworkSubnetPoolAffinityError).
        let affinity =
            "Subnets hosted on the same network must be allocated from the same subnet pool.";
        let r = from_pool_as(&api, None, &net, &p4, json!({})).await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "NetworkSubnetPoolAffinityError",
            affinity,
        );
        let r = post_as(
            &api,
            None,
            "subnets",
            json!({"network_id": net, "ip_version": 4, "cidr": "192.168.0.0/24"}),
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "NetworkSubnetPoolAffinityError",
            affinity,
        );
        // The network's delete gives its subnets' prefixes back.
        let r = api
            .call(Method::DELETE, &format!("/v2.0/networks/{net}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let net = network_as(&api, None).await;
        let r = from_pool_as(&api, None, &net, &d, json!({})).await;
        assert_eq!(cidr(&r), "172.16.0.0/20");
    }
);

on_both_databases!(a_pool_in_use_is_not_deleted, |api: TestApi| async move {
    let p = pool_as(
        &api,
        ALICE,
        json!({"name": "p", "prefixes": ["10.0.0.0/24"], "default_prefixlen": 26}),
    )
    .await;
    let path = format!("/v2.0/subnetpools/{}", p["id"].as_str().unwrap());
    let net = network_as(&api, ALICE).await;
    let mut ids = Vec::new();
    for want in [
        "10.0.0.0/26",
        "10.0.0.64/26",
        "10.0.0.128/26",
        "10.0.0.192/26",
    ] {
        let r = from_pool_as(&api, ALICE, &net, &p, json!({})).await;
        assert_eq!(cidr(&r), want);
        ids.push(r.body["subnet"]["id"].as_str().unwrap().to_string());
    }
    let r = from_pool_as(&api, ALICE, &net, &p, json!({})).await;
    assert_error(
        &r,
        StatusCode::INTERNAL_SERVER_ERROR,
        "SubnetAllocationError",
        "Failed to allocate subnet: Insufficient prefix space to allocate subnet size /26.",
    );
    let r = api.call_as(ALICE, Method::DELETE, &path, None).await;
    assert_error(
        &r,
        StatusCode::BAD_REQUEST,
        "SubnetPoolDeleteError",
        "Unable to delete subnet pool: Subnet pool has existing allocations.",
    );
    // Freed blocks merge back: a /24 fits again once all four are gone.
    for id in &ids {
        let r = api
            .call_as(ALICE, Method::DELETE, &format!("/v2.0/subnets/{id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }
    let r = from_pool_as(&api, ALICE, &net, &p, json!({"prefixlen": 24})).await;
    assert_eq!(cidr(&r), "10.0.0.0/24");
    let id = r.body["subnet"]["id"].as_str().unwrap();
    api.call_as(ALICE, Method::DELETE, &format!("/v2.0/subnets/{id}"), None)
        .await;
    let r = api.call_as(ALICE, Method::DELETE, &path, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = api.call_as(ALICE, Method::GET, &path, None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "SubnetPoolNotFound", "");
});

on_both_databases!(
    another_project_sees_only_shared_pools,
    |api: TestApi| async move {
        let private = pool_as(
            &api,
            ALICE,
            json!({"name": "mine", "prefixes": ["10.0.0.0/16"], "default_prefixlen": 24}),
        )
        .await;
        let shared = pool_as(
        &api,
        None,
        json!({"name": "shared", "prefixes": ["10.1.0.0/16"], "default_prefixlen": 24, "shared": true}),
    )
    .await;
        let private_path = format!("/v2.0/subnetpools/{}", private["id"].as_str().unwrap());
        let shared_path = format!("/v2.0/subnetpools/{}", shared["id"].as_str().unwrap());
        let not_found = format!(
            "Subnet pool {} could not be found.",
            private["id"].as_str().unwrap()
        );
        for (method, body) in [
            (Method::GET, None),
            (Method::PUT, Some(json!({"subnetpool": {"name": "taken"}}))),
            (Method::DELETE, None),
        ] {
            let r = api.call_as(BOB, method, &private_path, body).await;
            assert_error(&r, StatusCode::NOT_FOUND, "SubnetPoolNotFound", &not_found);
        }
        let listed = api
            .call_as(BOB, Method::GET, "/v2.0/subnetpools", None)
            .await;
        let names: Vec<&str> = listed.body["subnetpools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["shared"]);
        let bob_net = network_as(&api, BOB).await;
        let r = from_pool_as(&api, BOB, &bob_net, &private, json!({})).await;
        assert_error(&r, StatusCode::NOT_FOUND, "SubnetPoolNotFound", &not_found);
        let r = api
            .call_as(BOB, Method::GET, &format!("{private_path}/tags"), None)
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, "SubnetPoolNotFound", &not_found);

        // The shared one: seen and used, not changed.
        let r = api.call_as(BOB, Method::GET, &shared_path, None).await;
        assert_eq!(r.status, StatusCode::OK);
        let r = from_pool_as(&api, BOB, &bob_net, &shared, json!({})).await;
        assert_eq!(cidr(&r), "10.1.0.0/24");
        assert_eq!(r.body["subnet"]["project_id"], "bob-project");
        let r = api
            .call_as(
                BOB,
                Method::PUT,
                &shared_path,
                Some(json!({"subnetpool": {"name": "x"}})),
            )
            .await;
        assert_error(
            &r,
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            "rule:update_subnetpool is disallowed by policy",
        );
        let r = api.call_as(BOB, Method::DELETE, &shared_path, None).await;
        assert_error(
            &r,
            StatusCode::FORBIDDEN,
            "PolicyNotAuthorized",
            "rule:delete_subnetpool is disallowed by policy",
        );
        // Alice still uses her own.
        let alice_net = network_as(&api, ALICE).await;
        assert_eq!(
            cidr(&from_pool_as(&api, ALICE, &alice_net, &private, json!({})).await),
            "10.0.0.0/24"
        );
    }
);

on_both_databases!(pools_count_against_their_quota, |api: TestApi| async move {
    let r = api
        .call(
            Method::PUT,
            "/v2.0/quotas/alice-project",
            Some(json!({"quota": {"subnetpool": 1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    pool_as(
        &api,
        ALICE,
        json!({"name": "a", "prefixes": ["10.0.0.0/16"]}),
    )
    .await;
    let r = post_as(
        &api,
        ALICE,
        "subnetpools",
        json!({"name": "b", "prefixes": ["10.1.0.0/16"]}),
    )
    .await;
    assert_error(
        &r,
        StatusCode::CONFLICT,
        "OverQuota",
        "Quota exceeded for resources: ['subnetpool'].",
    );
    let details = api
        .call_as(
            ALICE,
            Method::GET,
            "/v2.0/quotas/alice-project/details",
            None,
        )
        .await;
    assert_eq!(
        details.body["quota"]["subnetpool"],
        json!({"limit": 1, "used": 1, "reserved": 0})
    );
    // Bob is not limited by Alice's quota.
    pool_as(&api, BOB, json!({"name": "b", "prefixes": ["10.1.0.0/16"]})).await;
});

on_both_databases!(
    a_pools_default_quota_limits_its_owners_prefixes,
    |api: TestApi| async move {
        // 512 IPv4 addresses: two /24s.
        let p = pool_as(
        &api,
        ALICE,
        json!({"name": "q", "prefixes": ["10.0.0.0/16"], "default_prefixlen": 24, "default_quota": 512}),
    )
    .await;
        assert_eq!(p["default_quota"], 512);
        let net = network_as(&api, ALICE).await;
        for want in ["10.0.0.0/24", "10.0.1.0/24"] {
            assert_eq!(
                cidr(&from_pool_as(&api, ALICE, &net, &p, json!({})).await),
                want
            );
        }
        let r = from_pool_as(&api, ALICE, &net, &p, json!({})).await;
        assert_error(
            &r,
            StatusCode::CONFLICT,
            "SubnetPoolQuotaExceeded",
            "Per-project subnet pool prefix quota exceeded.",
        );
    }
);

on_both_databases!(pools_carry_tags, |api: TestApi| async move {
    let p = pool_as(
        &api,
        ALICE,
        json!({"name": "t", "prefixes": ["10.0.0.0/16"]}),
    )
    .await;
    let id = p["id"].as_str().unwrap();
    let r = api
        .call_as(
            ALICE,
            Method::PUT,
            &format!("/v2.0/subnetpools/{id}/tags"),
            Some(json!({"tags": ["red", "blue"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let shown = api
        .call_as(ALICE, Method::GET, &format!("/v2.0/subnetpools/{id}"), None)
        .await;
    assert_eq!(shown.body["subnetpool"]["tags"], json!(["blue", "red"]));
    assert_eq!(shown.body["subnetpool"]["revision_number"], 1);
    pool_as(
        &api,
        ALICE,
        json!({"name": "u", "prefixes": ["10.1.0.0/16"]}),
    )
    .await;
    let listed = api
        .call_as(
            ALICE,
            Method::GET,
            "/v2.0/subnetpools?tags=red&fields=name",
            None,
        )
        .await;
    assert_eq!(listed.body["subnetpools"], json!([{"name": "t"}]));
    // A tagged pool's delete takes its tags.
    let r = api
        .call_as(
            ALICE,
            Method::DELETE,
            &format!("/v2.0/subnetpools/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
});

on_both_databases!(pools_are_discoverable, |api: TestApi| async move {
    let ext = api.call(Method::GET, "/v2.0/extensions", None).await;
    let aliases: Vec<&str> = ext.body["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["alias"].as_str().unwrap())
        .collect();
    assert!(aliases.contains(&"subnet_allocation"), "{aliases:?}");
    assert!(aliases.contains(&"default-subnetpools"), "{aliases:?}");
    let root = api.call(Method::GET, "/v2.0/", None).await;
    assert!(
        root.body["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["collection"] == "subnetpools"),
        "{}",
        root.body
    );
    let r = api.call(Method::PUT, "/v2.0/subnetpools", None).await;
    assert_error(
        &r,
        StatusCode::NOT_FOUND,
        "SubnetPoolNotFound",
        "Subnet pool None could not be found.",
    );
});

on_both_databases!(
    bulk_and_ipv6_creates_take_from_a_pool,
    |api: TestApi| async move {
        let r = api
            .call(
                Method::POST,
                "/v2.0/subnetpools",
                Some(json!({"subnetpools": [
                    {"name": "v4", "prefixes": ["10.0.0.0/16"], "default_prefixlen": 24},
                    {"name": "v6", "prefixes": ["2001:db8::/48"]},
                ]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let (v4, v6) = (
            r.body["subnetpools"][0].clone(),
            r.body["subnetpools"][1].clone(),
        );
        let net = network_as(&api, None).await;
        // One transaction: the second sees what the first took.
        let r = api
            .call(
                Method::POST,
                "/v2.0/subnets",
                Some(json!({"subnets": [
                    {"network_id": net, "ip_version": 4, "subnetpool_id": v4["id"]},
                    {"network_id": net, "ip_version": 4, "subnetpool_id": v4["id"]},
                    {"network_id": net, "ip_version": 6, "subnetpool_id": v6["id"],
                     "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"},
                ]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let cidrs: Vec<&str> = r.body["subnets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["cidr"].as_str().unwrap())
            .collect();
        assert_eq!(cidrs, ["10.0.0.0/24", "10.0.1.0/24", "2001:db8::/64"]);
        // Neutron's allocator gives an "any" request the first host, IPv6 too.
        assert_eq!(r.body["subnets"][2]["gateway_ip"], "2001:db8::1");
        assert_eq!(
            r.body["subnets"][2]["allocation_pools"],
            json!([{"start": "2001:db8::2", "end": "2001:db8::ffff:ffff:ffff:ffff"}])
        );
        // All or nothing: a bulk whose last item fails takes no prefix.
        let r = api
        .call(
            Method::POST,
            "/v2.0/subnets",
            Some(json!({"subnets": [
                {"network_id": net, "ip_version": 6, "subnetpool_id": v6["id"]},
                {"network_id": net, "ip_version": 6, "subnetpool_id": v6["id"], "prefixlen": 200},
            ]})),
        )
        .await;
        assert_error(
            &r,
            StatusCode::BAD_REQUEST,
            "MaxPrefixSubnetAllocationError",
            "",
        );
        let r = from_pool_as(&api, None, &net, &v6, json!({})).await;
        assert_eq!(cidr(&r), "2001:db8:0:1::/64");
    }
);

/// Many subnet creates at once from one pool, over two servers sharing one database and over
/// several networks: no prefix is given twice, exactly the pool's worth succeed, and the rest
/// get Neutron's allocation error.
async fn concurrent_allocations(db: Db) {
    let (a, b) = TestApi::two(db).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    // 16 /28s.
    let p = pool_as(
        &a,
        None,
        json!({"name": "c", "prefixes": ["10.9.0.0/24"], "default_prefixlen": 28}),
    )
    .await;
    let mut nets = Vec::new();
    for _ in 0..4 {
        nets.push(network_as(&a, None).await);
    }
    let mut tasks = Vec::new();
    for i in 0..24 {
        let api = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (net, p) = (nets[i % nets.len()].clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            from_pool_as(&api, None, &net, &p, json!({})).await
        }));
    }
    let (mut got, mut exhausted) = (HashSet::new(), 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::CREATED => assert!(
                got.insert(r.body["subnet"]["cidr"].as_str().unwrap().to_string()),
                "a prefix given twice: {}",
                r.body
            ),
            _ => {
                assert_error(
                    &r,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "SubnetAllocationError",
                    "Failed to allocate subnet: Insufficient prefix space to allocate subnet size /28.",
                );
                exhausted += 1;
            }
        }
    }
    let all: HashSet<String> = (0..16).map(|i| format!("10.9.0.{}/28", i * 16)).collect();
    assert_eq!((got, exhausted), (all, 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_subnet_pool_allocations_sqlite() {
    concurrent_allocations(Db::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_subnet_pool_allocations_postgres() {
    concurrent_allocations(Db::Postgres).await
}
