//! Running approved tools through the real sandbox, the execution log, and server secrets.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use origin::execution::REDACTED;
use serde_json::{Value, json};

on_both_backends!(
    approved_tools_run_and_every_run_is_logged,
    drafts_do_not_run,
    secrets_are_encrypted_write_only_and_redacted,
    a_secret_moved_to_another_server_does_not_decrypt,
    large_results_are_capped_in_the_log_only,
    an_unreachable_sandbox_is_a_503_and_still_logged,
    secrets_never_leave_a_run_in_any_encoding,
    short_secret_values_are_refused_and_older_ones_still_redacted,
    a_round_that_asks_is_logged_as_input_required_and_redacted,
);

const ECHO: &str = "def main(city: str, api_key: str = '') -> dict:\n    print('looking up', city)\n    if city == 'boom':\n        raise ValueError('no such city: ' + city)\n    return {'city': city, 'key': secrets.get('API_KEY', ''), 'arg': api_key}\n";

struct Setup {
    app: TestApp,
    admin: String,
    server: String,
    tool: String,
}

impl Setup {
    async fn new(app: TestApp, code: &str, approve: bool) -> Setup {
        let app = app.with_sandbox().await;
        let admin = app.admin().await.token("access_token");
        let server = app.create_server(&admin, "weather").await;
        let tool = app.create_tool(&admin, &server, "lookup", code).await;
        if approve {
            app.approve_tool(&admin, &tool).await;
        }
        Setup {
            app,
            admin,
            server,
            tool,
        }
    }

    async fn test_run(&self, arguments: Value) -> Response {
        self.app.test_run(&self.admin, &self.tool, arguments).await
    }
}

