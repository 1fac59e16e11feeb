//! Prompts and resources on the real binaries with the official MCP Python SDK as the client:
//! `prompts/list|get`, `resources/list|read`, `resources/templates/list` on `/mcp` and on a
//! per-server endpoint, on 2025-11-25 (session) and 2026-07-28 (stateless); a resource
//! template read runs its tool in the sandbox and is logged like a call.

use std::time::Duration;

use mcpbox_e2e::mcp::{
    NEW, admin_token, api, approve_and_start, draft_tool, get_json, python_sdk, submit_and_approve,
};
use mcpbox_e2e::{Origin, ServeOptions};
use serde_json::{Value, json};

const FORECAST: &str = "def main(city: str) -> str:\n    return 'Sunny in ' + city\n";

#[tokio::test]
async fn the_official_python_sdk_lists_gets_and_reads_on_both_revisions() {
    let (python, sdk) = python_sdk();
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let (server, tool) = draft_tool(&url, &token, "lib", "forecast", FORECAST).await;
    let mut items = Vec::new();
    for (kind, body) in [
        (
            "prompts",
            json!({"name": "review", "description": "Review something", "content": {
            "template": "Please review {topic}.",
            "arguments": [{"name": "topic", "required": true}]}}),
        ),
        (
            "resources",
            json!({"name": "guide", "content": {"mime_type": "text/markdown", "text": "# Guide"}}),
        ),
        (
            "resources",
            json!({"name": "weather", "content": {"tool": "forecast", "params": ["city"]}}),
        ),
    ] {
        let (status, created) = api(
            &format!("{url}/api/servers/{server}/{kind}"),
            body,
            Some(&token),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        items.push(created["id"].as_str().unwrap().to_owned());
    }
    for item in &items {
        submit_and_approve(&url, &token, item).await;
    }
    approve_and_start(&url, &token, &server, &tool).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/python_sdk_prompts.py");
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(&python)
            .arg(script)
            .arg(&url)
            .env("PYTHONPATH", &sdk)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the SDK client did not finish in 90 s")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the SDK client failed: {stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    for (endpoint, prefix) in [("/mcp", "lib__"), ("/servers/lib/mcp", "")] {
        let clients = seen[endpoint].as_array().unwrap();
        assert_eq!(clients.len(), 2, "{seen}");
        assert_eq!(clients[0]["version"], "2025-11-25", "{seen}");
        assert_eq!(clients[1]["version"], NEW, "{seen}");
        for client in clients {
            assert_eq!(
                client["prompts"],
                json!([{"name": format!("{prefix}review"), "arguments": [["topic", true]]}]),
                "{seen}"
            );
            assert_eq!(
                client["rendered"],
                json!(["Please review the release notes."]),
                "{seen}"
            );
            let missing = client["missing"].as_str().unwrap_or_default();
            assert!(
                missing.contains("missing required argument \"topic\""),
                "{seen}"
            );
            assert_eq!(
                client["resources"],
                json!([["mcpbox://lib/guide", "text/markdown"]]),
                "{seen}"
            );
            assert_eq!(
                client["templates"],
                json!(["mcpbox://lib/weather/{city}"]),
                "{seen}"
            );
            assert_eq!(client["guide"], json!(["# Guide"]), "{seen}");
            assert_eq!(client["weather"], json!(["Sunny in Oslo"]), "{seen}");
        }
    }
    // Each template read ran the tool once, through the execution log like a call.
    let logs = get_json(&format!("{url}/api/tools/{tool}/logs"), &token).await;
    let ran = logs["items"].as_array().map_or(0, Vec::len);
    assert_eq!(ran, 4, "{logs}");
    drop(origin);
}
