//! Tools that do real work, on the real binaries: errors an author can fix (category, the tool's
//! own frames, output so far) on every front and in the log, and test runs longer than the
//! 30 s that other requests get.

use std::time::{Duration, Instant};

use mcpbox_e2e::mcp::{
    Mcp, admin_token, api, approve_and_start, client, draft_tool, get_json, submit_and_approve,
    tool_error,
};
use mcpbox_e2e::{Origin, ServeOptions};
use serde_json::{Value, json};

const FAILING: &str = "def helper(x):\n    return 1 / x\n\n\nasync def main(n: int = 0) -> int:\n    print('working on', n)\n    return helper(n)\n";

/// Sets a tool's timeout (before approval: the approved version is then the one that runs).
async fn set_timeout(url: &str, token: &str, tool_id: &str, timeout_ms: i64) {
    let response = client()
        .patch(format!("{url}/api/tools/{tool_id}"))
        .bearer_auth(token)
        .json(&json!({"timeout_ms": timeout_ms}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

fn frames(error: &Value) -> Vec<(u64, String, String)> {
    error["traceback"]
        .as_array()
        .unwrap_or_else(|| panic!("no traceback in {error}"))
        .iter()
        .map(|f| {
            (
                f["line"].as_u64().unwrap(),
                f["function"].as_str().unwrap().to_owned(),
                f["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn expected_frames() -> Vec<(u64, String, String)> {
    vec![
        (7, "main".into(), "return helper(n)".into()),
        (2, "helper".into(), "return 1 / x".into()),
    ]
}

/// One failure, read on every front: the REST test run, the log (REST and MCP), an MCP call,
/// `mcpbox_test_code`, and `validate-code` / `mcpbox_validate_code` for code that fails the
/// check.
#[tokio::test]
async fn a_failing_tool_reports_what_an_author_needs_on_every_front() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let (server, tool) = draft_tool(&url, &token, "calc", "divide", FAILING).await;
    approve_and_start(&url, &token, &server, &tool).await;

    let (status, ran) = api(
        &format!("{url}/api/tools/test-code"),
        json!({"tool_id": tool, "arguments": {"n": 0}}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["success"], false);
    let error = &ran["error"];
    assert_eq!(error["kind"], "runtime", "{ran}");
    assert_eq!(error["category"], "code");
    assert_eq!(error["error_type"], "ZeroDivisionError");
    assert_eq!(error["line"], 2);
    assert_eq!(error["message"], "ZeroDivisionError: division by zero");
    assert_eq!(frames(error), expected_frames());
    assert_eq!(ran["stdout"], "working on 0\n");
    let text = ran.to_string();
    assert!(
        !text.contains("mcpbox_runtime") && !text.contains(".rs"),
        "{text}"
    );

    // The log row holds the same detail.
    let log = get_json(
        &format!("{url}/api/logs/{}", ran["log_id"].as_str().unwrap()),
        &token,
    )
    .await;
    assert_eq!(log["error_kind"], "runtime", "{log}");
    assert_eq!(log["error_category"], "code");
    assert_eq!(log["error_detail"]["error_type"], "ZeroDivisionError");
    assert_eq!(frames(&log["error_detail"]), expected_frames());
    assert_eq!(log["stdout"], "working on 0\n");

    // An MCP call: the text an LLM reads has the category, the frames and the output.
    let mut session = Mcp::session(&format!("{url}/mcp")).await;
    let answer = session
        .call(
            "tools/call",
            json!({"name": "calc__divide", "arguments": {"n": 0}}),
        )
        .await;
    let text = tool_error(&answer);
    assert!(
        text.starts_with("Runtime error (code) at line 2: ZeroDivisionError: division by zero"),
        "{text}"
    );
    assert!(text.contains("line 7, in main: return helper(n)"), "{text}");
    assert!(text.contains("line 2, in helper: return 1 / x"), "{text}");
    assert!(text.contains("Output so far:\nworking on 0"), "{text}");
    let structured = &answer["result"]["structuredContent"]["error"];
    assert_eq!(structured["category"], "code", "{answer}");
    assert_eq!(frames(structured), expected_frames());

    // The management tools answer in that shape too.
    let tested = session
        .call(
            "tools/call",
            json!({"name": "mcpbox_test_code", "arguments": {"tool_id": tool, "arguments": {"n": 0}}}),
        )
        .await;
    let tested = &tested["result"]["structuredContent"];
    assert_eq!(tested["error"]["category"], "code", "{tested}");
    assert_eq!(frames(&tested["error"]), expected_frames());
    let logs = session
        .call(
            "tools/call",
            json!({"name": "mcpbox_get_tool_logs", "arguments": {"tool_id": tool}}),
        )
        .await;
    let rows = logs["result"]["structuredContent"].to_string();
    assert!(rows.contains("\"error_category\":\"code\""), "{rows}");
    assert!(rows.contains("return helper(n)"), "{rows}");

    let bad = "import os\n\n\ndef main():\n    return os.getcwd()\n";
    let (status, checked) = api(
        &format!("{url}/api/tools/validate-code"),
        json!({"code": bad}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["valid"], false);
    assert_eq!(checked["errors"][0]["source"], "import os");
    assert_eq!(checked["error"]["category"], "validation", "{checked}");
    assert_eq!(checked["error"]["line"], 1);
    assert_eq!(checked["error"]["traceback"][0]["source"], "import os");
    let validated = session
        .call(
            "tools/call",
            json!({"name": "mcpbox_validate_code", "arguments": {"code": bad}}),
        )
        .await;
    let validated = &validated["result"]["structuredContent"];
    assert_eq!(validated["error"], checked["error"], "{validated}");
    assert_eq!(validated["errors"][0]["source"], "import os");
}

/// A test run of a tool that takes longer than the 30 s other requests get returns when the
/// tool does (REST), and its stdout and the timing are the tool's; an ordinary route keeps 30 s
/// (checked by the unit test of `http::request_timeout`).
#[tokio::test]
async fn a_test_run_longer_than_30_seconds_returns_when_the_tool_does() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let code = "import asyncio\n\n\nasync def main() -> dict:\n    print('started')\n    await asyncio.sleep(32)\n    return {'slept': 32}\n";
    let (_, tool) = draft_tool(&url, &token, "slow", "nap", code).await;
    set_timeout(&url, &token, &tool, 45_000).await;
    submit_and_approve(&url, &token, &tool).await;
    let started = Instant::now();
    let (status, ran) = api(
        &format!("{url}/api/tools/test-code"),
        json!({"tool_id": tool}),
        Some(&token),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["success"], true, "{ran}");
    assert_eq!(ran["result"], json!({"slept": 32}));
    assert_eq!(ran["stdout"], "started\n");
    assert!(
        took >= Duration::from_secs(32) && took < Duration::from_secs(40),
        "{took:?}"
    );
    println!("a 32 s test run over REST answered after {took:.1?}");
}

/// An image and a text resource reach MCP clients as their own content blocks on both protocol
/// revisions; the log and the REST test run keep markers with type and size, never the bytes.
#[tokio::test]
async fn rich_results_are_mcp_content_blocks_and_logged_without_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let code = "import base64\n\n\ndef main() -> list:\n    png = base64.b64decode('iVBORw0KGgo=')\n    return ['the chart', image(png, 'image/png'), resource('mcpbox://report.csv', text='a,b\\n1,2\\n', mime_type='text/csv')]\n";
    let (server, tool) = draft_tool(&url, &token, "charts", "draw", code).await;
    approve_and_start(&url, &token, &server, &tool).await;
    for mut client in [
        Mcp::session(&format!("{url}/mcp")).await,
        Mcp::stateless(&format!("{url}/mcp")),
    ] {
        let answer = client
            .call(
                "tools/call",
                json!({"name": "charts__draw", "arguments": {}}),
            )
            .await;
        let content = &answer["result"]["content"];
        assert_eq!(answer["result"]["isError"], false, "{answer}");
        assert_eq!(content[0], json!({"type": "text", "text": "\"the chart\""}));
        assert_eq!(content[1]["type"], "image", "{answer}");
        assert_eq!(content[1]["mimeType"], "image/png");
        assert_eq!(content[1]["data"], "iVBORw0KGgo=");
        assert_eq!(content[2]["type"], "resource");
        assert_eq!(content[2]["resource"]["uri"], "mcpbox://report.csv");
        assert_eq!(content[2]["resource"]["mimeType"], "text/csv");
        assert_eq!(content[2]["resource"]["text"], "a,b\n1,2\n");
    }
    let logs = get_json(&format!("{url}/api/tools/{tool}/logs"), &token).await;
    let row = &logs["items"][0];
    assert_eq!(row["success"], true, "{logs}");
    assert_eq!(
        row["result"][1],
        json!({"$content": 0, "type": "image", "mime_type": "image/png", "size_bytes": 8})
    );
    assert!(!logs.to_string().contains("iVBORw0KGgo"), "{logs}");
    let (_, ran) = api(
        &format!("{url}/api/tools/test-code"),
        json!({"tool_id": tool}),
        Some(&token),
    )
    .await;
    assert_eq!(ran["result"][2]["uri"], "mcpbox://report.csv", "{ran}");
    assert!(!ran.to_string().contains("iVBORw0KGgo"), "{ran}");
}

/// CPU time (clock ticks) used so far by each descendant of `root`.
fn descendants_cpu(root: u32) -> std::collections::HashMap<u32, u64> {
    let mut stats = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ppid = fields
                .get(1)
                .and_then(|f| f.parse::<u32>().ok())
                .unwrap_or(0);
            let ticks = fields
                .get(11)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
                + fields
                    .get(12)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0);
            stats.push((pid, ppid, ticks));
        }
    }
    let mut inside = std::collections::HashMap::from([(root, 0)]);
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, ppid, ticks) in &stats {
            if inside.contains_key(ppid) && !inside.contains_key(pid) {
                inside.insert(*pid, *ticks);
                grew = true;
            }
        }
    }
    inside.remove(&root);
    inside
}

/// CPU ticks the descendants of `root` use during `window` (a process that exits meanwhile
/// counts for nothing: it is not spinning).
async fn cpu_used(root: u32, window: Duration) -> u64 {
    let before = descendants_cpu(root);
    tokio::time::sleep(window).await;
    descendants_cpu(root)
        .into_iter()
        .map(|(pid, ticks)| ticks.saturating_sub(before.get(&pid).copied().unwrap_or(0)))
        .sum()
}

/// The official Python SDK on both revisions: a tool's `progress()` reaches the client's
/// progress callback (increasing, ending at the total), and abandoning a call of a tool that
/// spins forever (over MCP, or a REST test run whose HTTP client gives up) stops its worker at
/// once and logs the call as cancelled.
#[tokio::test]
async fn progress_reaches_sdk_clients_and_a_cancelled_call_stops_its_worker() {
    let (python, sdk) = mcpbox_e2e::mcp::python_sdk();
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let steps = "import time\n\n\ndef main() -> str:\n    for i in range(1, 11):\n        time.sleep(0.15)\n        progress(i, 10, f'step {i}')\n    return 'ten steps'\n";
    let (server, tool) = draft_tool(&url, &token, "work", "steps", steps).await;
    approve_and_start(&url, &token, &server, &tool).await;
    let (status, created) = api(
        &format!("{url}/api/servers/{server}/tools"),
        json!({"name": "spin", "python_code": "def main():\n    while True:\n        pass\n"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let spin = created["id"].as_str().unwrap().to_owned();
    set_timeout(&url, &token, &spin, 120_000).await;
    submit_and_approve(&url, &token, &spin).await;

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/clients/python_sdk_progress.py"
    );
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&python)
            .arg(script)
            .arg(&url)
            .arg("work__steps")
            .arg("work__spin")
            .env("PYTHONPATH", &sdk)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the SDK client did not finish in 60 s")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the SDK client failed: {stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    for mode in ["legacy", "modern"] {
        let run = &seen[mode];
        assert_eq!(run["is_error"], false, "{mode}: {seen}");
        assert_eq!(run["text"], "\"ten steps\"");
        let reports = run["reports"].as_array().unwrap();
        assert!(reports.len() >= 3, "{mode}: {seen}");
        let done: Vec<f64> = reports.iter().map(|r| r[0].as_f64().unwrap()).collect();
        assert!(done.windows(2).all(|w| w[0] < w[1]), "{mode}: {seen}");
        assert_eq!(
            reports.last().unwrap(),
            &json!([10.0, 10.0, "step 10"]),
            "{mode}"
        );
        assert_eq!(run["abandoned"], "cancelled", "{mode}: {seen}");
    }
    // A REST test run whose HTTP client gives up is cancelled the same way.
    let gave_up = client()
        .post(format!("{url}/api/tools/test-code"))
        .bearer_auth(&token)
        .json(&json!({"tool_id": spin}))
        .timeout(Duration::from_millis(1500))
        .send()
        .await;
    assert!(gave_up.is_err_and(|err| err.is_timeout()));
    // No worker is left spinning: the sandbox's processes use (almost) no CPU now.
    let used = cpu_used(origin.child.id(), Duration::from_secs(1)).await;
    assert!(
        used < 30,
        "a cancelled worker still runs: {used} ticks in 1 s"
    );
    // The three abandoned calls are in the log as cancelled, after about 1.5 s.
    let mut rows = Value::Null;
    for _ in 0..50 {
        rows = get_json(&format!("{url}/api/tools/{spin}/logs"), &token).await;
        if rows["total"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows["total"], 3, "{rows}");
    for row in rows["items"].as_array().unwrap() {
        assert_eq!(row["error_kind"], "cancelled", "{row}");
        assert_eq!(row["error_category"], "cancelled");
        assert!(row["duration_ms"].as_i64().unwrap() < 5_000, "{row}");
    }
}
