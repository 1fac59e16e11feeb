//! CORS origins and redirect-URI rules: the built-in defaults plus the KV config document.
//!
//! The document (`contract::edge::EdgeConfigDocument`) is validated as a whole: one bad entry
//! makes it invalid, and an invalid document is ignored (defaults only) and reported, never
//! half-applied. The rules on its values are `EdgeConfigDocument::check` in `contract` (the
//! origin checks Settings with the same function); the matching of requests against them is here.

use contract::edge::{
    EdgeConfigDocument, RedirectPattern, is_loopback_http, parse_redirect_pattern,
};
use url::Url;

/// Browser origins allowed by default (https only). CORS only: being a trusted origin says
/// nothing about which of its paths may receive an authorization code.
const BUILT_IN_HTTPS_HOSTS: [&str; 6] = [
    "claude.ai",
    "mcp.claude.ai",
    "chatgpt.com",
    "chat.openai.com",
    "platform.openai.com",
    "one.dash.cloudflare.com",
];

/// The hosted clients' published callback URLs, matched exactly: a code goes only to the page
/// that client built to receive it, never to any other path on its host (a page showing user
/// content, an open redirect, a path the host adds later). Anything else a deployment needs goes
/// in the KV document's `redirect_uris`. Where each comes from:
const BUILT_IN_REDIRECTS: [&str; 8] = [
    // Claude (web, desktop, mobile custom connectors): the callback in every claude.ai connector
    // report, e.g. anthropics/claude-ai-mcp#109 and #124; Claude's desktop OAuth client also
    // allows the claude.com twin (RevenueCat/ai-toolkit#58, comment by jefago).
    "https://claude.ai/api/mcp/auth_callback",
    "https://claude.com/api/mcp/auth_callback",
    // The same path on mcp.claude.ai (kept from the former host list; no separate published
    // source was found, and nothing else on that host receives codes).
    "https://mcp.claude.ai/api/mcp/auth_callback",
    // ChatGPT's stable callback and the app-review one, from OpenAI's Apps SDK authentication
    // guide as quoted in makeplane/plane-mcp-server#165 and danielealbano/
    // android-remote-control-mcp#166; chat.openai.com is ChatGPT's former host, same path.
    "https://chatgpt.com/connector_platform_oauth_redirect",
    "https://chat.openai.com/connector_platform_oauth_redirect",
    "https://platform.openai.com/apps-manage/oauth",
    // Cloudflare's Workers AI playground (jaw9c/awesome-remote-mcp-servers#7 and the servers
    // that list it, e.g. "https://playground.ai.cloudflare.com/oauth/callback" in their
    // allowlists).
    "https://playground.ai.cloudflare.com/oauth/callback",
    // Cloudflare One MCP server portals (configured in one.dash.cloudflare.com, which itself
    // receives no codes): the shared Cloudflare-owned callback (cloudflare/cloudflare-docs#31701).
    // A portal's own default, `https://<portal-hostname>/servers-callback`, differs per
    // deployment and belongs in the KV document.
    "https://oauth-callbacks.cloudflareaccess.com/cdn-cgi/access/outbound-oauth-callback",
];

/// ChatGPT's per-connector callbacks, `…/connector/oauth/{callback_id}` (BasedHardware/omi#8824,
/// makeplane/plane-mcp-server#165): this prefix plus exactly one id segment, nothing after it.
const CHATGPT_CONNECTOR_CALLBACK: &str = "https://chatgpt.com/connector/oauth/";

/// Where the KV document stands, for `/health` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentStatus {
    /// No document in KV: built-in defaults only.
    Missing,
    /// The document is applied.
    Applied,
    /// The document is invalid and ignored; the reason is for the operator.
    Invalid(String),
    /// KV could not be read; built-in defaults apply until it can.
    Unreadable(String),
}

/// The effective allowlists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    extra_origins: Vec<String>,
    extra_redirects: Vec<RedirectPattern>,
    pub status: DocumentStatus,
}

impl Rules {
    /// Built-in defaults only, with the given status.
    pub fn defaults(status: DocumentStatus) -> Rules {
        Rules {
            extra_origins: Vec::new(),
            extra_redirects: Vec::new(),
            status,
        }
    }

    /// Rules from the raw KV value: `None` when the key is missing.
    pub fn from_document(raw: Option<&str>) -> Rules {
        let Some(raw) = raw else {
            return Rules::defaults(DocumentStatus::Missing);
        };
        match parse_document(raw) {
            Ok((extra_origins, extra_redirects)) => Rules {
                extra_origins,
                extra_redirects,
                status: DocumentStatus::Applied,
            },
            Err(reason) => Rules::defaults(DocumentStatus::Invalid(reason)),
        }
    }

