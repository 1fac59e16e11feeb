//! The `mcpbox_*` management tools as MCP lists them, against a fixture generated once from the
//! hand-written list they replaced: names, order, descriptions, annotations and every
//! parameter's name, type, bounds and default are contracts LLM prompts rely on.

mod common;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use common::*;
use origin::gateway::management;
use origin::gateway::tunnel::EmailAllowlist;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

on_both_backends!(mcpbox_call_tool_is_a_tools_call_of_the_tool_it_names);

/// Where the fixture lives (generated from the hand-written list before the typed tools).
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/management_tools.json"
);

/// What of a listed tool is a contract, in a spelling-independent form: required as a sorted
/// set, each property's keywords that carry meaning (not how a generator spells the rest).
fn semantic(tool: &rmcp::model::Tool) -> Value {
    let schema = Value::Object((*tool.input_schema).clone());
    assert_eq!(schema["type"], "object", "{}: {schema}", tool.name);
    let mut required: Vec<String> = schema["required"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    required.sort();
    let mut properties = Map::new();
    if let Some(listed) = schema["properties"].as_object() {
        for (name, property) in listed {
            let mut kept = Map::new();
            for keyword in [
                "type",
                "minimum",
                "maximum",
                "default",
                "enum",
                "description",
            ] {
                if let Some(value) = property.get(keyword) {
                    kept.insert(keyword.to_owned(), value.clone());
                }
            }
            if let Some(items) = property.get("items") {
                kept.insert("items_type".to_owned(), items["type"].clone());
            }
            properties.insert(name.clone(), Value::Object(kept));
        }
    }
    let annotations = tool.annotations.as_ref();
    json!({
        "name": tool.name,
        "description": tool.description,
        "read_only": annotations.and_then(|a| a.read_only_hint),
        "destructive": annotations.and_then(|a| a.destructive_hint),
        "open_world": annotations.and_then(|a| a.open_world_hint),
        "required": required,
        "properties": properties,
    })
}

#[test]
fn the_management_tools_keep_their_names_parameters_and_order() {
    // The 34 of the fixture (the reference's 28, then the six prompt and resource tools of
    // issue #16, added to the fixture deliberately), then `mcpbox_call_tool` (checked below),
    // and nothing else.
    let names: Vec<String> = management::tools()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names.len(), 35, "{names:?}");
    assert_eq!(names[34], management::CALL_TOOL);
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    let listed: Vec<Value> = management::tools().iter().map(semantic).collect();
    let expected = fixture["tools"].as_array().unwrap();
    assert_eq!(expected.len(), 34);
    for (index, expected) in expected.iter().enumerate() {
        assert_eq!(
            listed.get(index),
            Some(expected),
            "tool {index} ({}) changed",
            expected["name"]
        );
    }
    assert_eq!(
        json!(management::LOCAL_ONLY),
        fixture["local_only"],
        "the LOCAL_ONLY list changed"
    );
}

#[test]
fn mcpbox_call_tool_takes_a_name_and_optional_arguments() {
    let listed = management::tools();
    let call_tool = listed
        .iter()
        .find(|t| t.name == management::CALL_TOOL)
        .unwrap();
    assert_eq!(
        semantic(call_tool)["properties"],
        json!({"name": {"type": "string"}, "arguments": {"type": "object"}})
    );
    assert_eq!(semantic(call_tool)["required"], json!(["name"]));
    // It can run any tool: no hint that it is harmless.
    assert_eq!(semantic(call_tool)["read_only"], false);
    assert!(!management::LOCAL_ONLY.contains(&management::CALL_TOOL));
}

const ECHO: &str = "def main(n: int) -> dict:\n    return {'n': n}\n";
const SERVICE_TOKEN: &str = "a-service-token-of-the-tunnel-listener-0123456789";

