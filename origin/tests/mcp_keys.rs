//! Local MCP client keys, in process, on both backends: `/api/mcp-keys` (admin only, bounded,
//! the key shown once and stored only hashed), the key check on the local `/mcp` (required:
//! nothing passes without a valid key; optional on loopback: no key is local, a wrong one is
//! refused), revocation taking effect at once, sessions bound to their key, the execution log
//! naming the key, `last_used_at` written without a write per call, and the UI page.

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use common::*;
use serde_json::{Value, json};
use sha2::Digest;

on_both_backends!(
    without_a_key_a_required_listener_refuses_every_mcp_request,
    a_wrong_or_malformed_key_is_refused_even_on_loopback,
    loopback_without_a_key_is_still_local_when_keys_are_not_required,
    a_revoked_key_is_refused_at_once,
    the_key_is_shown_once_and_only_its_hash_is_stored,
    only_admins_manage_keys_and_names_are_checked,
    the_101st_valid_key_is_refused,
    a_session_opened_with_a_key_needs_that_key,
    last_use_is_noted_without_a_write_per_call,
    the_settings_page_issues_shows_once_and_revokes,
    a_revocation_on_another_replica_reaches_this_cache_through_the_hub,
);

on_both_backends!(executed_by_names_the_key);

const INIT: &str = "initialize";

/// One JSON-RPC request to the local `/mcp`, with `authorization` as given. `stateless`: the
/// 2026-07-28 form (no session); otherwise the 2025-11-25 form (`initialize` opens a session).
async fn mcp(
    app: &TestApp,
    authorization: Option<&str>,
    session: Option<&str>,
    method: &str,
    mut params: Value,
    stateless: bool,
) -> Response {
    let mut request = TestApp::request(Method::POST, "/mcp", None, LOCAL)
        .header("host", "127.0.0.1")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    if stateless {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        request = request
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method);
        if let Some(name) = params["name"].as_str() {
            request = request.header("mcp-name", name);
        }
    } else if method == INIT {
        params = json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "keys-test", "version": "1"},
        });
    } else {
        request = request.header("mcp-protocol-version", "2025-11-25");
    }
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    app.send(request.body(Body::from(body.to_string())).unwrap())
        .await
}

/// The JSON-RPC message of an answer (JSON, or the `data:` line of an SSE stream).
fn message(answer: &Response) -> Value {
    serde_json::from_str::<Value>(&answer.text)
        .ok()
        .or_else(|| {
            answer
                .text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
                .find(|message| message["id"] == 1)
        })
        .unwrap_or_else(|| panic!("no JSON-RPC answer in {} {}", answer.status, answer.text))
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// A 401 as the key check answers it: the Bearer challenge and an error a person can read.
fn assert_refused(answer: &Response, says: &str) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
    assert_eq!(
        answer
            .headers
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok()),
        Some("Bearer"),
        "{:?}",
        answer.headers
    );
    assert_eq!(answer.error_code(), "unauthorized");
    let text = answer.body["error"]["message"].as_str().unwrap();
    assert!(text.contains(says), "{text}");
}

async fn issue(app: &TestApp, admin: &str, name: &str) -> (String, String) {
    let issued = app
        .post("/api/mcp-keys", Some(admin), json!({"name": name}))
        .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.text);
    (issued.token("id"), issued.token("key"))
}

async fn admin(app: &TestApp) -> String {
    app.admin().await.token("access_token")
}

