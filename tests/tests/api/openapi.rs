//! `/openapi.json` describes what is served: every documented operation reaches a handler
//! (never the 404 of an unknown path, never 405), and the document lists every resource.

use axum::http::{Method, StatusCode};
use neutrino_tests::api::{Db, TestApi};

#[tokio::test]
async fn every_documented_operation_is_served() {
    let api = TestApi::new(Db::Sqlite).await;
    let doc = api.call(Method::GET, "/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let paths = doc.body["paths"].as_object().unwrap();
    for collection in ["networks", "subnets", "ports", "agents"] {
        assert!(
            paths.contains_key(&format!("/v2.0/{collection}")),
            "{collection}"
        );
        assert!(
            paths.contains_key(&format!("/v2.0/{collection}/{{id}}")),
            "{collection}"
        );
    }
    let ops = neutrino::api::openapi::operations();
    assert!(ops.len() >= 20, "{ops:?}");
    for (method, path) in ops {
        let concrete = path
            .replace("{id}", "3cf50195-7c2f-4351-8169-6c1d1aa7f61c")
            .replace("{alias}", "binding")
            .replace("{tag}", "some-tag")
            .replace("{network_id}", "3cf50195-7c2f-4351-8169-6c1d1aa7f61d");
        let r = api
            .call(
                Method::from_bytes(method.as_bytes()).unwrap(),
                &concrete,
                None,
            )
            .await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(
            r.error_type(),
            "HTTPNotFound",
            "{method} {path}: {}",
            r.body
        );
    }
    // And an operation that is not served is not documented.
    assert!(paths["/v2.0/agents"].get("post").is_none());
}
