//! Servers, tools, versions and approvals through the admin API, on both backends, with a real
//! sandbox validating code. The approval tests try every path that could run unapproved code.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use origin::activity::Audit;
use origin::gateway::{Caller, management};
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
    an_approval_binds_to_the_version_the_reviewer_saw,
    an_admins_stop_and_disable_hold_against_every_llm,
    reviewed_names_and_the_management_namespace_are_out_of_an_llms_reach,
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

    /// A management tool, called as the MCP gateway calls it for `caller`.
    async fn llm(&self, caller: &Caller, name: &str, args: Value) -> Result<Value, origin::Error> {
        let actor = match caller {
            Caller::Remote { email: Some(email) } => email.clone(),
            _ => "mcp:local".to_owned(),
        };
        let audit = Audit {
            actor,
            request_id: None,
        };
        let Value::Object(args) = args else {
            panic!("arguments must be an object")
        };
        Ok(
            management::call(&self.app.state, caller, &audit, name, &args)
                .await?
                .expect("a management tool"),
        )
    }

    /// A local LLM's management call that must succeed.
    async fn local(&self, name: &str, args: Value) -> Value {
        self.llm(&Caller::Local, name, args)
            .await
            .unwrap_or_else(|err| panic!("{name}: {err}"))
    }

    async fn versions(&self, tool: &str) -> Vec<(i64, String)> {
        let listed = self
            .app
            .get(&format!("/api/tools/{tool}/versions"), Some(&self.admin))
            .await;
        let mut versions: Vec<(i64, String)> = listed.body["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["version"].as_i64().unwrap(),
                    v["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        versions.sort();
        versions
    }
}

fn remote() -> Caller {
    Caller::Remote {
        email: Some("alice@example.com".into()),
    }
}

/// The message of a refusal, which must be of `status`.
fn refused(result: Result<Value, origin::Error>, status: StatusCode) -> String {
    match result {
        Ok(value) => panic!("not refused: {value}"),
        Err(err) => {
            assert_eq!(err.status(), status, "{err}");
            err.to_string()
        }
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
        twice.body["error"]["message"].as_str().unwrap().contains(
            "no version of \"forecast\" is pending review (its newest, version 1, is approved)"
        ),
        "{}",
        twice.text
    );
    let named = s
        .act(&tool, json!({"action": "approve", "version": 1}))
        .await;
    assert_eq!(named.status, StatusCode::CONFLICT);
    assert!(named.text.contains("it is approved"), "{}", named.text);
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
    s.act(&bulk_tool, json!({"action": "submit_for_review"}))
        .await;
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
    s.act(&tool, json!({"action": "submit_for_review"})).await;
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

/// The attack of issue #13 (1): the LLM asks for review of version 1, then writes version 2
/// (a draft nobody reviewed) before the approver acts. Whatever front the approver uses, the
/// approval lands on version 1, what was listed, and callers get version 1, never version 2.
async fn an_approval_binds_to_the_version_the_reviewer_saw(app: TestApp) {
    let s = Setup::new(app).await;
    let approver = s
        .app
        .user_with_role(&s.admin, "reviewer", "approver")
        .await
        .token("access_token");
    let as_approver =
        async |path: &str, body: Value| s.app.call(Method::POST, path, Some(&approver), body).await;
    let server = s.server("weather").await;
    let v3 = V2.replace("'v': 2", "'v': 3");
    // Over MCP, for two tools: create, ask for review (v1 pending), write v2 (a draft).
    let mut tools = Vec::new();
    for name in ["forecast", "daily"] {
        let created = s
            .local(
                "mcpbox_create_tool",
                json!({"server_id": server, "name": name, "python_code": V1}),
            )
            .await;
        let tool = created["id"].as_str().unwrap().to_owned();
        let published = s
            .local("mcpbox_request_publish", json!({"tool_id": tool}))
            .await;
        assert_eq!(published["approval_status"], "pending_review");
        let updated = s
            .local(
                "mcpbox_update_tool",
                json!({"tool_id": tool, "python_code": V2}),
            )
            .await;
        // The rule: new code does not touch the version waiting for review.
        assert_eq!(
            updated["new_version"],
            json!({"version": 2, "approval_status": "draft"})
        );
        assert_eq!(
            s.versions(&tool).await,
            [(1, "pending_review".into()), (2, "draft".into())]
        );
        tools.push(tool);
    }
    let (bulk_tool, single_tool) = (&tools[0], &tools[1]);
    // The queue lists version 1 of each.
    let queue = s.app.get("/api/approvals/tools", Some(&approver)).await;
    assert_eq!(queue.body["total"], 2);
    assert!(
        queue.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item["version"] == 1),
        "{}",
        queue.text
    );

    // Approving the draft by name is refused, clearly, on every front.
    let draft = as_approver(
        &format!("/api/approvals/tools/{bulk_tool}/action"),
        json!({"action": "approve", "version": 2}),
    )
    .await;
    assert_eq!(draft.status, StatusCode::CONFLICT);
    let message = draft.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("cannot approve version 2: it is a draft (it must be pending review)")
            && message.contains("submitted for review"),
        "{message}"
    );
    let listed = as_approver(
        "/api/approvals/tools/bulk-action",
        json!({"items": [{"tool_id": bulk_tool, "version": 2}], "action": "approve"}),
    )
    .await;
    assert_eq!(listed.body[0]["ok"], false, "{}", listed.text);
    assert!(listed.text.contains("it is a draft"), "{}", listed.text);

    // Bulk by tool id approves the version pending review: 1, not the newest.
    let bulk = as_approver(
        "/api/approvals/tools/bulk-action",
        json!({"tool_ids": [bulk_tool], "action": "approve"}),
    )
    .await;
    assert_eq!(
        (
            bulk.body[0]["ok"].as_bool(),
            bulk.body[0]["version"].as_i64()
        ),
        (Some(true), Some(1)),
        "{}",
        bulk.text
    );
    assert_eq!(
        s.versions(bulk_tool).await,
        [(1, "approved".into()), (2, "draft".into())]
    );
    // The single action without a version does the same.
    let single = as_approver(
        &format!("/api/approvals/tools/{single_tool}/action"),
        json!({"action": "approve"}),
    )
    .await;
    assert_eq!(single.status, StatusCode::OK, "{}", single.text);
    assert_eq!(single.body["version"], 1);
    assert_eq!(
        s.versions(single_tool).await,
        [(1, "approved".into()), (2, "draft".into())]
    );

    // Callers get version 1: the call-time check, a test run over MCP and tools/call.
    assert_eq!(s.start(&server).await.status, StatusCode::OK);
    for tool in &tools {
        let running = s.runnable(tool).await.unwrap();
        assert_eq!((running.version, running.code.as_str()), (1, V1));
    }
    let tested = s
        .local(
            "mcpbox_test_code",
            json!({"tool_id": bulk_tool, "arguments": {"city": "Oslo"}}),
        )
        .await;
    assert_eq!(
        (tested["version"].as_i64(), tested["result"]["v"].as_i64()),
        (Some(1), Some(1)),
        "{tested}"
    );
    for name in ["weather__forecast", "weather__daily"] {
        let called = s
            .app
            .mcp(
                "tools/call",
                json!({"name": name, "arguments": {"city": "Oslo"}}),
            )
            .await;
        assert_eq!(called["result"]["isError"], false, "{called}");
        assert_eq!(called["result"]["structuredContent"]["v"], 1, "{called}");
    }

    // Two versions waiting: a decision without a version is ambiguous and refused.
    s.local("mcpbox_request_publish", json!({"tool_id": single_tool}))
        .await;
    s.local(
        "mcpbox_update_tool",
        json!({"tool_id": single_tool, "python_code": v3}),
    )
    .await;
    s.local("mcpbox_request_publish", json!({"tool_id": single_tool}))
        .await;
    let ambiguous = as_approver(
        &format!("/api/approvals/tools/{single_tool}/action"),
        json!({"action": "approve"}),
    )
    .await;
    assert_eq!(ambiguous.status, StatusCode::CONFLICT);
    assert_eq!(
        ambiguous.body["error"]["message"],
        "versions 2, 3 of \"daily\" are pending review: name the version you reviewed"
    );
    let ambiguous = as_approver(
        "/api/approvals/tools/bulk-action",
        json!({"tool_ids": [single_tool], "action": "approve"}),
    )
    .await;
    assert_eq!(ambiguous.body[0]["ok"], false, "{}", ambiguous.text);
    // Naming it decides exactly it: version 2 runs, version 3 still waits.
    let named = as_approver(
        "/api/approvals/tools/bulk-action",
        json!({"items": [{"tool_id": single_tool, "version": 2}], "action": "approve"}),
    )
    .await;
    assert_eq!(named.body[0]["version"], 2, "{}", named.text);
    assert_eq!(s.runnable(single_tool).await.unwrap().version, 2);
    assert_eq!(
        s.versions(single_tool).await,
        [
            (1, "approved".into()),
            (2, "approved".into()),
            (3, "pending_review".into())
        ]
    );
    // Both shapes at once, or neither, is a 422.
    for body in [
        json!({"tool_ids": [bulk_tool], "items": [{"tool_id": bulk_tool, "version": 1}], "action": "approve"}),
        json!({"action": "approve"}),
    ] {
        let bad = as_approver("/api/approvals/tools/bulk-action", body.clone()).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
}

/// Issue #13 (2): an admin's disable and stop hold against LLMs, local and remote: test runs
/// honour them like calls, an LLM cannot start a server an admin stopped, nor enable a tool.
async fn an_admins_stop_and_disable_hold_against_every_llm(app: TestApp) {
    let s = Setup::new(app).await;
    let server = s.server("weather").await;
    let tool = s.tool(&server, "forecast", V1).await;
    s.approve(&tool).await;
    assert_eq!(s.start(&server).await.status, StatusCode::OK);
    s.call(
        Method::PATCH,
        "/api/settings/security-policy",
        json!({"remote_tool_editing": "enabled"}),
    )
    .await;
    let patch_tool = async |body: Value| {
        s.call(Method::PATCH, &format!("/api/tools/{tool}"), body)
            .await
    };
    let enabled = async || {
        s.app
            .get(&format!("/api/tools/{tool}"), Some(&s.admin))
            .await
            .body["enabled"]
            .clone()
    };
    let test_code = json!({"tool_id": tool, "arguments": {"city": "Oslo"}});
    let ran = s.local("mcpbox_test_code", test_code.clone()).await;
    assert_eq!(ran["success"], true, "{ran}");

    // The admin disables the tool: no LLM test-runs it or enables it again.
    assert_eq!(
        patch_tool(json!({"enabled": false})).await.status,
        StatusCode::OK
    );
    for caller in [Caller::Local, remote()] {
        let message = refused(
            s.llm(&caller, "mcpbox_test_code", test_code.clone()).await,
            StatusCode::CONFLICT,
        );
        assert!(message.contains("is disabled"), "{message}");
        // Not even together with a code change: nothing of it is applied.
        let message = refused(
            s.llm(
                &caller,
                "mcpbox_update_tool",
                json!({"tool_id": tool, "enabled": true, "python_code": V2}),
            )
            .await,
            StatusCode::FORBIDDEN,
        );
        assert!(message.contains("only an admin can enable"), "{message}");
    }
    assert_eq!(enabled().await, false);
    assert_eq!(s.app.count("tool_versions").await, 1);
    // A person still may try it before going live.
    let person = s
        .app
        .test_run(&s.admin, &tool, json!({"city": "Oslo"}))
        .await;
    assert_eq!(person.body["success"], true, "{}", person.text);
    // Only the admin enables it again. An LLM may disable it, and then cannot undo that.
    assert_eq!(
        patch_tool(json!({"enabled": true})).await.status,
        StatusCode::OK
    );
    let disabled = s
        .local(
            "mcpbox_update_tool",
            json!({"tool_id": tool, "enabled": false}),
        )
        .await;
    assert_eq!(disabled["enabled"], false);
    refused(
        s.llm(
            &Caller::Local,
            "mcpbox_update_tool",
            json!({"tool_id": tool, "enabled": true}),
        )
        .await,
        StatusCode::FORBIDDEN,
    );
    assert_eq!(
        patch_tool(json!({"enabled": true})).await.status,
        StatusCode::OK
    );
    // `enabled: true` on an enabled tool is no change, and allowed.
    s.local(
        "mcpbox_update_tool",
        json!({"tool_id": tool, "enabled": true, "description": "Weather."}),
    )
    .await;
    assert_eq!(enabled().await, true);

    // The admin stops the server: no LLM test-runs its tools or starts it again.
    let stop = format!("/api/sandbox/servers/{server}/stop");
    let stopped = s.call(Method::POST, &stop, json!({})).await;
    assert_eq!(stopped.body["stopped_by_admin"], true, "{}", stopped.text);
    for caller in [Caller::Local, remote()] {
        let message = refused(
            s.llm(&caller, "mcpbox_test_code", test_code.clone()).await,
            StatusCode::CONFLICT,
        );
        assert!(message.contains("is not running"), "{message}");
        let message = refused(
            s.llm(&caller, "mcpbox_start_server", json!({"server_id": server}))
                .await,
            StatusCode::FORBIDDEN,
        );
        assert!(
            message.contains("an admin stopped this server: only an admin can start it again"),
            "{message}"
        );
    }
    let shown = s
        .app
        .get(&format!("/api/servers/{server}"), Some(&s.admin))
        .await;
    assert_eq!(
        (
            shown.body["status"].as_str(),
            shown.body["stopped_by_admin"].as_bool()
        ),
        (Some("stopped"), Some(true))
    );
    let person = s
        .app
        .test_run(&s.admin, &tool, json!({"city": "Oslo"}))
        .await;
    assert_eq!(person.body["success"], true, "{}", person.text);

    // An LLM's own stop it may undo; an admin can take that stop over.
    assert_eq!(s.start(&server).await.status, StatusCode::OK);
    let by_llm = s
        .local("mcpbox_stop_server", json!({"server_id": server}))
        .await;
    assert_eq!(by_llm["stopped_by_admin"], false, "{by_llm}");
    let again = s
        .local("mcpbox_start_server", json!({"server_id": server}))
        .await;
    assert_eq!(again["status"], "running");
    s.local("mcpbox_stop_server", json!({"server_id": server}))
        .await;
    let taken_over = s.call(Method::POST, &stop, json!({})).await;
    assert_eq!(taken_over.status, StatusCode::OK, "{}", taken_over.text);
    assert_eq!(taken_over.body["stopped_by_admin"], true);
    assert_eq!(
        s.call(Method::POST, &stop, json!({})).await.status,
        StatusCode::CONFLICT
    );
    refused(
        s.llm(
            &remote(),
            "mcpbox_start_server",
            json!({"server_id": server}),
        )
        .await,
        StatusCode::FORBIDDEN,
    );
    assert_eq!(s.start(&server).await.status, StatusCode::OK);

    // Under auto-approval a new snippet's draft may be test-run by an LLM, on a running server.
    s.call(
        Method::PATCH,
        "/api/settings/security-policy",
        json!({"tool_approval_mode": "auto_approve"}),
    )
    .await;
    let fresh = s
        .local(
            "mcpbox_create_tool",
            json!({"server_id": server, "name": "fresh", "python_code": V2}),
        )
        .await;
    assert_eq!(fresh["approval_status"], "draft");
    let fresh_test = json!({"tool_id": fresh["id"], "arguments": {"city": "Oslo"}});
    let ran = s.local("mcpbox_test_code", fresh_test.clone()).await;
    assert_eq!(ran["result"]["v"], 2, "{ran}");
    s.call(Method::POST, &stop, json!({})).await;
    let message = refused(
        s.llm(&Caller::Local, "mcpbox_test_code", fresh_test).await,
        StatusCode::CONFLICT,
    );
    assert!(message.contains("is not running"), "{message}");
}

/// Issue #13 (11): an LLM cannot rename a tool a person approved or is reviewing (the name is
/// what clients call), and no server can be named into the `mcpbox_` namespace of the
/// management tools, on any front.
async fn reviewed_names_and_the_management_namespace_are_out_of_an_llms_reach(app: TestApp) {
    let s = Setup::new(app).await;
    let server = s.server("weather").await;
    let created = s
        .local(
            "mcpbox_create_tool",
            json!({"server_id": server, "name": "forecast", "python_code": V1}),
        )
        .await;
    let tool = created["id"].as_str().unwrap().to_owned();
    // A draft nobody reviewed yet may be renamed.
    let renamed = s
        .local(
            "mcpbox_update_tool",
            json!({"tool_id": tool, "name": "outlook"}),
        )
        .await;
    assert_eq!(renamed["name"], "outlook");
    s.local("mcpbox_request_publish", json!({"tool_id": tool}))
        .await;
    let rename = json!({"tool_id": tool, "name": "send_money", "python_code": V2});
    for stage in ["pending", "approved"] {
        if stage == "approved" {
            s.app
                .post(
                    &format!("/api/approvals/tools/{tool}/action"),
                    Some(&s.admin),
                    json!({"action": "approve", "version": 1}),
                )
                .await;
        }
        for caller in [Caller::Local, remote()] {
            if matches!(caller, Caller::Remote { .. }) {
                s.call(
                    Method::PATCH,
                    "/api/settings/security-policy",
                    json!({"remote_tool_editing": "enabled"}),
                )
                .await;
            }
            let message = refused(
                s.llm(&caller, "mcpbox_update_tool", rename.clone()).await,
                StatusCode::FORBIDDEN,
            );
            assert!(
                message.contains("only an admin can rename it"),
                "{stage}: {message}"
            );
        }
        // Nothing of the refused change was applied: no new version, the old name.
        assert_eq!(s.app.count("tool_versions").await, 1, "{stage}");
        let shown = s.local("mcpbox_get_tool", json!({"tool_id": tool})).await;
        assert_eq!(shown["name"], "outlook", "{stage}");
    }
    // An admin renames it, and the public name follows.
    let by_admin = s
        .call(
            Method::PATCH,
            &format!("/api/tools/{tool}"),
            json!({"name": "forecast"}),
        )
        .await;
    assert_eq!(by_admin.status, StatusCode::OK, "{}", by_admin.text);
    assert_eq!(s.start(&server).await.status, StatusCode::OK);
    assert_eq!(
        s.runnable(&tool).await.unwrap().public_name,
        "weather__forecast"
    );

    // `mcpbox` and `mcpbox_…` are refused as server names, on REST and over MCP.
    for name in ["mcpbox", "mcpbox_x", "mcpbox_tools"] {
        let response = s
            .call(Method::POST, "/api/servers", json!({"name": name}))
            .await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert!(response.text.contains("reserved"), "{}", response.text);
        let response = s
            .call(
                Method::PATCH,
                &format!("/api/servers/{server}"),
                json!({"name": name}),
            )
            .await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        let message = refused(
            s.llm(
                &Caller::Local,
                "mcpbox_create_server",
                json!({"name": name}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        assert!(message.contains("reserved"), "{message}");
    }
    s.local("mcpbox_create_server", json!({"name": "mcpboxes"}))
        .await;
    // A server named so before the rule: its tools are not listed (they could never be called),
    // and renaming the server brings them back.
    let listed = async || -> Vec<String> {
        s.app.mcp("tools/list", json!({})).await["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .filter(|name| !name.starts_with(management::PREFIX))
            .collect()
    };
    assert_eq!(listed().await, ["weather__forecast"]);
    sqlx::query("UPDATE servers SET name = 'mcpbox_old' WHERE id = $1")
        .bind(&server)
        .execute(&s.app.state.db.pool)
        .await
        .unwrap();
    let all = s.app.mcp("tools/list", json!({})).await;
    assert!(!all.to_string().contains("mcpbox_old__"), "{all}");
    assert!(listed().await.is_empty());
    let renamed = s
        .call(
            Method::PATCH,
            &format!("/api/servers/{server}"),
            json!({"name": "weather"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    assert_eq!(listed().await, ["weather__forecast"]);
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