/// One 2026-07-28 stateless JSON-RPC request to the tunnel listener's `/mcp`, as the Worker
/// forwards it for `email`: the JSON-RPC answer.
async fn remote(tunnel: &Router, email: &str, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/mcp")
        .header("host", "mcp-gateway:8002")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .header("x-mcpbox-service-token", SERVICE_TOKEN)
        .header("x-mcpbox-user-email", email)
        .extension(ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
    if let Some(name) = params["name"].as_str() {
        request = request.header("mcp-name", name);
    }
    // The management tools mark `server_id` with `x-mcp-header: Server-Id` (2026-07-28).
    if let Some(server_id) = params["arguments"]["server_id"].as_str() {
        request = request.header("mcp-param-server-id", server_id);
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let response = tunnel
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(status.is_success(), "{method}: {status} {text}");
    serde_json::from_str::<Value>(&text)
        .ok()
        .or_else(|| {
            text.lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
                .find(|message| message["id"] == 1)
        })
        .unwrap_or_else(|| panic!("{method}: no answer in {text}"))
}

/// A `tools/call` answer without what differs from call to call (the log id, the duration).
fn comparable(mut answer: Value) -> Value {
    if let Some(result) = answer["result"].as_object_mut() {
        result.remove("_meta");
    }
    answer
}

fn through_call_tool(name: &str, arguments: Value) -> Value {
    json!({"name": management::CALL_TOOL, "arguments": {"name": name, "arguments": arguments}})
}

/// The text of a tool error (a refusal the model reads), failing on anything else.
fn tool_error(answer: &Value) -> String {
    assert_eq!(
        answer["result"]["isError"], true,
        "not a tool error: {answer}"
    );
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `mcpbox_call_tool` runs the tool it names exactly as `tools/call` of that name does, for a
/// local and a remote caller alike: the same answer, the same call-time refusals (draft,
/// disabled, stopped server, unknown name), one log row per call under the same caller; and it
/// refuses every management tool's name, so a remote caller cannot reach a LOCAL_ONLY tool
/// (or itself) through it.
async fn mcpbox_call_tool_is_a_tools_call_of_the_tool_it_names(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "remote").await;
    let echo = app.create_tool(&admin, &server, "echo", ECHO).await;
    app.approve_tool(&admin, &echo).await;
    app.create_tool(&admin, &server, "draft", ECHO).await;
    let off = app.create_tool(&admin, &server, "off", ECHO).await;
    app.approve_tool(&admin, &off).await;
    let patched = app
        .call(
            Method::PATCH,
            &format!("/api/tools/{off}"),
            Some(&admin),
            json!({"enabled": false}),
        )
        .await;
    assert!(patched.status.is_success(), "{}", patched.text);
    let started = app
        .post(
            &format!("/api/sandbox/servers/{server}/start"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert!(started.status.is_success(), "{}", started.text);
    // Approved, on a server that was never started.
    let halted = app.create_server(&admin, "halted").await;
    let idle = app.create_tool(&admin, &halted, "echo", ECHO).await;
    app.approve_tool(&admin, &idle).await;

    let changes = origin::gateway::watch_changes(&app.state);
    let tunnel = origin::gateway::tunnel::router(
        app.state.clone(),
        Some(SERVICE_TOKEN),
        EmailAllowlist::default(),
        changes,
    );
    let alice = "alice@example.com";

    // Listed with the other management tools, at the head of the first page.
    let listed = app.mcp("tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[34], management::CALL_TOOL, "{names:?}");
    assert_eq!(names[35..], ["remote__echo"], "{names:?}");

    // A normal call, local and remote: the direct call's answer, logged under the caller.
    let logged = app.count("execution_logs").await;
    let direct = app
        .mcp(
            "tools/call",
            json!({"name": "remote__echo", "arguments": {"n": 7}}),
        )
        .await;
    let forwarded = app
        .mcp(
            "tools/call",
            through_call_tool("remote__echo", json!({"n": 7})),
        )
        .await;
    assert_eq!(
        forwarded["result"]["structuredContent"],
        json!({"n": 7}),
        "{forwarded}"
    );
    assert_eq!(
        comparable(forwarded.clone()),
        comparable(direct),
        "{forwarded}"
    );
    assert!(
        forwarded["result"]["_meta"]["mcpbox/log_id"].is_string(),
        "{forwarded}"
    );
    let remote_call = remote(
        &tunnel,
        alice,
        "tools/call",
        through_call_tool("remote__echo", json!({"n": 8})),
    )
    .await;
    assert_eq!(
        remote_call["result"]["structuredContent"],
        json!({"n": 8}),
        "{remote_call}"
    );
    assert_eq!(app.count("execution_logs").await, logged + 3);
    let logs = app.get("/api/execution-logs", Some(&admin)).await;
    assert_eq!(logs.body["items"][0]["executed_by"], alice, "{}", logs.text);
    assert_eq!(
        logs.body["items"][1]["executed_by"], "mcp:local",
        "{}",
        logs.text
    );

    // Whatever tools/call refuses, mcpbox_call_tool refuses the same way (and logs the same).
    for (name, arguments) in [
        ("remote__draft", json!({"n": 1})),
        ("remote__off", json!({"n": 1})),
        ("halted__echo", json!({"n": 1})),
        ("nowhere__echo", json!({"n": 1})),
        // Past the approval check: the run itself fails (`main` misses its argument).
        ("remote__echo", json!({})),
    ] {
        let before = app.count("execution_logs").await;
        let direct = remote(
            &tunnel,
            alice,
            "tools/call",
            json!({"name": name, "arguments": arguments}),
        )
        .await;
        let between = app.count("execution_logs").await;
        let forwarded = remote(
            &tunnel,
            alice,
            "tools/call",
            through_call_tool(name, arguments),
        )
        .await;
        let after = app.count("execution_logs").await;
        assert!(
            direct["error"].is_object() || direct["result"]["isError"] == true,
            "{name} was not refused: {direct}"
        );
        assert_eq!(comparable(forwarded.clone()), comparable(direct), "{name}");
        assert_eq!(
            after - between,
            between - before,
            "{name}: logged differently"
        );
    }

    // No management tool through it, for any caller: not a LOCAL_ONLY one from afar (the
    // policy's remote_tool_editing is disabled), not a read-only one, not itself.
    let tools_before = app.count("tools").await;
    let create = json!({"server_id": server, "name": "sneaky", "python_code": ECHO});
    let refused = remote(
        &tunnel,
        alice,
        "tools/call",
        through_call_tool("mcpbox_create_tool", create.clone()),
    )
    .await;
    assert!(
        tool_error(&refused).contains("not management tools"),
        "{refused}"
    );
    let direct = remote(
        &tunnel,
        alice,
        "tools/call",
        json!({"name": "mcpbox_create_tool", "arguments": create}),
    )
    .await;
    assert!(
        tool_error(&direct).contains("remote_tool_editing"),
        "{direct}"
    );
    for name in [
        "mcpbox_list_servers",
        "mcpbox_create_server",
        management::CALL_TOOL,
    ] {
        let local = app
            .mcp(
                "tools/call",
                through_call_tool(name, json!({"name": "made_here"})),
            )
            .await;
        assert!(
            tool_error(&local).contains("not management tools"),
            "{name}: {local}"
        );
    }
    let nested = app
        .mcp(
            "tools/call",
            through_call_tool(
                management::CALL_TOOL,
                json!({"name": "mcpbox_create_tool", "arguments": {}}),
            ),
        )
        .await;
    assert!(
        tool_error(&nested).contains("not management tools"),
        "{nested}"
    );
    assert_eq!(app.count("tools").await, tools_before);
    assert_eq!(app.count("servers").await, 2);

    // Its own arguments are checked and named.
    for (arguments, expected) in [
        (json!({}), "\"name\" is required"),
        (json!({"name": 5}), "\"name\" must be a string"),
        (
            json!({"name": "remote__echo", "arguments": [7]}),
            "\"arguments\" must be an object",
        ),
    ] {
        let answer = app
            .mcp(
                "tools/call",
                json!({"name": management::CALL_TOOL, "arguments": arguments}),
            )
            .await;
        assert!(
            tool_error(&answer).contains(expected),
            "{expected}: {answer}"
        );
    }
}
