//! The activity log: every state change with actor and request id, filters, stats, the live
//! stream, and retention.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use futures_util::StreamExt;
use serde_json::json;

on_both_backends!(
    state_changes_are_recorded_with_actor_and_request_id,
    a_refused_change_leaves_no_audit_row,
    the_live_stream_delivers_matching_events,
    activity_is_read_only_for_viewers_and_validated,
    a_live_stream_ends_when_its_session_does,
);

const CODE: &str = "def main():\n    return 1\n";

async fn state_changes_are_recorded_with_actor_and_request_id(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let request = TestApp::request(Method::POST, "/api/servers", Some(&admin), LOCAL)
        .header("content-type", "application/json")
        .header("x-request-id", "req-create-server-1")
        .body(Body::from(json!({"name": "weather"}).to_string()))
        .unwrap();
    let server = app.send(request).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tool = app.create_tool(&admin, &server, "forecast", CODE).await;
    app.approve_tool(&admin, &tool).await;
    app.post(
        &format!("/api/sandbox/servers/{server}/start"),
        Some(&admin),
        json!({}),
    )
    .await;
    let all = app.get("/api/activity/logs", Some(&admin)).await;
    // Sign-ins are recorded too; this test is about the changes after them.
    let actions: Vec<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .filter(|action| !action.starts_with("auth."))
        .collect();
    assert_eq!(
        actions,
        [
            "server.start",
            "tool.approve",
            "tool.request_publish",
            "tool.create",
            "server.create"
        ],
        "{}",
        all.text
    );
    let created = &all.body["items"][4];
    assert_eq!(all.body["items"][5]["action"], "auth.login");
    assert_eq!(
        (created["actor"].as_str(), created["request_id"].as_str()),
        (Some(ADMIN), Some("req-create-server-1"))
    );
    let approval = &all.body["items"][1];
    assert_eq!(approval["tool_id"], tool.as_str());
    assert_eq!(approval["server_id"], server.as_str());
    assert_eq!(approval["details"]["version"], 1);
    let by_request = app
        .get(
            "/api/activity/logs?request_id=req-create-server-1",
            Some(&admin),
        )
        .await;
    assert_eq!(by_request.body["total"], 1);
    let by_action = app
        .get("/api/activity/logs?action=tool.approve", Some(&admin))
        .await;
    assert_eq!(by_action.body["total"], 1);
    let stats = app.get("/api/activity/stats?period=1h", Some(&admin)).await;
    assert_eq!(stats.body["by_action"]["tool.create"], 1, "{}", stats.text);
    assert_eq!(
        stats.body["by_level"]["info"], 6,
        "five changes and one sign-in"
    );
}

async fn a_refused_change_leaves_no_audit_row(app: TestApp) {
    // A failed sign-in is recorded (anonymous), without the password tried.
    let bootstrap = app.admin().await.token("access_token");
    app.login(ADMIN, "a wrong guess 123").await;
    let failed = app
        .get(
            "/api/activity/logs?action=auth.login_failed",
            Some(&bootstrap),
        )
        .await;
    assert_eq!(failed.body["total"], 1);
    assert_eq!(failed.body["items"][0]["actor"], "anonymous");
    assert!(!failed.text.contains("a wrong guess"), "{}", failed.text);
    let app = app.with_sandbox().await;
    let admin = bootstrap;
    let server = app.create_server(&admin, "weather").await;
    let tool = app.create_tool(&admin, &server, "forecast", CODE).await;
    app.approve_tool(&admin, &tool).await;
    let before = app.count("activity_logs").await;
    let twice = app
        .post(
            &format!("/api/approvals/tools/{tool}/action"),
            Some(&admin),
            json!({"action": "approve"}),
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    let no_reason = app
        .post(
            &format!("/api/approvals/tools/{tool}/action"),
            Some(&admin),
            json!({"action": "reject"}),
        )
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count("activity_logs").await, before);
}

async fn the_live_stream_delivers_matching_events(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let request = TestApp::request(
        Method::GET,
        "/api/activity/stream?action=server.create",
        Some(&admin),
        LOCAL,
    )
    .body(Body::empty())
    .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = response.into_body().into_data_stream();
    // One event that the filter drops, one it passes.
    let server = app.create_server(&admin, "weather").await;
    app.create_tool(&admin, &server, "forecast", CODE).await;
    let mut seen = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(chunk)) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("server.create") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no event arrived: {seen:?}");
    assert!(seen.contains("event: activity"), "{seen}");
    assert!(
        !seen.contains("tool.create"),
        "the filter let another action through: {seen}"
    );
}

async fn activity_is_read_only_for_viewers_and_validated(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let viewer = app
        .user_with_role(&admin, "watcher", "viewer")
        .await
        .token("access_token");
    assert_eq!(
        app.get("/api/activity/logs", Some(&viewer)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/activity/logs", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/activity/stream", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/activity/logs?level=loud", Some(&viewer))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.get("/api/activity/stats?period=1y", Some(&viewer))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Old activity goes with the retention policy.
    app.create_server(&admin, "old").await;
    let old = origin::db::timestamp(chrono::Utc::now() - chrono::Duration::days(40));
    let total = app.count("activity_logs").await;
    sqlx::query("UPDATE activity_logs SET created_at = $1")
        .bind(old)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(
        origin::activity::apply_retention(&app.state.db)
            .await
            .unwrap() as i64,
        total
    );
    assert_eq!(app.count("activity_logs").await, 0);
}

async fn open_stream(app: &TestApp, token: &str) -> axum::body::BodyDataStream {
    let request = TestApp::request(Method::GET, "/api/activity/stream", Some(token), LOCAL)
        .body(Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().into_data_stream()
}

/// Reads a stream until it ends or `wait` passes: whether it ended, and what it sent.
async fn drain(body: &mut axum::body::BodyDataStream, wait: Duration) -> (bool, String) {
    let mut seen = String::new();
    let ended = tokio::time::timeout(wait, async {
        while let Some(Ok(chunk)) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .is_ok();
    (ended, seen)
}

/// A viewer's stream after sign-out, and (separately) after the account is disabled: the next
/// change is not delivered and the stream ends. Before, both kept delivering every event.
async fn a_live_stream_ends_when_its_session_does(app: TestApp) {
    let admin = app.admin().await.token("access_token");
    let mut control = open_stream(&app, &admin).await;
    let viewer = app
        .user_with_role(&admin, "watcher", "viewer")
        .await
        .token("access_token");
    let mut signed_out = open_stream(&app, &viewer).await;
    let out = app.post("/auth/logout", Some(&viewer), json!({})).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text);
    app.create_server(&admin, "after_logout").await;
    let (ended, seen) = drain(&mut signed_out, Duration::from_secs(5)).await;
    assert!(ended, "the stream outlived the sign-out");
    assert!(!seen.contains("after_logout"), "{seen}");

    let again = app.login("watcher", PASSWORD).await.token("access_token");
    let id = app.get("/auth/me", Some(&again)).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut disabled = open_stream(&app, &again).await;
    let patched = app
        .call(
            Method::PATCH,
            &format!("/api/users/{id}"),
            Some(&admin),
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    app.create_server(&admin, "after_disable").await;
    let (ended, seen) = drain(&mut disabled, Duration::from_secs(5)).await;
    assert!(ended, "the stream outlived the account");
    assert!(!seen.contains("after_disable"), "{seen}");

    // The admin's stream is alive and got both changes (they were published).
    let (ended, seen) = drain(&mut control, Duration::from_millis(500)).await;
    assert!(!ended);
    assert!(
        seen.contains("after_logout") && seen.contains("after_disable"),
        "{seen}"
    );
}
