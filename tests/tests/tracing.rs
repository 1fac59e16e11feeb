//! OpenTelemetry traces from the real binary, received over OTLP/HTTP (protobuf) by a collector
//! in the test: one trace per `tools/call` (HTTP request → `tools/call` → run → sandbox
//! execute), the incoming W3C `traceparent` honoured from the HTTP header and from the MCP
//! request's `_meta` (SEP-414); nothing sent with tracing off; a collector that never answers
//! slows no call and no exit; a passthrough call hands the trace to its external source.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcpbox_e2e::external::External;
use mcpbox_e2e::mcp::{
    Mcp, admin_token, api, approve_and_start, draft_tool, message_with_id, stateless_meta,
};
use mcpbox_e2e::otlp::{Collector, Received};
use mcpbox_e2e::{Origin, ServeOptions};
use serde_json::{Value, json};

/// A fresh origin exporting to `collector_url` (or not at all), with one approved, running tool
/// `trace__echo`: `(origin, its /mcp URL)`. Batches leave every 100 ms instead of 5 s.
async fn origin_with_tool(dir: &std::path::Path, collector_url: Option<&str>) -> (Origin, String) {
    let mut options = ServeOptions::new(dir);
    options.env.push(("OTEL_BSP_SCHEDULE_DELAY", "100".into()));
    // Whatever the test's own environment says: on only when asked for.
    options
        .env
        .push(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", String::new()));
    options.env.push((
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        collector_url.unwrap_or_default().to_owned(),
    ));
    let origin = Origin::start(options).expect("mcpbox starts");
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let code = "def main(n: int) -> dict:\n    return {'n': n}\n";
    let (server, tool) = draft_tool(&url, &token, "trace", "echo", code).await;
    approve_and_start(&url, &token, &server, &tool).await;
    (origin, format!("{url}/mcp"))
}

const TRACE_A: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_A: &str = "00f067aa0ba902b7";
const TRACE_INIT: &str = "5b8efff798038103d269b633813fc60c";
const TRACE_META: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_META: &str = "b7ad6b7169203331";

fn traceparent(trace: &str, parent: &str) -> String {
    format!("00-{trace}-{parent}-01")
}

fn named<'a>(spans: &'a [Received], name: &str) -> &'a Received {
    let found: Vec<&Received> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one {name:?} span expected in {spans:#?}");
    found[0]
}

/// `tools/call` → run → sandbox execute, each the child of the one before, in one trace.
fn assert_call_chain(spans: &[Received]) -> &Received {
    let call = named(spans, "tools/call trace__echo");
    let run = named(spans, "run");
    let sandbox = named(spans, "sandbox execute");
    assert_eq!(
        run.parent_span_id, call.span_id,
        "run is a child of tools/call"
    );
    assert_eq!(
        sandbox.parent_span_id, run.span_id,
        "sandbox execute is a child of run"
    );
    assert_eq!(call.attributes["mcp.method.name"], "tools/call");
    assert_eq!(call.attributes["gen_ai.tool.name"], "trace__echo");
    assert_eq!(call.attributes["mcpbox.server"], "trace");
    assert_eq!(call.kind, 2, "the MCP span is a server span");
    assert_eq!(run.attributes["mcpbox.tool"], "echo");
    assert_eq!(run.attributes["mcpbox.ok"], "true");
    assert_eq!(sandbox.kind, 3, "the sandbox call is a client span");
    assert!(
        sandbox
            .attributes
            .contains_key("mcpbox.sandbox.duration_ms")
    );
    for span in [call, run, sandbox] {
        assert_eq!(span.service, "mcpbox");
    }
    call
}

#[tokio::test]
async fn traceparent_header_makes_the_call_one_trace_under_the_callers_span() {
    let (collector, collector_url) = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (origin, mcp_url) = origin_with_tool(dir.path(), Some(&collector_url)).await;
    // A 2025-11-25 session opened in one trace, the call made in another.
    let mut session = Mcp::session_with(
        &mcp_url,
        vec![("traceparent", traceparent(TRACE_INIT, PARENT_A))],
    )
    .await;
    session.headers = vec![("traceparent", traceparent(TRACE_A, PARENT_A))];
    let answer = session
        .call(
            "tools/call",
            json!({"name": "trace__echo", "arguments": {"n": 7}}),
        )
        .await;
    assert_eq!(answer["result"]["structuredContent"]["n"], 7, "{answer}");

    let spans = collector
        .trace(
            TRACE_A,
            &[
                "POST /mcp",
                "tools/call trace__echo",
                "run",
                "sandbox execute",
            ],
        )
        .await;
    let request = named(&spans, "POST /mcp");
    assert_eq!(
        request.parent_span_id, PARENT_A,
        "the incoming span is the root's parent"
    );
    assert_eq!(request.kind, 2, "the HTTP span is a server span");
    assert_eq!(request.attributes["http.request.method"], "POST");
    assert_eq!(request.attributes["http.route"], "/mcp");
    assert_eq!(request.attributes["url.path"], "/mcp");
    assert_eq!(request.attributes["http.response.status_code"], "200");
    let call = assert_call_chain(&spans);
    assert_eq!(
        call.parent_span_id, request.span_id,
        "tools/call is a child of the request"
    );
    assert!(call.attributes.contains_key("mcp.session.id"));
    // The spans of `initialize` and `notifications/initialized` ended with their responses, not
    // with the session (still open): the session's loop, which lives as long as the session,
    // must not hold them (the pooled external client's loop would: `external::forward`).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let opened = collector.trace(TRACE_INIT, &["POST /mcp"]).await;
        if opened.len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session's spans: {opened:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(session);
    drop(origin);
}

