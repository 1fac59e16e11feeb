//! OAuth 2.1 sign-in to an external source, on both backends, driven the way the admin UI does it
//! (a real origin on a socket, a browser of reqwest and a cookie jar following each redirect).
//!
//! The hosted MCP server is a fake that follows the published shapes: RFC 9728 protected-resource
//! metadata and `WWW-Authenticate: Bearer resource_metadata=…` on a 401, RFC 8414 metadata,
//! RFC 7591 registration, `/authorize` checking the client, redirect URI and S256 challenge,
//! `/token` with the `authorization_code` grant (PKCE verified) and the `refresh_token` grant
//! (rotation: a refresh token is good once), and a way to revoke the grant. Its MCP endpoint is a
//! second MCPbox's `/mcp` (rmcp's server) behind the bearer check.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use common::{ADMIN, PASSWORD, TestApp, on_both_backends};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

on_both_backends!(
    an_admin_signs_in_and_calls_carry_refreshed_tokens_until_the_grant_is_revoked,
    a_sign_in_is_good_once_for_its_source_and_browser,
    a_key_rotation_carries_the_grant_once_reencrypted,
);

// ---------------------------------------------------------------------------------------------
// The fake authorization server and protected MCP server.

#[derive(Default)]
struct Fake {
    base: String,
    /// client_id → registered redirect URIs.
    clients: HashMap<String, Vec<String>>,
    /// code → (client_id, redirect_uri, S256 challenge).
    codes: HashMap<String, (String, String, String)>,
    /// access token → expiry.
    access: HashMap<String, Instant>,
    /// Live refresh tokens (a used one is removed: rotation).
    refresh: HashSet<String>,
    /// Every token ever issued, to look for in the database.
    issued: Vec<String>,
    access_ttl_secs: u64,
    refreshes: usize,
    mcp_requests: usize,
}

type Shared = Arc<Mutex<Fake>>;

fn fresh() -> String {
    let mut raw = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    hex::encode(raw)
}

fn oauth_error(code: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": code}))).into_response()
}

async fn resource_metadata(State(fake): State<Shared>) -> Json<Value> {
    let base = fake.lock().unwrap().base.clone();
    Json(json!({
        "resource": format!("{base}/mcp"),
        "authorization_servers": [base],
        "scopes_supported": ["mcp"],
        "bearer_methods_supported": ["header"],
    }))
}

async fn server_metadata(State(fake): State<Shared>) -> Json<Value> {
    let base = fake.lock().unwrap().base.clone();
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "registration_endpoint": format!("{base}/register"),
        "scopes_supported": ["mcp"],
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn register(State(fake): State<Shared>, Json(body): Json<Value>) -> Response {
    let Some(uris) = body["redirect_uris"].as_array() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_redirect_uri"})),
        )
            .into_response();
    };
    let uris: Vec<String> = uris
        .iter()
        .filter_map(|u| u.as_str().map(str::to_owned))
        .collect();
    let id = format!("client-{}", fresh());
    fake.lock()
        .unwrap()
        .clients
        .insert(id.clone(), uris.clone());
    (
        StatusCode::CREATED,
        Json(json!({
            "client_id": id,
            "client_id_issued_at": 1_700_000_000,
            "client_name": body["client_name"],
            "redirect_uris": uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        })),
    )
        .into_response()
}

/// The user consents at once; the checks are the server's.
async fn authorize(
    State(fake): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut fake = fake.lock().unwrap();
    let field = |name: &str| query.get(name).cloned().unwrap_or_default();
    let client = field("client_id");
    let redirect = field("redirect_uri");
    let registered = fake
        .clients
        .get(&client)
        .is_some_and(|uris| uris.contains(&redirect));
    if !registered
        || field("response_type") != "code"
        || field("code_challenge_method") != "S256"
        || field("code_challenge").len() != 43
        || field("resource") != format!("{}/mcp", fake.base)
    {
        return (StatusCode::BAD_REQUEST, format!("bad authorize: {query:?}")).into_response();
    }
    let code = fresh();
    fake.codes.insert(
        code.clone(),
        (client, redirect.clone(), field("code_challenge")),
    );
    let mut to = reqwest::Url::parse(&redirect).unwrap();
    to.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &field("state"));
    (StatusCode::FOUND, [(header::LOCATION, to.to_string())]).into_response()
}

