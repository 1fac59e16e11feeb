//! Servers, tools, versions and approvals through the admin API, on both backends, with a real
//! sandbox validating code. The approval tests try every path that could run unapproved code.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

on_both_backends!(
    servers_are_managed_with_clear_errors,
    tool_code_is_validated_before_anything_is_saved,
    edits_make_versions_and_never_change_what_runs,
    approval_transitions_are_checked,
    rollback_creates_a_draft_that_needs_review,
    versions_can_be_compared,
    the_call_time_check_refuses_every_unapproved_path,
    concurrent_edits_never_expose_unapproved_code,
    viewers_read_and_only_approvers_review,
    reencryption_finishes_a_key_rotation,
);

const V1: &str = "async def main(city: str) -> dict:\n    \"\"\"Weather for a city.\"\"\"\n    return {'city': city, 'v': 1}\n";
const V2: &str = "async def main(city: str, days: int = 1) -> dict:\n    \"\"\"Weather for a city.\"\"\"\n    return {'city': city, 'v': 2}\n";

struct Setup {
    app: TestApp,
    admin: String,
}

impl Setup {
    async fn new(app: TestApp) -> Setup {
        let app = app.with_sandbox().await;
        let admin = app.admin().await.token("access_token");
        Setup { app, admin }
    }

    async fn call(&self, method: Method, path: &str, body: Value) -> Response {
        self.app.call(method, path, Some(&self.admin), body).await
    }

    async fn server(&self, name: &str) -> String {
        self.app.create_server(&self.admin, name).await
    }

    async fn tool(&self, server: &str, name: &str, code: &str) -> String {
        self.app.create_tool(&self.admin, server, name, code).await
    }

    async fn act(&self, tool: &str, body: Value) -> Response {
        self.call(
            Method::POST,
            &format!("/api/approvals/tools/{tool}/action"),
            body,
        )
        .await
    }

    async fn approve(&self, tool: &str) {
        self.app.approve_tool(&self.admin, tool).await
    }

    async fn start(&self, server: &str) -> Response {
        self.call(
            Method::POST,
            &format!("/api/sandbox/servers/{server}/start"),
            json!({}),
        )
        .await
    }

    /// What would run now (or why nothing would).
    async fn runnable(&self, tool: &str) -> Result<origin::tools::Approved, origin::Error> {
        origin::tools::runnable(&self.app.state.db, tool).await
    }
}