#[tokio::test]
async fn meta_traceparent_parents_the_mcp_span_and_wins_over_the_header() {
    let (collector, collector_url) = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (origin, mcp_url) = origin_with_tool(dir.path(), Some(&collector_url)).await;
    // 2026-07-28 stateless, `_meta.traceparent` (SEP-414) and another context in the header.
    let client = Mcp::stateless(&mcp_url);
    let mut meta = stateless_meta();
    meta["traceparent"] = json!(traceparent(TRACE_META, PARENT_META));
    let params = json!({"name": "trace__echo", "arguments": {"n": 8}, "_meta": meta});
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params});
    let text = client
        .request("tools/call", &params)
        .header("traceparent", traceparent(TRACE_A, PARENT_A))
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let answer = message_with_id(&text, &json!(1)).unwrap();
    assert_eq!(answer["result"]["structuredContent"]["n"], 8, "{answer}");

    let spans = collector
        .trace(
            TRACE_META,
            &["tools/call trace__echo", "run", "sandbox execute"],
        )
        .await;
    let call = assert_call_chain(&spans);
    assert_eq!(
        call.parent_span_id, PARENT_META,
        "_meta's span is the MCP span's parent"
    );
    // The HTTP span keeps the header's context, and the MCP span links to it.
    let http = collector.trace(TRACE_A, &["POST /mcp"]).await;
    let request = named(&http, "POST /mcp");
    assert_eq!(request.parent_span_id, PARENT_A);
    assert_eq!(call.links, vec![format!("{TRACE_A}/{}", request.span_id)]);
    assert!(
        !http.iter().any(|s| s.name == "run"),
        "the run belongs to _meta's trace only"
    );
    drop(origin);
}

