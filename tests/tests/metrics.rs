//! `/metrics` on the real binary: its own listener (`--metrics-listen`), never the admin/local
//! listener nor the tunnel; the counters move by exactly what a client did, with the labels it
//! should; and the exposition passes `promtool check metrics` (Debian's prometheus package,
//! which `scripts/test` installs).

use std::collections::BTreeMap;

use mcpbox_e2e::mcp::{Mcp, admin_token, api, approve_and_start, client, draft_tool, tool_error};
use mcpbox_e2e::{Origin, ServeOptions};
use serde_json::json;

const SERVICE_TOKEN: &str = "metrics-test-service-token-0123456789abcdef";

/// Every sample of the exposition: `(name, labels) -> value`.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let labels = rest.strip_suffix('}').unwrap();
                let labels = labels
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once('=').unwrap();
                        (key.to_owned(), value.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        samples.insert((name, labels), value);
    }
    samples
}

fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples.get(&(name.to_owned(), labels)).copied()
}

async fn scrape(metrics_url: &str) -> (String, Samples) {
    let response = client()
        .get(format!("{metrics_url}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let samples = parse(&text);
    (text, samples)
}

/// `promtool check metrics` on the text: lint errors (bad names, units, types) fail the test.
/// Without promtool the check is skipped loudly, except under CI, where it must run.
fn promtool_check(text: &str) {
    use std::io::Write;
    let spawned = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "promtool is missing ({err}); scripts/test installs Debian's prometheus package"
            );
            eprintln!(
                "\n!!! SKIPPED `promtool check metrics`: promtool is not installed ({err}).\n\
                 !!! Install Debian's `prometheus` package (scripts/test does) to run it.\n"
            );
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn metrics_count_calls_sessions_and_requests_on_their_own_listener_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServeOptions::new(dir.path());
    options.args = vec![
        "--metrics-listen".into(),
        "127.0.0.1:0".into(),
        "--tunnel-listen".into(),
        "127.0.0.1:0".into(),
    ];
    options
        .env
        .push(("MCPBOX_SERVICE_TOKEN", SERVICE_TOKEN.into()));
    let origin = Origin::start(options).unwrap();
    let url = origin.url.clone();
    let metrics = origin.metrics_url.clone().expect("metrics listener");
    let tunnel = origin.tunnel_url.clone().expect("tunnel listener");
    let token = admin_token(&url).await;

    // Not on the other listeners (the tunnel with the Worker's token, so only the path decides),
    // and nothing but /metrics on its own.
    let admin = client().get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(admin.status(), 404);
    let through_tunnel = client()
        .get(format!("{tunnel}/metrics"))
        .header("x-mcpbox-service-token", SERVICE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(through_tunnel.status(), 404);
    for path in ["/mcp", "/api/servers", "/health", "/"] {
        let other = client()
            .get(format!("{metrics}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 404, "{path} on the metrics listener");
    }

    // One approved tool on a running server, one tool waiting for review.
    let code = "def main(n: int) -> int:\n    return n * 2\n";
    let (server, tool) = draft_tool(&url, &token, "meter", "double", code).await;
    approve_and_start(&url, &token, &server, &tool).await;
    let (status, waiting) = api(
        &format!("{url}/api/servers/{server}/tools"),
        json!({"name": "waiting", "python_code": code}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{waiting}");
    let waiting = waiting["id"].as_str().unwrap().to_owned();
    let (status, body) = api(
        &format!("{url}/api/approvals/tools/{waiting}/action"),
        json!({"action": "submit_for_review"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let (_, before) = scrape(&metrics).await;
    let ok = [("server", "meter"), ("tool", "double"), ("outcome", "ok")];
    let calls_before = value(&before, "mcpbox_tool_calls_total", &ok).unwrap_or(0.0);
    assert_eq!(
        value(&before, "mcpbox_mcp_sessions_open", &[]),
        Some(0.0),
        "no session yet"
    );

    let mut session = Mcp::session(&format!("{url}/mcp")).await;
    let called = session
        .call(
            "tools/call",
            json!({"name": "meter__double", "arguments": {"n": 21}}),
        )
        .await;
    assert_eq!(called["result"]["content"][0]["text"], "42", "{called}");
    let refused = session
        .call(
            "tools/call",
            json!({"name": "meter__waiting", "arguments": {"n": 1}}),
        )
        .await;
    assert!(
        tool_error(&refused).contains("no approved version"),
        "{refused}"
    );
    // A name that does not exist is refused without becoming a label.
    session
        .call(
            "tools/call",
            json!({"name": "meter__no_such_tool_xyz", "arguments": {}}),
        )
        .await;
    let raw = client()
        .get(format!("{url}/no-such-page-xyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 404);

    let (text, after) = scrape(&metrics).await;
    assert_eq!(
        value(&after, "mcpbox_tool_calls_total", &ok),
        Some(calls_before + 1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &after,
            "mcpbox_tool_calls_total",
            &[
                ("server", "meter"),
                ("tool", "waiting"),
                ("outcome", "refused")
            ]
        ),
        Some(1.0),
        "{text}"
    );
    let tool_labels = [("server", "meter"), ("tool", "double")];
    assert_eq!(
        value(
            &after,
            "mcpbox_tool_call_duration_seconds_count",
            &tool_labels
        ),
        Some(1.0),
        "{text}"
    );
    let sum = value(
        &after,
        "mcpbox_tool_call_duration_seconds_sum",
        &tool_labels,
    )
    .unwrap();
    assert!(sum > 0.0 && sum < 30.0, "{text}");
    // A refusal ran nothing: no duration for it.
    assert_eq!(
        value(
            &after,
            "mcpbox_tool_call_duration_seconds_count",
            &[("server", "meter"), ("tool", "waiting")]
        ),
        None,
        "{text}"
    );
    assert!(!text.contains("no_such_tool_xyz"), "{text}");
    assert!(!text.contains("no-such-page-xyz"), "{text}");
    assert_eq!(
        value(&after, "mcpbox_mcp_sessions_open", &[]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &after,
            "mcpbox_approvals_pending",
            &[("kind", "tool_version")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&after, "mcpbox_sandbox_up", &[]), Some(1.0), "{text}");
    assert!(
        value(&after, "mcpbox_sandbox_idle_workers", &[]).unwrap() >= 1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &after,
            "mcpbox_sandbox_breaker_state",
            &[("state", "closed")]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        value(&after, "mcpbox_db_pool_connections", &[("state", "idle")]).is_some(),
        "{text}"
    );
    // HTTP requests by route template and status class; the unknown path is one "unmatched".
    assert!(
        value(
            &after,
            "mcpbox_http_requests_total",
            &[("route", "/mcp"), ("status", "2xx")]
        )
        .unwrap()
            >= 3.0,
        "{text}"
    );
    assert!(
        value(
            &after,
            "mcpbox_http_requests_total",
            &[("route", "unmatched"), ("status", "4xx")]
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
    promtool_check(&text);
}