    /// Whether a browser at `origin` (the `Origin` header, verbatim) may call us.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let Ok(url) = Url::parse(origin) else {
            return false;
        };
        // `Origin` is exactly scheme://host[:port]; anything more is not an origin.
        if url.origin().ascii_serialization() != origin {
            return false;
        }
        if is_loopback_http(&url) {
            return true;
        }
        if url.scheme() == "https"
            && url.port().is_none()
            && url
                .host_str()
                .is_some_and(|host| BUILT_IN_HTTPS_HOSTS.contains(&host))
        {
            return true;
        }
        self.extra_origins.iter().any(|allowed| allowed == origin)
    }

    /// Whether a client may use `redirect_uri`.
    ///
    /// Built in: the hosted clients' callback URLs exactly ([`BUILT_IN_REDIRECTS`], ChatGPT's
    /// per-connector callbacks), and `http://localhost` / `http://127.0.0.1` on any port and
    /// path (RFC 8252 loopback redirects for native clients). Then the KV document's patterns.
    pub fn redirect_allowed(&self, redirect_uri: &str) -> bool {
        let Some(url) = acceptable_redirect(redirect_uri) else {
            return false;
        };
        if is_loopback_http(&url) {
            return true;
        }
        if BUILT_IN_REDIRECTS.contains(&redirect_uri) || is_chatgpt_connector_callback(redirect_uri)
        {
            return true;
        }
        self.extra_redirects.iter().any(|pattern| match pattern {
            RedirectPattern::Exact(exact) => exact == redirect_uri,
            RedirectPattern::Prefix(prefix) => redirect_uri.starts_with(prefix.as_str()),
        })
    }
}

/// A redirect URI we are willing to send a code to at all: absolute http(s), no fragment, no
/// credentials, and already in normal form (so string comparison means URL equality).
pub fn acceptable_redirect(redirect_uri: &str) -> Option<Url> {
    let url = Url::parse(redirect_uri).ok()?;
    let ok = matches!(url.scheme(), "https" | "http")
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
        && url.host_str().is_some()
        && url.as_str() == redirect_uri;
    (ok && (url.scheme() == "https" || is_loopback_http(&url))).then_some(url)
}

