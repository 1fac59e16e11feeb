//! The edge worker's KV-synced configuration document.
//!
//! The origin writes one JSON document under [`KV_KEY`] in the Worker's KV namespace (through the
//! Cloudflare API); the Worker reads it with a short per-isolate cache and applies it as a whole.
//! A missing document means "built-in defaults only"; a document that fails to parse or to
//! validate is reported by the Worker (in `/health` and a log line) and ignored entirely, never
//! half-applied.
//!
//! Rules on the values, [`EdgeConfigDocument::check`]: the Worker ignores a document that fails
//! them and the origin refuses to write one (both call this one definition):
//! - `cors_origins`: each is a bare origin, `scheme://host[:port]`, with no path, query or
//!   fragment. It must be `https`, except `http://localhost` and `http://127.0.0.1` (any port).
//! - `redirect_uris`: each is either an exact redirect URI, or a prefix pattern ending in `*`
//!   whose part before the `*` contains the full origin and at least the `/` that starts the
//!   path (so `https://app.example.com/*` matches `https://app.example.com/cb` but never
//!   `https://app.example.com.evil.test/`). Same scheme rule as origins; no fragments.

use serde::{Deserialize, Serialize};
use url::Url;

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

impl EdgeConfigDocument {
    /// The document as a whole: its version, then every origin and redirect URI; the first
    /// bad value is the error.
    pub fn check(&self) -> Result<(), String> {
        if self.version != VERSION {
            return Err(format!(
                "version {} is not supported (expected {VERSION})",
                self.version
            ));
        }
        for origin in &self.cors_origins {
            check_cors_origin(origin)?;
        }
        for pattern in &self.redirect_uris {
            parse_redirect_pattern(pattern)?;
        }
        Ok(())
    }
}

/// `http://localhost` or `http://127.0.0.1`, any port: the only places plain http is allowed.
pub fn is_loopback_http(url: &Url) -> bool {
    url.scheme() == "http" && matches!(url.host_str(), Some("localhost" | "127.0.0.1"))
}

/// A bare origin, https (or loopback http).
pub fn check_cors_origin(origin: &str) -> Result<(), String> {
    let url = Url::parse(origin).map_err(|_| format!("CORS origin {origin:?} is not a URL"))?;
    if url.origin().ascii_serialization() != origin {
        return Err(format!(
            "CORS origin {origin:?} must be exactly scheme://host[:port] (no path, no trailing slash)"
        ));
    }
    if url.scheme() != "https" && !is_loopback_http(&url) {
        return Err(format!(
            "CORS origin {origin:?} must use https (http only for localhost and 127.0.0.1)"
        ));
    }
    Ok(())
}

/// A checked `redirect_uris` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectPattern {
    Exact(String),
    /// Everything starting with this (which always includes the origin and a `/`).
    Prefix(String),
}

/// An exact redirect URI, or a prefix ending in `*` that spells out `scheme://host[:port]/`.
pub fn parse_redirect_pattern(pattern: &str) -> Result<RedirectPattern, String> {
    let (base, is_prefix) = match pattern.strip_suffix('*') {
        Some(base) => (base, true),
        None => (pattern, false),
    };
    if base.contains('*') {
        return Err(format!(
            "redirect URI {pattern:?}: `*` is only allowed at the end"
        ));
    }
    let url = Url::parse(base).map_err(|_| format!("redirect URI {pattern:?} is not a URL"))?;
    if url.scheme() != "https" && !is_loopback_http(&url) {
        return Err(format!(
            "redirect URI {pattern:?} must use https (http only for localhost and 127.0.0.1)"
        ));
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "redirect URI {pattern:?} must not have a fragment or credentials"
        ));
    }
    // The prefix must reach into the path, so it pins the whole host: without the `/`,
    // `https://app.example.com*` would also match `https://app.example.com.evil.test`.
    let origin_and_slash = format!("{}/", url.origin().ascii_serialization());
    if !base.starts_with(&origin_and_slash) {
        return Err(format!(
            "redirect URI {pattern:?} must spell out scheme://host[:port]/ in normal form"
        ));
    }
    if is_prefix {
        Ok(RedirectPattern::Prefix(base.to_owned()))
    } else if url.as_str() == base {
        Ok(RedirectPattern::Exact(base.to_owned()))
    } else {
        Err(format!("redirect URI {pattern:?} is not in normal form"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(origins: &[&str], redirects: &[&str]) -> EdgeConfigDocument {
        EdgeConfigDocument {
            version: VERSION,
            cors_origins: origins.iter().map(|s| s.to_string()).collect(),
            redirect_uris: redirects.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn good_values_pass() {
        doc(
            &["https://app.example.com", "http://localhost:3000"],
            &[
                "https://vscode.dev/redirect",
                "https://app.example.com/oauth/*",
                "http://127.0.0.1:9000/cb",
            ],
        )
        .check()
        .unwrap();
        assert_eq!(
            parse_redirect_pattern("https://app.example.com/oauth/*"),
            Ok(RedirectPattern::Prefix(
                "https://app.example.com/oauth/".into()
            ))
        );
        assert_eq!(
            parse_redirect_pattern("https://vscode.dev/redirect"),
            Ok(RedirectPattern::Exact("https://vscode.dev/redirect".into()))
        );
    }

    #[test]
    fn bad_values_fail_the_document() {
        for bad in [
            doc(&["https://ok.example.com", "http://plain.example.com"], &[]),
            doc(&["https://ok.example.com/path"], &[]),
            doc(&["https://ok.example.com/"], &[]),
            doc(&["not a url"], &[]),
            doc(&["http://192.168.1.10"], &[]),
            doc(
                &[],
                &["https://ok.example.com/cb", "http://plain.example.com/cb"],
            ),
            doc(&[], &["https://app.example.com*"]),
            doc(&[], &["https://*.example.com/cb"]),
            doc(&[], &["https://app.example.com/cb#x"]),
            doc(&[], &["https://user@app.example.com/cb"]),
            doc(&[], &["https://CLAUDE.ai/cb"]),
            doc(&[], &["not a url"]),
            EdgeConfigDocument {
                version: 2,
                ..doc(&[], &[])
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

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
