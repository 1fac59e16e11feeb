//! Taking secret values out of everything a run returns or records.
//!
//! A tool holds its server's secrets in clear, so what it returns, prints or raises may contain
//! one, and not only byte for byte: a result is JSON (a `"` or a newline in a secret is escaped
//! there), a string may itself hold JSON text (`json.dumps`, which by default also writes every
//! non-ASCII character as `\uXXXX`), and Python writes `repr` forms when a value is printed
//! inside a list or dict or names a missing key (`KeyError`). `Redactor` knows each secret in
//! all of those forms (`forms_of`) and replaces every occurrence, overlapping ones included, on
//! values before they are serialised: in the strings and object keys of a JSON value, in
//! numbers, and in plain text (stdout, error messages). Callers redact first and cut to size
//! afterwards; a text that someone else already cut (the sandbox caps stdout and error
//! messages) is redacted with `cut_text`, which also hides a secret's beginning left at the end.
//!
//! Not covered, on purpose: encodings a tool has to choose (base64, hex, URL encoding, reversing,
//! changing case, splitting a secret across values, escapes of other languages). Code that holds
//! a secret can always encode it past any filter; that is why secrets reach only code a person
//! approved. Redaction guards against accidents in approved code (printing a config, an
//! exception naming a value, a JSON dump), not against the code itself.

use serde_json::{Map, Value};

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// The secrets of one run, in every form they are looked for.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Distinct, non-empty, longest first.
    forms: Vec<String>,
}

impl Redactor {
    /// Every value is redacted whatever its length (values shorter than
    /// `secrets::MIN_VALUE_BYTES` are refused when set; older ones are still redacted, at the
    /// cost of mangling output, and warned about).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut forms: Vec<String> = secrets
            .into_iter()
            .flat_map(forms_of)
            .filter(|form| !form.is_empty())
            .collect();
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Redactor { forms }
    }

    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// `text` with every occurrence of a secret replaced.
    pub fn text(&self, text: &str) -> String {
        replace(text, self.spans(text))
    }

    /// `text` that was cut at its end before it got here: also hides a secret's beginning that
    /// the cut left at the end (the rest of it is gone, but a prefix of a secret is still a leak).
    pub fn cut_text(&self, text: &str) -> String {
        let mut spans = self.spans(text);
        if let Some(start) = self.partial_tail(text) {
            spans.push((start, text.len()));
            spans = merge(spans);
        }
        replace(text, spans)
    }

    /// A JSON value with every secret taken out of its strings, object keys and numbers. If
    /// its JSON text still shows a secret (a tool that built one across several strings), the
    /// whole value is replaced: the caller would read the secret in that text.
    pub fn value(&self, value: Value) -> Value {
        if self.forms.is_empty() {
            return value;
        }
        let redacted = self.walk(value);
        if self.appears_in(&redacted.to_string()) {
            Value::String(REDACTED.to_owned())
        } else {
            redacted
        }
    }

    fn walk(&self, value: Value) -> Value {
        match value {
            Value::String(text) => Value::String(self.text(&text)),
            Value::Number(number) => {
                // `int(secret)`: a numeric secret returned as a number.
                if self.appears_in(&number.to_string()) {
                    Value::String(REDACTED.to_owned())
                } else {
                    Value::Number(number)
                }
            }
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.walk(v)).collect()),
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, item) in map {
                    let key = unique_key(&out, self.text(&key));
                    out.insert(key, self.walk(item));
                }
                Value::Object(out)
            }
            other => other,
        }
    }

    fn appears_in(&self, text: &str) -> bool {
        self.forms.iter().any(|form| text.contains(form.as_str()))
    }

    /// Byte ranges of every occurrence of every form, overlapping ones included, merged.
    fn spans(&self, text: &str) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        for form in &self.forms {
            let mut from = 0;
            while let Some(found) = text[from..].find(form.as_str()) {
                let start = from + found;
                spans.push((start, start + form.len()));
                // One character on, not past the match: "abab" occurs twice in "ababab", and
                // one secret may overlap another.
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        merge(spans)
    }

    /// Where the longest end of `text` that begins some form starts.
    fn partial_tail(&self, text: &str) -> Option<usize> {
        self.forms
            .iter()
            .filter_map(|form| {
                let earliest = text.len().saturating_sub(form.len().saturating_sub(1));
                (earliest..text.len())
                    .filter(|&start| text.is_char_boundary(start))
                    .find(|&start| form.starts_with(&text[start..]))
            })
            .min()
    }
}