#[tokio::test]
async fn without_a_traceparent_each_call_is_its_own_trace_rooted_at_the_request() {
    let (collector, collector_url) = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (origin, mcp_url) = origin_with_tool(dir.path(), Some(&collector_url)).await;
    let mut client = Mcp::stateless(&mcp_url);
    for n in 0..2 {
        let answer = client
            .call(
                "tools/call",
                json!({"name": "trace__echo", "arguments": {"n": n}}),
            )
            .await;
        assert_eq!(answer["result"]["structuredContent"]["n"], n, "{answer}");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let runs = loop {
        let runs: Vec<Received> = collector
            .spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == "sandbox execute")
            .cloned()
            .collect();
        if runs.len() == 2 || Instant::now() > deadline {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(runs.len(), 2, "one sandbox span per call");
    assert_ne!(runs[0].trace_id, runs[1].trace_id, "a trace per call");
    let spans = collector
        .trace(
            &runs[0].trace_id,
            &["POST /mcp", "tools/call trace__echo", "run"],
        )
        .await;
    let request = named(&spans, "POST /mcp");
    assert_eq!(request.parent_span_id, "", "the request span is the root");
    let call = assert_call_chain(&spans);
    assert_eq!(call.parent_span_id, request.span_id);
    drop(origin);
}

#[tokio::test]
async fn tracing_off_sends_nothing() {
    let (collector, _collector_url) = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Started without an endpoint (the collector is up, but nobody told the origin).
    let (origin, mcp_url) = origin_with_tool(dir.path(), None).await;
    let mut client = Mcp::stateless(&mcp_url);
    client.headers = vec![("traceparent", traceparent(TRACE_A, PARENT_A))];
    let answer = client
        .call(
            "tools/call",
            json!({"name": "trace__echo", "arguments": {"n": 1}}),
        )
        .await;
    assert_eq!(answer["result"]["structuredContent"]["n"], 1, "{answer}");
    let status = origin.terminate().unwrap();
    assert!(status.success());
    assert_eq!(*collector.posts.lock().unwrap(), 0, "nothing was exported");
}

/// The origin's own log says whether it exports (the off case above is only meaningful if the
/// on case says so and this one does not).
#[tokio::test]
async fn the_log_names_the_collector_only_when_tracing_is_on() {
    let (_collector, collector_url) = Collector::start().await;
    for (endpoint, expected) in [(None, false), (Some(collector_url.as_str()), true)] {
        let dir = tempfile::tempdir().unwrap();
        let mut options = ServeOptions::new(dir.path());
        options
            .env
            .push(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", String::new()));
        options.env.push((
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            endpoint.unwrap_or_default().to_owned(),
        ));
        let origin = Origin::start(options).expect("mcpbox starts");
        let log: Vec<String> = {
            let status = reqwest::get(format!("{}/health", origin.url))
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200);
            let Origin { log, .. } = &origin;
            log.try_iter().collect()
        };
        let says = log
            .iter()
            .any(|line| line.contains("exporting traces over OTLP/HTTP"));
        assert_eq!(says, expected, "endpoint {endpoint:?}: {log:#?}");
        if expected {
            let host = collector_url.trim_start_matches("http://");
            assert!(
                log.iter()
                    .any(|line| line.contains(&format!("{host}/v1/traces")))
            );
        }
    }
}

/// A collector that accepts connections and never answers: the exporter's thread waits on it,
/// the calls do not, and the exit waits for it at most its bounded shutdown.
#[tokio::test]
async fn a_collector_that_never_answers_slows_no_call_and_no_exit() {
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_url = format!("http://{}", hole.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = hole.accept().await {
            keep.lock().unwrap().push(socket);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (origin, mcp_url) = origin_with_tool(dir.path(), Some(&hole_url)).await;
    let mut client = Mcp::stateless(&mcp_url);
    // Enough calls to fill several batches while the first export hangs.
    let began = Instant::now();
    let mut slowest = Duration::ZERO;
    for n in 0..200 {
        let one = Instant::now();
        let answer: Value = client
            .call(
                "tools/call",
                json!({"name": "trace__echo", "arguments": {"n": n}}),
            )
            .await;
        slowest = slowest.max(one.elapsed());
        assert_eq!(answer["result"]["structuredContent"]["n"], n, "{answer}");
    }
    assert!(
        !held.lock().unwrap().is_empty(),
        "the exporter did try the collector"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "a call waited for the collector: {slowest:?} (200 calls took {:?})",
        began.elapsed()
    );
    let stopping = Instant::now();
    let status = origin.terminate().unwrap();
    assert!(status.success());
    assert!(
        stopping.elapsed() < Duration::from_secs(8),
        "the exit waited {:?} for the collector",
        stopping.elapsed()
    );
}

/// A passthrough tool's call to its external MCP source carries the trace on in the call's
/// `_meta` (SEP-414): the source sees our `external call` span as its parent.
#[tokio::test]
async fn a_passthrough_call_hands_the_trace_to_the_external_source() {
    let external = External::start(&[]);
    let (collector, collector_url) = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (origin, mcp_url) = origin_with_tool(dir.path(), Some(&collector_url)).await;
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let (status, server) = api(
        &format!("{url}/api/servers"),
        json!({"name": "ext"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{server}");
    let server_id = server["id"].as_str().unwrap();
    let (status, source) = api(
        &format!("{url}/api/external-sources/servers/{server_id}/sources"),
        json!({"name": "demo", "url": external.url, "auth_type": "none"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{source}");
    let sources = format!(
        "{url}/api/external-sources/sources/{}",
        source["id"].as_str().unwrap()
    );
    let (status, found) = api(&format!("{sources}/discover"), json!({}), Some(&token)).await;
    assert_eq!(status, 200, "{found}");
    let (status, imported) = api(
        &format!("{sources}/import"),
        json!({"tool_names": ["trace_context"]}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{imported}");
    let tool_id = imported["imported"][0]["id"].as_str().unwrap();
    approve_and_start(&url, &token, server_id, tool_id).await;

    let mut client = Mcp::stateless(&mcp_url);
    client.headers = vec![("traceparent", traceparent(TRACE_A, PARENT_A))];
    let answer = client
        .call(
            "tools/call",
            json!({"name": "ext__demo_trace_context", "arguments": {}}),
        )
        .await;
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    let seen: Value =
        serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap())
            .unwrap_or_else(|_| panic!("{answer}"));
    let spans = collector
        .trace(
            TRACE_A,
            &[
                "POST /mcp",
                "tools/call ext__demo_trace_context",
                "run",
                "external call",
            ],
        )
        .await;
    let forward = named(&spans, "external call");
    assert_eq!(forward.kind, 3, "the call to the source is a client span");
    assert_eq!(forward.parent_span_id, named(&spans, "run").span_id);
    assert_eq!(
        seen["traceparent"],
        json!(traceparent(TRACE_A, &forward.span_id)),
        "the source got our span as its parent"
    );
    drop(origin);
}
