//! What a version declares besides its code, in process with the real sandbox, on both
//! backends: MCP annotations an author gives (REST and `mcpbox_create_tool`/`_update_tool`) and
//! the output schema derived from `main`'s return annotation. Both are bound by the approval
//! (a change is a new draft; a database edit of either makes the version refuse to run), shown
//! to the reviewer, listed on both revisions on `/mcp` and `/servers/{name}/mcp`; a result is
//! returned as `structuredContent` and checked against the schema.

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};
use sha2::Digest;

on_both_backends!(
    annotations_are_declared_listed_and_bound_by_the_approval,
    a_database_edit_of_annotations_or_output_schema_stops_the_version,
    output_schemas_are_listed_and_results_checked_against_them,
    versions_without_metadata_keep_their_hash_and_behaviour,
);

const READER: &str =
    "def main(city: str) -> dict:\n    \"\"\"Reads the weather.\"\"\"\n    return {'city': city}\n";

/// One JSON-RPC request to `path` (`/mcp` or `/servers/{name}/mcp`) on `revision`: 2026-07-28
/// stateless, or 2025-11-25 in a session opened for it. The JSON-RPC answer.
async fn rpc(app: &TestApp, path: &str, revision: &str, method: &str, mut params: Value) -> Value {
    let base = || {
        TestApp::request(Method::POST, path, None, LOCAL)
            .header("host", "127.0.0.1")
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
    };
    let mut request = base();
    if revision == "2026-07-28" {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        request = request
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method);
        if let Some(name) = params["name"].as_str() {
            request = request.header("mcp-name", name);
        }
    } else {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "metadata-test", "version": "1"}}});
        let opened = app
            .send(base().body(Body::from(init.to_string())).unwrap())
            .await;
        assert_eq!(opened.status, StatusCode::OK, "{}", opened.text);
        let session = opened.headers["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        app.send(
            base()
                .header("mcp-protocol-version", "2025-11-25")
                .header("mcp-session-id", &session)
                .body(Body::from(initialized.to_string()))
                .unwrap(),
        )
        .await;
        request = request
            .header("mcp-protocol-version", "2025-11-25")
            .header("mcp-session-id", session);
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let answer = app
        .send(request.body(Body::from(body.to_string())).unwrap())
        .await;
    assert!(
        answer.status.is_success(),
        "{} {}",
        answer.status,
        answer.text
    );
    serde_json::from_str::<Value>(&answer.text)
        .ok()
        .or_else(|| {
            answer
                .text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
                .find(|message| message["id"] == 1)
        })
        .unwrap_or_else(|| panic!("no answer in {}", answer.text))
}

/// The listed tool named `name` on `path` and `revision`.
async fn listed(app: &TestApp, path: &str, revision: &str, name: &str) -> Value {
    let list = rpc(app, path, revision, "tools/list", json!({})).await;
    list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .find(|t| t["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not listed on {path} {revision}: {list}"))
}

/// Every place a client sees tools: both revisions on `/mcp` and on the server's endpoint.
fn endpoints(server: &str, tool: &str) -> Vec<(String, &'static str, String)> {
    let scoped = format!("/servers/{server}/mcp");
    let mut all = Vec::new();
    for revision in ["2025-11-25", "2026-07-28"] {
        all.push(("/mcp".to_owned(), revision, format!("{server}__{tool}")));
        all.push((scoped.clone(), revision, tool.to_owned()));
    }
    all
}

async fn start(app: &TestApp, admin: &str, server: &str) {
    let started = app
        .post(
            &format!("/api/sandbox/servers/{server}/start"),
            Some(admin),
            json!({}),
        )
        .await;
    assert!(started.status.is_success(), "{}", started.text);
}

/// A management tool called over `/mcp` as the local LLM: its structured answer.
async fn manage(app: &TestApp, name: &str, arguments: Value) -> Value {
    let answer = rpc(
        app,
        "/mcp",
        "2025-11-25",
        "tools/call",
        json!({"name": name, "arguments": arguments}),
    )
    .await;
    let result = &answer["result"];
    assert_ne!(result["isError"], true, "{name}: {answer}");
    result["structuredContent"].clone()
}