fn issue(fake: &mut Fake) -> Value {
    let (access, refresh) = (fresh(), fresh());
    fake.access.insert(
        access.clone(),
        Instant::now() + Duration::from_secs(fake.access_ttl_secs),
    );
    fake.refresh.insert(refresh.clone());
    fake.issued.push(access.clone());
    fake.issued.push(refresh.clone());
    json!({"access_token": access, "token_type": "Bearer", "expires_in": fake.access_ttl_secs,
           "refresh_token": refresh, "scope": "mcp"})
}

async fn token_endpoint(State(fake): State<Shared>, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let mut fake = fake.lock().unwrap();
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    match field("grant_type").as_str() {
        "authorization_code" => {
            // A code is good once, also when the exchange fails.
            let Some((client, redirect, challenge)) = fake.codes.remove(&field("code")) else {
                return oauth_error("invalid_grant");
            };
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(field("code_verifier").as_bytes()));
            if client != field("client_id")
                || redirect != field("redirect_uri")
                || computed != challenge
            {
                return oauth_error("invalid_grant");
            }
            Json(issue(&mut fake)).into_response()
        }
        "refresh_token" => {
            if !fake.refresh.remove(&field("refresh_token")) {
                return oauth_error("invalid_grant");
            }
            fake.refreshes += 1;
            Json(issue(&mut fake)).into_response()
        }
        _ => oauth_error("unsupported_grant_type"),
    }
}

/// The protected resource: a valid, unexpired bearer token, or 401 with the RFC 9728 pointer.
async fn require_token(State(fake): State<Shared>, mut request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let base = {
        let mut fake = fake.lock().unwrap();
        fake.mcp_requests += 1;
        let valid = presented
            .as_ref()
            .and_then(|t| fake.access.get(t))
            .is_some_and(|expiry| *expiry > Instant::now());
        if valid { None } else { Some(fake.base.clone()) }
    };
    if let Some(base) = base {
        let challenge = format!(
            "Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\", scope=\"mcp\""
        );
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
        )
            .into_response();
    }
    // The MCPbox behind knows nothing of these tokens.
    request.headers_mut().remove(header::AUTHORIZATION);
    next.run(request).await
}

struct FakeServer {
    fake: Shared,
    mcp_url: String,
}