async fn servers_are_managed_with_clear_errors(app: TestApp) {
    let s = Setup::new(app).await;
    let id = s.server("weather").await;
    let duplicate = s
        .call(Method::POST, "/api/servers", json!({"name": "weather"}))
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    for bad in ["Weather", "a__b", "a-b", "", "9x", "x_", &"a".repeat(31)] {
        let response = s
            .call(Method::POST, "/api/servers", json!({"name": bad}))
            .await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        assert!(
            response.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("server name")
        );
    }
    let too_long = s
        .call(
            Method::POST,
            "/api/servers",
            json!({"name": "ok", "description": "x".repeat(2001)}),
        )
        .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    for i in 0..3 {
        s.server(&format!("extra{i}")).await;
    }
    let page = s
        .app
        .get("/api/servers?page_size=2&page=2", Some(&s.admin))
        .await;
    assert_eq!(
        (page.body["total"].as_i64(), page.body["pages"].as_i64()),
        (Some(4), Some(2))
    );
    let updated = s
        .call(
            Method::PATCH,
            &format!("/api/servers/{id}"),
            json!({"description": "new", "default_timeout_ms": 5000}),
        )
        .await;
    assert_eq!(updated.body["description"], "new");
    assert_eq!(updated.body["default_timeout_ms"], 5000);
    let bad_timeout = s
        .call(
            Method::PATCH,
            &format!("/api/servers/{id}"),
            json!({"default_timeout_ms": 5}),
        )
        .await;
    assert_eq!(bad_timeout.status, StatusCode::UNPROCESSABLE_ENTITY);
    let rename_clash = s
        .call(
            Method::PATCH,
            &format!("/api/servers/{id}"),
            json!({"name": "extra0"}),
        )
        .await;
    assert_eq!(rename_clash.status, StatusCode::CONFLICT);
    assert_eq!(
        s.app.get("/api/servers/nope", Some(&s.admin)).await.status,
        StatusCode::NOT_FOUND
    );
    // Deleting a server takes its tools and versions with it.
    s.tool(&id, "forecast", V1).await;
    assert_eq!(
        s.call(Method::DELETE, &format!("/api/servers/{id}"), json!({}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(s.app.count("tools").await, 0);
    assert_eq!(s.app.count("tool_versions").await, 0);
    assert_eq!(
        s.call(Method::DELETE, &format!("/api/servers/{id}"), json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn tool_code_is_validated_before_anything_is_saved(app: TestApp) {
    let s = Setup::new(app).await;
    let server = s.server("weather").await;
    let path = format!("/api/servers/{server}/tools");
    for (code, needle) in [
        ("def main(:\n", "line 1: syntax error"),
        (
            "import os\ndef main():\n    return os.getcwd()\n",
            "line 1: the module 'os'",
        ),
        ("def helper():\n    return 1\n", "main"),
        ("def main():\n    return ().__class__\n", "line 2"),
    ] {
        let response = s
            .call(
                Method::POST,
                &path,
                json!({"name": "t", "python_code": code}),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{code:?}: {}",
            response.text
        );
        assert!(
            response.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{}",
            response.text
        );
    }
    let oversize = format!("def main():\n    return 1\n#{}\n", "x".repeat(101 * 1024));
    assert_eq!(
        s.call(
            Method::POST,
            &path,
            json!({"name": "t", "python_code": oversize})
        )
        .await
        .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        s.call(
            Method::POST,
            &path,
            json!({"name": "Bad Name", "python_code": V1})
        )
        .await
        .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(s.app.count("tools").await, 0);
    assert_eq!(s.app.count("tool_versions").await, 0);
    let created = s
        .call(
            Method::POST,
            &path,
            json!({"name": "forecast", "python_code": V1}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["latest"]["status"], "draft");
    assert_eq!(
        created.body["latest"]["input_schema"]["required"],
        json!(["city"])
    );
    assert_eq!(created.body["approved_version"], Value::Null);
    let duplicate = s
        .call(
            Method::POST,
            &path,
            json!({"name": "forecast", "python_code": V1}),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    let unknown_server = s
        .call(
            Method::POST,
            "/api/servers/nope/tools",
            json!({"name": "x", "python_code": V1}),
        )
        .await;
    assert_eq!(unknown_server.status, StatusCode::NOT_FOUND);
}

async fn edits_make_versions_and_never_change_what_runs(app: TestApp) {
    let s = Setup::new(app).await;
    let server = s.server("weather").await;
    let tool = s.tool(&server, "forecast", V1).await;
    s.approve(&tool).await;
    assert_eq!(s.start(&server).await.status, StatusCode::OK);
    let running = s.runnable(&tool).await.unwrap();
    assert_eq!(
        (running.version, running.public_name.as_str()),
        (1, "weather__forecast")
    );
    // A code edit makes a draft version 2; version 1 keeps running.
    let edited = s
        .call(
            Method::PATCH,
            &format!("/api/tools/{tool}"),
            json!({"python_code": V2, "change_summary": "days"}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text);
    assert_eq!(
        (
            edited.body["current_version"].as_i64(),
            edited.body["approved_version"].as_i64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(edited.body["latest"]["status"], "draft");
    let running = s.runnable(&tool).await.unwrap();
    assert_eq!((running.version, running.code.as_str()), (1, V1));
    // Renames, toggles and an unchanged code do not make versions.
    s.call(
        Method::PATCH,
        &format!("/api/tools/{tool}"),
        json!({"name": "daily", "python_code": V2, "timeout_ms": 2000}),
    )
    .await;
    assert_eq!(s.app.count("tool_versions").await, 2);
    // Approving version 2 switches what runs.
    s.approve(&tool).await;
    let running = s.runnable(&tool).await.unwrap();
    assert_eq!(
        (
            running.version,
            running.code.as_str(),
            running.public_name.as_str()
        ),
        (2, V2, "weather__daily")
    );
    assert_eq!(running.timeout_ms, 2000);
    let versions = s
        .app
        .get(&format!("/api/tools/{tool}/versions"), Some(&s.admin))
        .await;
    assert_eq!(versions.body["total_versions"], 2);
    assert_eq!(versions.body["versions"][0]["change_summary"], "days");
}

async fn approval_transitions_are_checked(app: TestApp) {
    let s = Setup::new(app).await;
    let server = s.server("weather").await;
    let tool = s.tool(&server, "forecast", V1).await;
    let no_reason = s.act(&tool, json!({"action": "reject"})).await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    let published = s
        .act(
            &tool,
            json!({"action": "submit_for_review", "reason": "please"}),
        )
        .await;
    assert_eq!(published.body["status"], "pending_review");
    assert_eq!(published.body["publish_notes"], "please");
    let queue = s.app.get("/api/approvals/tools", Some(&s.admin)).await;
    assert_eq!(queue.body["total"], 1);
    assert_eq!(queue.body["items"][0]["tool_name"], "forecast");
    let rejected = s
        .act(&tool, json!({"action": "reject", "reason": "use https"}))
        .await;
    assert_eq!(
        (
            rejected.body["status"].as_str(),
            rejected.body["rejection_reason"].as_str()
        ),
        (Some("rejected"), Some("use https"))
    );
    let again = s
        .act(&tool, json!({"action": "reject", "reason": "twice"}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    s.approve(&tool).await;
    let twice = s.act(&tool, json!({"action": "approve"})).await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert!(
        twice.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("it is approved")
    );
    assert_eq!(
        s.act(&tool, json!({"action": "dance"})).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        s.act(&tool, json!({"action": "approve", "version": 9}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.act("nope", json!({"action": "approve"})).await.status,
        StatusCode::NOT_FOUND
    );
    let stats = s.app.get("/api/approvals/stats", Some(&s.admin)).await;
    assert_eq!(stats.body["by_status"]["approved"], 1);
    // Revoking takes it out of reach at once.
    s.start(&server).await;
    assert!(s.runnable(&tool).await.is_ok());
    let revoked = s
        .call(
            Method::POST,
            &format!("/api/approvals/tools/{tool}/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(revoked.body["status"], "revoked", "{}", revoked.text);
    assert!(s.runnable(&tool).await.is_err());
    let bulk_tool = s.tool(&server, "other", V1).await;
    let bulk = s
        .call(
            Method::POST,
            "/api/approvals/tools/bulk-action",
            json!({"tool_ids": [bulk_tool, "nope"], "action": "approve"}),
        )
        .await;
    assert_eq!(bulk.body[0]["ok"], true);
    assert_eq!(bulk.body[1]["ok"], false);
    let empty = s
        .call(
            Method::POST,
            "/api/approvals/tools/bulk-action",
            json!({"tool_ids": [], "action": "approve"}),
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn rollback_creates_a_draft_that_needs_review(app: TestApp) {
    let s = Setup::new(app).await;
    let server = s.server("weather").await;
    let tool = s.tool(&server, "forecast", V1).await;
    s.call(
        Method::PATCH,
        &format!("/api/tools/{tool}"),
        json!({"python_code": V2}),
    )
    .await;
    s.approve(&tool).await;
    s.start(&server).await;
    let rolled = s
        .call(
            Method::POST,
            &format!("/api/tools/{tool}/versions/1/rollback"),
            json!({}),
        )
        .await;
    assert_eq!(rolled.status, StatusCode::CREATED, "{}", rolled.text);
    assert_eq!(
        (
            rolled.body["version"].as_i64(),
            rolled.body["status"].as_str()
        ),
        (Some(3), Some("draft"))
    );
    assert_eq!(rolled.body["change_source"], "rollback");
    assert_eq!(rolled.body["python_code"], V1);
    // Version 2 still runs until version 3 is approved.
    assert_eq!(s.runnable(&tool).await.unwrap().version, 2);
    assert_eq!(
        s.call(
            Method::POST,
            &format!("/api/tools/{tool}/versions/9/rollback"),
            json!({})
        )
        .await
        .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        s.call(
            Method::POST,
            &format!("/api/tools/{tool}/versions/0/rollback"),
            json!({})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

async fn versions_can_be_compared(app: TestApp) {
    let s = Setup::new(app).await;
    let server = s.server("weather").await;
    let tool = s.tool(&server, "forecast", V1).await;
    s.call(
        Method::PATCH,
        &format!("/api/tools/{tool}"),
        json!({"python_code": V2}),
    )
    .await;
    let diff = s
        .app
        .get(
            &format!("/api/tools/{tool}/versions/compare?from_version=1&to_version=2"),
            Some(&s.admin),
        )
        .await;
    let text = diff.body["diff"].as_str().unwrap();
    assert!(
        text.contains("--- version 1") && text.contains("+++ version 2"),
        "{text}"
    );
    assert!(text.contains("-async def main(city: str) -> dict:"));
    assert!(text.contains("+async def main(city: str, days: int = 1) -> dict:"));
    let missing = s
        .app
        .get(
            &format!("/api/tools/{tool}/versions/compare?from_version=1&to_version=5"),
            Some(&s.admin),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let bad = s
        .app
        .get(
            &format!("/api/tools/{tool}/versions/compare?from_version=a"),
            Some(&s.admin),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

async fn the_call_time_check_refuses_every_unapproved_path(app: TestApp) {
    let s = Setup::new(app).await;
    let server = s.server("weather").await;
    let tool = s.tool(&server, "forecast", V1).await;
    // Start with nothing approved is refused; so is calling.
    assert_eq!(s.start(&server).await.status, StatusCode::CONFLICT);
    let err = s.runnable(&tool).await.unwrap_err().to_string();
    assert!(err.contains("not running"), "{err}");
    s.approve(&tool).await;
    assert_eq!(s.start(&server).await.status, StatusCode::OK);
    assert_eq!(s.start(&server).await.status, StatusCode::CONFLICT);
    assert!(s.runnable(&tool).await.is_ok());
    // Disabled tool.
    s.call(
        Method::PATCH,
        &format!("/api/tools/{tool}"),
        json!({"enabled": false}),
    )
    .await;
    assert!(
        s.runnable(&tool)
            .await
            .unwrap_err()
            .to_string()
            .contains("disabled")
    );
    s.call(
        Method::PATCH,
        &format!("/api/tools/{tool}"),
        json!({"enabled": true}),
    )
    .await;
    // Stopped server.
    s.call(
        Method::POST,
        &format!("/api/sandbox/servers/{server}/stop"),
        json!({}),
    )
    .await;
    assert!(
        s.runnable(&tool)
            .await
            .unwrap_err()
            .to_string()
            .contains("not running")
    );
    s.start(&server).await;
    // Approved code changed behind MCPbox's back (a database edit) does not run.
    sqlx::query("UPDATE tool_versions SET python_code = $1 WHERE tool_id = $2")
        .bind("def main():\n    return 'evil'\n")
        .bind(&tool)
        .execute(&s.app.state.db.pool)
        .await
        .unwrap();
    let err = s.runnable(&tool).await.unwrap_err().to_string();
    assert!(err.contains("changed outside MCPbox"), "{err}");
}

async fn concurrent_edits_never_expose_unapproved_code(app: TestApp) {
    let s = std::sync::Arc::new(Setup::new(app).await);
    let server = s.server("weather").await;
    let tool = s.tool(&server, "forecast", V1).await;
    s.approve(&tool).await;
    s.start(&server).await;
    let mut tasks = Vec::new();
    for i in 0..4 {
        let s = s.clone();
        let tool = tool.clone();
        tasks.push(tokio::spawn(async move {
            let code = format!("def main():\n    return 'unapproved {i}'\n");
            s.call(
                Method::PATCH,
                &format!("/api/tools/{tool}"),
                json!({"python_code": code}),
            )
            .await
            .status
        }));
    }
    let mut seen = Vec::new();
    for _ in 0..40 {
        seen.push(s.runnable(&tool).await.unwrap().code);
        tokio::task::yield_now().await;
    }
    for task in tasks {
        let status = task.await.unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::CONFLICT,
            "{status}"
        );
    }
    assert!(
        seen.iter().all(|code| code == V1),
        "unapproved code became runnable"
    );
    assert_eq!(s.runnable(&tool).await.unwrap().code, V1);
}

async fn viewers_read_and_only_approvers_review(app: TestApp) {
    let s = Setup::new(app).await;
    let server = s.server("weather").await;
    let tool = s.tool(&server, "forecast", V1).await;
    let viewer = s
        .app
        .user_with_role(&s.admin, "watcher", "viewer")
        .await
        .token("access_token");
    let approver = s
        .app
        .user_with_role(&s.admin, "reviewer", "approver")
        .await
        .token("access_token");
    assert_eq!(
        s.app
            .get(&format!("/api/tools/{tool}"), Some(&viewer))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        s.app
            .get("/api/approvals/tools?status=all", Some(&viewer))
            .await
            .status,
        StatusCode::OK
    );
    let approve = json!({"action": "approve"});
    let path = format!("/api/approvals/tools/{tool}/action");
    assert_eq!(
        s.app
            .call(Method::POST, &path, Some(&viewer), approve.clone())
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.app
            .call(
                Method::PATCH,
                &format!("/api/tools/{tool}"),
                Some(&approver),
                json!({"enabled": false})
            )
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.app
            .call(
                Method::POST,
                "/api/servers",
                Some(&approver),
                json!({"name": "x"})
            )
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let approved = s
        .app
        .call(Method::POST, &path, Some(&approver), approve)
        .await;
    assert_eq!(approved.status, StatusCode::OK);
    assert_eq!(approved.body["reviewed_by"], "reviewer");
    assert_eq!(
        s.app
            .get("/api/approvals/tools?status=bogus", Some(&viewer))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

/// `mcpbox admin reencrypt` (`secrets::rotation::reencrypt`): after it, the previous key can go;
/// a second run changes nothing; a value under a key nobody configured is reported, not lost.
async fn reencryption_finishes_a_key_rotation(app: TestApp) {
    use origin::app::AppState;
    use origin::crypto::Keyring;
    use origin::dispatch::Sandbox;
    use origin::secrets::rotation::{Reencrypted, reencrypt};

    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "rotated").await;
    for (key, value) in [("ALPHA", "first value 123"), ("BETA", "second value 456")] {
        let set = app
            .call(
                Method::PUT,
                &format!("/api/servers/{server}/secrets/{key}"),
                Some(&admin),
                json!({"value": value}),
            )
            .await;
        assert!(set.status.is_success(), "{}", set.text);
    }
    // A third value written under a key that is neither the new nor the old one.
    let stranger = AppState::new(
        app.state.db.clone(),
        Keyring::new([7; 32], None),
        Sandbox::unavailable("not needed"),
    );
    origin::secrets::set_value(&stranger, &server, "GAMMA", "written elsewhere")
        .await
        .unwrap();

    let new_key = [99; 32];
    let rotating = Keyring::new(new_key, Some(KEY));
    let first = reencrypt(&app.state.db, &rotating).await.unwrap();
    assert_eq!(
        first,
        Reencrypted {
            reencrypted: 2,
            current: 0,
            changed_meanwhile: 0,
            undecryptable: 1
        }
    );
    assert!(!first.previous_key_unused());
    let again = reencrypt(&app.state.db, &rotating).await.unwrap();
    assert_eq!(
        (again.reencrypted, again.current, again.undecryptable),
        (0, 2, 1)
    );

    // With the new key alone, both rotated values decrypt; the stranger's still does not.
    origin::secrets::delete(&app.state.db, &server, "GAMMA")
        .await
        .unwrap();
    let rotated = AppState::new(
        app.state.db.clone(),
        Keyring::new(new_key, None),
        Sandbox::unavailable("not needed"),
    );
    let values = origin::secrets::values(&rotated, &server).await.unwrap();
    assert_eq!(values["ALPHA"], "first value 123");
    assert_eq!(values["BETA"], "second value 456");
    let done = reencrypt(&app.state.db, &Keyring::new(new_key, None))
        .await
        .unwrap();
    assert!(done.previous_key_unused(), "{done:?}");
    assert_eq!(done.current, 2);
}
