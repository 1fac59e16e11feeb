//! `/mcp` on the real binaries, spoken to byte for byte as the Streamable HTTP transport defines
//! it: a 2025-11-25 session with its GET stream, and 2026-07-28 stateless requests with
//! `subscriptions/listen`; and the official MCP Python SDK on both. (The TypeScript SDK and
//! the conformance suite come with the rest of the gateway work.)

use std::time::{Duration, Instant};

use base64::Engine as _;

use mcpbox_e2e::mcp::{
    Mcp, NEW, Stream, admin_token, api, approve_and_start, client, draft_tool, get_json,
    python_sdk, stateless_meta, submit_and_approve, tool_error,
};
use mcpbox_e2e::{Origin, ServeOptions};
use serde_json::{Value, json};

/// The approved tools listed (the `mcpbox_*` management tools are always there too).
fn names(list: &Value) -> Vec<String> {
    let all: Vec<String> = list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        all.iter().any(|n| n == "mcpbox_create_tool"),
        "the management tools are missing: {all:?}"
    );
    all.into_iter()
        .filter(|n| !n.starts_with("mcpbox_"))
        .collect()
}

/// The loop the product exists for: a tool becomes visible to connected clients when it is
/// approved (both protocol revisions hear about it), runs in the sandbox when called, and
/// disappears again when its server stops.
#[tokio::test]
async fn connected_clients_see_a_tool_once_approved_and_can_call_it() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let mcp_url = format!("{url}/mcp");
    let token = admin_token(&url).await;

    let mut session = Mcp::session(&mcp_url).await;
    let get_stream = client()
        .get(&mcp_url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session.session.clone().unwrap())
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(get_stream.status(), 200);
    let session_events = Stream::follow(get_stream);
    let mut stateless = Mcp::stateless(&mcp_url);
    let discover = stateless.call("server/discover", json!({})).await;
    assert!(
        discover["result"]["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!(NEW)),
        "{discover}"
    );
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
    let listen_events = Stream::follow(listen);
    listen_events
        .wait_for("notifications/subscriptions/acknowledged")
        .await;

    assert!(names(&session.call("tools/list", json!({})).await).is_empty());

    // A stopped server with a draft tool: nothing to see.
    let code = "async def main(city: str) -> dict:\n    \"\"\"Say hello.\"\"\"\n    print('hi', city)\n    return {'hello': city}\n";
    let (server, tool) = draft_tool(&url, &token, "weather", "greet", code).await;
    assert!(names(&session.call("tools/list", json!({})).await).is_empty());
    let refused = session
        .call(
            "tools/call",
            json!({"name": "weather__greet", "arguments": {"city": "Oslo"}}),
        )
        .await;
    assert!(tool_error(&refused).contains("not running"), "{refused}");
    assert_eq!(session_events.count("tools/list_changed"), 0);

    // Approval while the server is stopped changes nothing clients see; starting it does, and
    // both clients hear of it; the tool is listed with its schema.
    submit_and_approve(&url, &token, &tool).await;
    assert!(names(&session.call("tools/list", json!({})).await).is_empty());
    let (status, _) = api(
        &format!("{url}/api/sandbox/servers/{server}/start"),
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200);
    session_events
        .wait_for("notifications/tools/list_changed")
        .await;
    listen_events
        .wait_for("notifications/tools/list_changed")
        .await;
    let list = session.call("tools/list", json!({})).await;
    assert_eq!(names(&list), ["weather__greet"]);
    let listed = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "weather__greet")
        .unwrap();
    assert_eq!(listed["description"], "Say hello.");
    assert_eq!(
        listed["inputSchema"]["properties"]["city"]["type"],
        "string"
    );
    assert_eq!(
        names(&stateless.call("tools/list", json!({})).await),
        ["weather__greet"]
    );

    // Calls on both revisions run the approved code in the sandbox.
    for client in [&mut session, &mut stateless] {
        let called = client
            .call(
                "tools/call",
                json!({"name": "weather__greet", "arguments": {"city": "Oslo"}}),
            )
            .await;
        let result = &called["result"];
        assert_eq!(result["isError"], false, "{called}");
        assert_eq!(result["structuredContent"], json!({"hello": "Oslo"}));
        let text: Value =
            serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(text, json!({"hello": "Oslo"}));
        assert_eq!(result["_meta"]["mcpbox/stdout"], "hi Oslo\n");
        assert_eq!(result["_meta"]["mcpbox/version"], 1);
    }
    // A tool failure is a readable tool error, not a protocol error.
    let failed = session
        .call(
            "tools/call",
            json!({"name": "weather__greet", "arguments": {"town": "Oslo"}}),
        )
        .await;
    assert_eq!(failed["result"]["isError"], true, "{failed}");
    let logs = get_json(&format!("{url}/api/execution-logs"), &token).await;
    assert_eq!(
        logs["total"], 4,
        "every call is logged, the refused one too: {logs}"
    );
    assert_eq!(logs["items"][0]["executed_by"], "mcp:local");

    // Bad arguments to a management tool: a readable tool error, nothing created.
    for (arguments, expected) in [
        (
            json!({"server_id": server, "name": "Bad-Name", "python_code": code}),
            "invalid tool name",
        ),
        (
            json!({"server_id": server, "name": "other"}),
            "\"python_code\" is required",
        ),
        (
            json!({"server_id": server, "name": "other", "python_code": "def helper():\n    pass\n"}),
            "main",
        ),
        (
            json!({"server_id": "nope", "name": "other", "python_code": code}),
            "no server",
        ),
    ] {
        let answer = session
            .call(
                "tools/call",
                json!({"name": "mcpbox_create_tool", "arguments": arguments}),
            )
            .await;
        assert_eq!(answer["result"]["isError"], true, "{answer}");
        let text = answer["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains(expected), "{expected:?} not in {text:?}");
    }
    let tools = session
        .call(
            "tools/call",
            json!({"name": "mcpbox_list_tools", "arguments": {"server_id": server}}),
        )
        .await;
    assert_eq!(tools["result"]["structuredContent"]["total"], 1, "{tools}");
    let paged = session
        .call(
            "tools/call",
            json!({"name": "mcpbox_list_servers", "arguments": {"page_size": 1000}}),
        )
        .await;
    assert_eq!(paged["result"]["isError"], true, "{paged}");

    // Unknown names are protocol errors the client can read.
    let unknown = session
        .call(
            "tools/call",
            json!({"name": "weather__nope", "arguments": {}}),
        )
        .await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("weather__nope")
    );

    // Stopping the server hides the tool and tells both clients again; a call is refused.
    let (status, _) = api(
        &format!("{url}/api/sandbox/servers/{server}/stop"),
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while session_events.count("notifications/tools/list_changed") < 2 {
        assert!(Instant::now() < deadline, "no second list_changed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(names(&session.call("tools/list", json!({})).await).is_empty());
    let stopped = session
        .call(
            "tools/call",
            json!({"name": "weather__greet", "arguments": {"city": "Oslo"}}),
        )
        .await;
    assert_eq!(stopped["result"]["isError"], true);
    assert!(
        stopped["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("not running"),
        "{stopped}"
    );
    // The refused call is in the execution log like any other, with the reason.
    let logs = get_json(&format!("{url}/api/execution-logs?success=false"), &token).await;
    let refused = &logs["items"][0];
    assert_eq!(refused["tool_name"], "weather__greet", "{logs}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("refused:"),
        "{logs}"
    );
    drop(origin);
}

/// Guards in front of `/mcp`: Host and Origin allowlists (DNS rebinding, cross-site pages),
/// unknown sessions, and malformed requests — each a 4xx with a message, never a 5xx.
#[tokio::test]
async fn the_mcp_endpoint_refuses_what_it_should_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let mcp_url = format!("{}/mcp", origin.url);
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "e2e", "version": "1"}}});
    let post = |headers: Vec<(&'static str, String)>, body: String| {
        let mut request = client()
            .post(&mcp_url)
            .header("accept", "application/json, text/event-stream");
        if !headers.iter().any(|(name, _)| *name == "content-type") {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move {
            let response = request.body(body).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };

    // A web page that rebinds a name to 127.0.0.1 sends its own Host.
    let (status, _) = post(
        vec![("host", "attacker.example".into())],
        initialize.to_string(),
    )
    .await;
    assert_eq!(status, 403);
    // A page on another site calling from the browser sends its Origin.
    let (status, _) = post(
        vec![("origin", "https://attacker.example".into())],
        initialize.to_string(),
    )
    .await;
    assert_eq!(status, 403);
    // The same request from a loopback page, or from a non-browser client, is fine.
    let port = origin.url.rsplit(':').next().unwrap().to_owned();
    let response = client()
        .post(&mcp_url)
        .header("accept", "application/json, text/event-stream")
        .header("origin", format!("http://localhost:{port}"))
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // A client ends its session; it is gone at once.
    let ended = client()
        .delete(&mcp_url)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    let (status, _) = post(
        vec![
            ("mcp-session-id", session),
            ("mcp-protocol-version", "2025-11-25".into()),
        ],
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string(),
    )
    .await;
    assert_eq!(status, 404);

    // An unknown or expired session: 404, so the client initialises again.
    let (status, text) = post(
        vec![
            ("mcp-session-id", "not-a-session".into()),
            ("mcp-protocol-version", "2025-11-25".into()),
        ],
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(text.contains("Session not found"), "{text}");

    for (what, headers, body) in [
        ("not JSON", vec![], "{not json".to_owned()),
        ("not JSON-RPC", vec![], json!({"hello": 1}).to_string()),
        (
            "a batch",
            vec![],
            json!([initialize.clone(), initialize.clone()]).to_string(),
        ),
        (
            "a wrong content type",
            vec![("content-type", "text/plain".to_owned())],
            initialize.to_string(),
        ),
        (
            "an unknown protocol version",
            vec![("mcp-protocol-version", "1999-01-01".to_owned())],
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}).to_string(),
        ),
        (
            "an oversize body",
            vec![],
            json!({"jsonrpc": "2.0", "id": 4, "method": "initialize",
                   "params": {"pad": "x".repeat(2 << 20)}})
            .to_string(),
        ),
    ] {
        let (status, text) = post(headers, body).await;
        assert!(
            (400..500).contains(&status),
            "{what}: expected a 4xx, got {status} {text}"
        );
        assert!(!text.is_empty(), "{what}: an error needs a message");
    }
    drop(origin);
}

