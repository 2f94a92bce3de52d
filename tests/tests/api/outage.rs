//! A database that goes away: requests get Neutron's 503 `ServiceUnavailable` (retry later), not
//! an internal error, and the server recovers by itself once the database is back.

use axum::http::{Method, StatusCode};
use neutrino_tests::api::{Db, TestApi, postgres_admin_url};
use serde_json::json;
use sqlx::Connection as _;

/// PostgreSQL drops every connection of the server's database, as a restart or failover does.
#[tokio::test]
async fn postgres_outage_is_a_503_and_heals() {
    let admin = postgres_admin_url().expect("NEUTRINO_TEST_POSTGRES_URL");
    let api = TestApi::new(Db::Postgres).await;
    let created = api
        .call(
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {"name": "before"}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let database: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&api.state.store.read)
        .await
        .unwrap();

    let mut conn = sqlx::AnyConnection::connect(&admin).await.unwrap();
    let killed: Vec<i64> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid)::int::bigint FROM pg_stat_activity WHERE datname = $1",
    )
    .bind(&database)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "the server held no connection");

    // Each pooled connection that was cut fails its next request once.
    let mut answers = Vec::new();
    loop {
        let r = api.call(Method::GET, "/v2.0/networks", None).await;
        if r.status == StatusCode::OK {
            assert_eq!(r.body["networks"][0]["name"], "before");
            break;
        }
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
        assert_eq!(r.error_type(), "ServiceUnavailable");
        answers.push(r.status);
        assert!(answers.len() <= 32, "the server did not recover");
    }
    assert!(
        !answers.is_empty(),
        "no request saw the outage: the test cut nothing"
    );
    // Writes work again too.
    let after = api
        .call(
            Method::POST,
            "/v2.0/networks",
            Some(json!({"network": {"name": "after"}})),
        )
        .await;
    assert_eq!(after.status, StatusCode::CREATED, "{:?}", after.body);
}
