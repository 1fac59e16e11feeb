//! The remote set-up wizard's REST routes against a small in-process stand-in of the Cloudflare
//! API (the v4 envelope, paging, per-endpoint permissions, injected faults, a request log), so
//! every rule of the wizard is tested here: a wrong token, a missing permission named, the
//! choice of account, idempotence (a second run creates and uploads nothing), resuming after a
//! crash between create and record, a name clash (409 unless replace), teardown in reverse
//! order touching only what we made, the allowlist pushed to Access, the edge document in KV,
//! one step at a time. The full end-to-end (Miniflare, oidc-provider, Chromium) is in
//! tests/edge.
//!
//! Also the tunnel listener's use of the wizard's service token and allowlist.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response as AxumResponse};
use common::*;
use origin::cloudflare::store;
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "cf-test-token-0123456789";

/// What the stand-in holds and what it was asked.
#[derive(Default)]
struct Fake {
    /// Collections by path below `/accounts/{a}/` (e.g. `cfd_tunnel`,
    /// `access/apps/<id>/policies`).
    collections: HashMap<String, Vec<Value>>,
    /// KV values by namespace id and key.
    kv: HashMap<(String, String), String>,
    accounts: Vec<Value>,
    /// Path fragments whose endpoints answer 403 (a permission the token lacks).
    denied: Vec<String>,
    /// (method, path fragment) → statuses for the next matching requests.
    faults: Vec<(String, String, VecDeque<u16>)>,
    /// "METHOD /path" of every API request.
    log: Vec<String>,
    next_id: u64,
}

type Shared = Arc<Mutex<Fake>>;

struct StandIn {
    fake: Shared,
    /// `http://127.0.0.1:P` (also the "Worker" public URL: `/mcp` answers like a Worker).
    base: String,
}

impl StandIn {
    async fn start() -> StandIn {
        let fake: Shared = Arc::default();
        fake.lock().unwrap().accounts =
            vec![json!({"id": "acc1", "name": "Acme", "type": "standard"})];
        let app = Router::new().fallback(handle).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        StandIn {
            fake,
            base: format!("http://{addr}"),
        }
    }

    fn config(&self) -> origin::cloudflare::Config {
        origin::cloudflare::Config {
            api_url: format!("{}/client/v4", self.base),
            access_url: Some(self.base.clone()),
            tunnel_listen: Some("127.0.0.1:8002".parse().unwrap()),
            flag_allowlist: Vec::new(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Fake) -> T) -> T {
        f(&mut self.fake.lock().unwrap())
    }

    fn log(&self) -> Vec<String> {
        self.with(|f| f.log.clone())
    }

    fn clear_log(&self) {
        self.with(|f| f.log.clear())
    }

    fn items(&self, collection: &str) -> Vec<Value> {
        self.with(|f| f.collections.get(collection).cloned().unwrap_or_default())
    }

    /// Pre-creates a resource as if someone else made it; returns its id.
    fn precreate(&self, collection: &str, mut item: Value, id_field: &str) -> String {
        self.with(|f| {
            f.next_id += 1;
            let id = format!("other-{}", f.next_id);
            item[id_field] = json!(id);
            f.collections
                .entry(collection.to_owned())
                .or_default()
                .push(item);
            id
        })
    }
}

fn envelope(result: Value) -> AxumResponse {
    axum::Json(json!({"success": true, "errors": [], "messages": [], "result": result}))
        .into_response()
}

fn failure(status: u16, code: i64, message: &str) -> AxumResponse {
    let status = StatusCode::from_u16(status).unwrap();
    let mut response = (
        status,
        axum::Json(json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null})),
    )
        .into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert("retry-after", "0".parse().unwrap());
    }
    response
}

fn query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.replace("%20", " ")))
                .collect()
        })
        .unwrap_or_default()
}

/// A page of `items` as the API pages it.
fn paged(items: Vec<Value>, q: &HashMap<String, String>) -> AxumResponse {
    let per_page: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(20);
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let total = items.len();
    let chunk: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    axum::Json(json!({"success": true, "errors": [], "messages": [], "result": chunk,
        "result_info": {"page": page, "per_page": per_page, "count": chunk.len(), "total_count": total,
            "total_pages": total.div_ceil(per_page).max(1)}}))
    .into_response()
}

/// The JSON of the multipart part named `metadata`.
fn metadata_part(body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(body);
    let start = text.find("name=\"metadata\"").expect("metadata part");
    let rest = &text[start..];
    let json_start = rest.find("\r\n\r\n").unwrap() + 4;
    let json_end = rest[json_start..].find("\r\n--").unwrap() + json_start;
    serde_json::from_str(&rest[json_start..json_end]).unwrap()
}

