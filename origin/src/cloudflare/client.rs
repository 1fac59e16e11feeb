//! A typed client of the Cloudflare REST API v4: the calls the wizard makes, nothing else.
//!
//! Every answer is the v4 envelope `{success, errors, messages, result, result_info}`. Lists are
//! followed page by page (bounded). A 429 is retried after its `Retry-After` (at most
//! [`MAX_TRIES`] tries, at most [`MAX_WAIT`] per wait); other failures are returned as they are,
//! with Cloudflare's own `errors`, so the wizard can show them. A 403 names the permission the
//! token lacks for that endpoint ([`permission_for`], the one mapping).

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Tries per request when Cloudflare answers 429 (the first one included).
pub const MAX_TRIES: u32 = 4;
/// The longest wait honoured from a `Retry-After`.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// Pages followed at most per list (so a misbehaving API cannot keep us looping).
const MAX_PAGES: u32 = 100;
const PER_PAGE: u32 = 50;
/// Largest answer read (the biggest real one is a list page of tunnels or apps).
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

pub const DEFAULT_API_URL: &str = "https://api.cloudflare.com/client/v4";

/// One entry of the envelope's `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[schema(as = cloudflare::Message)]
pub struct CfMessage {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

/// Why a call failed, in terms a person can act on.
#[derive(Debug, Clone)]
pub enum CfError {
    /// The token is not valid (401, or Cloudflare's "Invalid API Token").
    InvalidToken {
        errors: Vec<CfMessage>,
    },
    /// 403: the token lacks the permission this endpoint needs.
    MissingPermission {
        permission: &'static str,
        endpoint: String,
        errors: Vec<CfMessage>,
    },
    NotFound {
        errors: Vec<CfMessage>,
    },
    /// Still 429 after [`MAX_TRIES`] tries.
    RateLimited {
        errors: Vec<CfMessage>,
    },
    /// Any other refusal (4xx, 5xx or `success: false`).
    Api {
        status: u16,
        errors: Vec<CfMessage>,
    },
    /// Cloudflare could not be reached, or the answer is not the v4 envelope.
    Transport(String),
}

impl CfError {
    pub fn errors(&self) -> &[CfMessage] {
        match self {
            CfError::InvalidToken { errors }
            | CfError::MissingPermission { errors, .. }
            | CfError::NotFound { errors }
            | CfError::RateLimited { errors }
            | CfError::Api { errors, .. } => errors,
            CfError::Transport(_) => &[],
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, CfError::NotFound { .. })
    }
}

fn joined(errors: &[CfMessage]) -> String {
    errors
        .iter()
        .map(|e| format!("{} (code {})", e.message, e.code))
        .collect::<Vec<_>>()
        .join("; ")
}

impl fmt::Display for CfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CfError::InvalidToken { errors } => write!(
                f,
                "Cloudflare does not accept this API token: {}",
                joined(errors)
            ),
            CfError::MissingPermission {
                permission,
                endpoint,
                ..
            } => write!(
                f,
                "the API token lacks the permission \"{permission}\" (Cloudflare refused {endpoint})"
            ),
            CfError::NotFound { errors } => write!(f, "not found: {}", joined(errors)),
            CfError::RateLimited { errors } => write!(
                f,
                "Cloudflare kept answering 429 (rate limited) after {MAX_TRIES} tries: {}",
                joined(errors)
            ),
            CfError::Api { status, errors } => {
                write!(f, "Cloudflare answered {status}: {}", joined(errors))
            }
            CfError::Transport(message) => write!(f, "{message}"),
        }
    }
}

/// The permission (as Cloudflare's token editor names it) an endpoint needs. `path` is the path
/// below the base URL, e.g. `/accounts/abc/cfd_tunnel`.
pub fn permission_for(path: &str) -> &'static str {
    let rest = path
        .strip_prefix("/accounts/")
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, rest)| rest);
    match rest {
        None if path.starts_with("/user/tokens") => "API Tokens Read",
        None => "Account Settings Read",
        Some(rest) if rest.starts_with("cfd_tunnel") => "Cloudflare Tunnel Edit",
        Some(rest) if rest.starts_with("connectivity/") => "Connectivity Directory Admin",
        Some(rest) if rest.starts_with("storage/kv") => "Workers KV Storage Edit",
        Some(rest) if rest.starts_with("workers/") => "Workers Scripts Edit",
        Some(rest) if rest.starts_with("access/organizations") => {
            "Access: Organizations, Identity Providers, and Groups Read"
        }
        Some(rest) if rest.starts_with("access/") => "Access: Apps and Policies Edit",
        Some(_) => "Account Settings Read",
    }
}