/// The official Python SDK as the client, on 2025-11-25 (session, GET stream) and 2026-07-28
/// (stateless, `subscriptions/listen`): both hear the approval and call the tool.
#[tokio::test]
async fn the_official_python_sdk_runs_the_whole_loop_on_both_revisions() {
    let (python, sdk) = python_sdk();
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let token = admin_token(&origin.url).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/python_sdk_loop.py");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&python)
            .arg(script)
            .arg(&origin.url)
            .arg(&token)
            .env("PYTHONPATH", &sdk)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the SDK client did not finish in 60 s")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the SDK client failed: {stderr}");
    assert!(
        !stderr.contains("failed"),
        "the SDK client warned: {stderr}"
    );
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["versions"], json!(["2025-11-25", NEW]), "{seen}");
    assert_eq!(seen["published"], "pending_review");
    assert_eq!(seen["before"], json!([[], []]));
    assert_eq!(seen["modern_event"], "ToolsListChanged");
    assert_eq!(seen["after"], json!([["sdk__greet"], ["sdk__greet"]]));
    for result in seen["results"].as_array().unwrap() {
        assert_eq!(result["is_error"], false, "{seen}");
        assert_eq!(result["structured"], json!({"hello": "Oslo"}));
    }
    drop(origin);
}

const SERVICE_TOKEN: &str = "4f1c2d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e";

/// `mcpbox serve` with the tunnel listener on a free port behind `SERVICE_TOKEN`.
fn tunnel_options(data_dir: &std::path::Path) -> ServeOptions<'_> {
    let mut options = ServeOptions::new(data_dir);
    options.args = vec!["--tunnel-listen".into(), "127.0.0.1:0".into()];
    options
        .env
        .push(("MCPBOX_SERVICE_TOKEN", SERVICE_TOKEN.into()));
    options
}

