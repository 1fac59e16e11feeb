//! The export file (the reference's v1.2 shape, read back to 1.0) and its signature.
//!
//! The signature is HMAC-SHA256, hex, over the canonical JSON of `{version, servers,
//! admin_module_requests}` exactly as the reference computes it: Python's
//! `json.dumps(data, sort_keys=True, separators=(",", ":"))` (so `ensure_ascii`: every
//! non-ASCII character as a `\uXXXX` escape, floats as Python's `repr`) of the fields the
//! reference's models know, with their defaults filled in. Which fields are signed depends on the
//! version (1.0 has no requests, 1.1 no admin requests), as the reference's import rebuilds them.
//! Our extension fields (`secrets`, a server's own `admin_module_requests`) are signed when
//! present; a reference file never has them, so its signature is unaffected.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::Sha256;

/// What we write.
pub const VERSION: &str = "1.2";
/// What we read (the reference's versions).
pub const VERSIONS: [&str; 3] = ["1.0", "1.1", "1.2"];

fn version_default() -> String {
    // The reference's import model defaults a missing version to 1.0.
    "1.0".to_owned()
}

fn timeout_default() -> i64 {
    30_000
}

fn enabled_default() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = transfer::ExportFile)]
pub struct ExportFile {
    /// `1.0`, `1.1` or `1.2` (missing: `1.0`); this origin writes `1.2`.
    #[serde(default = "version_default")]
    #[schema(pattern = "^1\\.[012]$")]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_at: Option<String>,
    #[serde(default)]
    pub servers: Vec<ServerEntry>,
    /// The reference's global module requests (it has a global allowlist made of them). Ours are
    /// per server (`ServerEntry::admin_module_requests`); we write this empty.
    #[serde(default)]
    pub admin_module_requests: Vec<ModuleEntry>,
    /// HMAC-SHA256, hex, over the canonical JSON of the file (see `transfer::format`). A file
    /// without a valid one is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = transfer::Server)]
pub struct ServerEntry {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tools: Vec<ToolEntry>,
    /// The approved hosts (derived; read only from 1.0 and 1.1 files, where it is the only
    /// record of them).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    #[serde(default = "timeout_default")]
    pub default_timeout_ms: i64,
    /// Network requests an admin made for the whole server (no tool).
    #[serde(default)]
    pub admin_network_requests: Vec<NetworkEntry>,
    /// Extension: module requests an admin made for the whole server (no tool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_module_requests: Vec<ModuleEntry>,
    /// Extension: the server's secrets, by name and description only: values never leave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = transfer::Tool)]
pub struct ToolEntry {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    #[serde(default)]
    pub timeout_ms: Option<i64>,
    /// None for a tool without code (the reference's passthrough tools in old exports).
    #[serde(default)]
    pub python_code: Option<String>,
    #[serde(default)]
    pub input_schema: Option<Value>,
    #[serde(default)]
    pub module_requests: Vec<ModuleEntry>,
    #[serde(default)]
    pub network_access_requests: Vec<NetworkEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = transfer::ModuleRequest)]
pub struct ModuleEntry {
    pub module_name: String,
    #[serde(default)]
    pub justification: String,
    #[serde(default = "pending")]
    pub status: String,
    #[serde(default)]
    pub requested_by: Option<String>,
    #[serde(default)]
    pub reviewed_by: Option<String>,
    #[serde(default)]
    pub rejection_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = transfer::NetworkRequest)]
