//! The security policy: its API, presets, and one test per setting showing it changes behaviour.
//! (`remote_tool_editing` and `mcp_rate_limit_rpm` govern the MCP gateway's tunnel listener and
//! are tested with it; here they are only stored and validated.)

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use origin::access::{self, Kind, NewRequest};
use origin::activity::Audit;

fn llm() -> Audit {
    Audit {
        actor: "llm".into(),
        request_id: None,
    }
}
use serde_json::{Value, json};

on_both_backends!(
    policy_is_strict_by_default_and_changes_are_validated_as_a_whole,
    tool_approval_mode_auto_approves_publishing_edits_and_rollbacks,
    module_approval_mode_auto_approves_module_requests,
    network_access_policy_allow_all_public_still_refuses_private_addresses,
    redact_secrets_in_output_disabled_shows_the_caller_but_never_the_log,
    log_retention_days_decides_what_is_pruned,
);

struct Setup {
    app: TestApp,
    admin: String,
    server: String,
}

impl Setup {
    async fn new(app: TestApp) -> Setup {
        let app = app.with_sandbox().await;
        let admin = app.admin().await.token("access_token");
        let server = app.create_server(&admin, "svc").await;
        Setup { app, admin, server }
    }

    async fn policy(&self, patch: Value) -> Response {
        self.app
            .call(
                Method::PATCH,
                "/api/settings/security-policy",
                Some(&self.admin),
                patch,
            )
            .await
    }

    async fn tool(&self, name: &str, code: &str) -> String {
        self.app
            .create_tool(&self.admin, &self.server, name, code)
            .await
    }

    async fn test_run(&self, tool: &str) -> Response {
        self.app.test_run(&self.admin, tool, json!({})).await
    }

    async fn approve(&self, tool: &str) {
        self.app.approve_tool(&self.admin, tool).await
    }
}