async fn without_a_key_a_required_listener_refuses_every_mcp_request(app: TestApp) {
    app.state.mcp_keys.set_required(true);
    let admin = admin(&app).await;
    // Both protocol revisions' first request, and a GET stream, without a key.
    let init = mcp(&app, None, None, INIT, json!({}), false).await;
    assert_refused(&init, "requires a client key");
    let listed = mcp(&app, None, None, "tools/list", json!({}), true).await;
    assert_refused(&listed, "requires a client key");
    let stream = app
        .send(
            TestApp::request(Method::GET, "/mcp", None, LOCAL)
                .header("host", "127.0.0.1")
                .header("accept", "text/event-stream")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(stream.status, StatusCode::UNAUTHORIZED, "{}", stream.text);
    // A per-server endpoint is the same listener's MCP: the key check comes before the server
    // lookup, so it neither serves nor reveals which servers exist.
    for path in ["/servers/alpha/mcp", "/servers/no_such_server/mcp"] {
        let scoped = app
            .send(
                TestApp::request(Method::POST, path, None, LOCAL)
                    .header("host", "127.0.0.1")
                    .header("accept", "application/json, text/event-stream")
                    .header("content-type", "application/json")
                    .body(Body::from(
                        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string(),
                    ))
                    .unwrap(),
            )
            .await;
        assert_eq!(
            scoped.status,
            StatusCode::UNAUTHORIZED,
            "{path}: {}",
            scoped.text
        );
    }
    // An admin's API bearer token is not an MCP client key.
    let api_token = mcp(&app, Some(&bearer(&admin)), None, INIT, json!({}), false).await;
    assert_refused(&api_token, "not valid");
    // The rest of the listener is not behind the key check.
    assert_eq!(
        app.get("/api/mcp-keys", Some(&admin)).await.status,
        StatusCode::OK
    );
    // With a key, both revisions work.
    let (_, key) = issue(&app, &admin, "laptop").await;
    let init = mcp(&app, Some(&bearer(&key)), None, INIT, json!({}), false).await;
    assert_eq!(init.status, StatusCode::OK, "{}", init.text);
    assert!(
        message(&init)["result"]["serverInfo"].is_object(),
        "{}",
        init.text
    );
    assert!(init.headers.contains_key("mcp-session-id"));
    let listed = mcp(
        &app,
        Some(&bearer(&key)),
        None,
        "tools/list",
        json!({}),
        true,
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert!(
        message(&listed)["result"]["tools"].is_array(),
        "{}",
        listed.text
    );
    let shown = app.get("/api/mcp-keys", Some(&admin)).await;
    assert_eq!(shown.body["required"], true);
}

async fn a_wrong_or_malformed_key_is_refused_even_on_loopback(app: TestApp) {
    assert!(!app.state.mcp_keys.required());
    let admin = admin(&app).await;
    let (_, key) = issue(&app, &admin, "laptop").await;
    let mut flipped = key.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for (header_value, says) in [
        (bearer(&flipped), "not valid"),
        (bearer("mcpbox_k_"), "not valid"),
        (bearer(&format!("{key}x")), "not valid"),
        (bearer(&key[..key.len() - 1]), "not valid"),
        (bearer(&"mcpbox_k_a".repeat(100)), "not valid"),
        (bearer("anything"), "not valid"),
        (format!("Basic {key}"), "must be \"Bearer"),
        ("Bearer".to_owned(), "must be \"Bearer"),
        (key.clone(), "must be \"Bearer"),
    ] {
        for stateless in [true, false] {
            let method = if stateless { "tools/list" } else { INIT };
            let answer = mcp(
                &app,
                Some(&header_value),
                None,
                method,
                json!({}),
                stateless,
            )
            .await;
            assert_refused(&answer, says);
        }
    }
    // The right key, with the scheme in any case, passes.
    let ok = mcp(
        &app,
        Some(&format!("bEARER {key}")),
        None,
        INIT,
        json!({}),
        false,
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
}

async fn loopback_without_a_key_is_still_local_when_keys_are_not_required(app: TestApp) {
    let init = mcp(&app, None, None, INIT, json!({}), false).await;
    assert_eq!(init.status, StatusCode::OK, "{}", init.text);
    assert!(message(&init)["result"]["serverInfo"].is_object());
    let listed = app.mcp("tools/list", json!({})).await;
    assert!(listed["result"]["tools"].is_array(), "{listed}");
    // Local rights: a local-only management tool answers (it is refused to remote callers).
    let created = app
        .mcp(
            "tools/call",
            json!({"name": "mcpbox_create_server", "arguments": {"name": "notes"}}),
        )
        .await;
    assert_eq!(created["result"]["isError"], false, "{created}");
    assert_eq!(app.count("servers").await, 1);
}

async fn a_revoked_key_is_refused_at_once(app: TestApp) {
    app.state.mcp_keys.set_required(true);
    let admin = admin(&app).await;
    let (id, key) = issue(&app, &admin, "laptop").await;
    let (_, other) = issue(&app, &admin, "desktop").await;
    // Used twice: the second answer comes from the cache.
    for _ in 0..2 {
        let ok = mcp(
            &app,
            Some(&bearer(&key)),
            None,
            "tools/list",
            json!({}),
            true,
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    }
    let revoked = app
        .call(
            Method::DELETE,
            &format!("/api/mcp-keys/{id}"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    // The very next request, well within the cache's lifetime, is refused.
    let refused = mcp(
        &app,
        Some(&bearer(&key)),
        None,
        "tools/list",
        json!({}),
        true,
    )
    .await;
    assert_refused(&refused, "not valid");
    let refused = mcp(&app, Some(&bearer(&key)), None, INIT, json!({}), false).await;
    assert_refused(&refused, "not valid");
    // The other key is untouched.
    let ok = mcp(
        &app,
        Some(&bearer(&other)),
        None,
        "tools/list",
        json!({}),
        true,
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    // Revoking again, or an unknown key, is a clear 4xx.
    let again = app
        .call(
            Method::DELETE,
            &format!("/api/mcp-keys/{id}"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(again.error_code(), "conflict");
    let unknown = app
        .call(
            Method::DELETE,
            "/api/mcp-keys/no-such-key",
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    // The list shows it revoked; the activity log has both changes.
    let listed = app.get("/api/mcp-keys", Some(&admin)).await;
    let row = listed.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(row["revoked_at"].is_string(), "{row}");
    let events = app
        .get("/api/activity/logs?action=mcp_keys.revoke", Some(&admin))
        .await;
    assert_eq!(events.body["total"], 1, "{}", events.text);
    assert_eq!(events.body["items"][0]["actor"], ADMIN);
    // A revoked key's name stays taken, so old log rows stay unambiguous.
    let reused = app
        .post("/api/mcp-keys", Some(&admin), json!({"name": "laptop"}))
        .await;
    assert_eq!(reused.status, StatusCode::CONFLICT, "{}", reused.text);
}

async fn the_key_is_shown_once_and_only_its_hash_is_stored(app: TestApp) {
    let admin = admin(&app).await;
    let issued = app
        .post("/api/mcp-keys", Some(&admin), json!({"name": "laptop"}))
        .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.text);
    let key = issued.token("key");
    assert!(key.starts_with("mcpbox_k_") && key.len() >= 9 + 43, "{key}");
    assert_eq!(issued.body["name"], "laptop");
    assert_eq!(issued.body["created_by"], ADMIN);
    let prefix = issued.token("prefix");
    assert!(
        key.starts_with(&prefix) && prefix.len() < key.len() - 32,
        "{prefix}"
    );
    // Listed, never with the key; not in the activity log either.
    let listed = app.get("/api/mcp-keys", Some(&admin)).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(!listed.text.contains(&key), "{}", listed.text);
    assert!(!listed.text.contains(&key[prefix.len()..]));
    assert_eq!(listed.body["keys"][0]["prefix"], prefix.as_str());
    assert!(listed.body["keys"][0].get("key").is_none());
    let activity = app.get("/api/activity/logs", Some(&admin)).await;
    assert!(!activity.text.contains(&key[prefix.len()..]));
    // Every stored value of the row, as text: the SHA-256, never the key or its secret part.
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT id, name, key_hash, prefix, created_by, created_at FROM mcp_client_keys",
    )
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    let secret_part = &key[prefix.len()..];
    for column in [
        "id",
        "name",
        "key_hash",
        "prefix",
        "created_by",
        "created_at",
    ] {
        let value: String = row.try_get(column).unwrap();
        assert!(!value.contains(secret_part), "{column} holds the key");
    }
    let stored: String = row.try_get("key_hash").unwrap();
    assert_eq!(stored, hex::encode(sha2::Sha256::digest(key.as_bytes())));
    // Two keys are never the same.
    let (_, second) = issue(&app, &admin, "desktop").await;
    assert_ne!(second, key);
}

async fn only_admins_manage_keys_and_names_are_checked(app: TestApp) {
    let admin = admin(&app).await;
    let viewer = app
        .user_with_role(&admin, "vera", "viewer")
        .await
        .token("access_token");
    let approver = app
        .user_with_role(&admin, "arne", "approver")
        .await
        .token("access_token");
    let (id, _) = issue(&app, &admin, "laptop").await;
    for token in [&viewer, &approver] {
        assert_eq!(
            app.get("/api/mcp-keys", Some(token)).await.status,
            StatusCode::FORBIDDEN
        );
        let issued = app
            .post("/api/mcp-keys", Some(token), json!({"name": "sneaky"}))
            .await;
        assert_eq!(issued.status, StatusCode::FORBIDDEN, "{}", issued.text);
        let revoked = app
            .call(
                Method::DELETE,
                &format!("/api/mcp-keys/{id}"),
                Some(token),
                json!({}),
            )
            .await;
        assert_eq!(revoked.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        app.get("/api/mcp-keys", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    for bad in [
        json!({"name": ""}),
        json!({"name": "Laptop"}),
        json!({"name": "a b"}),
        json!({"name": "mcp:key:x"}),
        json!({"name": "-x"}),
        json!({"name": "x".repeat(65)}),
        json!({"name": 5}),
        json!({}),
        json!({"name": "ok", "extra": 1}),
    ] {
        let refused = app.post("/api/mcp-keys", Some(&admin), bad.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            refused.text
        );
        refused.error_code();
    }
    let duplicate = app
        .post("/api/mcp-keys", Some(&admin), json!({"name": "laptop"}))
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT, "{}", duplicate.text);
    // Nothing refused left a row behind, and the viewer's attempts changed nothing.
    assert_eq!(app.count("mcp_client_keys").await, 1);
    let listed = app.get("/api/mcp-keys", Some(&admin)).await;
    assert!(listed.body["keys"][0]["revoked_at"].is_null());
}

async fn the_101st_valid_key_is_refused(app: TestApp) {
    let admin = admin(&app).await;
    let max = origin::mcp_keys::MAX_ACTIVE_KEYS;
    let mut first = None;
    for n in 0..max {
        let (id, _) = issue(&app, &admin, &format!("client-{n}")).await;
        first.get_or_insert(id);
    }
    let refused = app
        .post(
            "/api/mcp-keys",
            Some(&admin),
            json!({"name": "one-too-many"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoke one first")
    );
    assert_eq!(app.count("mcp_client_keys").await, max);
    // Revoking one makes room again: the bound is on valid keys.
    let first = first.unwrap();
    let revoked = app
        .call(
            Method::DELETE,
            &format!("/api/mcp-keys/{first}"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    issue(&app, &admin, "one-too-many").await;
    let again = app
        .post(
            "/api/mcp-keys",
            Some(&admin),
            json!({"name": "and-another"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
}

async fn a_session_opened_with_a_key_needs_that_key(app: TestApp) {
    let admin = admin(&app).await;
    let (_, key) = issue(&app, &admin, "laptop").await;
    let (_, other) = issue(&app, &admin, "desktop").await;
    let init = mcp(&app, Some(&bearer(&key)), None, INIT, json!({}), false).await;
    assert_eq!(init.status, StatusCode::OK, "{}", init.text);
    let session = init.headers["mcp-session-id"].to_str().unwrap().to_owned();
    let with_key = mcp(
        &app,
        Some(&bearer(&key)),
        Some(&session),
        "tools/list",
        json!({}),
        false,
    )
    .await;
    assert!(with_key.status.is_success(), "{}", with_key.text);
    assert!(message(&with_key)["result"]["tools"].is_array());
    // Neither another key nor no key (the loopback local caller) may use it.
    for authorization in [Some(bearer(&other)), None] {
        let foreign = mcp(
            &app,
            authorization.as_deref(),
            Some(&session),
            "tools/list",
            json!({}),
            false,
        )
        .await;
        assert!(
            foreign.status.is_client_error(),
            "{:?}: {} {}",
            authorization,
            foreign.status,
            foreign.text
        );
    }
}

async fn last_used(app: &TestApp, admin: &str, id: &str) -> Value {
    let listed = app.get("/api/mcp-keys", Some(admin)).await;
    listed.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap()["last_used_at"]
        .clone()
}

async fn last_use_is_noted_without_a_write_per_call(app: TestApp) {
    let admin = admin(&app).await;
    let (id, key) = issue(&app, &admin, "laptop").await;
    assert!(
        last_used(&app, &admin, &id).await.is_null(),
        "never used yet"
    );
    let ok = mcp(
        &app,
        Some(&bearer(&key)),
        None,
        "tools/list",
        json!({}),
        true,
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    // Written off the request path: wait for it.
    let mut first = Value::Null;
    for _ in 0..100 {
        first = last_used(&app, &admin, &id).await;
        if first.is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(first.is_string(), "last_used_at was never written");
    // More calls within the minute (and after the cache's check expired would be the same):
    // no new write.
    for _ in 0..5 {
        let ok = mcp(
            &app,
            Some(&bearer(&key)),
            None,
            "tools/list",
            json!({}),
            true,
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        last_used(&app, &admin, &id).await,
        first,
        "written at most once a minute"
    );
}

async fn executed_by_names_the_key(app: TestApp) {
    let app = app.with_sandbox().await;
    app.state.mcp_keys.set_required(true);
    let admin = admin(&app).await;
    let server = app.create_server(&admin, "weather").await;
    let tool = app
        .create_tool(
            &admin,
            &server,
            "lookup",
            "def main(city: str) -> dict:\n    return {'city': city}\n",
        )
        .await;
    app.approve_tool(&admin, &tool).await;
    let started = app
        .post(
            &format!("/api/sandbox/servers/{server}/start"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    let (_, key) = issue(&app, &admin, "laptop").await;
    let called = mcp(
        &app,
        Some(&bearer(&key)),
        None,
        "tools/call",
        json!({"name": "weather__lookup", "arguments": {"city": "Oslo"}}),
        true,
    )
    .await;
    assert_eq!(called.status, StatusCode::OK, "{}", called.text);
    let answer = message(&called);
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    let logs = app
        .get(&format!("/api/tools/{tool}/logs"), Some(&admin))
        .await;
    assert_eq!(logs.body["total"], 1, "{}", logs.text);
    assert_eq!(logs.body["items"][0]["executed_by"], "mcp:key:laptop");
    // The keyed caller has local rights: a local-only management tool answers, and the
    // change is recorded under the key's name.
    let created = mcp(
        &app,
        Some(&bearer(&key)),
        None,
        "tools/call",
        json!({"name": "mcpbox_create_server", "arguments": {"name": "notes"}}),
        true,
    )
    .await;
    assert_eq!(
        message(&created)["result"]["isError"],
        false,
        "{}",
        created.text
    );
    let events = app
        .get("/api/activity/logs?actor=mcp:key:laptop", Some(&admin))
        .await;
    assert_eq!(events.body["total"], 1, "{}", events.text);
    // Without the key the same call is refused before it reaches the tool (nothing logged).
    let refused = mcp(
        &app,
        None,
        None,
        "tools/call",
        json!({"name": "weather__lookup", "arguments": {"city": "Oslo"}}),
        true,
    )
    .await;
    assert_refused(&refused, "requires a client key");
    let logs = app
        .get(&format!("/api/tools/{tool}/logs"), Some(&admin))
        .await;
    assert_eq!(logs.body["total"], 1, "{}", logs.text);
}

/// The UI page through its forms: a signed-in admin issues a key (shown on that answer only),
/// sees it listed without the key, and revokes it.
async fn the_settings_page_issues_shows_once_and_revokes(app: TestApp) {
    app.admin().await;
    let mut jar: Vec<(String, String)> = Vec::new();
    let mut csrf = String::new();
    async fn send(
        app: &TestApp,
        jar: &mut Vec<(String, String)>,
        csrf: &mut String,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Response {
        let mut builder =
            TestApp::request(method, path, None, LOCAL).header(header::HOST, "mcpbox.test");
        if !jar.is_empty() {
            let cookies: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            builder = builder.header(header::COOKIE, cookies.join("; "));
        }
        let body = match form {
            Some(fields) => {
                builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                let mut all = vec![("_csrf", csrf.as_str())];
                all.extend_from_slice(fields);
                Body::from(
                    form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(all)
                        .finish(),
                )
            }
            None => Body::empty(),
        };
        let response = app.send(builder.body(body).unwrap()).await;
        for value in response.headers.get_all(header::SET_COOKIE) {
            let (pair, _) = value.to_str().unwrap().split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            jar.retain(|(k, _)| k != name);
            if !value.is_empty() {
                jar.push((name.to_owned(), value.to_owned()));
            }
        }
        let marker = "name=\"_csrf\" value=\"";
        if let Some(start) = response.text.find(marker) {
            let start = start + marker.len();
            *csrf = response.text[start..start + 64].to_owned();
        }
        response
    }
    let login = send(&app, &mut jar, &mut csrf, Method::GET, "/ui/login", None).await;
    assert_eq!(login.status, StatusCode::OK);
    let signed = send(
        &app,
        &mut jar,
        &mut csrf,
        Method::POST,
        "/ui/login",
        Some(&[("username", ADMIN), ("password", PASSWORD)]),
    )
    .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text);
    let settings = send(&app, &mut jar, &mut csrf, Method::GET, "/ui/settings", None).await;
    assert!(
        settings.text.contains("href=\"/ui/settings/mcp-keys\""),
        "linked from Settings"
    );
    let empty = send(
        &app,
        &mut jar,
        &mut csrf,
        Method::GET,
        "/ui/settings/mcp-keys",
        None,
    )
    .await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    assert!(empty.text.contains("None yet."));
    // A form without the CSRF token is refused and issues nothing.
    let saved = std::mem::take(&mut csrf);
    let forged = send(
        &app,
        &mut jar,
        &mut csrf,
        Method::POST,
        "/ui/settings/mcp-keys",
        Some(&[("name", "forged")]),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(app.count("mcp_client_keys").await, 0);
    csrf = saved;
    let issued = send(
        &app,
        &mut jar,
        &mut csrf,
        Method::POST,
        "/ui/settings/mcp-keys",
        Some(&[("name", "laptop")]),
    )
    .await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.text);
    let marker = "value=\"mcpbox_k_";
    let start = issued.text.find(marker).expect("the key is shown") + "value=\"".len();
    let key: String = issued.text[start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    assert_eq!(key.len(), 9 + 43, "{key}");
    assert!(issued.text.contains("only time the key is shown"));
    // It works on /mcp, and the page never shows it again.
    let ok = mcp(
        &app,
        Some(&bearer(&key)),
        None,
        "tools/list",
        json!({}),
        true,
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let again = send(
        &app,
        &mut jar,
        &mut csrf,
        Method::GET,
        "/ui/settings/mcp-keys",
        None,
    )
    .await;
    assert!(again.text.contains("laptop"));
    assert!(!again.text.contains(&key[12..]), "shown once only");
    // A bad name comes back as the page's error.
    let bad = send(
        &app,
        &mut jar,
        &mut csrf,
        Method::POST,
        "/ui/settings/mcp-keys",
        Some(&[("name", "Not Valid")]),
    )
    .await;
    assert_eq!(bad.status, StatusCode::SEE_OTHER);
    let shown = send(
        &app,
        &mut jar,
        &mut csrf,
        Method::GET,
        "/ui/settings/mcp-keys",
        None,
    )
    .await;
    assert!(
        shown.text.contains("a key name is 1 to 64"),
        "{}",
        shown.text
    );
    // Revoke through the page: refused on /mcp at once.
    let id: String = {
        use sqlx::Row;
        sqlx::query("SELECT id FROM mcp_client_keys")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap()
            .try_get("id")
            .unwrap()
    };
    let revoked = send(
        &app,
        &mut jar,
        &mut csrf,
        Method::POST,
        &format!("/ui/settings/mcp-keys/{id}/revoke"),
        Some(&[]),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.text);
    let after = send(
        &app,
        &mut jar,
        &mut csrf,
        Method::GET,
        "/ui/settings/mcp-keys",
        None,
    )
    .await;
    assert!(after.text.contains("Key laptop revoked"), "{}", after.text);
    let refused = mcp(
        &app,
        Some(&bearer(&key)),
        None,
        "tools/list",
        json!({}),
        true,
    )
    .await;
    assert_refused(&refused, "not valid");
}

/// Another replica revoked the key (the row changed under this process, which only hears of it
/// through the activity hub): the cached key is refused once the event arrives, and a resync
/// (events may have been missed) forgets every cached key.
async fn a_revocation_on_another_replica_reaches_this_cache_through_the_hub(app: TestApp) {
    let admin = admin(&app).await;
    let (id, key) = issue(&app, &admin, "laptop").await;
    let (other_id, other) = issue(&app, &admin, "desktop").await;
    for key in [&key, &other] {
        let ok = mcp(
            &app,
            Some(&bearer(key)),
            None,
            "tools/list",
            json!({}),
            true,
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    }
    let revoke_elsewhere = |id: String| {
        let db = app.state.db.clone();
        async move {
            sqlx::query("UPDATE mcp_client_keys SET revoked_at = $1 WHERE id = $2")
                .bind(origin::db::now())
                .bind(id)
                .execute(&db.pool)
                .await
                .unwrap();
        }
    };
    revoke_elsewhere(id.clone()).await;
    // Not heard of yet: the cache still answers (bounded by CACHE_TTL).
    let cached = mcp(
        &app,
        Some(&bearer(&key)),
        None,
        "tools/list",
        json!({}),
        true,
    )
    .await;
    assert_eq!(cached.status, StatusCode::OK, "{}", cached.text);
    let event = |action: &str, details: Value| origin::activity::Event {
        id: origin::db::new_id(),
        created_at: origin::db::now(),
        actor: "admin".into(),
        action: action.into(),
        level: "warning".into(),
        server_id: None,
        tool_id: None,
        request_id: None,
        message: "from another replica".into(),
        details,
    };
    app.state.activity.publish_locally(event(
        origin::mcp_keys::REVOKE_ACTION,
        json!({"key_id": id}),
    ));
    let refused = mcp(
        &app,
        Some(&bearer(&key)),
        None,
        "tools/list",
        json!({}),
        true,
    )
    .await;
    assert_refused(&refused, "not valid");
    let ok = mcp(
        &app,
        Some(&bearer(&other)),
        None,
        "tools/list",
        json!({}),
        true,
    )
    .await;
    assert_eq!(
        ok.status,
        StatusCode::OK,
        "the other key is still cached and valid"
    );
    revoke_elsewhere(other_id).await;
    app.state.activity.resync_locally();
    let refused = mcp(
        &app,
        Some(&bearer(&other)),
        None,
        "tools/list",
        json!({}),
        true,
    )
    .await;
    assert_refused(&refused, "not valid");
}