/// `https://chatgpt.com/connector/oauth/{callback_id}`: one segment of id characters, no
/// further path and no query (the URI is already known to be in normal form).
fn is_chatgpt_connector_callback(redirect_uri: &str) -> bool {
    redirect_uri
        .strip_prefix(CHATGPT_CONNECTOR_CALLBACK)
        .is_some_and(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn parse_document(raw: &str) -> Result<(Vec<String>, Vec<RedirectPattern>), String> {
    let doc: EdgeConfigDocument =
        serde_json::from_str(raw).map_err(|e| format!("not a valid document: {e}"))?;
    doc.check()?;
    let redirects = doc
        .redirect_uris
        .iter()
        .map(|pattern| parse_redirect_pattern(pattern))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((doc.cors_origins, redirects))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(origins: &[&str], redirects: &[&str]) -> String {
        serde_json::json!({"version": 1, "cors_origins": origins, "redirect_uris": redirects})
            .to_string()
    }

    #[test]
    fn built_in_origins_need_https_and_exact_hosts() {
        let rules = Rules::from_document(None);
        assert_eq!(rules.status, DocumentStatus::Missing);
        assert!(rules.origin_allowed("https://claude.ai"));
        assert!(rules.origin_allowed("https://one.dash.cloudflare.com"));
        assert!(rules.origin_allowed("http://localhost:6274"));
        assert!(rules.origin_allowed("http://127.0.0.1"));
        assert!(!rules.origin_allowed("http://claude.ai"));
        assert!(!rules.origin_allowed("https://claude.ai.evil.test"));
        assert!(!rules.origin_allowed("https://evil.test"));
        assert!(!rules.origin_allowed("https://claude.ai/"));
        assert!(!rules.origin_allowed("null"));
    }

    #[test]
    fn built_in_redirects_are_in_normal_form_and_unique() {
        for (i, uri) in BUILT_IN_REDIRECTS.iter().enumerate() {
            assert!(acceptable_redirect(uri).is_some(), "{uri}");
            assert!(uri.starts_with("https://"), "{uri}");
            assert!(!BUILT_IN_REDIRECTS[..i].contains(uri), "{uri} twice");
        }
        assert!(acceptable_redirect(CHATGPT_CONNECTOR_CALLBACK).is_some());
    }

    #[test]
    fn built_in_redirects() {
        let rules = Rules::from_document(None);
        for uri in BUILT_IN_REDIRECTS {
            assert!(rules.redirect_allowed(uri), "{uri}");
        }
        assert!(rules.redirect_allowed("https://chatgpt.com/connector/oauth/OUbdUMlL15Ct"));
        assert!(rules.redirect_allowed("https://chatgpt.com/connector/oauth/a_b-9"));
        // Other paths on the same hosts are not callbacks.
        assert!(!rules.redirect_allowed("https://claude.ai/api/mcp/auth_callback/x"));
        assert!(!rules.redirect_allowed("https://claude.ai/api/mcp/auth_callback?x=1"));
        assert!(!rules.redirect_allowed("https://claude.ai/"));
        assert!(!rules.redirect_allowed("https://one.dash.cloudflare.com/callback"));
        assert!(!rules.redirect_allowed("https://chatgpt.com/connector/oauth/"));
        assert!(!rules.redirect_allowed("https://chatgpt.com/connector/oauth/id/more"));
        assert!(!rules.redirect_allowed("https://chatgpt.com/connector/oauth/id?x=1"));
        assert!(!rules.redirect_allowed("https://chatgpt.com/connector/oauth/%2E%2E"));
        assert!(!rules.redirect_allowed(&format!(
            "https://chatgpt.com/connector/oauth/{}",
            "a".repeat(65)
        )));
        assert!(rules.redirect_allowed("http://localhost:33418/callback"));
        assert!(rules.redirect_allowed("http://127.0.0.1:8080/"));
        assert!(!rules.redirect_allowed("http://claude.ai/api/mcp/auth_callback"));
        assert!(!rules.redirect_allowed("https://claude.ai:8443/api/mcp/auth_callback"));
        assert!(!rules.redirect_allowed("https://evil.test/cb"));
        assert!(!rules.redirect_allowed("https://claude.ai/api/mcp/auth_callback#frag"));
        assert!(!rules.redirect_allowed("https://user@claude.ai/api/mcp/auth_callback"));
        assert!(!rules.redirect_allowed("http://192.168.1.10/cb"));
        assert!(!rules.redirect_allowed("cursor://anysphere.cursor-retrieval/oauth"));
        // Not in normal form: string comparison would be unreliable.
        assert!(!rules.redirect_allowed("https://CLAUDE.ai/api/mcp/auth_callback"));
    }

    #[test]
    fn document_entries_extend_the_defaults() {
        let raw = doc(
            &["https://app.example.com"],
            &[
                "https://vscode.dev/redirect",
                "https://app.example.com/oauth/*",
            ],
        );
        let rules = Rules::from_document(Some(&raw));
        assert_eq!(rules.status, DocumentStatus::Applied);
        assert!(rules.origin_allowed("https://app.example.com"));
        assert!(rules.origin_allowed("https://claude.ai"));
        assert!(rules.redirect_allowed("https://vscode.dev/redirect"));
        assert!(!rules.redirect_allowed("https://vscode.dev/redirect/more"));
        assert!(rules.redirect_allowed("https://app.example.com/oauth/cb?x=1"));
        assert!(!rules.redirect_allowed("https://app.example.com/other"));
        assert!(!rules.redirect_allowed("https://app.example.com.evil.test/oauth/cb"));
    }

    /// The value rules are `EdgeConfigDocument::check` (their cases are in `contract`); here,
    /// that a document failing them, or not parsing, is ignored as a whole.
    #[test]
    fn an_invalid_document_is_ignored_as_a_whole() {
        for raw in [
            "not json".to_owned(),
            r#"{"version":2,"cors_origins":[],"redirect_uris":[]}"#.to_owned(),
            r#"{"version":1,"cors_origins":[],"redirect_uri":[]}"#.to_owned(),
            doc(&["https://ok.example.com", "http://plain.example.com"], &[]),
            doc(
                &[],
                &["https://ok.example.com/cb", "https://app.example.com*"],
            ),
        ] {
            let rules = Rules::from_document(Some(&raw));
            assert!(
                matches!(rules.status, DocumentStatus::Invalid(_)),
                "{raw} should be invalid"
            );
            // Nothing from it applies, not even the valid entries.
            assert!(!rules.origin_allowed("https://ok.example.com"), "{raw}");
            assert!(
                !rules.redirect_allowed("https://ok.example.com/cb"),
                "{raw}"
            );
            assert!(rules.origin_allowed("https://claude.ai"));
        }
    }

    #[test]
    fn loopback_entries_may_use_http() {
        let raw = doc(&["http://localhost:3000"], &["http://127.0.0.1:9000/cb"]);
        assert_eq!(
            Rules::from_document(Some(&raw)).status,
            DocumentStatus::Applied
        );
    }
}
