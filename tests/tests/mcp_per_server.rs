//! Per-server endpoints (`/servers/{name}/mcp`) on the real binaries: one server's tools under
//! their own names, on both protocol revisions, behind the same guards as `/mcp` on the local
//! and the tunnel listener.

use std::time::Duration;

use mcpbox_e2e::mcp::{
    Mcp, Stream, admin_token, api, approve_and_start, client, draft_tool, get_json, stateless_meta,
};
use mcpbox_e2e::{Origin, ServeOptions};
use serde_json::{Value, json};

/// Every tool name listed (management tools included, which must not be there).
fn all_names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A new server with approved tools, started: its id.
async fn server_with_tools(url: &str, token: &str, server: &str, tools: &[&str]) -> String {
    // Each tool says which server and tool ran, so a call shows where its name resolved.
    let code = |tool: &str| format!("def main() -> str:\n    return '{server}/{tool}'\n");
    let (server_id, first) = draft_tool(url, token, server, tools[0], &code(tools[0])).await;
    let mut ids = vec![first];
    for tool in &tools[1..] {
        let (status, created) = api(
            &format!("{url}/api/servers/{server_id}/tools"),
            json!({"name": tool, "python_code": code(tool)}),
            Some(token),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    for id in &ids[1..] {
        mcpbox_e2e::mcp::submit_and_approve(url, token, id).await;
    }
    approve_and_start(url, token, &server_id, &ids[0]).await;
    server_id
}

fn ran(answer: &Value) -> String {
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .trim_matches('"')
        .to_owned()
}

fn unknown_tool(answer: &Value, name: &str) {
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("unknown tool") && message.contains(name),
        "{message}"
    );
}

async fn post_initialize(url: &str, headers: &[(&'static str, String)]) -> (u16, String) {
    let mut request = client()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "e2e", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

async fn get_stream(url: &str, mcp: &Mcp) -> Stream {
    let response = client()
        .get(url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", mcp.session.clone().unwrap())
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    Stream::follow(response)
}

/// `/servers/alpha/mcp` lists alpha's tools alone, unprefixed, without the management tools;
/// names resolve within alpha only; calls run and are logged as on `/mcp`; unknown servers are
/// 404 (after the Host check); sessions stay on their endpoint; list_changed is per server.
#[tokio::test]
async fn a_per_server_endpoint_serves_one_servers_tools_under_their_own_names() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    server_with_tools(&url, &token, "alpha", &["greet", "echo"]).await;
    let beta = server_with_tools(&url, &token, "beta", &["greet", "only_beta"]).await;
    let alpha_url = format!("{url}/servers/alpha/mcp");
    let beta_url = format!("{url}/servers/beta/mcp");

    let mut session = Mcp::session(&alpha_url).await;
    let mut stateless = Mcp::stateless(&alpha_url);
    let discover = stateless.call("server/discover", json!({})).await;
    assert!(
        discover["result"]["instructions"]
            .as_str()
            .unwrap_or_default()
            .contains("alpha"),
        "{discover}"
    );
    for client in [&mut session, &mut stateless] {
        let listed = client.call("tools/list", json!({})).await;
        assert_eq!(all_names(&listed), ["echo", "greet"], "{listed}");
        // Same-named tools of two servers: each endpoint runs its own.
        assert_eq!(
            ran(&client
                .call("tools/call", json!({"name": "greet", "arguments": {}}))
                .await),
            "alpha/greet"
        );
        // Another server's tool, a prefixed name and a management tool are unknown here.
        for name in [
            "only_beta",
            "alpha__greet",
            "beta__greet",
            "mcpbox_list_servers",
            "mcpbox_call_tool",
        ] {
            let answer = client
                .call("tools/call", json!({"name": name, "arguments": {}}))
                .await;
            unknown_tool(&answer, name);
        }
        // Not even as the fallback's target: the fallback does not exist here.
        let answer = client
            .call(
                "tools/call",
                json!({"name": "mcpbox_call_tool", "arguments": {"name": "greet"}}),
            )
            .await;
        unknown_tool(&answer, "mcpbox_call_tool");
    }
    let mut on_beta = Mcp::stateless(&beta_url);
    assert_eq!(
        all_names(&on_beta.call("tools/list", json!({})).await),
        ["greet", "only_beta"]
    );
    assert_eq!(
        ran(&on_beta
            .call("tools/call", json!({"name": "greet", "arguments": {}}))
            .await),
        "beta/greet"
    );
    // `/mcp` is unchanged: every tool prefixed, the management tools first.
    let everything = all_names(
        &Mcp::stateless(&format!("{url}/mcp"))
            .call("tools/list", json!({}))
            .await,
    );
    assert!(everything[0].starts_with("mcpbox_"), "{everything:?}");
    assert!(
        everything.ends_with(&[
            "alpha__echo".to_owned(),
            "alpha__greet".to_owned(),
            "beta__greet".to_owned(),
            "beta__only_beta".to_owned()
        ]),
        "{everything:?}"
    );
    // The log rows are those of `/mcp`'s calls: the tool's public name and the caller.
    let logs = get_json(&format!("{url}/api/execution-logs"), &token).await;
    assert_eq!(logs["total"], 3, "unknown names run nothing: {logs}");
    assert_eq!(logs["items"][0]["tool_name"], "beta__greet");
    assert_eq!(logs["items"][1]["tool_name"], "alpha__greet");
    assert_eq!(logs["items"][1]["executed_by"], "mcp:local");

    // Unknown, malformed and reserved server names: 404 with a JSON body, on both revisions.
    for name in ["nope", "Bad-Name", "mcpbox", "a__b"] {
        let endpoint = format!("{url}/servers/{name}/mcp");
        let (status, body) = post_initialize(&endpoint, &[]).await;
        assert_eq!(status, 404, "{name}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{body}");
        let response = Mcp::stateless(&endpoint)
            .request("tools/list", &json!({}))
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                "params": {"_meta": stateless_meta()}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{name}");
    }
    // The Host and Origin checks come first: a DNS-rebinding page learns nothing about names.
    for headers in [
        vec![("host", "evil.example".to_owned())],
        vec![("origin", "https://evil.example".to_owned())],
    ] {
        for endpoint in [&alpha_url, &format!("{url}/servers/nope/mcp")] {
            let (status, body) = post_initialize(endpoint, &headers).await;
            assert_eq!(status, 403, "{endpoint} {headers:?}: {body}");
        }
    }

    // A session answers only on the endpoint that opened it.
    for other in [format!("{url}/mcp"), beta_url.clone()] {
        let mut moved = Mcp::session(&alpha_url).await;
        moved.url = other.clone();
        let response = moved
            .request("tools/list", &json!({}))
            .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "an alpha session on {other}");
    }
    let mut global = Mcp::session(&format!("{url}/mcp")).await;
    global.url = alpha_url.clone();
    let response = global
        .request("tools/list", &json!({}))
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        404,
        "an /mcp session on alpha's endpoint"
    );

    // list_changed: stopping beta tells beta's listeners and `/mcp`'s, not alpha's.
    let beta_session = Mcp::session(&beta_url).await;
    let beta_events = get_stream(&beta_url, &beta_session).await;
    let alpha_events = get_stream(&alpha_url, &session).await;
    let mut listen_params = json!({"notifications": {"toolsListChanged": true}});
    listen_params["_meta"] = stateless_meta();
    let listen = stateless
        .request("subscriptions/listen", &listen_params)
        .json(
            &json!({"jsonrpc": "2.0", "id": "listen", "method": "subscriptions/listen",
            "params": listen_params}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(listen.status(), 200);
    let alpha_listen = Stream::follow(listen);
    alpha_listen
        .wait_for("notifications/subscriptions/acknowledged")
        .await;
    let global_events = get_stream(&format!("{url}/mcp"), &global_session(&url).await).await;
    let (status, _) = api(
        &format!("{url}/api/sandbox/servers/{beta}/stop"),
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200);
    beta_events
        .wait_for("notifications/tools/list_changed")
        .await;
    global_events
        .wait_for("notifications/tools/list_changed")
        .await;
    // Give alpha's listeners the same time to (wrongly) hear of it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(alpha_events.count("notifications/tools/list_changed"), 0);
    assert_eq!(alpha_listen.count("notifications/tools/list_changed"), 0);
    // A stopped server's endpoint is still there, with nothing to list; its calls are refused
    // like on `/mcp`.
    assert!(all_names(&on_beta.call("tools/list", json!({})).await).is_empty());
    let refused = on_beta
        .call("tools/call", json!({"name": "greet", "arguments": {}}))
        .await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(
        refused["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("not running"),
        "{refused}"
    );
    // A change to alpha's tools is heard on alpha's endpoint, on both revisions.
    let servers = get_json(&format!("{url}/api/servers"), &token).await;
    let alpha = servers["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "alpha")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = api(
        &format!("{url}/api/sandbox/servers/{alpha}/stop"),
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200);
    alpha_events
        .wait_for("notifications/tools/list_changed")
        .await;
    alpha_listen
        .wait_for("notifications/tools/list_changed")
        .await;
    assert!(all_names(&session.call("tools/list", json!({})).await).is_empty());
    drop(origin);
}

async fn global_session(url: &str) -> Mcp {
    Mcp::session(&format!("{url}/mcp")).await
}

const SERVICE_TOKEN: &str = "4f1c2d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e";

/// On the tunnel listener a per-server endpoint needs the Worker's service token like `/mcp`
/// (and answers nothing, not even whether a server exists, without it), an anonymous caller
/// may only initialise, and a signed-in one sees that server's tools.
#[tokio::test]
async fn the_tunnel_serves_per_server_endpoints_behind_the_service_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServeOptions::new(dir.path());
    options.args = vec!["--tunnel-listen".into(), "127.0.0.1:0".into()];
    options
        .env
        .push(("MCPBOX_SERVICE_TOKEN", SERVICE_TOKEN.into()));
    let origin = Origin::start(options).unwrap();
    let url = origin.url.clone();
    let tunnel = origin.tunnel_url.clone().expect("tunnel listener");
    let token = admin_token(&url).await;
    server_with_tools(&url, &token, "remote", &["echo"]).await;
    server_with_tools(&url, &token, "other", &["echo"]).await;

    let worker = |path: &str, email: Option<&str>| {
        let mut mcp = Mcp::stateless(&format!("{tunnel}{path}"));
        mcp.headers = vec![("x-mcpbox-service-token", SERVICE_TOKEN.to_owned())];
        if let Some(email) = email {
            mcp.headers.push(("x-mcpbox-user-email", email.to_owned()));
        }
        mcp
    };
    let mut alice = worker("/servers/remote/mcp", Some("alice@example.com"));
    assert_eq!(
        all_names(&alice.call("tools/list", json!({})).await),
        ["echo"]
    );
    assert_eq!(
        ran(&alice
            .call("tools/call", json!({"name": "echo", "arguments": {}}))
            .await),
        "remote/echo"
    );
    let logs = get_json(&format!("{url}/api/execution-logs"), &token).await;
    assert_eq!(logs["items"][0]["tool_name"], "remote__echo");
    assert_eq!(logs["items"][0]["executed_by"], "alice@example.com");
    // A 2025-11-25 session through the tunnel too.
    let mut session = Mcp::session_with(
        &format!("{tunnel}/servers/remote/mcp"),
        vec![
            ("x-mcpbox-service-token", SERVICE_TOKEN.to_owned()),
            ("x-mcpbox-user-email", "alice@example.com".to_owned()),
        ],
    )
    .await;
    assert_eq!(
        all_names(&session.call("tools/list", json!({})).await),
        ["echo"]
    );

    let mut anonymous = worker("/servers/remote/mcp", None);
    assert!(anonymous.call("server/discover", json!({})).await["result"].is_object());
    let refused = anonymous.call("tools/list", json!({})).await;
    assert_eq!(refused["error"]["code"], -32600, "{refused}");

    // Without the service token: 403 for a server that exists and for one that does not.
    for path in ["/servers/remote/mcp", "/servers/nope/mcp"] {
        let (status, body) = post_initialize(&format!("{tunnel}{path}"), &[]).await;
        assert_eq!(status, 403, "{path}: {body}");
        let wrong = vec![("x-mcpbox-service-token", "0".repeat(64))];
        let (status, _) = post_initialize(&format!("{tunnel}{path}"), &wrong).await;
        assert_eq!(status, 403, "{path}");
    }
    // With it, an unknown server is 404.
    let (status, body) = post_initialize(
        &format!("{tunnel}/servers/nope/mcp"),
        &[
            ("x-mcpbox-service-token", SERVICE_TOKEN.to_owned()),
            ("x-mcpbox-user-email", "alice@example.com".to_owned()),
        ],
    )
    .await;
    assert_eq!(status, 404, "{body}");
    drop(origin);
}

/// The official MCP Python SDK, pointed at a per-server endpoint, on both revisions: it lists
/// that server's tools under their own names and calls them; a prefixed name is refused.
#[tokio::test]
async fn the_official_python_sdk_uses_a_per_server_endpoint_on_both_revisions() {
    let (python, sdk) = mcpbox_e2e::mcp::python_sdk();
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    server_with_tools(&url, &token, "alpha", &["greet", "echo"]).await;
    server_with_tools(&url, &token, "beta", &["greet"]).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/clients/python_sdk_per_server.py"
    );
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&python)
            .arg(script)
            .arg(format!("{url}/servers/alpha/mcp"))
            .env("PYTHONPATH", &sdk)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the SDK client did not finish in 60 s")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the SDK client failed: {stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        seen["versions"],
        json!(["2025-11-25", mcpbox_e2e::mcp::NEW]),
        "{seen}"
    );
    assert_eq!(
        seen["listed"],
        json!([["echo", "greet"], ["echo", "greet"]])
    );
    for result in seen["results"].as_array().unwrap() {
        assert_eq!(result["is_error"], false, "{seen}");
        assert_eq!(result["text"], "\"alpha/greet\"", "{seen}");
    }
    for refused in seen["refused"].as_array().unwrap() {
        assert!(
            refused
                .as_str()
                .unwrap_or_default()
                .contains("unknown tool"),
            "{seen}"
        );
    }
    let logs = get_json(&format!("{url}/api/execution-logs"), &token).await;
    assert_eq!(logs["total"], 2, "{logs}");
    drop(origin);
}

/// Tool metadata with the official MCP Python SDK, on `/mcp` and the per-server endpoint, on
/// both revisions: it sees the annotations and the output schema, gets `structuredContent`
/// (which the SDK itself checks against that schema), and a result that does not match the
/// schema is a tool error, never one the SDK has to catch.
#[tokio::test]
async fn the_official_python_sdk_sees_output_schemas_annotations_and_structured_content() {
    let (python, sdk) = mcpbox_e2e::mcp::python_sdk();
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let (status, created) = api(
        &format!("{url}/api/servers"),
        json!({"name": "calc"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let server_id = created["id"].as_str().unwrap().to_owned();
    let code = "def main(a: int, b: int) -> int:\n    return a + b if a >= 0 else 'negative'\n";
    let (status, created) = api(
        &format!("{url}/api/servers/{server_id}/tools"),
        json!({"name": "add", "python_code": code, "annotations": {"readOnlyHint": true}}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let tool = created["id"].as_str().unwrap().to_owned();
    approve_and_start(&url, &token, &server_id, &tool).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/clients/python_sdk_metadata.py"
    );
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&python)
            .arg(script)
            .arg(&url)
            .env("PYTHONPATH", &sdk)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the SDK client did not finish in 60 s")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the SDK client failed: {stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    let seen = seen.as_array().unwrap();
    assert_eq!(seen.len(), 4, "{seen:?}");
    for client in seen {
        assert_eq!(
            client["output_schema"],
            json!({"type": "object", "properties": {"result": {"type": "integer"}},
                   "required": ["result"], "x-mcpbox-wrap-result": true}),
            "{client}"
        );
        assert_eq!(client["read_only"], true, "{client}");
        assert_eq!(client["is_error"], false, "{client}");
        assert_eq!(client["structured"], json!({"result": 5}), "{client}");
        assert_eq!(client["text"], "5", "{client}");
        assert_eq!(client["mismatch_is_error"], true, "{client}");
        assert!(
            client["mismatch"]
                .as_str()
                .unwrap()
                .contains("does not match its output schema"),
            "{client}"
        );
    }
    let versions: Vec<&str> = seen
        .iter()
        .map(|c| c["version"].as_str().unwrap())
        .collect();
    assert_eq!(
        versions,
        [
            "2025-11-25",
            mcpbox_e2e::mcp::NEW,
            "2025-11-25",
            mcpbox_e2e::mcp::NEW
        ]
    );
    drop(origin);
}
