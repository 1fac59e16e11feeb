//! `tools/call` remembers which tool a public name named (`gateway::resolve`): attacked with
//! renames, a new tool under the old name, a disable and a delete, each right after the name was
//! called, so a stale memory would run the wrong tool or refuse the wrong one.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

on_both_backends!(a_remembered_name_follows_renames_disables_and_deletes);

async fn call(app: &TestApp, name: &str) -> Value {
    app.mcp("tools/call", json!({"name": name, "arguments": {}}))
        .await
}

/// The tool's answer, or the protocol error's message, or the tool error's text.
fn answer(message: &Value) -> String {
    if let Some(error) = message["error"]["message"].as_str() {
        return format!("error: {error}");
    }
    if message["result"]["isError"] == true {
        return format!(
            "refused: {}",
            message["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or("")
        );
    }
    message["result"]["structuredContent"]["v"].to_string()
}

async fn approved_running(
    app: &TestApp,
    admin: &str,
    server_name: &str,
    v: i64,
) -> (String, String) {
    let server = app.create_server(admin, server_name).await;
    let code = format!("def main() -> dict:\n    return {{'v': {v}}}\n");
    let tool = app.create_tool(admin, &server, "one", &code).await;
    app.approve_tool(admin, &tool).await;
    let started = app
        .post(
            &format!("/api/sandbox/servers/{server}/start"),
            Some(admin),
            json!({}),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    (server, tool)
}

async fn a_remembered_name_follows_renames_disables_and_deletes(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let (first_server, first_tool) = approved_running(&app, &admin, "alpha", 1).await;
    assert_eq!(answer(&call(&app, "alpha__one").await), "1");
    assert_eq!(answer(&call(&app, "alpha__one").await), "1");

    // The server renamed: the old name names nothing, the new one the same tool.
    let renamed = app
        .call(
            Method::PATCH,
            &format!("/api/servers/{first_server}"),
            Some(&admin),
            json!({"name": "beta"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    let gone = answer(&call(&app, "alpha__one").await);
    assert!(gone.starts_with("error: unknown tool"), "{gone}");
    assert_eq!(answer(&call(&app, "beta__one").await), "1");

    // Another tool under the old name: that one runs, not the one the name used to mean.
    let (_, second_tool) = approved_running(&app, &admin, "alpha", 2).await;
    assert_eq!(answer(&call(&app, "alpha__one").await), "2");
    assert_eq!(answer(&call(&app, "beta__one").await), "1");

    // Disabled right after a call: refused by name, and the refusal logged against that tool.
    let disabled = app
        .call(
            Method::PATCH,
            &format!("/api/tools/{second_tool}"),
            Some(&admin),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text);
    let refused = answer(&call(&app, "alpha__one").await);
    assert!(refused.contains("disabled"), "{refused}");
    let logged = app
        .get(&format!("/api/tools/{second_tool}/logs"), Some(&admin))
        .await;
    assert!(logged.text.contains("disabled"), "{}", logged.text);
    assert_eq!(answer(&call(&app, "beta__one").await), "1");

    // Deleted right after a call: the name names nothing.
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/tools/{first_tool}"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.text);
    let gone = answer(&call(&app, "beta__one").await);
    assert!(gone.starts_with("error: unknown tool"), "{gone}");
}