/// A request body.
pub enum Body {
    None,
    Json(Value),
    /// A multipart/form-data body built by [`multipart`].
    Multipart {
        boundary: String,
        bytes: Vec<u8>,
    },
}

/// One part of a multipart body.
pub struct Part<'a> {
    pub name: &'a str,
    pub filename: Option<&'a str>,
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

/// A multipart/form-data body (RFC 7578). Written by hand: it is four header lines per part,
/// and reqwest's multipart feature would add crates for it.
pub fn multipart(parts: &[Part<'_>]) -> Body {
    let boundary = format!("mcpbox-{}", uuid::Uuid::new_v4().simple());
    let mut bytes = Vec::new();
    for part in parts {
        bytes.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match part.filename {
            Some(filename) => bytes.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"; filename=\"{filename}\"\r\n",
                    part.name
                )
                .as_bytes(),
            ),
            None => bytes.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{}\"\r\n", part.name).as_bytes(),
            ),
        }
        bytes.extend_from_slice(format!("Content-Type: {}\r\n\r\n", part.content_type).as_bytes());
        bytes.extend_from_slice(part.bytes);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Body::Multipart { boundary, bytes }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<CfMessage>,
    #[serde(default)]
    result: Value,
    result_info: Option<ResultInfo>,
}

#[derive(Deserialize)]
struct ResultInfo {
    #[serde(default)]
    page: u32,
    #[serde(default)]
    total_pages: Option<u32>,
}

/// A client for one API token. `Debug` never shows the token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

