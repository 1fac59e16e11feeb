//! The tunnel listener (`--tunnel-listen`): `/mcp` and the per-server `/servers/{name}/mcp`
//! (`scoped`) for remote clients, reached only through the
//! Cloudflare Worker. Every request must carry the Worker's service token (constant-time
//! compare; a request with the right token is never throttled, failures are: past a few a
//! minute from one address they get 429 without a log line); the user's email comes from the
//! Worker's header.
//! The rules are re-checked here even though the Worker applies them (defence in depth):
//! a caller without an email may only initialise; callers with one are rate-limited per user by
//! the policy's `mcp_rate_limit_rpm` (`crate::ratelimit`'s limiter, bursts of a tenth of it, at
//! least 5; a 429 is a JSON-RPC error with `Retry-After` and the `RateLimit` headers). On
//! PostgreSQL the per-user bucket is `ratelimit::shared`'s, so the limit holds across replicas.
//!
//! The service token is `--service-token`'s, or the one the Remote wizard generated for the
//! Worker it deployed (stored encrypted; `cloudflare::tunnel_auth`); with neither, every request
//! is refused. Signed-in callers must also be on the email allowlists that are set: the
//! wizard's (the Access policy's, from the database) and `--remote-allowed-email`'s; with both,
//! on both. LOCAL_ONLY management tools are gated in `management` by `Caller::Remote`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use contract::headers::{SERVICE_TOKEN, USER_EMAIL};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::{Caller, McpAccess};
use crate::app::AppState;
use crate::auth::throttle::{Limit, LoginThrottle};
use crate::http::MAX_BODY_BYTES;
use crate::ratelimit::{Limiter, Rule, Verdict};

/// The shortest service token accepted (the Worker's is 32 random bytes in hex).
pub const SERVICE_TOKEN_MIN_LEN: usize = 32;
/// Failed service-token attempts logged per address per minute; later ones get 429 (the right
/// token still passes).
const TOKEN_FAILURES_PER_MINUTE: u32 = 10;
/// Remote users whose buckets are kept at most.
const USERS_CAP: usize = 10_000;

/// Who may call through the tunnel: exact addresses and `@domain` entries, lower-cased.
/// Empty allows every signed-in user (the Worker's Access policy is then the only filter).
#[derive(Debug, Clone, Default)]
pub struct EmailAllowlist(Arc<Vec<String>>);

impl EmailAllowlist {
    pub fn new(entries: &[String]) -> EmailAllowlist {
        EmailAllowlist(Arc::new(
            entries
                .iter()
                .map(|e| e.trim().to_ascii_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
        ))
    }

    /// `email` is already lower-case (see `email`).
    pub fn allows(&self, email: &str) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|entry| {
                if entry.starts_with('@') {
                    email.ends_with(entry.as_str())
                } else {
                    email == entry
                }
            })
    }
}

#[derive(Clone)]
struct Guard {
    state: AppState,
    /// `--service-token`, when given.
    token: Option<Arc<[u8]>>,
    allowlist: EmailAllowlist,
    failures: Arc<LoginThrottle>,
    limiter: Arc<Limiter<String>>,
}

/// `/mcp` and `/servers/{name}/mcp` behind the guard; nothing else is served on this listener.
pub fn router(
    state: AppState,
    service_token: Option<&str>,
    allowlist: EmailAllowlist,
    changes: tokio::sync::watch::Receiver<super::VisibleSet>,
) -> Router {
    let guard = Guard {
        state: state.clone(),
        token: service_token.map(|token| token.as_bytes().into()),
        allowlist,
        failures: Arc::new(LoginThrottle::new(
            Limit {
                max_failures: TOKEN_FAILURES_PER_MINUTE,
                window: Duration::from_secs(60),
            },
            // One shared key for every address: no per-key limit, or anyone could lock the
            // Worker out.
            Limit {
                max_failures: u32::MAX,
                window: Duration::from_secs(60),
            },
        )),
        limiter: Arc::new(Limiter::new(USERS_CAP)),
    };
    // The service token is the guard here: Host and Origin are whatever the tunnel and the
    // Worker forward, so those checks are off on this listener.
    let access = McpAccess {
        allowed_hosts: None,
        allowed_origins: None,
    };
    let requests = state.metrics.http_requests.clone();
    let mcp = super::router(state.clone(), &access, changes)
        .with_state(state)
        // route_layer: unknown paths are a plain 404, without touching the guard.
        .route_layer(axum::middleware::from_fn_with_state(guard, check));
    crate::http::with_layers(mcp, &requests)
}

