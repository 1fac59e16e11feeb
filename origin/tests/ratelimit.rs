//! Rate limits of the admin listener, attacked through the real router: per address on the API
//! and on `/mcp`, per account across addresses, changed in the settings without a restart.

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

on_both_backends!(
    the_api_refuses_an_address_past_its_limit_and_spares_the_others,
    one_account_is_limited_across_addresses,
    local_mcp_is_limited_per_address_with_a_json_rpc_error,
    limits_are_read_by_viewers_changed_by_admins_and_validated_whole,
);

async fn set_limits(app: &TestApp, admin: &str, patch: Value) -> Response {
    app.call(
        Method::PATCH,
        "/api/settings/rate-limits",
        Some(admin),
        patch,
    )
    .await
}

/// `mcpbox_rate_limited_total{scope}` in a scrape of the app's `/metrics`.
async fn refusals_counted(app: &TestApp, scope: &str) -> u64 {
    use tower::ServiceExt;
    let response = origin::metrics::router(app.state.clone())
        .oneshot(
            axum::http::Request::get("/metrics")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let prefix = format!("mcpbox_rate_limited_total{{scope=\"{scope}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix}in\n{text}"))
        .parse()
        .unwrap()
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

async fn status_from(app: &TestApp, from: std::net::IpAddr, token: Option<&str>) -> Response {
    app.send(
        TestApp::request(Method::GET, "/auth/me", token, from)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

async fn the_api_refuses_an_address_past_its_limit_and_spares_the_others(app: TestApp) {
    let admin = app.admin().await.token("access_token");
    let changed = set_limits(
        &app,
        &admin,
        json!({"api_per_address": {"per_minute": 60, "burst": 5}}),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(
        changed.body["api_per_address"],
        json!({"per_minute": 60, "burst": 5})
    );
    // Five from one address pass (401: no token, but counted), each saying what is left.
    for left in (0..5).rev() {
        let answer = status_from(&app, ip(1), None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
        assert_eq!(header(&answer, "x-ratelimit-remaining"), left.to_string());
        assert_eq!(header(&answer, "x-ratelimit-limit"), "5");
        assert_eq!(
            header(&answer, "ratelimit-policy"),
            "\"api-address\";q=5;w=5"
        );
        assert!(header(&answer, "ratelimit").starts_with(&format!("\"api-address\";r={left};t=")));
    }
    // The sixth is refused before any handler: 429, the error envelope, Retry-After, headers.
    let refused = status_from(&app, ip(1), None).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text
    );
    assert_eq!(refused.error_code(), "too_many_requests");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("api-address")
    );
    assert_eq!(header(&refused, "retry-after"), "1");
    assert_eq!(header(&refused, "x-ratelimit-remaining"), "0");
    assert!(header(&refused, "ratelimit").starts_with("\"api-address\";r=0;t=5"));
    // The sign-in route is under the same limit (its own throttle counts only failures).
    let login = app.login_from(ip(1), ADMIN, PASSWORD).await;
    assert_eq!(login.status, StatusCode::TOO_MANY_REQUESTS);
    // Another address is not affected, nor is the UI.
    assert_eq!(
        status_from(&app, ip(2), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let ui = app
        .send(
            TestApp::request(Method::GET, "/ui/login", None, ip(1))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(ui.status, StatusCode::OK);
    // A higher limit applies to the very next request, without a restart.
    let raised = set_limits(&app, &admin, json!({"api_per_address": {"burst": 50}})).await;
    assert_eq!(raised.status, StatusCode::OK, "{}", raised.text);
    assert_eq!(
        status_from(&app, ip(1), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // ... and so does a lower one.
    let lowered = set_limits(&app, &admin, json!({"api_per_address": {"burst": 1}})).await;
    assert_eq!(lowered.status, StatusCode::OK, "{}", lowered.text);
    assert_eq!(
        status_from(&app, ip(3), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_from(&app, ip(3), None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Three refusals, each counted once, under the limit that refused it.
    assert_eq!(refusals_counted(&app, "api_address").await, 3);
    assert_eq!(refusals_counted(&app, "api_account").await, 0);
}

async fn one_account_is_limited_across_addresses(app: TestApp) {
    let admin = app.admin().await.token("access_token");
    let changed = set_limits(
        &app,
        &admin,
        json!({"api_per_account": {"per_minute": 60, "burst": 4}}),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let viewer = app
        .user_with_role(&admin, "watcher", "viewer")
        .await
        .token("access_token");
    // One token from two addresses: four in all, wherever they come from.
    for n in 0..4 {
        let from = if n % 2 == 0 { ip(10) } else { ip(11) };
        let answer = status_from(&app, from, Some(&viewer)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert!(header(&answer, "ratelimit-policy").contains("\"api-account\";q=4;w=4"));
    }
    for from in [ip(10), ip(11), ip(12)] {
        let refused = status_from(&app, from, Some(&viewer)).await;
        assert_eq!(
            refused.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            refused.text
        );
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("api-account"),
            "{}",
            refused.text
        );
        assert!(refused.headers.contains_key("retry-after"));
        // The address's own bucket was not charged for the refusal.
        assert_eq!(header(&refused, "x-ratelimit-remaining"), "0");
    }
    // Refused by the account's limit only: the addresses' buckets had room.
    assert_eq!(refusals_counted(&app, "api_account").await, 3);
    assert_eq!(refusals_counted(&app, "api_address").await, 0);
    // The same addresses without the token, and another account, are not affected.
    assert_eq!(
        status_from(&app, ip(10), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_from(&app, ip(11), Some(&admin)).await.status,
        StatusCode::OK
    );
    // A forged token naming the account adds no account bucket (and is refused by the handler,
    // not by the limiter): nobody can spend someone else's allowance without their token.
    let forged = format!("{}x", &viewer[..viewer.len() - 1]);
    assert_eq!(
        status_from(&app, ip(13), Some(&forged)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

fn mcp_ping(from: std::net::IpAddr) -> axum::http::Request<Body> {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}}});
    TestApp::request(Method::POST, "/mcp", None, from)
        .header("host", "127.0.0.1")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn local_mcp_is_limited_per_address_with_a_json_rpc_error(app: TestApp) {
    let admin = app.admin().await.token("access_token");
    let changed = set_limits(
        &app,
        &admin,
        json!({"mcp_per_address": {"per_minute": 60, "burst": 3}}),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    for left in (0..3).rev() {
        let answer = app.send(mcp_ping(LOCAL)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(header(&answer, "x-ratelimit-remaining"), left.to_string());
        assert_eq!(
            header(&answer, "ratelimit-policy"),
            "\"mcp-address\";q=3;w=3"
        );
    }
    // Loopback is not exempt. An MCP client shows a JSON-RPC error body.
    let refused = app.send(mcp_ping(LOCAL)).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text
    );
    assert_eq!(refused.body["jsonrpc"], "2.0");
    assert_eq!(refused.body["id"], Value::Null);
    assert_eq!(refused.body["error"]["code"], -32000);
    assert_eq!(refused.body["error"]["data"]["retry_after"], 1);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit")
    );
    assert_eq!(header(&refused, "retry-after"), "1");
    assert!(header(&refused, "ratelimit").starts_with("\"mcp-address\";r=0;"));
    // The API of the same address has its own bucket, and another address its own.
    assert_eq!(
        status_from(&app, LOCAL, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.send(mcp_ping(ip(20))).await.status, StatusCode::OK);
    assert_eq!(refusals_counted(&app, "mcp_address").await, 1);
    assert_eq!(refusals_counted(&app, "api_address").await, 0);
}

async fn limits_are_read_by_viewers_changed_by_admins_and_validated_whole(app: TestApp) {
    let admin = app.admin().await.token("access_token");
    let viewer = app
        .user_with_role(&admin, "watcher", "viewer")
        .await
        .token("access_token");
    let defaults = app.get("/api/settings/rate-limits", Some(&viewer)).await;
    assert_eq!(defaults.status, StatusCode::OK, "{}", defaults.text);
    assert_eq!(
        defaults.body,
        json!({
            "api_per_address": {"per_minute": 600, "burst": 200},
            "api_per_account": {"per_minute": 600, "burst": 200},
            "mcp_per_address": {"per_minute": 1200, "burst": 300},
        })
    );
    let denied = set_limits(&app, &viewer, json!({"mcp_per_address": {"burst": 1}})).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.get("/api/settings/rate-limits", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Out of range, zero, unknown fields, wrong types: refused, and nothing is half applied.
    for bad in [
        json!({"mcp_per_address": {"burst": 0}}),
        json!({"api_per_address": {"per_minute": 1_000_001}}),
        json!({"api_per_account": {"burst": 100_001}}),
        json!({"api_per_address": {"burst": 10}, "mcp_per_address": {"per_minute": 0}}),
        json!({"api_per_address": {"rate": 10}}),
        json!({"tunnel": {"burst": 10}}),
        json!({"api_per_address": {"burst": -1}}),
        json!({"api_per_address": {"burst": "ten"}}),
    ] {
        let refused = set_limits(&app, &admin, bad.clone()).await;
        assert!(
            refused.status.is_client_error(),
            "{bad}: {} {}",
            refused.status,
            refused.text
        );
        assert!(
            refused.body["error"]["code"].is_string(),
            "{}",
            refused.text
        );
    }
    let after = app.get("/api/settings/rate-limits", Some(&admin)).await;
    assert_eq!(after.body, defaults.body);
    // A change survives a restart (it is in the database) and is in the activity log.
    let changed = set_limits(
        &app,
        &admin,
        json!({"mcp_per_address": {"per_minute": 100}}),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let restarted = app.restarted();
    let read = restarted
        .get("/api/settings/rate-limits", Some(&admin))
        .await;
    assert_eq!(
        read.body["mcp_per_address"],
        json!({"per_minute": 100, "burst": 300})
    );
    let events = app
        .get(
            "/api/activity/logs?action=settings.rate_limits",
            Some(&admin),
        )
        .await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.text);
    assert!(
        events.text.contains("rate limits changed"),
        "{}",
        events.text
    );
}
