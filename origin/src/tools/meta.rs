//! What a version declares besides its code: the MCP tool annotations its author gave, and the
//! output schema the sandbox derived from `main`'s return annotation. Both are stored on the
//! (immutable) version and covered by its hash (`version_hash`), so an approval binds them; and
//! `structured` is the one check of a result against the output schema, at call time.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The key in an output schema that says a non-object return type was wrapped as
/// `{"result": <schema>}` (the sandbox's `runtime.WRAP_RESULT`): the value is wrapped the same
/// way before it is checked and returned as `structuredContent`.
pub const WRAP_RESULT: &str = "x-mcpbox-wrap-result";

/// Most schema mismatches one tool error lists.
const MAX_MISMATCHES: usize = 5;
/// Most characters of one mismatch's text (it quotes the value, which may be large).
const MISMATCH_CHARS: usize = 300;

/// MCP tool annotations (hints to clients about what a tool does), as its author declares them.
/// They are hints: MCPbox does not enforce them, but a person approves them with the code.
///
/// Deserialized only from a JSON object (`AnnotationFields`): serde's derived form would also
/// take a sequence (`[true, null]`) and bind hints by position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = tools::Annotations)]
pub struct Annotations {
    /// The tool does not change anything (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    /// The tool may destroy or overwrite data (meaningful when not read-only; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive_hint: Option<bool>,
    /// Calling it again with the same arguments has no further effect (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent_hint: Option<bool>,
    /// The tool reaches outside systems, such as the internet (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_world_hint: Option<bool>,
}

/// `Annotations` as serde reads them, once the value is known to be an object.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AnnotationFields {
    #[serde(default)]
    read_only_hint: Option<bool>,
    #[serde(default)]
    destructive_hint: Option<bool>,
    #[serde(default)]
    idempotent_hint: Option<bool>,
    #[serde(default)]
    open_world_hint: Option<bool>,
}

impl<'de> Deserialize<'de> for Annotations {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let object = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let fields: AnnotationFields =
            serde_json::from_value(serde_json::Value::Object(object)).map_err(D::Error::custom)?;
        Ok(Annotations {
            read_only_hint: fields.read_only_hint,
            destructive_hint: fields.destructive_hint,
            idempotent_hint: fields.idempotent_hint,
            open_world_hint: fields.open_world_hint,
        })
    }
}

impl Annotations {
    /// The stored form: canonical JSON (fixed field order, unset hints left out), or `None` when
    /// no hint is set, so "no annotations" has one representation.
    pub fn to_stored(&self) -> Option<String> {
        if *self == Annotations::default() {
            return None;
        }
        serde_json::to_string(self).ok()
    }

    /// A stored value back (`None` for one that does not parse, which the hash check catches
    /// first: nothing but `to_stored` writes the column).
    pub fn from_stored(text: Option<&str>) -> Option<Annotations> {
        text.and_then(|text| serde_json::from_str(text).ok())
    }

    pub fn to_mcp(&self) -> rmcp::model::ToolAnnotations {
        let mut annotations = rmcp::model::ToolAnnotations::default();
        annotations.read_only_hint = self.read_only_hint;
        annotations.destructive_hint = self.destructive_hint;
        annotations.idempotent_hint = self.idempotent_hint;
        annotations.open_world_hint = self.open_world_hint;
        annotations
    }

    /// One line for a reviewer, e.g. `readOnlyHint: true, openWorldHint: false`.
    pub fn summary(&self) -> String {
        [
            ("readOnlyHint", self.read_only_hint),
            ("destructiveHint", self.destructive_hint),
            ("idempotentHint", self.idempotent_hint),
            ("openWorldHint", self.open_world_hint),
        ]
        .iter()
        .filter_map(|(name, value)| value.map(|value| format!("{name}: {value}")))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// The hash a version is approved under. A version without annotations and output schema (every
/// version written before they existed) keeps the code's plain SHA-256, so stored hashes still
/// verify; one with either hashes a versioned, length-prefixed encoding of all three, so none of
/// them can change (or be removed) without the hash changing.
pub fn version_hash(code: &str, annotations: Option<&str>, output_schema: Option<&str>) -> String {
    if annotations.is_none() && output_schema.is_none() {
        return super::code_hash(code);
    }
    let mut hasher = Sha256::new();
    hasher.update(b"mcpbox-version-v2\0");
    for part in [Some(code), annotations, output_schema] {
        match part {
            Some(text) => {
                hasher.update([1]);
                hasher.update((text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
            }
            None => hasher.update([0]),
        }
    }
    hex::encode(hasher.finalize())
}

/// What a version declares besides its code, as a reviewer reads it (the UI's review page and
/// the metadata part of `diff`): the annotations on one line, the output schema pretty-printed.
pub fn reviewed_text(annotations: Option<&str>, output_schema: Option<&str>) -> String {
    let annotations = match Annotations::from_stored(annotations) {
        Some(annotations) => annotations.summary(),
        None => "none".to_owned(),
    };
    let output_schema = match output_schema {
        Some(text) => serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|schema| serde_json::to_string_pretty(&schema).ok())
            .unwrap_or_else(|| text.to_owned()),
        None => "none (results are not checked)".to_owned(),
    };
    format!("annotations: {annotations}\noutput schema: {output_schema}\n")
}

/// A stored output schema as the JSON object MCP lists (`None` if it is not an object, which
/// the sandbox never writes).
pub fn output_schema_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(schema)) => Some(schema),
        _ => None,
    }
}

