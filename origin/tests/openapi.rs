//! The generated OpenAPI document, and what it lets us check: every secured route refuses a
//! request without a token.

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;

#[tokio::test]
async fn the_document_lists_the_api_and_every_secured_route_needs_a_token() {
    let app = TestApp::sqlite().await;
    let doc = app.get("/api/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(
        doc.body["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc.text
    );
    assert_eq!(
        doc.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = doc.body["paths"].as_object().unwrap();
    for expected in [
        "/api/servers",
        "/api/tools/{id}/versions/compare",
        "/api/approvals/tools/{id}/action",
        "/auth/login",
        "/api/activity/stream",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }
    let mut secured = 0;
    let mut failures = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let needs_token = operation
                .get("security")
                .is_some_and(|s| !s.as_array().unwrap().is_empty());
            if !needs_token {
                continue;
            }
            secured += 1;
            let url = path
                .replace("{version}", "1")
                .replace("{kind}", "modules")
                .replace("{id}", "x")
                .replace("{key}", "KEY");
            let request = TestApp::request(method.clone(), &url, None, LOCAL)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let response = app.send(request).await;
            if response.status != StatusCode::UNAUTHORIZED {
                failures.push(format!("{method} {url}: {}", response.status));
            }
        }
    }
    assert!(
        secured >= 50,
        "only {secured} secured operations documented"
    );
    assert!(
        failures.is_empty(),
        "reachable without a token:\n{}",
        failures.join("\n")
    );
}