/// Sorted, non-overlapping ranges covering the same bytes.
fn merge(mut spans: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

fn replace(text: &str, spans: Vec<(usize, usize)>) -> String {
    if spans.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// Two keys that both were a secret stay two keys.
fn unique_key(map: &Map<String, Value>, key: String) -> String {
    if !map.contains_key(&key) {
        return key;
    }
    (2..)
        .map(|n| format!("{key} ({n})"))
        .find(|candidate| !map.contains_key(candidate))
        .unwrap_or(key)
}

/// A secret as it appears raw, JSON-escaped (one and two levels deep, with non-ASCII kept or
/// escaped), and in Python's `repr` of a `str` and of its UTF-8 `bytes` (either quote).
fn forms_of(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    for ascii in [false, true] {
        let once = json_escaped(secret, ascii);
        for ascii_again in [false, true] {
            forms.push(json_escaped(&once, ascii_again));
        }
        forms.push(once);
    }
    for quote in ['\'', '"'] {
        forms.push(python_str_repr(secret, quote));
        forms.push(python_bytes_repr(secret.as_bytes(), quote));
    }
    forms
}

/// The inside of a JSON string, as serde_json and Python's `json.dumps` write it (`ascii`: as
/// `json.dumps` does by default, every character outside printable ASCII as `\uXXXX`).
fn json_escaped(text: &str, ascii: bool) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ascii && !(' '..='~').contains(&c)) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The inside of Python's `repr` of a `str` quoted with `quote`.
fn python_str_repr(text: &str, quote: char) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if python_printable(c) => out.push(c),
            c => {
                let code = c as u32;
                let _ = match code {
                    0..=0xff => write!(out, "\\x{code:02x}"),
                    0x100..=0xffff => write!(out, "\\u{code:04x}"),
                    _ => write!(out, "\\U{code:08x}"),
                };
            }
        }
    }
    out
}

/// The inside of Python's `repr` of `bytes` quoted with `quote`.
fn python_bytes_repr(bytes: &[u8], quote: char) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() + 8);
    for &byte in bytes {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b if char::from(b) == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out
}

