//! What metrics and tracing cost on `tools/call`: four origins (real binaries, each with its own
//! sandbox) side by side: (a) neither, (b) metrics (`--metrics-listen`, scraped every second),
//! (c) tracing to a local OTLP/HTTP collector, (d) both. Sequential calls of a trivial approved
//! tool over a 2025-11-25 session, interleaved one call per origin per round (the order rotates
//! each round), so load drift on the machine hits every mode alike. Prints p50/p99 per mode, the
//! p50 ratio to (a), and the origin process's CPU time per call (utime + stime from
//! /proc/PID/stat over the measured calls, every thread included: the exporter's thread, the
//! scrapes). Hardware instruction counters are not available on these VMs (`perf stat -e
//! instructions` says "not supported"), so CPU time stands in for them.
//!
//! Tool calls are counted in the metrics registry whether or not `--metrics-listen` is given:
//! (b) measures serving and scraping on top of that always-on recording, not the recording.
//!
//! Run: `cargo build --release --bins && cargo bench -p mcpbox-e2e --bench observability`.

use std::time::{Duration, Instant};

use mcpbox_e2e::mcp::{Mcp, admin_token, approve_and_start, draft_tool, raise_rate_limits};
use mcpbox_e2e::otlp::Collector;
use mcpbox_e2e::{Origin, ServeOptions};
use serde_json::json;

const WARM_UP: usize = 200;
/// Calls per mode (`MCPBOX_BENCH_CALLS` overrides, for a quick look).
const CALLS: usize = 3000;

struct Mode {
    label: &'static str,
    origin: Origin,
    client: Mcp,
    latencies: Vec<Duration>,
}

#[tokio::main]
async fn main() {
    let calls: usize = std::env::var("MCPBOX_BENCH_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CALLS);
    let (collector, collector_url) = Collector::start().await;
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut modes = Vec::new();
    for (i, (label, metrics, tracing)) in [
        ("(a) neither", false, false),
        ("(b) metrics", true, false),
        ("(c) tracing", false, true),
        ("(d) both", true, true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut options = ServeOptions::new(dirs[i].path());
        options
            .env
            .push(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", String::new()));
        let endpoint = if tracing {
            collector_url.clone()
        } else {
            String::new()
        };
        options.env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint));
        if metrics {
            options
                .args
                .extend(["--metrics-listen".into(), "127.0.0.1:0".into()]);
        }
        let origin = Origin::start(options).expect("mcpbox starts");
        let url = origin.url.clone();
        let token = admin_token(&url).await;
        raise_rate_limits(&url, &token).await;
        let code = "def main(n: int) -> dict:\n    return {'n': n}\n";
        let (server, tool) = draft_tool(&url, &token, "bench", "echo", code).await;
        approve_and_start(&url, &token, &server, &tool).await;
        let client = Mcp::session(&format!("{url}/mcp")).await;
        modes.push(Mode {
            label,
            origin,
            client,
            latencies: Vec::with_capacity(calls),
        });
    }
    // What a Prometheus would do to (b) and (d): scrape each second.
    let scraped: Vec<String> = modes
        .iter()
        .filter_map(|m| m.origin.metrics_url.clone())
        .map(|url| format!("{url}/metrics"))
        .collect();
    let scraper = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            for url in &scraped {
                let response = http.get(url).send().await.expect("scrape");
                assert!(
                    response.status().is_success(),
                    "scrape: {}",
                    response.status()
                );
                assert!(!response.text().await.expect("scrape body").is_empty());
            }
        }
    });

    for mode in &mut modes {
        for n in 0..WARM_UP {
            call(&mut mode.client, n as i64).await;
        }
    }
    // Let the warm-up's spans leave (the batch delay is 5 s), so the count below is the
    // measured calls' alone.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let cpu_before: Vec<u64> = modes
        .iter()
        .map(|m| cpu_ticks(m.origin.child.id()))
        .collect();
    let exported_before = collector.spans.lock().unwrap().len();
    for round in 0..calls {
        for k in 0..modes.len() {
            let mode = &mut modes[(round + k) % 4];
            let began = Instant::now();
            call(&mut mode.client, round as i64).await;
            mode.latencies.push(began.elapsed());
        }
    }
    let cpu: Vec<u64> = modes
        .iter()
        .zip(&cpu_before)
        .map(|(m, before)| cpu_ticks(m.origin.child.id()) - before)
        .collect();
    scraper.abort();

    let ticks_per_second = ticks_per_second();
    let p = |latencies: &mut Vec<Duration>, q: f64| {
        latencies.sort_unstable();
        latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3
    };
    let base = p(&mut modes[0].latencies, 0.5);
    let base_cpu = cpu[0] as f64;
    println!(
        "tools/call, 2025-11-25 session, sequential, {calls} calls per mode interleaved (release \
         binaries, debug if that is what was built):"
    );
    for (mode, ticks) in modes.iter_mut().zip(&cpu) {
        let p50 = p(&mut mode.latencies, 0.5);
        let p99 = p(&mut mode.latencies, 0.99);
        let cpu_us = *ticks as f64 / ticks_per_second * 1e6 / calls as f64;
        println!(
            "  {:<12} p50 {p50:.3} ms ({:.3}x), p99 {p99:.3} ms, origin CPU {cpu_us:.0} µs/call ({:.3}x)",
            mode.label,
            p50 / base,
            *ticks as f64 / base_cpu,
        );
    }
    // Give the last batches time to leave (default schedule delay 5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let exported = collector.spans.lock().unwrap().len() - exported_before;
    let expected = 4 * 2 * calls;
    println!(
        "spans received for the measured calls: {exported} of {expected} (4 per call from each \
         tracing origin; fewer means the bounded queue dropped some)"
    );
}

/// One `tools/call` of `bench__echo`, which must answer its argument.
async fn call(client: &mut Mcp, n: i64) {
    let answer = client
        .call(
            "tools/call",
            json!({"name": "bench__echo", "arguments": {"n": n}}),
        )
        .await;
    assert_eq!(
        answer["result"]["structuredContent"]["n"],
        json!(n),
        "{answer}"
    );
}

/// utime + stime of a process (all its threads, live and exited), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}
