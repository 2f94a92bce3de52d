//! `neutrino serve --auth keystone` against a real Keystone (scripts/keystone.sh): tokens
//! validated by Keystone, project isolation, the reader role, the admin role, headers that
//! cannot stand in for a token, the 401 of transcript-rbac `no_user_id_401`, and Keystone
//! going away (503 for tokens not yet known, cached tokens still served).

use axum::http::{Method, StatusCode};
use neutrino::api::auth::AuthStrategy;
use neutrino_tests::api::{Db, Reply, TestApi};
use neutrino_tests::keystone::Keystone;
use serde_json::{Value, json};

const PASSWORD: &str = "test-password-1";

async fn call(
    api: &TestApi,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    call_with(api, token, &[], method, path, body).await
}

async fn call_with(
    api: &TestApi,
    token: Option<&str>,
    extra: &[(&str, &str)],
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    if let Some(t) = token {
        headers.push(("x-auth-token", t));
    }
    let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    api.request(method, path, &headers, body).await
}

fn assert_unauthorized(r: &Reply, keystone: &Keystone, what: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.body);
    assert_eq!(r.body["title"], "Unauthorized", "{what}");
    assert_eq!(r.body["code"], "401 Unauthorized", "{what}");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .starts_with("This server could not verify that you are authorized"),
        "{what}"
    );
    assert_eq!(
        r.headers["www-authenticate"],
        format!("Keystone uri=\"{}\"", keystone.url).as_str(),
        "{what}"
    );
}