async fn check(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let now = Instant::now();
    let presented = request
        .headers()
        .get(SERVICE_TOKEN)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let wizard = match crate::cloudflare::tunnel_auth(&guard.state).await {
        Ok(auth) => auth,
        Err(err) => return err.into_response(),
    };
    // Either token is accepted; an empty one never is (no token configured means no match).
    let matches = |expected: &[u8]| !expected.is_empty() && bool::from(presented.ct_eq(expected));
    let valid = guard.token.as_deref().is_some_and(matches)
        || wizard
            .service_token
            .as_deref()
            .is_some_and(|token| matches(token.as_bytes()));
    // The right token is checked first and never throttled: the Worker reaches us from the same
    // address (cloudflared) as anything else that tries, so a per-address lockout would let a
    // flood of bad tokens lock the Worker out. Guessing a ≥ 32-character random token is
    // hopeless anyway; the failure count only caps what failures cost (a log line each).
    if !valid {
        return match guard.failures.reserve(ip, "", now) {
            Ok(attempt) => {
                guard.failures.failed(attempt);
                tracing::warn!(%ip, "tunnel request without a valid service token");
                error(StatusCode::FORBIDDEN, "forbidden", "Authentication failed")
            }
            Err(wait) => too_many(
                wait,
                "too many failed authentication attempts; try again later",
            ),
        };
    }
    let email = match email(request.headers()) {
        Ok(email) => email,
        Err(message) => return error(StatusCode::BAD_REQUEST, "bad_request", message),
    };
    let mut standings = Vec::new();
    match &email {
        Some(email) => {
            let on_wizard_list = wizard
                .allowlist
                .as_ref()
                .is_none_or(|list| list.allows(email));
            if !guard.allowlist.allows(email) || !on_wizard_list {
                tracing::warn!(email, "tunnel request from an address not on the allowlist");
                return error(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "this account may not use this MCPbox",
                );
            }
            let rpm = match crate::settings::policy(&guard.state.db).await {
                Ok(policy) => policy.mcp_rate_limit_rpm,
                Err(err) => return err.into_response(),
            };
            // Several replicas share one PostgreSQL: the bucket is in the database, so the
            // limit holds across them. SQLite is one process: the bucket stays in memory.
            let verdict = if guard.state.db.backend == crate::db::Backend::Postgres {
                let key = format!("mcp-user:{email}");
                match crate::ratelimit::shared::check(
                    &guard.state.db,
                    &key,
                    "mcp-user",
                    per_user(rpm),
                )
                .await
                {
                    Ok(verdict) => verdict,
                    Err(err) => return err.into_response(),
                }
            } else {
                guard
                    .limiter
                    .check(&[(email.clone(), "mcp-user", per_user(rpm))], now)
            };
            match verdict {
                Verdict::Allowed(charged) => standings = charged,
                Verdict::Refused {
                    retry_after,
                    standings,
                } => {
                    guard
                        .state
                        .metrics
                        .rate_limited(crate::metrics::RateLimitScope::TunnelUser);
                    return crate::ratelimit::refused_mcp(
                        retry_after,
                        &standings,
                        "rate limit reached for this user (mcp_rate_limit_rpm); slow down",
                    );
                }
            }
        }
        None => {
            // Anonymous (the Worker forwards before sign-in): only the handshake.
            let (parts, body) = request.into_parts();
            let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
                Ok(bytes) => bytes,
                Err(_) => {
                    return crate::error::Error::PayloadTooLarge {
                        limit: MAX_BODY_BYTES,
                    }
                    .into_response();
                }
            };
            if parts.method == axum::http::Method::POST
                && let Some(denied) = anonymous_denial(&bytes)
            {
                return denied;
            }
            request = Request::from_parts(parts, Body::from(bytes));
        }
    }
    request.extensions_mut().insert(Caller::Remote { email });
    let mut response = next.run(request).await;
    crate::ratelimit::write_headers(response.headers_mut(), &standings);
    response
}

/// The Worker's email header, checked like the reference does; absent means anonymous.
fn email(headers: &HeaderMap) -> Result<Option<String>, &'static str> {
    let Some(value) = headers.get(USER_EMAIL) else {
        return Ok(None);
    };
    let invalid = "the user email header is not a valid email address";
    let text = value.to_str().map_err(|_| invalid)?;
    if text.is_empty() {
        return Ok(None);
    }
    if valid_email(text) {
        Ok(Some(text.to_ascii_lowercase()))
    } else {
        Err(invalid)
    }
}

