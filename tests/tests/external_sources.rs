//! External MCP sources on the real binary, against a real external MCP server (the official
//! Python SDK's MCPServer, `tests/clients/external_server.py`): discovery, import as passthrough
//! tools, approval, calls through `/mcp` with the source's credential, a source that goes down,
//! and what must be refused.

use std::time::Duration;

use mcpbox_e2e::external::External;
use mcpbox_e2e::mcp::{Mcp, admin_token, api, client, get_json, tool_error};
use mcpbox_e2e::{Origin, ServeOptions};
use serde_json::{Value, json};

async fn send(method: &str, url: &str, body: Value, token: &str) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = client()
        .request(method, url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// A server with a secret holding `value`: its id.
async fn server_with_secret(url: &str, token: &str, name: &str, key: &str, value: &str) -> String {
    let (status, server) = api(
        &format!("{url}/api/servers"),
        json!({"name": name}),
        Some(token),
    )
    .await;
    assert_eq!(status, 201, "{server}");
    let server_id = server["id"].as_str().unwrap().to_owned();
    let secrets = format!("{url}/api/servers/{server_id}/secrets");
    let (status, body) = api(&secrets, json!({"key_name": key}), Some(token)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        "PUT",
        &format!("{secrets}/{key}"),
        json!({"value": value}),
        token,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    server_id
}

/// An admin submits the imported draft for review, then approves it (only a version pending
/// review can be approved).
async fn approve(url: &str, token: &str, tool_id: &str) {
    let action = format!("{url}/api/approvals/tools/{tool_id}/action");
    let (status, body) = api(&action, json!({"action": "submit_for_review"}), Some(token)).await;
    assert_eq!(status, 200, "{body}");
    approve_pending(url, token, tool_id).await;
}

/// Approves the tool's version pending review.
async fn approve_pending(url: &str, token: &str, tool_id: &str) {
    let action = format!("{url}/api/approvals/tools/{tool_id}/action");
    let (status, body) = api(&action, json!({"action": "approve"}), Some(token)).await;
    assert_eq!(status, 200, "{body}");
}

async fn call(mcp: &mut Mcp, name: &str, arguments: Value) -> Value {
    mcp.call("tools/call", json!({"name": name, "arguments": arguments}))
        .await
}

/// The whole loop an admin runs: add a source with a bearer secret, discover, import, approve,
/// call through `/mcp`; then the source goes down and callers get a clear tool error.
#[tokio::test]
async fn an_external_tool_is_imported_approved_and_called_with_the_sources_credential() {
    const SECRET: &str = "s3cret-bearer-value";
    let external = External::start(&[
        "--require-header",
        &format!("authorization=Bearer {SECRET}"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let server_id = server_with_secret(&url, &token, "ext", "API_TOKEN", SECRET).await;

    let (status, source) = api(
        &format!("{url}/api/external-sources/servers/{server_id}/sources"),
        json!({"name": "demo", "url": external.url, "auth_type": "bearer", "auth_secret_name": "API_TOKEN"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{source}");
    assert_eq!(source["status"], "active", "an admin's source is approved");
    assert_eq!(source["auth_secret_name"], "API_TOKEN");
    let source_id = source["id"].as_str().unwrap().to_owned();
    let sources = format!("{url}/api/external-sources/sources/{source_id}");

    let (status, found) = api(&format!("{sources}/discover"), json!({}), Some(&token)).await;
    assert_eq!(status, 200, "{found}");
    assert!(!found.to_string().contains(SECRET), "{found}");
    let mut names: Vec<&str> = found["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["add", "echo", "fail", "headers", "trace_context"],
        "{found}"
    );
    assert_eq!(found["source"]["tool_count"], 5);
    assert_eq!(
        found["source"]["protocol_version"], "2026-07-28",
        "rmcp's client negotiates the newest revision the source speaks"
    );

    let (status, imported) = api(
        &format!("{sources}/import"),
        json!({"tool_names": ["echo", "headers", "fail", "missing"]}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{imported}");
    let ids: Vec<String> = imported["imported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["approval_status"], "draft", "imports need approval: {t}");
            t["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 3, "{imported}");
    assert_eq!(imported["skipped"][0]["remote_tool"], "missing");
    let cached = get_json(&format!("{sources}/cached-tools"), &token).await;
    let echo = cached
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "echo")
        .unwrap();
    assert_eq!(echo["already_imported"], true, "{cached}");

    // Running server, drafts only: nothing of the source is callable.
    let start = format!("{url}/api/sandbox/servers/{server_id}/start");
    let mut mcp = Mcp::session(&format!("{url}/mcp")).await;
    let refused = call(&mut mcp, "ext__demo_echo", json!({"text": "hi"})).await;
    assert!(
        refused.get("error").is_some() || refused["result"]["isError"] == true,
        "an unapproved passthrough tool ran: {refused}"
    );
    for id in &ids {
        approve(&url, &token, id).await;
    }
    let (status, body) = api(&start, json!({}), Some(&token)).await;
    assert_eq!(status, 200, "{body}");

    let listed = mcp.call("tools/list", json!({})).await;
    let echo = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ext__demo_echo")
        .unwrap_or_else(|| panic!("not listed: {listed}"));
    assert_eq!(echo["inputSchema"]["properties"]["text"]["type"], "string");
    assert_eq!(echo["description"], "Returns the text it was given.");

    let answer = call(&mut mcp, "ext__demo_echo", json!({"text": "hi there"})).await;
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "hi there");
    // The source insists on the bearer secret, so answering at all proves it was sent; the
    // value it echoes back is redacted before it reaches the caller.
    let answer = call(&mut mcp, "ext__demo_headers", json!({})).await;
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    let text = answer.to_string();
    assert!(text.contains("Bearer [REDACTED]"), "{text}");
    assert!(
        !text.contains(SECRET),
        "the secret reached the caller: {text}"
    );
    assert!(text.contains("MCPbox/"), "our user agent: {text}");
    let failed = call(&mut mcp, "ext__demo_fail", json!({})).await;
    assert!(tool_error(&failed).contains("always fails"), "{failed}");
    // The calls share one pooled client to the source, which readiness reports.
    let ready = client()
        .get(format!("{url}/health/ready"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(ready["external"]["pooled_clients"], 1, "{ready}");

    // Every passthrough call is in the execution log, with the secret redacted there too.
    let logs = get_json(&format!("{url}/api/tools/{}/logs", ids[1]), &token).await;
    assert!(logs.to_string().contains("REDACTED"), "{logs}");
    assert!(!logs.to_string().contains(SECRET), "{logs}");
    let logs = get_json(&format!("{url}/api/tools/{}/logs", ids[2]), &token).await;
    assert!(logs.to_string().contains("always fails"), "{logs}");

    // The source goes away: a readable tool error naming it, and its status shows it.
    drop(external);
    let began = std::time::Instant::now();
    let down = call(&mut mcp, "ext__demo_echo", json!({"text": "hi"})).await;
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "a down source answers at once"
    );
    let message = tool_error(&down);
    assert!(message.contains("\"demo\""), "{message}");
    let shown = get_json(&sources, &token).await;
    assert_eq!(shown["status"], "error", "{shown}");
    assert!(shown["last_error"].as_str().is_some_and(|e| !e.is_empty()));
    let (status, checked) = api(&format!("{sources}/health"), json!({}), Some(&token)).await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["status"], "error");
    let (status, failed) = api(&format!("{sources}/discover"), json!({}), Some(&token)).await;
    assert_eq!(status, 502, "{failed}");

    // It comes back on another port: the admin points the source there and calls work again
    // (the pooled client notices the new URL).
    let external = External::start(&[
        "--require-header",
        &format!("authorization=Bearer {SECRET}"),
    ]);
    let (status, moved) = send("PUT", &sources, json!({"url": external.url}), &token).await;
    assert_eq!(status, 200, "{moved}");
    let (status, checked) = api(&format!("{sources}/health"), json!({}), Some(&token)).await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["status"], "active", "{checked}");
    assert_eq!(checked["last_error"], Value::Null, "{checked}");
    let answer = call(&mut mcp, "ext__demo_echo", json!({"text": "back"})).await;
    assert_eq!(answer["result"]["content"][0]["text"], "back", "{answer}");

    // Deleting a source deletes its tools.
    let (status, _) = send("DELETE", &sources, json!({}), &token).await;
    assert_eq!(status, 204);
    let (status, _) = send(
        "GET",
        &format!("{url}/api/tools/{}", ids[0]),
        json!({}),
        &token,
    )
    .await;
    assert_eq!(status, 404);
    drop(origin);
}

/// The LLM's path over MCP with a custom-header credential, against a server that only speaks
/// 2025-11-25: a source it adds waits for a person, then its tools are discovered, imported,
/// published, approved and called.
#[tokio::test]
async fn an_llm_adds_a_source_that_waits_for_approval_and_uses_a_custom_header() {
    const KEY: &str = "k3y-for-the-header";
    // A server from before 2026-07-28: MCPbox falls back to a 2025-11-25 session and reuses it.
    let external = External::start(&["--legacy", "--require-header", &format!("x-api-key={KEY}")]);
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let server_id = server_with_secret(&url, &token, "keyed", "API_KEY", KEY).await;
    let mut llm = Mcp::session(&format!("{url}/mcp")).await;
    let ok = |answer: &Value| {
        assert_eq!(answer["result"]["isError"], false, "{answer}");
        answer["result"]["structuredContent"].clone()
    };

    let added = ok(&call(
        &mut llm,
        "mcpbox_add_external_source",
        json!({"server_id": server_id, "name": "maths", "url": external.url,
               "auth_type": "header", "auth_secret_name": "API_KEY", "auth_header_name": "X-Api-Key"}),
    )
    .await);
    assert_eq!(added["status"], "pending_approval", "{added}");
    assert_eq!(added["auth_header_name"], "x-api-key");
    let source_id = added["id"].as_str().unwrap().to_owned();
    // Nothing is sent to a source nobody approved.
    let waiting = call(
        &mut llm,
        "mcpbox_discover_external_tools",
        json!({"source_id": source_id}),
    )
    .await;
    assert!(tool_error(&waiting).contains("approval"), "{waiting}");

    let (status, approved) = api(
        &format!("{url}/api/external-sources/sources/{source_id}/approve"),
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "active");
    let found = ok(&call(
        &mut llm,
        "mcpbox_discover_external_tools",
        json!({"source_id": source_id}),
    )
    .await);
    assert_eq!(found["tool_count"], 5, "{found}");
    let listed = ok(&call(
        &mut llm,
        "mcpbox_list_external_sources",
        json!({"server_id": server_id}),
    )
    .await);
    assert_eq!(
        listed["sources"][0]["protocol_version"], "2025-11-25",
        "{listed}"
    );
    let imported = ok(&call(
        &mut llm,
        "mcpbox_import_external_tools",
        json!({"source_id": source_id, "tool_names": ["add", "headers"]}),
    )
    .await);
    let add = imported["imported"][0]["id"].as_str().unwrap().to_owned();
    let headers = imported["imported"][1]["id"].as_str().unwrap().to_owned();
    assert_eq!(imported["imported"][0]["name"], "maths_add", "{imported}");
    let again = ok(&call(
        &mut llm,
        "mcpbox_import_external_tools",
        json!({"source_id": source_id, "tool_names": ["add"]}),
    )
    .await);
    assert_eq!(again["skipped"][0]["reason"], "already imported");
    // A passthrough tool has no code an LLM could swap in.
    let swapped = call(
        &mut llm,
        "mcpbox_update_tool",
        json!({"tool_id": add, "python_code": "def main():\n    return 1\n"}),
    )
    .await;
    assert!(tool_error(&swapped).contains("passthrough"), "{swapped}");
    let published = ok(&call(&mut llm, "mcpbox_request_publish", json!({"tool_id": add})).await);
    assert_eq!(published["approval_status"], "pending_review");

    approve_pending(&url, &token, &add).await;
    approve(&url, &token, &headers).await;
    let (status, body) = api(
        &format!("{url}/api/sandbox/servers/{server_id}/start"),
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sum = call(&mut llm, "keyed__maths_add", json!({"a": 2, "b": 40})).await;
    assert_eq!(sum["result"]["content"][0]["text"], "42", "{sum}");
    let sent = call(&mut llm, "keyed__maths_headers", json!({})).await;
    assert_eq!(sent["result"]["isError"], false, "{sent}");
    assert!(sent.to_string().contains("[REDACTED]"), "{sent}");
    assert!(!sent.to_string().contains(KEY), "{sent}");
    // A test run goes the same way.
    let tested = ok(&call(
        &mut llm,
        "mcpbox_test_code",
        json!({"tool_id": add, "arguments": {"a": 1, "b": 1}}),
    )
    .await);
    assert_eq!(tested["success"], true, "{tested}");

    let listed = ok(&call(
        &mut llm,
        "mcpbox_list_external_sources",
        json!({"server_id": server_id}),
    )
    .await);
    assert_eq!(listed["sources"][0]["status"], "active", "{listed}");
    assert_eq!(listed["sources"][0]["tool_count"], 5);
    assert!(!listed.to_string().contains(KEY));
    drop(origin);
}

/// What must be refused, each with a 4xx or a tool error and never a 5xx: non-http URLs (over
/// both fronts), credentials in URLs, unknown auth and transports, missing secrets.
#[tokio::test]
async fn bad_sources_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let server_id = server_with_secret(&url, &token, "guarded", "TOKEN", "value-1234").await;
    let create = format!("{url}/api/external-sources/servers/{server_id}/sources");
    let mut llm = Mcp::session(&format!("{url}/mcp")).await;
    for (what, body) in [
        (
            "file URL",
            json!({"name": "a", "url": "file:///etc/passwd"}),
        ),
        (
            "gopher URL",
            json!({"name": "a", "url": "gopher://127.0.0.1:6379/_INFO"}),
        ),
        (
            "unix URL",
            json!({"name": "a", "url": "unix:/var/run/docker.sock"}),
        ),
        (
            "credentials in the URL",
            json!({"name": "a", "url": "http://u:p@127.0.0.1/mcp"}),
        ),
        ("not a URL", json!({"name": "a", "url": "127.0.0.1 mcp"})),
        (
            "a bad name",
            json!({"name": "A B", "url": "http://127.0.0.1/mcp"}),
        ),
        (
            "unknown auth",
            json!({"name": "a", "url": "http://127.0.0.1/mcp", "auth_type": "kerberos"}),
        ),
        (
            "bearer without a secret",
            json!({"name": "a", "url": "http://127.0.0.1/mcp", "auth_type": "bearer"}),
        ),
        (
            "a reserved header",
            json!({"name": "a", "url": "http://127.0.0.1/mcp", "auth_type": "header",
                                      "auth_secret_name": "TOKEN", "auth_header_name": "Host"}),
        ),
        (
            "an unknown transport",
            json!({"name": "a", "url": "http://127.0.0.1/mcp", "transport_type": "websocket"}),
        ),
        (
            "OAuth over the legacy SSE transport",
            json!({"name": "a", "url": "http://127.0.0.1/sse", "transport_type": "sse",
                   "auth_type": "oauth"}),
        ),
        (
            "an unknown field",
            json!({"name": "a", "url": "http://127.0.0.1/mcp", "secret": "x"}),
        ),
    ] {
        let (status, body) = api(&create, body.clone(), Some(&token)).await;
        assert!((400..500).contains(&status), "{what}: {status} {body}");
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
    }
    for bad_url in [
        "file:///etc/passwd",
        "ftp://example.com/",
        "javascript:alert(1)",
    ] {
        let refused = call(
            &mut llm,
            "mcpbox_add_external_source",
            json!({"server_id": server_id, "name": "a", "url": bad_url}),
        )
        .await;
        assert!(tool_error(&refused).contains("URL"), "{bad_url}: {refused}");
    }
    // Unknown ids are 404s on every route.
    for (method, path) in [
        ("GET", "/api/external-sources/sources/nope"),
        ("POST", "/api/external-sources/sources/nope/discover"),
        ("POST", "/api/external-sources/sources/nope/health"),
        ("POST", "/api/external-sources/sources/nope/approve"),
        ("GET", "/api/external-sources/servers/nope/sources"),
    ] {
        let (status, body) = send(method, &format!("{url}{path}"), json!({}), &token).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    let (status, body) = send(
        "POST",
        &format!("{url}/api/external-sources/sources/nope/import"),
        json!({"tool_names": "echo"}),
        &token,
    )
    .await;
    assert!((400..500).contains(&status), "{body}");

    // A bearer source whose secret has no value: a clear conflict, nothing sent.
    let (status, body) = api(
        &format!("{url}/api/servers/{server_id}/secrets"),
        json!({"key_name": "EMPTY"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, source) = api(
        &create,
        json!({"name": "empty", "url": "http://127.0.0.1:9/mcp", "auth_type": "bearer", "auth_secret_name": "EMPTY"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{source}");
    let (status, body) = api(
        &format!(
            "{url}/api/external-sources/sources/{}/discover",
            source["id"].as_str().unwrap()
        ),
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("EMPTY"),
        "{body}"
    );
    // A source that is not there: 502 with the reason, quickly.
    let (status, source) = api(
        &create,
        json!({"name": "nothing", "url": "http://127.0.0.1:9/mcp"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{source}");
    let started = std::time::Instant::now();
    let (status, body) = api(
        &format!(
            "{url}/api/external-sources/sources/{}/discover",
            source["id"].as_str().unwrap()
        ),
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(started.elapsed() < Duration::from_secs(20));
    drop(origin);
}

/// A server that only speaks the legacy HTTP+SSE transport (the Python SDK's `sse_app`, with a
/// bearer secret it insists on): discovered, imported, approved and called through `/mcp`.
#[tokio::test]
async fn a_legacy_sse_source_is_discovered_and_called() {
    const SECRET: &str = "sse-bearer-value";
    let external = External::start(&[
        "--sse",
        "--require-header",
        &format!("authorization=Bearer {SECRET}"),
    ]);
    let sse_url = external.url.replace("/mcp", "/sse");
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let server_id = server_with_secret(&url, &token, "old", "API_TOKEN", SECRET).await;
    let (status, source) = api(
        &format!("{url}/api/external-sources/servers/{server_id}/sources"),
        json!({"name": "legacy", "url": sse_url, "transport_type": "sse",
               "auth_type": "bearer", "auth_secret_name": "API_TOKEN"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{source}");
    assert_eq!(source["transport_type"], "sse", "{source}");
    let sources = format!(
        "{url}/api/external-sources/sources/{}",
        source["id"].as_str().unwrap()
    );
    let (status, found) = api(&format!("{sources}/discover"), json!({}), Some(&token)).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["source"]["tool_count"], 5, "{found}");
    let (status, imported) = api(
        &format!("{sources}/import"),
        json!({"tool_names": ["echo", "add"]}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{imported}");
    for tool in imported["imported"].as_array().unwrap() {
        approve(&url, &token, tool["id"].as_str().unwrap()).await;
    }
    let start = format!("{url}/api/sandbox/servers/{server_id}/start");
    let (status, body) = api(&start, json!({}), Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let mut mcp = Mcp::session(&format!("{url}/mcp")).await;
    let answer = call(&mut mcp, "old__legacy_echo", json!({"text": "over sse"})).await;
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "over sse");
    // The pooled SSE session carries the next call too.
    let answer = call(&mut mcp, "old__legacy_add", json!({"a": 2, "b": 40})).await;
    assert_eq!(answer["result"]["content"][0]["text"], "42", "{answer}");

    // Without the secret the stream is refused, readably.
    let (status, source) = api(
        &format!("{url}/api/external-sources/servers/{server_id}/sources"),
        json!({"name": "nokey", "url": sse_url, "transport_type": "sse"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{source}");
    let (status, failed) = api(
        &format!(
            "{url}/api/external-sources/sources/{}/discover",
            source["id"].as_str().unwrap()
        ),
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 502, "{failed}");
    assert!(failed.to_string().contains("401"), "{failed}");
    drop(origin);
}
