//! MCP gateway benchmark on the real binaries: prints `tools/call` latency (p50/p99) for a
//! trivial approved tool, sequential over one keep-alive connection, on both protocol revisions,
//! on `/mcp` and on the per-server endpoint `/servers/bench/mcp`; `tools/list` latency; and calls/s with 32 concurrent clients, with the error count and a check
//! that the execution log has one row per call.
//!
//! Run: `cargo build --release --bins && cargo bench -p mcpbox-e2e --bench gateway`.

use std::time::{Duration, Instant};

use mcpbox_e2e::mcp::{
    Mcp, admin_token, approve_and_start, draft_tool, get_json, raise_rate_limits,
};
use mcpbox_e2e::{Origin, ServeOptions};
use serde_json::json;

const SEQUENTIAL: usize = 2000;
const CLIENTS: usize = 32;
const CONCURRENT_FOR: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = Origin::start(ServeOptions::new(dir.path())).expect("mcpbox starts");
    let url = origin.url.clone();
    let mcp_url = format!("{url}/mcp");
    let token = admin_token(&url).await;
    raise_rate_limits(&url, &token).await;
    let code = "def main(n: int) -> dict:\n    return {'n': n}\n";
    let (server, tool) = draft_tool(&url, &token, "bench", "echo", code).await;
    approve_and_start(&url, &token, &server, &tool).await;

    let mut calls = 0usize;
    let mut session = Mcp::session(&mcp_url).await;
    let mut stateless = Mcp::stateless(&mcp_url);
    let server_url = format!("{url}/servers/bench/mcp");
    let mut server_session = Mcp::session(&server_url).await;
    let mut server_stateless = Mcp::stateless(&server_url);
    for (label, name, client) in [
        ("2025-11-25 session", "bench__echo", &mut session),
        ("2026-07-28 stateless", "bench__echo", &mut stateless),
        (
            "per-server, 2025-11-25 session",
            "echo",
            &mut server_session,
        ),
        (
            "per-server, 2026-07-28 stateless",
            "echo",
            &mut server_stateless,
        ),
    ] {
        for n in 0..100 {
            call_named(client, name, n).await.expect("warm-up call");
        }
        calls += 100;
        let mut latencies = Vec::with_capacity(SEQUENTIAL);
        for n in 0..SEQUENTIAL {
            let began = Instant::now();
            call_named(client, name, n as i64).await.expect("call");
            latencies.push(began.elapsed());
        }
        calls += SEQUENTIAL;
        report(&format!("tools/call, {label}, sequential"), &mut latencies);
    }
    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let began = Instant::now();
        let listed = session.call("tools/list", json!({})).await;
        let tools = listed["result"]["tools"].as_array().expect("tools");
        assert!(tools.iter().any(|t| t["name"] == "bench__echo"));
        latencies.push(began.elapsed());
    }
    report(
        "tools/list (28 management tools + 1), 2025-11-25 session, sequential",
        &mut latencies,
    );

    let deadline = Instant::now() + CONCURRENT_FOR;
    let began = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CLIENTS {
        let mcp_url = mcp_url.clone();
        workers.push(tokio::spawn(async move {
            let mut client = Mcp::session(&mcp_url).await;
            let (mut ok, mut failed) = (0usize, 0usize);
            while Instant::now() < deadline {
                match call(&mut client, ok as i64).await {
                    Ok(()) => ok += 1,
                    Err(error) => {
                        failed += 1;
                        if failed == 1 {
                            eprintln!("first error: {error}");
                        }
                    }
                }
            }
            (ok, failed)
        }));
    }
    let (mut ok, mut failed) = (0usize, 0usize);
    for worker in workers {
        let (o, f) = worker.await.expect("worker");
        ok += o;
        failed += f;
    }
    let took = began.elapsed();
    calls += ok + failed;
    println!(
        "tools/call, {CLIENTS} concurrent 2025-11-25 sessions for {:.1} s: {:.0} calls/s, {ok} ok, {failed} errors",
        took.as_secs_f64(),
        ok as f64 / took.as_secs_f64()
    );
    let logs = get_json(&format!("{url}/api/execution-logs?page_size=1"), &token).await;
    println!(
        "execution-log rows: {} for {calls} calls ({})",
        logs["total"],
        if logs["total"] == json!(calls) {
            "one per call"
        } else {
            "MISMATCH"
        }
    );
    drop(origin);
}

/// One `tools/call` of `bench__echo` on `/mcp`; an error result is an error.
async fn call(client: &mut Mcp, n: i64) -> Result<(), String> {
    call_named(client, "bench__echo", n).await
}

/// One `tools/call` of the echo tool by `name` (`echo` on `/servers/bench/mcp`).
async fn call_named(client: &mut Mcp, name: &str, n: i64) -> Result<(), String> {
    let answer = client
        .call("tools/call", json!({"name": name, "arguments": {"n": n}}))
        .await;
    if answer["result"]["structuredContent"]["n"] == json!(n) {
        Ok(())
    } else {
        Err(answer.to_string())
    }
}

fn report(what: &str, latencies: &mut [Duration]) {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} calls",
        at(0.5),
        at(0.99),
        at(1.0),
        latencies.len()
    );
}