async fn handle(
    State(fake): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> AxumResponse {
    let path = uri.path().to_owned();
    // The "Worker": what step 5's probe expects.
    if path == "/mcp" {
        let mut response = (StatusCode::UNAUTHORIZED, "").into_response();
        response.headers_mut().insert(
            "www-authenticate",
            "Bearer resource_metadata=\"x/.well-known/oauth-protected-resource\""
                .parse()
                .unwrap(),
        );
        return response;
    }
    let Some(api) = path.strip_prefix("/client/v4") else {
        return (StatusCode::NOT_FOUND, "").into_response();
    };
    let q = query(&uri);
    let mut fake = fake.lock().unwrap();
    fake.log.push(format!("{method} {api}"));
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return failure(401, 1000, "Invalid API Token");
    }
    for (m, fragment, statuses) in fake.faults.iter_mut() {
        if *m == method.as_str()
            && api.contains(fragment.as_str())
            && let Some(status) = statuses.pop_front()
        {
            return failure(status, 10013, "injected failure");
        }
    }
    if fake.denied.iter().any(|d| api.contains(d.as_str())) {
        return failure(403, 10000, "Authentication error");
    }
    if api == "/user/tokens/verify" {
        return envelope(json!({"id": "tok", "status": "active"}));
    }
    if api == "/accounts" {
        return paged(fake.accounts.clone(), &q);
    }
    let Some(rest) = api.strip_prefix("/accounts/acc1/") else {
        return failure(404, 7003, "Could not route to this account");
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.next_id += 1;
    let fresh = format!("id-{}", fake.next_id);
    match (method.as_str(), &segments[..]) {
        ("GET", ["access", "organizations"]) => {
            return envelope(json!({"auth_domain": "team.cloudflareaccess.com", "name": "team"}));
        }
        ("GET", ["workers", "subdomain"]) => return envelope(json!({"subdomain": "acme"})),
        ("POST", ["workers", "scripts", _, "subdomain"]) => return envelope(json!({})),
        ("GET", ["cfd_tunnel", id, "token"]) => return envelope(json!(format!("connector-{id}"))),
        ("DELETE", ["cfd_tunnel", _, "connections"]) => return envelope(json!({})),
        ("PUT", ["storage", "kv", "namespaces", ns, "bulk"]) => {
            let ns = ns.to_string();
            for pair in body_json.as_array().cloned().unwrap_or_default() {
                fake.kv.insert(
                    (ns.clone(), pair["key"].as_str().unwrap().to_owned()),
                    pair["value"].as_str().unwrap().to_owned(),
                );
            }
            return envelope(json!({"successful_key_count": 1, "unsuccessful_keys": []}));
        }
        ("PUT", ["workers", "scripts", name]) => {
            let metadata = metadata_part(&body);
            let name = name.to_string();
            let scripts = fake
                .collections
                .entry("workers/scripts".into())
                .or_default();
            scripts.retain(|s| s["id"] != json!(name));
            scripts.push(json!({"id": name, "etag": fresh, "metadata": metadata}));
            return envelope(json!({"id": name, "etag": fresh}));
        }
        _ => {}
    }
    // Collections: find where the collection path ends and an id starts.
    let (collection, id_field, rest_segments) = match &segments[..] {
        ["cfd_tunnel", tail @ ..] => ("cfd_tunnel".to_owned(), "id", tail),
        ["connectivity", "directory", "services", tail @ ..] => (
            "connectivity/directory/services".to_owned(),
            "service_id",
            tail,
        ),
        ["storage", "kv", "namespaces", tail @ ..] => {
            ("storage/kv/namespaces".to_owned(), "id", tail)
        }
        ["workers", "scripts", tail @ ..] => ("workers/scripts".to_owned(), "id", tail),
        ["access", "apps", app, "policies", tail @ ..] => {
            (format!("access/apps/{app}/policies"), "id", tail)
        }
        ["access", "apps", tail @ ..] => ("access/apps".to_owned(), "id", tail),
        _ => return failure(404, 7000, "No route for that URI"),
    };
    let items = fake.collections.entry(collection.clone()).or_default();
    match (method.as_str(), rest_segments) {
        ("GET", []) => {
            let filtered: Vec<Value> = items
                .iter()
                .filter(|item| q.get("name").is_none_or(|n| item["name"] == json!(n)))
                .cloned()
                .collect();
            paged(filtered, &q)
        }
        ("GET", [id]) => match items.iter().find(|i| i[id_field] == json!(id)) {
            Some(item) => envelope(item.clone()),
            None => failure(404, 1003, "not found"),
        },
        ("POST", []) => {
            let mut item = body_json;
            item[id_field] = json!(fresh);
            if collection == "cfd_tunnel" {
                item["token"] = json!(format!("connector-{fresh}"));
                item["status"] = json!("inactive");
                item["connections"] = json!([]);
            }
            if collection == "access/apps" {
                item["saas_app"]["client_id"] = json!(format!("client-{fresh}"));
                item["saas_app"]["client_secret"] = json!(format!("secret-{fresh}"));
            }
            items.push(item.clone());
            envelope(item)
        }
        ("PUT", [id]) => match items.iter_mut().find(|i| i[id_field] == json!(id)) {
            Some(item) => {
                let mut next = body_json;
                next[id_field] = json!(id);
                if let Some(saas) = item.get("saas_app").cloned() {
                    next["saas_app"]["client_id"] = saas["client_id"].clone();
                }
                *item = next.clone();
                envelope(next)
            }
            None => failure(404, 1003, "not found"),
        },
        ("DELETE", [id]) => {
            let before = items.len();
            items.retain(|i| i[id_field] != json!(id));
            if before == items.len() {
                failure(404, 1003, "not found")
            } else {
                envelope(json!({"id": id}))
            }
        }
        _ => failure(405, 10405, "method not allowed"),
    }
}

on_both_backends!(
    the_wizard_walks_six_steps_and_a_second_run_creates_nothing,
    a_wrong_token_is_400_and_a_missing_permission_is_named,
    several_accounts_need_a_choice,
    a_crash_between_create_and_record_is_adopted_on_resume,
    a_same_name_resource_not_ours_is_a_409_until_replace,
    teardown_removes_in_reverse_order_and_only_what_we_made,
    a_failure_at_step_4_is_shown_and_a_retry_resumes,
    the_allowlist_and_edge_settings_reach_cloudflare,
    without_a_public_url_the_worker_gets_its_workers_dev_address,
);

struct Wizard {
    app: TestApp,
    cf: StandIn,
    admin: String,
}

impl Wizard {
    async fn new(app: TestApp) -> Wizard {
        let cf = StandIn::start().await;
        let app = app.with_cloudflare(cf.config());
        let admin = app.admin().await.token("access_token");
        Wizard { app, cf, admin }
    }

    async fn step(&self, route: &str, body: Value) -> Response {
        self.app
            .post(&format!("/api/cloudflare/{route}"), Some(&self.admin), body)
            .await
    }

    async fn status(&self) -> Value {
        self.app
            .get("/api/cloudflare/status", Some(&self.admin))
            .await
            .body
    }

    /// Steps 1–5 (5 also completes 6), each asserted done; the API calls each made.
    async fn walk(&self) -> Vec<usize> {
        let mut calls = Vec::new();
        for (route, body) in [
            ("token", json!({"api_token": TOKEN})),
            ("tunnel", json!({})),
            ("vpc-service", json!({})),
            ("worker", json!({"public_url": self.cf.base})),
            (
                "access",
                json!({"allowed_emails": ["alice@example.com", "@corp.example"]}),
            ),
        ] {
            let before = self.cf.log().len();
            let response = self.step(route, body).await;
            assert_eq!(
                response.status,
                StatusCode::OK,
                "{route}: {}",
                response.text
            );
            calls.push(self.cf.log().len() - before);
        }
        calls
    }
}

fn creates(log: &[String]) -> Vec<String> {
    log.iter()
        .filter(|line| {
            line.starts_with("POST") && !line.ends_with("/subdomain")
                || line.starts_with("PUT") && line.contains("/workers/scripts/")
        })
        .cloned()
        .collect()
}

async fn the_wizard_walks_six_steps_and_a_second_run_creates_nothing(app: TestApp) {
    let w = Wizard::new(app).await;
    let before = w.status().await;
    assert_eq!(before["configured"], false);
    assert!(
        before["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "pending")
    );
    // API calls per step: token 8 (verify, accounts, organization, 5 probes); tunnel 2 (look
    // up, create, the token comes with it); VPC 2; Worker 5 (namespaces, create, scripts,
    // upload, KV document); Access 5 (apps, create, policies, create, upload).
    assert_eq!(w.walk().await, [8, 2, 2, 5, 5]);
    let status = w.status().await;
    assert_eq!(status["configured"], true, "{status}");
    assert_eq!(status["team_domain"], "team.cloudflareaccess.com");
    assert_eq!(status["account"], json!({"id": "acc1", "name": "Acme"}));
    let numbers: Vec<_> = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["number"].clone())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6].map(|n| json!(n)));
    // One of each, with what the Worker needs bound.
    for collection in [
        "cfd_tunnel",
        "connectivity/directory/services",
        "storage/kv/namespaces",
        "workers/scripts",
        "access/apps",
    ] {
        assert_eq!(w.cf.items(collection).len(), 1, "{collection}");
    }
    let service = &w.cf.items("connectivity/directory/services")[0];
    assert_eq!(service["http_port"], 8002);
    assert_eq!(service["host"]["ipv4"], "127.0.0.1");
    assert_eq!(
        service["host"]["network"]["tunnel_id"],
        w.cf.items("cfd_tunnel")[0]["id"]
    );
    let script = &w.cf.items("workers/scripts")[0];
    assert_eq!(script["id"], "mcpbox-edge");
    assert_eq!(script["metadata"]["main_module"], "index.js");
    assert_eq!(
        script["metadata"]["compatibility_date"],
        origin::cloudflare::bundle::COMPATIBILITY_DATE
    );
    let bindings = script["metadata"]["bindings"].as_array().unwrap();
    let binding = |name: &str| {
        bindings
            .iter()
            .find(|b| b["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        binding("OAUTH_KV")["namespace_id"],
        w.cf.items("storage/kv/namespaces")[0]["id"]
    );
    assert_eq!(binding("ORIGIN")["type"], "vpc_service");
    assert_eq!(binding("MCPBOX_PUBLIC_URL")["text"], json!(w.cf.base));
    assert_eq!(binding("MCPBOX_SERVICE_TOKEN")["type"], "secret_text");
    assert_eq!(
        binding("MCPBOX_SERVICE_TOKEN")["text"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    let app_item = &w.cf.items("access/apps")[0];
    assert_eq!(
        binding("ACCESS_CLIENT_ID")["text"],
        app_item["saas_app"]["client_id"]
    );
    assert_eq!(
        binding("ACCESS_CLIENT_SECRET")["text"],
        app_item["saas_app"]["client_secret"]
    );
    assert_eq!(
        binding("ACCESS_ISSUER")["text"],
        json!(format!(
            "{}/cdn-cgi/access/sso/oidc/{}",
            w.cf.base,
            app_item["saas_app"]["client_id"].as_str().unwrap()
        ))
    );
    assert_eq!(
        app_item["saas_app"]["redirect_uris"],
        json!([format!("{}/callback", w.cf.base)])
    );
    let policies = w.cf.items(&format!(
        "access/apps/{}/policies",
        app_item["id"].as_str().unwrap()
    ));
    assert_eq!(policies.len(), 1);
    assert_eq!(
        policies[0]["include"],
        json!([{"email_domain": {"domain": "corp.example"}}, {"email": {"email": "alice@example.com"}}])
    );
    // The edge document is in KV (empty lists until Settings adds some).
    let kv_id = w.cf.items("storage/kv/namespaces")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let doc =
        w.cf.with(|f| f.kv.get(&(kv_id, "config:edge".into())).cloned())
            .expect("config:edge");
    assert_eq!(
        serde_json::from_str::<Value>(&doc).unwrap(),
        json!({"version": 1, "cors_origins": [], "redirect_uris": []})
    );
    // Secrets are stored encrypted, never in plain text.
    let plain: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cloudflare_values WHERE value LIKE '%connector-%' OR value LIKE '%secret-id%' OR value = $1")
        .bind(TOKEN)
        .fetch_one(&w.app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(plain, 0);
    // Connect snippets.
    let connect = w.app.get("/api/cloudflare/connect", Some(&w.admin)).await;
    let mcp_url = format!("{}/mcp", w.cf.base);
    assert_eq!(connect.body["mcp_url"], json!(mcp_url));
    assert_eq!(
        connect.body["snippets"]["claude_code"],
        json!(format!("claude mcp add --transport http mcpbox {mcp_url}"))
    );
    let cursor: Value =
        serde_json::from_str(connect.body["snippets"]["cursor"].as_str().unwrap()).unwrap();
    assert_eq!(cursor["mcpServers"]["mcpbox"]["url"], json!(mcp_url));
    // Every step again: nothing created, nothing uploaded.
    w.cf.clear_log();
    // Again: only look-ups (and the KV document written again).
    assert_eq!(w.walk().await, [8, 1, 1, 3, 3]);
    let log = w.cf.log();
    assert!(
        creates(&log).is_empty(),
        "a second run created or uploaded: {log:#?}"
    );
    assert!(!log.iter().any(|l| l.starts_with("DELETE")), "{log:#?}");
    for collection in [
        "cfd_tunnel",
        "connectivity/directory/services",
        "storage/kv/namespaces",
        "workers/scripts",
        "access/apps",
    ] {
        assert_eq!(w.cf.items(collection).len(), 1, "{collection}");
    }
    // Each step is in the activity log.
    let steps: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM activity_logs WHERE action = 'cloudflare.step'")
            .fetch_one(&w.app.state.db.pool)
            .await
            .unwrap();
    assert_eq!(steps, 10);
}

async fn a_wrong_token_is_400_and_a_missing_permission_is_named(app: TestApp) {
    let w = Wizard::new(app).await;
    let wrong = w.step("token", json!({"api_token": "not-the-token"})).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.text);
    assert_eq!(wrong.error_code(), "cloudflare_token_invalid");
    assert_eq!(wrong.body["error"]["step"], "token");
    assert_eq!(
        wrong.body["error"]["cloudflare"],
        json!([{"code": 1000, "message": "Invalid API Token"}])
    );
    assert!(
        wrong.body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("API Tokens")
    );
    let status = w.status().await;
    assert_eq!(status["steps"][0]["status"], "failed");
    assert_eq!(status["steps"][0]["error"]["cloudflare"][0]["code"], 1000);
    // Nothing about a wrong token is kept.
    assert!(
        store::secret(&w.app.state.db, &w.app.state.keys, "api_token")
            .await
            .unwrap()
            .is_none()
    );
    let missing = w.step("token", json!({})).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    w.cf.with(|f| f.denied = vec!["connectivity/".into(), "storage/kv".into()]);
    let denied = w.step("token", json!({"api_token": TOKEN})).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.text);
    assert_eq!(denied.error_code(), "cloudflare_permission_missing");
    let message = denied.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Connectivity Directory Admin")
            && message.contains("Workers KV Storage Edit"),
        "{message}"
    );
    // Granted: the same request goes through.
    w.cf.with(|f| f.denied.clear());
    assert_eq!(
        w.step("token", json!({"api_token": TOKEN})).await.status,
        StatusCode::OK
    );
    // A later step the token cannot do names its permission too.
    w.cf.with(|f| f.denied = vec!["cfd_tunnel".into()]);
    let tunnel = w.step("tunnel", json!({})).await;
    assert_eq!(tunnel.status, StatusCode::FORBIDDEN);
    assert!(
        tunnel.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Cloudflare Tunnel Edit"),
        "{}",
        tunnel.text
    );
    // Steps out of order are refused.
    let early = w.step("worker", json!({})).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.text);
    // Only admins.
    let viewer_token = w
        .app
        .user_with_role(&w.admin, "viewer1", "viewer")
        .await
        .token("access_token");
    let refused = w
        .app
        .post("/api/cloudflare/tunnel", Some(&viewer_token), json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        w.app.get("/api/cloudflare/status", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn several_accounts_need_a_choice(app: TestApp) {
    let w = Wizard::new(app).await;
    // 3 accounts over pages of 50: all listed.
    w.cf.with(|f| {
        f.accounts = vec![
            json!({"id": "acc1", "name": "Acme"}),
            json!({"id": "acc2", "name": "Other"}),
        ]
    });
    let choose = w.step("token", json!({"api_token": TOKEN})).await;
    assert_eq!(choose.status, StatusCode::CONFLICT, "{}", choose.text);
    assert_eq!(
        choose.body["accounts"],
        json!([{"id": "acc1", "name": "Acme"}, {"id": "acc2", "name": "Other"}])
    );
    // The choice alone completes it (the token was kept for it).
    let chosen = w.step("token", json!({"account_id": "acc1"})).await;
    assert_eq!(chosen.status, StatusCode::OK, "{}", chosen.text);
    assert_eq!(w.status().await["account"]["id"], "acc1");
    let unknown = w
        .step("token", json!({"api_token": TOKEN, "account_id": "nope"}))
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn a_crash_between_create_and_record_is_adopted_on_resume(app: TestApp) {
    let w = Wizard::new(app).await;
    assert_eq!(
        w.step("token", json!({"api_token": TOKEN})).await.status,
        StatusCode::OK
    );
    // The process wrote its intent, Cloudflare created the tunnel, and the process died before
    // recording the id.
    store::intend(&w.app.state.db, "tunnel", "mcpbox")
        .await
        .unwrap();
    let made = w.cf.precreate(
        "cfd_tunnel",
        json!({"name": "mcpbox", "connections": []}),
        "id",
    );
    store::set_step(
        &w.app.state.db,
        store::Step::Tunnel,
        "running",
        &["creating".into()],
        None,
    )
    .await
    .unwrap();
    // After a restart the interrupted step reads as failed, and says what to do.
    let restarted = w.app.restarted().with_cloudflare(w.cf.config());
    let status = restarted
        .get("/api/cloudflare/status", Some(&w.admin))
        .await
        .body;
    assert_eq!(status["steps"][1]["status"], "failed");
    assert!(
        status["steps"][1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("interrupted")
    );
    w.cf.clear_log();
    let resumed = restarted
        .post("/api/cloudflare/tunnel", Some(&w.admin), json!({}))
        .await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.text);
    assert!(creates(&w.cf.log()).is_empty(), "{:#?}", w.cf.log());
    let record = store::resource(&w.app.state.db, "tunnel")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.id.as_deref(), Some(made.as_str()));
    assert_eq!(w.cf.items("cfd_tunnel").len(), 1);
    // The same for a Worker upload that died after the PUT: adopted, then uploaded once more
    // only because the recorded digest is unknown.
    assert_eq!(
        restarted
            .post("/api/cloudflare/vpc-service", Some(&w.admin), json!({}))
            .await
            .status,
        StatusCode::OK
    );
}

async fn a_same_name_resource_not_ours_is_a_409_until_replace(app: TestApp) {
    let w = Wizard::new(app).await;
    assert_eq!(
        w.step("token", json!({"api_token": TOKEN})).await.status,
        StatusCode::OK
    );
    let theirs = w.cf.precreate(
        "cfd_tunnel",
        json!({"name": "mcpbox", "connections": []}),
        "id",
    );
    let clash = w.step("tunnel", json!({})).await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{}", clash.text);
    assert_eq!(clash.error_code(), "conflict");
    assert!(
        clash.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&theirs)
    );
    assert_eq!(
        w.cf.items("cfd_tunnel").len(),
        1,
        "nothing deleted without replace"
    );
    // Another name is fine and leaves theirs alone.
    let other = w.step("tunnel", json!({"name": "mcpbox-2"})).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    assert_eq!(w.cf.items("cfd_tunnel").len(), 2);
    // A Worker script of the same name, not ours.
    assert_eq!(
        w.step("vpc-service", json!({})).await.status,
        StatusCode::OK
    );
    w.cf.precreate("workers/scripts", json!({}), "id");
    w.cf.with(|f| {
        let scripts = f.collections.get_mut("workers/scripts").unwrap();
        scripts[0]["id"] = json!("mcpbox-edge");
    });
    let clash = w.step("worker", json!({"public_url": w.cf.base})).await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{}", clash.text);
    w.cf.clear_log();
    let replaced = w
        .step("worker", json!({"public_url": w.cf.base, "replace": true}))
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
    assert!(
        w.cf.log()
            .contains(&"DELETE /accounts/acc1/workers/scripts/mcpbox-edge".to_owned())
    );
    assert!(w.cf.items("workers/scripts")[0]["metadata"].is_object());
}

async fn teardown_removes_in_reverse_order_and_only_what_we_made(app: TestApp) {
    let w = Wizard::new(app).await;
    w.walk().await;
    let unrelated =
        w.cf.precreate("cfd_tunnel", json!({"name": "someone-elses"}), "id");
    let refused = w.step("teardown", json!({})).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(w.cf.items("workers/scripts").len(), 1);
    w.cf.clear_log();
    let done = w.step("teardown", json!({"confirm": true})).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let kinds: Vec<_> = done.body["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "access_policy",
            "access_app",
            "worker",
            "kv_namespace",
            "vpc_service",
            "tunnel"
        ]
    );
    assert!(
        done.body["removed"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] == "removed"),
        "{}",
        done.text
    );
    let deletes: Vec<_> =
        w.cf.log()
            .into_iter()
            .filter(|l| l.starts_with("DELETE"))
            .collect();
    // Policy, app, script, namespace, service, the tunnel's connections and the tunnel.
    assert_eq!(deletes.len(), 7, "{deletes:#?}");
    assert_eq!(
        w.cf.log().len(),
        7,
        "teardown looks nothing up: {:#?}",
        w.cf.log()
    );
    assert!(
        deletes
            .last()
            .unwrap()
            .starts_with("DELETE /accounts/acc1/cfd_tunnel/"),
        "{deletes:#?}"
    );
    let tunnels = w.cf.items("cfd_tunnel");
    assert_eq!(tunnels.len(), 1);
    assert_eq!(tunnels[0]["id"], json!(unrelated));
    for collection in [
        "connectivity/directory/services",
        "storage/kv/namespaces",
        "workers/scripts",
        "access/apps",
    ] {
        assert!(w.cf.items(collection).is_empty(), "{collection}");
    }
    let status = w.status().await;
    assert_eq!(status["steps"][0]["status"], "done", "the token is kept");
    assert_eq!(status["steps"][1]["status"], "pending");
    assert!(store::resources(&w.app.state.db).await.unwrap().is_empty());
    // Again: nothing left to remove.
    let again = w.step("teardown", json!({"confirm": true})).await;
    assert_eq!(again.body["removed"], json!([]));
    // And the wizard can run again from step 2.
    assert_eq!(w.step("tunnel", json!({})).await.status, StatusCode::OK);
}

