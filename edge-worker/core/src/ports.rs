//! The seams to the platform: KV, clock, randomness and outbound HTTP.
//!
//! The wasm shell implements these over the Workers runtime (KV binding, `Date.now()`,
//! `crypto.getRandomValues`, `fetch`); tests implement them in memory. The futures are not
//! `Send`: JS-backed futures on Workers never are, and the core runs on one thread.

use crate::Error;
use crate::http::{Headers, Method};

/// A key-value store with optional expiry (Cloudflare KV).
///
/// The core never relies on expiry for correctness: every record carries its own expiry time
/// that is checked on read, and the TTL only lets the store drop dead records. (KV's minimum
/// TTL is 60 seconds; the core never asks for less.) KV is eventually consistent between
/// locations, so the core also never relies on a delete being seen everywhere at once: single-use
/// records are marked as used rather than deleted.
pub trait Kv {
    /// The value under `key`, or `None` when there is none (or it expired).
    async fn get(&self, key: &str) -> Result<Option<String>, Error>;
    /// Store `value` under `key`, replacing any previous value; with `ttl_seconds`, the store
    /// may drop it after that many seconds (always ≥ 60 when given).
    async fn put(&self, key: &str, value: &str, ttl_seconds: Option<u64>) -> Result<(), Error>;
    /// Remove `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), Error>;
}

/// Wall-clock time.
pub trait Clock {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
}

/// A cryptographically secure random source.
pub trait Random {
    /// Fill `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]) -> Result<(), Error>;
}

/// Outbound HTTP (upstream OIDC token and JWKS endpoints, client ID metadata documents).
pub trait HttpClient {
    /// Send `request` and read the whole response. The adapter must honour
    /// [`HttpRequest::timeout_ms`] and [`HttpRequest::max_response_bytes`] (returning
    /// [`Error::Http`] when either is exceeded) and must not follow redirects.
    async fn fetch(&self, request: HttpRequest) -> Result<HttpResponse, Error>;
}

/// An outbound request the core asks the shell to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// Give up after this long.
    pub timeout_ms: u32,
    /// Fail rather than read a larger response body.
    pub max_response_bytes: usize,
}

/// The answer to an [`HttpRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// The platform services one request is handled with. The shell builds one per request (the KV
/// binding comes from that request's `Env`).
pub struct Ports<K, C, R, H> {
    pub kv: K,
    pub clock: C,
    pub random: R,
    pub http: H,
}
