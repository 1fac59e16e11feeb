//! Building answers: JSON, OAuth errors, redirects, HTML.

use serde::Serialize;

use crate::http::{EdgeResponse, Headers};

pub fn json(status: u16, value: &impl Serialize) -> EdgeResponse {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut headers = Headers::new();
    headers.set("Content-Type", "application/json");
    // OAuth answers carry tokens or per-request state; no cache may keep them.
    headers.set("Cache-Control", "no-store");
    EdgeResponse {
        status,
        headers,
        body,
    }
}

/// An RFC 6749 §5.2 error body: `{"error", "error_description"}`.
pub fn oauth_error(status: u16, error: &str, description: &str) -> EdgeResponse {
    json(
        status,
        &serde_json::json!({"error": error, "error_description": description}),
    )
}

pub fn redirect(location: &str) -> EdgeResponse {
    let mut headers = Headers::new();
    headers.set("Location", location);
    headers.set("Cache-Control", "no-store");
    EdgeResponse {
        status: 302,
        headers,
        body: Vec::new(),
    }
}

/// An HTML page under a strict CSP: no scripts at all, inline styles only, forms may post to
/// us and be redirected to `form_targets` (space-separated origins: browsers apply
/// `form-action` to the redirects that follow a form submission), and no framing
/// (clickjacking the consent button).
pub fn html(status: u16, body: String, form_targets: &str) -> EdgeResponse {
    let mut headers = Headers::new();
    headers.set("Content-Type", "text/html; charset=utf-8");
    headers.set("Cache-Control", "no-store");
    headers.set(
        "Content-Security-Policy",
        format!(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'{form_targets}; \
             frame-ancestors 'none'; base-uri 'none'",
            form_targets = match form_targets {
                "" => String::new(),
                targets => format!(" {targets}"),
            }
        ),
    );
    headers.set("X-Frame-Options", "DENY");
    // Not `no-referrer`: under it browsers send `Origin: null` on our own form POST, and the
    // consent handler checks `Origin`. `same-origin` still leaks nothing to other sites.
    headers.set("Referrer-Policy", "same-origin");
    EdgeResponse {
        status,
        headers,
        body: body.into_bytes(),
    }
}

/// A refusal for a person in a browser, at the end of a redirect chain where a JSON body would
/// help nobody: what went wrong, what to do, and the error code to quote. No forms at all.
pub fn error_page(status: u16, code: &str, title: &str, message: &str) -> EdgeResponse {
    let page = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>body{{font:16px system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}</style></head>
<body><h1>{title}</h1>
<p>{message}</p>
<p>Error code: <code>{code}</code></p>
</body></html>"#,
        title = escape(title),
        message = escape(message),
        code = escape(code),
    );
    html(status, page, "")
}

pub fn not_found() -> EdgeResponse {
    json(
        404,
        &contract::ErrorBody::new("not_found", "No such endpoint"),
    )
}

pub fn method_not_allowed(allow: &str) -> EdgeResponse {
    let mut response = json(
        405,
        &contract::ErrorBody::new("method_not_allowed", "Method not allowed here"),
    );
    response.headers.set("Allow", allow);
    response
}

/// Escape text for HTML element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            super::escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