pub struct NetworkEntry {
    pub host: String,
    #[serde(default)]
    pub port: Option<i64>,
    #[serde(default)]
    pub justification: String,
    #[serde(default = "pending")]
    pub status: String,
    #[serde(default)]
    pub requested_by: Option<String>,
    #[serde(default)]
    pub reviewed_by: Option<String>,
    #[serde(default)]
    pub rejection_reason: Option<String>,
    /// `lan` for a LAN host (exactly this host and port, which may be private); absent for a
    /// public one, so files of the reference's shape (which has no LAN hosts) read and sign
    /// as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = transfer::Secret)]
pub struct SecretEntry {
    pub key: String,
    #[serde(default)]
    pub description: String,
}

fn pending() -> String {
    "pending".to_owned()
}

/// The key a signature is made with.
pub enum SigningKey<'a> {
    /// Ours: a subkey of the keyring derived for export signatures only.
    Derived([u8; 32]),
    /// The reference's: HMAC keyed with its encryption-key string as given.
    Reference(&'a str),
}

impl SigningKey<'_> {
    fn mac(&self) -> Hmac<Sha256> {
        let key: &[u8] = match self {
            SigningKey::Derived(key) => key,
            SigningKey::Reference(text) => text.as_bytes(),
        };
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length")
    }
}

/// The hex signature of a file under `key`.
pub fn sign(file: &ExportFile, key: &SigningKey<'_>) -> String {
    let mut mac = key.mac();
    mac.update(canonical(&signed_payload(file)).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether the file's signature is the one `key` makes (constant-time comparison).
pub fn verify(file: &ExportFile, signature: &str, key: &SigningKey<'_>) -> bool {
    let Ok(given) = hex::decode(signature.trim()) else {
        return false;
    };
    let mut mac = key.mac();
    mac.update(canonical(&signed_payload(file)).as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// What is signed: the fields the reference's models hold for this version, defaults filled in.
pub fn signed_payload(file: &ExportFile) -> Value {
    let v10 = file.version == "1.0";
    let v12 = file.version == "1.2";
    let servers: Vec<Value> = file
        .servers
        .iter()
        .map(|server| {
            let tools: Vec<Value> = server
                .tools
                .iter()
                .map(|tool| {
                    let mut t = json!({
                        "name": tool.name,
                        "description": tool.description,
                        "enabled": tool.enabled,
                        "timeout_ms": tool.timeout_ms,
                        "python_code": tool.python_code,
                        "input_schema": tool.input_schema,
                    });
                    if !v10 {
                        t["module_requests"] = modules(&tool.module_requests);
                        t["network_access_requests"] = networks(&tool.network_access_requests);
                    }
                    t
                })
                .collect();
            let mut s = json!({
                "name": server.name,
                "description": server.description,
                "tools": tools,
                "allowed_hosts": server.allowed_hosts,
                "default_timeout_ms": server.default_timeout_ms,
            });
            if v12 {
                s["admin_network_requests"] = networks(&server.admin_network_requests);
            }
            if !server.admin_module_requests.is_empty() {
                s["admin_module_requests"] = modules(&server.admin_module_requests);
            }
            if !server.secrets.is_empty() {
                s["secrets"] = json!(
                    server
                        .secrets
                        .iter()
                        .map(|secret| json!({"key": secret.key, "description": secret.description}))
                        .collect::<Vec<_>>()
                );
            }
            s
        })
        .collect();
    let mut payload = json!({"version": file.version, "servers": servers});
    if v12 {
        payload["admin_module_requests"] = modules(&file.admin_module_requests);
    }
    payload
}

fn modules(entries: &[ModuleEntry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|m| {
                json!({
                    "module_name": m.module_name,
                    "justification": m.justification,
                    "status": m.status,
                    "requested_by": m.requested_by,
                    "reviewed_by": m.reviewed_by,
                    "rejection_reason": m.rejection_reason,
                })
            })
            .collect(),
    )
}

fn networks(entries: &[NetworkEntry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|n| {
                let mut entry = json!({
                    "host": n.host,
                    "port": n.port,
                    "justification": n.justification,
                    "status": n.status,
                    "requested_by": n.requested_by,
                    "reviewed_by": n.reviewed_by,
                    "rejection_reason": n.rejection_reason,
                });
                // Signed only when present: a public entry signs as the reference's does.
                if let Some(scope) = &n.scope {
                    entry["scope"] = json!(scope);
                }
                entry
            })
            .collect(),
    )
}

/// Python's `json.dumps(value, sort_keys=True, separators=(",", ":"))`.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => {
            if let Some(i) = number.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = number.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(f) = number.as_f64() {
                out.push_str(&python_float(f));
            }
        }
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>) {
    // Code point order, as Python sorts str keys (UTF-8 byte order is the same order).
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, &map[key]);
    }
    out.push('}');
}

