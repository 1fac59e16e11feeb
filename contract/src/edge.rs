//! The edge worker's KV-synced configuration document.
//!
//! The origin writes one JSON document under [`KV_KEY`] in the Worker's KV namespace (through the
//! Cloudflare API); the Worker reads it with a short per-isolate cache and applies it as a whole.
//! A missing document means "built-in defaults only"; a document that fails to parse or to
//! validate is reported by the Worker (in `/health` and a log line) and ignored entirely, never
//! half-applied.
//!
//! Rules the Worker enforces on the values (the origin should check them before writing):
//! - `cors_origins`: each is a bare origin, `scheme://host[:port]`, with no path, query or
//!   fragment. It must be `https`, except `http://localhost` and `http://127.0.0.1` (any port).
//! - `redirect_uris`: each is either an exact redirect URI, or a prefix pattern ending in `*`
//!   whose part before the `*` contains the full origin and at least the `/` that starts the
//!   path (so `https://app.example.com/*` matches `https://app.example.com/cb` but never
//!   `https://app.example.com.evil.test/`). Same scheme rule as origins; no fragments.

use serde::{Deserialize, Serialize};

/// The KV key holding the [`EdgeConfigDocument`].
pub const KV_KEY: &str = "config:edge";

/// The only document version this contract defines. A Worker rejects any other version as
/// invalid (and keeps its defaults) rather than guess at its meaning.
pub const VERSION: u32 = 1;

/// Extra CORS origins and redirect-URI patterns, added to the Worker's built-in defaults.
///
/// Unknown fields are rejected, so a typo makes the document invalid instead of silently
/// dropping a setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfigDocument {
    /// Always [`VERSION`].
    pub version: u32,
    /// Browser origins allowed to call the Worker, beyond the built-in ones.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Redirect URIs (exact, or `…/*` prefix patterns) clients may register, beyond the
    /// built-in ones.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_has_the_documented_shape() {
        let doc = EdgeConfigDocument {
            version: VERSION,
            cors_origins: vec!["https://app.example.com".into()],
            redirect_uris: vec!["https://app.example.com/oauth/*".into()],
        };
        assert_eq!(
            serde_json::to_value(&doc).unwrap(),
            serde_json::json!({
                "version": 1,
                "cors_origins": ["https://app.example.com"],
                "redirect_uris": ["https://app.example.com/oauth/*"],
            })
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<EdgeConfigDocument>(
            r#"{"version":1,"cors_origin":["https://x.example"]}"#,
        );
        assert!(err.is_err());
    }
}
