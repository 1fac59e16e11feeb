//! Running approved tools through the real sandbox, the execution log, and server secrets.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

on_both_backends!(
    approved_tools_run_and_every_run_is_logged,
    drafts_do_not_run,
    secrets_are_encrypted_write_only_and_redacted,
    a_secret_moved_to_another_server_does_not_decrypt,
    large_results_are_capped_in_the_log_only,
    an_unreachable_sandbox_is_a_503_and_still_logged,
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
