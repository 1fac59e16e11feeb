//! CORS: which browser origins may call us, and the headers that say so.
//!
//! A disallowed or missing `Origin` gets no `Access-Control-Allow-Origin` at all (the
//! reference Worker sent a fixed default origin instead, which only muddled errors).

use crate::http::{EdgeResponse, Headers};
use crate::rules::Rules;

/// Headers browser clients send on MCP and OAuth requests (`Mcp-Method` and `Mcp-Name` are
/// required on every 2026-07-28 request).
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Mcp-Session-Id, Mcp-Protocol-Version, \
     Last-Event-ID, Mcp-Method, Mcp-Name";
/// 2026-07-28's `Mcp-Param-{Name}` headers have names chosen by each tool's schema, which no
/// fixed list can name: a preflight's requested ones of that shape are allowed back, at most
/// this many, each at most `PARAM_HEADER_MAX` bytes (the rest are left out, so the browser
/// refuses that request rather than the Worker echoing arbitrary input).
const PARAM_HEADERS_MAX: usize = 16;
const PARAM_HEADER_MAX: usize = 64;
/// Response headers browser clients must be able to read.
const EXPOSE_HEADERS: &str = "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate";

/// The CORS headers for an answer to a request from `origin`; `requested` is a preflight's
/// `Access-Control-Request-Headers`.
pub fn headers(rules: &Rules, origin: Option<&str>, requested: Option<&str>) -> Headers {
    let mut headers = Headers::new();
    // Caches must not serve one origin's answer to another.
    headers.set("Vary", "Origin");
    if let Some(origin) = origin.filter(|origin| rules.origin_allowed(origin)) {
        headers.set("Access-Control-Allow-Origin", origin);
        headers.set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        headers.set("Access-Control-Allow-Headers", allow_headers(requested));
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

/// `ALLOW_HEADERS` plus the requested `Mcp-Param-*` headers (see `PARAM_HEADERS_MAX`).
fn allow_headers(requested: Option<&str>) -> String {
    let mut allowed = ALLOW_HEADERS.to_owned();
    let params = requested
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|name| is_param_header(name))
        .take(PARAM_HEADERS_MAX);
    for name in params {
        allowed.push_str(", ");
        allowed.push_str(name);
    }
    allowed
}

fn is_param_header(name: &str) -> bool {
    const PREFIX: &str = "mcp-param-";
    name.len() > PREFIX.len()
        && name.len() <= PARAM_HEADER_MAX
        && name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