/// A JSON string with `ensure_ascii`: Python's escapes, everything outside printable ASCII as `\uXXXX`
/// (UTF-16 surrogate pairs above the BMP), lower-case hex.
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that read back, fixed notation for decimal
/// exponents -4 to 15 (always with a fractional part), else `d.ddde±XX`.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    // Rust's `{:e}` is the shortest round-trip form too: "1.2345e2", "1e-7", "0e0".
    let formatted = format!("{:e}", f.abs());
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exponent) {
        let point = exponent + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            let (int, frac) = digits.split_at(point as usize);
            format!("{int}.{frac}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let mantissa = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_is_what_python_json_dumps_writes() {
        // Each expected text is the output of CPython 3.11's
        // json.dumps(value, sort_keys=True, separators=(",", ":")).
        let value = json!({"b": [1, 2.5, null, true], "a": {"z": "é\"\\\n\u{1}", "y": "😀/<"}});
        assert_eq!(
            canonical(&value),
            r#"{"a":{"y":"\ud83d\ude00/<","z":"\u00e9\"\\\n\u0001"},"b":[1,2.5,null,true]}"#
        );
        for (f, text) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456.789, "123456.789"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (2.5e300, "2.5e+300"),
            (12345678901234567.0, "1.2345678901234568e+16"),
        ] {
            assert_eq!(python_float(f), text, "{f}");
        }
        assert_eq!(
            canonical(&json!("\u{7f}\t\u{8}\u{c}\r")),
            r#""\u007f\t\b\f\r""#
        );
    }

    #[test]
    fn the_signed_fields_depend_on_the_version() {
        let mut file: ExportFile = serde_json::from_value(json!({
            "version": "1.0",
            "servers": [{"name": "s", "tools": [{"name": "t", "python_code": "x"}]}],
        }))
        .unwrap();
        let payload = signed_payload(&file);
        assert!(payload.get("admin_module_requests").is_none());
        assert!(
            payload["servers"][0]["tools"][0]
                .get("module_requests")
                .is_none()
        );
        assert!(
            payload["servers"][0]
                .get("admin_network_requests")
                .is_none()
        );
        file.version = "1.2".into();
        let payload = signed_payload(&file);
        assert_eq!(payload["admin_module_requests"], json!([]));
        assert_eq!(
            payload["servers"][0]["tools"][0]["module_requests"],
            json!([])
        );
        assert_eq!(payload["servers"][0]["default_timeout_ms"], json!(30000));
    }

    #[test]
    fn a_signature_binds_every_signed_field() {
        let key = SigningKey::Derived([7; 32]);
        let file: ExportFile = serde_json::from_value(json!({
            "version": "1.2",
            "servers": [{"name": "s", "tools": [{"name": "t", "python_code": "x", "enabled": true}]}],
        }))
        .unwrap();
        let signature = sign(&file, &key);
        assert!(verify(&file, &signature, &key));
        assert!(!verify(&file, &signature, &SigningKey::Derived([8; 32])));
        assert!(!verify(&file, "not hex", &key));
        let mut changed = file.clone();
        changed.servers[0].tools[0].python_code = Some("y".into());
        assert!(!verify(&changed, &signature, &key));
        let mut changed = file.clone();
        changed.servers[0].tools[0].enabled = false;
        assert!(!verify(&changed, &signature, &key));
        // exported_at is not signed (the reference leaves it out).
        let mut changed = file;
        changed.exported_at = Some("2020-01-01T00:00:00Z".into());
        assert!(verify(&changed, &signature, &key));
    }
}
