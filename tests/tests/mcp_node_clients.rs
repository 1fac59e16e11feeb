//! MCPbox against the Node-based official tools: the MCP conformance suite (every server
//! scenario of both protocol revisions, against the suite's fixture server built through the
//! product's own API, with a baseline of what an approved tool cannot express) and the MCP Inspector CLI (the TypeScript SDK underneath) listing and calling
//! an approved tool. `scripts/test` installs both, with Node 22, into `$MCPBOX_CACHE/node`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcpbox_e2e::fixture;
use mcpbox_e2e::mcp::{admin_token, approve_and_start, draft_tool};
use mcpbox_e2e::{Origin, ServeOptions};
use serde_json::{Value, json};

/// The npm prefix `scripts/test` installs into, and a PATH with its Node 22 first.
fn node_tools() -> (PathBuf, String) {
    let dir = mcpbox_e2e::node_dir();
    let bin = dir.join("node_modules/.bin");
    for tool in ["conformance", "mcp-inspector"] {
        assert!(
            bin.join(tool).exists(),
            "{} is missing: run scripts/test, which installs node@22, \
             @modelcontextprotocol/conformance and @modelcontextprotocol/inspector there \
             (or set MCPBOX_TEST_NODE_DIR)",
            bin.join(tool).display()
        );
    }
    let path = format!(
        "{}:{}",
        dir.join("node_modules/node/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (bin, path)
}

async fn run(program: PathBuf, args: &[&str], path: &str) -> (bool, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(&program)
            .args(args)
            .env("PATH", path)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{} did not finish in 300 s", program.display()))
    .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Scenarios the 2026-07-28 requirement set lists as not scored that MCPbox passes (SEP-2243
/// standard and custom request headers; the second on `/mcp` only).
const SCORED_HERE: [&str; 2] = [
    "http-header-validation",
    "http-custom-header-server-validation",
];

/// The suite against `url`, scored as revision `revision` expects, with `baseline`'s failures
/// allowed (and required: a baselined scenario that passes fails the run).
async fn suite(bin: &Path, path: &str, url: &str, revision: &str) {
    let baseline = format!(
        "{}/conformance/baseline-{revision}.yml",
        env!("CARGO_MANIFEST_DIR")
    );
    let (ok, text) = run(
        bin.join("conformance"),
        &[
            "server",
            "--url",
            url,
            "--requirements",
            revision,
            "--expected-failures",
            &baseline,
        ],
        path,
    )
    .await;
    let summary: Vec<&str> = text
        .lines()
        .filter(|line| {
            line.starts_with("Total:") || line.contains("nexpected") || line.contains("tale")
        })
        .collect();
    println!("conformance {revision} {url}: {}", summary.join(" | "));
    assert!(ok, "conformance {revision} failed:\n{text}");
}

/// Not scored by the 2026-07-28 requirement set (so `--requirements` ignores them), but
/// passed, so run on their own, where any failed check fails the run.
async fn scored_here(bin: &Path, path: &str, url: &str, scenarios: &[&str]) {
    for scenario in scenarios {
        let (ok, text) = run(
            bin.join("conformance"),
            &[
                "server",
                "--url",
                url,
                "--spec-version",
                "2026-07-28",
                "--scenario",
                scenario,
            ],
            path,
        )
        .await;
        let summary: Vec<&str> = text.lines().filter(|l| l.contains("Passed:")).collect();
        println!("conformance {scenario} {url}: {}", summary.join(" | "));
        assert!(ok, "conformance {scenario} failed:\n{text}");
    }
}

/// The suite's fixture server (`tests/conformance/fixture`, made and approved over the REST
/// API) on its own endpoint, where its tools, prompts and resources have the suite's names:
/// every server scenario of both revisions. Fails on any failing scenario or check not in
/// `tests/conformance/baseline-*.yml`, and on a baseline entry that passes.
#[tokio::test]
async fn the_conformance_suite_passes_both_revisions_on_the_fixture_server() {
    let (bin, path) = node_tools();
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let token = admin_token(&origin.url).await;
    let (tools, prompts, resources) = fixture::load(&origin.url, &token).await;
    println!("fixture: {tools} tools, {prompts} prompts, {resources} resources");
    let url = format!("{}/servers/{}/mcp", origin.url, fixture::SERVER);
    for revision in ["2025-11-25", "2026-07-28"] {
        suite(&bin, &path, &url, revision).await;
    }
    // The custom-header scenario needs a tool declaring `x-mcp-header`: on `/mcp`, where the
    // management tools carry `Server-Id` (an approved Python tool declares none).
    scored_here(&bin, &path, &url, &SCORED_HERE[..1]).await;
    scored_here(&bin, &path, &format!("{}/mcp", origin.url), &SCORED_HERE).await;
    drop(origin);
}

/// The MCP Inspector CLI lists the approved tool and calls it.
#[tokio::test]
async fn the_mcp_inspector_cli_lists_and_calls_an_approved_tool() {
    let (bin, path) = node_tools();
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    let code = "def main(word: str) -> dict:\n    \"\"\"Shout a word.\"\"\"\n    return {'loud': word.upper()}\n";
    let (server, tool) = draft_tool(&url, &token, "inspect", "shout", code).await;
    approve_and_start(&url, &token, &server, &tool).await;

    let mcp = format!("{url}/mcp");
    let inspector = bin.join("mcp-inspector");
    let (ok, text) = run(
        inspector.clone(),
        &["--cli", &mcp, "--method", "tools/list"],
        &path,
    )
    .await;
    assert!(ok, "{text}");
    let listed: Value =
        serde_json::from_str(&text[text.find('{').unwrap()..text.rfind('}').unwrap() + 1]).unwrap();
    let shout = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "inspect__shout")
        .unwrap_or_else(|| panic!("inspect__shout is not listed: {listed}"));
    assert_eq!(shout["description"], "Shout a word.");
    let (ok, text) = run(
        inspector,
        &[
            "--cli",
            &mcp,
            "--method",
            "tools/call",
            "--tool-name",
            "inspect__shout",
            "--tool-arg",
            "word=hey",
        ],
        &path,
    )
    .await;
    assert!(ok, "{text}");
    let called: Value =
        serde_json::from_str(&text[text.find('{').unwrap()..text.rfind('}').unwrap() + 1]).unwrap();
    assert_eq!(
        called["structuredContent"],
        json!({"loud": "HEY"}),
        "{called}"
    );
    assert_ne!(called["isError"], true);
    drop(origin);
}