async fn approved_tools_run_and_every_run_is_logged(app: TestApp) {
    let s = Setup::new(app, ECHO, true).await;
    let ran = s.test_run(json!({"city": "Oslo"})).await;
    assert_eq!(ran.status, StatusCode::OK, "{}", ran.text);
    assert_eq!(ran.body["success"], true);
    assert_eq!(
        ran.body["result"],
        json!({"city": "Oslo", "key": "", "arg": ""})
    );
    assert_eq!(ran.body["stdout"], "looking up Oslo\n");
    assert_eq!(ran.body["version"], 1);
    let failed = s.test_run(json!({"city": "boom"})).await;
    assert_eq!(failed.body["success"], false);
    assert_eq!(failed.body["error"]["kind"], "runtime");
    assert_eq!(failed.body["error"]["line"], 4);
    assert_eq!(
        failed.body["error"]["message"],
        "ValueError: no such city: boom"
    );
    let bad_args = s.test_run(json!({"nope": 1})).await;
    assert_eq!(bad_args.body["success"], false);
    let not_object = s
        .app
        .post(
            "/api/tools/test-code",
            Some(&s.admin),
            json!({"tool_id": s.tool, "arguments": [1]}),
        )
        .await;
    assert_eq!(not_object.status, StatusCode::UNPROCESSABLE_ENTITY);
    let logs = s
        .app
        .get(&format!("/api/tools/{}/logs", s.tool), Some(&s.admin))
        .await;
    assert_eq!(logs.body["total"], 3, "{}", logs.text);
    let newest = &logs.body["items"][0];
    assert_eq!(
        (newest["success"].as_bool(), newest["is_test"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(newest["tool_name"], "weather__lookup");
    assert_eq!(newest["executed_by"], ADMIN);
    let only_failures = s
        .app
        .get("/api/execution-logs?success=false", Some(&s.admin))
        .await;
    assert_eq!(only_failures.body["total"], 2);
    let by_server = s
        .app
        .get(
            &format!("/api/servers/{}/execution-logs?page_size=1", s.server),
            Some(&s.admin),
        )
        .await;
    assert_eq!(
        (
            by_server.body["total"].as_i64(),
            by_server.body["items"].as_array().map(Vec::len)
        ),
        (Some(3), Some(1))
    );
    let id = ran.body["log_id"].as_str().unwrap();
    let one = s.app.get(&format!("/api/logs/{id}"), Some(&s.admin)).await;
    assert_eq!(one.body["result"]["city"], "Oslo");
    assert_eq!(
        s.app.get("/api/logs/nope", Some(&s.admin)).await.status,
        StatusCode::NOT_FOUND
    );
    // Keyset paging walks the same rows, newest first, and says when it is done.
    let first = s
        .app
        .get(
            "/api/execution-logs?cursor=start&page_size=2",
            Some(&s.admin),
        )
        .await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(first.body["items"][0]["id"], logs.body["items"][0]["id"]);
    let next = first.body["next_cursor"].as_str().unwrap();
    let second = s
        .app
        .get(
            &format!("/api/execution-logs?page_size=2&cursor={next}"),
            Some(&s.admin),
        )
        .await;
    assert_eq!(
        second.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        second.text
    );
    assert_eq!(second.body["items"][0]["id"], logs.body["items"][2]["id"]);
    assert_eq!(second.body["next_cursor"], Value::Null);
    let bad = s
        .app
        .get("/api/execution-logs?cursor=garbage", Some(&s.admin))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn drafts_do_not_run(app: TestApp) {
    let s = Setup::new(app, ECHO, false).await;
    let refused = s.test_run(json!({"city": "Oslo"})).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no approved version")
    );
    assert_eq!(s.app.count("execution_logs").await, 0);
    let viewer = s
        .app
        .user_with_role(&s.admin, "watcher", "viewer")
        .await
        .token("access_token");
    let forbidden = s
        .app
        .post(
            "/api/tools/test-code",
            Some(&viewer),
            json!({"tool_id": s.tool, "arguments": {}}),
        )
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
}

async fn secrets_are_encrypted_write_only_and_redacted(app: TestApp) {
    let s = Setup::new(app, ECHO, true).await;
    let base = format!("/api/servers/{}/secrets", s.server);
    for bad in ["api_key", "1KEY", "KEY-1", ""] {
        let response = s
            .app
            .post(&base, Some(&s.admin), json!({"key_name": bad}))
            .await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
    }
    assert_eq!(
        s.app
            .post(
                &base,
                Some(&s.admin),
                json!({"key_name": "API_KEY", "description": "weather API"})
            )
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        s.app
            .post(&base, Some(&s.admin), json!({"key_name": "API_KEY"}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    let listed = s.app.get(&base, Some(&s.admin)).await;
    assert_eq!(
        listed.body,
        json!([{"key": "API_KEY", "description": "weather API", "has_value": false, "updated_at": listed.body[0]["updated_at"]}])
    );
    let secret = "sk-live-9d8f7e6a5b4c";
    let set = s
        .app
        .call(
            Method::PUT,
            &format!("{base}/API_KEY"),
            Some(&s.admin),
            json!({"value": secret}),
        )
        .await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.text);
    let empty = s
        .app
        .call(
            Method::PUT,
            &format!("{base}/API_KEY"),
            Some(&s.admin),
            json!({"value": ""}),
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    let viewer = s
        .app
        .user_with_role(&s.admin, "watcher", "viewer")
        .await
        .token("access_token");
    let viewer_set = s
        .app
        .call(
            Method::PUT,
            &format!("{base}/API_KEY"),
            Some(&viewer),
            json!({"value": "x"}),
        )
        .await;
    assert_eq!(viewer_set.status, StatusCode::FORBIDDEN);
    let listed = s.app.get(&base, Some(&s.admin)).await;
    assert_eq!(listed.body[0]["has_value"], true);
    assert!(!listed.text.contains(secret));
    // At rest: encrypted, not the plaintext.
    use sqlx::Row;
    let stored: String = sqlx::query("SELECT encrypted_value FROM server_secrets")
        .fetch_one(&s.app.state.db.pool)
        .await
        .unwrap()
        .try_get("encrypted_value")
        .unwrap();
    assert!(!stored.contains(secret));
    // The tool sees it; nothing that leaves or is stored shows it: the result, stdout, the
    // logged arguments (even under an innocent name) and the log row.
    let code = "def main(note: str) -> dict:\n    print('the key is', secrets['API_KEY'])\n    return {'echo': secrets['API_KEY'], 'note': note}\n";
    let updated = s
        .app
        .call(
            Method::PATCH,
            &format!("/api/tools/{}", s.tool),
            Some(&s.admin),
            json!({"python_code": code}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    s.app.approve_tool(&s.admin, &s.tool).await;
    let ran = s
        .test_run(json!({"note": format!("copy of {secret}")}))
        .await;
    assert_eq!(ran.body["success"], true, "{}", ran.text);
    assert!(!ran.text.contains(secret), "{}", ran.text);
    assert_eq!(ran.body["result"]["echo"], "[REDACTED]");
    assert_eq!(ran.body["stdout"], "the key is [REDACTED]\n");
    let logs = s
        .app
        .get(&format!("/api/tools/{}/logs", s.tool), Some(&s.admin))
        .await;
    assert!(!logs.text.contains(secret), "{}", logs.text);
    assert_eq!(
        logs.body["items"][0]["arguments"]["note"],
        "copy of [REDACTED]"
    );
    let raw: Vec<String> = sqlx::query(
        "SELECT arguments || COALESCE(result, '') || stdout AS text FROM execution_logs",
    )
    .fetch_all(&s.app.state.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|row| row.try_get("text").unwrap())
    .collect();
    assert!(raw.iter().all(|text| !text.contains(secret)));
    assert_eq!(
        s.app
            .call(
                Method::DELETE,
                &format!("{base}/API_KEY"),
                Some(&s.admin),
                json!({})
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.app
            .call(
                Method::DELETE,
                &format!("{base}/API_KEY"),
                Some(&s.admin),
                json!({})
            )
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn a_secret_moved_to_another_server_does_not_decrypt(app: TestApp) {
    let s = Setup::new(app, ECHO, true).await;
    let other = s
        .app
        .post("/api/servers", Some(&s.admin), json!({"name": "other"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let set = |server: &str| format!("/api/servers/{server}/secrets/API_KEY");
    s.app
        .call(
            Method::PUT,
            &set(&other),
            Some(&s.admin),
            json!({"value": "other-servers-secret"}),
        )
        .await;
    s.app
        .call(
            Method::PUT,
            &set(&s.server),
            Some(&s.admin),
            json!({"value": "weather-secret"}),
        )
        .await;
    // Copy the other server's ciphertext over this server's row (a database-level attack).
    sqlx::query(
        "UPDATE server_secrets SET encrypted_value = (SELECT encrypted_value FROM server_secrets WHERE server_id = $1) WHERE server_id = $2",
    )
    .bind(&other)
    .bind(&s.server)
    .execute(&s.app.state.db.pool)
    .await
    .unwrap();
    let ran = s.test_run(json!({"city": "Oslo"})).await;
    assert_eq!(ran.status, StatusCode::CONFLICT, "{}", ran.text);
    assert!(
        ran.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be decrypted")
    );
    assert!(!ran.text.contains("other-servers-secret"));
}

async fn large_results_are_capped_in_the_log_only(app: TestApp) {
    let s = Setup::new(app, "def main() -> str:\n    return 'z' * 50000\n", true).await;
    let ran = s.test_run(json!({})).await;
    assert_eq!(ran.body["result"].as_str().map(str::len), Some(50_000));
    let logs = s
        .app
        .get(&format!("/api/tools/{}/logs", s.tool), Some(&s.admin))
        .await;
    let logged = &logs.body["items"][0]["result"];
    assert_eq!(logged["_truncated"], true, "{logged}");
    assert_eq!(logged["_size_bytes"], 50_002);
}

async fn an_unreachable_sandbox_is_a_503_and_still_logged(app: TestApp) {
    let s = Setup::new(app, ECHO, true).await;
    // The same database behind an origin whose sandbox is gone.
    let down = s.app.restarted();
    let admin = down.login(ADMIN, PASSWORD).await.token("access_token");
    let ran = down
        .post(
            "/api/tools/test-code",
            Some(&admin),
            json!({"tool_id": s.tool, "arguments": {"city": "x"}}),
        )
        .await;
    assert_eq!(ran.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ran.text);
    assert!(
        ran.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sandbox")
    );
    let logs = down.get("/api/execution-logs", Some(&admin)).await;
    assert_eq!(logs.body["total"], 1);
    assert_eq!(logs.body["items"][0]["error_kind"], "internal");
}

on_both_backends!(the_dashboard_counts_calls_errors_and_pending_reviews);

async fn the_dashboard_counts_calls_errors_and_pending_reviews(app: TestApp) {
    let s = Setup::new(app, ECHO, true).await;
    s.test_run(json!({"city": "Oslo"})).await;
    s.test_run(json!({"city": "Oslo"})).await;
    s.test_run(json!({"city": "boom"})).await;
    let draft = s
        .app
        .create_tool(&s.admin, &s.server, "other", "def main():\n    return 0\n")
        .await;
    s.app
        .post(
            &format!("/api/approvals/tools/{draft}/action"),
            Some(&s.admin),
            json!({"action": "submit_for_review"}),
        )
        .await;
    let board = s.app.get("/api/dashboard?period=1h", Some(&s.admin)).await;
    assert_eq!(board.status, StatusCode::OK, "{}", board.text);
    let stats = &board.body["stats"];
    assert_eq!(
        (stats["calls"].as_i64(), stats["errors"].as_i64()),
        (Some(3), Some(1))
    );
    assert!((stats["error_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(
        (
            stats["total_tools"].as_i64(),
            stats["total_servers"].as_i64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(
        board.body["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["calls"].as_i64().unwrap())
            .sum::<i64>(),
        3
    );
    assert_eq!(board.body["top_tools"][0]["tool_name"], "weather__lookup");
    assert_eq!(
        board.body["recent_errors"][0]["error"],
        "ValueError: no such city: boom"
    );
    assert_eq!(board.body["pending"]["tools"], 1);
    assert_eq!(
        s.app
            .get("/api/dashboard?period=1y", Some(&s.admin))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        s.app.get("/api/dashboard", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

on_both_backends!(a_dead_sandbox_gives_clear_errors_and_opens_the_breaker);

async fn a_dead_sandbox_gives_clear_errors_and_opens_the_breaker(app: TestApp) {
    let s = Setup::new(app, ECHO, true).await;
    assert_eq!(
        s.test_run(json!({"city": "Oslo"})).await.status,
        StatusCode::OK
    );
    let pid = s
        .app
        .state
        .sandbox
        .supervisor_pid()
        .expect("this origin started its supervisor") as i32;
    // SAFETY: killing the supervisor this test's origin started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // Five failed attempts, each a clear 503 (never a 500), then the breaker opens.
    for attempt in 0..5 {
        let failed = s.test_run(json!({"city": "Oslo"})).await;
        assert_eq!(
            failed.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "attempt {attempt}: {}",
            failed.text
        );
        assert!(
            failed.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("sandbox")
        );
    }
    let open = s.test_run(json!({"city": "Oslo"})).await;
    assert_eq!(open.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        open.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("circuit breaker is open"),
        "{}",
        open.text
    );
    let ready = s.app.get("/health/ready", None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["sandbox"]["circuit"], "open");
    assert_eq!(
        s.app.get("/api/health/circuits", Some(&s.admin)).await.body["sandbox"],
        "open"
    );
    let viewer = s
        .app
        .user_with_role(&s.admin, "watcher", "viewer")
        .await
        .token("access_token");
    assert_eq!(
        s.app
            .post("/api/health/circuits/reset", Some(&viewer), json!({}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let reset = s
        .app
        .post("/api/health/circuits/reset", Some(&s.admin), json!({}))
        .await;
    assert_eq!(reset.body["sandbox"], "closed");
    // Every attempt is in the execution log as an internal error: the five failures and the one
    // the open breaker refused.
    let failed_logs = s
        .app
        .get("/api/execution-logs?success=false", Some(&s.admin))
        .await;
    assert_eq!(failed_logs.body["total"], 6, "{}", failed_logs.text);
    assert!(
        failed_logs.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|row| row["error_kind"] == "internal")
    );
}

/// Secrets that JSON, Python's `repr` and the sandbox's caps each write differently: a quote
/// and a backslash, control characters, a PEM block, non-ASCII (one character outside the BMP,
/// which `json.dumps` writes as a surrogate pair).
const LEAKY: [(&str, &str); 4] = [
    ("QUOTE", "pa\"ss\\word-9x8q"),
    ("CTRL", "Qx7v\tHd9w\nMk3z\r\u{1}-5y2w"),
    (
        "PEM",
        "-----BEGIN PRIVATE KEY-----\nMIIBVgIBADANBgkqhkiG9w0BAQEFAASC\nAUAwggE8AgEAAkEAq7BFUpkGp3LQmlQ\n-----END PRIVATE KEY-----\n",
    ),
    ("UNI", "zürich-Straße-✓-𝄞-7k7j"),
];

/// Pieces of `LEAKY` that survive every encoding a tool produces by accident (JSON escapes at
/// any depth, `\uXXXX`, `repr`) and a cut through the secret: finding none of them in a text
/// means no secret is in it in any of those forms, whole or in part.
const FRAGMENTS: [&str; 12] = [
    "word", "9x8q", "Qx7v", "Hd9w", "Mk3z", "5y2w", "BEGIN", "PRIVATE", "MIIBVgIB", "AUAwggE8",
    "rich", "7k7j",
];

/// A long answer cut for a failure message (around the first leak, if any).
fn short(text: &str) -> String {
    let at = leaks(text)
        .first()
        .and_then(|fragment| text.find(fragment))
        .unwrap_or(0);
    text.chars()
        .skip(text[..at].chars().count().saturating_sub(300))
        .take(1500)
        .collect()
}

fn leaks(text: &str) -> Vec<&'static str> {
    FRAGMENTS
        .into_iter()
        .filter(|fragment| text.contains(fragment))
        .collect()
}

/// Returns, prints and raises the secrets in every form an approved tool might by accident;
/// `cut` makes the sandbox cut stdout and the error message inside a secret, `big` makes the
/// log keep only a preview that ends inside one.
const LEAKER: &str = r#"import json
def main(mode: str, note: str = '') -> dict:
    s = [secrets['QUOTE'], secrets['CTRL'], secrets['PEM'], secrets['UNI']]
    if mode == 'raise':
        raise ValueError(' | '.join(s) + ' ' + repr(s))
    if mode == 'missing':
        return {}[s[0]]
    if mode == 'cut':
        print('x' * (65536 - 15) + s[2])
        raise ValueError('e' * (4000 - len('ValueError: ') - 7) + s[3])
    if mode == 'big':
        return {'a': 'y' * 975 + s[2], 'b': 'z' * 12000}
    print(*s)
    print(json.dumps(s))
    print(json.dumps({'v': json.dumps(s)}, ensure_ascii=False))
    print(s)
    return {'raw': s, 'ascii': json.dumps(s), 'unicode': json.dumps(s, ensure_ascii=False),
            'double': json.dumps(json.dumps(s)), 'repr': repr(s), 'bytes': str(s[3].encode()),
            s[0]: 'a secret as a key', 'number': len(s)}
"#;

const MODES: [&str; 5] = ["all", "raise", "missing", "cut", "big"];

async fn secrets_never_leave_a_run_in_any_encoding(app: TestApp) {
    let s = Setup::new(app, LEAKER, false).await;
    // The detector finds each secret in the forms it is looked for in, and the two cut
    // beginnings the `cut` run leaves (the sandbox's cuts of stdout and of the error message).
    for (_, secret) in LEAKY {
        let json = serde_json::to_string(secret).unwrap();
        let double = serde_json::to_string(&json).unwrap();
        let cut = &secret[..secret.char_indices().nth_back(2).unwrap().0];
        for form in [secret, json.as_str(), double.as_str(), cut] {
            assert!(!leaks(form).is_empty(), "{form:?}");
        }
    }
    for cut in [&LEAKY[2].1[..15], &LEAKY[3].1[..7]] {
        assert!(!leaks(cut).is_empty(), "{cut:?}");
    }
    for (key, value) in LEAKY {
        let set = s
            .app
            .call(
                Method::PUT,
                &format!("/api/servers/{}/secrets/{key}", s.server),
                Some(&s.admin),
                json!({"value": value}),
            )
            .await;
        assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.text);
    }
    s.app.approve_tool(&s.admin, &s.tool).await;
    let started = s
        .app
        .post(
            &format!("/api/sandbox/servers/{}/start", s.server),
            Some(&s.admin),
            json!({}),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    let note = LEAKY[0].1;

    // MCP `tools/call`: the answer's text, structuredContent and _meta (stdout).
    for mode in MODES {
        let (body, answer) = s
            .app
            .mcp_raw(
                "tools/call",
                json!({"name": "weather__lookup", "arguments": {"mode": mode, "note": note}}),
            )
            .await;
        assert!(answer["result"].is_object(), "{mode}: {}", short(&body));
        assert_eq!(leaks(&body), Vec::<&str>::new(), "{mode}: {}", short(&body));
        let result = &answer["result"];
        match mode {
            "all" => {
                assert_eq!(result["isError"], false, "{}", short(&body));
                let structured = &result["structuredContent"];
                assert_eq!(
                    structured["raw"],
                    json!([REDACTED, REDACTED, REDACTED, REDACTED]),
                    "{}",
                    short(&body)
                );
                assert_eq!(
                    structured[REDACTED],
                    "a secret as a key",
                    "{}",
                    short(&body)
                );
                assert_eq!(structured["number"], 4);
                let text = result["content"][0]["text"].as_str().unwrap();
                assert_eq!(
                    serde_json::from_str::<Value>(text).unwrap(),
                    *structured,
                    "the text is the same redacted value"
                );
                let stdout = result["_meta"]["mcpbox/stdout"].as_str().unwrap();
                assert!(stdout.matches(REDACTED).count() >= 12, "{stdout}");
            }
            "cut" => {
                let stdout = result["_meta"]["mcpbox/stdout"].as_str().unwrap();
                assert!(
                    stdout.ends_with(REDACTED),
                    "{}",
                    &stdout[stdout.len() - 40..]
                );
                let error = result["content"][0]["text"].as_str().unwrap();
                // The message's line (the traceback and the output follow it).
                let message = error.lines().next().unwrap();
                assert!(message.ends_with("[REDACTED]…"), "{error}");
            }
            "big" => assert_eq!(result["isError"], false, "{mode}: {}", short(&body)),
            _ => assert_eq!(result["isError"], true, "{mode}: {}", short(&body)),
        }
    }
    // The REST test run (and `mcpbox_test_code`, which shares it).
    for mode in MODES {
        let ran = s.test_run(json!({"mode": mode, "note": note})).await;
        assert_eq!(ran.status, StatusCode::OK, "{mode}: {}", short(&ran.text));
        assert_eq!(
            leaks(&ran.text),
            Vec::<&str>::new(),
            "{mode}: {}",
            short(&ran.text)
        );
    }
    let (_, tested) = s
        .app
        .mcp_raw(
            "tools/call",
            json!({"name": "mcpbox_test_code", "arguments": {"tool_id": s.tool, "arguments": {"mode": "all"}}}),
        )
        .await;
    assert_eq!(
        leaks(&tested.to_string()),
        Vec::<&str>::new(),
        "{}",
        short(&tested.to_string())
    );
    assert!(
        tested.to_string().contains(REDACTED),
        "{}",
        short(&tested.to_string())
    );

    // What is stored, and every way it is read back: the rows themselves, the REST log and
    // `mcpbox_get_tool_logs`.
    use sqlx::Row;
    let rows: Vec<String> = sqlx::query(
        "SELECT arguments || ' ' || COALESCE(result, '') || ' ' || COALESCE(error, '') || ' ' || stdout AS text \
         FROM execution_logs",
    )
    .fetch_all(&s.app.state.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|row| row.try_get("text").unwrap())
    .collect();
    assert_eq!(rows.len(), 2 * MODES.len() + 1);
    for row in &rows {
        assert_eq!(leaks(row), Vec::<&str>::new(), "{}", short(row));
    }
    let logs = s
        .app
        .get(
            &format!("/api/tools/{}/logs?page_size=50", s.tool),
            Some(&s.admin),
        )
        .await;
    assert_eq!(
        leaks(&logs.text),
        Vec::<&str>::new(),
        "{}",
        short(&logs.text)
    );
    // The capped result of `big` keeps a preview that ended inside the PEM block.
    let big = logs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["result"]["_truncated"] == true)
        .expect("a capped result");
    let preview = big["result"]["_preview"].as_str().unwrap();
    assert!(preview.contains(REDACTED), "{}", short(preview));
    let notes: Vec<&Value> = logs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|row| row["arguments"].get("note"))
        .collect();
    assert_eq!(
        notes,
        vec![REDACTED; 2 * MODES.len()],
        "the secret as an argument"
    );
    let (body, logged) = s
        .app
        .mcp_raw(
            "tools/call",
            json!({"name": "mcpbox_get_tool_logs", "arguments": {"tool_id": s.tool, "limit": 50}}),
        )
        .await;
    assert_eq!(logged["result"]["isError"], false, "{}", short(&body));
    assert!(body.contains("_truncated"), "{}", short(&body));
    assert_eq!(leaks(&body), Vec::<&str>::new(), "{}", short(&body));
}

async fn short_secret_values_are_refused_and_older_ones_still_redacted(app: TestApp) {
    let code = "def main() -> dict:\n    return {'old': 'value ' + secrets['OLD'] + '!'}\n";
    let s = Setup::new(app, code, true).await;
    let set = |value: &'static str| {
        let path = format!("/api/servers/{}/secrets/OLD", s.server);
        let app = &s.app;
        let admin = s.admin.clone();
        async move {
            app.call(Method::PUT, &path, Some(&admin), json!({"value": value}))
                .await
        }
    };
    for short in ["x", "q9z", "1234567", "é\u{1}é"] {
        let refused = set(short).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{short:?}: {}",
            refused.text
        );
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("at least 8 bytes"),
            "{}",
            refused.text
        );
    }
    assert_eq!(
        s.app.count("server_secrets").await,
        0,
        "nothing half-applied"
    );
    assert_eq!(set("12345678").await.status, StatusCode::NO_CONTENT);
    // A value set before the minimum existed (written as the origin stores one) is still
    // redacted, however short.
    let stored = s
        .app
        .state
        .keys
        .encrypt_to_string("q9z", &format!("server_secret:{}:OLD", s.server));
    sqlx::query("UPDATE server_secrets SET encrypted_value = $1 WHERE key = 'OLD'")
        .bind(stored)
        .execute(&s.app.state.db.pool)
        .await
        .unwrap();
    let ran = s.test_run(json!({})).await;
    assert_eq!(ran.status, StatusCode::OK, "{}", ran.text);
    assert_eq!(
        ran.body["result"]["old"], "value [REDACTED]!",
        "{}",
        ran.text
    );
    let logs = s
        .app
        .get(&format!("/api/tools/{}/logs", s.tool), Some(&s.admin))
        .await;
    assert!(!logs.text.contains("q9z"), "{}", logs.text);
}

const ASKER: &str = "def main() -> str:\n    got = ask('Key ' + secrets['API_KEY'] + '?', key='confirm')\n    return 'ok ' + str(got['sure'])\n";

/// A round that ends asking is a row of its own: status `input_required`, its questions
/// redacted like a result (the tool put a secret into one), not counted as an error; the next
/// round, with the answer, is `ok` with its round number and answers (redacted like arguments).
async fn a_round_that_asks_is_logged_as_input_required_and_redacted(app: TestApp) {
    use origin::execution::rounds::Round;
    let s = Setup::new(app, ASKER, true).await;
    let secret = s
        .app
        .call(
            Method::PUT,
            &format!("/api/servers/{}/secrets/API_KEY", s.server),
            Some(&s.admin),
            json!({"value": "sk-live-0123456789"}),
        )
        .await;
    assert!(secret.status.is_success(), "{}", secret.text);
    let purpose = origin::tools::Purpose::Test {
        live_only: false,
        newest: false,
    };
    let approved = origin::tools::runnable_for(&s.app.state.db, &s.tool, purpose)
        .await
        .unwrap();
    let state = &s.app.state;
    let first = Round::first(vec!["elicitation".into()]);
    let approved = &approved;
    let run = |round: Round| async move {
        origin::execution::run_observed(
            state,
            approved,
            json!({}),
            "mcp:local",
            false,
            None,
            Some(&round),
        )
        .await
        .unwrap()
    };
    let asked = run(first.clone()).await;
    assert!(!asked.ok && asked.result.is_none() && asked.error.is_none());
    let questions = asked.asked.clone().expect("the run asked");
    assert_eq!(
        questions.requests["confirm"]["params"]["message"],
        format!("Key {REDACTED}?")
    );
    let row = s
        .app
        .get(&format!("/api/logs/{}", asked.log_id), Some(&s.admin))
        .await;
    assert_eq!(row.body["status"], "input_required", "{}", row.text);
    assert_eq!(row.body["success"], true);
    assert_eq!(row.body["input_round"], 1);
    assert!(!row.text.contains("sk-live-0123456789"), "{}", row.text);
    let answers = json!({"confirm": {"action": "accept", "content": {"sure": true}},
        "password": "hunter2"});
    let next = first.next(&questions, answers.as_object().cloned().unwrap());
    let done = run(next).await;
    assert!(done.ok, "{:?}", done.error);
    assert_eq!(done.result, Some(json!("ok True")));
    // Counted apart from failures.
    use tower::ServiceExt;
    let response = origin::metrics::router(s.app.state.clone())
        .oneshot(
            axum::http::Request::get("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&bytes);
    let counted = |outcome: &str| {
        metrics.lines().any(|line| {
            line.starts_with("mcpbox_tool_calls_total")
                && line.contains(&format!("outcome=\"{outcome}\""))
                && line.ends_with(" 1")
        })
    };
    assert!(counted("input_required") && counted("ok"), "{metrics}");
    let row = s
        .app
        .get(&format!("/api/logs/{}", done.log_id), Some(&s.admin))
        .await;
    assert_eq!(row.body["status"], "ok");
    assert_eq!(row.body["input_round"], 2);
    assert_eq!(row.body["input_requests"], Value::Null);
    // The answers as the round ran with them, redacted like arguments (sensitive names).
    assert_eq!(
        row.body["input_answers"],
        json!({"confirm": {"action": "accept", "content": {"sure": true}}, "password": REDACTED})
    );
}
