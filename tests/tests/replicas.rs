//! Several origins (issue #17, DESIGN.md "Several origins"): two `mcpbox serve` processes on one
//! PostgreSQL, each with its own sandbox and data directory, behind Debian's HAProxy
//! (round-robin, sessions stuck by `Mcp-Session-Id`), spoken to by the official MCP Python SDK
//! on both protocol revisions.
//!
//! One test, because every part needs the same expensive set-up: the two replicas start together
//! on a fresh database (the migrations' advisory lock), one of them takes the jobs' lease, the
//! sign-in throttle counts across both, a tool
//! approved through A is announced to clients and live views on B, the tunnel's per-user rate
//! limit holds across both, a session whose replica is gone gets 404, and 10 000 calls at 32
//! concurrency survive replica A's SIGKILL and restart mid-run with every call answered, none
//! run twice, and as many execution-log rows as calls that ran.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcpbox_e2e::mcp::{
    Mcp, Stream, admin_token, approve_and_start, client, draft_tool, python_sdk, raise_rate_limits,
    stateless_meta,
};
use mcpbox_e2e::{Origin, ServeOptions};
use serde_json::{Value, json};

const KEY: &str = "5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const SERVICE_TOKEN: &str = "replicas-test-service-token-0123456789abcdef";
/// The calls of the load (`MCPBOX_REPLICAS_CALLS` to change it, e.g. for a quick run).
fn load_calls() -> usize {
    std::env::var("MCPBOX_REPLICAS_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}
/// Client processes and calls in flight in each (4 × 8 = 32): two on 2025-11-25 sessions, two
/// stateless on 2026-07-28.
const PROCESSES: [&str; 4] = ["legacy", "modern", "legacy", "modern"];
const PER_PROCESS: usize = 8;
/// Replica A is killed once this share of the calls is in the execution log.
const KILL_AFTER_SHARE: f64 = 0.3;
const CODE: &str =
    "async def main(n: int) -> dict:\n    \"\"\"Echo n.\"\"\"\n    return {'n': n}\n";

fn postgres_base() -> String {
    std::env::var("MCPBOX_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-Atqc", sql])
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A fresh database for this test, dropped at the end.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn create() -> Database {
        let admin = postgres_base();
        let name = format!("mcpbox_replicas_{}", std::process::id());
        psql(
            &admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let url = match admin.rfind('/') {
            Some(slash) => format!("{}/{name}", &admin[..slash]),
            None => panic!("unexpected PostgreSQL URL"),
        };
        Database { admin, name, url }
    }

    fn query(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin,
                "-Atqc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One replica: its own data directory (and so its own sandbox), fixed ports so HAProxy finds it
/// again after a restart, and its log lines kept.
struct Replica {
    name: &'static str,
    dir: tempfile::TempDir,
    port: u16,
    tunnel_port: u16,
    origin: Option<Origin>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    fn new(name: &'static str) -> Replica {
        Replica {
            name,
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            tunnel_port: free_port(),
            origin: None,
            log: Arc::default(),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn tunnel(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.tunnel_port)
    }

    fn start(database: &str, dir: &Path, port: u16, tunnel_port: u16) -> Origin {
        let mut options = ServeOptions::new(dir);
        options.listen = Some(format!("127.0.0.1:{port}"));
        options.env = vec![
            ("DATABASE_URL", database.to_owned()),
            ("MCPBOX_ENCRYPTION_KEY", KEY.to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ];
        options.args = vec![
            "--tunnel-listen".into(),
            format!("127.0.0.1:{tunnel_port}"),
            "--service-token".into(),
            SERVICE_TOKEN.into(),
        ];
        Origin::start(options).unwrap()
    }

    /// Moves the log lines read so far into `log`, and returns whether one contains `needle`.
    fn logged(&self, needle: &str) -> bool {
        let mut log = self.log.lock().unwrap();
        if let Some(origin) = &self.origin {
            log.extend(origin.log.try_iter());
        }
        log.iter().any(|line| line.contains(needle))
    }
}

/// HAProxy from Debian in the foreground: `/mcp` round-robin over both admin listeners, a
/// 2025-11-25 session stuck to the replica that answered its `initialize`, health-checked so a
/// dead replica leaves the rotation; no retry of a request once sent (HAProxy's default: only a
/// failed connection is tried elsewhere).
struct Haproxy {
    child: Child,
    port: u16,
    _config: tempfile::NamedTempFile,
}

impl Haproxy {
    fn start(a: &Replica, b: &Replica) -> Haproxy {
        let binary = which("haproxy").unwrap_or_else(|| {
            panic!(
                "haproxy is not installed: scripts/test installs Debian's (apt-get install haproxy)"
            )
        });
        let port = free_port();
        let mut config = tempfile::NamedTempFile::new().unwrap();
        write!(
            config,
            "global\n  maxconn 2000\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 120s\n  timeout server 120s\n  \
             timeout tunnel 1h\n  retries 2\n  option redispatch\n\
             frontend mcp\n  bind 127.0.0.1:{port}\n  default_backend origins\n\
             backend origins\n  balance roundrobin\n  \
             stick-table type string len 64 size 100k expire 30m\n  \
             stick match req.hdr(mcp-session-id)\n  stick store-response res.hdr(mcp-session-id)\n  \
             option httpchk GET /health\n  http-check expect status 200\n  \
             default-server check inter 300ms fall 1 rise 2\n  \
             server a 127.0.0.1:{}\n  server b 127.0.0.1:{}\n",
            a.port, b.port
        )
        .unwrap();
        let child = Command::new(binary)
            .args(["-db", "-f"])
            .arg(config.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Haproxy {
            child,
            port,
            _config: config,
        }
    }

    fn mcp(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|path| path.exists())
}

fn sdk_command(python: &str, sdk: &Path) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/replicas_load.py");
    let mut command = Command::new(python);
    command.arg(script).env("PYTHONPATH", sdk);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_behind_haproxy_are_one_product() {
    let (python, sdk) = python_sdk();
    let database = Database::create();
    let mut a = Replica::new("a");
    let mut b = Replica::new("b");

    // Both start at once on the empty database: sqlx's migrator takes an advisory lock, so one
    // applies the migrations and the other waits, then finds them applied.
    let started = {
        let (url, dir_a, dir_b) = (
            database.url.clone(),
            a.dir.path().to_owned(),
            b.dir.path().to_owned(),
        );
        let (pa, ta, pb, tb) = (a.port, a.tunnel_port, b.port, b.tunnel_port);
        let url_b = url.clone();
        let one = std::thread::spawn(move || Replica::start(&url, &dir_a, pa, ta));
        let two = std::thread::spawn(move || Replica::start(&url_b, &dir_b, pb, tb));
        (one.join().unwrap(), two.join().unwrap())
    };
    a.origin = Some(started.0);
    b.origin = Some(started.1);
    let migrations = database
        .query("SELECT COUNT(*), COUNT(DISTINCT version), BOOL_AND(success) FROM _sqlx_migrations");
    let applied =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/postgres"))
            .unwrap()
            .count();
    assert_eq!(
        migrations,
        format!("{applied}|{applied}|t"),
        "each migration applied once"
    );

    // The jobs run on one replica: exactly one takes the lease.
    let deadline = Instant::now() + Duration::from_secs(15);
    let leader = loop {
        let (la, lb) = (
            a.logged("runs the background jobs"),
            b.logged("runs the background jobs"),
        );
        if la || lb {
            std::thread::sleep(Duration::from_secs(6));
            let (la, lb) = (
                a.logged("runs the background jobs"),
                b.logged("runs the background jobs"),
            );
            assert!(
                la != lb,
                "exactly one replica holds the jobs' lease (a: {la}, b: {lb})"
            );
            break if la { "a" } else { "b" };
        }
        assert!(Instant::now() < deadline, "no replica took the jobs' lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // One product: the account made on A signs in on B, and B's limits follow A's settings.
    let token = admin_token(&a.url()).await;
    raise_rate_limits(&b.url(), &token).await;

    // The sign-in throttle is shared: five wrong passwords from this address on A, and the
    // sixth attempt on B is refused before its password is checked.
    for replica in [&a, &b, &a, &b, &a] {
        let (status, _) = login(&replica.url(), "mallory").await;
        assert_eq!(status, 401);
    }
    let (status, refused) = login(&b.url(), "mallory").await;
    assert_eq!(
        status, 429,
        "the sixth failure across both replicas: {refused}"
    );
    let haproxy = Haproxy::start(&a, &b);

    // A change made through A reaches B's list_changed streams (both revisions, the SDK) and
    // B's live activity view.
    let mut announce = sdk_command(&python, &sdk)
        .args(["announce", &format!("{}/mcp", b.url())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut announced = BufReader::new(announce.stdout.take().unwrap());
    let mut line = String::new();
    announced.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the SDK clients on B did not connect");
    let live = client()
        .get(format!("{}/api/activity/stream", b.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let live = Stream::follow(live);
    let (server, tool) = draft_tool(&a.url(), &token, "load", "echo", CODE).await;
    approve_and_start(&a.url(), &token, &server, &tool).await;
    line.clear();
    let read = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        announced.read_line(&mut line).unwrap();
        line
    });
    let heard = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("B's clients heard of the approval on A within 30 s")
        .unwrap();
    let heard: Value = serde_json::from_str(&heard).unwrap_or_else(|_| {
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut announce.stderr.take().unwrap(), &mut err);
        panic!("announce failed: {heard} {err}")
    });
    let _ = announce.wait();
    assert_eq!(
        heard["versions"],
        json!(["2025-11-25", "2026-07-28"]),
        "{heard}"
    );
    assert_eq!(heard["tools"], json!(["load__echo"]), "{heard}");
    assert!(heard["modern_event"].as_str().is_some(), "{heard}");
    live.wait_for("\"action\":\"server.start\"").await;
    // A call on A is a live event on B too.
    let mut on_a = Mcp::session(&format!("{}/mcp", a.url())).await;
    let answer = on_a
        .call(
            "tools/call",
            json!({"name": "load__echo", "arguments": {"n": -1}}),
        )
        .await;
    assert_eq!(answer["result"]["structuredContent"]["n"], -1, "{answer}");
    live.wait_for("\"action\":\"tool.call\"").await;

    // The tunnel's per-user limit holds across both replicas: 60 a minute, bursts of 6. Twenty
    // requests alternating between A and B get 6 through (7 if a token came back meanwhile), not
    // 6 per replica.
    let (status, policy) = api_patch(
        &format!("{}/api/settings/security-policy", a.url()),
        json!({"mcp_rate_limit_rpm": 60}),
        &token,
    )
    .await;
    assert_eq!(status, 200, "{policy}");
    let (mut allowed, mut refused_by) = (0, HashSet::new());
    let rate_started = Instant::now();
    for i in 0..20 {
        let replica = if i % 2 == 0 { &a } else { &b };
        let status = tunnel_ping(&replica.tunnel(), "rate@example.com").await;
        match status {
            200 => allowed += 1,
            429 => {
                refused_by.insert(replica.name);
            }
            other => panic!("tunnel ping answered {other}"),
        }
    }
    let rate_elapsed = rate_started.elapsed();
    assert!(
        (6..=7).contains(&allowed),
        "{allowed} of 20 allowed across two replicas (limit: 6 at once)"
    );
    assert_eq!(
        refused_by.len(),
        2,
        "both replicas refused once the shared bucket was empty"
    );

    // The replica killed mid-load is the one holding the jobs' lease, so the lease must move.
    let (victim, survivor) = if leader == "a" {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };

    // A 2025-11-25 session whose replica is gone: the spec's 404, whichever replica answers.
    let orphan = Mcp::session(&format!("{}/mcp", victim.url())).await;
    let orphan_id = orphan.session.clone().unwrap();

    // The load: 10 000 calls at 32 concurrency through HAProxy; A is killed with SIGKILL once
    // 30 % are logged, and restarted.
    let calls = load_calls();
    let per = calls / PROCESSES.len();
    let calls = per * PROCESSES.len();
    let kill_after = (calls as f64 * KILL_AFTER_SHARE) as i64;
    let load_started = Instant::now();
    let mut children: Vec<Child> = PROCESSES
        .iter()
        .enumerate()
        .map(|(i, mode)| {
            sdk_command(&python, &sdk)
                .args([
                    "load",
                    &haproxy.mcp(),
                    "load__echo",
                    &(i * per).to_string(),
                    &per.to_string(),
                    &PER_PROCESS.to_string(),
                    mode,
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let logged = || -> i64 {
        database
            .query("SELECT COUNT(*) FROM execution_logs WHERE tool_name = 'load__echo'")
            .parse()
            .unwrap()
    };
    while logged() < kill_after {
        let running = children
            .iter_mut()
            .map(|c| c.try_wait().unwrap().is_none())
            .filter(|r| *r)
            .count();
        if running == 0 || load_started.elapsed() > Duration::from_secs(600) {
            let outputs: Vec<String> = children
                .into_iter()
                .map(|child| {
                    let output = child.wait_with_output().unwrap();
                    let text = String::from_utf8_lossy(&output.stdout);
                    format!(
                        "{} | {}",
                        text.chars().take(600).collect::<String>(),
                        String::from_utf8_lossy(&output.stderr)
                            .chars()
                            .take(1500)
                            .collect::<String>()
                    )
                })
                .collect();
            panic!(
                "the load is too slow: {} logged after {:?}; {outputs:#?}",
                logged(),
                load_started.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let killed_at = load_started.elapsed();
    if let Some(mut origin) = victim.origin.take() {
        origin.child.kill().unwrap(); // SIGKILL
        origin.child.wait().unwrap();
    }
    // From here on, only what the restarted process logs.
    victim.log.lock().unwrap().clear();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarted_at = load_started.elapsed();
    victim.origin = Some(Replica::start(
        &database.url,
        victim.dir.path(),
        victim.port,
        victim.tunnel_port,
    ));
    let outputs: Vec<Value> = children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
                panic!(
                    "a client process failed: {stdout}\n{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            })
        })
        .collect();
    let load_elapsed = load_started.elapsed();

    // Every call answered: as a result or as an error, exactly once.
    let mut ok: HashSet<i64> = HashSet::new();
    let mut errors: HashMap<i64, String> = HashMap::new();
    let mut reinitialized = 0;
    for output in &outputs {
        for n in output["ok"].as_array().unwrap() {
            assert!(ok.insert(n.as_i64().unwrap()), "{n} answered twice");
        }
        for (n, message) in output["errors"].as_object().unwrap() {
            let n: i64 = n.parse().unwrap();
            assert!(!ok.contains(&n) && errors.insert(n, message.to_string()).is_none());
        }
        reinitialized += output["reinitialized"].as_i64().unwrap();
    }
    assert_eq!(
        ok.len() + errors.len(),
        calls,
        "every call came back to its client"
    );

    // None ran twice; every call that succeeded is logged; the log holds nothing else.
    let mut rows: BTreeMap<i64, usize> = BTreeMap::new();
    for arguments in database
        .query("SELECT arguments FROM execution_logs WHERE tool_name = 'load__echo'")
        .lines()
    {
        let n = serde_json::from_str::<Value>(arguments).unwrap()["n"]
            .as_i64()
            .unwrap();
        *rows.entry(n).or_default() += 1;
    }
    rows.remove(&-1);
    let twice: Vec<_> = rows.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "calls that ran twice: {twice:?}");
    assert!(
        ok.iter().all(|n| rows.contains_key(n)),
        "a successful call is missing from the log"
    );
    assert!(
        rows.keys().all(|n| (0..calls as i64).contains(n)),
        "a log row of a call never made"
    );
    let ran_answer_lost = errors.keys().filter(|n| rows.contains_key(n)).count();
    assert_eq!(
        rows.len(),
        ok.len() + ran_answer_lost,
        "execution-log rows equal the calls that ran"
    );
    assert!(
        errors.len() < calls / 20,
        "{} errors: only calls around the kill may fail; e.g. {:?}",
        errors.len(),
        errors.values().take(3).collect::<Vec<_>>()
    );

    // The orphaned session: the restarted replica and the other both answer 404, whichever
    // HAProxy picks.
    for _ in 0..2 {
        let status = client()
            .post(haproxy.mcp())
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &orphan_id)
            .header("mcp-protocol-version", "2025-11-25")
            .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {}}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "a session whose replica is gone");
    }

    // The lease was released with the killed holder's connection: one replica (the survivor,
    // or the restarted one if it asked first) holds it again, and only one.
    let holds = || {
        (
            survivor.logged("runs the background jobs"),
            victim.logged("runs the background jobs"),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while holds() == (false, false) {
        assert!(
            Instant::now() < deadline,
            "nobody took the jobs' lease over after its holder died"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (by_survivor, by_restarted) = holds();
    assert!(
        by_survivor != by_restarted,
        "exactly one replica holds the lease again"
    );
    let lease_after = if by_survivor {
        survivor.name
    } else {
        victim.name
    };

    let calls_per_second = calls as f64 / load_elapsed.as_secs_f64();
    println!(
        "replicas: {calls} calls at {} concurrency in {:.1} s ({calls_per_second:.0}/s); {} (the lease holder) killed at \
         {:.1} s, restarted at {:.1} s; {} succeeded, {} errors ({} of them ran, answer lost), \
         {} clients re-initialized after an error; log rows {}; none twice; rate limit: {allowed} \
         of 20 across both in {} ms; jobs' lease first on {leader}, then on \
         {lease_after}",
        PROCESSES.len() * PER_PROCESS,
        load_elapsed.as_secs_f64(),
        victim.name,
        killed_at.as_secs_f64(),
        restarted_at.as_secs_f64(),
        ok.len(),
        errors.len(),
        ran_answer_lost,
        reinitialized,
        rows.len(),
        rate_elapsed.as_millis(),
    );
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for message in errors.values() {
        let kind: String = message.chars().take(60).collect();
        *kinds.entry(kind).or_default() += 1;
    }
    let terminated = errors
        .values()
        .filter(|message| message.contains("Session terminated"))
        .count();
    println!(
        "replicas: errors by kind: {kinds:?}; {terminated} calls met the spec's 404 for a session \
         whose replica was gone (the SDK's \"Session terminated\"; never run) and their clients \
         initialized again"
    );
}

async fn login(url: &str, username: &str) -> (u16, Value) {
    let response = client()
        .post(format!("{url}/auth/login"))
        .json(&json!({"username": username, "password": "not the password at all"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn api_patch(url: &str, body: Value, token: &str) -> (u16, Value) {
    let response = client()
        .patch(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A stateless `tools/list` on a tunnel listener as the Worker sends it (service token, user email).
async fn tunnel_ping(url: &str, email: &str) -> u16 {
    let mut mcp = Mcp::stateless(url);
    mcp.headers = vec![
        (contract_header::SERVICE_TOKEN, SERVICE_TOKEN.to_owned()),
        (contract_header::USER_EMAIL, email.to_owned()),
    ];
    let mut params = json!({});
    params["_meta"] = stateless_meta();
    mcp.request("tools/list", &params)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The Worker's identity headers (`contract::headers`, which this crate does not link).
mod contract_header {
    pub const SERVICE_TOKEN: &str = "x-mcpbox-service-token";
    pub const USER_EMAIL: &str = "x-mcpbox-user-email";
}
