//! Module and network access requests: the shared queue, and their effect on what tools may
//! import and reach at run time (through the real sandbox).

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use origin::access::{self, Kind, NewRequest};
use origin::activity::Audit;

/// The LLM, as the origin's MCP front will name it.
fn llm() -> Audit {
    Audit {
        actor: "llm".into(),
        request_id: None,
    }
}
use serde_json::{Value, json};

on_both_backends!(
    module_requests_decide_what_tools_may_import,
    dangerous_or_malformed_modules_cannot_be_requested,
    network_requests_decide_what_tools_may_reach,
    request_lifecycle_rules,
    the_rest_twin_asks_as_the_management_tools_do,
);

/// `POST /api/tools/{id}/access-requests` goes through the same rule as `mcpbox_request_module`
/// and `mcpbox_request_network_access`: pending, conflicts and bad fields refused readably.
async fn the_rest_twin_asks_as_the_management_tools_do(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "twin").await;
    let tool = app
        .create_tool(
            &admin,
            &server,
            "asker",
            "def main() -> str:\n    return 'x'\n",
        )
        .await;
    let path = format!("/api/tools/{tool}/access-requests");
    let asked = app
        .post(
            &path,
            Some(&admin),
            json!({"kind": "module", "module_name": "csv", "justification": "parse exports"}),
        )
        .await;
    assert_eq!(asked.status, StatusCode::CREATED, "{}", asked.text);
    assert_eq!(
        (
            &asked.body["status"],
            &asked.body["target"],
            &asked.body["kind"]
        ),
        (&json!("pending"), &json!("csv"), &json!("module"))
    );
    assert_eq!(asked.body["requested_by"], "admin");
    let again = app
        .post(
            &path,
            Some(&admin),
            json!({"kind": "module", "module_name": "csv", "justification": "again"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    let lan = app
        .post(
            &path,
            Some(&admin),
            json!({"kind": "network", "host": "192.168.1.20:8123", "justification": "home assistant"}),
        )
        .await;
    assert_eq!(lan.status, StatusCode::CREATED, "{}", lan.text);
    assert_eq!(
        (&lan.body["scope"], &lan.body["port"], &lan.body["status"]),
        (&json!("lan"), &json!(8123), &json!("pending"))
    );
    for bad in [
        json!({"kind": "module", "justification": "no name"}),
        json!({"kind": "module", "module_name": "csv", "host": "a.example", "justification": "both"}),
        json!({"kind": "teleport", "host": "a.example", "justification": "what"}),
        json!({"kind": "module", "module_name": "os", "justification": "never"}),
        json!({"kind": "network", "host": "127.0.0.1:80", "lan": true, "justification": "loopback"}),
    ] {
        let refused = app.post(&path, Some(&admin), bad.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            refused.text
        );
    }
    let nobody = app
        .post(
            "/api/tools/0190a0a0-0000-7000-8000-000000000000/access-requests",
            Some(&admin),
            json!({"kind": "module", "module_name": "csv", "justification": "x"}),
        )
        .await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND, "{}", nobody.text);
    let requests: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM access_requests")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(requests, 2, "nothing half-made by the refused ones");
}

struct Setup {
    app: TestApp,
    admin: String,
    server: String,
    tool: String,
}

impl Setup {
    async fn new(app: TestApp) -> Setup {
        let app = app.with_sandbox().await;
        let admin = app.admin().await.token("access_token");
        let server = app.create_server(&admin, "data").await;
        let code = "def main() -> str:\n    return 'plain'\n";
        let tool = app.create_tool(&admin, &server, "report", code).await;
        Setup {
            app,
            admin,
            server,
            tool,
        }
    }

    async fn request(
        &self,
        kind: Kind,
        target: &str,
        port: Option<i64>,
    ) -> Result<access::AccessRequest, origin::Error> {
        access::request(
            &self.app.state,
            &llm(),
            NewRequest {
                kind,
                tool_id: &self.tool,
                target,
                port,
                justification: "needed for the report",
            },
        )
        .await
    }

    async fn act(&self, kind: &str, id: &str, body: Value) -> Response {
        self.app
            .post(
                &format!("/api/approvals/{kind}/{id}/action"),
                Some(&self.admin),
                body,
            )
            .await
    }

    async fn set_code(&self, code: &str) -> Response {
        self.app
            .call(
                Method::PATCH,
                &format!("/api/tools/{}", self.tool),
                Some(&self.admin),
                json!({"python_code": code}),
            )
            .await
    }

    async fn approve_and_run(&self) -> Response {
        self.app.approve_tool(&self.admin, &self.tool).await;
        self.app
            .post(
                "/api/tools/test-code",
                Some(&self.admin),
                json!({"tool_id": self.tool, "arguments": {}}),
            )
            .await
    }
}

async fn module_requests_decide_what_tools_may_import(app: TestApp) {
    let s = Setup::new(app).await;
    let uses_csv = "import csv\ndef main() -> list:\n    return list(csv.reader(['a,b', 'c,d']))\n";
    // Not allowed yet: the code is refused with the line.
    let refused = s.set_code(uses_csv).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1: the module 'csv'")
    );
    let request = s.request(Kind::Module, "csv", None).await.unwrap();
    assert_eq!(request.status, "pending");
    let queue = s.app.get("/api/approvals/modules", Some(&s.admin)).await;
    assert_eq!(queue.body["total"], 1);
    assert_eq!(queue.body["items"][0]["target"], "csv");
    let approved = s
        .act("modules", &request.id, json!({"action": "approve"}))
        .await;
    assert_eq!(approved.body["status"], "approved", "{}", approved.text);
    // Now the code validates and runs.
    assert_eq!(s.set_code(uses_csv).await.status, StatusCode::OK);
    let ran = s.approve_and_run().await;
    assert_eq!(
        ran.body["result"],
        json!([["a", "b"], ["c", "d"]]),
        "{}",
        ran.text
    );
    let hosts = s
        .app
        .get(
            &format!("/api/servers/{}/allowed-hosts", s.server),
            Some(&s.admin),
        )
        .await;
    assert!(
        hosts.body["allowed_modules"]
            .as_array()
            .unwrap()
            .contains(&json!("csv"))
    );
    // Revoking ends it at the next call, even for the approved version.
    let revoked = s
        .app
        .post(
            &format!("/api/approvals/modules/{}/revoke", request.id),
            Some(&s.admin),
            json!({}),
        )
        .await;
    assert_eq!(revoked.body["status"], "pending");
    let after = s
        .app
        .post(
            "/api/tools/test-code",
            Some(&s.admin),
            json!({"tool_id": s.tool, "arguments": {}}),
        )
        .await;
    assert_eq!(after.body["success"], false, "{}", after.text);
    assert!(
        after.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("csv")
    );
}

