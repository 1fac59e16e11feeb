//! The crate's one error type.

/// Everything that can go wrong inside the core, including failures the shell reports from its
/// adapters (KV, outbound HTTP, randomness).
///
/// Messages are for logs: they never contain tokens, secrets or the encryption key. Request
/// handling turns an `Error` into an HTTP answer in one place (`Edge::handle`), so callers of the
/// traits just return it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Worker's configuration (vars and secrets) is missing or malformed.
    #[error("configuration: {0}")]
    Config(String),
    /// A KV operation failed (reported by the shell's adapter).
    #[error("kv: {0}")]
    Kv(String),
    /// An outbound HTTP request failed before a response arrived: network error, timeout, or
    /// the response was larger than allowed (reported by the shell's adapter).
    #[error("http: {0}")]
    Http(String),
    /// The platform's randomness source failed.
    #[error("randomness: {0}")]
    Random(String),
    /// Stored data could not be decoded or decrypted (corruption, or a changed encryption key).
    #[error("stored data: {0}")]
    Stored(String),
}
