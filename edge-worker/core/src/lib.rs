//! The MCPbox edge worker's logic, as plain Rust.
//!
//! Remote MCP clients reach the origin through a Cloudflare Worker. This crate is everything
//! that Worker decides; the wasm shell (`edge-worker/`) only adapts the Workers runtime to the
//! traits in [`ports`] and executes the [`Outcome`]:
//!
//! - an OAuth 2.1 authorization server for MCP clients (RFC 9728 protected-resource metadata,
//!   RFC 8414 metadata, RFC 7591 registration and client ID metadata documents, PKCE S256,
//!   RFC 8707 resource binding, RFC 9207 `iss`, rotating refresh tokens, RFC 7009 revocation);
//! - an OIDC client to Cloudflare Access for SaaS (consent page, state + nonce + PKCE, id_token
//!   verified against JWKS) that supplies the user's email;
//! - CORS and redirect-URI rules (redirects: the hosted clients' exact callback URLs and
//!   loopback), with extra entries from the KV config document (`contract::edge`);
//! - the forwarding decision for `/mcp` and the per-server `/servers/{name}/mcp` (each its own
//!   protected resource, `endpoint`): which requests reach the origin, with which headers.
//!
//! Entry point: [`Edge::new`] once per isolate, then [`Edge::handle`] per request.
//!
//! Life of a remote login:
//! 1. The client's `POST /mcp` without a token gets 401 with `resource_metadata`; it reads the
//!    protected-resource and authorization-server metadata.
//! 2. It registers (`/register`), or uses an https URL as its client id (metadata document).
//! 3. `GET /authorize` checks client, redirect URI (registered and allowed), PKCE S256 and
//!    `resource`, then shows the consent page (or skips it for a client this browser approved).
//! 4. The consent `POST /authorize` checks the CSRF cookie against the sealed form and redirects
//!    to Access with state, nonce and PKCE (the state record lives in KV for ten minutes), setting
//!    the login cookie whose hash the state record keeps (RFC 6749 §10.12).
//! 5. `GET /callback` spends the state, refuses a browser without that login cookie, exchanges
//!    Access's code with the client secret, verifies the id_token (with `email_verified: true`),
//!    stores a grant with the sealed email, and redirects to the client with a code and `iss`.
//! 6. `POST /token` redeems the code (once, with the verifier) for an access and a refresh token;
//!    later refreshes rotate the refresh token.
//! 7. `POST /mcp` with the bearer token becomes a [`Forward`] to the origin carrying the
//!    service token and the verified email, and none of the client's identity headers (ours,
//!    `Cf-Access-*`, `Authorization`, cookies).

// Async fns in our traits are meant to be !Send: Workers futures never are, and the core is
// single-threaded. The lint only warns that callers cannot require Send.
#![allow(async_fn_in_trait)]

use std::cell::RefCell;
use std::rc::Rc;

use url::Url;

pub mod config;
mod cors;
mod crypto;
mod endpoint;
mod error;
mod forward;
pub mod http;
mod oauth;
mod oidc;
pub mod ports;
mod respond;
mod rules;
mod store;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use endpoint::Endpoint;
use rules::Rules;

pub use config::{AccessConfig, EdgeConfig, Lifetimes, Secret};
pub use error::Error;
pub use http::{
    EdgeRequest, EdgeResponse, Forward, Handled, Headers, Level, LogLine, Method, Outcome,
};
pub use ports::{Clock, HttpClient, HttpRequest, HttpResponse, Kv, Ports, Random};

/// How long the KV config document is cached per isolate: changes apply within this time.
const RULES_CACHE_SECONDS: u64 = 30;

/// The edge worker. Build one per isolate and keep it (it holds per-isolate caches: the KV
/// config document, the upstream JWKS); it is not `Sync`, which Workers never need.
pub struct Edge {
    config: EdgeConfig,
    /// Seals grant properties and upstream-login secrets stored in KV.
    grant_sealer: crypto::Sealer,
    /// Seals the consent form's request and the approved-clients cookie.
    cookie_sealer: crypto::Sealer,
    /// The config document's rules and when they were read. Never borrowed across an await.
    rules: RefCell<Option<(u64, Rc<Rules>)>>,
    /// The upstream JWKS and recently unknown key ids. Never borrowed across an await.
    jwks: RefCell<oidc::JwksCache>,
}

/// One request in flight: the edge, its ports, and the log lines gathered so far.
struct Cx<'a, K, C, R, H> {
    edge: &'a Edge,
    ports: &'a Ports<K, C, R, H>,
    log: RefCell<Vec<LogLine>>,
}

impl<K, C, R, H> Cx<'_, K, C, R, H> {
    fn log(&self, level: Level, message: impl Into<String>) {
        self.log.borrow_mut().push(LogLine {
            level,
            message: message.into(),
        });
    }

    fn config(&self) -> &EdgeConfig {
        &self.edge.config
    }
}

