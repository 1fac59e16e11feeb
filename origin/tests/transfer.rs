//! Export and import (`/api/export`, `/api/import`): the round trip, the signature (ours, the
//! reference's with its key, tampered, missing), nothing a file says about approval believed,
//! all-or-nothing per server, clashes, and the caps at their bounds. Imports validate code
//! through the real sandbox.

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::*;
use origin::access::{self, Kind, NewRequest};
use origin::activity::Audit;
use origin::db::Backend;
use origin::transfer::format::{self, ExportFile, SigningKey};
use origin::transfer::{MAX_FILE_BYTES, MAX_REQUESTS, MAX_SERVERS, MAX_TOOLS, SIGNING_PURPOSE};
use serde_json::{Value, json};
use sqlx::Row;

on_both_backends!(
    round_trip_keeps_everything_but_approval,
    unsigned_tampered_and_foreign_files_are_refused,
    a_reference_export_imports_with_its_key,
    a_file_claiming_approval_makes_nothing_callable,
    a_bad_server_is_left_out_whole_and_names_clash,
    files_are_bounded,
    lan_hosts_keep_their_scope_through_export_and_import,
);

/// A LAN host leaves as `scope: "lan"` (a public one with no scope, as in the reference's files)
/// and comes back as a pending LAN request (checked by the same LAN rule as any request).
async fn lan_hosts_keep_their_scope_through_export_and_import(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let server = app.create_server(&admin, "home").await;
    for host in [
        json!({"host": "192.168.1.20:8123"}),
        json!({"host": "tiles.example"}),
    ] {
        let added = app
            .post(
                &format!("/api/servers/{server}/allowed-hosts"),
                Some(&admin),
                host,
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    }
    let exported = app.get("/api/export", Some(&admin)).await;
    assert_eq!(exported.status, StatusCode::OK, "{}", exported.text);
    let entries = exported.body["servers"][0]["admin_network_requests"].clone();
    let lan = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["host"] == "192.168.1.20")
        .unwrap_or_else(|| panic!("{entries}"));
    assert_eq!((&lan["port"], &lan["scope"]), (&json!(8123), &json!("lan")));
    let public = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["host"] == "tiles.example")
        .unwrap();
    assert!(public.get("scope").is_none(), "{public}");

    let other = fresh_like(&app).await;
    let other_admin = other.admin().await.token("access_token");
    let report = import(&other, &other_admin, exported.body.clone()).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_eq!(
        report.body["network_access_requests_created"], 2,
        "{}",
        report.text
    );
    let rows = statuses(
        &other,
        "SELECT target || ' ' || COALESCE(CAST(port AS TEXT), '-') || ' ' || scope || ' ' || status \
         FROM access_requests ORDER BY target",
    )
    .await;
    assert_eq!(
        rows,
        [
            "192.168.1.20 8123 lan pending",
            "tiles.example - public pending"
        ]
    );
}

/// The reference's key in `fixtures/make_reference_exports.py`.
const REFERENCE_KEY: &str = "5f3c9a0e7d1b2468ace0fdb97531eca86420bdf97531eca86420bdf97531eca8";
const REFERENCE_V12: &str = include_str!("fixtures/reference-export-v1.2.json");
const REFERENCE_V10: &str = include_str!("fixtures/reference-export-v1.0.json");

const CODE: &str = "def main(city: str) -> dict:\n    \"\"\"The forecast.\"\"\"\n    return {'city': city, 'v': 1}\n";

/// A second, empty app on the same backend (the installation an export moves to).
async fn fresh_like(app: &TestApp) -> TestApp {
    let fresh = match app.state.db.backend {
        Backend::Sqlite => TestApp::sqlite().await,
        Backend::Postgres => TestApp::postgres().await,
    };
    fresh.with_sandbox().await
}

fn llm() -> Audit {
    Audit {
        actor: "llm".into(),
        request_id: None,
    }
}