impl Client {
    pub fn new(base: &str, token: &str) -> Result<Client, CfError> {
        // reqwest is built without a TLS provider of its own (see external::Pool).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("MCPbox/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| CfError::Transport(format!("the HTTP client cannot be built: {err}")))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    /// The plain HTTP client (for the probe of the Worker).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// One call, 429s retried; the envelope's `result` and `result_info` on success.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: &Body,
    ) -> Result<(Value, Option<ResultInfo>), CfError> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|err| CfError::Transport(format!("bad Cloudflare API URL: {err}")))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(&self.token);
            request = match body {
                Body::None => request,
                Body::Json(value) => request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(value.to_string()),
                Body::Multipart { boundary, bytes } => request
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(bytes.clone()),
            };
            let response = request.send().await.map_err(|err| {
                CfError::Transport(format!(
                    "Cloudflare could not be reached ({method} {path}): {err}"
                ))
            })?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let bytes = read_bounded(response).await?;
            let envelope = serde_json::from_slice::<Envelope>(&bytes).ok();
            let errors = envelope
                .as_ref()
                .map(|e| e.errors.clone())
                .unwrap_or_default();
            if status == StatusCode::TOO_MANY_REQUESTS {
                if tries >= MAX_TRIES {
                    return Err(CfError::RateLimited { errors });
                }
                let wait = Duration::from_secs(retry_after.unwrap_or(1)).min(MAX_WAIT);
                tracing::info!(path, ?wait, "Cloudflare rate limit; waiting");
                tokio::time::sleep(wait).await;
                continue;
            }
            return match (status, envelope) {
                (status, Some(envelope)) if status.is_success() && envelope.success => {
                    Ok((envelope.result, envelope.result_info))
                }
                (StatusCode::UNAUTHORIZED, _) => Err(CfError::InvalidToken { errors }),
                (_, _) if errors.iter().any(|e| e.code == 1000 || e.code == 9109) => {
                    Err(CfError::InvalidToken { errors })
                }
                (StatusCode::FORBIDDEN, _) => Err(CfError::MissingPermission {
                    permission: permission_for(path),
                    endpoint: format!("{method} {path}"),
                    errors,
                }),
                (StatusCode::NOT_FOUND, _) => Err(CfError::NotFound { errors }),
                (status, Some(_)) => Err(CfError::Api {
                    status: status.as_u16(),
                    errors,
                }),
                (status, None) => Err(CfError::Transport(format!(
                    "Cloudflare answered {status} to {method} {path} without the API's JSON envelope"
                ))),
            };
        }
    }

    /// `result` decoded as `T`.
    pub async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: &Body,
    ) -> Result<T, CfError> {
        let (result, _) = self.call(method.clone(), path, query, body).await?;
        serde_json::from_value(result).map_err(|err| {
            CfError::Transport(format!(
                "Cloudflare's answer to {method} {path} has an unexpected shape: {err}"
            ))
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CfError> {
        self.request(Method::GET, path, &[], &Body::None).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: Value) -> Result<T, CfError> {
        self.request(Method::POST, path, &[], &Body::Json(body))
            .await
    }

    pub async fn put<T: DeserializeOwned>(&self, path: &str, body: Value) -> Result<T, CfError> {
        self.request(Method::PUT, path, &[], &Body::Json(body))
            .await
    }

    /// DELETE; a 404 counts as done (the thing is gone either way).
    pub async fn delete(&self, path: &str, query: &[(&str, String)]) -> Result<(), CfError> {
        match self.call(Method::DELETE, path, query, &Body::None).await {
            Ok(_) | Err(CfError::NotFound { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Every item of a paged list, following `result_info` (at most [`MAX_PAGES`] pages).
    pub async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>, CfError> {
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut query: Vec<(&str, String)> = query.to_vec();
            query.push(("page", page.to_string()));
            query.push(("per_page", PER_PAGE.to_string()));
            let (result, info) = self.call(Method::GET, path, &query, &Body::None).await?;
            let batch: Vec<T> = serde_json::from_value(result).map_err(|err| {
                CfError::Transport(format!(
                    "Cloudflare's list {path} has an unexpected shape: {err}"
                ))
            })?;
            let empty = batch.is_empty();
            items.extend(batch);
            let more = match info {
                Some(ResultInfo {
                    total_pages: Some(total),
                    page: current,
                }) => current.max(page) < total,
                _ => false,
            };
            if empty || !more {
                return Ok(items);
            }
        }
        Ok(items)
    }

    /// A permission probe: one small page of a list; only whether it is allowed matters.
    pub async fn probe(&self, path: &str) -> Result<(), CfError> {
        self.call(
            Method::GET,
            path,
            &[("per_page", "5".to_owned())],
            &Body::None,
        )
        .await
        .map(|_| ())
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, CfError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| CfError::Transport(format!("reading Cloudflare's answer failed: {err}")))?
    {
        if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(CfError::Transport(
                "Cloudflare's answer is larger than expected".into(),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

// The shapes the wizard reads. Unknown fields are ignored (Cloudflare adds fields over time).

#[derive(Debug, Clone, Deserialize)]
pub struct TokenStatus {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub status: String,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = cloudflare::Account)]
pub struct Account {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Organization {
    #[serde(default)]
    pub auth_domain: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tunnel {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub connections: Vec<Connection>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub deleted_at: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

/// One cloudflared connection, as the API lists it (and `/api/cloudflare/tunnel` shows it).
#[derive(Debug, Clone, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[schema(as = cloudflare::Connection)]
pub struct Connection {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub colo_name: String,
    #[serde(default)]
    pub origin_ip: String,
    #[serde(default)]
    pub opened_at: String,
    #[serde(default)]
    pub client_version: String,
    #[serde(default)]
    pub is_pending_reconnect: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VpcService {
    pub service_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub host: Value,
    #[serde(default)]
    pub http_port: Option<u16>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KvNamespace {
    pub id: String,
    #[serde(default)]
    pub title: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Script {
    pub id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Subdomain {
    #[serde(default)]
    pub subdomain: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AccessApp {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub saas_app: Option<SaasApp>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SaasApp {
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AccessPolicy {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub include: Vec<Value>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use axum::Router;
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use serde_json::json;

    use super::*;

    /// A tiny stand-in for the API on 127.0.0.1:0, for the client's own rules only (the full
    /// fake lives in tests/edge).
    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/client/v4")
    }

    fn ok(result: Value) -> axum::Json<Value> {
        axum::Json(json!({"success": true, "errors": [], "messages": [], "result": result}))
    }

    #[tokio::test]
    async fn lists_follow_every_page() {
        async fn accounts(Query(q): Query<Vec<(String, String)>>) -> axum::Json<Value> {
            let page: u32 = q
                .iter()
                .find(|(k, _)| k == "page")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap();
            let result: Vec<Value> = match page {
                1 => vec![json!({"id": "a1", "name": "One"}), json!({"id": "a2"})],
                2 => vec![json!({"id": "a3", "name": "Three"})],
                _ => vec![],
            };
            axum::Json(
                json!({"success": true, "errors": [], "messages": [], "result": result,
                "result_info": {"page": page, "per_page": 2, "count": 2, "total_count": 3, "total_pages": 2}}),
            )
        }
        let base = serve(Router::new().route("/client/v4/accounts", get(accounts))).await;
        let client = Client::new(&base, "t").unwrap();
        let accounts: Vec<Account> = client.list("/accounts", &[]).await.unwrap();
        let ids: Vec<_> = accounts.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["a1", "a2", "a3"]);
    }

    #[tokio::test]
    async fn a_429_is_retried_after_retry_after_and_bounded() {
        #[derive(Clone)]
        struct Hits(Arc<AtomicU32>, u32);
        async fn limited(State(Hits(hits, fail)): State<Hits>) -> axum::response::Response {
            let n = hits.fetch_add(1, Ordering::SeqCst);
            if n < fail {
                let mut headers = HeaderMap::new();
                headers.insert("retry-after", "0".parse().unwrap());
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    headers,
                    axum::Json(json!({"success": false, "errors": [{"code": 10429, "message": "slow down"}], "messages": [], "result": null})),
                )
                    .into_response()
            } else {
                ok(json!({"id": "tok", "status": "active"})).into_response()
            }
        }
        // Two 429s, then success: the same request is sent again and succeeds.
        let hits = Arc::new(AtomicU32::new(0));
        let app = Router::new()
            .route("/client/v4/user/tokens/verify", get(limited))
            .with_state(Hits(hits.clone(), 2));
        let client = Client::new(&serve(app).await, "t").unwrap();
        let status: TokenStatus = client.get("/user/tokens/verify").await.unwrap();
        assert_eq!(status.status, "active");
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        // Always 429: given up after MAX_TRIES, with Cloudflare's message kept.
        let hits = Arc::new(AtomicU32::new(0));
        let app = Router::new()
            .route("/client/v4/user/tokens/verify", get(limited))
            .with_state(Hits(hits.clone(), u32::MAX));
        let client = Client::new(&serve(app).await, "t").unwrap();
        let err = client
            .get::<TokenStatus>("/user/tokens/verify")
            .await
            .unwrap_err();
        assert!(matches!(err, CfError::RateLimited { .. }), "{err:?}");
        assert!(err.to_string().contains("slow down"), "{err}");
        assert_eq!(hits.load(Ordering::SeqCst), MAX_TRIES);
    }

    #[tokio::test]
    async fn a_403_names_the_permission_and_a_401_the_token() {
        async fn denied() -> axum::response::Response {
            (
                StatusCode::FORBIDDEN,
                axum::Json(json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}]})),
            )
                .into_response()
        }
        async fn invalid() -> axum::response::Response {
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"success": false, "errors": [{"code": 1000, "message": "Invalid API Token"}]})),
            )
                .into_response()
        }
        async fn broken() -> axum::response::Response {
            (StatusCode::BAD_GATEWAY, "<html>bad gateway</html>").into_response()
        }
        let app = Router::new()
            .route("/client/v4/accounts/a/cfd_tunnel", get(denied))
            .route("/client/v4/user/tokens/verify", get(invalid))
            .route("/client/v4/accounts/a/workers/scripts", get(broken));
        let client = Client::new(&serve(app).await, "t").unwrap();
        let err = client.probe("/accounts/a/cfd_tunnel").await.unwrap_err();
        assert!(err.to_string().contains("Cloudflare Tunnel Edit"), "{err}");
        assert_eq!(err.errors()[0].code, 10000);
        let err = client
            .get::<TokenStatus>("/user/tokens/verify")
            .await
            .unwrap_err();
        assert!(matches!(err, CfError::InvalidToken { .. }), "{err:?}");
        assert!(err.to_string().contains("Invalid API Token"), "{err}");
        let err = client
            .probe("/accounts/a/workers/scripts")
            .await
            .unwrap_err();
        assert!(matches!(err, CfError::Transport(_)), "{err:?}");
        assert!(err.to_string().contains("502"), "{err}");
    }

    #[test]
    fn every_endpoint_maps_to_its_permission() {
        for (path, permission) in [
            ("/accounts", "Account Settings Read"),
            ("/accounts/a/cfd_tunnel/x/token", "Cloudflare Tunnel Edit"),
            (
                "/accounts/a/connectivity/directory/services",
                "Connectivity Directory Admin",
            ),
            (
                "/accounts/a/storage/kv/namespaces/n/bulk",
                "Workers KV Storage Edit",
            ),
            ("/accounts/a/workers/scripts/s", "Workers Scripts Edit"),
            ("/accounts/a/workers/subdomain", "Workers Scripts Edit"),
            (
                "/accounts/a/access/apps/x/policies",
                "Access: Apps and Policies Edit",
            ),
            (
                "/accounts/a/access/organizations",
                "Access: Organizations, Identity Providers, and Groups Read",
            ),
        ] {
            assert_eq!(permission_for(path), permission, "{path}");
        }
    }

    #[test]
    fn multipart_bodies_have_one_section_per_part() {
        let Body::Multipart { boundary, bytes } = multipart(&[
            Part {
                name: "metadata",
                filename: None,
                content_type: "application/json",
                bytes: b"{}",
            },
            Part {
                name: "index.js",
                filename: Some("index.js"),
                content_type: "application/javascript+module",
                bytes: b"export default {}",
            },
        ]) else {
            panic!("not multipart")
        };
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.matches(&format!("--{boundary}\r\n")).count(), 2);
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
        assert!(text.contains("name=\"index.js\"; filename=\"index.js\"\r\nContent-Type: application/javascript+module\r\n\r\nexport default {}\r\n"));
    }
}
