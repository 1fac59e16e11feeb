//! Rendering helpers: templates to responses, and the two pieces of HTML built in Rust rather
//! than in a template — highlighted Python and a coloured diff. Both escape every character of
//! their input themselves (the output is marked safe in the templates), and a test feeds them
//! markup to prove it. Both show each invisible or bidirectional control character
//! (`contract::sandbox::HIDDEN_CHARACTERS`) as a visible marker, `<U+202E>`, so a browser
//! cannot show a reviewer other code than Python runs ("Trojan Source").

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Chrome;

/// Renders a template as an HTML response (a rendering failure is logged, never shown).
pub fn html<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "template rendering failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "the page could not be rendered; the details are in the server log",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub status: u16,
    pub message: String,
}

/// HTML text for `text`: markup characters escaped, hidden characters shown as markers.
pub fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => match contract::sandbox::hidden_character(c) {
                Some(name) => hidden_marker(c, name, out),
                None => out.push(c),
            },
        }
    }
}

/// `<U+202E>` in its own span (styled to stand out, named in its title) instead of the
/// character, which the browser would apply or not show at all.
fn hidden_marker(c: char, name: &str, out: &mut String) {
    use std::fmt::Write;
    let code = c as u32;
    let _ = write!(
        out,
        "<span class=\"hidden-char\" title=\"U+{code:04X} {name}: invisible or reorders text; Python reads it\">&lt;U+{code:04X}&gt;</span>"
    );
}

/// `text` as HTML (escaped, hidden characters as markers), for author-written text shown next
/// to code on the review page.
pub fn visible_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape(text, &mut out);
    out
}

const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "match", "case",
];

fn span(class: &str, text: &str, out: &mut String) {
    out.push_str("<span class=\"");
    out.push_str(class);
    out.push_str("\">");
    escape(text, out);
    out.push_str("</span>");
}

/// Python source as HTML with `<span class="k|s|c|n">` for keywords, strings, comments and
/// numbers. A small lexer, not a parser: good enough to read code, and it never drops or
/// reorders a character (the test checks the text round-trips).
pub fn highlight_python(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '#' {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |p| i + p);
            span("c", &chars[i..end].iter().collect::<String>(), &mut out);
            i = end;
        } else if c == '"' || c == '\'' {
            let triple = chars.get(i + 1) == Some(&c) && chars.get(i + 2) == Some(&c);
            let quote_len = if triple { 3 } else { 1 };
            let mut j = i + quote_len;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '\\' {
                    j += 2;
                    continue;
                }
                if !triple && chars[j] == '\n' {
                    break;
                }
                if chars[j] == c
                    && (!triple || (chars.get(j + 1) == Some(&c) && chars.get(j + 2) == Some(&c)))
                {
                    j += quote_len;
                    break;
                }
                j += 1;
            }
            let end = j.min(chars.len());
            span("s", &chars[i..end].iter().collect::<String>(), &mut out);
            i = end;
        } else if c.is_ascii_digit() {
            let end = chars[i..]
                .iter()
                .position(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_'))
                .map_or(chars.len(), |p| i + p);
            span("n", &chars[i..end].iter().collect::<String>(), &mut out);
            i = end;
        } else if c.is_alphabetic() || c == '_' {
            let end = chars[i..]
                .iter()
                .position(|c| !(c.is_alphanumeric() || *c == '_'))
                .map_or(chars.len(), |p| i + p);
            let word: String = chars[i..end].iter().collect();
            if KEYWORDS.contains(&word.as_str()) {
                span("k", &word, &mut out);
            } else {
                escape(&word, &mut out);
            }
            i = end;
        } else {
            escape(&c.to_string(), &mut out);
            i += 1;
        }
    }
    out
}

/// A unified diff as HTML lines with `class="add|del|hunk"`.
pub fn render_diff(diff: &str) -> String {
    let mut out = String::with_capacity(diff.len() * 2);
    for line in diff.lines() {
        let class = if line.starts_with("+++") || line.starts_with("---") {
            "file"
        } else if line.starts_with('+') {
            "add"
        } else if line.starts_with('-') {
            "del"
        } else if line.starts_with("@@") {
            "hunk"
        } else {
            "ctx"
        };
        out.push_str("<span class=\"");
        out.push_str(class);
        out.push_str("\">");
        escape(line, &mut out);
        out.push_str("</span>\n");
    }
    out
}

/// One bar of the dashboard's chart, in SVG user units (computed here so the template only
/// prints numbers).
pub struct Bar {
    pub x: u32,
    pub calls_y: u32,
    pub calls_h: u32,
    pub errors_y: u32,
    pub errors_h: u32,
    pub label: String,
    pub calls: i64,
    pub errors: i64,
}

