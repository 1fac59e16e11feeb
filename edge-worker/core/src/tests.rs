//! Flow tests through `Edge::handle`, with in-memory ports and real signed id_tokens.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use base64::Engine;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use url::Url;

use crate::crypto::pkce_challenge;
use crate::testing::{FakeClock, FakeHttp, MemKv, SeqRandom};
use crate::*;

const BASE: &str = "https://edge.example.com";
const MCP: &str = "https://edge.example.com/mcp";
const ISSUER: &str = "https://team.cloudflareaccess.com/cdn-cgi/access/sso/oidc/access-client";
const REDIRECT: &str = "https://claude.ai/api/mcp/auth_callback";
const VERIFIER: &str = "a-pkce-verifier-that-is-long-enough-0123456789";
const START: u64 = 1_900_000_000;

/// Runs a future that never waits: every fake port answers at once.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the core waited on something the fakes never wake"),
    }
}

fn config() -> EdgeConfig {
    let vars = [
        (config::vars::PUBLIC_URL, BASE),
        (config::vars::ORIGIN_URL, "http://mcp-gateway:8002"),
        (config::vars::SERVICE_TOKEN, "service-token-value"),
        (
            config::vars::ENCRYPTION_KEY,
            "an encryption key of at least 32 chars",
        ),
        (
            config::vars::ACCESS_TEAM_DOMAIN,
            "team.cloudflareaccess.com",
        ),
        (config::vars::ACCESS_CLIENT_ID, "access-client"),
        (config::vars::ACCESS_CLIENT_SECRET, "access-secret"),
    ];
    EdgeConfig::from_vars(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap()
}

struct World {
    edge: Edge,
    ports: Ports<MemKv, FakeClock, SeqRandom, FakeHttp>,
    now: Rc<Cell<u64>>,
}

fn world() -> World {
    let now = Rc::new(Cell::new(START));
    let world = World {
        edge: Edge::new(config()).unwrap(),
        ports: Ports {
            kv: MemKv {
                now: now.clone(),
                ..MemKv::default()
            },
            clock: FakeClock(now.clone()),
            random: SeqRandom::default(),
            http: FakeHttp::default(),
        },
        now,
    };
    let jwks: Value = serde_json::from_str(include_str!("../tests/keys/public-jwks.json")).unwrap();
    let mut rsa = jwks["rsa"].clone();
    rsa["kid"] = "rsa1".into();
    let mut ec = jwks["ec"].clone();
    ec["kid"] = "ec1".into();
    world.ports.http.route(
        &format!("{ISSUER}/jwks"),
        200,
        &json!({"keys": [rsa, ec]}).to_string(),
    );
    world
}

fn request(method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> EdgeRequest {
    EdgeRequest {
        method,
        url: format!("{BASE}{path}"),
        headers: headers.iter().copied().collect(),
        body: body.as_bytes().to_vec(),
        client_ip: Some("203.0.113.9".into()),
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        serializer.append_pair(k, v);
    }
    serializer.finish()
}

fn query_of(location: &str) -> Vec<(String, String)> {
    Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param(location: &str, name: &str) -> Option<String> {
    query_of(location)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn body_json(response: &EdgeResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap_or(Value::Null)
}

enum Key {
    Rsa,
    RsaOther,
    Ec,
}

/// A signed id_token with sensible claims, changed by `edit`.
fn id_token(key: Key, kid: Option<&str>, nonce: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = json!({
        "iss": ISSUER,
        "aud": "access-client",
        "sub": "user-1",
        "email": "alice@example.com",
        "email_verified": true,
        "iat": START,
        "exp": START + 300,
        "nonce": nonce,
    });
    edit(&mut claims);
    let (alg, pem) = match key {
        Key::Rsa => (
            jsonwebtoken::Algorithm::RS256,
            include_str!("../tests/keys/rsa.pem"),
        ),
        Key::RsaOther => (
            jsonwebtoken::Algorithm::RS256,
            include_str!("../tests/keys/rsa-other.pem"),
        ),
        Key::Ec => (
            jsonwebtoken::Algorithm::ES256,
            include_str!("../tests/keys/ec.pem"),
        ),
    };
    let key = match alg {
        jsonwebtoken::Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .unwrap();
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

impl World {
    fn handle(&self, request: EdgeRequest) -> Handled {
        block_on(self.edge.handle(&self.ports, request))
    }

    fn respond(&self, request: EdgeRequest) -> EdgeResponse {
        match self.handle(request).outcome {
            Outcome::Respond(response) => response,
            Outcome::Forward(forward) => panic!("expected an answer, got {forward:?}"),
        }
    }

    fn advance(&self, seconds: u64) {
        self.now.set(self.now.get() + seconds);
    }

    fn register_with(&self, metadata: Value) -> EdgeResponse {
        self.respond(request(
            Method::Post,
            "/register",
            &[("Content-Type", "application/json")],
            &metadata.to_string(),
        ))
    }

    /// A public client registered for [`REDIRECT`].
    fn register(&self) -> String {
        let response = self.register_with(json!({
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "client_name": "Test <Client>",
        }));
        assert_eq!(response.status, 201, "{}", body_json(&response));
        body_json(&response)["client_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn authorize(
        &self,
        client_id: &str,
        extra: &[(&str, &str)],
        cookie: Option<&str>,
    ) -> EdgeResponse {
        let challenge = pkce_challenge(VERIFIER);
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "client-state"),
            ("resource", MCP),
        ];
        for (k, v) in extra {
            pairs.retain(|(name, _)| name != k);
            if !v.is_empty() {
                pairs.push((k, v));
            }
        }
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
        self.respond(request(
            Method::Get,
            &format!("/authorize?{}", form(&pairs)),
            &headers,
            "",
        ))
    }

    /// The consent page's sealed request and CSRF cookie.
    fn consent_parts(page: &EdgeResponse) -> (String, String) {
        let html = String::from_utf8(page.body.clone()).unwrap();
        let sealed = html
            .split("name=\"request\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        let cookie = page
            .headers
            .iter()
            .find(|(n, v)| *n == "Set-Cookie" && v.starts_with("__Host-mcpbox_csrf="))
            .map(|(_, v)| v.split(';').next().unwrap().to_owned())
            .unwrap();
        (sealed, cookie)
    }

    fn approve(&self, sealed: &str, cookie: &str) -> EdgeResponse {
        self.respond(request(
            Method::Post,
            "/authorize",
            &[
                ("Cookie", cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", BASE),
            ],
            &form(&[("request", sealed), ("action", "approve")]),
        ))
    }

    /// Answer the upstream token request with an id_token built for the login in `location`.
    fn upstream_answers(&self, location: &str, token: impl FnOnce(&str) -> String) {
        let nonce = param(location, "nonce").unwrap();
        self.ports.http.route(
            &format!("{ISSUER}/token"),
            200,
            &json!({"id_token": token(&nonce), "access_token": "upstream"}).to_string(),
        );
    }

    /// Access sends the browser back to `/callback` with a code and the login's state; the
    /// browser brings `cookie` (the login cookie from [`World::to_access`], or whatever the
    /// test has).
    fn callback(&self, location: &str, cookie: Option<&str>) -> EdgeResponse {
        let state = param(location, "state").unwrap();
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
        self.respond(request(
            Method::Get,
            &format!(
                "/callback?{}",
                form(&[("code", "upstream-code"), ("state", &state)])
            ),
            &headers,
            "",
        ))
    }

    /// Authorize and consent for `client_id`: the Access URL the browser is sent to, and the login
    /// cookie it was given with it.
    fn to_access(&self, client_id: &str) -> (String, String) {
        let (sealed, csrf) = World::consent_parts(&self.authorize(client_id, &[], None));
        let upstream = self.approve(&sealed, &csrf);
        assert_eq!(upstream.status, 302, "{}", body_json(&upstream));
        (
            upstream.headers.get("Location").unwrap().to_owned(),
            login_cookie(&upstream),
        )
    }

    /// Register, authorize, consent and log in upstream; returns the client id and the code.
    fn login(&self) -> (String, String) {
        let client_id = self.register();
        let (location, cookie) = self.to_access(&client_id);
        self.upstream_answers(&location, |nonce| {
            id_token(Key::Rsa, Some("rsa1"), nonce, |_| {})
        });
        let back = self.callback(&location, Some(&cookie));
        assert_eq!(back.status, 302, "{}", body_json(&back));
        let to_client = back.headers.get("Location").unwrap();
        assert!(to_client.starts_with(REDIRECT));
        (client_id, param(to_client, "code").unwrap())
    }

    fn token(&self, pairs: &[(&str, &str)]) -> EdgeResponse {
        self.respond(request(
            Method::Post,
            "/token",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &form(pairs),
        ))
    }

    fn redeem(&self, client_id: &str, code: &str) -> EdgeResponse {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("resource", MCP),
        ])
    }

    /// A full login ending in tokens: (client id, access token, refresh token).
    fn tokens(&self) -> (String, String, String) {
        let (client_id, code) = self.login();
        let answer = self.redeem(&client_id, &code);
        assert_eq!(answer.status, 200, "{}", body_json(&answer));
        let body = body_json(&answer);
        (
            client_id,
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    fn refresh(&self, client_id: &str, refresh_token: &str) -> EdgeResponse {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", refresh_token),
        ])
    }

    fn mcp(&self, access_token: &str) -> Outcome {
        let bearer = format!("Bearer {access_token}");
        self.handle(request(
            Method::Post,
            "/mcp?x=1",
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
                ("X-MCPbox-User-Email", "mallory@example.com"),
                ("x-mcpbox-service-token", "guess"),
                ("X-Mcpbox-Auth-Method", "forged"),
                ("Cookie", "__Host-mcpbox_approved=abc"),
                ("Origin", "https://claude.ai"),
            ],
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        ))
        .outcome
    }
}

/// The `name=value` of the `Set-Cookie` that sets `name` (not one that clears it).
fn set_cookie(response: &EdgeResponse, name: &str) -> Option<String> {
    response
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Set-Cookie"))
        .map(|(_, v)| v.split(';').next().unwrap().to_owned())
        .find(|pair| pair.starts_with(&format!("{name}=")) && pair.len() > name.len() + 1)
}

/// The login cookie the redirect to Access sets.
fn login_cookie(response: &EdgeResponse) -> String {
    set_cookie(response, "__Host-mcpbox_login").expect("no login cookie")
}

/// Whether the response clears the login cookie.
fn clears_login_cookie(response: &EdgeResponse) -> bool {
    response.headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("Set-Cookie")
            && v.starts_with("__Host-mcpbox_login=;")
            && v.contains("Max-Age=0")
    })
}

/// A refusal shown to a person: an HTML page (no JSON, no form) naming the error code.
fn assert_error_page(response: &EdgeResponse, status: u16, code: &str) {
    let body = String::from_utf8_lossy(&response.body);
    assert_eq!(response.status, status, "{body}");
    assert_eq!(
        response.headers.get("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(body.contains(&format!("<code>{code}</code>")), "{body}");
    assert!(!body.contains("<form"), "{body}");
    assert_eq!(response.headers.get("Location"), None);
}

fn assert_oauth_error(response: &EdgeResponse, status: u16, error: &str) {
    assert_eq!(response.status, status, "{}", body_json(response));
    assert_eq!(
        body_json(response)["error"],
        error,
        "{}",
        body_json(response)
    );
}

fn assert_redirect_error(response: &EdgeResponse, error: &str) {
    assert_eq!(response.status, 302);
    let location = response.headers.get("Location").unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(
        param(location, "error").as_deref(),
        Some(error),
        "{location}"
    );
    assert_eq!(param(location, "state").as_deref(), Some("client-state"));
    assert_eq!(param(location, "iss").as_deref(), Some(BASE));
}

fn is_unauthorized(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Respond(r) if r.status == 401)
}

// ---------------------------------------------------------------------------------------------
// Full flow

#[test]
fn full_flow_forwards_with_our_identity_and_rotates_refresh_tokens() {
    let w = world();
    let (client_id, access, refresh) = w.tokens();

    let Outcome::Forward(forward) = w.mcp(&access) else {
        panic!("expected a forward");
    };
    assert_eq!(forward.url, "http://mcp-gateway:8002/mcp?x=1");
    assert_eq!(forward.method, Method::Post);
    let h = &forward.headers;
    assert_eq!(
        h.get(contract::headers::USER_EMAIL),
        Some("alice@example.com")
    );
    assert_eq!(
        h.get(contract::headers::SERVICE_TOKEN),
        Some("service-token-value")
    );
    assert_eq!(h.get("Authorization"), None);
    assert_eq!(h.get("Cookie"), None);
    assert_eq!(h.get("X-Mcpbox-Auth-Method"), None);
    assert_eq!(h.get("Content-Type"), Some("application/json"));
    // Exactly one of each identity header: the client's copies are gone, whatever their case.
    for name in contract::headers::IDENTITY_HEADERS {
        assert_eq!(
            h.iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .count(),
            1
        );
    }
    assert!(!h.iter().any(|(_, v)| v.contains(&access)));
    assert_eq!(
        forward.cors.get("Access-Control-Allow-Origin"),
        Some("https://claude.ai")
    );

    // Two concurrent refreshes of the same token both succeed, and both new tokens work.
    let first = w.refresh(&client_id, &refresh);
    w.advance(5);
    let second = w.refresh(&client_id, &refresh);
    assert_eq!(first.status, 200, "{}", body_json(&first));
    assert_eq!(second.status, 200, "{}", body_json(&second));
    let first_refresh = body_json(&first)["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let second_access = body_json(&second)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first_refresh, refresh);
    assert!(matches!(w.mcp(&second_access), Outcome::Forward(_)));

    // A replay of the rotated token after the grace period revokes the whole grant.
    w.advance(120);
    assert_oauth_error(&w.refresh(&client_id, &refresh), 400, "invalid_grant");
    assert!(is_unauthorized(&w.mcp(&second_access)));
    assert!(is_unauthorized(&w.mcp(&access)));
    assert_oauth_error(&w.refresh(&client_id, &first_refresh), 400, "invalid_grant");
}

#[test]
fn client_cf_access_headers_never_reach_the_origin() {
    let w = world();
    let (_, access, _) = w.tokens();
    let bearer = format!("Bearer {access}");
    let forged_jwt = "eyJhbGciOiJub25lIn0.eyJlbWFpbCI6ImJvYkBleGFtcGxlLmNvbSJ9.";
    let handled = w.handle(request(
        Method::Post,
        "/mcp",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
            ("Cf-Access-Jwt-Assertion", forged_jwt),
            ("cf-access-jwt-assertion", forged_jwt),
            ("Cf-Access-Authenticated-User-Email", "bob@example.com"),
            ("CF-ACCESS-AUTHENTICATED-USER-EMAIL", "bob@example.com"),
            ("cF-aCcEsS-Authenticated-User-Email", "bob@example.com"),
            ("Cf-Access-Client-Id", "forged.access"),
            ("Cf-Access-Client-Secret", "forged-secret"),
            ("Cf-Access-Future-Header", "bob@example.com"),
            // Similar names outside the namespace are the client's own business.
            ("Cf-Accessible", "kept"),
        ],
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    ));
    let Outcome::Forward(forward) = handled.outcome else {
        panic!("expected a forward");
    };
    let h = &forward.headers;
    assert!(
        !h.iter()
            .any(|(name, _)| name.to_ascii_lowercase().starts_with("cf-access-")),
        "{h:?}"
    );
    assert!(!h.iter().any(|(_, value)| value.contains("bob@example.com")
        || value.contains(forged_jwt)
        || value.contains("forged")));
    assert_eq!(
        h.get(contract::headers::USER_EMAIL),
        Some("alice@example.com")
    );
    assert_eq!(h.get("Cf-Accessible"), Some("kept"));
}

#[test]
fn refresh_chain_keeps_working_without_replays() {
    let w = world();
    let (client_id, _, mut refresh) = w.tokens();
    for _ in 0..3 {
        w.advance(600);
        let answer = w.refresh(&client_id, &refresh);
        assert_eq!(answer.status, 200, "{}", body_json(&answer));
        refresh = body_json(&answer)["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    }
}

#[test]
fn approved_client_skips_consent_next_time() {
    let w = world();
    let client_id = w.register();
    let (sealed, csrf) = World::consent_parts(&w.authorize(&client_id, &[], None));
    let approved = w.approve(&sealed, &csrf);
    let cookie = approved
        .headers
        .iter()
        .find(|(n, v)| *n == "Set-Cookie" && v.starts_with("__Host-mcpbox_approved="))
        .map(|(_, v)| v.split(';').next().unwrap().to_owned())
        .unwrap();
    let again = w.authorize(&client_id, &[], Some(&cookie));
    assert_eq!(again.status, 302);
    assert!(again.headers.get("Location").unwrap().starts_with(ISSUER));
    // The cookie names clients; another client still needs consent.
    let other = w.register();
    assert_eq!(w.authorize(&other, &[], Some(&cookie)).status, 200);
}

#[test]
fn upstream_redirect_carries_state_nonce_and_pkce() {
    let w = world();
    let client_id = w.register();
    let (location, cookie) = w.to_access(&client_id);
    assert!(location.starts_with(&format!("{ISSUER}/authorization?")));
    assert_eq!(
        param(&location, "client_id").as_deref(),
        Some("access-client")
    );
    assert_eq!(
        param(&location, "redirect_uri").as_deref(),
        Some("https://edge.example.com/callback")
    );
    assert_eq!(
        param(&location, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(param(&location, "state").is_some());
    assert!(param(&location, "nonce").is_some());
    assert!(param(&location, "code_challenge").is_some());
    // The upstream exchange sends the client secret and the PKCE verifier.
    w.upstream_answers(&location, |nonce| {
        id_token(Key::Rsa, Some("rsa1"), nonce, |_| {})
    });
    assert_eq!(w.callback(&location, Some(&cookie)).status, 302);
    let requests = w.ports.http.requests.borrow();
    let exchange = requests.iter().find(|r| r.url.ends_with("/token")).unwrap();
    let body = String::from_utf8(exchange.body.clone()).unwrap();
    assert!(body.contains("client_secret=access-secret"));
    assert!(body.contains("code_verifier="));
}

#[test]
fn consent_page_escapes_client_metadata() {
    let w = world();
    let client_id = w.register();
    let page = w.authorize(&client_id, &[], None);
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert!(html.contains("Test &lt;Client&gt;"));
    assert!(!html.contains("<Client>"));
    let csp = page.headers.get("Content-Security-Policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(csp.starts_with("default-src 'none'"));
    // The form may lead to Access (approve) or back to the client (deny), nowhere else.
    assert!(
        csp.contains("form-action 'self' https://team.cloudflareaccess.com https://claude.ai;")
    );
    assert_eq!(page.headers.get("Referrer-Policy"), Some("same-origin"));
}

#[test]
fn consent_post_with_a_null_origin_relies_on_the_cookie() {
    let w = world();
    let client_id = w.register();
    let (sealed, cookie) = World::consent_parts(&w.authorize(&client_id, &[], None));
    let with_cookie = w.respond(request(
        Method::Post,
        "/authorize",
        &[("Cookie", &cookie), ("Origin", "null")],
        &form(&[("request", &sealed), ("action", "approve")]),
    ));
    assert_eq!(with_cookie.status, 302);
    let (sealed, _) = World::consent_parts(&w.authorize(&client_id, &[], None));
    let without = w.respond(request(
        Method::Post,
        "/authorize",
        &[("Origin", "null")],
        &form(&[("request", &sealed), ("action", "approve")]),
    ));
    assert_eq!(without.status, 403);
}

// ---------------------------------------------------------------------------------------------
// /authorize negatives

#[test]
fn pkce_missing_or_plain_is_rejected() {
    let w = world();
    let client_id = w.register();
    assert_redirect_error(
        &w.authorize(&client_id, &[("code_challenge", "")], None),
        "invalid_request",
    );
    assert_redirect_error(
        &w.authorize(&client_id, &[("code_challenge_method", "plain")], None),
        "invalid_request",
    );
    assert_redirect_error(
        &w.authorize(&client_id, &[("code_challenge_method", "")], None),
        "invalid_request",
    );
}

#[test]
fn unregistered_redirect_uri_is_refused_without_redirecting() {
    let w = world();
    let client_id = w.register();
    let response = w.authorize(
        &client_id,
        &[("redirect_uri", "https://claude.ai/elsewhere")],
        None,
    );
    assert_oauth_error(&response, 400, "invalid_request");
    assert_eq!(response.headers.get("Location"), None);
    assert_oauth_error(
        &w.authorize("no-such-client", &[], None),
        400,
        "invalid_client",
    );
}

#[test]
fn resource_other_than_the_mcp_url_is_rejected() {
    let w = world();
    let client_id = w.register();
    assert_redirect_error(
        &w.authorize(
            &client_id,
            &[("resource", "https://other.example.com/mcp")],
            None,
        ),
        "invalid_target",
    );
    // A trailing slash is the same resource.
    assert_eq!(
        w.authorize(
            &client_id,
            &[("resource", "https://edge.example.com/mcp/")],
            None
        )
        .status,
        200
    );
}

#[test]
fn disallowed_redirect_uri_cannot_be_registered() {
    let w = world();
    for uri in [
        "https://evil.example.com/cb",
        "http://claude.ai/cb",
        "https://claude.ai/cb#x",
    ] {
        let response =
            w.register_with(json!({"redirect_uris": [uri], "token_endpoint_auth_method": "none"}));
        assert_oauth_error(&response, 400, "invalid_redirect_uri");
    }
    assert_oauth_error(
        &w.register_with(json!({"token_endpoint_auth_method": "none"})),
        400,
        "invalid_redirect_uri",
    );
}

/// Paths on the hosted clients' hosts that the former host-wide rule accepted and that are not
/// their callbacks (pages with user content, other apps, open-redirect candidates).
const FORMER_ANY_PATH_REDIRECTS: [&str; 12] = [
    "https://claude.ai/",
    "https://claude.ai/chat/0b7c",
    "https://claude.ai/api/mcp/auth_callback/extra",
    "https://claude.ai/api/mcp/auth_callback?next=https://evil.example.com",
    "https://mcp.claude.ai/anything",
    "https://chatgpt.com/share/abc",
    "https://chatgpt.com/connector/oauth/id/more",
    "https://chat.openai.com/auth/login",
    "https://platform.openai.com/apps-manage/oauth/other",
    "https://platform.openai.com/playground",
    "https://one.dash.cloudflare.com/",
    "https://one.dash.cloudflare.com/any/path",
];

/// The published callbacks of those clients, which keep working.
const REAL_CALLBACKS: [&str; 9] = [
    "https://claude.ai/api/mcp/auth_callback",
    "https://claude.com/api/mcp/auth_callback",
    "https://mcp.claude.ai/api/mcp/auth_callback",
    "https://chatgpt.com/connector_platform_oauth_redirect",
    "https://chatgpt.com/connector/oauth/OUbdUMlL15Ct",
    "https://chat.openai.com/connector_platform_oauth_redirect",
    "https://platform.openai.com/apps-manage/oauth",
    "https://playground.ai.cloudflare.com/oauth/callback",
    "https://oauth-callbacks.cloudflareaccess.com/cdn-cgi/access/outbound-oauth-callback",
];

impl World {
    /// A client as a Worker with the former host-wide rule registered it: already in KV, so only
    /// the check at /authorize stands between it and a code.
    fn registered_before_the_fix(&self, redirect_uri: &str) -> String {
        let client_id = format!("old-client-{}", crate::crypto::hash(redirect_uri));
        let record = crate::store::ClientRecord {
            redirect_uris: vec![redirect_uri.to_owned()],
            auth_method: "none".into(),
            secret_hash: None,
            name: Some("Registered long ago".into()),
            created_at: START,
            expires_at: START + 86_400,
        };
        block_on(crate::store::put(
            &self.ports.kv,
            &crate::store::client_key(&client_id),
            &record,
            86_400,
        ))
        .unwrap();
        client_id
    }
}

#[test]
fn any_path_on_a_client_host_is_not_a_redirect_uri() {
    let w = world();
    for uri in FORMER_ANY_PATH_REDIRECTS {
        // Not at registration…
        let response =
            w.register_with(json!({"redirect_uris": [uri], "token_endpoint_auth_method": "none"}));
        assert_oauth_error(&response, 400, "invalid_redirect_uri");
        // …not for a client registered before (refused without redirecting there)…
        let old = w.registered_before_the_fix(uri);
        let response = w.authorize(&old, &[("redirect_uri", uri)], None);
        assert_oauth_error(&response, 400, "invalid_request");
        assert_eq!(response.headers.get("Location"), None, "{uri}");
        // …and not in a client ID metadata document.
        let doc = format!(
            "https://client.example.com/{}.json",
            crate::crypto::hash(uri)
        );
        w.ports.http.route(&doc, 200, &cimd_document(&doc, uri));
        assert_oauth_error(
            &w.authorize(&doc, &[("redirect_uri", uri)], None),
            400,
            "invalid_client",
        );
        w.advance(1800); // stay under the registration rate limit
    }
    for uri in REAL_CALLBACKS {
        let registered =
            w.register_with(json!({"redirect_uris": [uri], "token_endpoint_auth_method": "none"}));
        assert_eq!(registered.status, 201, "{uri}: {}", body_json(&registered));
        let client_id = body_json(&registered)["client_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            w.authorize(&client_id, &[("redirect_uri", uri)], None)
                .status,
            200,
            "{uri}"
        );
        w.advance(1800);
    }
}

#[test]
fn kv_document_adds_a_redirect_uri_back() {
    let w = world();
    let uri = "https://one.dash.cloudflare.com/portal/callback";
    let old = w.registered_before_the_fix(uri);
    assert_oauth_error(
        &w.authorize(&old, &[("redirect_uri", uri)], None),
        400,
        "invalid_request",
    );
    let doc = json!({"version": 1, "redirect_uris": [uri, "https://claude.ai/org/*"]});
    block_on(
        w.ports
            .kv
            .put(contract::edge::KV_KEY, &doc.to_string(), None),
    )
    .unwrap();
    w.advance(31); // past the per-isolate cache of the document
    assert_eq!(
        w.authorize(&old, &[("redirect_uri", uri)], None).status,
        200
    );
    let registered = w.register_with(
        json!({"redirect_uris": ["https://claude.ai/org/42/cb"], "token_endpoint_auth_method": "none"}),
    );
    assert_eq!(registered.status, 201, "{}", body_json(&registered));
    // Only what the document names: the rest of the host stays closed.
    assert_oauth_error(
        &w.register_with(json!({"redirect_uris": ["https://claude.ai/chat/1"], "token_endpoint_auth_method": "none"})),
        400,
        "invalid_redirect_uri",
    );
    // Taking it out of the document closes it again, for the registered client too.
    block_on(w.ports.kv.delete(contract::edge::KV_KEY)).unwrap();
    w.advance(31);
    assert_oauth_error(
        &w.authorize(&old, &[("redirect_uri", uri)], None),
        400,
        "invalid_request",
    );
}

#[test]
fn registration_is_rate_limited_per_address() {
    let w = world();
    for _ in 0..10 {
        w.register();
    }
    let limited = w.register_with(json!({"redirect_uris": [REDIRECT]}));
    assert_eq!(limited.status, 429);
    assert!(limited.headers.get("Retry-After").is_some());
    w.advance(3600);
    w.register();
}

#[test]
fn registrations_expire() {
    let w = world();
    let client_id = w.register();
    w.advance(90 * 24 * 3600);
    assert_oauth_error(&w.authorize(&client_id, &[], None), 400, "invalid_client");
}

#[test]
fn csrf_mismatch_is_refused() {
    let w = world();
    let client_id = w.register();
    let (sealed, _) = World::consent_parts(&w.authorize(&client_id, &[], None));
    let (_, other_cookie) = World::consent_parts(&w.authorize(&client_id, &[], None));
    assert_oauth_error(&w.approve(&sealed, &other_cookie), 403, "access_denied");
    assert_oauth_error(&w.approve(&sealed, "unrelated=1"), 403, "access_denied");
    // A cross-site POST is refused even with the right cookie.
    let (sealed, cookie) = World::consent_parts(&w.authorize(&client_id, &[], None));
    let cross = w.respond(request(
        Method::Post,
        "/authorize",
        &[("Cookie", &cookie), ("Origin", "https://evil.example.com")],
        &form(&[("request", &sealed), ("action", "approve")]),
    ));
    assert_eq!(cross.status, 403);
    // A tampered form is not ours.
    assert_oauth_error(&w.approve("AAAA", &cookie), 400, "invalid_request");
}

#[test]
fn denying_consent_returns_access_denied_to_the_client() {
    let w = world();
    let client_id = w.register();
    let (sealed, cookie) = World::consent_parts(&w.authorize(&client_id, &[], None));
    let denied = w.respond(request(
        Method::Post,
        "/authorize",
        &[("Cookie", &cookie)],
        &form(&[("request", &sealed), ("action", "deny")]),
    ));
    assert_redirect_error(&denied, "access_denied");
}

// ---------------------------------------------------------------------------------------------
// /token negatives

#[test]
fn code_reuse_is_rejected_and_revokes_the_grant() {
    let w = world();
    let (client_id, code) = w.login();
    let first = w.redeem(&client_id, &code);
    assert_eq!(first.status, 200);
    let access = body_json(&first)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_oauth_error(&w.redeem(&client_id, &code), 400, "invalid_grant");
    assert!(is_unauthorized(&w.mcp(&access)));
}

#[test]
fn wrong_or_missing_verifier_is_rejected() {
    let w = world();
    let (client_id, code) = w.login();
    let wrong = w.token(&[
        ("grant_type", "authorization_code"),
        ("client_id", &client_id),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        (
            "code_verifier",
            "another-verifier-that-is-also-long-enough-000",
        ),
    ]);
    assert_oauth_error(&wrong, 400, "invalid_grant");
    // The code is spent by the failed attempt.
    assert_oauth_error(&w.redeem(&client_id, &code), 400, "invalid_grant");

    let (client_id, code) = w.login();
    let missing = w.token(&[
        ("grant_type", "authorization_code"),
        ("client_id", &client_id),
        ("code", &code),
        ("redirect_uri", REDIRECT),
    ]);
    assert_oauth_error(&missing, 400, "invalid_request");
}

#[test]
fn redirect_uri_mismatch_at_token_is_rejected() {
    let w = world();
    let (client_id, code) = w.login();
    let answer = w.token(&[
        ("grant_type", "authorization_code"),
        ("client_id", &client_id),
        ("code", &code),
        ("redirect_uri", "https://claude.ai/other"),
        ("code_verifier", VERIFIER),
    ]);
    assert_oauth_error(&answer, 400, "invalid_grant");
}

#[test]
fn resource_mismatch_at_token_is_rejected() {
    let w = world();
    let (client_id, code) = w.login();
    let answer = w.token(&[
        ("grant_type", "authorization_code"),
        ("client_id", &client_id),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("resource", "https://other.example.com/mcp"),
    ]);
    assert_oauth_error(&answer, 400, "invalid_target");
}

#[test]
fn code_for_another_client_is_rejected() {
    let w = world();
    let (_, code) = w.login();
    let other = w.register();
    assert_oauth_error(&w.redeem(&other, &code), 400, "invalid_grant");
}

#[test]
fn expired_code_is_rejected() {
    let w = world();
    let (client_id, code) = w.login();
    w.advance(61);
    assert_oauth_error(&w.redeem(&client_id, &code), 400, "invalid_grant");
}

#[test]
fn expired_access_token_is_refused_with_a_challenge() {
    let w = world();
    let (_, access, _) = w.tokens();
    w.advance(3600);
    let Outcome::Respond(response) = w.mcp(&access) else {
        panic!("expected 401");
    };
    assert_eq!(response.status, 401);
    let challenge = response.headers.get("WWW-Authenticate").unwrap();
    assert!(challenge.contains(
        r#"resource_metadata="https://edge.example.com/.well-known/oauth-protected-resource/mcp""#
    ));
    assert!(challenge.contains(r#"error="invalid_token""#));
}

#[test]
fn expired_refresh_token_is_rejected() {
    let w = world();
    let (client_id, _, refresh) = w.tokens();
    w.advance(30 * 24 * 3600);
    assert_oauth_error(&w.refresh(&client_id, &refresh), 400, "invalid_grant");
}

#[test]
fn refresh_by_another_client_is_rejected() {
    let w = world();
    let (_, _, refresh) = w.tokens();
    let other = w.register();
    assert_oauth_error(&w.refresh(&other, &refresh), 400, "invalid_grant");
}

#[test]
fn unknown_client_cannot_use_the_token_endpoint() {
    let w = world();
    let answer = w.token(&[
        ("grant_type", "refresh_token"),
        ("client_id", "nobody"),
        ("refresh_token", "x"),
    ]);
    assert_oauth_error(&answer, 401, "invalid_client");
    assert_oauth_error(
        &w.token(&[("grant_type", "refresh_token")]),
        401,
        "invalid_client",
    );
}

#[test]
fn confidential_clients_must_present_their_secret() {
    let w = world();
    let registered = w.register_with(json!({"redirect_uris": [REDIRECT], "client_name": "c"}));
    assert_eq!(registered.status, 201);
    let body = body_json(&registered);
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    let id = body["client_id"].as_str().unwrap();
    let secret = body["client_secret"].as_str().unwrap();
    let refresh = |pairs: &[(&str, &str)], headers: &[(&str, &str)]| {
        let mut all = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", "unknown"),
        ];
        all.extend_from_slice(pairs);
        w.respond(request(Method::Post, "/token", headers, &form(&all)))
    };
    assert_oauth_error(&refresh(&[("client_id", id)], &[]), 401, "invalid_client");
    assert_oauth_error(
        &refresh(&[("client_id", id), ("client_secret", "wrong")], &[]),
        401,
        "invalid_client",
    );
    // The right secret gets past client authentication (to an unknown token).
    assert_oauth_error(
        &refresh(&[("client_id", id), ("client_secret", secret)], &[]),
        400,
        "invalid_grant",
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    );
    assert_oauth_error(
        &refresh(&[], &[("Authorization", &basic)]),
        400,
        "invalid_grant",
    );
}

// ---------------------------------------------------------------------------------------------
// /revoke

#[test]
fn revocation_by_another_client_is_refused() {
    let w = world();
    let (_, access, refresh) = w.tokens();
    let other = w.register();
    for token in [&access, &refresh] {
        let answer = w.respond(request(
            Method::Post,
            "/revoke",
            &[],
            &form(&[("client_id", &other), ("token", token)]),
        ));
        assert_oauth_error(&answer, 400, "unauthorized_client");
    }
    assert!(matches!(w.mcp(&access), Outcome::Forward(_)));
}

#[test]
fn owner_revoking_the_refresh_token_ends_the_grant() {
    let w = world();
    let (client_id, access, refresh) = w.tokens();
    let answer = w.respond(request(
        Method::Post,
        "/revoke",
        &[],
        &form(&[
            ("client_id", &client_id),
            ("token", &refresh),
            ("token_type_hint", "refresh_token"),
        ]),
    ));
    assert_eq!(answer.status, 200);
    assert!(is_unauthorized(&w.mcp(&access)));
    assert_oauth_error(&w.refresh(&client_id, &refresh), 400, "invalid_grant");
    // Unknown tokens are fine (RFC 7009).
    let unknown = w.respond(request(
        Method::Post,
        "/revoke",
        &[],
        &form(&[("client_id", &client_id), ("token", "nothing")]),
    ));
    assert_eq!(unknown.status, 200);
}

#[test]
fn owner_revoking_an_access_token_keeps_the_refresh_token() {
    let w = world();
    let (client_id, access, refresh) = w.tokens();
    let answer = w.respond(request(
        Method::Post,
        "/revoke",
        &[],
        &form(&[("client_id", &client_id), ("token", &access)]),
    ));
    assert_eq!(answer.status, 200);
    assert!(is_unauthorized(&w.mcp(&access)));
    assert_eq!(w.refresh(&client_id, &refresh).status, 200);
}

// ---------------------------------------------------------------------------------------------
// Upstream id_token checks

/// Run a login whose upstream answers with `token(nonce)`; returns the callback's answer.
fn login_with(w: &World, token: impl FnOnce(&str) -> String) -> EdgeResponse {
    let client_id = w.register();
    let (location, cookie) = w.to_access(&client_id);
    w.upstream_answers(&location, token);
    w.callback(&location, Some(&cookie))
}

fn assert_refused(response: EdgeResponse) {
    assert_error_page(&response, 502, "invalid_id_token");
}

#[test]
fn es256_id_tokens_are_accepted() {
    let w = world();
    let answer = login_with(&w, |nonce| id_token(Key::Ec, Some("ec1"), nonce, |_| {}));
    assert_eq!(answer.status, 302, "{}", body_json(&answer));
}

#[test]
fn id_token_with_a_bad_signature_is_refused() {
    let w = world();
    assert_refused(login_with(&w, |nonce| {
        id_token(Key::RsaOther, Some("rsa1"), nonce, |_| {})
    }));
    // An RSA key presented as the EC key's kid is refused too.
    assert_refused(login_with(&w, |nonce| {
        id_token(Key::Rsa, Some("ec1"), nonce, |_| {})
    }));
}

#[test]
fn id_token_with_wrong_issuer_or_audience_is_refused() {
    let w = world();
    assert_refused(login_with(&w, |nonce| {
        id_token(Key::Rsa, Some("rsa1"), nonce, |c| {
            c["iss"] = "https://evil.example.com".into()
        })
    }));
    assert_refused(login_with(&w, |nonce| {
        id_token(Key::Rsa, Some("rsa1"), nonce, |c| {
            c["aud"] = "someone-else".into()
        })
    }));
}

#[test]
fn expired_or_future_id_token_is_refused_beyond_the_skew() {
    let w = world();
    assert_refused(login_with(&w, |nonce| {
        id_token(Key::Rsa, Some("rsa1"), nonce, |c| {
            c["exp"] = (START - 61).into()
        })
    }));
    assert_refused(login_with(&w, |nonce| {
        id_token(Key::Rsa, Some("rsa1"), nonce, |c| {
            c["nbf"] = (START + 120).into()
        })
    }));
    // Within the skew is fine.
    let ok = login_with(&w, |nonce| {
        id_token(Key::Rsa, Some("rsa1"), nonce, |c| {
            c["exp"] = (START - 30).into()
        })
    });
    assert_eq!(ok.status, 302);
}

#[test]
fn id_token_with_wrong_nonce_is_refused() {
    let w = world();
    assert_refused(login_with(&w, |_| {
        id_token(Key::Rsa, Some("rsa1"), "another-nonce", |_| {})
    }));
    assert_refused(login_with(&w, |nonce| {
        id_token(Key::Rsa, Some("rsa1"), nonce, |c| {
            c.as_object_mut().unwrap().remove("nonce");
        })
    }));
}

#[test]
fn id_token_without_a_verified_email_is_refused() {
    let w = world();
    let unverified = |edit: fn(&mut Value)| {
        let answer = login_with(&w, |nonce| id_token(Key::Rsa, Some("rsa1"), nonce, edit));
        assert_error_page(&answer, 403, "email_not_verified");
        assert!(clears_login_cookie(&answer));
    };
    // A provider that does not vouch for the address: the claim false, or left out.
    unverified(|c| c["email_verified"] = false.into());
    unverified(|c| {
        c.as_object_mut().unwrap().remove("email_verified");
    });
    unverified(|c| c["email_verified"] = Value::Null);
    unverified(|c| {
        c.as_object_mut().unwrap().remove("email");
    });
    // Only the JSON boolean counts; a string is not a verification.
    let stringly = login_with(&w, |nonce| {
        id_token(Key::Rsa, Some("rsa1"), nonce, |c| {
            c["email_verified"] = "true".into()
        })
    });
    assert_ne!(stringly.status, 302);
    assert_eq!(stringly.headers.get("Location"), None);
    // Nothing was issued for any of them.
    assert!(
        !w.ports
            .kv
            .map
            .borrow()
            .keys()
            .any(|key| key.starts_with("grant:") || key.starts_with("code:"))
    );
}

#[test]
fn unknown_kid_is_refused_and_negatively_cached() {
    let w = world();
    let jwks = format!("{ISSUER}/jwks");
    assert_refused(login_with(&w, |nonce| {
        id_token(Key::Rsa, Some("nope"), nonce, |_| {})
    }));
    assert_eq!(w.ports.http.count(&jwks), 1);
    // The same unknown kid again: no new fetch.
    w.advance(40);
    assert_refused(login_with(&w, |nonce| {
        id_token(Key::Rsa, Some("nope"), nonce, |_| {})
    }));
    assert_eq!(w.ports.http.count(&jwks), 1);
    // Known kids come from the cache.
    assert_eq!(
        login_with(&w, |nonce| id_token(Key::Rsa, Some("rsa1"), nonce, |_| {})).status,
        302
    );
    assert_eq!(w.ports.http.count(&jwks), 1);
    // Missing kid and unsupported algorithms are refused outright.
    assert_refused(login_with(&w, |nonce| {
        id_token(Key::Rsa, None, nonce, |_| {})
    }));
    assert_refused(login_with(&w, |_| {
        let claims = json!({"iss": ISSUER, "aud": "access-client", "exp": START + 300});
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("rsa1".into());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(b"k")).unwrap()
    }));
}

#[test]
fn callback_state_is_single_use() {
    let w = world();
    let client_id = w.register();
    let (location, cookie) = w.to_access(&client_id);
    w.upstream_answers(&location, |nonce| {
        id_token(Key::Rsa, Some("rsa1"), nonce, |_| {})
    });
    assert_eq!(w.callback(&location, Some(&cookie)).status, 302);
    assert_error_page(&w.callback(&location, Some(&cookie)), 400, "invalid_state");
    let unknown = w.respond(request(
        Method::Get,
        "/callback?code=x&state=forged",
        &[("Cookie", &cookie)],
        "",
    ));
    assert_error_page(&unknown, 400, "invalid_state");
}

// ---------------------------------------------------------------------------------------------
// The upstream login is bound to the browser that consented (RFC 6749 §10.12)

/// The attack: Mallory consents in her own browser to her own client, then, instead of signing
/// in at Access, sends the Access link to Alice. Alice is signed in to Access, so Access sends
/// Alice's browser straight back to `/callback` with Mallory's state, and, without a binding,
/// the code for Alice's identity would go to Mallory's client.
#[test]
fn callback_from_another_browser_is_refused() {
    let w = world();
    let token_url = format!("{ISSUER}/token");
    let mallory = w.register();
    let (mallorys_link, mallorys_cookie) = w.to_access(&mallory);
    // Alice has a login of her own in progress, with its own cookie.
    let alice = w.register();
    let (alices_link, alices_cookie) = w.to_access(&alice);
    assert_ne!(mallorys_cookie, alices_cookie);
    let cookie_value = |pair: &str| pair.split_once('=').unwrap().1.to_owned();
    for presented in [
        None,
        Some(alices_cookie.clone()),
        Some("__Host-mcpbox_login=".to_owned()),
        Some(format!(
            "__Host-mcpbox_login={}x",
            cookie_value(&mallorys_cookie)
        )),
        Some(format!(
            "__Host-mcpbox_csrf={}",
            cookie_value(&mallorys_cookie)
        )),
        Some("__Host-mcpbox_login=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned()),
    ] {
        // A fresh login of Mallory's each round: a refusal spends the state.
        let (link, _) = w.to_access(&mallory);
        w.upstream_answers(&link, |nonce| {
            id_token(Key::Rsa, Some("rsa1"), nonce, |_| {})
        });
        let before = w.ports.http.count(&token_url);
        let answer = w.callback(&link, presented.as_deref());
        assert_error_page(&answer, 400, "login_browser_mismatch");
        assert!(clears_login_cookie(&answer), "{presented:?}");
        // Access's code was never redeemed and nothing was issued.
        assert_eq!(w.ports.http.count(&token_url), before, "{presented:?}");
    }
    assert!(
        !w.ports
            .kv
            .map
            .borrow()
            .keys()
            .any(|key| key.starts_with("grant:") || key.starts_with("code:"))
    );
    // The refusal spent the login: Mallory cannot finish it later with her own cookie either.
    let refused = w.callback(&mallorys_link, Some(&alices_cookie));
    assert_error_page(&refused, 400, "login_browser_mismatch");
    assert_error_page(
        &w.callback(&mallorys_link, Some(&mallorys_cookie)),
        400,
        "invalid_state",
    );
    // Alice's own login, in her own browser, still works, and its cookie is cleared.
    w.upstream_answers(&alices_link, |nonce| {
        id_token(Key::Rsa, Some("rsa1"), nonce, |_| {})
    });
    let back = w.callback(&alices_link, Some(&alices_cookie));
    assert_eq!(back.status, 302, "{}", String::from_utf8_lossy(&back.body));
    assert!(back.headers.get("Location").unwrap().starts_with(REDIRECT));
    assert!(clears_login_cookie(&back));
}

#[test]
fn login_cookie_is_short_lived_http_only_secure_lax_and_only_hashed_in_kv() {
    let w = world();
    let client_id = w.register();
    let (sealed, csrf) = World::consent_parts(&w.authorize(&client_id, &[], None));
    let upstream = w.approve(&sealed, &csrf);
    let line = upstream
        .headers
        .iter()
        .find(|(n, v)| *n == "Set-Cookie" && v.starts_with("__Host-mcpbox_login="))
        .map(|(_, v)| v.to_owned())
        .unwrap();
    for attribute in [
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=600",
    ] {
        assert!(
            line.split("; ").any(|a| a == attribute),
            "{attribute} missing in {line}"
        );
    }
    let value = login_cookie(&upstream)
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    assert_eq!(value.len(), 43);
    for (key, (stored, _)) in w.ports.kv.map.borrow().iter() {
        assert!(!key.contains(&value) && !stored.contains(&value), "{key}");
    }
    // A browser that approved the client before goes straight to Access, bound the same way.
    let approved = set_cookie(&upstream, "__Host-mcpbox_approved").unwrap();
    let again = w.authorize(&client_id, &[], Some(&approved));
    assert_eq!(again.status, 302);
    let location = again.headers.get("Location").unwrap().to_owned();
    w.upstream_answers(&location, |nonce| {
        id_token(Key::Rsa, Some("rsa1"), nonce, |_| {})
    });
    assert_error_page(&w.callback(&location, None), 400, "login_browser_mismatch");
    let again = w.authorize(&client_id, &[], Some(&approved));
    let location = again.headers.get("Location").unwrap().to_owned();
    w.upstream_answers(&location, |nonce| {
        id_token(Key::Rsa, Some("rsa1"), nonce, |_| {})
    });
    let back = w.callback(&location, Some(&login_cookie(&again)));
    assert_eq!(back.status, 302, "{}", String::from_utf8_lossy(&back.body));
}

#[test]
fn login_state_written_before_the_binding_existed_is_refused() {
    let w = world();
    let client_id = w.register();
    let (location, cookie) = w.to_access(&client_id);
    // The same record as an older Worker wrote it: no `browser` field.
    let key = crate::store::state_key(&param(&location, "state").unwrap());
    let mut map = w.ports.kv.map.borrow_mut();
    let (raw, ttl) = map.get(&key).cloned().unwrap();
    let mut record: Value = serde_json::from_str(&raw).unwrap();
    record.as_object_mut().unwrap().remove("browser");
    map.insert(key, (record.to_string(), ttl));
    drop(map);
    w.upstream_answers(&location, |nonce| {
        id_token(Key::Rsa, Some("rsa1"), nonce, |_| {})
    });
    assert_error_page(
        &w.callback(&location, Some(&cookie)),
        400,
        "login_browser_mismatch",
    );
    assert_error_page(
        &w.callback(&location, Some("__Host-mcpbox_login=")),
        400,
        "invalid_state",
    );
}

#[test]
fn failed_upstream_exchange_is_a_bad_gateway() {
    let w = world();
    let client_id = w.register();
    let (location, cookie) = w.to_access(&client_id);
    w.ports.http.route(
        &format!("{ISSUER}/token"),
        400,
        r#"{"error":"invalid_grant"}"#,
    );
    let handled = w.handle(request(
        Method::Get,
        &format!(
            "/callback?{}",
            form(&[
                ("code", "c"),
                ("state", &param(&location, "state").unwrap())
            ])
        ),
        &[("Cookie", &cookie)],
        "",
    ));
    let Outcome::Respond(response) = handled.outcome else {
        panic!()
    };
    assert_error_page(&response, 502, "token_exchange_failed");
    assert!(handled.log.iter().any(|line| line.level == Level::Error));
}

// ---------------------------------------------------------------------------------------------
// Client ID metadata documents

const CIMD_URL: &str = "https://client.example.com/oauth/client.json";

fn cimd_document(client_id: &str, redirect: &str) -> String {
    json!({"client_id": client_id, "client_name": "Doc Client", "redirect_uris": [redirect]})
        .to_string()
}

#[test]
fn metadata_document_clients_can_log_in() {
    let w = world();
    w.ports
        .http
        .route(CIMD_URL, 200, &cimd_document(CIMD_URL, REDIRECT));
    let page = w.authorize(CIMD_URL, &[], None);
    assert_eq!(page.status, 200, "{}", body_json(&page));
    assert!(
        String::from_utf8(page.body.clone())
            .unwrap()
            .contains("Doc Client")
    );
    // Cached: a second authorization does not fetch again.
    w.authorize(CIMD_URL, &[], None);
    assert_eq!(w.ports.http.count(CIMD_URL), 1);
}

#[test]
fn unusable_metadata_documents_are_refused() {
    let w = world();
    // The id in the document must be its own URL.
    w.ports.http.route(
        CIMD_URL,
        200,
        &cimd_document("https://client.example.com/other", REDIRECT),
    );
    assert_oauth_error(&w.authorize(CIMD_URL, &[], None), 400, "invalid_client");
    // Redirects outside the allowlist.
    let url = "https://client.example.com/b.json";
    w.ports
        .http
        .route(url, 200, &cimd_document(url, "https://evil.example.com/cb"));
    assert_oauth_error(&w.authorize(url, &[], None), 400, "invalid_client");
    // Too large.
    let url = "https://client.example.com/big.json";
    let big =
        json!({"client_id": url, "redirect_uris": [REDIRECT], "client_name": "x".repeat(6000)});
    w.ports.http.route(url, 200, &big.to_string());
    assert_oauth_error(&w.authorize(url, &[], None), 400, "invalid_client");
    // Private or local hosts are never fetched.
    for url in [
        "https://127.0.0.1/c.json",
        "https://localhost/c.json",
        "https://intranet/c.json",
    ] {
        assert_oauth_error(&w.authorize(url, &[], None), 400, "invalid_client");
        assert_eq!(w.ports.http.count(url), 0);
    }
    // Fetch limits are passed to the shell.
    let requests = w.ports.http.requests.borrow();
    assert!(
        requests
            .iter()
            .all(|r| r.max_response_bytes == 5 * 1024 && r.timeout_ms <= 5_000)
    );
}

// ---------------------------------------------------------------------------------------------
// Metadata, CORS, health, routing

#[test]
fn metadata_documents_name_the_mcp_url_and_s256_only() {
    let w = world();
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let prm = body_json(&w.respond(request(Method::Get, path, &[], "")));
        assert_eq!(prm["resource"], MCP);
        assert_eq!(prm["authorization_servers"], json!([BASE]));
    }
    let asm = body_json(&w.respond(request(
        Method::Get,
        "/.well-known/oauth-authorization-server",
        &[],
        "",
    )));
    assert_eq!(asm["issuer"], BASE);
    assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(asm["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        asm["registration_endpoint"],
        "https://edge.example.com/register"
    );
}

#[test]
fn mcp_without_a_token_gets_401_with_resource_metadata() {
    let w = world();
    for path in ["/mcp", "/"] {
        let response = w.respond(request(Method::Post, path, &[], "{}"));
        assert_eq!(response.status, 401);
        assert_eq!(
            response.headers.get("WWW-Authenticate"),
            Some(
                r#"Bearer resource_metadata="https://edge.example.com/.well-known/oauth-protected-resource/mcp""#
            )
        );
    }
    let response = w.respond(request(
        Method::Get,
        "/mcp",
        &[("Authorization", "Bearer made-up")],
        "",
    ));
    assert_eq!(response.status, 401);
    assert_eq!(w.respond(request(Method::Put, "/mcp", &[], "")).status, 405);
}

#[test]
fn preflight_answers_only_allowed_origins() {
    let w = world();
    let allowed = w.respond(request(
        Method::Options,
        "/mcp",
        &[("Origin", "https://claude.ai")],
        "",
    ));
    assert_eq!(allowed.status, 204);
    assert_eq!(
        allowed.headers.get("Access-Control-Allow-Origin"),
        Some("https://claude.ai")
    );
    assert!(
        allowed
            .headers
            .get("Access-Control-Allow-Headers")
            .unwrap()
            .contains("Mcp-Session-Id")
    );
    let denied = w.respond(request(
        Method::Options,
        "/mcp",
        &[("Origin", "https://evil.example.com")],
        "",
    ));
    assert_eq!(denied.headers.get("Access-Control-Allow-Origin"), None);
}

#[test]
fn a_preflight_allows_the_2026_headers_and_only_param_headers_of_their_shape() {
    let w = world();
    let many: Vec<String> = (0..20).map(|i| format!("Mcp-Param-P{i}")).collect();
    let requested = format!(
        "content-type, mcp-method, mcp-name, Mcp-Param-Server-Id, X-Evil, mcp-param-, \
         mcp-param-a b, Mcp-Param-{}, {}",
        "x".repeat(60),
        many.join(", ")
    );
    let answer = w.respond(request(
        Method::Options,
        "/mcp",
        &[
            ("Origin", "https://claude.ai"),
            ("Access-Control-Request-Headers", &requested),
        ],
        "",
    ));
    let allowed: Vec<String> = answer
        .headers
        .get("Access-Control-Allow-Headers")
        .unwrap()
        .split(", ")
        .map(str::to_ascii_lowercase)
        .collect();
    for name in [
        "mcp-method",
        "mcp-name",
        "mcp-param-server-id",
        "authorization",
    ] {
        assert!(allowed.iter().any(|a| a == name), "{name} in {allowed:?}");
    }
    // Not of the shape, too long, or past the bound: left out.
    for name in [
        "x-evil",
        "mcp-param-",
        "mcp-param-a b",
        "mcp-param-p15",
        "mcp-param-p19",
    ] {
        assert!(!allowed.iter().any(|a| a == name), "{name} in {allowed:?}");
    }
    assert!(!allowed.iter().any(|a| a.len() > 64), "{allowed:?}");
    let params = allowed
        .iter()
        .filter(|a| a.starts_with("mcp-param-"))
        .count();
    assert_eq!(params, 16, "{allowed:?}");
}

#[test]
fn forwarded_answers_get_our_cors_headers_not_the_origins() {
    let w = world();
    let (_, access, _) = w.tokens();
    let Outcome::Forward(forward) = w.mcp(&access) else {
        panic!()
    };
    let upstream: Headers = [
        ("Content-Type", "text/event-stream"),
        ("Access-Control-Allow-Origin", "*"),
        ("Mcp-Session-Id", "s1"),
        ("Connection", "keep-alive"),
    ]
    .into_iter()
    .collect();
    let headers = forward.response_headers(&upstream);
    assert_eq!(
        headers.get("Access-Control-Allow-Origin"),
        Some("https://claude.ai")
    );
    assert_eq!(headers.get("Mcp-Session-Id"), Some("s1"));
    assert_eq!(headers.get("Connection"), None);
    let bad = forward.bad_gateway();
    assert_eq!(bad.status, 502);
    assert_eq!(
        bad.headers.get("Access-Control-Allow-Origin"),
        Some("https://claude.ai")
    );
}

#[test]
fn kv_document_extends_cors_and_redirects() {
    let w = world();
    let doc = json!({"version": 1, "cors_origins": ["https://app.example.com"], "redirect_uris": ["https://app.example.com/cb"]});
    block_on(
        w.ports
            .kv
            .put(contract::edge::KV_KEY, &doc.to_string(), None),
    )
    .unwrap();
    let health = body_json(&w.respond(request(Method::Get, "/health", &[], "")));
    assert_eq!(health["status"], "ok");
    assert_eq!(health["config_document"]["state"], "applied");
    let preflight = w.respond(request(
        Method::Options,
        "/mcp",
        &[("Origin", "https://app.example.com")],
        "",
    ));
    assert_eq!(
        preflight.headers.get("Access-Control-Allow-Origin"),
        Some("https://app.example.com")
    );
    let registered = w.register_with(json!({"redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "none"}));
    assert_eq!(registered.status, 201);
}

#[test]
fn invalid_kv_document_is_reported_and_ignored() {
    let w = world();
    let doc = json!({"version": 1, "cors_origins": ["https://app.example.com", "http://plain.example.com"]});
    block_on(
        w.ports
            .kv
            .put(contract::edge::KV_KEY, &doc.to_string(), None),
    )
    .unwrap();
    let handled = w.handle(request(Method::Get, "/health", &[], ""));
    assert!(
        handled
            .log
            .iter()
            .any(|l| l.level == Level::Warn && l.message.contains("invalid"))
    );
    let Outcome::Respond(health) = handled.outcome else {
        panic!()
    };
    let health = body_json(&health);
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["config_document"]["state"], "invalid");
    assert!(
        health["config_document"]["error"]
            .as_str()
            .unwrap()
            .contains("plain.example.com")
    );
    let preflight = w.respond(request(
        Method::Options,
        "/mcp",
        &[("Origin", "https://app.example.com")],
        "",
    ));
    assert_eq!(preflight.headers.get("Access-Control-Allow-Origin"), None);
    let builtin = w.respond(request(
        Method::Options,
        "/mcp",
        &[("Origin", "https://chatgpt.com")],
        "",
    ));
    assert_eq!(
        builtin.headers.get("Access-Control-Allow-Origin"),
        Some("https://chatgpt.com")
    );
}

#[test]
fn kv_document_is_cached_briefly_per_isolate() {
    let w = world();
    assert_eq!(
        body_json(&w.respond(request(Method::Get, "/health", &[], "")))["config_document"]["state"],
        "missing"
    );
    let doc = json!({"version": 1});
    block_on(
        w.ports
            .kv
            .put(contract::edge::KV_KEY, &doc.to_string(), None),
    )
    .unwrap();
    assert_eq!(
        body_json(&w.respond(request(Method::Get, "/health", &[], "")))["config_document"]["state"],
        "missing"
    );
    w.advance(30);
    assert_eq!(
        body_json(&w.respond(request(Method::Get, "/health", &[], "")))["config_document"]["state"],
        "applied"
    );
}

#[test]
fn kv_failure_is_a_503_and_logged() {
    let w = world();
    w.ports.kv.broken.set(true);
    let handled = w.handle(request(
        Method::Post,
        "/mcp",
        &[("Authorization", "Bearer x")],
        "",
    ));
    let Outcome::Respond(response) = handled.outcome else {
        panic!()
    };
    assert_eq!(response.status, 503);
    assert!(!handled.log.is_empty());
}

#[test]
fn unknown_paths_are_404() {
    let w = world();
    assert_eq!(
        w.respond(request(Method::Get, "/admin", &[], "")).status,
        404
    );
    assert_eq!(
        w.respond(request(Method::Get, "/mcp/extra", &[], ""))
            .status,
        404
    );
    assert_eq!(
        w.respond(request(Method::Get, "/health", &[], "")).status,
        200
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn config_derives_access_endpoints_from_the_team_domain() {
    let c = config();
    assert_eq!(c.mcp_url, MCP);
    assert_eq!(c.access.issuer, ISSUER);
    assert_eq!(
        c.access.authorization_url,
        format!("{ISSUER}/authorization")
    );
    assert_eq!(c.access.token_url, format!("{ISSUER}/token"));
    assert_eq!(c.access.jwks_url, format!("{ISSUER}/jwks"));
    assert_eq!(c.lifetimes, Lifetimes::default());
    assert!(!format!("{c:?}").contains("access-secret"));
}

#[test]
fn config_rejects_missing_and_unsafe_values() {
    let base = [
        (config::vars::PUBLIC_URL, "https://edge.example.com"),
        (config::vars::ORIGIN_URL, "http://mcp-gateway:8002"),
        (config::vars::SERVICE_TOKEN, "t"),
        (
            config::vars::ENCRYPTION_KEY,
            "an encryption key of at least 32 chars",
        ),
        (
            config::vars::ACCESS_TEAM_DOMAIN,
            "team.cloudflareaccess.com",
        ),
        (config::vars::ACCESS_CLIENT_ID, "id"),
        (config::vars::ACCESS_CLIENT_SECRET, "secret"),
    ];
    let with = |name: &str, value: Option<&str>| {
        EdgeConfig::from_vars(|n| {
            if n == name {
                return value.map(str::to_owned);
            }
            base.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        })
    };
    assert!(with("none", None).is_ok());
    assert!(with(config::vars::SERVICE_TOKEN, None).is_err());
    assert!(with(config::vars::PUBLIC_URL, Some("http://edge.example.com")).is_err());
    assert!(
        with(
            config::vars::PUBLIC_URL,
            Some("https://edge.example.com/sub")
        )
        .is_err()
    );
    assert!(with(config::vars::ENCRYPTION_KEY, Some("short")).is_err());
    assert!(with(config::vars::ACCESS_TOKEN_TTL, Some("soon")).is_err());
    assert!(
        with(
            config::vars::MCP_URL,
            Some("https://edge.example.com/other")
        )
        .is_err()
    );
    // Local test set-ups may use http on loopback, and point Access elsewhere.
    let local = with(
        config::vars::ACCESS_JWKS_URL,
        Some("http://127.0.0.1:9000/jwks"),
    )
    .unwrap();
    assert_eq!(local.access.jwks_url, "http://127.0.0.1:9000/jwks");
    assert_eq!(
        with(config::vars::REFRESH_GRACE, Some("5"))
            .unwrap()
            .lifetimes
            .refresh_grace,
        5
    );
}

#[test]
fn kv_holds_no_token_code_secret_or_email_in_the_clear() {
    let w = world();
    let registered = w.register_with(
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post"}),
    );
    let secret = body_json(&registered)["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (client_id, code) = w.login();
    let answer = body_json(&w.redeem(&client_id, &code));
    let access = answer["access_token"].as_str().unwrap();
    let refresh = answer["refresh_token"].as_str().unwrap();
    let map = w.ports.kv.map.borrow();
    assert!(!map.is_empty());
    for (key, (value, _)) in map.iter() {
        for plain in [
            secret.as_str(),
            code.as_str(),
            access,
            refresh,
            "alice@example.com",
        ] {
            assert!(
                !key.contains(plain) && !value.contains(plain),
                "{key} holds a plaintext value"
            );
        }
    }
}

#[test]
fn metadata_document_client_completes_the_token_flow() {
    let w = world();
    w.ports
        .http
        .route(CIMD_URL, 200, &cimd_document(CIMD_URL, REDIRECT));
    let (location, cookie) = w.to_access(CIMD_URL);
    w.upstream_answers(&location, |nonce| {
        id_token(Key::Rsa, Some("rsa1"), nonce, |_| {})
    });
    let back = w.callback(&location, Some(&cookie));
    let code = param(back.headers.get("Location").unwrap(), "code").unwrap();
    // Long after the document's cache expired, the client still redeems and refreshes.
    let answer = w.redeem(CIMD_URL, &code);
    assert_eq!(answer.status, 200, "{}", body_json(&answer));
    w.advance(2 * 3600);
    let refresh = body_json(&answer)["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(w.refresh(CIMD_URL, &refresh).status, 200);
    // Another URL client cannot use its tokens.
    assert_oauth_error(
        &w.refresh("https://other.example.com/c.json", &refresh),
        400,
        "invalid_grant",
    );
}

#[test]
fn refused_counter_or_spent_mark_writes_do_not_fail_the_request() {
    let w = world();
    let (client_id, _, refresh) = w.tokens();
    w.ports
        .kv
        .refuse_writes
        .borrow_mut()
        .extend(["ratelimit:".to_owned(), crate::store::refresh_key(&refresh)]);
    let handled = w.handle(request(
        Method::Post,
        "/register",
        &[],
        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}).to_string(),
    ));
    assert!(matches!(&handled.outcome, Outcome::Respond(r) if r.status == 201));
    assert!(handled.log.iter().any(|l| l.level == Level::Warn));
    // The spent mark on the old refresh token is refused (as when a racing refresh just wrote
    // it); the refresh still succeeds.
    let handled = w.handle(request(
        Method::Post,
        "/token",
        &[],
        &form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", &refresh),
        ]),
    ));
    assert!(matches!(&handled.outcome, Outcome::Respond(r) if r.status == 200));
    assert!(
        handled
            .log
            .iter()
            .any(|l| l.message.contains("not marked spent"))
    );
}

#[test]
fn rotated_upstream_key_is_picked_up_after_the_negative_cache() {
    let w = world();
    let jwks_url = format!("{ISSUER}/jwks");
    let all: Value = serde_json::from_str(include_str!("../tests/keys/public-jwks.json")).unwrap();
    let mut rsa = all["rsa"].clone();
    rsa["kid"] = "rsa1".into();
    let mut ec = all["ec"].clone();
    ec["kid"] = "ec-new".into();
    // Before the rotation the provider publishes only the RSA key.
    w.ports
        .http
        .route(&jwks_url, 200, &json!({"keys": [rsa.clone()]}).to_string());
    assert_refused(login_with(&w, |nonce| {
        id_token(Key::Ec, Some("ec-new"), nonce, |_| {})
    }));
    w.ports
        .http
        .route(&jwks_url, 200, &json!({"keys": [rsa, ec]}).to_string());
    // Still remembered as unknown for a minute…
    assert_refused(login_with(&w, |nonce| {
        id_token(Key::Ec, Some("ec-new"), nonce, |_| {})
    }));
    assert_eq!(w.ports.http.count(&jwks_url), 1);
    // …then fetched again and accepted.
    w.advance(61);
    let answer = login_with(&w, |nonce| {
        id_token(Key::Ec, Some("ec-new"), nonce, |c| {
            c["exp"] = (START + 400).into()
        })
    });
    assert_eq!(answer.status, 302, "{}", body_json(&answer));
    assert_eq!(w.ports.http.count(&jwks_url), 2);
}

#[test]
fn jwks_outage_is_a_bad_gateway() {
    let w = world();
    w.ports.http.route(&format!("{ISSUER}/jwks"), 500, "oops");
    let answer = login_with(&w, |nonce| id_token(Key::Rsa, Some("rsa1"), nonce, |_| {}));
    assert_eq!(answer.status, 502);
}

#[test]
fn metadata_document_fetches_count_against_the_address_limit() {
    let w = world();
    for i in 0..10 {
        let url = format!("https://client.example.com/{i}.json");
        w.ports.http.route(&url, 404, "");
        assert_oauth_error(&w.authorize(&url, &[], None), 400, "invalid_client");
    }
    let url = "https://client.example.com/ok.json";
    w.ports.http.route(url, 200, &cimd_document(url, REDIRECT));
    let handled = w.handle(request(
        Method::Get,
        &format!(
            "/authorize?{}",
            form(&[("client_id", url), ("response_type", "code")])
        ),
        &[],
        "",
    ));
    assert!(matches!(&handled.outcome, Outcome::Respond(r) if r.status == 400));
    assert!(handled.log.iter().any(|l| l.message.contains("rate limit")));
    assert_eq!(w.ports.http.count(url), 0);
}

// ---------------------------------------------------------------------------------------------
// Per-server endpoints (`/servers/{name}/mcp`)

const WEATHER: &str = "https://edge.example.com/servers/weather/mcp";

impl World {
    /// A full login asking for `resource` at `/authorize` and `/token`, as a client that did
    /// discovery on that endpoint does: (client id, access token, refresh token).
    fn tokens_for(&self, resource: &str) -> (String, String, String) {
        let client_id = self.register();
        let page = self.authorize(&client_id, &[("resource", resource)], None);
        assert_eq!(page.status, 200, "{}", body_json(&page));
        let (sealed, csrf) = World::consent_parts(&page);
        let upstream = self.approve(&sealed, &csrf);
        assert_eq!(upstream.status, 302, "{}", body_json(&upstream));
        let location = upstream.headers.get("Location").unwrap().to_owned();
        self.upstream_answers(&location, |nonce| {
            id_token(Key::Rsa, Some("rsa1"), nonce, |_| {})
        });
        let back = self.callback(&location, Some(&login_cookie(&upstream)));
        assert_eq!(back.status, 302, "{}", body_json(&back));
        let code = param(back.headers.get("Location").unwrap(), "code").unwrap();
        let answer = self.token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("resource", resource),
        ]);
        assert_eq!(answer.status, 200, "{}", body_json(&answer));
        let body = body_json(&answer);
        (
            client_id,
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    fn post_mcp(&self, path: &str, access_token: &str) -> Outcome {
        let bearer = format!("Bearer {access_token}");
        self.handle(request(
            Method::Post,
            path,
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
                ("X-MCPbox-User-Email", "mallory@example.com"),
                ("x-mcpbox-service-token", "guess"),
            ],
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        ))
        .outcome
    }
}

fn challenge_of(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Respond(response) if response.status == 401 => {
            response.headers.get("WWW-Authenticate").unwrap().to_owned()
        }
        other => panic!("expected a 401, got {other:?}"),
    }
}

#[test]
fn a_per_server_endpoint_is_its_own_protected_resource() {
    let w = world();
    let response = w.respond(request(Method::Post, "/servers/weather/mcp", &[], "{}"));
    assert_eq!(response.status, 401);
    assert_eq!(
        response.headers.get("WWW-Authenticate"),
        Some(
            r#"Bearer resource_metadata="https://edge.example.com/.well-known/oauth-protected-resource/servers/weather/mcp""#
        )
    );
    let metadata = w.respond(request(
        Method::Get,
        "/.well-known/oauth-protected-resource/servers/weather/mcp",
        &[],
        "",
    ));
    assert_eq!(metadata.status, 200);
    let body = body_json(&metadata);
    assert_eq!(body["resource"], WEATHER);
    assert_eq!(body["authorization_servers"], json!([BASE]));
    // `/mcp`'s own metadata is unchanged.
    let all = w.respond(request(
        Method::Get,
        "/.well-known/oauth-protected-resource/mcp",
        &[],
        "",
    ));
    assert_eq!(body_json(&all)["resource"], MCP);
    assert_eq!(
        w.respond(request(
            Method::Post,
            "/.well-known/oauth-protected-resource/servers/weather/mcp",
            &[],
            ""
        ))
        .status,
        405
    );
    assert_eq!(
        w.respond(request(Method::Put, "/servers/weather/mcp", &[], ""))
            .status,
        405
    );
    // Paths that name no server are not endpoints: 404, never forwarded, token or not.
    let (_, access, _) = w.tokens();
    for path in [
        "/servers/Weather/mcp",
        "/servers/mcpbox/mcp",
        "/servers/a__b/mcp",
        "/servers//mcp",
        "/servers/a/b/mcp",
        "/servers/a%2Fb/mcp",
        "/servers/weather",
        "/servers/weather/mcp/x",
        &format!("/servers/{}/mcp", "a".repeat(31)),
    ] {
        assert_eq!(
            w.respond(request(Method::Post, path, &[], "{}")).status,
            404,
            "{path}"
        );
        assert!(
            matches!(w.post_mcp(path, &access), Outcome::Respond(r) if r.status == 404),
            "{path}"
        );
        let metadata = format!("/.well-known/oauth-protected-resource{path}");
        assert_eq!(
            w.respond(request(Method::Get, &metadata, &[], "")).status,
            404,
            "{metadata}"
        );
    }
}

#[test]
fn a_token_is_valid_exactly_for_the_endpoint_it_was_issued_for() {
    let w = world();
    let (client_id, weather, refresh) = w.tokens_for(WEATHER);
    let Outcome::Forward(forward) = w.post_mcp("/servers/weather/mcp?x=1", &weather) else {
        panic!("expected a forward");
    };
    assert_eq!(
        forward.url,
        "http://mcp-gateway:8002/servers/weather/mcp?x=1"
    );
    let h = &forward.headers;
    assert_eq!(
        h.get(contract::headers::USER_EMAIL),
        Some("alice@example.com")
    );
    assert_eq!(
        h.get(contract::headers::SERVICE_TOKEN),
        Some("service-token-value")
    );
    assert_eq!(h.get("Authorization"), None);
    for name in contract::headers::IDENTITY_HEADERS {
        assert_eq!(
            h.iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .count(),
            1
        );
    }
    // One server's token reaches neither `/mcp` nor another server; each 401 points at the
    // metadata of the endpoint asked for.
    let refused = w.post_mcp("/mcp", &weather);
    assert!(challenge_of(&refused).contains("token is for another resource"));
    assert!(challenge_of(&refused).contains("oauth-protected-resource/mcp\""));
    let refused = w.post_mcp("/servers/news/mcp", &weather);
    assert!(challenge_of(&refused).contains("oauth-protected-resource/servers/news/mcp\""));
    assert!(challenge_of(&refused).contains("token is for another resource"));
    // And `/mcp`'s token is not one server's.
    let (_, all, _) = w.tokens();
    assert!(matches!(w.post_mcp("/mcp", &all), Outcome::Forward(_)));
    assert!(challenge_of(&w.post_mcp("/servers/weather/mcp", &all)).contains("another resource"));
    // A refreshed token keeps its resource.
    let refreshed = w.refresh(&client_id, &refresh);
    assert_eq!(refreshed.status, 200, "{}", body_json(&refreshed));
    let renewed = body_json(&refreshed)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(matches!(
        w.post_mcp("/servers/weather/mcp", &renewed),
        Outcome::Forward(_)
    ));
    assert!(is_unauthorized(&w.post_mcp("/mcp", &renewed)));
}

#[test]
fn only_this_workers_server_endpoints_are_resources() {
    let w = world();
    let client_id = w.register();
    for resource in [
        "https://other.example.com/servers/weather/mcp",
        "https://edge.example.com/servers/Bad-Name/mcp",
        "https://edge.example.com/servers/mcpbox/mcp",
        "https://edge.example.com/servers/weather/mcp?x=1",
        "https://edge.example.com/servers/weather",
        "https://edge.example.com/servers/a/b/mcp",
        "https://edge.example.com/",
        "https://edge.example.com",
    ] {
        assert_redirect_error(
            &w.authorize(&client_id, &[("resource", resource)], None),
            "invalid_target",
        );
    }
    // A trailing slash is the same resource, as for `/mcp`; the token is for the canonical URL.
    let (_, access, _) = w.tokens_for("https://edge.example.com/servers/weather/mcp/");
    assert!(matches!(
        w.post_mcp("/servers/weather/mcp", &access),
        Outcome::Forward(_)
    ));
    // The code is bound to its resource: redeeming it for `/mcp` is refused (and spends it).
    let client_id = w.register();
    let page = w.authorize(&client_id, &[("resource", WEATHER)], None);
    assert_eq!(page.status, 200);
    let (sealed, csrf) = World::consent_parts(&page);
    let upstream = w.approve(&sealed, &csrf);
    let location = upstream.headers.get("Location").unwrap().to_owned();
    w.upstream_answers(&location, |nonce| {
        id_token(Key::Rsa, Some("rsa1"), nonce, |_| {})
    });
    let back = w.callback(&location, Some(&login_cookie(&upstream)));
    let code = param(back.headers.get("Location").unwrap(), "code").unwrap();
    let answer = w.token(&[
        ("grant_type", "authorization_code"),
        ("client_id", &client_id),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("resource", MCP),
    ]);
    assert_oauth_error(&answer, 400, "invalid_target");
}