async fn import(app: &TestApp, token: &str, body: Value) -> Response {
    app.post("/api/import", Some(token), body).await
}

/// The file signed as this installation signs it.
fn sign_ours(app: &TestApp, file: &mut ExportFile) {
    file.signature = None;
    file.signature = Some(format::sign(
        file,
        &SigningKey::Derived(app.state.keys.derive(SIGNING_PURPOSE)),
    ));
}

async fn statuses(app: &TestApp, sql: &str) -> Vec<String> {
    sqlx::query(sql)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String, _>(0).unwrap())
        .collect()
}

/// A server with an approved tool, approved module and network requests, an admin's host and a
/// secret with a value, running: everything an export carries.
async fn populated(app: &TestApp, admin: &str) -> (String, String) {
    let server = app.create_server(admin, "weather").await;
    let tool = app.create_tool(admin, &server, "forecast", CODE).await;
    for (kind, target, port, path) in [
        (Kind::Module, "yaml", None, "modules"),
        (Kind::Network, "api.weather.example", Some(443), "network"),
    ] {
        let request = access::request(
            &app.state,
            &llm(),
            NewRequest {
                kind,
                tool_id: &tool,
                target,
                port,
                justification: "for the forecast",
            },
        )
        .await
        .unwrap();
        let approved = app
            .post(
                &format!("/api/approvals/{path}/{}/action", request.id),
                Some(admin),
                json!({"action": "approve"}),
            )
            .await;
        assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    }
    let host = app
        .post(
            &format!("/api/servers/{server}/allowed-hosts"),
            Some(admin),
            json!({"host": "tiles.example"}),
        )
        .await;
    assert!(host.status.is_success(), "{}", host.text);
    let secret = app
        .post(
            &format!("/api/servers/{server}/secrets"),
            Some(admin),
            json!({"key_name": "API_KEY", "description": "weather API"}),
        )
        .await;
    assert_eq!(secret.status, StatusCode::CREATED, "{}", secret.text);
    let set = app
        .call(
            Method::PUT,
            &format!("/api/servers/{server}/secrets/API_KEY"),
            Some(admin),
            json!({"value": "sk-live-never-exported-42"}),
        )
        .await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.text);
    app.approve_tool(admin, &tool).await;
    let started = app
        .post(
            &format!("/api/sandbox/servers/{server}/start"),
            Some(admin),
            json!({}),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    (server, tool)
}

