//! CORS: which browser origins may call us, and the headers that say so.
//!
//! A disallowed or missing `Origin` gets no `Access-Control-Allow-Origin` at all (the
//! reference Worker sent a fixed default origin instead, which only muddled errors).

use crate::http::{EdgeResponse, Headers};
use crate::rules::Rules;

/// Headers browser clients send on MCP and OAuth requests.
const ALLOW_HEADERS: &str =
    "Authorization, Content-Type, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID";
/// Response headers browser clients must be able to read.
const EXPOSE_HEADERS: &str = "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate";

/// The CORS headers for an answer to a request from `origin`.
pub fn headers(rules: &Rules, origin: Option<&str>) -> Headers {
    let mut headers = Headers::new();
    // Caches must not serve one origin's answer to another.
    headers.set("Vary", "Origin");
    if let Some(origin) = origin.filter(|origin| rules.origin_allowed(origin)) {
        headers.set("Access-Control-Allow-Origin", origin);
        headers.set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        headers.set("Access-Control-Allow-Headers", ALLOW_HEADERS);
        headers.set("Access-Control-Expose-Headers", EXPOSE_HEADERS);
        headers.set("Access-Control-Max-Age", "86400");
    }
    headers
}

/// The answer to a preflight `OPTIONS` (the CORS headers are added by the caller).
pub fn preflight() -> EdgeResponse {
    EdgeResponse {
        status: 204,
        headers: Headers::new(),
        body: Vec::new(),
    }
}