async fn policy_is_strict_by_default_and_changes_are_validated_as_a_whole(app: TestApp) {
    let s = Setup::new(app).await;
    let current = s
        .app
        .get("/api/settings/security-policy", Some(&s.admin))
        .await;
    assert_eq!(
        current.body,
        json!({"remote_tool_editing": "disabled", "tool_approval_mode": "require_approval", "network_access_policy": "require_approval",
               "module_approval_mode": "require_approval", "redact_secrets_in_output": "enabled", "log_retention_days": 30, "mcp_rate_limit_rpm": 300})
    );
    for bad in [
        json!({"tool_approval_mode": "yes"}),
        json!({"log_retention_days": 0}),
        json!({"mcp_rate_limit_rpm": 5}),
        json!({"tool_approval_mode": "auto_approve", "log_retention_days": 99999}),
        json!({"unknown": 1}),
    ] {
        assert_eq!(
            s.policy(bad.clone()).await.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }
    // Nothing of a refused change was applied, not even its valid half.
    assert_eq!(
        s.app
            .get("/api/settings/security-policy", Some(&s.admin))
            .await
            .body,
        current.body
    );
    let balanced = s
        .app
        .call(
            Method::PATCH,
            "/api/settings/security-profile",
            Some(&s.admin),
            json!({"profile": "balanced"}),
        )
        .await;
    assert_eq!(
        (
            balanced.body["tool_approval_mode"].as_str(),
            balanced.body["module_approval_mode"].as_str()
        ),
        (Some("auto_approve"), Some("auto_approve"))
    );
    assert_eq!(balanced.body["network_access_policy"], "require_approval");
    let permissive = s
        .app
        .call(
            Method::PATCH,
            "/api/settings/security-profile",
            Some(&s.admin),
            json!({"profile": "permissive"}),
        )
        .await;
    assert_eq!(
        (
            permissive.body["network_access_policy"].as_str(),
            permissive.body["remote_tool_editing"].as_str()
        ),
        (Some("allow_all_public"), Some("enabled"))
    );
    assert_eq!(permissive.body["redact_secrets_in_output"], "enabled");
    assert_eq!(
        s.app
            .call(
                Method::PATCH,
                "/api/settings/security-profile",
                Some(&s.admin),
                json!({"profile": "yolo"})
            )
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let viewer = s
        .app
        .user_with_role(&s.admin, "watcher", "viewer")
        .await
        .token("access_token");
    assert_eq!(
        s.app
            .get("/api/settings/security-policy", Some(&viewer))
            .await
            .status,
        StatusCode::OK
    );
    let denied = s
        .app
        .call(
            Method::PATCH,
            "/api/settings/security-policy",
            Some(&viewer),
            json!({"tool_approval_mode": "require_approval"}),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
}

async fn tool_approval_mode_auto_approves_publishing_edits_and_rollbacks(app: TestApp) {
    let s = Setup::new(app).await;
    let tool = s.tool("t", "def main():\n    return 1\n").await;
    // Strict: a draft does not run, even as a test.
    assert_eq!(s.test_run(&tool).await.status, StatusCode::CONFLICT);
    s.policy(json!({"tool_approval_mode": "auto_approve"}))
        .await;
    // Auto: drafts may be test-run, and publishing approves at once.
    let ran = s.test_run(&tool).await;
    assert_eq!(ran.body["result"], 1, "{}", ran.text);
    let published =
        origin::approvals::request_publish(&s.app.state, &tool, None, Some("ship it"), &llm())
            .await
            .unwrap();
    assert_eq!(
        (published.status.as_str(), published.reviewed_by.as_deref()),
        ("approved", Some("auto_approve"))
    );
    let edited = s
        .app
        .call(
            Method::PATCH,
            &format!("/api/tools/{tool}"),
            Some(&s.admin),
            json!({"python_code": "def main():\n    return 2\n"}),
        )
        .await;
    assert_eq!(
        (
            edited.body["latest"]["status"].as_str(),
            edited.body["approved_version"].as_i64()
        ),
        (Some("approved"), Some(2))
    );
    let rolled = s
        .app
        .post(
            &format!("/api/tools/{tool}/versions/1/rollback"),
            Some(&s.admin),
            json!({}),
        )
        .await;
    assert_eq!(rolled.body["status"], "approved");
    // Back to strict: the next edit waits for review again.
    s.policy(json!({"tool_approval_mode": "require_approval"}))
        .await;
    let edited = s
        .app
        .call(
            Method::PATCH,
            &format!("/api/tools/{tool}"),
            Some(&s.admin),
            json!({"python_code": "def main():\n    return 4\n"}),
        )
        .await;
    assert_eq!(edited.body["latest"]["status"], "draft");
}

async fn module_approval_mode_auto_approves_module_requests(app: TestApp) {
    let s = Setup::new(app).await;
    let tool = s.tool("t", "def main():\n    return 1\n").await;
    let ask = |module: &'static str| {
        let state = s.app.state.clone();
        let tool = tool.clone();
        async move {
            let new = NewRequest {
                kind: Kind::Module,
                tool_id: &tool,
                target: module,
                port: None,
                justification: "parsing",
            };
            access::request(&state, &llm(), new).await
        }
    };
    assert_eq!(ask("csv").await.unwrap().status, "pending");
    s.policy(json!({"module_approval_mode": "auto_approve"}))
        .await;
    let auto = ask("difflib").await.unwrap();
    assert_eq!(
        (auto.status.as_str(), auto.reviewed_by.as_deref()),
        ("approved", Some("auto_approve"))
    );
    // Auto approval never reaches the modules that can never be allowed.
    assert!(matches!(ask("os").await, Err(origin::Error::Validation(_))));
}

async fn network_access_policy_allow_all_public_still_refuses_private_addresses(app: TestApp) {
    let s = Setup::new(app).await;
    let code = "async def main(url: str) -> str:\n    try:\n        await http.get(url)\n    except HTTPError as e:\n        return str(e)\n    return 'reached'\n";
    let tool = s.tool("fetch", code).await;
    s.approve(&tool).await;
    let run = |url: &'static str| {
        let s = &s;
        let tool = tool.clone();
        async move {
            s.app
                .post(
                    "/api/tools/test-code",
                    Some(&s.admin),
                    json!({"tool_id": tool, "arguments": {"url": url}}),
                )
                .await
                .body["result"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    assert!(
        run("https://unlisted.example/")
            .await
            .contains("not in this tool's approved hosts")
    );
    s.policy(json!({"network_access_policy": "allow_all_public"}))
        .await;
    let public = run("https://unlisted.example/").await;
    assert!(!public.contains("approved hosts"), "{public}");
    let private = run("http://127.0.0.1:9/").await;
    assert!(private.contains("not a public address"), "{private}");
    let metadata = run("http://169.254.169.254/latest/meta-data/").await;
    assert!(metadata.contains("not a public address"), "{metadata}");
}

async fn redact_secrets_in_output_disabled_shows_the_caller_but_never_the_log(app: TestApp) {
    let s = Setup::new(app).await;
    s.app
        .call(
            Method::PUT,
            &format!("/api/servers/{}/secrets/TOKEN", s.server),
            Some(&s.admin),
            json!({"value": "tok-1234567890"}),
        )
        .await;
    let tool = s
        .tool("echo", "def main() -> str:\n    return secrets['TOKEN']\n")
        .await;
    s.approve(&tool).await;
    assert_eq!(s.test_run(&tool).await.body["result"], "[REDACTED]");
    s.policy(json!({"redact_secrets_in_output": "disabled"}))
        .await;
    assert_eq!(s.test_run(&tool).await.body["result"], "tok-1234567890");
    let logs = s
        .app
        .get(&format!("/api/tools/{tool}/logs"), Some(&s.admin))
        .await;
    assert!(!logs.text.contains("tok-1234567890"), "{}", logs.text);
}

async fn log_retention_days_decides_what_is_pruned(app: TestApp) {
    let s = Setup::new(app).await;
    let tool = s.tool("t", "def main():\n    return 1\n").await;
    s.approve(&tool).await;
    for _ in 0..3 {
        s.test_run(&tool).await;
    }
    // Age two rows: one 10 days, one 40 days.
    let db = &s.app.state.db;
    let aged = |days: i64| origin::db::timestamp(chrono::Utc::now() - chrono::Duration::days(days));
    let ids: Vec<String> = {
        use sqlx::Row;
        sqlx::query("SELECT id FROM execution_logs ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("id").unwrap())
            .collect()
    };
    for (id, days) in ids.iter().zip([10, 40]) {
        sqlx::query("UPDATE execution_logs SET created_at = $1 WHERE id = $2")
            .bind(aged(days))
            .bind(id)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    // Default 30 days: only the 40-day-old row goes.
    assert_eq!(origin::execution::apply_retention(db).await.unwrap(), 1);
    assert_eq!(s.app.count("execution_logs").await, 2);
    s.policy(json!({"log_retention_days": 7})).await;
    assert_eq!(origin::execution::apply_retention(db).await.unwrap(), 1);
    assert_eq!(s.app.count("execution_logs").await, 1);
}
