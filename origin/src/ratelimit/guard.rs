//! The admin listener's rate-limit middleware (`app::router_with`): `/api/…` and `/auth/…` per
//! client address, and also per account when the request carries an API bearer token that
//! verifies (signature, audience, expiry; the database check is the handler's), and `/mcp` and
//! the per-server `/servers/{name}/mcp` per client address (one bucket for both). Everything else (the UI, `/health`, static files) is not limited here: the
//! UI's sign-in has its own throttle, and a UI page is not a scriptable API.
//!
//! The address is the TCP peer's. There is no trusted-proxy support: `X-Forwarded-For` is never
//! read, so behind a reverse proxy every client shares the proxy's bucket. Loopback is not
//! exempt: local MCP clients share 127.0.0.1's bucket (the defaults allow for that).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Verdict, client_key, refused_mcp, retry_after_secs, write_headers};
use crate::app::AppState;
use crate::error::Error;
use crate::metrics::RateLimitScope;

/// A bucket of the admin listener's table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// `/api/…`, `/auth/…` from one address (IPv6: its /64).
    Api(IpAddr),
    /// The local `/mcp` and `/servers/{name}/mcp` from one address.
    Mcp(IpAddr),
    /// An account's API bearer tokens, from anywhere (its user id).
    Account(String),
}

enum Scope {
    Api,
    Mcp,
}

fn scope(path: &str) -> Option<Scope> {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if under("/mcp") || crate::gateway::scoped::is_server_endpoint(path) {
        Some(Scope::Mcp)
    } else if under("/api") || under("/auth") {
        Some(Scope::Api)
    } else {
        None
    }
}

pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(scope) = scope(request.uri().path()) else {
        return next.run(request).await;
    };
    let now = Instant::now();
    // Requests without a peer (only in-process tests) share one bucket.
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let limits = state.rate_limits.current(&state.db, now).await;
    let mut keys = Vec::with_capacity(2);
    match scope {
        Scope::Mcp => keys.push((
            Key::Mcp(client_key(ip)),
            "mcp-address",
            limits.mcp_per_address,
        )),
        Scope::Api => {
            keys.push((
                Key::Api(client_key(ip)),
                "api-address",
                limits.api_per_address,
            ));
            if let Some(account) = bearer_account(&state, &request) {
                keys.push((Key::Account(account), "api-account", limits.api_per_account));
            }
        }
    }
    match state.rate_limits.limiter.check(&keys, now) {
        Verdict::Allowed(standings) => {
            let mut response = next.run(request).await;
            write_headers(response.headers_mut(), &standings);
            response
        }
        Verdict::Refused {
            retry_after,
            standings,
        } => {
            // The empty buckets are the limits that refused (`remaining` 0).
            for refusing in standings.iter().filter(|s| s.remaining == 0) {
                let counted = match refusing.policy {
                    "api-address" => RateLimitScope::ApiAddress,
                    "api-account" => RateLimitScope::ApiAccount,
                    "mcp-address" => RateLimitScope::McpAddress,
                    // The three policies above are the only ones this guard charges.
                    _ => continue,
                };
                state.metrics.rate_limited(counted);
            }
            let mut response = match scope {
                Scope::Mcp => refused_mcp(
                    retry_after,
                    &standings,
                    "rate limit reached for this address (mcp_per_address); slow down",
                ),
                Scope::Api => {
                    let refused = standings
                        .iter()
                        .filter(|s| s.remaining == 0)
                        .map(|s| s.policy)
                        .collect::<Vec<_>>()
                        .join(", ");
                    Error::TooManyRequests {
                        message: format!("rate limit reached ({refused}); slow down"),
                        retry_after_secs: retry_after_secs(retry_after),
                    }
                    .into_response()
                }
            };
            write_headers(response.headers_mut(), &standings);
            response
        }
    }
}

/// The account of an API bearer token whose signature, audience and expiry check out. A token
/// that does not verify adds no account bucket (it fails in the handler, counted by address).
fn bearer_account(state: &AppState, request: &Request) -> Option<String> {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .trim();
    crate::auth::tokens::account_of(&state.jwt, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_api_and_mcp_are_limited_and_prefixes_are_exact() {
        for api in ["/api", "/api/servers", "/auth/login", "/auth"] {
            assert!(matches!(scope(api), Some(Scope::Api)), "{api}");
        }
        for mcp in [
            "/mcp",
            "/mcp/",
            "/servers/weather/mcp",
            "/servers/Unknown-Name/mcp",
        ] {
            assert!(matches!(scope(mcp), Some(Scope::Mcp)), "{mcp}");
        }
        for other in [
            "/",
            "/ui/settings",
            "/health",
            "/apix",
            "/mcpx",
            "/authors",
            "/servers/a/mcpx",
            "/ui/servers/a/mcp",
        ] {
            assert!(scope(other).is_none(), "{other}");
        }
    }
}
