//! Alerts end to end: a real HTTP receiver on 127.0.0.1 (axum) stands for Slack, Discord and a
//! generic webhook; each event is caused through the code path where it happens (the sandbox
//! dispatch against a supervisor that hangs up, an external source that stopped answering,
//! wrong passwords over `/auth/login`, the monitor over a real sandbox whose zygote is killed,
//! rows waiting for approval) and must arrive exactly once per webhook, in its flavour's shape.
//! Storage and the REST API run on both backends.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use common::{KEY, TestApp, external_mcpbox, ip, on_both_backends};
use origin::activity::Audit;
use origin::alerts::webhooks::{self, NewWebhook};
use origin::alerts::{self, Kind, Monitor, Raised};
use origin::app::AppState;
use origin::crypto::Keyring;
use origin::dispatch::{Sandbox, SandboxSource};
use serde_json::{Value, json};
use sqlx::Row;

on_both_backends!(
    webhooks_are_stored_encrypted_shown_masked_admin_only_and_audited,
    alert_settings_are_validated_whole_and_applied,
);

// ---------------------------------------------------------------------------------------------
// The receiver.

#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    /// Accept the request and never answer.
    Hang,
}

#[derive(Clone, Debug)]
struct Hit {
    path: String,
    body: Value,
    at: Instant,
}

#[derive(Default)]
struct Receiver {
    hits: Mutex<Vec<Hit>>,
    /// Replies for the next requests, in order; then 200.
    script: Mutex<VecDeque<Reply>>,
}

struct Served {
    receiver: Arc<Receiver>,
    base: String,
}