impl Edge {
    /// Check the configuration and set up empty caches.
    pub fn new(config: EdgeConfig) -> Result<Edge, Error> {
        config.check()?;
        Ok(Edge {
            grant_sealer: crypto::Sealer::derive(config.encryption_key.expose(), "grant v1"),
            cookie_sealer: crypto::Sealer::derive(config.encryption_key.expose(), "cookie v1"),
            config,
            rules: RefCell::new(None),
            jwks: RefCell::new(oidc::JwksCache::default()),
        })
    }

    /// The configuration this edge runs with.
    pub fn config(&self) -> &EdgeConfig {
        &self.config
    }

    /// Decide what to do with one request. Never fails: internal errors become a 500/502/503
    /// answer plus a log line.
    ///
    /// Routes: `OPTIONS *` (CORS preflight), `/health`, `/.well-known/oauth-protected-resource`
    /// and `…/mcp` and `…/servers/{name}/mcp`, `/.well-known/oauth-authorization-server`,
    /// `/register`, `/authorize` (GET and the consent POST), `/callback`, `/token`, `/revoke`,
    /// and `/mcp`, `/` and `/servers/{name}/mcp` (GET, POST, DELETE; forwarded after token
    /// validation; `{name}` must be a server name). Everything else is 404.
    pub async fn handle<K: Kv, C: Clock, R: Random, H: HttpClient>(
        &self,
        ports: &Ports<K, C, R, H>,
        request: EdgeRequest,
    ) -> Handled {
        let cx = Cx {
            edge: self,
            ports,
            log: RefCell::new(Vec::new()),
        };
        let rules = cx.rules().await;
        let cors = cors::headers(
            &rules,
            request.headers.get("Origin"),
            request.headers.get("Access-Control-Request-Headers"),
        );
        let outcome = match cx.route(&rules, request, &cors).await {
            Ok(outcome) => outcome,
            Err(error) => {
                let (status, code) = match error {
                    Error::Http(_) => (502, "upstream_unavailable"),
                    Error::Kv(_) => (503, "storage_unavailable"),
                    _ => (500, "internal_error"),
                };
                cx.log(Level::Error, error.to_string());
                Outcome::Respond(respond::json(
                    status,
                    &contract::ErrorBody::new(code, "The request could not be completed"),
                ))
            }
        };
        let outcome = match outcome {
            Outcome::Respond(mut response) => {
                for (name, value) in cors.iter() {
                    response.headers.set(name, value);
                }
                Outcome::Respond(response)
            }
            forward => forward,
        };
        Handled {
            outcome,
            log: cx.log.into_inner(),
        }
    }
}

