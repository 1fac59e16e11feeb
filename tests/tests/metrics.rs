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

/// A webhook receiver on 127.0.0.1 that reads each POST whole and answers 200.
async fn webhook_receiver() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).into_owned();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = text[..end]
                        .lines()
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buffer.len() >= end + 4 + length {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                }
            });
        }
    });
    format!("http://{address}/hook")
}

/// The sandbox zygote under this origin: a process whose command line names `zygote` and whose
/// parent (the supervisor) is a direct child of the origin. Workers forked from the zygote have
/// the zygote as parent, so they do not match.
fn zygote_under(origin: u32) -> Option<u32> {
    let mut parents = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        if let Some(ppid) = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        {
            parents.insert(pid, ppid);
        }
    }
    parents.iter().find_map(|(pid, ppid)| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        (parents.get(ppid) == Some(&origin) && String::from_utf8_lossy(&cmdline).contains("zygote"))
            .then_some(*pid)
    })
}

/// Scrapes until `check` holds on the samples (deliveries and restarts happen in the background).
async fn scrape_until(metrics: &str, what: &str, check: impl Fn(&Samples) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (text, samples) = scrape(metrics).await;
        if check(&samples) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never showed:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn metrics_and_readiness_show_pools_alerts_rate_limits_and_zygote_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServeOptions::new(dir.path());
    options.args = vec!["--metrics-listen".into(), "127.0.0.1:0".into()];
    let origin = Origin::start(options).unwrap();
    let url = origin.url.clone();
    let metrics = origin.metrics_url.clone().expect("metrics listener");
    let token = admin_token(&url).await;

    // At rest: the pools' figures, every alert kind at 0, nothing refused.
    let (text, samples) = scrape(&metrics).await;
    assert_eq!(
        value(&samples, "mcpbox_db_pool_max_connections", &[]),
        Some(8.0),
        "SQLite's pool bound; {text}"
    );
    let waited = value(&samples, "mcpbox_db_pool_acquire_seconds", &[]).unwrap();
    assert!((0.0..2.0).contains(&waited), "{text}");
    assert_eq!(
        value(&samples, "mcpbox_external_pool_clients", &[]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&samples, "mcpbox_sandbox_zygote_restarts_total", &[]),
        Some(0.0),
        "{text}"
    );
    for kind in [
        "breaker_opened",
        "zygote_crash_loop",
        "sign_in_failures",
        "test",
    ] {
        assert_eq!(
            value(&samples, "mcpbox_alerts_raised_total", &[("kind", kind)]),
            Some(0.0),
            "{kind}: {text}"
        );
    }
    assert_eq!(
        value(&samples, "mcpbox_alerts_dropped_total", &[]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "mcpbox_alert_deliveries_total",
            &[("outcome", "delivered")]
        ),
        Some(0.0),
        "{text}"
    );
    for scope in ["api_address", "api_account", "mcp_address", "tunnel_user"] {
        assert_eq!(
            value(&samples, "mcpbox_rate_limited_total", &[("scope", scope)]),
            Some(0.0),
            "{scope}: {text}"
        );
    }

    // /health/ready carries the same pool figures.
    let ready: serde_json::Value = client()
        .get(format!("{url}/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pool = &ready["database"]["pool"];
    assert_eq!(pool["max_connections"], 8, "{ready}");
    assert!(pool["in_use"].as_u64().unwrap() <= 8, "{ready}");
    assert!(pool["idle"].as_u64().is_some(), "{ready}");
    let waited = pool["acquire_wait_s"].as_f64().unwrap();
    assert!((0.0..2.0).contains(&waited), "{ready}");
    assert_eq!(ready["external"]["pooled_clients"], 0, "{ready}");
    assert_eq!(ready["external"]["pooled_clients_max"], 256, "{ready}");
    assert_eq!(ready["sandbox"]["zygote_restarts"], 0, "{ready}");

    // An alert: three wrong passwords with the threshold at three. One webhook answers 200, the
    // other is a page that does not exist (a 4xx is final, no retries).
    let hook = webhook_receiver().await;
    for (name, hook) in [("ok", hook), ("broken", format!("{url}/no-such-hook"))] {
        let (status, created) = api(
            &format!("{url}/api/alerts/webhooks"),
            json!({"name": name, "flavour": "generic", "url": hook}),
            Some(&token),
        )
        .await;
        assert_eq!(status, 201, "{created}");
    }
    let patched = client()
        .patch(format!("{url}/api/settings/alerts"))
        .bearer_auth(&token)
        .json(&json!({"sign_in_failures": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status().as_u16(), 200);
    for _ in 0..3 {
        let (status, _) = api(
            &format!("{url}/auth/login"),
            json!({"username": "admin", "password": "not the password"}),
            None,
        )
        .await;
        assert_eq!(status, 401);
    }
    let text = scrape_until(&metrics, "both deliveries", |s| {
        value(
            s,
            "mcpbox_alert_deliveries_total",
            &[("outcome", "delivered")],
        ) == Some(1.0)
            && value(s, "mcpbox_alert_deliveries_total", &[("outcome", "failed")]) == Some(1.0)
    })
    .await;
    let samples = parse(&text);
    assert_eq!(
        value(
            &samples,
            "mcpbox_alerts_raised_total",
            &[("kind", "sign_in_failures")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "mcpbox_alert_deliveries_total",
            &[("outcome", "rate_limited")]
        ),
        Some(0.0),
        "{text}"
    );

    // A zygote restart: kill the zygote; the supervisor starts another and counts it.
    let zygote = zygote_under(origin.child.id()).expect("a zygote under the origin");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &zygote.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    scrape_until(&metrics, "the zygote restart", |s| {
        value(s, "mcpbox_sandbox_zygote_restarts_total", &[]) == Some(1.0)
    })
    .await;
    let ready: serde_json::Value = client()
        .get(format!("{url}/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["sandbox"]["zygote_restarts"], 1, "{ready}");

    // A rate-limited request: local /mcp with a bucket of two.
    let patched = client()
        .patch(format!("{url}/api/settings/rate-limits"))
        .bearer_auth(&token)
        .json(&json!({"mcp_per_address": {"per_minute": 60, "burst": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status().as_u16(), 200);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = client()
            .post(format!("{url}/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[2], 429, "{statuses:?}");
    let (text, samples) = scrape(&metrics).await;
    assert_eq!(
        value(
            &samples,
            "mcpbox_rate_limited_total",
            &[("scope", "mcp_address")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &samples,
            "mcpbox_rate_limited_total",
            &[("scope", "api_address")]
        ),
        Some(0.0),
        "{text}"
    );
    promtool_check(&text);
}