#[tokio::test]
async fn real_keystone_projects_roles_and_outage() {
    let mut keystone = Keystone::start();
    let admin = keystone.admin_token().await;
    let alpha = keystone.create_project(&admin, "alpha").await;
    let beta = keystone.create_project(&admin, "beta").await;
    for (user, project, role) in [
        ("alice", &alpha, "member"),
        ("rita", &alpha, "reader"),
        ("bob", &beta, "member"),
    ] {
        let id = keystone.create_user(&admin, user, PASSWORD).await;
        keystone.grant(&admin, project, &id, role).await;
    }
    let alice = keystone.token("alice", PASSWORD, "alpha").await;
    let rita = keystone.token("rita", PASSWORD, "alpha").await;
    let bob = keystone.token("bob", PASSWORD, "beta").await;
    let url = format!("{}/v3/", keystone.url);
    let api = TestApi::with(Db::Sqlite, |c| {
        c.auth = AuthStrategy::Keystone { url: url.clone() }
    })
    .await;

    // The version document is open; everything under /v2.0 needs a valid token.
    let r = call(&api, None, Method::GET, "/", None).await;
    assert_eq!(r.status, StatusCode::OK);
    for path in [
        "/v2.0/",
        "/v2.0/extensions",
        "/v2.0/networks",
        "/v2.0/agents",
        "/v2.0/widgets",
    ] {
        let r = call(&api, None, Method::GET, path, None).await;
        assert_unauthorized(&r, &keystone, path);
    }
    let r = call(
        &api,
        Some("not-a-token"),
        Method::GET,
        "/v2.0/networks",
        None,
    )
    .await;
    assert_unauthorized(&r, &keystone, "a token Keystone rejects");
    // Identity headers are not a token, and never override one.
    let spoof = [("x-project-id", beta.as_str()), ("x-roles", "admin")];
    let r = call_with(&api, None, &spoof, Method::GET, "/v2.0/networks", None).await;
    assert_unauthorized(&r, &keystone, "headers without a token");

    // alice (member of alpha) creates; the project comes from her token.
    let r = call_with(
        &api,
        Some(&alice),
        &spoof,
        Method::POST,
        "/v2.0/networks",
        Some(json!({"network": {"name": "alpha-net"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["network"]["project_id"], json!(alpha));
    assert!(
        r.body["network"].get("provider:network_type").is_none(),
        "not an admin, whatever the headers say"
    );
    let net = r.body["network"]["id"].as_str().unwrap().to_string();
    let r = call(
        &api,
        Some(&alice),
        Method::POST,
        "/v2.0/networks",
        Some(json!({"network": {"name": "x", "project_id": beta}})),
    )
    .await;
    assert!(r.status.is_client_error(), "another project's: {}", r.body);

    // bob (member of beta) sees none of alpha's.
    let r = call(
        &api,
        Some(&bob),
        Method::GET,
        &format!("/v2.0/networks/{net}"),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.body["NeutronError"]["type"].as_str()),
        (StatusCode::NOT_FOUND, Some("NetworkNotFound"))
    );
    let r = call(&api, Some(&bob), Method::GET, "/v2.0/networks", None).await;
    assert_eq!(r.body, json!({"networks": []}));
    let r = call(
        &api,
        Some(&bob),
        Method::DELETE,
        &format!("/v2.0/networks/{net}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &api,
        Some(&bob),
        Method::POST,
        "/v2.0/networks",
        Some(json!({"network": {"name": "beta-net"}})),
    )
    .await;
    assert_eq!(r.body["network"]["project_id"], json!(beta));

    // rita (reader of alpha) reads alpha's networks and changes nothing.
    let r = call(
        &api,
        Some(&rita),
        Method::GET,
        "/v2.0/networks?fields=name",
        None,
    )
    .await;
    assert_eq!(r.body, json!({"networks": [{"name": "alpha-net"}]}));
    let r = call(
        &api,
        Some(&rita),
        Method::POST,
        "/v2.0/networks",
        Some(json!({"network": {"name": "nope"}})),
    )
    .await;
    assert_eq!(
        (r.status, r.body["NeutronError"]["type"].as_str()),
        (StatusCode::FORBIDDEN, Some("PolicyNotAuthorized"))
    );
    let r = call(
        &api,
        Some(&rita),
        Method::PUT,
        &format!("/v2.0/networks/{net}"),
        Some(json!({"network": {"name": "renamed"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // The bootstrap admin sees everything, agents included; members see no agents.
    let r = api
        .report(json!({"agent_type": "DHCP agent", "host": "net1", "configurations": {}}))
        .await;
    assert_eq!(
        r.body,
        json!({"result": "new"}),
        "agents need no Keystone token"
    );
    let r = call(
        &api,
        Some(&admin),
        Method::GET,
        "/v2.0/networks?fields=name&sort_key=name&sort_dir=asc",
        None,
    )
    .await;
    assert_eq!(
        r.body,
        json!({"networks": [{"name": "alpha-net"}, {"name": "beta-net"}]})
    );
    let r = call(
        &api,
        Some(&admin),
        Method::GET,
        &format!("/v2.0/networks/{net}"),
        None,
    )
    .await;
    assert!(r.body["network"]["provider:network_type"].is_string());
    let r = call(
        &api,
        Some(&admin),
        Method::GET,
        "/v2.0/agents?fields=host",
        None,
    )
    .await;
    assert_eq!(r.body, json!({"agents": [{"host": "net1"}]}));
    let r = call(&api, Some(&alice), Method::GET, "/v2.0/agents", None).await;
    assert_eq!(r.body, json!({"agents": []}));

    // A revoked token keeps working until its cache entry expires (at most five minutes, as
    // with keystonemiddleware); a new token for the same user works at once.
    keystone.revoke(&admin, &alice).await;
    let r = call(&api, Some(&alice), Method::GET, "/v2.0/networks", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let alice_again = keystone.token("alice", PASSWORD, "alpha").await;
    let r = call(
        &api,
        Some(&alice_again),
        Method::GET,
        "/v2.0/networks",
        None,
    )
    .await;
    assert_eq!(r.body["networks"][0]["id"], json!(net));

    // Keystone goes away: tokens already validated are still served from the cache; a token
    // never seen cannot be checked, which is 503, not 401.
    let unseen = keystone.token("bob", PASSWORD, "beta").await;
    keystone.stop();
    let r = call(
        &api,
        Some(&alice_again),
        Method::GET,
        "/v2.0/networks",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(&api, Some(&unseen), Method::GET, "/v2.0/networks", None).await;
    assert_eq!(
        (r.status, r.body["NeutronError"]["type"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("ServiceUnavailable")),
        "{}",
        r.body
    );
    let r = call(
        &api,
        Some("not-a-token"),
        Method::GET,
        "/v2.0/networks",
        None,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "rejections are cached briefly too"
    );
}

/// Issue 12, finding 7: a Keystone that takes connections and never answers holds one request
/// for the client's timeout; while it is known to be down the others answer 503 at once, and
/// many distinct tokens never become many waiting Keystone calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_keystone_fails_fast_after_the_first_timeout() {
    use std::time::{Duration, Instant};
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v3", silent.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let held = {
        let accepted = accepted.clone();
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                open.push(stream);
            }
        })
    };
    let api = std::sync::Arc::new(
        TestApi::with(Db::Sqlite, |c| {
            c.auth = AuthStrategy::Keystone { url: url.clone() }
        })
        .await,
    );
    // The first one waits for the client's timeout: 503.
    let r = call(&api, Some("token-0"), Method::GET, "/v2.0/networks", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    // Now it is known to be down: 200 distinct tokens at once, each answered within a second.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 1..=200 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let token = format!("token-{i}");
            let t = Instant::now();
            let r = call(&api, Some(&token), Method::GET, "/v2.0/networks", None).await;
            (r.status, t.elapsed())
        }));
    }
    let mut slow = 0;
    for t in tasks {
        let (status, took) = t.await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        if took > Duration::from_secs(1) {
            slow += 1;
        }
    }
    // One of them may be the probe that waits the whole timeout.
    assert!(slow <= 1, "{slow} requests waited for a silent Keystone");
    assert!(started.elapsed() < Duration::from_secs(12));
    assert!(
        accepted.load(std::sync::atomic::Ordering::Relaxed) <= 3,
        "{} connections to Keystone",
        accepted.load(std::sync::atomic::Ordering::Relaxed)
    );
    held.abort();
}
