//! External MCP sources in process, on both backends. The external server is a second MCPbox
//! (its `/mcp` on a real socket, with its always-present `mcpbox_*` tools): a real MCP server
//! over Streamable HTTP that needs no sandbox, so the passthrough path is exercised end to end.

mod common;

use axum::http::{Method, StatusCode};
use common::{TestApp, external_mcpbox, on_both_backends};
use serde_json::json;

on_both_backends!(
    a_passthrough_tool_is_approved_versioned_and_run_like_any_tool,
    sources_added_by_admins_are_active_and_bad_input_is_refused,
    a_legacy_sse_source_cannot_send_mcpbox_to_another_origin,
);

async fn a_passthrough_tool_is_approved_versioned_and_run_like_any_tool(app: TestApp) {
    let token = app.admin().await.token("access_token");
    let server = app.create_server(&token, "peer").await;
    let url = external_mcpbox().await;
    let created = app
        .post(
            &format!("/api/external-sources/servers/{server}/sources"),
            Some(&token),
            json!({"name": "other", "url": url}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let source = created.token("id");
    let base = format!("/api/external-sources/sources/{source}");

    let found = app
        .post(&format!("{base}/discover"), Some(&token), json!({}))
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    // The other MCPbox lists every management tool (it is a local caller there).
    let listed = origin::gateway::management::tools().len();
    assert_eq!(found.body["source"]["tool_count"], listed, "{}", found.text);
    assert_eq!(found.body["source"]["protocol_version"], "2026-07-28");
    let imported = app
        .post(
            &format!("{base}/import"),
            Some(&token),
            json!({"tool_names": ["mcpbox_list_servers"]}),
        )
        .await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text);
    assert_eq!(
        imported.body["imported"][0]["name"], "other_mcpbox_list_servers",
        "{}",
        imported.text
    );
    let tool = imported.body["imported"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = app.get(&format!("/api/tools/{tool}"), Some(&token)).await;
    assert_eq!(shown.body["kind"], "passthrough", "{}", shown.text);
    assert_eq!(
        shown.body["latest"]["input_schema"]["properties"]["page"]["type"],
        "integer"
    );

    // A draft does not run, not even as a test.
    let refused = app.test_run(&token, &tool, json!({})).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    app.approve_tool(&token, &tool).await;
    let ran = app.test_run(&token, &tool, json!({"page_size": 5})).await;
    assert_eq!(ran.status, StatusCode::OK, "{}", ran.text);
    assert_eq!(ran.body["success"], true, "{}", ran.text);
    assert!(ran.text.contains("servers"), "{}", ran.text);
    assert_eq!(app.count("execution_logs").await, 1);

    // Versions work without a sandbox: a new description is a new draft; the approved one runs.
    let changed = app
        .call(
            Method::PATCH,
            &format!("/api/tools/{tool}"),
            Some(&token),
            json!({"description": "The other MCPbox's servers"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(changed.body["current_version"], 2);
    let ran = app.test_run(&token, &tool, json!({})).await;
    assert_eq!(ran.body["version"], 1, "{}", ran.text);
    let rolled = app
        .post(
            &format!("/api/tools/{tool}/versions/1/rollback"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(rolled.status, StatusCode::CREATED, "{}", rolled.text);
    // Code cannot be swapped into a passthrough tool.
    let swapped = app
        .call(
            Method::PATCH,
            &format!("/api/tools/{tool}"),
            Some(&token),
            json!({"python_code": "def main():\n    return 1\n"}),
        )
        .await;
    assert_eq!(
        swapped.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        swapped.text
    );

    // A binding edited in storage no longer matches its approved hash: refused.
    sqlx::query("UPDATE tool_versions SET python_code = REPLACE(python_code, 'mcpbox_list_servers', 'mcpbox_delete_server') WHERE tool_id = $1")
        .bind(&tool)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let tampered = app.test_run(&token, &tool, json!({})).await;
    assert_eq!(tampered.status, StatusCode::CONFLICT, "{}", tampered.text);
    assert!(
        tampered.text.contains("changed outside"),
        "{}",
        tampered.text
    );

    let activity = app
        .get("/api/activity/logs?page_size=100", Some(&token))
        .await;
    for action in [
        "external.add",
        "external.discover",
        "external.import",
        "tool.create",
    ] {
        assert!(
            activity.text.contains(action),
            "{action}: {}",
            activity.text
        );
    }
    let deleted = app
        .call(Method::DELETE, &base, Some(&token), json!({}))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    let gone = app.get(&format!("/api/tools/{tool}"), Some(&token)).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

async fn sources_added_by_admins_are_active_and_bad_input_is_refused(app: TestApp) {
    let token = app.admin().await.token("access_token");
    let server = app.create_server(&token, "guarded").await;
    let path = format!("/api/external-sources/servers/{server}/sources");
    let created = app
        .post(
            &path,
            Some(&token),
            json!({"name": "api", "url": "https://mcp.example.com/mcp", "auth_type": "header",
                   "auth_secret_name": "API_KEY", "auth_header_name": "X-Api-Key"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["status"], "active");
    assert_eq!(created.body["approved_by"], "admin");
    let again = app
        .post(
            &path,
            Some(&token),
            json!({"name": "api", "url": "https://x.example/"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    let listed = app.get(&path, Some(&token)).await;
    assert_eq!(
        listed.body[0]["auth_header_name"], "x-api-key",
        "{}",
        listed.text
    );
    let source = format!("/api/external-sources/sources/{}", created.token("id"));
    let moved = app
        .call(
            Method::PUT,
            &source,
            Some(&token),
            json!({"url": "https://mcp2.example.com/mcp", "auth_type": "bearer", "auth_secret_name": "TOKEN"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    assert_eq!(moved.body["url"], "https://mcp2.example.com/mcp");
    assert_eq!(moved.body["auth_type"], "bearer");
    assert_eq!(moved.body["auth_header_name"], serde_json::Value::Null);
    for bad in [
        json!({"url": "gopher://x/"}),
        json!({"auth_secret_name": "OTHER"}),
        json!({"name": "Bad Name"}),
    ] {
        let refused = app
            .call(Method::PUT, &source, Some(&token), bad.clone())
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            refused.text
        );
    }
    let pending = app
        .post(
            &format!(
                "/api/external-sources/sources/{}/approve",
                created.token("id")
            ),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(pending.status, StatusCode::CONFLICT, "{}", pending.text);
    for body in [
        json!({"name": "a", "url": "file:///etc/shadow"}),
        json!({"name": "a", "url": "http://user:pw@10.0.0.1/"}),
        json!({"name": "a"}),
        json!({"name": "a", "url": 5}),
    ] {
        let refused = app.post(&path, Some(&token), body.clone()).await;
        assert!(
            refused.status.is_client_error(),
            "{body}: {} {}",
            refused.status,
            refused.text
        );
        refused.error_code();
    }
    // Viewers see sources but cannot add or discover them.
    let viewer = app
        .user_with_role(&token, "viewer1", "viewer")
        .await
        .token("access_token");
    assert_eq!(app.get(&path, Some(&viewer)).await.status, StatusCode::OK);
    let denied = app
        .post(
            &path,
            Some(&viewer),
            json!({"name": "b", "url": "http://127.0.0.1/"}),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
}

/// The attack on the legacy SSE transport: the source's `endpoint` event names another host, so
/// that MCPbox would POST there (with the source's credential). Refused before any POST; the
/// other host sees nothing.
async fn a_legacy_sse_source_cannot_send_mcpbox_to_another_origin(app: TestApp) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_url = format!("http://{}/messages/", other.local_addr().unwrap());
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { "ok" }
        });
        axum::serve(other, app).await.unwrap();
    });
    let source_server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sse_url = format!("http://{}/sse", source_server.local_addr().unwrap());
    let endpoint = other_url.clone();
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/sse",
            axum::routing::get(move || {
                let endpoint = endpoint.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
                        format!(": hello\n\nevent: endpoint\ndata: {endpoint}\n\n"),
                    )
                }
            }),
        );
        axum::serve(source_server, app).await.unwrap();
    });

    let token = app.admin().await.token("access_token");
    let server = app.create_server(&token, "sse").await;
    let created = app
        .post(
            &format!("/api/external-sources/servers/{server}/sources"),
            Some(&token),
            json!({"name": "old", "url": sse_url, "transport_type": "sse"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["transport_type"], "sse");
    let source = created.token("id");
    let found = app
        .post(
            &format!("/api/external-sources/sources/{source}/discover"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(found.status, StatusCode::BAD_GATEWAY, "{}", found.text);
    assert!(found.text.contains("another origin"), "{}", found.text);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "nothing was posted elsewhere"
    );
    let shown = app
        .get(
            &format!("/api/external-sources/sources/{source}"),
            Some(&token),
        )
        .await;
    assert_eq!(shown.body["status"], "error", "{}", shown.text);
}