/// A tool's return value as the `structuredContent` its output schema describes (wrapped as
/// `{"result": value}` when the schema says so), checked against that schema. `Err` says what
/// did not match, for a tool error the author can act on.
pub fn structured(output_schema: &str, value: Value) -> Result<Value, String> {
    let Some(schema) = output_schema_object(output_schema) else {
        return Err("the tool's stored output schema is not a JSON object".into());
    };
    let wrapped = schema.get(WRAP_RESULT) == Some(&Value::Bool(true));
    let value = if wrapped {
        Value::Object(Map::from_iter([("result".to_owned(), value)]))
    } else {
        value
    };
    let schema = Value::Object(schema);
    let validator = jsonschema::options()
        .should_validate_formats(false)
        .build(&schema)
        .map_err(|err| format!("the tool's output schema cannot be used: {err}"))?;
    let mismatches: Vec<String> = validator
        .iter_errors(&value)
        .take(MAX_MISMATCHES)
        .map(|err| {
            let at = err.instance_path().to_string();
            let at = if wrapped {
                at.strip_prefix("/result").unwrap_or(&at).to_owned()
            } else {
                at
            };
            let text = err.to_string();
            let text = if text.chars().count() > MISMATCH_CHARS {
                let cut: String = text.chars().take(MISMATCH_CHARS).collect();
                format!("{cut}…")
            } else {
                text
            };
            if at.is_empty() {
                text
            } else {
                format!("at {at}: {text}")
            }
        })
        .collect();
    if mismatches.is_empty() {
        Ok(value)
    } else {
        Err(format!(
            "the tool's result does not match its output schema (from main's return annotation): {}",
            mismatches.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_version_without_metadata_keeps_the_code_hash() {
        assert_eq!(version_hash("x", None, None), super::super::code_hash("x"));
        let with = version_hash("x", Some(r#"{"readOnlyHint":true}"#), None);
        assert_ne!(with, super::super::code_hash("x"));
        // The parts cannot be shifted into one another.
        assert_ne!(
            version_hash("x", Some("a"), None),
            version_hash("x", None, Some("a"))
        );
        assert_ne!(
            version_hash("x", Some(r#"{"readOnlyHint":true}"#), None),
            version_hash("x", Some(r#"{"readOnlyHint":false}"#), None)
        );
    }

    #[test]
    fn no_hint_is_no_annotations() {
        assert_eq!(Annotations::default().to_stored(), None);
        let one = Annotations {
            read_only_hint: Some(true),
            ..Annotations::default()
        };
        assert_eq!(one.to_stored().as_deref(), Some(r#"{"readOnlyHint":true}"#));
        assert_eq!(
            Annotations::from_stored(one.to_stored().as_deref()),
            Some(one)
        );
    }

    #[test]
    fn a_wrapped_result_is_checked_inside_its_wrapper() {
        let schema = json!({"type": "object", "properties": {"result": {"type": "integer"}},
            "required": ["result"], WRAP_RESULT: true})
        .to_string();
        assert_eq!(structured(&schema, json!(3)), Ok(json!({"result": 3})));
        let err = structured(&schema, json!("three")).unwrap_err();
        assert!(
            err.contains("\"three\" is not of type \"integer\""),
            "{err}"
        );
        let object = json!({"type": "object", "properties": {"n": {"type": "integer"}},
            "required": ["n"]})
        .to_string();
        assert_eq!(structured(&object, json!({"n": 1})), Ok(json!({"n": 1})));
        let err = structured(&object, json!({"n": "x"})).unwrap_err();
        assert!(err.contains("at /n:"), "{err}");
        assert!(structured(&object, json!([1])).is_err());
    }

    #[test]
    fn annotations_are_read_only_from_an_object() {
        let hints: Annotations =
            serde_json::from_value(serde_json::json!({"readOnlyHint": true})).unwrap();
        assert_eq!(hints.read_only_hint, Some(true));
        for bad in [
            serde_json::json!([true, null]),
            serde_json::json!([null, null]),
            serde_json::json!({"readOnly": true}),
            serde_json::json!("readOnlyHint"),
        ] {
            assert!(
                serde_json::from_value::<Annotations>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