async fn a_failure_at_step_4_is_shown_and_a_retry_resumes(app: TestApp) {
    let w = Wizard::new(app).await;
    for (route, body) in [
        ("token", json!({"api_token": TOKEN})),
        ("tunnel", json!({})),
        ("vpc-service", json!({})),
    ] {
        assert_eq!(w.step(route, body).await.status, StatusCode::OK);
    }
    // The upload fails with 500; a 429 before it is waited out.
    w.cf.with(|f| {
        f.faults.push((
            "PUT".into(),
            "/workers/scripts/".into(),
            VecDeque::from([429, 500]),
        ))
    });
    let failed = w.step("worker", json!({"public_url": w.cf.base})).await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.text);
    assert_eq!(failed.body["error"]["step"], "worker");
    assert_eq!(
        failed.body["error"]["cloudflare"][0]["message"],
        "injected failure"
    );
    let status = w.status().await;
    assert_eq!(status["steps"][3]["status"], "failed");
    assert!(
        status["steps"][3]["progress"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("KV namespace"))
    );
    w.cf.clear_log();
    let retried = w.step("worker", json!({})).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
    let log = w.cf.log();
    // The namespace made before the failure is kept, not made again.
    assert!(
        !log.iter()
            .any(|l| l == "POST /accounts/acc1/storage/kv/namespaces"),
        "{log:#?}"
    );
    assert_eq!(w.cf.items("storage/kv/namespaces").len(), 1);
    assert_eq!(w.cf.items("workers/scripts").len(), 1);
    // One step at a time.
    let held = w.app.state.remote.lock.clone().try_lock_owned().unwrap();
    let busy = w.step("worker", json!({})).await;
    assert_eq!(busy.status, StatusCode::CONFLICT);
    drop(held);
}

