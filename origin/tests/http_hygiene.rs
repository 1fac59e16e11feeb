//! What every response gets: security headers, JSON errors, limits, request ids, health.

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

on_both_backends!(
    security_headers_are_on_every_response,
    html_gets_a_strict_csp,
    hsts_only_behind_https,
    unknown_paths_and_methods_get_json_errors,
    oversize_bodies_are_refused_and_change_nothing,
    request_ids_are_returned,
    health_and_readiness,
);

async fn security_headers_are_on_every_response(app: TestApp) {
    for response in [
        app.get("/health", None).await,
        app.get("/no/such/path", None).await,
        app.get("/auth/me", None).await,
        app.post("/auth/login", None, json!({})).await,
    ] {
        let h = &response.headers;
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(
            h["permissions-policy"]
                .to_str()
                .unwrap()
                .contains("camera=()")
        );
        assert_eq!(
            h["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'"
        );
        assert_eq!(h["cache-control"], "no-store");
        assert!(!h.contains_key("strict-transport-security"));
    }
}

async fn html_gets_a_strict_csp(app: TestApp) {
    let page = app.get("/ui/setup", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"));
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert!(
        page.text.contains("<script src=\"/ui/static/app.js\""),
        "scripts are files of ours"
    );
    assert!(!page.text.contains("<script>"), "no inline script");
}

async fn hsts_only_behind_https(app: TestApp) {
    let request = TestApp::request(Method::GET, "/health", None, LOCAL)
        .header("x-forwarded-proto", "https")
        .body(Body::empty())
        .unwrap();
    let response = app.send(request).await;
    assert!(
        response.headers["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
}

async fn unknown_paths_and_methods_get_json_errors(app: TestApp) {
    let missing = app.get("/api/nothing-here", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "not_found");
    let wrong_method = app
        .call(Method::DELETE, "/auth/login", None, json!({}))
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.error_code(), "method_not_allowed");
    assert!(wrong_method.headers.contains_key("allow"));
}

async fn oversize_bodies_are_refused_and_change_nothing(app: TestApp) {
    let huge = "x".repeat(origin::http::MAX_BODY_BYTES + 1);
    let response = app
        .post(
            "/auth/setup",
            None,
            json!({"username": ADMIN, "password": huge}),
        )
        .await;
    assert_eq!(
        response.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        response.text
    );
    assert_eq!(response.error_code(), "payload_too_large");
    assert_eq!(app.count("users").await, 0);
}

async fn request_ids_are_returned(app: TestApp) {
    let generated = app.get("/health", None).await;
    assert_eq!(generated.headers["x-request-id"].len(), 36);
    let request = TestApp::request(Method::GET, "/health", None, LOCAL)
        .header("x-request-id", "trace-me-123")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.send(request).await.headers["x-request-id"],
        "trace-me-123"
    );
}

async fn health_and_readiness(app: TestApp) {
    let live = app.get("/health", None).await;
    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(live.body["status"], "ok");
    assert_eq!(live.body["version"], env!("CARGO_PKG_VERSION"));
    // Without a sandbox the origin is not ready, and says why.
    let no_sandbox = app.get("/health/ready", None).await;
    assert_eq!(no_sandbox.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(no_sandbox.body["sandbox"]["ok"], false);
    assert!(
        no_sandbox.body["sandbox"]["error"]
            .as_str()
            .unwrap()
            .contains("no sandbox")
    );
    let app = app.with_sandbox().await;
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.body["database"]["ok"], true);
    assert_eq!(ready.body["sandbox"]["ok"], true);
    assert_eq!(ready.body["sandbox"]["circuit"], "closed");
    assert_eq!(ready.body["sandbox"]["layers"]["seccomp"], true);
    assert!(ready.body["sandbox"]["missing_layers"].as_array().is_some());
    assert_eq!(
        ready.body["sandbox"]["zygote_restarts"], 0,
        "{}",
        ready.text
    );
    // The pools: the database's bound, its connections, and how long this check waited for one.
    let pool = &ready.body["database"]["pool"];
    let max = match app.state.db.backend {
        origin::db::Backend::Sqlite => 8,
        origin::db::Backend::Postgres => 16,
    };
    assert_eq!(pool["max_connections"], max, "{}", ready.text);
    assert!(
        pool["in_use"].as_u64().unwrap() + pool["idle"].as_u64().unwrap() <= max,
        "{}",
        ready.text
    );
    let waited = pool["acquire_wait_s"].as_f64().unwrap();
    assert!((0.0..2.0).contains(&waited), "{}", ready.text);
    assert_eq!(ready.body["external"]["pooled_clients"], 0);
    assert_eq!(
        ready.body["external"]["pooled_clients_max"],
        origin::external::POOL_MAX
    );
    // With the database gone, readiness says so with a 503 (liveness stays up).
    app.state.db.pool.close().await;
    let down = app.get("/health/ready", None).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.body["database"]["ok"], false);
    // No connection, so no wait to report; the figures are still there.
    assert_eq!(down.body["database"]["pool"]["acquire_wait_s"], Value::Null);
    assert_eq!(down.body["database"]["pool"]["max_connections"], max);
    assert_eq!(app.get("/health", None).await.status, StatusCode::OK);
}