/// `^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$`, at most 254 characters.
pub(crate) fn valid_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    let Some((host, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    text.len() <= 254
        && !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c))
        && !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
        && tld.len() >= 2
        && tld.chars().all(|c| c.is_ascii_alphabetic())
}

/// What an anonymous caller may send: `initialize`, `server/discover`, `ping` and
/// notifications. Anything else (or a batch) gets a JSON-RPC -32600 with the reason.
fn anonymous_denial(body: &[u8]) -> Option<Response> {
    let message: Value = serde_json::from_slice(body).ok()?;
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        // Not a request; rmcp answers malformed messages itself.
        return if message.is_array() {
            Some(rpc_error(Value::Null, "batches are not accepted"))
        } else {
            None
        };
    };
    let allowed = matches!(method, "initialize" | "server/discover" | "ping")
        || method.starts_with("notifications/");
    if allowed {
        return None;
    }
    let reason = if method == "tools/list" {
        "Tool listing requires user authentication"
    } else {
        "This method requires user authentication"
    };
    Some(rpc_error(
        message.get("id").cloned().unwrap_or(Value::Null),
        reason,
    ))
}

fn rpc_error(id: Value, message: &str) -> Response {
    Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32600, "message": message}}))
        .into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(contract::ErrorBody::new(code, message))).into_response()
}

fn too_many(wait: Duration, message: &str) -> Response {
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
    let seconds = wait.as_secs().max(1).to_string();
    if let Ok(value) = HeaderValue::from_str(&seconds) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The per-user rule from the policy's requests per minute: bursts of a tenth, at least 5.
fn per_user(rpm: i64) -> Rule {
    let per_minute = u32::try_from(rpm.max(1)).unwrap_or(u32::MAX);
    Rule {
        per_minute,
        burst: (per_minute / 10).max(5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_like_the_reference() {
        for good in ["a@b.co", "first.last+tag@mail.example.org", "x_y%z@a-b.io"] {
            assert!(valid_email(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "a@b.c",
            "@b.co",
            "a@.co",
            "a b@c.co",
            "a@b.c0",
            "a@@b.co",
            "a@b.co\n",
            &format!("{}@b.co", "a".repeat(250)),
        ] {
            assert!(!valid_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn anonymous_callers_may_only_initialise() {
        for allowed in [
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        ] {
            assert!(anonymous_denial(allowed.to_string().as_bytes()).is_none());
        }
        for denied in [
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen"}),
            json!([{"jsonrpc": "2.0", "id": 1, "method": "initialize"}]),
        ] {
            assert!(anonymous_denial(denied.to_string().as_bytes()).is_some());
        }
    }

    #[test]
    fn the_allowlist_matches_addresses_and_domains_exactly() {
        let list = EmailAllowlist::new(&[" Alice@Example.com ".into(), "@Corp.example".into()]);
        assert!(list.allows("alice@example.com"));
        assert!(list.allows("bob@corp.example"));
        for refused in [
            "bob@example.com",
            "alice@example.com.evil.io",
            "x@evilcorp.example",
            "alice@example.co",
        ] {
            assert!(!list.allows(refused), "{refused}");
        }
        assert!(EmailAllowlist::new(&[]).allows("anyone@anywhere.io"));
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_the_rate() {
        let limiter = Limiter::new(USERS_CAP);
        let start = Instant::now();
        let take = |user: &str, at: Instant| {
            matches!(
                limiter.check(&[(user.to_owned(), "mcp-user", per_user(60))], at),
                Verdict::Allowed(_)
            )
        };
        // 60 rpm: bursts of 6, then one a second.
        for _ in 0..6 {
            assert!(take("a@b.co", start));
        }
        let Verdict::Refused { retry_after, .. } =
            limiter.check(&[("a@b.co".to_owned(), "mcp-user", per_user(60))], start)
        else {
            panic!("the seventh request passed");
        };
        assert!(retry_after <= Duration::from_secs(1) && retry_after > Duration::ZERO);
        // Someone else is not affected.
        assert!(take("c@d.co", start));
        assert!(take("a@b.co", start + Duration::from_millis(1001)));
        assert!(!take("a@b.co", start + Duration::from_millis(1002)));
    }
}