impl Served {
    async fn start() -> Served {
        let receiver = Arc::new(Receiver::default());
        let app = Router::new()
            .route("/{flavour}", post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Served {
            receiver,
            base: format!("http://{address}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    fn script(&self, replies: &[Reply]) {
        self.receiver.script.lock().unwrap().extend(replies);
    }

    fn hits(&self) -> Vec<Hit> {
        self.receiver.hits.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived, then a little longer to see that no more come.
    async fn exactly(&self, n: usize) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.hits().len() < n {
            assert!(
                Instant::now() < deadline,
                "expected {n} deliveries, got {:?}",
                self.hits()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        let hits = self.hits();
        assert_eq!(hits.len(), n, "{hits:?}");
        hits
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    Path(flavour): Path<String>,
    body: Bytes,
) -> axum::response::Response {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    receiver.hits.lock().unwrap().push(Hit {
        path: flavour,
        body,
        at: Instant::now(),
    });
    let reply = receiver
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Status(200));
    match reply {
        Reply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Reply::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
    }
}

fn audit() -> Audit {
    Audit {
        actor: "admin".into(),
        request_id: None,
    }
}

/// One webhook of each flavour, at the receiver's `/slack`, `/discord` and `/generic`.
async fn three_webhooks(state: &AppState, served: &Served) {
    for flavour in ["slack", "discord", "generic"] {
        webhooks::create_recorded(
            state,
            NewWebhook {
                name: flavour,
                flavour,
                url: &served.url(flavour),
                enabled: true,
            },
            &audit(),
        )
        .await
        .unwrap();
    }
}

/// Exactly one delivery per flavour, each in its shape, all about `kind`.
async fn one_per_flavour(served: &Served, kind: Kind) -> Value {
    let hits = served.exactly(3).await;
    let mut generic = Value::Null;
    for hit in hits {
        let keys: Vec<&str> = hit
            .body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        match hit.path.as_str() {
            "slack" => {
                assert_eq!(keys, ["text"], "{}", hit.body);
                assert!(hit.body["text"].as_str().unwrap().contains(kind.title()));
            }
            "discord" => {
                assert_eq!(keys, ["allowed_mentions", "content"], "{}", hit.body);
                assert_eq!(hit.body["allowed_mentions"], json!({"parse": []}));
                assert!(hit.body["content"].as_str().unwrap().contains(kind.title()));
            }
            "generic" => {
                let mut sorted = keys.clone();
                sorted.sort_unstable();
                assert_eq!(
                    sorted,
                    [
                        "details",
                        "message",
                        "severity",
                        "source",
                        "timestamp",
                        "title"
                    ],
                    "{}",
                    hit.body
                );
                assert_eq!(hit.body["title"], kind.title());
                assert_eq!(hit.body["source"], "mcpbox");
                assert_eq!(hit.body["details"]["kind"], kind.as_str());
                assert_eq!(hit.body["severity"], kind.severity().as_str());
                generic = hit.body;
            }
            other => panic!("delivery to {other}"),
        }
    }
    generic
}

/// A state over `app`'s database with `sandbox` (and the delivery task started).
fn state_with(app: &TestApp, sandbox: Sandbox) -> AppState {
    let state = AppState::new(app.state.db.clone(), Keyring::new(KEY, None), sandbox);
    alerts::start_delivery(&state).unwrap();
    state
}

// ---------------------------------------------------------------------------------------------
// Storage and REST (both backends).

async fn webhooks_are_stored_encrypted_shown_masked_admin_only_and_audited(app: TestApp) {
    let served = Served::start().await;
    let token = app.admin().await.token("access_token");
    let secret_url = format!("{}/generic?token=TOPSECRETtoken", served.base);
    let created = app
        .post(
            "/api/alerts/webhooks",
            Some(&token),
            json!({"name": "ops", "flavour": "generic", "url": secret_url}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert!(!created.text.contains("TOPSECRET"), "{}", created.text);
    assert!(
        created.body["url_masked"]
            .as_str()
            .unwrap()
            .ends_with("oken"),
        "{}",
        created.text
    );
    let id = created.token("id");
    // At rest, only ciphertext.
    let row = sqlx::query("SELECT url_encrypted FROM alert_webhooks WHERE id = $1")
        .bind(&id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    let stored: String = row.try_get("url_encrypted").unwrap();
    assert!(!stored.contains("TOPSECRET") && !stored.contains("127.0.0.1"));
    let listed = app.get("/api/alerts/webhooks", Some(&token)).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["webhooks"][0]["name"], "ops");
    assert!(!listed.text.contains("TOPSECRET"));

    // Not for anyone but an admin.
    let approver = app
        .user_with_role(&token, "carol", "approver")
        .await
        .token("access_token");
    let create = json!({"name": "x", "flavour": "slack", "url": "https://example.com/x"});
    for (method, path, body) in [
        (Method::GET, "/api/alerts/webhooks".to_owned(), json!({})),
        (Method::POST, "/api/alerts/webhooks".to_owned(), create),
        (Method::GET, format!("/api/alerts/webhooks/{id}"), json!({})),
        (
            Method::PATCH,
            format!("/api/alerts/webhooks/{id}"),
            json!({"enabled": false}),
        ),
        (
            Method::DELETE,
            format!("/api/alerts/webhooks/{id}"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/alerts/webhooks/{id}/test"),
            json!({}),
        ),
        (Method::GET, "/api/settings/alerts".to_owned(), json!({})),
        (
            Method::PATCH,
            "/api/settings/alerts".to_owned(),
            json!({"sign_in_failures": 3}),
        ),
    ] {
        let refused = app
            .call(method.clone(), &path, Some(&approver), body.clone())
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method} {path}");
        let anonymous = app.call(method.clone(), &path, None, body).await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
    }
    assert_eq!(
        app.count("alert_webhooks").await,
        1,
        "nothing was changed by them"
    );
    assert!(served.hits().is_empty(), "nothing was sent for them");

    // Bad input: clear 4xx, nothing stored.
    for bad in [
        json!({"name": "a", "flavour": "slack", "url": "http://hooks.slack.com/services/x"}),
        json!({"name": "a", "flavour": "slack", "url": "file:///etc/passwd"}),
        json!({"name": "a", "flavour": "teams", "url": "https://example.com/x"}),
        json!({"name": "", "flavour": "slack", "url": "https://example.com/x"}),
        json!({"name": "a\u{7}", "flavour": "slack", "url": "https://example.com/x"}),
    ] {
        let refused = app
            .post("/api/alerts/webhooks", Some(&token), bad.clone())
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            refused.text
        );
        refused.error_code();
    }
    let unknown = app
        .post(
            "/api/alerts/webhooks",
            Some(&token),
            json!({"name": "a", "flavour": "slack", "url": "https://example.com/x", "secret": 1}),
        )
        .await;
    assert!(unknown.status.is_client_error(), "{}", unknown.text);
    let twice = app
        .post(
            "/api/alerts/webhooks",
            Some(&token),
            json!({"name": "ops", "flavour": "slack", "url": "https://example.com/x"}),
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.text);
    assert_eq!(app.count("alert_webhooks").await, 1);

    // A test send reaches the receiver and its outcome is shown; a refusing receiver is a
    // failure with the status in words.
    let tested = app
        .post(
            &format!("/api/alerts/webhooks/{id}/test"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(tested.status, StatusCode::OK, "{}", tested.text);
    assert_eq!(tested.body["last_status"], "delivered", "{}", tested.text);
    assert_eq!(tested.body["delivered_count"], 1);
    let hits = served.exactly(1).await;
    assert_eq!(hits[0].body["details"]["kind"], "test");
    served.script(&[Reply::Status(404)]);
    let failing = app
        .post(
            &format!("/api/alerts/webhooks/{id}/test"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(failing.body["last_status"], "failed", "{}", failing.text);
    assert_eq!(failing.body["last_error"], "the webhook answered 404");
    assert_eq!(failing.body["failed_count"], 1);

    // Update: disable, a new URL resets the delivery record; a bad URL changes nothing.
    let path = format!("/api/alerts/webhooks/{id}");
    let disabled = app
        .call(
            Method::PATCH,
            &path,
            Some(&token),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(disabled.body["enabled"], false, "{}", disabled.text);
    let refused = app
        .call(
            Method::PATCH,
            &path,
            Some(&token),
            json!({"url": "ftp://x/"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let moved = app
        .call(
            Method::PATCH,
            &path,
            Some(&token),
            json!({"url": "https://hooks.example.com/new/WXYZ", "flavour": "slack"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    assert_eq!(moved.body["url_masked"], "https://hooks.example.com/…WXYZ");
    assert_eq!(moved.body["flavour"], "slack");
    assert_eq!(moved.body["last_status"], Value::Null);
    let missing = app
        .call(
            Method::PATCH,
            "/api/alerts/webhooks/nope",
            Some(&token),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // The bound: at most MAX_WEBHOOKS, also when many creations arrive at the same moment.
    let names: Vec<String> = (0..webhooks::MAX_WEBHOOKS + 10)
        .map(|i| format!("hook{i}"))
        .collect();
    let attempts = names.iter().map(|name| {
        app.post(
            "/api/alerts/webhooks",
            Some(&token),
            json!({"name": name, "flavour": "discord", "url": "https://example.com/x"}),
        )
    });
    let answers = futures_util::future::join_all(attempts).await;
    let made = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .count() as i64;
    assert_eq!(made, webhooks::MAX_WEBHOOKS - 1);
    for answer in answers.iter().filter(|a| a.status != StatusCode::CREATED) {
        assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text);
        assert!(answer.text.contains("delete one first"), "{}", answer.text);
    }
    assert_eq!(app.count("alert_webhooks").await, webhooks::MAX_WEBHOOKS);

    let deleted = app
        .call(Method::DELETE, &path, Some(&token), json!({}))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app.get(&path, Some(&token)).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    // Every change is in the activity log, by the admin, without the URL.
    let rows = sqlx::query(
        "SELECT action, actor, details FROM activity_logs WHERE action LIKE 'alerts.%' ORDER BY created_at",
    )
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap();
    let actions: Vec<String> = rows.iter().map(|r| r.try_get("action").unwrap()).collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "alerts.webhook_create")
            .count() as i64,
        webhooks::MAX_WEBHOOKS
    );
    for action in [
        "alerts.webhook_test",
        "alerts.webhook_update",
        "alerts.webhook_delete",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
    for row in &rows {
        let details: String = row.try_get("details").unwrap();
        assert!(!details.contains("TOPSECRET"), "{details}");
        assert_eq!(row.try_get::<String, _>("actor").unwrap(), "admin");
    }

    // A re-encryption after a key rotation rewrites webhook URLs too.
    let rotated = Keyring::new([7; 32], Some(KEY));
    let report = origin::secrets::rotation::reencrypt(&app.state.db, &rotated)
        .await
        .unwrap();
    assert_eq!(report.reencrypted as i64, webhooks::MAX_WEBHOOKS - 1);
    assert!(report.previous_key_unused());
}

async fn alert_settings_are_validated_whole_and_applied(app: TestApp) {
    let token = app.admin().await.token("access_token");
    // The routes are in the OpenAPI document with their bodies, and every reference resolves.
    let doc = app.get("/api/openapi.json", None).await;
    for path in [
        "/api/alerts/webhooks",
        "/api/alerts/webhooks/{id}",
        "/api/alerts/webhooks/{id}/test",
        "/api/settings/alerts",
    ] {
        assert!(doc.body["paths"][path].is_object(), "{path} missing");
    }
    for schema in [
        "alerts.Webhook",
        "alerts.WebhookCreate",
        "alerts.SettingsView",
        "alerts.Settings",
        "alerts.Flavour",
        "alerts.Kind",
    ] {
        assert!(
            doc.body["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
    let text = doc.text.clone();
    for (i, _) in text.match_indices("#/components/schemas/") {
        let name: String = text[i + 21..].chars().take_while(|c| *c != '"').collect();
        assert!(
            doc.body["components"]["schemas"][&name].is_object(),
            "dangling reference to {name}"
        );
    }
    let shown = app.get("/api/settings/alerts", Some(&token)).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    assert_eq!(shown.body["settings"]["approval_wait_minutes"], 60);
    assert_eq!(
        shown.body["stats"]["queue_capacity"],
        alerts::QUEUE_CAPACITY
    );
    for bad in [
        json!({"sign_in_failures": 2}),
        json!({"dedup_window_minutes": 0}),
        json!({"per_webhook_per_minute": 601}),
        json!({"approval_wait_minutes": 30, "sign_in_window_minutes": 100000}),
        json!({"approval_wait_minutes": "soon"}),
        json!({"unknown": 1}),
    ] {
        let refused = app
            .call(
                Method::PATCH,
                "/api/settings/alerts",
                Some(&token),
                bad.clone(),
            )
            .await;
        assert!(refused.status.is_client_error(), "{bad}: {}", refused.text);
    }
    // Nothing half applied.
    let unchanged = app.get("/api/settings/alerts", Some(&token)).await;
    assert_eq!(unchanged.body["settings"]["approval_wait_minutes"], 60);
    let saved = app
        .call(
            Method::PATCH,
            "/api/settings/alerts",
            Some(&token),
            json!({"approval_wait_minutes": 5, "sign_in_failures": 3}),
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
    assert_eq!(saved.body["settings"]["approval_wait_minutes"], 5);
    assert_eq!(saved.body["settings"]["dedup_window_minutes"], 15);
    assert_eq!(app.state.alerts.settings().sign_in_failures, 3);
    assert_eq!(
        alerts::settings::load(&app.state.db)
            .await
            .unwrap()
            .approval_wait_minutes,
        5
    );
}

// ---------------------------------------------------------------------------------------------
// Each event, from where it happens.

/// A "supervisor" on a real unix socket that accepts and hangs up: every dispatch fails in
/// transit, which is what the breaker counts.
async fn hanging_up_supervisor() -> (Sandbox, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sandbox.sock");
    let key_file = dir.path().join("sandbox.key");
    std::fs::write(&key_file, "k").unwrap();
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let sandbox = Sandbox::open(SandboxSource::External { socket, key_file })
        .await
        .unwrap();
    (sandbox, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opening_alerts_each_webhook_once() {
    let app = TestApp::sqlite().await;
    let served = Served::start().await;
    let (sandbox, _dir) = hanging_up_supervisor().await;
    let state = state_with(&app, sandbox);
    three_webhooks(&state, &served).await;
    for _ in 0..5 {
        assert!(state.sandbox.health().await.is_err());
    }
    assert_eq!(
        state.sandbox.circuit(),
        origin::dispatch::CircuitState::Open
    );
    let generic = one_per_flavour(&served, Kind::BreakerOpened).await;
    assert_eq!(generic["details"]["subject"], "sandbox");
    // Refused calls while open, and a reset and a second opening within the window: no more.
    for _ in 0..3 {
        assert!(state.sandbox.health().await.is_err());
    }
    state.sandbox.reset_circuit();
    for _ in 0..5 {
        assert!(state.sandbox.health().await.is_err());
    }
    served.exactly(3).await;
    assert_eq!(state.alerts.stats().deduplicated, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_that_stops_answering_alerts_once() {
    let app = TestApp::sqlite().await;
    let served = Served::start().await;
    let state = state_with(&app, Sandbox::unavailable("gone"));
    three_webhooks(&state, &served).await;
    let mut monitor = Monitor::default();
    for _ in 0..alerts::SANDBOX_DOWN_CHECKS + 2 {
        monitor.check_sandbox(&state).await;
    }
    let generic = one_per_flavour(&served, Kind::SandboxUnavailable).await;
    assert!(
        generic["message"].as_str().unwrap().contains("gone"),
        "{generic}"
    );
}

/// The zygote of the sandbox's supervisor (its child running `zygote`).
fn zygote_of(supervisor: u32) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(supervisor) && String::from_utf8_lossy(&cmdline).contains("zygote") {
            return Some(pid);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zygote_crash_loop_alerts_once() {
    let app = TestApp::sqlite().await.with_sandbox().await;
    let served = Served::start().await;
    alerts::start_delivery(&app.state).unwrap();
    three_webhooks(&app.state, &served).await;
    let mut monitor = Monitor::default();
    monitor.check_sandbox(&app.state).await;
    let supervisor = app.state.sandbox.supervisor_pid().unwrap();
    for round in 1..=alerts::CRASH_LOOP_RESTARTS as u64 {
        let zygote = zygote_of(supervisor).expect("a zygote");
        // SAFETY: killing the zygote of the supervisor this test started.
        unsafe { libc::kill(zygote, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(health) = app.state.sandbox.health().await
                && health.zygote_restarts >= round
                && zygote_of(supervisor).is_some_and(|pid| pid != zygote)
            {
                break;
            }
            assert!(Instant::now() < deadline, "the zygote did not come back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        monitor.check_sandbox(&app.state).await;
        if round < alerts::CRASH_LOOP_RESTARTS as u64 {
            assert!(served.hits().is_empty(), "one crash is not a loop");
        }
    }
    let generic = one_per_flavour(&served, Kind::ZygoteCrashLoop).await;
    assert_eq!(generic["details"]["zygote_restarts"], 3, "{generic}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_spiking_alert_once() {
    let app = TestApp::sqlite().await;
    let served = Served::start().await;
    alerts::start_delivery(&app.state).unwrap();
    let token = app.admin().await.token("access_token");
    three_webhooks(&app.state, &served).await;
    let saved = app
        .call(
            Method::PATCH,
            "/api/settings/alerts",
            Some(&token),
            json!({"sign_in_failures": 4, "sign_in_window_minutes": 5}),
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
    // Wrong passwords from several addresses (each under its own throttle).
    for i in 0..3 {
        let refused = app.login_from(ip(i), "admin", "wrong password!").await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    }
    assert!(served.hits().is_empty(), "below the threshold");
    let refused = app.login_from(ip(9), "nobody", "wrong password!").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let generic = one_per_flavour(&served, Kind::SignInFailures).await;
    assert_eq!(generic["details"]["failures"], 4);
    // The spike goes on: still one alert.
    for i in 10..20 {
        app.login_from(ip(i), "admin", "wrong password!").await;
    }
    served.exactly(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_waiting_too_long_alert_once() {
    let app = TestApp::sqlite().await;
    let served = Served::start().await;
    alerts::start_delivery(&app.state).unwrap();
    let token = app.admin().await.token("access_token");
    three_webhooks(&app.state, &served).await;
    let server = app.create_server(&token, "waiting").await;
    let old = origin::db::timestamp(chrono::Utc::now() - chrono::Duration::minutes(90));
    let fresh = origin::db::now();
    for (target, at) in [("numpy", &old), ("pandas", &fresh)] {
        sqlx::query(
            "INSERT INTO access_requests (id, kind, server_id, target, requested_by, status, created_at, updated_at) \
             VALUES ($1, 'module', $2, $3, 'llm', 'pending', $4, $4)",
        )
        .bind(origin::db::new_id())
        .bind(&server)
        .bind(target)
        .bind(at)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    }
    // Under the threshold (120 minutes): nothing.
    app.state.alerts.apply_settings(alerts::AlertSettings {
        approval_wait_minutes: 120,
        ..alerts::AlertSettings::default()
    });
    alerts::check_approvals(&app.state).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(served.hits().is_empty());
    app.state.alerts.apply_settings(alerts::AlertSettings {
        approval_wait_minutes: 60,
        ..alerts::AlertSettings::default()
    });
    alerts::check_approvals(&app.state).await.unwrap();
    alerts::check_approvals(&app.state).await.unwrap();
    let generic = one_per_flavour(&served, Kind::ApprovalsWaiting).await;
    assert_eq!(generic["details"]["access_requests"], 1, "only the old one");
}

/// An imported, approved passthrough tool whose source then stops answering (its URL now
/// points at a closed port): (tool id, source id).
async fn passthrough_to_a_dead_source(app: &TestApp, token: &str) -> (String, String) {
    let server = app.create_server(token, "peer").await;
    let url = external_mcpbox().await;
    let created = app
        .post(
            &format!("/api/external-sources/servers/{server}/sources"),
            Some(token),
            json!({"name": "other", "url": url}),
        )
        .await;
    let source = created.token("id");
    let base = format!("/api/external-sources/sources/{source}");
    let found = app
        .post(&format!("{base}/discover"), Some(token), json!({}))
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    let imported = app
        .post(
            &format!("{base}/import"),
            Some(token),
            json!({"tool_names": ["mcpbox_list_servers"]}),
        )
        .await;
    let tool = imported.body["imported"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.approve_tool(token, &tool).await;
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let moved = app
        .call(
            Method::PUT,
            &base,
            Some(token),
            json!({"url": format!("http://{closed}/mcp")}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    (tool, source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_source_going_down_alerts_once() {
    let app = TestApp::sqlite().await;
    let served = Served::start().await;
    alerts::start_delivery(&app.state).unwrap();
    let token = app.admin().await.token("access_token");
    three_webhooks(&app.state, &served).await;
    let (tool, source) = passthrough_to_a_dead_source(&app, &token).await;
    assert!(served.hits().is_empty(), "nothing failed yet");
    let failed = app.test_run(&token, &tool, json!({})).await;
    assert!(
        !failed.status.is_success() || failed.body["success"] == false,
        "{}",
        failed.text
    );
    let generic = one_per_flavour(&served, Kind::ExternalSourceDown).await;
    assert_eq!(generic["details"]["subject"], source.as_str());
    assert_eq!(generic["details"]["name"], "other");
    // Still down: a health check and more calls raise nothing new.
    let checked = app
        .post(
            &format!("/api/external-sources/sources/{source}/health"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(checked.body["status"], "error", "{}", checked.text);
    app.test_run(&token, &tool, json!({})).await;
    served.exactly(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_webhook_does_not_delay_the_call_that_raised_the_alert() {
    let app = TestApp::sqlite().await;
    let served = Served::start().await;
    alerts::start_delivery(&app.state).unwrap();
    let token = app.admin().await.token("access_token");
    webhooks::create_recorded(
        &app.state,
        NewWebhook {
            name: "stuck",
            flavour: "generic",
            url: &served.url("generic"),
            enabled: true,
        },
        &audit(),
    )
    .await
    .unwrap();
    served.script(&[Reply::Hang, Reply::Hang, Reply::Hang, Reply::Hang]);
    let (tool, _) = passthrough_to_a_dead_source(&app, &token).await;
    // The same failing call without an alert (the source is already down: no transition).
    let started = Instant::now();
    app.test_run(&token, &tool, json!({})).await;
    let raising = started.elapsed();
    let hits = served.exactly(1).await;
    let started = Instant::now();
    app.test_run(&token, &tool, json!({})).await;
    let plain = started.elapsed();
    eprintln!("call that raised the alert: {raising:?}; the same call without one: {plain:?}");
    // The receiver holds the delivery for the 5 s timeout; the call did not wait for it.
    assert!(raising < Duration::from_secs(1), "{raising:?}");
    assert!(hits[0].at.elapsed() < Duration::from_secs(5));
    let webhook = &webhooks::list(&app.state.db).await.unwrap()[0];
    assert_eq!(webhook.last_status, None, "still trying");
}

/// One enabled generic webhook at the receiver's `/generic`: its id.
async fn one_generic_webhook(state: &AppState, served: &Served) -> String {
    webhooks::create_recorded(
        state,
        NewWebhook {
            name: "ops",
            flavour: "generic",
            url: &served.url("generic"),
            enabled: true,
        },
        &audit(),
    )
    .await
    .unwrap()
    .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_is_retried_until_it_answers() {
    let app = TestApp::sqlite().await;
    let served = Served::start().await;
    alerts::start_delivery(&app.state).unwrap();
    let id = one_generic_webhook(&app.state, &served).await;
    served.script(&[Reply::Status(500)]);
    // The hook the package audit (#14) will call.
    let raised = app.state.alerts.raise(
        Kind::PackageVulnerable,
        "requests 2.0.0",
        "requests 2.0.0 has CVE-0000-0001",
        json!({"package": "requests"}),
    );
    assert_eq!(raised, Raised::Queued);
    let hits = served.exactly(2).await;
    assert_eq!(hits[0].body, hits[1].body, "the same alert, sent again");
    assert_eq!(hits[1].body["details"]["kind"], "package_vulnerable");
    let waited = hits[1].at - hits[0].at;
    assert!(waited >= Duration::from_millis(900), "backoff: {waited:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = webhooks::get(&app.state.db, &id).await.unwrap();
        if now.last_status.as_deref() == Some("delivered") {
            assert_eq!((now.delivered_count, now.failed_count), (1, 0));
            break;
        }
        assert!(Instant::now() < deadline, "{now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_keeps_failing_gets_bounded_tries_and_shows_it() {
    let app = TestApp::sqlite().await;
    let served = Served::start().await;
    alerts::start_delivery(&app.state).unwrap();
    let id = one_generic_webhook(&app.state, &served).await;
    // More failures scripted than tries: only TRIES arrive.
    served.script(&[Reply::Status(503); 10]);
    app.state
        .alerts
        .raise(Kind::ExternalSourceDown, "s", "down", json!({}));
    let hits = served.exactly(alerts::DELIVERY_TRIES as usize).await;
    assert_eq!(hits.len(), 4);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = webhooks::get(&app.state.db, &id).await.unwrap();
        if now.last_status.as_deref() == Some("failed") {
            assert_eq!(
                now.last_error.as_deref(),
                Some("the webhook answered 503 (4 tries)")
            );
            assert_eq!(now.failed_count, 1);
            break;
        }
        assert!(Instant::now() < deadline, "{now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A 4xx other than 429 is final at once.
    served.script(&[Reply::Status(410)]);
    app.state
        .alerts
        .raise(Kind::ExternalSourceDown, "t", "down", json!({}));
    served.exactly(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_within_the_window_and_deliveries_over_the_rate_limit_are_not_sent() {
    let app = TestApp::sqlite().await;
    let served = Served::start().await;
    alerts::start_delivery(&app.state).unwrap();
    one_generic_webhook(&app.state, &served).await;
    app.state.alerts.apply_settings(alerts::AlertSettings {
        per_webhook_per_minute: 2,
        ..alerts::AlertSettings::default()
    });
    let alerts = &app.state.alerts;
    assert_eq!(
        alerts.raise(Kind::ExternalSourceDown, "a", "a down", json!({})),
        Raised::Queued
    );
    assert_eq!(
        alerts.raise(Kind::ExternalSourceDown, "a", "a down again", json!({})),
        Raised::Duplicate
    );
    assert_eq!(
        alerts.raise(Kind::ExternalSourceDown, "b", "b down", json!({})),
        Raised::Queued
    );
    let hits = served.exactly(2).await;
    let mut subjects: Vec<&str> = hits
        .iter()
        .map(|h| h.body["details"]["subject"].as_str().unwrap())
        .collect();
    // Deliveries run side by side: any order.
    subjects.sort_unstable();
    assert_eq!(subjects, ["a", "b"]);
    // A third distinct alert in the same minute is over the webhook's limit: skipped, counted.
    alerts.raise(Kind::ExternalSourceDown, "c", "c down", json!({}));
    served.exactly(2).await;
    let webhook = &webhooks::list(&app.state.db).await.unwrap()[0];
    assert_eq!(webhook.rate_limited_count, 1, "{webhook:?}");
    assert_eq!(webhook.delivered_count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_holds_its_capacity_then_drops_and_counts() {
    // No delivery task: nothing leaves the queue.
    let app = TestApp::sqlite().await;
    let token = app.admin().await.token("access_token");
    for i in 0..alerts::QUEUE_CAPACITY {
        let raised =
            app.state
                .alerts
                .raise(Kind::ExternalSourceDown, format!("s{i}"), "down", json!({}));
        assert_eq!(raised, Raised::Queued, "{i}");
    }
    let started = Instant::now();
    let over = app
        .state
        .alerts
        .raise(Kind::ExternalSourceDown, "over", "down", json!({}));
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(over, Raised::Dropped);
    let shown = app.get("/api/settings/alerts", Some(&token)).await;
    assert_eq!(shown.body["stats"]["dropped"], 1, "{}", shown.text);
    assert_eq!(shown.body["stats"]["queued"], alerts::QUEUE_CAPACITY);
}