async fn the_allowlist_and_edge_settings_reach_cloudflare(app: TestApp) {
    let w = Wizard::new(app).await;
    // Edge settings before the Worker exists: stored, with the reason they are not in KV.
    let bad = w
        .app
        .call(
            Method::PUT,
            "/api/settings/edge",
            Some(&w.admin),
            json!({"cors_origins": ["http://plain.example.com"]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    let bad = w
        .app
        .call(
            Method::PUT,
            "/api/settings/edge",
            Some(&w.admin),
            json!({"redirect_uris": ["https://app.example.com*"]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let early = w
        .app
        .call(
            Method::PUT,
            "/api/settings/edge",
            Some(&w.admin),
            json!({"cors_origins": ["https://app.example.com"]}),
        )
        .await;
    assert_eq!(early.status, StatusCode::OK, "{}", early.text);
    assert!(
        early.body["sync"]["error"]
            .as_str()
            .unwrap()
            .contains("step 4")
    );
    assert_eq!(
        w.app
            .post("/api/settings/edge/sync", Some(&w.admin), json!({}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    w.walk().await;
    let kv_id = w.cf.items("storage/kv/namespaces")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let doc = || -> Value {
        serde_json::from_str(
            &w.cf
                .with(|f| f.kv.get(&(kv_id.clone(), "config:edge".into())).cloned())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(doc()["cors_origins"], json!(["https://app.example.com"]));
    let put = w
        .app
        .call(
            Method::PUT,
            "/api/settings/edge",
            Some(&w.admin),
            json!({"cors_origins": [], "redirect_uris": ["https://app.example.com/oauth/*"]}),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);
    assert!(
        put.body["sync"]["error"].is_null() && put.body["sync"]["synced_at"].is_string(),
        "{}",
        put.text
    );
    assert_eq!(
        doc(),
        json!({"version": 1, "cors_origins": [], "redirect_uris": ["https://app.example.com/oauth/*"]})
    );
    // A failed write is kept in the status and retried.
    w.cf.with(|f| {
        f.faults
            .push(("PUT".into(), "/bulk".into(), VecDeque::from([500])))
    });
    let failed = w
        .app
        .call(
            Method::PUT,
            "/api/settings/edge",
            Some(&w.admin),
            json!({"cors_origins": ["https://b.example.com"]}),
        )
        .await;
    assert!(
        failed.body["sync"]["error"]
            .as_str()
            .unwrap()
            .contains("injected failure"),
        "{}",
        failed.text
    );
    let retried = w
        .app
        .post("/api/settings/edge/sync", Some(&w.admin), json!({}))
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
    assert!(retried.body["sync"]["error"].is_null());
    assert_eq!(doc()["cors_origins"], json!(["https://b.example.com"]));
    // The allowlist goes to the Access policy.
    let app_id = w.cf.items("access/apps")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bad = w
        .app
        .call(
            Method::PUT,
            "/api/cloudflare/allowlist",
            Some(&w.admin),
            json!({"entries": ["not an email"]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let put = w
        .app
        .call(
            Method::PUT,
            "/api/cloudflare/allowlist",
            Some(&w.admin),
            json!({"entries": ["Bob@Example.com"]}),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    assert_eq!(put.body["entries"], json!(["bob@example.com"]));
    let policies = w.cf.items(&format!("access/apps/{app_id}/policies"));
    assert_eq!(policies.len(), 1);
    assert_eq!(
        policies[0]["include"],
        json!([{"email": {"email": "bob@example.com"}}])
    );
    assert_eq!(
        w.app
            .get("/api/cloudflare/allowlist", Some(&w.admin))
            .await
            .body["entries"],
        json!(["bob@example.com"])
    );
    // The connector token, on request.
    let token = w
        .app
        .post("/api/cloudflare/tunnel/token", Some(&w.admin), json!({}))
        .await;
    let tunnel_id = w.cf.items("cfd_tunnel")[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(token.body["token"], json!(format!("connector-{tunnel_id}")));
    assert_eq!(
        token.body["command"],
        json!(format!(
            "cloudflared tunnel run --token connector-{tunnel_id}"
        ))
    );
    let health = w.app.get("/api/cloudflare/tunnel", Some(&w.admin)).await;
    assert_eq!(health.body["id"], json!(tunnel_id));
    assert_eq!(health.body["connections"], json!([]));
}

/// The tunnel listener with the wizard's service token and allowlist in the database.
mod tunnel_listener {
    use super::*;
    use origin::gateway::tunnel::EmailAllowlist;

    async fn call(
        router: &Router,
        token: Option<&str>,
        email: Option<&str>,
        method: &str,
    ) -> StatusCode {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/mcp")
            .header("host", "mcp-gateway:8002")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method)
            .extension(ConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                40000,
            ))));
        if let Some(token) = token {
            request = request.header("x-mcpbox-service-token", token);
        }
        if let Some(email) = email {
            request = request.header("x-mcpbox-user-email", email);
        }
        // A 2026-07-28 stateless request: no session, the version and capabilities in _meta.
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}}});
        let response = router
            .clone()
            .oneshot(request.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        eprintln!("{method} → {status}: {}", String::from_utf8_lossy(&bytes));
        status
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wizards_token_opens_the_tunnel_and_its_allowlist_is_enforced() {
        let app = TestApp::sqlite().await;
        let state = app.state.clone();
        let changes = origin::gateway::watch_changes(&state);
        let wizard_token = "w".repeat(64);
        let router = origin::gateway::tunnel::router(
            state.clone(),
            None,
            EmailAllowlist::default(),
            changes.clone(),
        );
        // No token anywhere yet: everything refused, even a guess of the empty token.
        assert_eq!(
            call(&router, None, None, "server/discover").await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            call(&router, Some(""), None, "server/discover").await,
            StatusCode::FORBIDDEN
        );
        store::set_secret(&state.db, &state.keys, "service_token", &wizard_token)
            .await
            .unwrap();
        state.remote.invalidate();
        assert_eq!(
            call(&router, Some(&wizard_token), None, "server/discover").await,
            StatusCode::OK
        );
        assert_eq!(
            call(
                &router,
                Some("x".repeat(64).as_str()),
                None,
                "server/discover"
            )
            .await,
            StatusCode::FORBIDDEN
        );
        // No list yet: any signed-in user the Worker forwards.
        assert_eq!(
            call(
                &router,
                Some(&wizard_token),
                Some("mallory@evil.example"),
                "tools/list"
            )
            .await,
            StatusCode::OK
        );
        store::set_allowlist(
            &state.db,
            &["@corp.example".into(), "alice@example.com".into()],
        )
        .await
        .unwrap();
        state.remote.invalidate();
        assert_eq!(
            call(
                &router,
                Some(&wizard_token),
                Some("alice@example.com"),
                "tools/list"
            )
            .await,
            StatusCode::OK
        );
        assert_eq!(
            call(
                &router,
                Some(&wizard_token),
                Some("bob@corp.example"),
                "tools/list"
            )
            .await,
            StatusCode::OK
        );
        // A forged email header with the right token but an address not on the list.
        assert_eq!(
            call(
                &router,
                Some(&wizard_token),
                Some("mallory@evil.example"),
                "tools/list"
            )
            .await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            call(
                &router,
                Some(&wizard_token),
                Some("alice@example.com.evil.io"),
                "tools/list"
            )
            .await,
            StatusCode::FORBIDDEN
        );
        // With --remote-allowed-email too, both lists must allow; the flag's token still works.
        let flag_token = "f".repeat(40);
        let both = origin::gateway::tunnel::router(
            state.clone(),
            Some(&flag_token),
            EmailAllowlist::new(&["alice@example.com".into()]),
            changes,
        );
        assert_eq!(
            call(
                &both,
                Some(&flag_token),
                Some("alice@example.com"),
                "tools/list"
            )
            .await,
            StatusCode::OK
        );
        assert_eq!(
            call(
                &both,
                Some(&wizard_token),
                Some("alice@example.com"),
                "tools/list"
            )
            .await,
            StatusCode::OK
        );
        assert_eq!(
            call(
                &both,
                Some(&flag_token),
                Some("bob@corp.example"),
                "tools/list"
            )
            .await,
            StatusCode::FORBIDDEN
        );
    }
}

async fn without_a_public_url_the_worker_gets_its_workers_dev_address(app: TestApp) {
    let w = Wizard::new(app).await;
    for (route, body) in [
        ("token", json!({"api_token": TOKEN})),
        ("tunnel", json!({})),
        ("vpc-service", json!({})),
    ] {
        assert_eq!(w.step(route, body).await.status, StatusCode::OK);
    }
    w.cf.clear_log();
    let deployed = w.step("worker", json!({})).await;
    assert_eq!(deployed.status, StatusCode::OK, "{}", deployed.text);
    assert_eq!(
        deployed.body["wizard"]["worker_url"],
        "https://mcpbox-edge.acme.workers.dev"
    );
    let log = w.cf.log();
    assert!(log.contains(&"GET /accounts/acc1/workers/subdomain".to_owned()));
    assert!(log.contains(&"POST /accounts/acc1/workers/scripts/mcpbox-edge/subdomain".to_owned()));
    // Again: the route is not enabled a second time (nothing was uploaded).
    w.cf.clear_log();
    assert_eq!(w.step("worker", json!({})).await.status, StatusCode::OK);
    assert!(
        !w.cf.log().iter().any(|l| l.starts_with("POST")),
        "{:#?}",
        w.cf.log()
    );
    // A public URL the admin routes: used instead, and remembered; "" goes back.
    let custom = w
        .step("worker", json!({"public_url": "https://mcp.example.com/"}))
        .await;
    assert_eq!(
        custom.body["wizard"]["worker_url"],
        "https://mcp.example.com"
    );
    let bad = w
        .step(
            "worker",
            json!({"public_url": "https://mcp.example.com/path"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let back = w.step("worker", json!({"public_url": ""})).await;
    assert_eq!(
        back.body["wizard"]["worker_url"],
        "https://mcpbox-edge.acme.workers.dev"
    );
}