impl FakeServer {
    async fn start() -> FakeServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fake: Shared = Arc::new(Mutex::new(Fake {
            base: base.clone(),
            access_ttl_secs: 3600,
            ..Fake::default()
        }));
        let behind = TestApp::sqlite().await;
        let mcp = behind
            .router
            .clone()
            .layer(axum::middleware::from_fn_with_state(
                fake.clone(),
                require_token,
            ));
        let app = Router::new()
            .route(
                "/.well-known/oauth-protected-resource/mcp",
                get(resource_metadata),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                get(server_metadata),
            )
            .route("/register", post(register))
            .route("/authorize", get(authorize))
            .route("/token", post(token_endpoint))
            .with_state(fake.clone())
            .fallback_service(mcp);
        tokio::spawn(async move {
            let _keep = behind;
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        FakeServer {
            fake,
            mcp_url: format!("{base}/mcp"),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Fake) -> T) -> T {
        f(&mut self.fake.lock().unwrap())
    }

    /// The user revokes MCPbox's grant at the provider: every token stops working.
    fn revoke(&self) {
        self.with(|fake| {
            fake.access.clear();
            fake.refresh.clear();
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The admin's browser.

struct Browser {
    http: reqwest::Client,
    origin: String,
    cookies: Vec<(String, String)>,
    csrf: String,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Page {
    fn location(&self) -> String {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
}

impl Browser {
    async fn serve(app: &TestApp) -> Browser {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let router = app.router.clone();
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        let _ = rustls::crypto::ring::default_provider().install_default();
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            origin,
            cookies: Vec::new(),
            csrf: String::new(),
        }
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn forget(&mut self, name: &str) {
        self.cookies.retain(|(n, _)| n != name);
    }

    async fn send(&mut self, method: reqwest::Method, url: &str, form: Option<String>) -> Page {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.origin)
        } else {
            url.to_owned()
        };
        let mut request = self.http.request(method, &url);
        // Cookies go to the origin only, as a browser keeps them per site.
        let ours = url.starts_with(&format!("{}/", self.origin));
        if ours && !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            request = request.header(header::COOKIE, jar.join("; "));
        }
        if let Some(form) = form {
            request = request
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form);
        }
        let response = request.send().await.unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in response.headers() {
            headers.append(
                header::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
                header::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
        }
        if ours {
            for set in headers.get_all(header::SET_COOKIE) {
                let set = set.to_str().unwrap();
                let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
                let (name, value) = pair.split_once('=').unwrap();
                self.forget(name);
                if !value.is_empty() && !attributes.contains("Max-Age=0") {
                    self.cookies.push((name.to_owned(), value.to_owned()));
                }
            }
        }
        let html = response.text().await.unwrap();
        let marker = "name=\"_csrf\" value=\"";
        if let Some(start) = html.find(marker) {
            self.csrf = html[start + marker.len()..start + marker.len() + 64].to_owned();
        }
        Page {
            status,
            headers,
            html,
        }
    }

    async fn get(&mut self, url: &str) -> Page {
        self.send(reqwest::Method::GET, url, None).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("_csrf", &self.csrf.clone());
        for (name, value) in fields {
            form.append_pair(name, value);
        }
        self.send(reqwest::Method::POST, path, Some(form.finish()))
            .await
    }

    async fn sign_in(&mut self) {
        self.get("/ui/login").await;
        let done = self
            .post("/ui/login", &[("username", ADMIN), ("password", PASSWORD)])
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
        assert!(self.cookie("mcpbox_at").is_some());
    }

    /// "Sign in" on the source's page: the redirect to the authorization server.
    async fn start_sign_in(&mut self, source: &str) -> String {
        let page = self.get(&format!("/ui/sources/{source}")).await;
        assert!(page.html.contains("oauth/start"), "{}", page.html);
        let started = self
            .post(&format!("/ui/sources/{source}/oauth/start"), &[])
            .await;
        assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.html);
        started.location()
    }

    /// The authorization server's answer: the redirect back to the origin, not yet followed.
    async fn consent(&mut self, authorize_url: &str) -> String {
        let answer = self.get(authorize_url).await;
        assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.html);
        answer.location()
    }

    /// Follows the callback, then the page it moves on to; returns that page's text.
    async fn land(&mut self, callback: &str) -> String {
        let landing = self.get(callback).await;
        assert_eq!(landing.status, StatusCode::OK, "{}", landing.html);
        assert!(
            landing.html.contains("http-equiv=\"refresh\""),
            "{}",
            landing.html
        );
        let marker = "url=";
        let start = landing.html.find(marker).unwrap() + marker.len();
        let end = start + landing.html[start..].find('"').unwrap();
        let next = landing.html[start..end].to_owned();
        self.get(&next).await.html
    }
}

fn query_of(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn oauth_source(app: &TestApp, token: &str, name: &str, url: &str) -> String {
    let server = app.create_server(token, &format!("{name}srv")).await;
    let created = app
        .post(
            &format!("/api/external-sources/servers/{server}/sources"),
            Some(token),
            json!({"name": name, "url": url, "auth_type": "oauth"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["auth_type"], "oauth");
    assert_eq!(created.body["oauth_status"], "signed_out");
    created.token("id")
}

async fn raw_oauth_row(app: &TestApp, source: &str) -> String {
    let row: (String, String, Option<String>) = sqlx::query_as(
        "SELECT metadata, client_id, credentials FROM external_source_oauth WHERE source_id = $1",
    )
    .bind(source)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    format!("{} {} {}", row.0, row.1, row.2.unwrap_or_default())
}

fn assert_no_plaintext(row: &str, fake: &FakeServer) {
    for issued in fake.with(|f| f.issued.clone()) {
        assert!(!row.contains(&issued), "a token is stored in the clear");
    }
}

// ---------------------------------------------------------------------------------------------

async fn an_admin_signs_in_and_calls_carry_refreshed_tokens_until_the_grant_is_revoked(
    app: TestApp,
) {
    let fake = FakeServer::start().await;
    let token = app.admin().await.token("access_token");
    let source = oauth_source(&app, &token, "hosted", &fake.mcp_url).await;
    let base = format!("/api/external-sources/sources/{source}");

    // Nothing is sent before the sign-in: discovery says what is missing.
    let early = app
        .post(&format!("{base}/discover"), Some(&token), json!({}))
        .await;
    assert_eq!(early.status, StatusCode::BAD_GATEWAY, "{}", early.text);
    assert!(early.text.contains("sign-in needed"), "{}", early.text);

    let mut browser = Browser::serve(&app).await;
    browser.sign_in().await;
    let authorize = browser.start_sign_in(&source).await;
    assert!(
        authorize.starts_with(&fake.mcp_url.replace("/mcp", "/authorize")),
        "{authorize}"
    );
    assert_eq!(
        query_of(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(browser.cookie("mcpbox_oauth").is_some());
    let callback = browser.consent(&authorize).await;
    assert!(
        callback.starts_with(&format!(
            "{}/ui/sources/{source}/oauth/callback?",
            browser.origin
        )),
        "{callback}"
    );
    let page = browser.land(&callback).await;
    assert!(page.contains("Signed in to hosted"), "{page}");
    assert!(page.contains("signed in"), "{page}");

    // The grant is stored sealed: no token in the clear anywhere in the row.
    let row = raw_oauth_row(&app, &source).await;
    assert_no_plaintext(&row, &fake);
    let shown = app.get(&base, Some(&token)).await;
    assert_eq!(shown.body["oauth_status"], "signed_in", "{}", shown.text);

    // Discovery, import, approval and a call go through with the token.
    let found = app
        .post(&format!("{base}/discover"), Some(&token), json!({}))
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    let imported = app
        .post(
            &format!("{base}/import"),
            Some(&token),
            json!({"tool_names": ["mcpbox_list_servers"]}),
        )
        .await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text);
    let tool = imported.body["imported"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.approve_tool(&token, &tool).await;
    let ran = app.test_run(&token, &tool, json!({})).await;
    assert_eq!(ran.body["success"], true, "{}", ran.text);
    assert_eq!(fake.with(|f| f.refreshes), 0);

    // A 401 on a token the server stopped accepting: one refresh, the call goes through, and
    // the rotated tokens are stored sealed too.
    let before = raw_oauth_row(&app, &source).await;
    fake.with(|f| f.access.clear());
    let ran = app.test_run(&token, &tool, json!({})).await;
    assert_eq!(ran.body["success"], true, "{}", ran.text);
    assert_eq!(fake.with(|f| f.refreshes), 1);
    let after = raw_oauth_row(&app, &source).await;
    assert_ne!(before, after, "the rotated grant is written back");
    assert_no_plaintext(&after, &fake);

    // Near expiry the token is refreshed before it is sent.
    fake.with(|f| f.access_ttl_secs = 2);
    fake.with(|f| f.access.clear());
    let ran = app.test_run(&token, &tool, json!({})).await;
    assert_eq!(ran.body["success"], true, "{}", ran.text);
    assert_eq!(fake.with(|f| f.refreshes), 2);
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let sent_before = fake.with(|f| f.mcp_requests);
    let ran = app.test_run(&token, &tool, json!({})).await;
    assert_eq!(ran.body["success"], true, "{}", ran.text);
    assert_eq!(fake.with(|f| f.refreshes), 3, "refreshed ahead of expiry");
    let mcp_requests = fake.with(|f| f.mcp_requests) - sent_before;
    assert_eq!(
        mcp_requests, 1,
        "no 401 round trip: the token was fresh when sent"
    );

    // The user revokes the grant at the provider: the source needs a sign-in, says so, and no
    // longer looks signed in.
    fake.with(|f| f.access_ttl_secs = 3600);
    fake.revoke();
    let ran = app.test_run(&token, &tool, json!({})).await;
    assert_ne!(ran.body["success"], true, "{}", ran.text);
    assert!(ran.text.contains("sign-in needed"), "{}", ran.text);
    let shown = app.get(&base, Some(&token)).await;
    assert_eq!(
        shown.body["oauth_status"], "sign_in_needed",
        "{}",
        shown.text
    );
    assert_eq!(shown.body["status"], "error", "{}", shown.text);
    assert!(
        shown.body["last_error"]
            .as_str()
            .unwrap()
            .contains("sign-in needed"),
        "{}",
        shown.text
    );
    let page = browser.get(&format!("/ui/sources/{source}")).await;
    assert!(page.html.contains("sign-in needed"), "{}", page.html);

    // Signing in again brings it back.
    let authorize = browser.start_sign_in(&source).await;
    let callback = browser.consent(&authorize).await;
    let page = browser.land(&callback).await;
    assert!(page.contains("Signed in to hosted"), "{page}");
    let ran = app.test_run(&token, &tool, json!({})).await;
    assert_eq!(ran.body["success"], true, "{}", ran.text);

    // Signing out deletes the grant.
    let out = app
        .post(&format!("{base}/oauth/sign-out"), Some(&token), json!({}))
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text);
    assert_eq!(out.body["oauth_status"], "signed_out");
    assert_eq!(app.count("external_source_oauth").await, 0);
    let ran = app.test_run(&token, &tool, json!({})).await;
    assert!(ran.text.contains("sign-in needed"), "{}", ran.text);
}

async fn a_sign_in_is_good_once_for_its_source_and_browser(app: TestApp) {
    let fake = FakeServer::start().await;
    let token = app.admin().await.token("access_token");
    let first = oauth_source(&app, &token, "first", &fake.mcp_url).await;
    let second = oauth_source(&app, &token, "second", &fake.mcp_url).await;
    let mut browser = Browser::serve(&app).await;
    browser.sign_in().await;
    let status = |source: &str| {
        let path = format!("/api/external-sources/sources/{source}");
        let (app, token) = (&app, token.clone());
        async move { app.get(&path, Some(&token)).await.body["oauth_status"].clone() }
    };

    // A state nobody issued.
    let forged = format!(
        "/ui/sources/{first}/oauth/callback?code=x&state={}",
        fresh()
    );
    let page = browser.land(&forged).await;
    assert!(page.contains("unknown, used already or expired"), "{page}");

    // A callback carrying the first source's state at the second source's redirect URI.
    let authorize = browser.start_sign_in(&first).await;
    let callback = browser.consent(&authorize).await;
    let elsewhere = callback.replace(&first, &second);
    let page = browser.land(&elsewhere).await;
    assert!(page.contains("another source"), "{page}");
    // ... and that state is spent: the real callback is refused too.
    let page = browser.land(&callback).await;
    assert!(page.contains("unknown, used already or expired"), "{page}");
    assert_eq!(status(&first).await, "signed_out");
    assert_eq!(status(&second).await, "signed_out");

    // Another browser (no nonce cookie) cannot finish a sign-in it did not start.
    let authorize = browser.start_sign_in(&first).await;
    let callback = browser.consent(&authorize).await;
    browser.forget("mcpbox_oauth");
    let page = browser.land(&callback).await;
    assert!(page.contains("another browser session"), "{page}");
    assert_eq!(status(&first).await, "signed_out");

    // The fake really checks PKCE: a code with a verifier that does not match is refused.
    let authorize = browser.start_sign_in(&first).await;
    let callback = browser.consent(&authorize).await;
    let code = query_of(&callback, "code").unwrap();
    let client = query_of(&authorize, "client_id").unwrap();
    let redirect = query_of(&authorize, "redirect_uri").unwrap();
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("client_id", &client)
        .append_pair("redirect_uri", &redirect)
        .append_pair(
            "code_verifier",
            "not-the-verifier-not-the-verifier-not-the-verifier",
        )
        .finish();
    let refused = reqwest::Client::new()
        .post(fake.mcp_url.replace("/mcp", "/token"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("invalid_grant"));
    // That code is spent at the server, so MCPbox's own exchange of it fails, readably.
    let page = browser.land(&callback).await;
    assert!(page.contains("refused the sign-in"), "{page}");

    // Replayed after success: refused, and the grant stands.
    let authorize = browser.start_sign_in(&first).await;
    let callback = browser.consent(&authorize).await;
    let page = browser.land(&callback).await;
    assert!(page.contains("Signed in to first"), "{page}");
    let page = browser.land(&callback).await;
    assert!(page.contains("unknown, used already or expired"), "{page}");
    assert_eq!(status(&first).await, "signed_in");
}

/// `mcpbox admin reencrypt` covers the grants: after it, an origin holding only the new key
/// still reaches the source with the stored tokens (no new sign-in), and the previous key may go.
async fn a_key_rotation_carries_the_grant_once_reencrypted(app: TestApp) {
    use origin::activity::Audit;
    use origin::app::AppState;
    use origin::crypto::Keyring;
    use origin::dispatch::Sandbox;
    use origin::secrets::rotation::reencrypt;

    let fake = FakeServer::start().await;
    let token = app.admin().await.token("access_token");
    let source = oauth_source(&app, &token, "rotated", &fake.mcp_url).await;
    let mut browser = Browser::serve(&app).await;
    browser.sign_in().await;
    let authorize = browser.start_sign_in(&source).await;
    let callback = browser.consent(&authorize).await;
    let page = browser.land(&callback).await;
    assert!(page.contains("Signed in to rotated"), "{page}");
    let sealed = raw_oauth_row(&app, &source).await;

    let new_key = [77; 32];
    let rotating = Keyring::new(new_key, Some(common::KEY));
    let first = reencrypt(&app.state.db, &rotating).await.unwrap();
    // The grant is the only encrypted value of this install.
    assert_eq!(
        (first.reencrypted, first.current, first.undecryptable),
        (1, 0, 0),
        "{first:?}"
    );
    assert_ne!(raw_oauth_row(&app, &source).await, sealed);
    assert_no_plaintext(&raw_oauth_row(&app, &source).await, &fake);
    let again = reencrypt(&app.state.db, &rotating).await.unwrap();
    assert_eq!((again.reencrypted, again.current), (0, 1), "{again:?}");

    // The previous key dropped: the grant still opens and the source answers.
    let rotated = AppState::new(
        app.state.db.clone(),
        Keyring::new(new_key, None),
        Sandbox::unavailable("not needed"),
    );
    let audit = Audit {
        actor: "admin".into(),
        request_id: None,
    };
    let (_, tools) = origin::external::discover_recorded(&rotated, &source, &audit)
        .await
        .expect("the re-encrypted grant opens under the new key alone");
    assert!(!tools.is_empty());
    let done = reencrypt(&app.state.db, &Keyring::new(new_key, None))
        .await
        .unwrap();
    assert!(done.previous_key_unused(), "{done:?}");
}