/// Python's `str.isprintable` for one character: exact for ASCII; beyond it, the controls,
/// spaces, separators, format and private-use characters that Python escapes (everything else
/// it prints as is, like letters, symbols and CJK). Without Unicode's tables a rare unassigned
/// or unusual character may differ, which only means that one form is not looked for.
fn python_printable(c: char) -> bool {
    !matches!(
        c as u32,
        0..=0x1f
            | 0x7f..=0xa0
            | 0xad
            | 0x061c
            | 0x1680
            | 0x180e
            | 0x2000..=0x200f
            | 0x2028..=0x202f
            | 0x205f..=0x206f
            | 0x3000
            | 0xe000..=0xf8ff
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0xe0000..=0xe007f
            | 0xf0000..=0x10ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const QUOTE: &str = "pa\"ss\\word-9876";
    const UNICODE: &str = "zürich-Straße-✓-𝄞-7781";

    fn redactor() -> Redactor {
        Redactor::new([QUOTE, UNICODE])
    }

    #[test]
    fn the_forms_are_the_ones_serialisers_write() {
        // What serde_json and Python's json.dumps (both settings) and repr write.
        let serde = serde_json::to_string(UNICODE).unwrap();
        assert!(forms_of(UNICODE).contains(&serde[1..serde.len() - 1].to_owned()));
        assert!(
            forms_of(UNICODE)
                .contains(&"z\\u00fcrich-Stra\\u00dfe-\\u2713-\\ud834\\udd1e-7781".to_owned())
        );
        assert!(forms_of(QUOTE).contains(&"pa\\\"ss\\\\word-9876".to_owned()));
        // json.dumps(json.dumps(x)) and repr(x).
        assert!(forms_of(QUOTE).contains(&"pa\\\\\\\"ss\\\\\\\\word-9876".to_owned()));
        assert!(forms_of(QUOTE).contains(&"pa\"ss\\\\word-9876".to_owned()));
        assert!(forms_of("it's\n\u{1}").contains(&"it\\'s\\n\\x01".to_owned()));
        assert!(forms_of("é\u{202e}").contains(&"é\\u202e".to_owned()));
        assert!(forms_of("é").contains(&"\\xc3\\xa9".to_owned()));
    }

    #[test]
    fn strings_keys_and_numbers_are_redacted_before_serialising() {
        let value = json!({
            "raw": QUOTE,
            "inner_json": serde_json::to_string(&json!({"v": QUOTE})).unwrap(),
            "double": serde_json::to_string(&serde_json::to_string(UNICODE).unwrap()).unwrap(),
            QUOTE: 1,
            UNICODE: 2,
            "list": [format!("a{UNICODE}b"), 12345678],
        });
        let redacted = Redactor::new([QUOTE, UNICODE, "12345678"]).value(value);
        let text = redacted.to_string();
        assert!(!text.contains("9876") && !text.contains("7781"), "{text}");
        assert_eq!(redacted["raw"], REDACTED);
        assert_eq!(redacted["inner_json"], "{\"v\":\"[REDACTED]\"}");
        assert_eq!(redacted["list"], json!(["a[REDACTED]b", REDACTED]));
        assert_eq!(redacted[REDACTED], 1);
        assert_eq!(redacted[format!("{REDACTED} (2)")], 2);
    }

    #[test]
    fn a_secret_built_across_strings_takes_the_whole_value() {
        let secret = "abc\",\"defgh";
        let value = json!(["abc", "defgh"]);
        assert_eq!(Redactor::new([secret]).value(value), json!(REDACTED));
        assert_eq!(
            Redactor::new([secret]).value(json!(["x", 1])),
            json!(["x", 1])
        );
    }

    #[test]
    fn overlapping_and_nested_secrets_leave_nothing_behind() {
        let redactor = Redactor::new(["abcdefgh", "efghijkl", "cdef"]);
        assert_eq!(redactor.text("xabcdefghijkly"), "x[REDACTED]y");
        assert_eq!(
            Redactor::new(["abab"]).text("ababab-abab"),
            "[REDACTED]-[REDACTED]"
        );
    }

    #[test]
    fn text_cut_inside_a_secret_hides_the_prefix() {
        let redactor = redactor();
        assert_eq!(redactor.cut_text("out: pa\"ss\\wo"), "out: [REDACTED]");
        assert_eq!(redactor.cut_text("out: zür"), "out: [REDACTED]");
        // Its JSON form cut too.
        assert_eq!(
            redactor.cut_text("{\"k\": \"pa\\\"s"),
            "{\"k\": \"[REDACTED]"
        );
        assert_eq!(redactor.cut_text("nothing here"), "nothing here");
        // Not cut: a whole text is left alone at its end.
        assert_eq!(redactor.text("out: pa\"ss"), "out: pa\"ss");
    }

    #[test]
    fn no_secrets_change_nothing() {
        let none = Redactor::default();
        assert!(none.is_empty());
        assert_eq!(none.text("a"), "a");
        assert_eq!(none.cut_text("a"), "a");
        assert_eq!(none.value(json!({"a": [1]})), json!({"a": [1]}));
    }
}
