//! Passthrough benchmark on the real binary: the latency MCPbox adds to a `tools/call` of an
//! approved passthrough tool, against a local external MCP server (the official Python SDK's
//! MCPServer, `tests/clients/external_server.py`). Prints p50/p99 of the same call made
//! directly to the external server and through MCPbox's `/mcp`, and the difference of the
//! medians: the added latency (call-time check, secrets, pooled rmcp client, execution log).
//!
//! Run: `cargo build --release --bins && cargo bench -p mcpbox-e2e --bench external`
//! (needs the Python SDK where `scripts/test` installs it, or `MCPBOX_TEST_MCP_SDK`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcpbox_e2e::mcp::{Mcp, admin_token, api, get_json};
use mcpbox_e2e::{Origin, ServeOptions};
use serde_json::{Value, json};

const WARM_UP: usize = 200;
const SEQUENTIAL: usize = 2000;

#[tokio::main]
async fn main() {
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let sdk = std::env::var_os("MCPBOX_TEST_MCP_SDK")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(&std::env::var("HOME").expect("HOME")).join(".cache/mcpbox/py-mcp")
        });
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/external_server.py");
    let mut external = Command::new(python)
        .arg(script)
        .env("PYTHONPATH", sdk)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the external server starts");
    let mut line = String::new();
    BufReader::new(external.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("its port");
    let port = line
        .trim()
        .strip_prefix("listening ")
        .expect("a port")
        .to_owned();
    let external_url = format!("http://127.0.0.1:{port}/mcp");

    let dir = tempfile::tempdir().expect("tempdir");
    let origin = Origin::start(ServeOptions::new(dir.path())).expect("mcpbox starts");
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let (_, server) = api(
        &format!("{url}/api/servers"),
        json!({"name": "bench"}),
        Some(&token),
    )
    .await;
    let server = server["id"].as_str().expect("server id").to_owned();
    let (_, source) = api(
        &format!("{url}/api/external-sources/servers/{server}/sources"),
        json!({"name": "py", "url": external_url}),
        Some(&token),
    )
    .await;
    let source = source["id"].as_str().expect("source id").to_owned();
    let sources = format!("{url}/api/external-sources/sources/{source}");
    let (status, found) = api(&format!("{sources}/discover"), json!({}), Some(&token)).await;
    assert_eq!(status, 200, "{found}");
    let (_, imported) = api(
        &format!("{sources}/import"),
        json!({"tool_names": ["echo"]}),
        Some(&token),
    )
    .await;
    let tool = imported["imported"][0]["id"]
        .as_str()
        .expect("tool id")
        .to_owned();
    let (status, body) = api(
        &format!("{url}/api/approvals/tools/{tool}/action"),
        json!({"action": "approve"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(
        &format!("{url}/api/sandbox/servers/{server}/start"),
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    println!(
        "external server: {external_url} (negotiated {})",
        found["source"]["protocol_version"]
    );

    let mut direct = Mcp::stateless(&external_url);
    let direct_p50 = measure(
        "direct to the external server, 2026-07-28",
        &mut direct,
        "echo",
    )
    .await;
    let mut calls = 0;
    let mut through = Mcp::stateless(&format!("{url}/mcp"));
    let stateless_p50 = measure(
        "through MCPbox, 2026-07-28 stateless",
        &mut through,
        "bench__py_echo",
    )
    .await;
    calls += WARM_UP + SEQUENTIAL;
    let mut session = Mcp::session(&format!("{url}/mcp")).await;
    let session_p50 = measure(
        "through MCPbox, 2025-11-25 session",
        &mut session,
        "bench__py_echo",
    )
    .await;
    calls += WARM_UP + SEQUENTIAL;
    println!(
        "added latency of a passthrough call (p50 through MCPbox − p50 direct): {} µs stateless, {} µs session (goal ≤ 200 µs)",
        stateless_p50.as_micros() as i128 - direct_p50.as_micros() as i128,
        session_p50.as_micros() as i128 - direct_p50.as_micros() as i128,
    );
    let logs = get_json(&format!("{url}/api/execution-logs?page_size=1"), &token).await;
    println!(
        "execution-log rows: {} for {calls} passthrough calls ({})",
        logs["total"],
        if logs["total"] == json!(calls) {
            "one per call"
        } else {
            "MISMATCH"
        }
    );
    drop(origin);
    let _ = external.kill();
    let _ = external.wait();
}

/// Warms up, then times `SEQUENTIAL` calls of `tool` one after another; prints and returns p50.
async fn measure(label: &str, client: &mut Mcp, tool: &str) -> Duration {
    for n in 0..WARM_UP {
        call(client, tool, n).await;
    }
    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    for n in 0..SEQUENTIAL {
        let began = Instant::now();
        call(client, tool, n).await;
        latencies.push(began.elapsed());
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    println!(
        "tools/call {label}: p50 {} µs, p99 {} µs ({SEQUENTIAL} sequential calls)",
        p50.as_micros(),
        p99.as_micros()
    );
    p50
}

async fn call(client: &mut Mcp, tool: &str, n: usize) {
    let text = format!("hello {n}");
    let answer: Value = client
        .call(
            "tools/call",
            json!({"name": tool, "arguments": {"text": text}}),
        )
        .await;
    assert_eq!(
        answer["result"]["content"][0]["text"],
        json!(text),
        "{answer}"
    );
}