async fn round_trip_keeps_everything_but_approval(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    populated(&app, &admin).await;

    let exported = app.get("/api/export", Some(&admin)).await;
    assert_eq!(exported.status, StatusCode::OK, "{}", exported.text);
    let disposition = exported.headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"mcpbox-export-"),
        "{disposition}"
    );
    assert!(
        !exported.text.contains("sk-live-never-exported-42"),
        "a secret value left"
    );
    let file = &exported.body;
    assert_eq!(file["version"], "1.2");
    assert_eq!(file["signature"].as_str().unwrap().len(), 64);
    let server = &file["servers"][0];
    assert_eq!(server["name"], "weather");
    assert_eq!(
        server["secrets"],
        json!([{"key": "API_KEY", "description": "weather API"}])
    );
    assert_eq!(
        server["allowed_hosts"],
        json!(["api.weather.example:443", "tiles.example"])
    );
    assert_eq!(server["admin_network_requests"][0]["host"], "tiles.example");
    let tool = &server["tools"][0];
    assert_eq!(tool["python_code"], CODE);
    assert_eq!(tool["module_requests"][0]["module_name"], "yaml");
    assert_eq!(tool["module_requests"][0]["status"], "approved");
    assert_eq!(tool["network_access_requests"][0]["port"], 443);
    assert_eq!(tool["input_schema"]["properties"]["city"]["type"], "string");

    // Into another installation with the same key: the same names, nothing approved.
    let other = fresh_like(&app).await;
    let other_admin = other.admin().await.token("access_token");
    let report = import(&other, &other_admin, file.clone()).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_eq!(report.body["success"], true, "{}", report.text);
    assert_eq!(report.body["servers_created"], 1);
    assert_eq!(report.body["tools_created"], 1);
    assert_eq!(report.body["module_requests_created"], 1);
    assert_eq!(report.body["network_access_requests_created"], 2);
    assert_eq!(report.body["secrets_declared"], 1);
    assert_eq!(report.body["servers"][0]["imported_as"], "weather");
    assert_eq!(
        statuses(&other, "SELECT status FROM tool_versions").await,
        ["pending_review"]
    );
    assert_eq!(
        statuses(&other, "SELECT status FROM access_requests").await,
        ["pending", "pending", "pending"]
    );
    assert_eq!(
        statuses(&other, "SELECT status FROM servers").await,
        ["stopped"]
    );
    let secrets = sqlx::query("SELECT key, encrypted_value FROM server_secrets")
        .fetch_all(&other.state.db.pool)
        .await
        .unwrap();
    assert_eq!(secrets.len(), 1);
    assert!(
        secrets[0]
            .try_get::<Option<String>, _>("encrypted_value")
            .unwrap()
            .is_none()
    );
    // The import is in the activity log, per server and as a whole.
    let actions = statuses(&other, "SELECT action FROM activity_logs WHERE action IN ('import', 'server.import') ORDER BY action").await;
    assert_eq!(actions, ["import", "server.import"]);

    // Exported again from there, the same content (only the approval state differs).
    let again = other.get("/api/export", Some(&other_admin)).await;
    let tool_again = &again.body["servers"][0]["tools"][0];
    assert_eq!(tool_again["python_code"], CODE);
    assert_eq!(tool_again["module_requests"][0]["status"], "pending");

    // Into the same installation: the name is taken, so it gets the suffix.
    let same = import(&app, &admin, file.clone()).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.text);
    assert_eq!(
        same.body["clashes"],
        json!([{"name": "weather", "imported_as": "weather_imported"}])
    );
    // The wrapper form with an empty source key is the same thing; now both names are taken.
    let third = import(&app, &admin, json!({"file": file, "source_key": ""})).await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.text);
    assert_eq!(third.body["success"], false);
    assert_eq!(third.body["servers_created"], 0);
    assert!(
        third.body["errors"][0]
            .as_str()
            .unwrap()
            .contains("weather_imported"),
        "{}",
        third.text
    );
    assert_eq!(app.count("servers").await, 2);

    // Admin only.
    let viewer = app
        .user_with_role(&admin, "vera", "viewer")
        .await
        .token("access_token");
    assert_eq!(
        app.get("/api/export", Some(&viewer)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        import(&app, &viewer, file.clone()).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/api/export", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn unsigned_tampered_and_foreign_files_are_refused(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    populated(&app, &admin).await;
    let file = app.get("/api/export", Some(&admin)).await.body;
    let target = fresh_like(&app).await;
    let target_admin = target.admin().await.token("access_token");
    let refused = |response: &Response, words: &str| {
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{}",
            response.text
        );
        assert_eq!(response.error_code(), "bad_request");
        let message = response.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{message}");
    };

    let mut unsigned = file.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    refused(
        &import(&target, &target_admin, unsigned).await,
        "not signed",
    );
    let mut empty = file.clone();
    empty["signature"] = json!("");
    refused(&import(&target, &target_admin, empty).await, "not signed");

    // Each signed field changed, one at a time.
    for (path, value) in [
        (
            "/servers/0/tools/0/python_code",
            json!("def main() -> str:\n    return 'evil'\n"),
        ),
        ("/servers/0/tools/0/enabled", json!(false)),
        (
            "/servers/0/tools/0/module_requests/0/module_name",
            json!("json"),
        ),
        ("/servers/0/name", json!("weather2")),
        ("/servers/0/secrets/0/key", json!("OTHER")),
        ("/servers/0/default_timeout_ms", json!(1000)),
        ("/version", json!("1.1")),
    ] {
        let mut tampered = file.clone();
        *tampered.pointer_mut(path).unwrap() = value;
        refused(
            &import(&target, &target_admin, tampered).await,
            "signature does not match",
        );
    }
    // A tool added, a signature of another key, our file checked as if it were the reference's.
    let mut added = file.clone();
    let extra = added["servers"][0]["tools"][0].clone();
    added["servers"][0]["tools"]
        .as_array_mut()
        .unwrap()
        .push(extra);
    refused(
        &import(&target, &target_admin, added).await,
        "signature does not match",
    );
    let mut foreign: ExportFile = serde_json::from_value(file.clone()).unwrap();
    foreign.signature = Some(format::sign(&foreign, &SigningKey::Derived([1; 32])));
    refused(
        &import(
            &target,
            &target_admin,
            serde_json::to_value(&foreign).unwrap(),
        )
        .await,
        "another installation",
    );
    refused(
        &import(
            &target,
            &target_admin,
            json!({"file": file, "source_key": REFERENCE_KEY}),
        )
        .await,
        "source key",
    );
    // Versions we do not know, and what is not an export.
    let mut future = file.clone();
    future["version"] = json!("2.0");
    refused(
        &import(&target, &target_admin, future).await,
        "not supported",
    );
    refused(
        &import(&target, &target_admin, json!({"servers": "no"})).await,
        "not an MCPbox export",
    );
    refused(
        &import(&target, &target_admin, json!([1, 2])).await,
        "not an MCPbox export",
    );
    let text = target
        .send(
            TestApp::request(Method::POST, "/api/import", Some(&target_admin), LOCAL)
                .header("content-type", "text/plain")
                .body(Body::from(file.to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(
        text.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        text.text
    );
    // Nothing of any of them was written.
    for table in [
        "servers",
        "tools",
        "tool_versions",
        "access_requests",
        "server_secrets",
    ] {
        assert_eq!(target.count(table).await, 0, "{table}");
    }
    // The untouched file still imports.
    let fine = import(&target, &target_admin, file).await;
    assert_eq!(fine.body["servers_created"], 1, "{}", fine.text);
}

async fn a_reference_export_imports_with_its_key(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    let file: Value = serde_json::from_str(REFERENCE_V12).unwrap();

    // Without its key (or with another) it is refused, and nothing is written.
    let without = import(&app, &admin, file.clone()).await;
    assert_eq!(without.status, StatusCode::BAD_REQUEST, "{}", without.text);
    let wrong = import(
        &app,
        &admin,
        json!({"file": file, "source_key": "0".repeat(64)}),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.text);
    assert_eq!(app.count("servers").await, 0);

    let report = import(
        &app,
        &admin,
        json!({"file": file, "source_key": REFERENCE_KEY}),
    )
    .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    let body = &report.body;
    assert_eq!(body["success"], true, "{}", report.text);
    assert_eq!(body["servers"][0]["imported_as"], "weather_tools");
    assert_eq!(body["tools_created"], 1, "the passthrough tool is skipped");
    assert_eq!(body["module_requests_created"], 1);
    // The tool's host and the admin's host (1.2: allowed_hosts is derived and not read).
    assert_eq!(body["network_access_requests_created"], 2);
    let warnings = body["warnings"].to_string();
    for words in ["remote_search", "numpy", "weather_tools"] {
        assert!(warnings.contains(words), "{words}: {warnings}");
    }
    let row = sqlx::query(
        "SELECT s.description, s.default_timeout_ms, t.timeout_ms, v.status, v.change_source, v.python_code, v.input_schema \
         FROM servers s JOIN tools t ON t.server_id = s.id JOIN tool_versions v ON v.tool_id = t.id",
    )
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(
        row.try_get::<String, _>("description").unwrap(),
        "Forecasts — from the reference ☁"
    );
    assert_eq!(row.try_get::<i64, _>("default_timeout_ms").unwrap(), 20_000);
    assert_eq!(
        row.try_get::<Option<i64>, _>("timeout_ms").unwrap(),
        Some(15_000)
    );
    assert_eq!(
        row.try_get::<String, _>("status").unwrap(),
        "pending_review"
    );
    assert_eq!(row.try_get::<String, _>("change_source").unwrap(), "import");
    assert!(
        row.try_get::<String, _>("python_code")
            .unwrap()
            .contains("météo ☀")
    );
    // The schema is ours (derived by the sandbox), not the file's.
    let schema: Value =
        serde_json::from_str(&row.try_get::<String, _>("input_schema").unwrap()).unwrap();
    assert!(schema["properties"]["city"].is_object(), "{schema}");
    assert!(
        schema["properties"]["days"].get("multipleOf").is_none(),
        "{schema}"
    );
    let requested = statuses(&app, "SELECT requested_by FROM access_requests").await;
    assert_eq!(requested, ["import", "import", "import"]);
    assert_eq!(
        statuses(&app, "SELECT status FROM access_requests").await,
        ["pending", "pending", "pending"]
    );

    // 1.0: no requests; its allowed_hosts become the server's own requests, pending.
    let old: Value = serde_json::from_str(REFERENCE_V10).unwrap();
    let report = import(
        &app,
        &admin,
        json!({"file": old, "source_key": REFERENCE_KEY}),
    )
    .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_eq!(
        report.body["servers"][0]["imported_as"], "legacy",
        "{}",
        report.text
    );
    assert_eq!(report.body["network_access_requests_created"], 1);
    let host = sqlx::query(
        "SELECT target, port, status, tool_id FROM access_requests WHERE target = 'old.example'",
    )
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(host.try_get::<Option<i64>, _>("port").unwrap(), Some(8080));
    assert_eq!(host.try_get::<String, _>("status").unwrap(), "pending");
    assert!(
        host.try_get::<Option<String>, _>("tool_id")
            .unwrap()
            .is_none()
    );
    let enabled: i64 = sqlx::query("SELECT enabled FROM tools WHERE name = 'echo'")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .try_get("enabled")
        .unwrap();
    assert_eq!(enabled, 0, "the exported enabled flag is kept");
}

async fn a_file_claiming_approval_makes_nothing_callable(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    // Even under the most permissive approval policy an import approves nothing.
    let policy = app
        .call(
            Method::PATCH,
            "/api/settings/security-policy",
            Some(&admin),
            json!({"tool_approval_mode": "auto_approve", "module_approval_mode": "auto_approve"}),
        )
        .await;
    assert_eq!(policy.status, StatusCode::OK, "{}", policy.text);
    // A legitimately signed file (the attacker knows the key) that says everything is approved
    // and running, in the fields the format has and in fields it does not.
    let mut file: Value = serde_json::from_str(REFERENCE_V12).unwrap();
    file["servers"][0]["status"] = json!("running");
    file["servers"][0]["tools"][0]["approval_status"] = json!("approved");
    file["servers"][0]["tools"][0]["status"] = json!("approved");
    file["servers"][0]["tools"][0]["python_code"] =
        json!("import csv\n\ndef main(city: str) -> str:\n    return 'ran ' + city\n");
    file["servers"][0]["tools"][0]["module_requests"][0]["module_name"] = json!("csv");
    let mut parsed: ExportFile = serde_json::from_value(file.clone()).unwrap();
    parsed.signature = Some(format::sign(&parsed, &SigningKey::Reference(REFERENCE_KEY)));
    file["signature"] = json!(parsed.signature);
    let report = import(
        &app,
        &admin,
        json!({"file": file, "source_key": REFERENCE_KEY}),
    )
    .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_eq!(report.body["tools_created"], 1, "{}", report.text);
    let (server, tool) = {
        let row = sqlx::query("SELECT server_id, id FROM tools")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
        (
            row.try_get::<String, _>("server_id").unwrap(),
            row.try_get::<String, _>("id").unwrap(),
        )
    };
    assert_eq!(
        statuses(&app, "SELECT status FROM tool_versions").await,
        ["pending_review"]
    );
    assert_eq!(
        statuses(&app, "SELECT status FROM servers").await,
        ["stopped"]
    );
    // The module the file called approved is not allowed, nor the hosts.
    let modules = access::allowed_modules(&app.state.db, &server)
        .await
        .unwrap();
    assert!(!modules.contains(&"csv".to_owned()), "{modules:?}");
    assert!(
        access::allowed_hosts(&app.state.db, &server)
            .await
            .unwrap()
            .is_empty()
    );
    // Not callable: not listed, refused by name, refused by the call-time check; the server
    // cannot even start without an approved tool.
    let listed = app.mcp("tools/list", json!({})).await;
    assert!(
        !listed.to_string().contains("weather_tools__forecast"),
        "{listed}"
    );
    let called = app
        .mcp(
            "tools/call",
            json!({"name": "weather_tools__forecast", "arguments": {"city": "Oslo"}}),
        )
        .await;
    assert!(
        called.get("error").is_some() || called["result"]["isError"] == true,
        "{called}"
    );
    assert!(!called.to_string().contains("ran Oslo"), "{called}");
    assert!(origin::tools::runnable(&app.state.db, &tool).await.is_err());
    let start = app
        .post(
            &format!("/api/sandbox/servers/{server}/start"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(start.status, StatusCode::CONFLICT, "{}", start.text);

    // Once a person approves the module and the tool and starts the server, it runs.
    let module = statuses(&app, "SELECT id FROM access_requests WHERE kind = 'module'").await;
    let approved = app
        .post(
            &format!("/api/approvals/modules/{}/action", module[0]),
            Some(&admin),
            json!({"action": "approve"}),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    let approved = app
        .post(
            &format!("/api/approvals/tools/{tool}/action"),
            Some(&admin),
            json!({"action": "approve"}),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    let start = app
        .post(
            &format!("/api/sandbox/servers/{server}/start"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text);
    let called = app
        .mcp(
            "tools/call",
            json!({"name": "weather_tools__forecast", "arguments": {"city": "Oslo"}}),
        )
        .await;
    assert!(called.to_string().contains("ran Oslo"), "{called}");
}

/// A signed file of servers, each `{name, tools: [code…]}`.
fn file_of(app: &TestApp, servers: &[(&str, &[&str])]) -> Value {
    let mut file: ExportFile = serde_json::from_value(json!({
        "version": "1.2",
        "servers": servers.iter().map(|(name, codes)| json!({
            "name": name,
            "tools": codes.iter().enumerate().map(|(i, code)| json!({
                "name": format!("tool_{i}"), "description": "", "enabled": true, "timeout_ms": null,
                "python_code": code, "input_schema": null,
                "module_requests": [], "network_access_requests": [],
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    sign_ours(app, &mut file);
    serde_json::to_value(file).unwrap()
}

async fn a_bad_server_is_left_out_whole_and_names_clash(app: TestApp) {
    let app = app.with_sandbox().await;
    let admin = app.admin().await.token("access_token");
    app.create_server(&admin, "taken").await;
    let good = "def main() -> int:\n    return 1\n";
    let broken = "def main(:\n    return 1\n";
    let file = file_of(
        &app,
        &[
            ("first", &[good, good]),
            ("bad", &[good, broken]),
            ("taken", &[good]),
        ],
    );
    let report = import(&app, &admin, file).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    let body = &report.body;
    assert_eq!(body["success"], false);
    assert_eq!(body["servers_created"], 2);
    assert_eq!(body["tools_created"], 3);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].as_str().unwrap().contains("\"bad\""),
        "{errors:?}"
    );
    assert!(errors[0].as_str().unwrap().contains("tool_1"), "{errors:?}");
    assert_eq!(
        body["clashes"],
        json!([{"name": "taken", "imported_as": "taken_imported"}])
    );
    // Nothing of "bad" was written: not its server, not its valid tool.
    let names = statuses(&app, "SELECT name FROM servers ORDER BY name").await;
    assert_eq!(names, ["first", "taken", "taken_imported"]);
    assert_eq!(app.count("tools").await, 3);
    assert_eq!(app.count("tool_versions").await, 3);

    // A duplicate tool name and a reserved server name are errors of their server only.
    let file = file_of(&app, &[("mcpbox_x", &[good]), ("dupes", &[good])]);
    let mut file = file;
    let dupe = file["servers"][1]["tools"][0].clone();
    file["servers"][1]["tools"]
        .as_array_mut()
        .unwrap()
        .push(dupe);
    let mut parsed: ExportFile = serde_json::from_value(file).unwrap();
    sign_ours(&app, &mut parsed);
    let report = import(&app, &admin, serde_json::to_value(parsed).unwrap()).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    assert_eq!(report.body["servers_created"], 0, "{}", report.text);
    assert_eq!(
        report.body["errors"].as_array().unwrap().len(),
        2,
        "{}",
        report.text
    );
    assert_eq!(app.count("servers").await, 3);
}

async fn files_are_bounded(app: TestApp) {
    let admin = app.admin().await.token("access_token");
    let send = |bytes: Vec<u8>| {
        TestApp::request(Method::POST, "/api/import", Some(&admin), LOCAL)
            .header("content-type", "application/json")
            .body(Body::from(bytes))
            .unwrap()
    };
    // At the size limit the file is read (and refused for what it is: unsigned); one byte over
    // is refused for its size.
    let mut at_limit = br#"{"version":"1.2","servers":[]}"#.to_vec();
    at_limit.resize(MAX_FILE_BYTES, b' ');
    let read = app.send(send(at_limit.clone())).await;
    assert_eq!(read.status, StatusCode::BAD_REQUEST, "{}", read.text);
    assert!(read.text.contains("not signed"), "{}", read.text);
    at_limit.push(b' ');
    let over = app.send(send(at_limit)).await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", over.text);

    // At the server and tool caps the file is checked further (unsigned); one over is refused.
    let servers = |n: usize| json!({"version": "1.2", "servers": (0..n).map(|i| json!({"name": format!("s{i}")})).collect::<Vec<_>>()});
    let at = import(&app, &admin, servers(MAX_SERVERS)).await;
    assert!(at.text.contains("not signed"), "{}", at.text);
    let over = import(&app, &admin, servers(MAX_SERVERS + 1)).await;
    assert_eq!(
        over.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        over.text
    );
    assert!(over.text.contains("servers"), "{}", over.text);
    let tools = |n: usize| json!({"version": "1.2", "servers": [{"name": "s", "tools": (0..n).map(|i| json!({"name": format!("t{i}"), "python_code": "x"})).collect::<Vec<_>>()}]});
    let at = import(&app, &admin, tools(MAX_TOOLS)).await;
    assert!(at.text.contains("not signed"), "{}", at.text);
    let over = import(&app, &admin, tools(MAX_TOOLS + 1)).await;
    assert_eq!(
        over.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        over.text
    );
    assert!(over.text.contains("tools"), "{}", over.text);
    let hosts = |n: usize| json!({"version": "1.2", "servers": [{"name": "s", "allowed_hosts": vec!["h.example"; n]}]});
    let at = import(&app, &admin, hosts(MAX_REQUESTS)).await;
    assert!(at.text.contains("not signed"), "{}", at.text);
    let over = import(&app, &admin, hosts(MAX_REQUESTS + 1)).await;
    assert_eq!(
        over.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        over.text
    );
    assert!(over.text.contains("requests"), "{}", over.text);
    assert_eq!(app.count("servers").await, 0);
}
