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
//! - CORS and redirect-URI rules, with extra entries from the KV config document
//!   (`contract::edge`);
//! - the forwarding decision for `/mcp`: which requests reach the origin, with which headers.
//!
//! Entry point: [`Edge::new`] once per isolate, then [`Edge::handle`] per request.

// Async fns in our traits are meant to be !Send: Workers futures never are, and the core is
// single-threaded. The lint only warns that callers cannot require Send.
#![allow(async_fn_in_trait)]

pub mod config;
mod crypto;
mod error;
pub mod http;
pub mod ports;
mod rules;
#[cfg(test)]
mod testing;

pub use config::{AccessConfig, EdgeConfig, Lifetimes, Secret};
pub use error::Error;
pub use http::{
    EdgeRequest, EdgeResponse, Forward, Handled, Headers, Level, LogLine, Method, Outcome,
};
pub use ports::{Clock, HttpClient, HttpRequest, HttpResponse, Kv, Ports, Random};

/// The edge worker. Build one per isolate and keep it (it holds per-isolate caches: the KV
/// config document, the upstream JWKS); it is not `Sync`, which Workers never need.
pub struct Edge {
    config: EdgeConfig,
}

impl Edge {
    /// Check the configuration and set up empty caches.
    pub fn new(config: EdgeConfig) -> Result<Edge, Error> {
        Ok(Edge { config })
    }

    /// The configuration this edge runs with.
    pub fn config(&self) -> &EdgeConfig {
        &self.config
    }

    /// Decide what to do with one request. Never fails: internal errors become a 500/502/503
    /// answer plus a log line.
    ///
    /// Routes: `OPTIONS *` (CORS preflight), `/health`, `/.well-known/oauth-protected-resource`
    /// and `…/mcp`, `/.well-known/oauth-authorization-server`, `/register`, `/authorize` (GET and
    /// the consent POST), `/callback`, `/token`, `/revoke`, and `/mcp` and `/` (GET, POST,
    /// DELETE; forwarded after token validation). Everything else is 404.
    pub async fn handle<K: Kv, C: Clock, R: Random, H: HttpClient>(
        &self,
        ports: &Ports<K, C, R, H>,
        request: EdgeRequest,
    ) -> Handled {
        let _ = (ports, request);
        Handled {
            outcome: Outcome::Respond(EdgeResponse {
                status: 404,
                headers: Headers::new(),
                body: Vec::new(),
            }),
            log: Vec::new(),
        }
    }
}

impl Forward {
    /// The headers to send back to the client with the origin's streamed answer: the origin's
    /// headers minus hop-by-hop headers and any CORS headers of its own, plus ours.
    pub fn response_headers(&self, upstream: &Headers) -> Headers {
        let mut headers = upstream.clone();
        headers.retain(|name, _| !name.to_ascii_lowercase().starts_with("access-control-"));
        for (name, value) in self.cors.iter() {
            headers.append(name, value);
        }
        headers
    }

    /// The answer when the origin could not be reached (502, with CORS headers).
    pub fn bad_gateway(&self) -> EdgeResponse {
        EdgeResponse {
            status: 502,
            headers: self.cors.clone(),
            body: Vec::new(),
        }
    }
}