impl<K: Kv, C: Clock, R: Random, H: HttpClient> Cx<'_, K, C, R, H> {
    /// The effective rules, from the per-isolate cache or KV. A KV failure falls back to the
    /// built-in defaults (and is not cached, so the next request tries again).
    async fn rules(&self) -> Rc<Rules> {
        let now = self.ports.clock.now();
        if let Some((read_at, rules)) = self.edge.rules.borrow().as_ref()
            && now < read_at + RULES_CACHE_SECONDS
        {
            return rules.clone();
        }
        match self.ports.kv.get(contract::edge::KV_KEY).await {
            Ok(raw) => {
                let rules = Rc::new(Rules::from_document(raw.as_deref()));
                if let rules::DocumentStatus::Invalid(reason) = &rules.status {
                    self.log(
                        Level::Warn,
                        format!("KV config document is invalid and ignored: {reason}"),
                    );
                }
                *self.edge.rules.borrow_mut() = Some((now, rules.clone()));
                rules
            }
            Err(error) => {
                self.log(
                    Level::Error,
                    format!("reading the KV config document: {error}"),
                );
                Rc::new(Rules::defaults(rules::DocumentStatus::Unreadable(
                    error.to_string(),
                )))
            }
        }
    }

    async fn route(
        &self,
        rules: &Rules,
        request: EdgeRequest,
        cors: &Headers,
    ) -> Result<Outcome, Error> {
        let Ok(url) = Url::parse(&request.url) else {
            return Ok(Outcome::Respond(respond::not_found()));
        };
        let respond = |response| Ok(Outcome::Respond(response));
        if request.method == Method::Options {
            return respond(cors::preflight());
        }
        let method = &request.method;
        match url.path() {
            "/health" if *method == Method::Get => respond(self.health(rules)),
            "/.well-known/oauth-protected-resource"
            | "/.well-known/oauth-protected-resource/mcp"
                if *method == Method::Get =>
            {
                respond(self.resource_metadata(&Endpoint::All))
            }
            "/.well-known/oauth-authorization-server" if *method == Method::Get => {
                respond(self.server_metadata())
            }
            "/register" if *method == Method::Post => {
                respond(self.register(rules, &request).await?)
            }
            "/authorize" if *method == Method::Get => {
                respond(self.authorize(rules, &url, &request).await?)
            }
            "/authorize" if *method == Method::Post => {
                respond(self.consent(rules, &request).await?)
            }
            "/callback" if *method == Method::Get => {
                respond(self.callback(&url, &request.headers).await?)
            }
            "/token" if *method == Method::Post => respond(self.token(&request).await?),
            "/revoke" if *method == Method::Post => respond(self.revoke(&request).await?),
            "/mcp" | "/" => match method {
                Method::Get | Method::Post | Method::Delete => {
                    self.forward(&Endpoint::All, &url, request, cors).await
                }
                _ => respond(respond::method_not_allowed("GET, POST, DELETE, OPTIONS")),
            },
            "/health"
            | "/.well-known/oauth-protected-resource"
            | "/.well-known/oauth-protected-resource/mcp"
            | "/.well-known/oauth-authorization-server"
            | "/callback" => respond(respond::method_not_allowed("GET, OPTIONS")),
            "/register" | "/token" | "/revoke" => {
                respond(respond::method_not_allowed("POST, OPTIONS"))
            }
            "/authorize" => respond(respond::method_not_allowed("GET, POST, OPTIONS")),
            path => self.server_route(path, &url, request, cors).await,
        }
    }

    /// `/servers/{name}/mcp` and its protected-resource metadata; anything else is 404 (an
    /// invalid server name too: such a path is never forwarded).
    async fn server_route(
        &self,
        path: &str,
        url: &Url,
        request: EdgeRequest,
        cors: &Headers,
    ) -> Result<Outcome, Error> {
        let respond = |response| Ok(Outcome::Respond(response));
        if let Some(metadata) = path.strip_prefix("/.well-known/oauth-protected-resource") {
            return match Endpoint::at(metadata) {
                Some(endpoint @ Endpoint::Server(_)) if request.method == Method::Get => {
                    respond(self.resource_metadata(&endpoint))
                }
                Some(Endpoint::Server(_)) => respond(respond::method_not_allowed("GET, OPTIONS")),
                _ => respond(respond::not_found()),
            };
        }
        match Endpoint::at(path) {
            Some(endpoint @ Endpoint::Server(_)) => match request.method {
                Method::Get | Method::Post | Method::Delete => {
                    self.forward(&endpoint, url, request, cors).await
                }
                _ => respond(respond::method_not_allowed("GET, POST, DELETE, OPTIONS")),
            },
            _ => respond(respond::not_found()),
        }
    }

    /// `/health`: liveness plus the state of the KV config document, so an operator sees at a
    /// glance when their document is being ignored.
    fn health(&self, rules: &Rules) -> EdgeResponse {
        let (status, document, error) = match &rules.status {
            rules::DocumentStatus::Missing => ("ok", "missing", None),
            rules::DocumentStatus::Applied => ("ok", "applied", None),
            rules::DocumentStatus::Invalid(reason) => ("degraded", "invalid", Some(reason)),
            rules::DocumentStatus::Unreadable(reason) => ("degraded", "unreadable", Some(reason)),
        };
        respond::json(
            200,
            &serde_json::json!({
                "status": status,
                "config_document": {"state": document, "error": error},
            }),
        )
    }

    /// RFC 9728 protected-resource metadata of one endpoint. `resource` is exactly the MCP URL
    /// clients use (`/mcp`'s, or one server's), so clients that compare it with the URL they
    /// connected to accept it, and ask for a token for it.
    fn resource_metadata(&self, endpoint: &Endpoint) -> EdgeResponse {
        let config = self.config();
        let name = match endpoint {
            Endpoint::All => "MCPbox".to_owned(),
            Endpoint::Server(server) => format!("MCPbox: {server}"),
        };
        respond::json(
            200,
            &serde_json::json!({
                "resource": endpoint.resource(config),
                "authorization_servers": [config.public_url],
                "bearer_methods_supported": ["header"],
                "scopes_supported": [],
                "resource_name": name,
            }),
        )
    }

    /// RFC 8414 authorization-server metadata.
    fn server_metadata(&self) -> EdgeResponse {
        let base = &self.config().public_url;
        respond::json(
            200,
            &serde_json::json!({
                "issuer": base,
                "authorization_endpoint": format!("{base}/authorize"),
                "token_endpoint": format!("{base}/token"),
                "registration_endpoint": format!("{base}/register"),
                "revocation_endpoint": format!("{base}/revoke"),
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": oauth::AUTH_METHODS,
                "revocation_endpoint_auth_methods_supported": oauth::AUTH_METHODS,
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": [],
                "authorization_response_iss_parameter_supported": true,
                "client_id_metadata_document_supported": true,
            }),
        )
    }
}