async fn annotations_are_declared_listed_and_bound_by_the_approval(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "weather").await;
    // The LLM declares them when it creates the tool.
    let created = manage(
        &app,
        "mcpbox_create_tool",
        json!({"server_id": server, "name": "read", "python_code": READER,
               "annotations": {"readOnlyHint": true, "openWorldHint": false}}),
    )
    .await;
    assert_eq!(
        created["annotations"],
        json!({"readOnlyHint": true, "openWorldHint": false})
    );
    let tool = created["id"].as_str().unwrap().to_owned();
    // A hint that is not one is refused, naming it.
    let typo = rpc(
        &app,
        "/mcp",
        "2025-11-25",
        "tools/call",
        json!({"name": "mcpbox_create_tool", "arguments": {"server_id": server,
                "name": "other", "python_code": READER, "annotations": {"readonly": true}}}),
    )
    .await;
    assert_eq!(typo["result"]["isError"], true, "{typo}");
    assert!(typo.to_string().contains("readonly"), "{typo}");
    // The reviewer sees them in the version the API shows.
    let v1 = app
        .get(&format!("/api/tools/{tool}/versions/1"), Some(&admin))
        .await;
    assert_eq!(
        v1.body["annotations"],
        json!({"readOnlyHint": true, "openWorldHint": false})
    );
    app.approve_tool(&admin, &tool).await;
    start(&app, &admin, &server).await;
    for (path, revision, name) in endpoints("weather", "read") {
        let shown = listed(&app, &path, revision, &name).await;
        assert_eq!(
            shown["annotations"],
            json!({"readOnlyHint": true, "openWorldHint": false}),
            "{path} {revision}: {shown}"
        );
    }

    // The LLM changes them: a new draft that needs review; the approved version keeps its own.
    let updated = manage(
        &app,
        "mcpbox_update_tool",
        json!({"tool_id": tool, "annotations": {"readOnlyHint": false, "destructiveHint": true}}),
    )
    .await;
    assert_eq!(updated["new_version"]["version"], 2, "{updated}");
    assert_eq!(updated["new_version"]["approval_status"], "draft");
    let v2 = app
        .get(&format!("/api/tools/{tool}/versions/2"), Some(&admin))
        .await;
    assert_eq!(
        v2.body["annotations"],
        json!({"readOnlyHint": false, "destructiveHint": true})
    );
    assert_eq!(v2.body["python_code"], READER);
    assert_eq!(v2.body["change_summary"], "Annotations changed");
    for (path, revision, name) in endpoints("weather", "read") {
        let shown = listed(&app, &path, revision, &name).await;
        assert_eq!(
            shown["annotations"]["readOnlyHint"], true,
            "{path} {revision}: the unapproved annotations are listed: {shown}"
        );
    }
    // The same annotations again are no change.
    let same = manage(
        &app,
        "mcpbox_update_tool",
        json!({"tool_id": tool, "annotations": {"destructiveHint": true, "readOnlyHint": false}}),
    )
    .await;
    assert_eq!(same["new_version"], Value::Null, "{same}");
    // The diff API shows what changed, in the diff text and as data.
    let compared = app
        .get(
            &format!("/api/tools/{tool}/versions/compare?from_version=1&to_version=2"),
            Some(&admin),
        )
        .await;
    assert_eq!(compared.status, StatusCode::OK, "{}", compared.text);
    let diff = compared.body["diff"].as_str().unwrap();
    assert!(
        diff.contains("-annotations: readOnlyHint: true, openWorldHint: false")
            && diff.contains("+annotations: readOnlyHint: false, destructiveHint: true"),
        "{diff}"
    );
    assert_eq!(
        compared.body["to_annotations"],
        json!({"readOnlyHint": false, "destructiveHint": true})
    );
    // Approved, version 2's are listed.
    app.approve_tool(&admin, &tool).await;
    let shown = listed(&app, "/mcp", "2026-07-28", "weather__read").await;
    assert_eq!(
        shown["annotations"],
        json!({"readOnlyHint": false, "destructiveHint": true})
    );
    // An admin declares them over REST too, and `{}` clears them (a new version again).
    let cleared = app
        .call(
            Method::PATCH,
            &format!("/api/tools/{tool}"),
            Some(&admin),
            json!({"annotations": {}}),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text);
    assert_eq!(cleared.body["current_version"], 3);
    assert!(
        cleared.body["latest"].get("annotations").is_none(),
        "{}",
        cleared.text
    );
    let made = app
        .post(
            &format!("/api/servers/{server}/tools"),
            Some(&admin),
            json!({"name": "write", "python_code": READER,
                   "annotations": {"idempotentHint": true}}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    assert_eq!(
        made.body["latest"]["annotations"],
        json!({"idempotentHint": true})
    );
}

async fn a_database_edit_of_annotations_or_output_schema_stops_the_version(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "files").await;
    let made = app
        .post(
            &format!("/api/servers/{server}/tools"),
            Some(&admin),
            json!({"name": "remove", "python_code": "def main(path: str) -> str:\n    return path\n",
                   "annotations": {"destructiveHint": true}}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let tool = made.body["id"].as_str().unwrap().to_owned();
    app.approve_tool(&admin, &tool).await;
    start(&app, &admin, &server).await;
    let call = json!({"name": "files__remove", "arguments": {"path": "a"}});
    let ran = app.mcp("tools/call", call.clone()).await;
    assert_ne!(ran["result"]["isError"], true, "{ran}");
    let original: (Option<String>, Option<String>) = {
        use sqlx::Row;
        let row =
            sqlx::query("SELECT annotations, output_schema FROM tool_versions WHERE tool_id = $1")
                .bind(&tool)
                .fetch_one(&app.state.db.pool)
                .await
                .unwrap();
        (row.get("annotations"), row.get("output_schema"))
    };
    // Each edit alone, then the edit undone: the approved version runs only as approved.
    let edits = [
        ("annotations", Some(r#"{"destructiveHint":false}"#)),
        ("annotations", None),
        ("output_schema", Some(r#"{"type":"object"}"#)),
        ("output_schema", None),
    ];
    for (column, value) in edits {
        sqlx::query(&format!(
            "UPDATE tool_versions SET {column} = $1 WHERE tool_id = $2"
        ))
        .bind(value)
        .bind(&tool)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
        let refused = app.mcp("tools/call", call.clone()).await;
        assert_eq!(
            refused["result"]["isError"], true,
            "{column} = {value:?}: {refused}"
        );
        assert!(
            refused.to_string().contains("changed outside MCPbox"),
            "{refused}"
        );
        sqlx::query(
            "UPDATE tool_versions SET annotations = $1, output_schema = $2 WHERE tool_id = $3",
        )
        .bind(&original.0)
        .bind(&original.1)
        .bind(&tool)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
        let again = app.mcp("tools/call", call.clone()).await;
        assert_ne!(again["result"]["isError"], true, "{again}");
    }
}

async fn output_schemas_are_listed_and_results_checked_against_them(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "calc").await;
    // A non-object return type is wrapped as {"result": ...}, value and schema alike.
    let add = app
        .create_tool(
            &admin,
            &server,
            "add",
            "def main(a: int, b: int) -> int:\n    return a + b if a >= 0 else 'negative'\n",
        )
        .await;
    // An object type is the schema itself.
    let pair = app
        .create_tool(
            &admin,
            &server,
            "pair",
            "def main(n: int) -> dict[str, int]:\n    return {'n': n} if n >= 0 else {'n': 'x'}\n",
        )
        .await;
    for tool in [&add, &pair] {
        app.approve_tool(&admin, tool).await;
    }
    start(&app, &admin, &server).await;
    let wrapped = json!({"type": "object", "properties": {"result": {"type": "integer"}},
        "required": ["result"], "x-mcpbox-wrap-result": true});
    for (path, revision, name) in endpoints("calc", "add") {
        let shown = listed(&app, &path, revision, &name).await;
        assert_eq!(shown["outputSchema"], wrapped, "{path} {revision}");
    }
    let shown = listed(&app, "/servers/calc/mcp", "2025-11-25", "pair").await;
    assert_eq!(
        shown["outputSchema"],
        json!({"type": "object", "additionalProperties": {"type": "integer"}})
    );
    for (path, revision, name) in endpoints("calc", "add") {
        let answer = rpc(
            &app,
            &path,
            revision,
            "tools/call",
            json!({"name": name, "arguments": {"a": 2, "b": 3}}),
        )
        .await;
        let result = &answer["result"];
        assert_eq!(result["isError"], false, "{path} {revision}: {answer}");
        assert_eq!(result["structuredContent"], json!({"result": 5}));
        // The text block older clients read: the value itself, as before.
        assert_eq!(result["content"][0]["text"], "5");
        // A result that does not match is a tool error saying what did not.
        let answer = rpc(
            &app,
            &path,
            revision,
            "tools/call",
            json!({"name": name, "arguments": {"a": -1, "b": 3}}),
        )
        .await;
        let result = &answer["result"];
        assert_eq!(result["isError"], true, "{path} {revision}: {answer}");
        let text = result["content"][0]["text"].as_str().unwrap();
        assert!(
            text.contains("does not match its output schema")
                && text.contains("\"negative\" is not of type \"integer\""),
            "{text}"
        );
        assert!(
            result.get("structuredContent").is_none_or(Value::is_null),
            "{answer}"
        );
    }
    let ok = app
        .mcp(
            "tools/call",
            json!({"name": "calc__pair", "arguments": {"n": 4}}),
        )
        .await;
    assert_eq!(ok["result"]["structuredContent"], json!({"n": 4}), "{ok}");
    let bad = app
        .mcp(
            "tools/call",
            json!({"name": "calc__pair", "arguments": {"n": -4}}),
        )
        .await;
    assert_eq!(bad["result"]["isError"], true, "{bad}");
    assert!(bad.to_string().contains("at /n:"), "{bad}");
    // A tool that fails is the tool's error, not a schema mismatch.
    let failing = app
        .create_tool(
            &admin,
            &server,
            "fail",
            "def main() -> int:\n    raise ValueError('no')\n",
        )
        .await;
    app.approve_tool(&admin, &failing).await;
    let failed = app
        .mcp("tools/call", json!({"name": "calc__fail", "arguments": {}}))
        .await;
    assert_eq!(failed["result"]["isError"], true, "{failed}");
    assert!(failed.to_string().contains("ValueError"), "{failed}");
    assert!(!failed.to_string().contains("output schema"), "{failed}");
    // The reviewer sees the output schema (REST and the review page's text).
    let v1 = app
        .get(&format!("/api/tools/{add}/versions/1"), Some(&admin))
        .await;
    assert_eq!(v1.body["output_schema"], wrapped);
}

async fn versions_without_metadata_keep_their_hash_and_behaviour(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "plain").await;
    let code = "def main(n: int):\n    return [n, n]\n";
    let tool = app.create_tool(&admin, &server, "twice", code).await;
    let v1 = app
        .get(&format!("/api/tools/{tool}/versions/1"), Some(&admin))
        .await;
    // The hash formula of every version written before metadata existed.
    assert_eq!(
        v1.body["code_hash"],
        hex::encode(sha2::Sha256::digest(code.as_bytes()))
    );
    assert!(v1.body.get("output_schema").is_none(), "{}", v1.text);
    assert!(v1.body.get("annotations").is_none(), "{}", v1.text);
    app.approve_tool(&admin, &tool).await;
    start(&app, &admin, &server).await;
    let shown = listed(&app, "/mcp", "2026-07-28", "plain__twice").await;
    assert!(shown.get("outputSchema").is_none(), "{shown}");
    assert!(shown.get("annotations").is_none(), "{shown}");
    let ran = app
        .mcp(
            "tools/call",
            json!({"name": "plain__twice", "arguments": {"n": 2}}),
        )
        .await;
    assert_eq!(ran["result"]["isError"], false, "{ran}");
    assert_eq!(ran["result"]["content"][0]["text"], "[2,2]");
    assert!(ran["result"].get("structuredContent").is_none(), "{ran}");
}