/// The tunnel listener (what cloudflared reaches): only requests with the Worker's service token
/// get in (and always do: failures from an address are capped without ever refusing the right
/// token), a caller without an email may only
/// initialise, signed-in users are rate-limited by the policy, and nothing but `/mcp` is served.
#[tokio::test]
async fn the_tunnel_listener_admits_only_the_worker_and_then_only_signed_in_users() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = tunnel_options(dir.path());
    options.env.push((
        "MCPBOX_REMOTE_ALLOWED_EMAILS",
        "alice@example.com, BOB@example.com".into(),
    ));
    options
        .args
        .extend(["--metrics-listen".into(), "127.0.0.1:0".into()]);
    let origin = Origin::start(options).unwrap();
    let url = origin.url.clone();
    let tunnel = origin.tunnel_url.clone().expect("tunnel listener");
    let token = admin_token(&url).await;
    // An approved tool on a running server.
    let code = "def main(n: int) -> int:\n    return n\n";
    let (server, tool) = draft_tool(&url, &token, "remote", "echo", code).await;
    approve_and_start(&url, &token, &server, &tool).await;

    let worker = |email: Option<&str>| {
        let mut headers = vec![("x-mcpbox-service-token", SERVICE_TOKEN.to_owned())];
        if let Some(email) = email {
            headers.push(("x-mcpbox-user-email", email.to_owned()));
        }
        let mut mcp = Mcp::stateless(&format!("{tunnel}/mcp"));
        mcp.headers = headers;
        mcp
    };

    // Signed in through the Worker: list and call; the log names the user.
    let mut alice = worker(Some("Alice@Example.com"));
    let listed = alice.call("tools/list", json!({})).await;
    assert_eq!(names(&listed), ["remote__echo"], "{listed}");
    let called = alice
        .call(
            "tools/call",
            json!({"name": "remote__echo", "arguments": {"n": 7}}),
        )
        .await;
    assert_eq!(called["result"]["content"][0]["text"], "7", "{called}");
    let logs = get_json(&format!("{url}/api/execution-logs"), &token).await;
    assert_eq!(logs["items"][0]["executed_by"], "alice@example.com");

    // LOCAL_ONLY management tools: refused to remote callers until the policy allows it.
    let refused = alice
        .call(
            "tools/call",
            json!({"name": "mcpbox_create_server", "arguments": {"name": "from_afar"}}),
        )
        .await;
    assert!(
        tool_error(&refused).contains("remote_tool_editing"),
        "{refused}"
    );
    let read_only = alice
        .call(
            "tools/call",
            json!({"name": "mcpbox_list_servers", "arguments": {}}),
        )
        .await;
    assert_eq!(
        read_only["result"]["structuredContent"]["total"], 1,
        "{read_only}"
    );
    let enabled = client()
        .patch(format!("{url}/api/settings/security-policy"))
        .bearer_auth(&token)
        .json(&json!({"remote_tool_editing": "enabled"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(enabled, 200);
    let created = alice
        .call(
            "tools/call",
            json!({"name": "mcpbox_create_server", "arguments": {"name": "from_afar"}}),
        )
        .await;
    assert_eq!(created["result"]["isError"], false, "{created}");
    let servers = get_json(&format!("{url}/api/servers"), &token).await;
    assert_eq!(servers["total"], 2, "{servers}");

    // The Worker forwards before sign-in: the handshake works, nothing else does.
    let mut anonymous = worker(None);
    let discover = anonymous.call("server/discover", json!({})).await;
    assert!(discover["result"].is_object(), "{discover}");
    let refused = anonymous.call("tools/list", json!({})).await;
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    assert_eq!(
        refused["error"]["message"],
        "Tool listing requires user authentication"
    );
    let refused = anonymous
        .call(
            "tools/call",
            json!({"name": "remote__echo", "arguments": {"n": 1}}),
        )
        .await;
    assert_eq!(refused["error"]["code"], -32600, "{refused}");

    let raw = |headers: Vec<(&'static str, String)>, path: &'static str| {
        let mut request = client()
            .post(format!("{tunnel}{path}"))
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").is_some();
            (status, retry_after, response.text().await.unwrap())
        }
    };
    let good = || ("x-mcpbox-service-token", SERVICE_TOKEN.to_owned());
    // A malformed email from the Worker is refused, not trusted.
    for email in ["not-an-email", "a@b.c", "x y@z.com", "alice@example"] {
        let (status, _, text) = raw(
            vec![good(), ("x-mcpbox-user-email", email.to_owned())],
            "/mcp",
        )
        .await;
        assert_eq!(status, 400, "{email:?}: {text}");
    }
    // Signed in, but not on the allowlist.
    let (status, _, text) = raw(
        vec![
            good(),
            ("x-mcpbox-user-email", "mallory@example.com".to_owned()),
        ],
        "/mcp",
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("may not use"), "{text}");
    // Only /mcp lives here: the admin API is not reachable through the tunnel.
    let (status, _, _) = raw(vec![good()], "/api/servers").await;
    assert_eq!(status, 404);

    // Per-user rate limit from the policy: 10/min means bursts of 5.
    let (status, _) = client()
        .patch(format!("{url}/api/settings/security-policy"))
        .bearer_auth(&token)
        .json(&json!({"mcp_rate_limit_rpm": 10}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 200);
    let mut bob = worker(Some("bob@example.com"));
    for _ in 0..5 {
        assert!(bob.call("tools/list", json!({})).await["result"].is_object());
    }
    let bob_headers = bob.headers.clone();
    let (status, retry_after, text) = raw(bob_headers, "/mcp").await;
    assert_eq!(status, 429, "{text}");
    assert!(retry_after);
    // Counted as the tunnel's per-user limit.
    let metrics = origin.metrics_url.clone().expect("metrics listener");
    let exposition = client()
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        exposition
            .lines()
            .any(|l| l == r#"mcpbox_rate_limited_total{scope="tunnel_user"} 1"#),
        "{exposition}"
    );
    // Alice has her own budget.
    assert!(alice.call("tools/list", json!({})).await["result"].is_object());

    // No token or a wrong one: 403. Past ten failures a minute from one address they get 429
    // (and no log line each), but the right token is never throttled: fifty wrong tokens from
    // the address the Worker also comes from (cloudflared's) do not lock the Worker out.
    let (status, _, text) = raw(vec![], "/mcp").await;
    assert_eq!(status, 403);
    assert!(text.contains("Authentication failed"), "{text}");
    let almost = format!("{}0", &SERVICE_TOKEN[..SERVICE_TOKEN.len() - 1]);
    let mut refused = Vec::new();
    for _ in 0..50 {
        let (status, retry_after, _) =
            raw(vec![("x-mcpbox-service-token", almost.clone())], "/mcp").await;
        refused.push((status, retry_after));
    }
    assert!(
        refused[..9].iter().all(|r| *r == (403, false)),
        "{refused:?}"
    );
    assert!(
        refused[9..].iter().all(|r| *r == (429, true)),
        "{refused:?}"
    );
    let discover = worker(None).call("server/discover", json!({})).await;
    assert!(discover["result"].is_object(), "{discover}");
    // The failures' log lines are capped too.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let logged = origin
        .log
        .try_iter()
        .filter(|line| line.contains("tunnel request without a valid service token"))
        .count();
    assert!((1..=10).contains(&logged), "{logged} failures logged");
    drop(origin);
}

/// The management tools an LLM uses, end to end over one MCP session: create, inspect, test
/// (refused until approved), ask for network access and review, start, run, read the logs.
#[tokio::test]
async fn an_llm_builds_tests_and_runs_a_tool_with_the_management_tools() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let mut llm = Mcp::session(&format!("{url}/mcp")).await;
    let tool_call = async |llm: &mut Mcp, name: &str, arguments: Value| {
        let answer = llm
            .call("tools/call", json!({"name": name, "arguments": arguments}))
            .await;
        answer["result"].clone()
    };
    let ok = |result: &Value| {
        assert_eq!(result["isError"], false, "{result}");
        result["structuredContent"].clone()
    };

    let server = ok(&tool_call(&mut llm, "mcpbox_create_server", json!({"name": "maths"})).await);
    let server = server["id"].as_str().unwrap().to_owned();
    let code = "def main(a: int, b: int = 2) -> dict:\n    \"\"\"Add two numbers.\"\"\"\n    print('adding')\n    return {'sum': a + b}\n";
    let tool = ok(&tool_call(
        &mut llm,
        "mcpbox_create_tool",
        json!({"server_id": server, "name": "add", "python_code": code}),
    )
    .await);
    assert_eq!(tool["approval_status"], "draft");
    assert_eq!(tool["input_schema"]["required"], json!(["a"]), "{tool}");
    let tool = tool["id"].as_str().unwrap().to_owned();
    let shown = ok(&tool_call(&mut llm, "mcpbox_get_tool", json!({"tool_id": tool})).await);
    assert_eq!(shown["python_code"], code);
    assert_eq!(shown["description"], "Add two numbers.");
    assert_eq!(shown["approved_version"], Value::Null);

    // A draft cannot be test-run: an LLM's test run is checked like a call (server running,
    // tool enabled, approved version), and the server is not running yet.
    let refused = tool_call(
        &mut llm,
        "mcpbox_test_code",
        json!({"tool_id": tool, "arguments": {"a": 1}}),
    )
    .await;
    assert!(tool_error(&json!({"result": refused})).contains("is not running"));
    let asked = ok(&tool_call(
        &mut llm,
        "mcpbox_request_network_access",
        json!({"tool_id": tool, "host": "API.Example.com.", "justification": "fetch rates"}),
    )
    .await);
    assert_eq!(asked["target"], "api.example.com");
    assert_eq!(asked["status"], "pending");
    let shown = ok(&tool_call(&mut llm, "mcpbox_get_server", json!({"server_id": server})).await);
    assert_eq!(shown["tool_count"], 1);
    assert_eq!(shown["tools"][0]["approval_status"], "draft");
    assert_eq!(
        shown["pending_requests"][0]["target"], "api.example.com",
        "{shown}"
    );
    let missing = tool_call(
        &mut llm,
        "mcpbox_request_module",
        json!({"tool_id": tool, "module_name": "json"}),
    )
    .await;
    assert!(tool_error(&json!({"result": missing})).contains("justification"));

    let published =
        ok(&tool_call(&mut llm, "mcpbox_request_publish", json!({"tool_id": tool})).await);
    assert_eq!(published["approval_status"], "pending_review");
    // Starting needs an approved tool; a person approves over the REST API.
    let early = tool_call(
        &mut llm,
        "mcpbox_start_server",
        json!({"server_id": server}),
    )
    .await;
    assert!(tool_error(&json!({"result": early})).contains("approve"));
    let approve = format!("{url}/api/approvals/tools/{tool}/action");
    assert_eq!(
        api(&approve, json!({"action": "approve"}), Some(&token))
            .await
            .0,
        200
    );
    let started = ok(&tool_call(
        &mut llm,
        "mcpbox_start_server",
        json!({"server_id": server}),
    )
    .await);
    assert_eq!(started["status"], "running");

    let tested = ok(&tool_call(
        &mut llm,
        "mcpbox_test_code",
        json!({"tool_id": tool, "arguments": {"a": 40}}),
    )
    .await);
    assert_eq!(tested["success"], true, "{tested}");
    assert_eq!(tested["result"], json!({"sum": 42}));
    let called = ok(&tool_call(&mut llm, "maths__add", json!({"a": 1, "b": 1})).await);
    assert_eq!(called, json!({"sum": 2}));
    let logs = ok(&tool_call(
        &mut llm,
        "mcpbox_get_tool_logs",
        json!({"tool_id": tool, "limit": 5}),
    )
    .await);
    assert_eq!(logs["total"], 2, "{logs}");
    assert_eq!(logs["logs"][0]["arguments"], json!({"a": 1, "b": 1}));
    assert_eq!(logs["logs"][1]["is_test"], true);
    let bad_limit = tool_call(
        &mut llm,
        "mcpbox_get_tool_logs",
        json!({"tool_id": tool, "limit": 500}),
    )
    .await;
    assert!(tool_error(&json!({"result": bad_limit})).contains("limit"));
    let versions = ok(&tool_call(
        &mut llm,
        "mcpbox_list_tool_versions",
        json!({"tool_id": tool}),
    )
    .await);
    assert_eq!(versions["total_versions"], 1);
    assert_eq!(versions["versions"][0]["status"], "approved");
    let secrets = ok(&tool_call(
        &mut llm,
        "mcpbox_list_server_secrets",
        json!({"server_id": server}),
    )
    .await);
    assert_eq!(secrets["secrets"], json!([]));
    // Checking code without saving it.
    let checked = ok(&tool_call(
        &mut llm,
        "mcpbox_validate_code",
        json!({"code": "def main(x: str):\n    return x.__class__\n", "server_id": server}),
    )
    .await);
    assert_eq!(checked["valid"], false);
    assert_eq!(checked["errors"][0]["line"], 2, "{checked}");
    let modules = ok(&tool_call(
        &mut llm,
        "mcpbox_get_server_modules",
        json!({"server_id": server}),
    )
    .await);
    assert!(
        modules["allowed_modules"]
            .as_array()
            .unwrap()
            .contains(&json!("json")),
        "{modules}"
    );
    // Secrets are declared by the LLM, filled in by a person.
    ok(&tool_call(
        &mut llm,
        "mcpbox_create_server_secret",
        json!({"server_id": server, "key": "API_KEY", "description": "rates API"}),
    )
    .await);
    let bad_key = tool_call(
        &mut llm,
        "mcpbox_create_server_secret",
        json!({"server_id": server, "key": "lower case"}),
    )
    .await;
    tool_error(&json!({"result": bad_key}));
    let secrets = ok(&tool_call(
        &mut llm,
        "mcpbox_list_server_secrets",
        json!({"server_id": server}),
    )
    .await);
    assert_eq!(
        secrets["secrets"],
        json!([{"key": "API_KEY", "description": "rates API", "has_value": false}])
    );

    // An edit is a new draft: what runs stays the approved version until a person approves.
    let edited = "def main(a: int, b: int = 2) -> dict:\n    return {'sum': a + b + 100}\n";
    let updated = ok(&tool_call(
        &mut llm,
        "mcpbox_update_tool",
        json!({"tool_id": tool, "python_code": edited, "change_summary": "off by 100"}),
    )
    .await);
    assert_eq!(
        updated["new_version"],
        json!({"version": 2, "approval_status": "draft"})
    );
    let called = ok(&tool_call(&mut llm, "maths__add", json!({"a": 1, "b": 1})).await);
    assert_eq!(called, json!({"sum": 2}));
    let status = ok(&tool_call(&mut llm, "mcpbox_get_tool_status", json!({"tool_id": tool})).await);
    assert_eq!(status["approval_status"], "draft");
    assert_eq!(status["approved_version"], 1);
    assert_eq!(
        status["requests"][0]["target"], "api.example.com",
        "{status}"
    );
    let pending = ok(&tool_call(&mut llm, "mcpbox_list_pending_requests", json!({})).await);
    assert_eq!(
        pending["summary"],
        json!({"tools": 0, "modules": 0, "network": 1, "sources": 0, "total": 1})
    );
    let rolled = ok(&tool_call(
        &mut llm,
        "mcpbox_rollback_tool",
        json!({"tool_id": tool, "version": 1}),
    )
    .await);
    assert_eq!(rolled["version"], 3);
    assert_eq!(rolled["approval_status"], "draft");
    let versions = ok(&tool_call(
        &mut llm,
        "mcpbox_list_tool_versions",
        json!({"tool_id": tool}),
    )
    .await);
    assert_eq!(versions["total_versions"], 3);
    let missing = tool_call(
        &mut llm,
        "mcpbox_rollback_tool",
        json!({"tool_id": tool, "version": 9}),
    )
    .await;
    tool_error(&json!({"result": missing}));

    let stopped =
        ok(&tool_call(&mut llm, "mcpbox_stop_server", json!({"server_id": server})).await);
    assert_eq!(stopped["status"], "stopped");
    let activity = get_json(
        &format!("{url}/api/activity/logs?action=server.start"),
        &token,
    )
    .await;
    assert_eq!(activity["items"][0]["actor"], "mcp:local", "{activity}");
    // Deleting: the tool, then the server.
    ok(&tool_call(&mut llm, "mcpbox_delete_tool", json!({"tool_id": tool})).await);
    let gone = tool_call(&mut llm, "mcpbox_get_tool", json!({"tool_id": tool})).await;
    assert!(tool_error(&json!({"result": gone})).contains("no tool"));
    ok(&tool_call(
        &mut llm,
        "mcpbox_delete_server",
        json!({"server_id": server}),
    )
    .await);
    let servers = get_json(&format!("{url}/api/servers"), &token).await;
    assert_eq!(servers["total"], 0);
    drop(origin);
}

/// Issue #13 (1, 2, 11) over MCP on the real binary, local and through the tunnel: an approval
/// lands on the version the reviewer was shown, never on a draft written after it; an admin's
/// disable and stop hold against every MCP caller (test runs included); an LLM renames no
/// reviewed tool and names no server into the management tools' `mcpbox_` namespace.
#[tokio::test]
async fn an_llm_over_mcp_cannot_get_past_a_review_or_an_admins_kill_switch() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = tunnel_options(dir.path());
    options
        .env
        .push(("MCPBOX_REMOTE_ALLOWED_EMAILS", "alice@example.com".into()));
    let origin = Origin::start(options).unwrap();
    let url = origin.url.clone();
    let tunnel = origin.tunnel_url.clone().expect("tunnel listener");
    let token = admin_token(&url).await;
    let mut local = Mcp::session(&format!("{url}/mcp")).await;
    let mut remote = Mcp::stateless(&format!("{tunnel}/mcp"));
    remote.headers = vec![
        ("x-mcpbox-service-token", SERVICE_TOKEN.to_owned()),
        ("x-mcpbox-user-email", "alice@example.com".to_owned()),
    ];
    let call = async |mcp: &mut Mcp, name: &str, arguments: Value| {
        mcp.call("tools/call", json!({"name": name, "arguments": arguments}))
            .await
    };
    let ok = |answer: &Value| {
        assert_eq!(answer["result"]["isError"], false, "{answer}");
        answer["result"]["structuredContent"].clone()
    };
    let admin = async |method: &str, path: &str, body: Value| -> (u16, Value) {
        let response = client()
            .request(method.parse().unwrap(), format!("{url}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    };

    // The LLM asks for review of version 1, then writes version 2 before anyone looked.
    let server = ok(&call(&mut local, "mcpbox_create_server", json!({"name": "shop"})).await);
    let server = server["id"].as_str().unwrap().to_owned();
    let v1 = "def main() -> dict:\n    return {'v': 1}\n";
    let v2 = "def main() -> dict:\n    return {'v': 2, 'stolen': True}\n";
    let tool = ok(&call(
        &mut local,
        "mcpbox_create_tool",
        json!({"server_id": server, "name": "price", "python_code": v1}),
    )
    .await);
    let tool = tool["id"].as_str().unwrap().to_owned();
    ok(&call(
        &mut local,
        "mcpbox_request_publish",
        json!({"tool_id": tool}),
    )
    .await);
    let updated = ok(&call(
        &mut local,
        "mcpbox_update_tool",
        json!({"tool_id": tool, "python_code": v2}),
    )
    .await);
    assert_eq!(updated["new_version"]["approval_status"], "draft");
    // The approver sees version 1 and approves by tool id, in bulk: version 1 is approved.
    let (_, queue) = admin("GET", "/api/approvals/tools", json!(null)).await;
    assert_eq!(queue["items"][0]["version"], 1, "{queue}");
    let (status, draft) = admin(
        "POST",
        &format!("/api/approvals/tools/{tool}/action"),
        json!({"action": "approve", "version": 2}),
    )
    .await;
    assert_eq!(status, 409, "{draft}");
    let (status, bulk) = admin(
        "POST",
        "/api/approvals/tools/bulk-action",
        json!({"tool_ids": [tool], "action": "approve"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(bulk[0]["version"], 1, "{bulk}");
    let started = ok(&call(
        &mut local,
        "mcpbox_start_server",
        json!({"server_id": server}),
    )
    .await);
    assert_eq!(started["status"], "running");
    for mcp in [&mut local, &mut remote] {
        let called = ok(&call(&mut *mcp, "shop__price", json!({})).await);
        assert_eq!(called, json!({"v": 1}), "version 2 ran");
    }

    // The admin disables the tool: no test run, no re-enabling over MCP.
    let (status, _) = admin(
        "PATCH",
        &format!("/api/tools/{tool}"),
        json!({"enabled": false}),
    )
    .await;
    assert_eq!(status, 200);
    for mcp in [&mut local, &mut remote] {
        let refused = call(&mut *mcp, "mcpbox_test_code", json!({"tool_id": tool})).await;
        assert!(tool_error(&refused).contains("disabled"), "{refused}");
    }
    let refused = call(
        &mut local,
        "mcpbox_update_tool",
        json!({"tool_id": tool, "enabled": true}),
    )
    .await;
    assert!(
        tool_error(&refused).contains("only an admin can enable"),
        "{refused}"
    );
    let (status, _) = admin(
        "PATCH",
        &format!("/api/tools/{tool}"),
        json!({"enabled": true}),
    )
    .await;
    assert_eq!(status, 200);

    // The admin stops the server: no MCP caller test-runs its tools or starts it again.
    let (status, stopped) = admin(
        "POST",
        &format!("/api/sandbox/servers/{server}/stop"),
        json!({}),
    )
    .await;
    assert_eq!((status, &stopped["stopped_by_admin"]), (200, &json!(true)));
    for mcp in [&mut local, &mut remote] {
        let refused = call(&mut *mcp, "mcpbox_test_code", json!({"tool_id": tool})).await;
        assert!(tool_error(&refused).contains("not running"), "{refused}");
        let refused = call(
            &mut *mcp,
            "mcpbox_start_server",
            json!({"server_id": server}),
        )
        .await;
        assert!(
            tool_error(&refused).contains("only an admin can start it again"),
            "{refused}"
        );
    }
    let (_, shown) = admin("GET", &format!("/api/servers/{server}"), json!(null)).await;
    assert_eq!(shown["status"], "stopped");

    // Names: no rename of the approved tool over MCP, no server in the mcpbox_ namespace.
    let refused = call(
        &mut local,
        "mcpbox_update_tool",
        json!({"tool_id": tool, "name": "free"}),
    )
    .await;
    assert!(
        tool_error(&refused).contains("only an admin can rename"),
        "{refused}"
    );
    for name in ["mcpbox", "mcpbox_shop"] {
        let refused = call(&mut local, "mcpbox_create_server", json!({"name": name})).await;
        assert!(tool_error(&refused).contains("reserved"), "{refused}");
        let (status, _) = admin("POST", "/api/servers", json!({"name": name})).await;
        assert_eq!(status, 422, "{name}");
    }
    drop(origin);
}

/// An `initialize` straight over HTTP with extra headers; returns (status, session id, body).
async fn initialize_raw(
    url: &str,
    headers: &[(&'static str, String)],
    client_info: Value,
) -> (u16, Option<String>, String) {
    let mut request = client()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": client_info}});
    let response = request.json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, session, response.text().await.unwrap())
}

/// A session's GET stream, followed in the background.
async fn open_stream(url: &str, mcp: &Mcp) -> Stream {
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

async fn ready_mcp(url: &str) -> Value {
    let ready = client()
        .get(format!("{url}/health/ready"))
        .send()
        .await
        .unwrap();
    ready.json::<Value>().await.unwrap()["mcp"].clone()
}

/// Issue 13, finding 6: what MCP clients can make the server hold is bounded. Sessions are
/// capped (503 beyond, stateless requests unaffected), a deleted session's list_changed task lets
/// go of it, idle sessions expire on the client's inactivity even while tools keep changing
/// (an open GET stream keeps its session), and bodies are held to the documented 1 MiB (64 KiB
/// for an `initialize`, whose params live as long as the session).
#[tokio::test]
async fn mcp_sessions_and_bodies_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServeOptions::new(dir.path());
    options.args = vec![
        "--mcp-max-sessions".into(),
        "3".into(),
        "--mcp-session-idle-timeout".into(),
        "2".into(),
    ];
    let origin = Origin::start(options).unwrap();
    let url = origin.url.clone();
    let mcp_url = format!("{url}/mcp");
    let token = admin_token(&url).await;
    let info = json!({"name": "e2e", "version": "1"});

    // The cap: three sessions, then a readable 503 with Retry-After; stateless still works.
    // (Each holds its GET stream open, so none of them is idle however slow this machine is.)
    let mut held = Vec::new();
    for _ in 0..3 {
        let mcp = Mcp::session(&mcp_url).await;
        open_stream(&mcp_url, &mcp).await;
        held.push(mcp);
    }
    let (status, session, body) = initialize_raw(&mcp_url, &[], info.clone()).await;
    assert_eq!(status, 503, "{body}");
    assert!(session.is_none());
    let refused: Value = serde_json::from_str(&body).unwrap();
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3 open MCP sessions"),
        "{refused}"
    );
    let mut stateless = Mcp::stateless(&mcp_url);
    let listed = stateless.call("tools/list", json!({})).await;
    assert!(listed["result"]["tools"].is_array(), "{listed}");
    assert_eq!(ready_mcp(&url).await["sessions_open"], 3);

    // A deleted session frees its place and, within a few seconds, its list_changed task.
    for mcp in held.drain(..) {
        let deleted = client()
            .delete(&mcp_url)
            .header("mcp-session-id", mcp.session.clone().unwrap())
            .send()
            .await
            .unwrap()
            .status();
        assert!(deleted.is_success(), "{deleted}");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let figures = ready_mcp(&url).await;
        if figures["sessions_open"] == 0 && figures["list_changed_watchers"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "still held: {figures}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Idle expiry counts the client's requests only: tool-list changes every 300 ms for 5 s do
    // not keep an idle session alive, while a session with its GET stream open survives.
    let idle = Mcp::session(&mcp_url).await;
    let mut listening = Mcp::session(&mcp_url).await;
    let stream = open_stream(&mcp_url, &listening).await;
    let code = "def main() -> int:\n    return 1\n";
    let (server, tool) = draft_tool(&url, &token, "churn", "one", code).await;
    approve_and_start(&url, &token, &server, &tool).await;
    let started = Instant::now();
    let mut running = true;
    while started.elapsed() < Duration::from_secs(5) {
        let action = if running { "stop" } else { "start" };
        let (status, body) = api(
            &format!("{url}/api/sandbox/servers/{server}/{action}"),
            json!({}),
            Some(&token),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        running = !running;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        stream.count("list_changed") > 0,
        "the GET stream heard nothing"
    );
    let expired = idle
        .request("tools/list", &json!({}))
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(expired, 404, "an idle session outlived its timeout");
    let alive = listening.call("tools/list", json!({})).await;
    assert!(alive["result"]["tools"].is_array(), "{alive}");

    // Bodies: 1 MiB at most on /mcp (rmcp alone took 4 MiB), 64 KiB for an initialize.
    let big = "x".repeat(1024 * 1024 + 1);
    let too_big = client()
        .post(&mcp_url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", NEW)
        .header("mcp-method", "tools/list")
        .body(format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"pad":"{big}"}}}}"#
        ))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(too_big, 413);
    let padded = json!({"name": "e2e", "version": "1", "pad": "y".repeat(100 * 1024)});
    let (status, session, body) = initialize_raw(&mcp_url, &[], padded).await;
    assert_eq!(status, 413, "{body}");
    assert!(session.is_none());

    // Code sent for validation is capped like saved code (it went to the sandbox at 3 MB).
    let mut llm = Mcp::stateless(&mcp_url);
    let huge = format!(
        "def main() -> int:\n    return 1\n#{}\n",
        "z".repeat(200 * 1024)
    );
    let checked = llm
        .call(
            "tools/call",
            json!({"name": "mcpbox_validate_code", "arguments": {"code": huge}}),
        )
        .await;
    assert!(
        tool_error(&checked).contains("larger than 100 KB"),
        "{checked}"
    );
}

/// Issue 13, finding 10: through the tunnel, a session answers only the user who opened it, and
/// a remote user reads only their own calls in `mcpbox_get_tool_logs`.
#[tokio::test]
async fn remote_users_cannot_use_each_others_sessions_or_read_each_others_calls() {
    let dir = tempfile::tempdir().unwrap();
    let options = tunnel_options(dir.path());
    let origin = Origin::start(options).unwrap();
    let url = origin.url.clone();
    let tunnel = format!("{}/mcp", origin.tunnel_url.clone().unwrap());
    let token = admin_token(&url).await;
    let code = "def main(note: str) -> str:\n    return 'ok'\n";
    let (server, tool) = draft_tool(&url, &token, "notes", "keep", code).await;
    approve_and_start(&url, &token, &server, &tool).await;
    let as_user = |email: &str| {
        vec![
            ("x-mcpbox-service-token", SERVICE_TOKEN.to_owned()),
            ("x-mcpbox-user-email", email.to_owned()),
        ]
    };

    let mut alice = Mcp::session_with(&tunnel, as_user("alice@example.com")).await;
    let called = alice
        .call(
            "tools/call",
            json!({"name": "notes__keep", "arguments": {"note": "alice-private-words"}}),
        )
        .await;
    assert_eq!(called["result"]["isError"], false, "{called}");

    // Bob with Alice's session id: the same 404 as an unknown session, and nothing runs.
    let bob_in_alices = Mcp {
        url: tunnel.clone(),
        session: alice.session.clone(),
        next_id: 100,
        http: client(),
        headers: as_user("bob@example.com"),
    };
    let stolen = bob_in_alices
        .request("tools/list", &json!({}))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(stolen, 404);
    let stolen_stream = client()
        .get(&tunnel)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", alice.session.clone().unwrap())
        .header("x-mcpbox-service-token", SERVICE_TOKEN)
        .header("x-mcpbox-user-email", "bob@example.com")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(stolen_stream, 404);
    // Alice's session still works for Alice.
    let mine = alice.call("tools/list", json!({})).await;
    assert!(mine["result"]["tools"].is_array(), "{mine}");

    // The logs: Bob sees none of Alice's arguments; Alice sees her call; the admin sees all.
    let logs_request = json!({"name": "mcpbox_get_tool_logs", "arguments": {"tool_id": tool}});
    let mut bob = Mcp::stateless(&tunnel);
    bob.headers = as_user("bob@example.com");
    let seen_by_bob = bob.call("tools/call", logs_request.clone()).await;
    assert_eq!(seen_by_bob["result"]["isError"], false, "{seen_by_bob}");
    assert_eq!(
        seen_by_bob["result"]["structuredContent"]["total"], 0,
        "{seen_by_bob}"
    );
    assert!(!seen_by_bob.to_string().contains("alice-private-words"));
    let seen_by_alice = alice.call("tools/call", logs_request).await;
    assert_eq!(
        seen_by_alice["result"]["structuredContent"]["total"], 1,
        "{seen_by_alice}"
    );
    assert!(seen_by_alice.to_string().contains("alice-private-words"));
    let all = get_json(&format!("{url}/api/tools/{tool}/logs"), &token).await;
    assert_eq!(all["total"], 1, "{all}");
}

/// SEP-2243 on 2026-07-28 requests: `Mcp-Method` and `Mcp-Name` must be there and agree with
/// the body, and a management tool's `server_id` (annotated `x-mcp-header: Server-Id`) must
/// travel as `Mcp-Param-Server-Id` too; a refusal is HTTP 400 with JSON-RPC -32020 and runs
/// nothing. 2025-11-25 sessions need none of it, and see the schemas as before.
#[tokio::test]
async fn stateless_requests_whose_headers_disagree_with_the_body_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let code = "def main(word: str) -> dict:\n    \"\"\"Echo.\"\"\"\n    return {'w': word}\n";
    let (server, tool) = draft_tool(&url, &token, "hdr", "echo", code).await;
    approve_and_start(&url, &token, &server, &tool).await;
    let mcp_url = format!("{url}/mcp");
    let http = client();
    let post = |headers: Vec<(&'static str, String)>, body: Value| {
        let mut request = http
            .post(&mcp_url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", NEW);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move {
            let response = request.body(body.to_string()).send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let answer = mcpbox_e2e::mcp::message_with_id(&text, &json!(7)).unwrap_or(Value::Null);
            (status, answer, text)
        }
    };
    let request = |method: &str, params: Value| {
        let mut params = params;
        params["_meta"] = stateless_meta();
        json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    };
    let refused = |(status, answer, text): (u16, Value, String), what: &str| {
        assert_eq!(status, 400, "{what}: {text}");
        assert_eq!(answer["error"]["code"], -32020, "{what}: {text}");
    };
    let list = request("tools/list", json!({}));
    let echo = request(
        "tools/call",
        json!({"name": "hdr__echo", "arguments": {"word": "hi"}}),
    );
    let list_tools = request(
        "tools/call",
        json!({"name": "mcpbox_list_tools", "arguments": {"server_id": server}}),
    );
    let method = |m: &str| ("mcp-method", m.to_owned());
    let name = |n: &str| ("mcp-name", n.to_owned());

    // Mcp-Method missing, different, or different only in case (values are case-sensitive).
    refused(post(vec![], list.clone()).await, "no Mcp-Method");
    refused(
        post(vec![method("prompts/list")], list.clone()).await,
        "wrong method",
    );
    refused(
        post(vec![method("TOOLS/LIST")], list.clone()).await,
        "method in upper case",
    );
    refused(
        post(
            vec![method("tools/list"), method("tools/list")],
            list.clone(),
        )
        .await,
        "Mcp-Method twice",
    );
    // Header *names* are case-insensitive.
    for header in ["mcp-method", "MCP-METHOD", "Mcp-Method"] {
        let (status, answer, text) = post(vec![(header, "tools/list".into())], list.clone()).await;
        assert_eq!(status, 200, "{header}: {text}");
        assert!(answer["result"]["tools"].is_array(), "{header}: {text}");
    }
    // Mcp-Name missing or naming another tool than the body: nothing runs.
    refused(
        post(vec![method("tools/call")], echo.clone()).await,
        "no Mcp-Name",
    );
    refused(
        post(
            vec![method("tools/call"), name("mcpbox_list_servers")],
            echo.clone(),
        )
        .await,
        "Mcp-Name of another tool",
    );
    refused(
        post(vec![method("tools/call"), name("HDR__ECHO")], echo.clone()).await,
        "Mcp-Name in another case",
    );
    refused(
        post(
            vec![method("resources/read"), name("file:///other")],
            request("resources/read", json!({"uri": "file:///etc/passwd"})),
        )
        .await,
        "resources/read with another uri",
    );
    refused(
        post(
            vec![method("prompts/get")],
            request("prompts/get", json!({"name": "p"})),
        )
        .await,
        "prompts/get without Mcp-Name",
    );
    // A notification is checked the same way (no id to answer with, still 400).
    let (status, _, text) = post(
        vec![method("notifications/initialized")],
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
               "params": {"requestId": 1, "_meta": stateless_meta()}}),
    )
    .await;
    assert_eq!(status, 400, "notification with another Mcp-Method: {text}");
    // A batch is not a 2026-07-28 message at all.
    let (status, _, text) = post(
        vec![method("tools/list")],
        json!([list.clone(), list.clone()]),
    )
    .await;
    assert!((400..500).contains(&status), "a batch: {status} {text}");
    let (status, answer, text) =
        post(vec![method("tools/call"), name("hdr__echo")], echo.clone()).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        answer["result"]["structuredContent"],
        json!({"w": "hi"}),
        "{text}"
    );
    // Surrounding whitespace is not part of a field value (RFC 9110 5.5).
    let (status, _, text) = post(
        vec![method("tools/call"), name("  hdr__echo  ")],
        echo.clone(),
    )
    .await;
    assert_eq!(status, 200, "{text}");

    // The management tools list `x-mcp-header: Server-Id` on `server_id`; a stored tool's
    // schema has no annotation to list.
    let (_, listed, _) = post(vec![method("tools/list")], list.clone()).await;
    let tools = listed["result"]["tools"].as_array().unwrap();
    let schema_of = |tool: &str| {
        tools
            .iter()
            .find(|t| t["name"] == tool)
            .unwrap_or_else(|| panic!("{tool} not listed"))["inputSchema"]
            .clone()
    };
    assert_eq!(
        schema_of("mcpbox_list_tools")["properties"]["server_id"]["x-mcp-header"],
        "Server-Id"
    );
    assert!(!schema_of("hdr__echo").to_string().contains("x-mcp-header"));
    // Missing, different, or badly encoded Mcp-Param-Server-Id: refused.
    let call_headers = || vec![method("tools/call"), name("mcpbox_list_tools")];
    refused(
        post(call_headers(), list_tools.clone()).await,
        "no Mcp-Param-Server-Id",
    );
    let mut wrong = call_headers();
    wrong.push(("mcp-param-server-id", "someone-else".into()));
    refused(post(wrong, list_tools.clone()).await, "another server id");
    let mut bad = call_headers();
    bad.push(("mcp-param-server-id", "=?base64?!!!?=".into()));
    refused(post(bad, list_tools.clone()).await, "invalid Base64");
    let mut extra = call_headers();
    extra.push(("mcp-param-server-id", server.clone()));
    let without = request(
        "tools/call",
        json!({"name": "mcpbox_list_tools", "arguments": {}}),
    );
    refused(post(extra, without).await, "header without the argument");
    // Plain and Base64-encoded, the same id passes.
    let encoded = format!(
        "=?base64?{}?=",
        base64::engine::general_purpose::STANDARD.encode(&server)
    );
    for value in [server.clone(), encoded] {
        let mut good = call_headers();
        good.push(("Mcp-Param-Server-Id", value.clone()));
        let (status, answer, text) = post(good, list_tools.clone()).await;
        assert_eq!(status, 200, "{value}: {text}");
        assert_eq!(
            answer["result"]["structuredContent"]["tools"][0]["name"], "echo",
            "{value}: {text}"
        );
    }

    // 2025-11-25: no standard headers needed, and no annotation listed.
    let mut session = Mcp::session(&mcp_url).await;
    let listed = session.call("tools/list", json!({})).await;
    assert!(!listed.to_string().contains("x-mcp-header"), "{listed}");
    let answer = session
        .call(
            "tools/call",
            json!({"name": "mcpbox_list_tools", "arguments": {"server_id": server}}),
        )
        .await;
    assert_eq!(
        answer["result"]["structuredContent"]["tools"][0]["name"], "echo",
        "{answer}"
    );
    drop(origin);
}
