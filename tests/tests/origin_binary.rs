//! The real `mcpbox` binary: start-up, key handling, the admin CLI, restarts and shutdown.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use mcpbox_e2e::mcp::{Stream, admin_token, api as post, client, draft_tool, submit_and_approve};
use mcpbox_e2e::{Origin, ServeOptions, binary};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

async fn get(url: &str, token: Option<&str>) -> u16 {
    let mut request = client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn first_start_generates_a_private_key_and_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let origin = Origin::start(ServeOptions::new(&data)).unwrap();
    assert_eq!(
        get(&format!("{}/health/ready", origin.url), None).await,
        200
    );
    let key_path = data.join("encryption.key");
    let key = std::fs::read_to_string(&key_path).unwrap();
    assert_eq!(key.trim().len(), 64);
    assert_eq!(
        std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Private to its owner; as root, the sandbox's group may also traverse it to reach
    // `packages/` (`packages::prepare_dir`), and nothing more.
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        if root { 0o710 } else { 0o700 }
    );
    let log: Vec<String> = origin.log.try_iter().collect();
    assert!(
        log.iter()
            .any(|l| l.contains("generated a new encryption key")),
        "{log:?}"
    );
    assert!(origin.terminate().unwrap().success());

    let again = Origin::start(ServeOptions::new(&data)).unwrap();
    assert_eq!(get(&format!("{}/health", again.url), None).await, 200);
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), key);
}