pub const CHART_HEIGHT: u32 = 120;
pub const BAR_WIDTH: u32 = 14;

/// Bars for calls and errors per bucket, scaled to the busiest bucket.
pub fn bars(buckets: &[(String, i64, i64)]) -> Vec<Bar> {
    let max = buckets.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let scale = |n: i64| -> u32 {
        let h = (n.max(0) as f64 / max as f64 * f64::from(CHART_HEIGHT)).round() as u32;
        if n > 0 { h.max(1) } else { 0 }
    };
    buckets
        .iter()
        .enumerate()
        .map(|(i, (label, calls, errors))| {
            let calls_h = scale(*calls);
            let errors_h = scale(*errors);
            Bar {
                x: i as u32 * (BAR_WIDTH + 4),
                calls_y: CHART_HEIGHT - calls_h,
                calls_h,
                errors_y: CHART_HEIGHT - errors_h,
                errors_h,
                label: label.clone(),
                calls: *calls,
                errors: *errors,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip_tags(html: &str) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => in_tag = true,
                '>' if in_tag => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    #[test]
    fn highlighting_escapes_markup_and_keeps_every_character() {
        let code = "async def main(x: str = \"</pre><script>alert(1)</script>\") -> str:\n    # <b>not bold</b> & done\n    return '''a\n<img src=x onerror=alert(1)>''' + 'it\\'s' + str(42)\n";
        let html = highlight_python(code);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert_eq!(strip_tags(&html), code);
        assert!(html.contains("<span class=\"k\">async</span>"));
        assert!(html.contains("<span class=\"c\"># &lt;b&gt;not bold&lt;/b&gt; &amp; done</span>"));
        assert!(html.contains("<span class=\"n\">42</span>"));
    }

    #[test]
    fn unterminated_strings_do_not_swallow_or_panic() {
        for code in ["'abc", "\"\"\"abc", "x = '\\", "#", "1.5e3", "ü = 'ü'"] {
            assert_eq!(strip_tags(&highlight_python(code)), code);
        }
    }

    #[test]
    fn hidden_characters_become_visible_markers() {
        // Trojan Source: the RLO and isolates make a browser show the comment after the string.
        let code = "if access != \"user\u{202e} \u{2066}# admin?\u{2069} \u{2066}\":\n    ok = 1\u{200b}\n";
        for html in [highlight_python(code), render_diff(&format!("+{code}"))] {
            for hidden in ['\u{202e}', '\u{2066}', '\u{2069}', '\u{200b}'] {
                assert!(!html.contains(hidden), "{hidden:?} raw in {html}");
            }
            assert!(
                html.contains("<span class=\"hidden-char\" title=\"U+202E RIGHT-TO-LEFT OVERRIDE"),
                "{html}"
            );
            assert!(html.contains("&lt;U+2066&gt;") && html.contains("&lt;U+200B&gt;"));
        }
        assert_eq!(
            strip_tags(&highlight_python("x = '\u{202e}'")),
            "x = '<U+202E>'"
        );
        assert_eq!(
            visible_text("a\u{200f}<b>"),
            "a<span class=\"hidden-char\" title=\"U+200F RIGHT-TO-LEFT MARK: invisible or reorders text; Python reads it\">&lt;U+200F&gt;</span>&lt;b&gt;"
        );
    }

    #[test]
    fn diffs_are_escaped_and_classified() {
        let diff = "--- a\n+++ b\n@@ -1 +1 @@\n-<script>old</script>\n+\"new\" & <i>\n same\n";
        let html = render_diff(diff);
        assert!(!html.contains("<script"));
        assert!(!html.contains("<i>"));
        assert!(html.contains("<span class=\"del\">-&lt;script&gt;old&lt;/script&gt;</span>"));
        assert!(html.contains("<span class=\"add\">+&quot;new&quot; &amp; &lt;i&gt;</span>"));
        assert!(html.contains("<span class=\"hunk\">"));
    }

    #[test]
    fn bars_scale_to_the_busiest_bucket() {
        let bars = bars(&[("a".into(), 10, 1), ("b".into(), 5, 0), ("c".into(), 0, 0)]);
        assert_eq!(bars[0].calls_h, CHART_HEIGHT);
        assert_eq!(bars[1].calls_h, CHART_HEIGHT / 2);
        assert_eq!(bars[2].calls_h, 0);
        assert_eq!(bars[0].errors_h, 12);
        assert_eq!(bars[1].x, BAR_WIDTH + 4);
    }
}