async fn dangerous_or_malformed_modules_cannot_be_requested(app: TestApp) {
    let s = Setup::new(app).await;
    for module in ["os", "os.path", "operator", "types", "inspect", "io", "sys"] {
        let err = s.request(Kind::Module, module, None).await.unwrap_err();
        assert!(
            matches!(err, origin::Error::Validation(ref m) if m.contains("can never be allowed")),
            "{module}: {err}"
        );
    }
    for module in ["", "1abc", "a..b", "a-b", "_private", &"a".repeat(129)] {
        assert!(
            matches!(
                s.request(Kind::Module, module, None).await,
                Err(origin::Error::Validation(_))
            ),
            "{module:?}"
        );
    }
    assert!(
        matches!(
            s.request(Kind::Module, "json", None).await,
            Err(origin::Error::Conflict(_))
        ),
        "json is a default"
    );
    assert!(matches!(
        s.request(Kind::Module, "csv", Some(80)).await,
        Err(origin::Error::Validation(_))
    ));
    assert_eq!(s.app.count("access_requests").await, 0);
}

async fn network_requests_decide_what_tools_may_reach(app: TestApp) {
    let s = Setup::new(app).await;
    let request = s
        .request(Kind::Network, " API.Example.COM. ", None)
        .await
        .unwrap();
    assert_eq!(request.target, "api.example.com");
    let code = "async def main() -> str:\n    try:\n        await http.get('https://api.example.com/v1')\n    except HTTPError as e:\n        return str(e)\n    return 'reached'\n";
    assert_eq!(s.set_code(code).await.status, StatusCode::OK);
    let before = s.approve_and_run().await;
    assert!(
        before.body["result"]
            .as_str()
            .unwrap()
            .contains("not in this tool's approved hosts"),
        "{}",
        before.text
    );
    s.act("network", &request.id, json!({"action": "approve"}))
        .await;
    // Approved: the broker lets it through its allowlist (this machine then cannot resolve it,
    // which is a different refusal from "not approved").
    let after = s
        .app
        .post(
            "/api/tools/test-code",
            Some(&s.admin),
            json!({"tool_id": s.tool, "arguments": {}}),
        )
        .await;
    let message = after.body["result"].as_str().unwrap_or_default().to_owned();
    assert!(!message.contains("approved hosts"), "{}", after.text);
    // Admins can add hosts directly; bad hosts and ports are refused.
    let base = format!("/api/servers/{}/allowed-hosts", s.server);
    assert_eq!(
        s.app
            .post(
                &base,
                Some(&s.admin),
                json!({"host": "nas.lan", "port": 8123})
            )
            .await
            .status,
        StatusCode::CREATED
    );
    for bad in [
        json!({"host": "http://x.com/path"}),
        json!({"host": "a b"}),
        json!({"host": "x.com", "port": 0}),
        json!({"host": ""}),
    ] {
        assert_eq!(
            s.app.post(&base, Some(&s.admin), bad.clone()).await.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }
    let hosts = s.app.get(&base, Some(&s.admin)).await;
    assert_eq!(
        hosts.body["allowed_hosts"],
        json!(["api.example.com", "nas.lan:8123"])
    );
    assert!(
        matches!(
            s.request(Kind::Network, "api.example.com", Some(443)).await,
            Err(origin::Error::Conflict(_))
        ),
        "covered by the port-less approval"
    );
    assert!(matches!(
        s.request(Kind::Network, "x.com", Some(70000)).await,
        Err(origin::Error::Validation(_))
    ));
}

async fn request_lifecycle_rules(app: TestApp) {
    let s = Setup::new(app).await;
    let first = s.request(Kind::Module, "csv", None).await.unwrap();
    assert!(
        matches!(
            s.request(Kind::Module, "csv", None).await,
            Err(origin::Error::Conflict(_))
        ),
        "duplicate pending"
    );
    let no_reason = s
        .act("modules", &first.id, json!({"action": "reject"}))
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    let rejected = s
        .act(
            "modules",
            &first.id,
            json!({"action": "reject", "reason": "use the json module"}),
        )
        .await;
    assert_eq!(rejected.body["rejection_reason"], "use the json module");
    let again = s.request(Kind::Module, "csv", None).await.unwrap_err();
    assert!(again.to_string().contains("already rejected"), "{again}");
    assert_eq!(
        s.act("modules", &first.id, json!({"action": "approve"}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        s.app
            .call(
                Method::DELETE,
                &format!("/api/approvals/modules/{}", first.id),
                Some(&s.admin),
                json!({})
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let hosts = s.request(Kind::Network, "api.one.com", None).await.unwrap();
    let other = s.request(Kind::Network, "api.two.com", None).await.unwrap();
    let bulk = s
        .app
        .post(
            "/api/approvals/network/bulk-action",
            Some(&s.admin),
            json!({"request_ids": [hosts.id, other.id, "nope"], "action": "approve"}),
        )
        .await;
    assert_eq!(
        bulk.body
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["ok"] == true)
            .count(),
        2
    );
    let delete_approved = s
        .app
        .call(
            Method::DELETE,
            &format!("/api/approvals/network/{}", hosts.id),
            Some(&s.admin),
            json!({}),
        )
        .await;
    assert_eq!(delete_approved.status, StatusCode::CONFLICT);
    let viewer = s
        .app
        .user_with_role(&s.admin, "watcher", "viewer")
        .await
        .token("access_token");
    assert_eq!(
        s.app
            .get("/api/approvals/network?status=all", Some(&viewer))
            .await
            .body["total"],
        2
    );
    let forbidden = s
        .app
        .post(
            &format!("/api/approvals/network/{}/revoke", hosts.id),
            Some(&viewer),
            json!({}),
        )
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.app
            .get("/api/approvals/other", Some(&s.admin))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}