#[tokio::test]
async fn sessions_and_revocations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let (status, _) = post(
        &format!("{url}/auth/setup"),
        json!({"username": "admin", "password": PASSWORD}),
        None,
    )
    .await;
    assert_eq!(status, 201);
    let login = |url: String| async move {
        post(
            &format!("{url}/auth/login"),
            json!({"username": "admin", "password": PASSWORD}),
            None,
        )
        .await
        .1
    };
    let kept = login(url.clone()).await;
    let revoked = login(url.clone()).await;
    let token = |v: &Value, k: &str| v[k].as_str().unwrap().to_owned();
    let (status, _) = post(
        &format!("{url}/auth/logout"),
        json!({}),
        Some(&token(&revoked, "access_token")),
    )
    .await;
    assert_eq!(status, 200);
    assert!(origin.terminate().unwrap().success());

    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    assert_eq!(
        get(
            &format!("{url}/auth/me"),
            Some(&token(&kept, "access_token"))
        )
        .await,
        200
    );
    assert_eq!(
        get(
            &format!("{url}/auth/me"),
            Some(&token(&revoked, "access_token"))
        )
        .await,
        401
    );
    let (status, _) = post(
        &format!("{url}/auth/logout-all"),
        json!({}),
        Some(&token(&kept, "access_token")),
    )
    .await;
    assert_eq!(status, 200);
    drop(origin);

    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    assert_eq!(
        get(
            &format!("{url}/auth/me"),
            Some(&token(&kept, "access_token"))
        )
        .await,
        401
    );
    let (status, _) = post(
        &format!("{url}/auth/refresh"),
        json!({"refresh_token": token(&kept, "refresh_token")}),
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn admin_cli_creates_accounts_and_resets_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], password: &str| {
        let mut child = Command::new(binary("mcpbox"))
            .args(["admin"])
            .args(args)
            .args(["--data-dir", dir.path().to_str().unwrap()])
            .env_remove("MCPBOX_ADMIN_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let created = run(&["create", "--username", "root_admin"], PASSWORD);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let duplicate = run(&["create", "--username", "ROOT_ADMIN"], PASSWORD);
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already taken"));
    let weak = run(
        &["create", "--username", "other", "--role", "viewer"],
        "weak",
    );
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("12 to 128"));
    let bad_role = run(
        &["create", "--username", "other", "--role", "root"],
        PASSWORD,
    );
    assert_eq!(bad_role.status.code(), Some(2), "usage error");

    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    // An account created on the command line completes set-up: the web form is closed.
    let status: Value = client()
        .get(format!("{url}/auth/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["setup_required"], false);
    let (status, login) = post(
        &format!("{url}/auth/login"),
        json!({"username": "root_admin", "password": PASSWORD}),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let access = login["access_token"].as_str().unwrap().to_owned();

    let new_password = "a new and longer passphrase";
    let reset = run(
        &["reset-password", "--username", "root_admin"],
        new_password,
    );
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    assert_eq!(get(&format!("{url}/auth/me"), Some(&access)).await, 401);
    let (status, _) = post(
        &format!("{url}/auth/login"),
        json!({"username": "root_admin", "password": new_password}),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let unknown = run(&["reset-password", "--username", "ghost"], new_password);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no account named"));
}

#[tokio::test]
async fn invalid_configuration_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let output = |env: (&str, &str)| {
        Command::new(binary("mcpbox"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                dir.path().to_str().unwrap(),
            ])
            .env(env.0, env.1)
            .output()
            .unwrap()
    };
    let bad_key = output(("MCPBOX_ENCRYPTION_KEY", "abc"));
    assert!(!bad_key.status.success());
    let stderr = String::from_utf8_lossy(&bad_key.stderr);
    assert!(
        stderr.contains("MCPBOX_ENCRYPTION_KEY is invalid"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("abc"),
        "the key value must not be echoed: {stderr}"
    );
    let bad_db = output(("DATABASE_URL", "mysql://root:secretpw@localhost/x"));
    let stderr = String::from_utf8_lossy(&bad_db.stderr);
    assert!(!bad_db.status.success());
    assert!(stderr.contains("unsupported database URL"), "{stderr}");
    assert!(!stderr.contains("secretpw"), "{stderr}");

    // Without its sandbox the product cannot run a tool: `serve` must not claim to listen (the
    // quick-start defect of issue 11), and must say what is missing and how to get it.
    let no_sandbox = output(("MCPBOX_SANDBOX_BINARY", "/nonexistent/mcpbox-sandbox"));
    let stdout = String::from_utf8_lossy(&no_sandbox.stdout);
    let stderr = String::from_utf8_lossy(&no_sandbox.stderr);
    assert!(!no_sandbox.status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains("MCPbox listening"), "{stdout}");
    assert!(
        stderr.contains("/nonexistent/mcpbox-sandbox is missing")
            && stderr.contains("./scripts/run"),
        "{stderr}"
    );
    // A supervisor run separately that never answers: the same refusal, after the grace period
    // (kept short here: the socket does not exist, so each probe fails at once).
    let key_file = dir.path().join("sandbox.key");
    std::fs::write(&key_file, "k".repeat(32)).unwrap();
    let started = std::time::Instant::now();
    let unreachable = Command::new(binary("mcpbox"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--sandbox-socket")
        .arg(dir.path().join("no-such.sock"))
        .arg("--sandbox-key-file")
        .arg(&key_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&unreachable.stdout);
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(!unreachable.status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains("MCPbox listening"), "{stdout}");
    assert!(stderr.contains("the sandbox does not answer"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[tokio::test]
async fn serves_on_postgresql_when_given_a_postgres_url() {
    let url = postgres_schema_url().await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServeOptions::new(dir.path());
    options.env.push(("DATABASE_URL", url));
    let origin = Origin::start(options).unwrap();
    let ready: Value = client()
        .get(format!("{}/health/ready", origin.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["database"]["backend"], "postgres");
    assert_eq!(ready["database"]["ok"], true);
    let (status, _) = post(
        &format!("{}/auth/setup", origin.url),
        json!({"username": "admin", "password": PASSWORD}),
        None,
    )
    .await;
    assert_eq!(status, 201);
    assert!(origin.terminate().unwrap().success());
}

/// Reads until the peer closes the connection (or `wait` passes): how long that took.
async fn closed_within(
    stream: &mut tokio::net::TcpStream,
    wait: std::time::Duration,
) -> Option<std::time::Duration> {
    use tokio::io::AsyncReadExt;
    let start = std::time::Instant::now();
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(wait, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| start.elapsed())
}

/// Slow and idle connections against the real listener: a client that sends half a request
/// line, or nothing, is closed after the header-read timeout; past the connection cap new
/// connections wait in the backlog (no descriptor each) and a normal request is served once the
/// idle ones have timed out; a response being streamed is not cut by the timeout. Before, all
/// of them stayed open for ever and nothing capped them.
#[tokio::test]
async fn slow_and_idle_connections_time_out_and_are_capped() {
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

    let dir = tempfile::tempdir().unwrap();
    let mut options = ServeOptions::new(dir.path());
    options.args = ["--header-read-timeout", "2", "--max-connections", "4"]
        .map(String::from)
        .to_vec();
    let origin = Origin::start(options).unwrap();
    let url = origin.url.clone();
    let address = url.trim_start_matches("http://").to_owned();
    let token = admin_token(&url).await;

    // A live activity stream outlasts the timeout and still delivers.
    let response = client()
        .get(format!("{url}/api/activity/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let stream = Stream::follow(response);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, _) = post(
        &format!("{url}/api/servers"),
        json!({"name": "late_news"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201);
    stream.wait_for("server late_news created").await;

    // Half a request line, then nothing: closed after the timeout (not at once).
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /health HT").await.unwrap();
    let took = closed_within(&mut slow, Duration::from_secs(10))
        .await
        .expect("the slow connection was never closed");
    assert!(took >= Duration::from_millis(1500), "closed after {took:?}");

    // Six idle connections against a cap of four (one may still be the stream's): the normal
    // request waits behind them in the backlog, and is served once they time out.
    let mut idle = Vec::new();
    for _ in 0..6 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    let started = std::time::Instant::now();
    let served = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
        .get(format!("{url}/health"))
        .send()
        .await
        .expect("a normal request behind idle connections");
    assert_eq!(served.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "served at once: the cap did not hold ({:?})",
        started.elapsed()
    );
    for connection in &mut idle {
        assert!(
            closed_within(connection, Duration::from_secs(10))
                .await
                .is_some(),
            "an idle connection stayed open"
        );
    }
    drop(origin);
}

#[test]
fn help_explains_every_flag_and_its_variable() {
    let help = |args: &[&str]| {
        let out = Command::new(binary("mcpbox")).args(args).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let serve = help(&["serve", "--help"]);
    for needle in [
        "--data-dir",
        "MCPBOX_DATA_DIR",
        "--listen",
        "MCPBOX_LISTEN",
        "--database-url",
        "DATABASE_URL",
        "MCPBOX_ENCRYPTION_KEY",
        "--header-read-timeout",
        "MCPBOX_HEADER_READ_TIMEOUT",
        "--max-connections",
        "MCPBOX_MAX_CONNECTIONS",
        "--mcp-require-key",
        "MCPBOX_MCP_REQUIRE_KEY",
    ] {
        assert!(
            serve.contains(needle),
            "serve --help lacks {needle}:\n{serve}"
        );
    }
    let top = help(&["--help"]);
    assert!(top.contains("serve") && top.contains("admin"));
}

/// A fresh schema in the test PostgreSQL (see the README's test command), as a DATABASE_URL.
async fn postgres_schema_url() -> String {
    let base = std::env::var("MCPBOX_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("e2e_{}", std::process::id());
    let psql = |sql: &str, db: &str| {
        let url = base
            .rsplit_once('/')
            .map(|(prefix, _)| format!("{prefix}/{db}"))
            .unwrap();
        Command::new("psql")
            .args([url.as_str(), "-v", "ON_ERROR_STOP=0", "-qc", sql])
            .output()
    };
    let _ = psql("CREATE DATABASE mcpbox_test", "postgres");
    let out = psql(
        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
        "mcpbox_test",
    )
    .expect("psql must be installed for the PostgreSQL end-to-end test");
    assert!(
        out.status.success(),
        "PostgreSQL unreachable at {base}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prefix = base.rsplit_once('/').unwrap().0;
    format!("{prefix}/mcpbox_test?options=-c%20search_path%3D{schema}")
}

/// The product as shipped: `mcpbox serve` starts its own sandbox; a tool goes from draft to an
/// approved test run over HTTP, and the run is in the execution log and the activity log.
#[tokio::test]
async fn a_tool_goes_from_draft_to_a_sandboxed_run_on_the_real_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start(ServeOptions::new(dir.path())).unwrap();
    let url = origin.url.clone();
    let ready: Value = client()
        .get(format!("{url}/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["sandbox"]["ok"], true, "{ready}");
    let token = admin_token(&url).await;
    let code = "async def main(city: str) -> dict:\n    \"\"\"Say hello.\"\"\"\n    print('hi', city)\n    return {'hello': city}\n";
    let (_, tool) = draft_tool(&url, &token, "weather", "greet", code).await;
    let (status, _) = post(
        &format!("{url}/api/tools/test-code"),
        json!({"tool_id": tool, "arguments": {"city": "Oslo"}}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 409, "a draft must not run");
    submit_and_approve(&url, &token, &tool).await;
    let (status, ran) = post(
        &format!("{url}/api/tools/test-code"),
        json!({"tool_id": tool, "arguments": {"city": "Oslo"}}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["result"], json!({"hello": "Oslo"}));
    assert_eq!(ran["stdout"], "hi Oslo\n");
    let logs: Value = client()
        .get(format!("{url}/api/execution-logs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(logs["total"], 1);
    let activity: Value = client()
        .get(format!("{url}/api/activity/logs?action=tool.approve"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(activity["items"][0]["actor"], "admin");
    // Stopping the origin stops its sandbox too.
    let pid = origin.child.id();
    assert!(origin.terminate().unwrap().success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while sandbox_children_of(pid) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sandbox outlived the origin"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Live `mcpbox-sandbox` processes whose parent is `pid`.
fn sandbox_children_of(pid: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            stat.contains("(mcpbox-sandbox)")
                && stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(pid)
                && !stat
                    .rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .count()
}

/// `mcpbox backup` while the origin serves, `mcpbox restore` into a fresh data directory: the
/// restored install signs the admin in and runs the approved tool with its secret (decrypted
/// with the same key). Overwrites, garbage files and a restore under a serving origin are refused.
#[tokio::test]
async fn backup_while_serving_and_restore_into_a_fresh_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let key = "ab".repeat(32);
    let cli = |args: &[&str], data: &std::path::Path| {
        Command::new(binary("mcpbox"))
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .env("MCPBOX_ENCRYPTION_KEY", &key)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    };
    let with_key = |data| {
        let mut options = ServeOptions::new(data);
        options.env.push(("MCPBOX_ENCRYPTION_KEY", key.clone()));
        options
    };
    let run_tool = |url: String, token: String, tool: String| async move {
        post(
            &format!("{url}/api/tools/test-code"),
            json!({"tool_id": tool, "arguments": {}}),
            Some(&token),
        )
        .await
    };

    let origin = Origin::start(with_key(&first)).unwrap();
    let url = origin.url.clone();
    let token = admin_token(&url).await;
    // Values are redacted from results; the tool reports whether it got the right one.
    let code = "def main() -> dict:\n    return {'right_key': secrets['API_KEY'] == 's3cret-' + 'value'}\n";
    let (server, tool) = draft_tool(&url, &token, "vault", "reveal", code).await;
    let secrets = format!("{url}/api/servers/{server}/secrets");
    let (status, body) = post(&secrets, json!({"key_name": "API_KEY"}), Some(&token)).await;
    assert_eq!(status, 201, "{body}");
    let set = client()
        .put(format!("{secrets}/API_KEY"))
        .bearer_auth(&token)
        .json(&json!({"value": "s3cret-value"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status().as_u16(), 204);
    submit_and_approve(&url, &token, &tool).await;
    let (status, ran) = run_tool(url.clone(), token.clone(), tool.clone()).await;
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["result"], json!({"right_key": true}));

    // Online: the origin keeps serving during and after the backup.
    let file = dir.path().join("mcpbox.backup");
    let file_arg = file.to_str().unwrap();
    let made = cli(&["backup", "--to", file_arg], &first);
    let stdout = String::from_utf8_lossy(&made.stdout);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(
        stdout.contains("1 users, 1 servers, 1 tools, 1 server_secrets"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (status, _) = run_tool(url.clone(), token.clone(), tool.clone()).await;
    assert_eq!(status, 200);
    let again = cli(&["backup", "--to", file_arg], &first);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert!(origin.terminate().unwrap().success());

    // A garbage file is refused before anything is created.
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, "not a backup").unwrap();
    let refused = cli(&["restore", "--from", garbage.to_str().unwrap()], &second);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a usable MCPbox backup"));
    assert!(!second.join("mcpbox.db").exists());

    let restored = cli(&["restore", "--from", file_arg], &second);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );

    let origin = Origin::start(with_key(&second)).unwrap();
    let url = origin.url.clone();
    let (status, login) = post(
        &format!("{url}/auth/login"),
        json!({"username": "admin", "password": PASSWORD}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let token = login["access_token"].as_str().unwrap().to_owned();
    let (status, ran) = run_tool(url.clone(), token.clone(), tool.clone()).await;
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["result"], json!({"right_key": true}));

    // Replacing the database under a serving origin is refused, even with --force.
    let busy = cli(&["restore", "--force", "--from", file_arg], &second);
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("stop it before restoring"));
    let (status, _) = run_tool(url, token, tool).await;
    assert_eq!(status, 200);
    assert!(origin.terminate().unwrap().success());
}

/// An `initialize` (2025-11-25) to `/mcp` with `authorization`: the status, the
/// `WWW-Authenticate` header and the body.
async fn initialize(url: &str, authorization: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = client()
        .post(format!("{url}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "keys-e2e", "version": "1"},
            }}),
        );
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap();
    let body = mcpbox_e2e::mcp::message_with_id(&text, &json!(1)).unwrap_or(Value::Null);
    (status, challenge, body)
}

/// Bound to 0.0.0.0 the local listener is reachable from the whole network, so `/mcp` requires
/// a client key, even from this machine; on loopback it does not, unless
/// `MCPBOX_MCP_REQUIRE_KEY` says so.
#[tokio::test]
async fn a_listener_off_loopback_requires_an_mcp_client_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut options = ServeOptions::new(&data);
    options.listen = Some("0.0.0.0:0".into());
    let origin = Origin::start(options).unwrap();
    // Reached over loopback (the Host /mcp accepts), but the listener is bound to every address.
    let url = origin.url.replace("0.0.0.0", "127.0.0.1");
    let (status, challenge, body) = initialize(&url, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(challenge.as_deref(), Some("Bearer"));
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requires a client key"),
        "{body}"
    );
    let token = admin_token(&url).await;
    let (status, _, body) = initialize(&url, Some("Bearer mcpbox_k_not-a-real-key")).await;
    assert_eq!(status, 401, "{body}");
    let (status, issued) = post(
        &format!("{url}/api/mcp-keys"),
        json!({"name": "laptop"}),
        Some(&token),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let key = issued["key"].as_str().unwrap();
    let (status, _, body) = initialize(&url, Some(&format!("Bearer {key}"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["result"]["serverInfo"].is_object(), "{body}");
    assert!(origin.terminate().unwrap().success());

    // Loopback: no key needed by default…
    let loopback = Origin::start(ServeOptions::new(&data)).unwrap();
    let (status, _, body) = initialize(&loopback.url, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(loopback.terminate().unwrap().success());
    // …unless asked for.
    let mut options = ServeOptions::new(&data);
    options.env.push(("MCPBOX_MCP_REQUIRE_KEY", "true".into()));
    let required = Origin::start(options).unwrap();
    let (status, _, body) = initialize(&required.url, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = initialize(&required.url, Some(&format!("Bearer {key}"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(required.terminate().unwrap().success());
}

/// `mcpbox admin mcp-key`: a key issued on the command line opens `/mcp` of a server that
/// requires keys, is listed without the key itself, and a revocation from the command line
/// reaches the running server at once on PostgreSQL (through NOTIFY, as from a replica).
#[tokio::test]
async fn admin_cli_issues_lists_and_revokes_mcp_client_keys() {
    let database = postgres_schema_url().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        Command::new(binary("mcpbox"))
            .args(["admin", "mcp-key"])
            .args(args)
            .args(["--data-dir", data.to_str().unwrap()])
            .env("DATABASE_URL", &database)
            .env_remove("MCPBOX_ENCRYPTION_KEY")
            .output()
            .unwrap()
    };
    let bad = run(&["create", "--name", "Not A Name"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("a key name is"));
    let created = run(&["create", "--name", "ci-runner"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("mcpbox_k_") && key.len() > 40, "{key}");
    let again = run(&["create", "--name", "ci-runner"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    let mut options = ServeOptions::new(&data);
    options.env.push(("DATABASE_URL", database.clone()));
    options.env.push(("MCPBOX_MCP_REQUIRE_KEY", "true".into()));
    let origin = Origin::start(options).unwrap();
    let (status, _, body) = initialize(&origin.url, Some(&format!("Bearer {key}"))).await;
    assert_eq!(status, 200, "{body}");

    let listed = run(&["list"]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains("ci-runner") && listed.contains("valid"),
        "{listed}"
    );
    assert!(
        !listed.contains(&key),
        "the list shows the key itself: {listed}"
    );

    let revoked = run(&["revoke", "ci-runner"]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    // Cached as valid a moment ago; the NOTIFY must beat the cache's 30 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, _, body) = initialize(&origin.url, Some(&format!("Bearer {key}"))).await;
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked key still opens /mcp: {status} {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let twice = run(&["revoke", "ci-runner"]);
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("no valid MCP client key"));
    assert!(origin.terminate().unwrap().success());
}
