//! Per-server endpoints: `/servers/{name}/mcp` serves one server's visible tools under their
//! own names (no `{server}__` prefix), so a client can be given only the tools it needs.
//!
//! It is the same `Gateway` handler with a `ServerScope`, behind the same guards as `/mcp` on
//! each listener (Host/Origin allowlists, the sessions guard, the tunnel's `check`, rate
//! limits), and both protocol revisions as rmcp serves them. Decisions:
//! - no management tools (`mcpbox_*`) there: a client given a per-server endpoint sees that
//!   server's tools and nothing else;
//! - `tools/call` resolves a name within that server only: another server's tool, or a
//!   `{server}__{tool}` name, is an unknown tool; the call runs and is logged exactly as on
//!   `/mcp` (the execution log records the tool, not the endpoint);
//! - a name that is not a valid server name, or names no server, is a 404 with a JSON body
//!   (checked after rmcp's Host/Origin checks, so a page cannot probe for server names); a
//!   server that exists but is stopped answers with an empty tool list, as `/mcp` shows none
//!   of its tools;
//! - `notifications/tools/list_changed` goes out only when that server's visible tools change
//!   (`VisibleSet::server`), not on every change of the global set;
//! - a session answers only on the endpoint that opened it (`sessions`): a session of
//!   `/servers/a/mcp` is unknown on `/mcp` and on `/servers/b/mcp`, and the other way round.
//!
//! The scope is the server's name, as the URL is: a server deleted and re-created under the
//! same name is served at the same URL.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::sync::watch;

use super::Gateway;
use super::visible::VisibleSet;
use crate::app::AppState;
use crate::error::Error;
use crate::names;

/// The route, relative to the listener's root.
pub const ROUTE: &str = "/servers/{name}/mcp";

/// The one server a `Gateway` serves on `/servers/{name}/mcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerScope {
    /// A valid server name (`names::Name::server`).
    pub name: String,
}

/// Whether `path` is a per-server MCP endpoint (for the rate limiter, which counts these with
/// `/mcp`). Only the shape: the name is checked by the route.
pub fn is_server_endpoint(path: &str) -> bool {
    path.strip_prefix("/servers/")
        .and_then(|rest| rest.strip_suffix("/mcp"))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// `/servers/{name}/mcp` over the listener's session manager and rmcp configuration, so it
/// shares `/mcp`'s sessions table (and its bound) and its Host/Origin checks.
pub(super) fn router(
    gateway: Gateway,
    manager: Arc<LocalSessionManager>,
    config: StreamableHttpServerConfig,
) -> Router<AppState> {
    let endpoint = Arc::new(Endpoint {
        gateway,
        manager,
        config,
    });
    Router::new().route(
        ROUTE,
        axum::routing::any(move |Path(name): Path<String>, request: Request| {
            let endpoint = endpoint.clone();
            async move { endpoint.serve(name, request).await }
        }),
    )
}

struct Endpoint {
    gateway: Gateway,
    manager: Arc<LocalSessionManager>,
    config: StreamableHttpServerConfig,
}

impl Endpoint {
    /// The handler for this request's server. rmcp asks its factory for a handler per new
    /// session and per stateless request, without the request, so the scope is bound by
    /// building the (cheap: a few `Arc`s) service per request; requests within a session are
    /// served by the handler the session was opened with.
    fn service(
        &self,
        scope: Option<ServerScope>,
    ) -> StreamableHttpService<Gateway, LocalSessionManager> {
        let mut gateway = self.gateway.clone();
        gateway.scope = scope;
        StreamableHttpService::new(
            move || Ok(gateway.clone()),
            self.manager.clone(),
            self.config.clone(),
        )
    }

    async fn serve(&self, name: String, request: Request) -> Response {
        let known = match exists(&self.gateway.state, &name).await {
            Ok(known) => known,
            Err(err) => return err.into_response(),
        };
        if !known {
            return self.not_found(&name, request).await;
        }
        let service = self.service(Some(ServerScope { name }));
        service.handle(request).await.map(axum::body::Body::new)
    }

    /// 404 for an unknown server, but only to a request that rmcp's Host and Origin checks
    /// let through (they answer first on `/mcp` too): a request without a body and with a
    /// method rmcp does not serve goes through them, and rmcp's 405 means they passed.
    async fn not_found(&self, name: &str, request: Request) -> Response {
        let mut probe = Request::new(axum::body::Body::empty());
        *probe.method_mut() = Method::OPTIONS;
        *probe.uri_mut() = request.uri().clone();
        *probe.headers_mut() = request.headers().clone();
        let answer = self.service(None).handle(probe).await;
        if answer.status() != StatusCode::METHOD_NOT_ALLOWED {
            return answer.map(axum::body::Body::new);
        }
        Error::NotFound(format!(
            "no server named {name:?}: a per-server endpoint is /servers/{{server name}}/mcp \
             (the names are listed by mcpbox_list_servers on /mcp and in the UI)"
        ))
        .into_response()
    }
}

/// Whether a server of that name exists (running or not). Invalid names exist nowhere.
async fn exists(state: &AppState, name: &str) -> Result<bool, Error> {
    if names::Name::server(name).is_err() {
        return Ok(false);
    }
    let found = sqlx::query("SELECT 1 FROM servers WHERE name = $1")
        .bind(name)
        .fetch_optional(&state.db.pool)
        .await?;
    Ok(found.is_some())
}

/// Waits until the visible set changes as `scope` sees it: any change for `/mcp`; for a
/// server, a change of that server's tools (`last` is what this listener last saw of them).
/// False once the watcher is gone. Cancel-safe: a change is marked seen only when it is
/// returned or is irrelevant to `scope`.
pub(super) async fn changed(
    changes: &mut watch::Receiver<VisibleSet>,
    scope: Option<&ServerScope>,
    last: &mut Option<[u8; 32]>,
) -> bool {
    loop {
        if changes.changed().await.is_err() {
            return false;
        }
        let Some(scope) = scope else {
            return true;
        };
        let now = changes.borrow_and_update().server(&scope.name);
        if now != *last {
            *last = now;
            return true;
        }
    }
}

/// What `changed` starts from for `scope`: the listener's view when it starts listening.
pub(super) fn start(
    changes: &mut watch::Receiver<VisibleSet>,
    scope: Option<&ServerScope>,
) -> Option<[u8; 32]> {
    changes.mark_unchanged();
    scope.and_then(|scope| changes.borrow().server(&scope.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_per_server_shape_counts_as_an_endpoint() {
        for endpoint in [
            "/servers/a/mcp",
            "/servers/weather_2/mcp",
            "/servers/Bad-Name/mcp",
        ] {
            assert!(is_server_endpoint(endpoint), "{endpoint}");
        }
        for other in [
            "/servers//mcp",
            "/servers/a/b/mcp",
            "/servers/a/mcpx",
            "/servers/a",
            "/api/servers/a/mcp",
            "/mcp",
        ] {
            assert!(!is_server_endpoint(other), "{other}");
        }
    }
}
