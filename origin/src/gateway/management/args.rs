//! A management tool's input schema, derived from its arguments' type, and the arguments read
//! against it: every check names the argument, and a refusal is a tool error the model reads
//! and corrects (MCP: input validation errors are tool execution errors, not protocol errors).

use rmcp::model::JsonObject;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};

/// The input schema of `T`, spelled as the tools have always been listed: one object of plain
/// properties (no `$schema`, title or number formats; an optional argument's type without
/// `null`, since an absent and a null argument mean the same here).
pub fn schema<T: JsonSchema>() -> JsonObject {
    let mut settings = SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    settings.meta_schema = None;
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut schema = match Value::from(schema) {
        Value::Object(schema) => schema,
        _ => JsonObject::new(),
    };
    schema.remove("title");
    schema.remove("description");
    // Listed with both keys even when empty, as before (some clients look for them).
    schema
        .entry("properties")
        .or_insert_with(|| Value::Object(JsonObject::new()));
    schema
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        for property in properties.values_mut() {
            if let Value::Object(property) = property {
                plain(property);
            }
        }
    }
    schema
}

fn plain(property: &mut JsonObject) {
    property.remove("format");
    // Any property is allowed in an object argument anyway.
    if property.get("additionalProperties") == Some(&Value::Bool(true)) {
        property.remove("additionalProperties");
    }
    if let Some(Value::Array(types)) = property.get("type") {
        let types: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
        if let [only] = types[..] {
            let only = only.clone();
            property.insert("type".into(), only);
        }
    }
    if let Some(Value::Object(items)) = property.get_mut("items") {
        plain(items);
    }
}

/// `raw` read as `T`: first checked against `schema` (`T`'s own), so a missing or mistyped
/// argument is named (serde's own messages do not say which field), then deserialized. A
/// null argument counts as absent, as clients send optional ones both ways.
pub fn parse<T: DeserializeOwned>(schema: &JsonObject, raw: &JsonObject) -> Result<T> {
    let present: JsonObject = raw
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    check(schema, &present)?;
    serde_json::from_value(Value::Object(present))
        .map_err(|err| Error::Validation(format!("the arguments do not fit this tool: {err}")))
}

/// The checks the listed schemas can ask for: required arguments, each argument's type (and
/// an array's items'), integer bounds, and a string's listed values. Unknown arguments are
/// ignored, as they always were.
fn check(schema: &JsonObject, args: &JsonObject) -> Result<()> {
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !args.contains_key(name) {
                return Err(Error::Validation(format!(
                    "the argument {name:?} is required"
                )));
            }
        }
    }
    let Some(Value::Object(properties)) = schema.get("properties") else {
        return Ok(());
    };
    for (name, value) in args {
        if let Some(Value::Object(property)) = properties.get(name) {
            check_value(name, property, value)?;
        }
    }
    Ok(())
}

fn check_value(name: &str, property: &JsonObject, value: &Value) -> Result<()> {
    let refused = |must: String| Err(Error::Validation(format!("the argument {name:?} {must}")));
    match property.get("type").and_then(Value::as_str) {
        Some("string") => {
            let Some(text) = value.as_str() else {
                return refused("must be a string".into());
            };
            if let Some(Value::Array(allowed)) = property.get("enum")
                && !allowed.iter().any(|a| a == text)
            {
                return refused(format!("must be one of {}", Value::Array(allowed.clone())));
            }
        }
        Some("integer") => {
            let Some(number) = value.as_i64() else {
                return refused("must be an integer".into());
            };
            let min = property.get("minimum").and_then(Value::as_i64);
            let max = property.get("maximum").and_then(Value::as_i64);
            match (min, max) {
                (Some(min), Some(max)) if !(min..=max).contains(&number) => {
                    return refused(format!("must be from {min} to {max}"));
                }
                (Some(min), None) if number < min => {
                    return refused(format!("must be at least {min}"));
                }
                (None, Some(max)) if number > max => {
                    return refused(format!("must be at most {max}"));
                }
                _ => {}
            }
        }
        Some("boolean") if !value.is_boolean() => return refused("must be true or false".into()),
        Some("object") if !value.is_object() => return refused("must be an object".into()),
        Some("array") => {
            let items = property.get("items").and_then(Value::as_object);
            let item_type = items.and_then(|i| i.get("type")).and_then(Value::as_str);
            let fits = match (value.as_array(), item_type) {
                (Some(list), Some("string")) => list.iter().all(Value::is_string),
                (Some(_), _) => true,
                (None, _) => false,
            };
            if !fits {
                return refused(match item_type {
                    Some(item) => format!("must be an array of {item}s"),
                    None => "must be an array".into(),
                });
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)] // read only through serde
    struct Example {
        name: String,
        note: Option<String>,
        #[schemars(range(min = 1, max = 5))]
        #[serde(default = "two")]
        count: i64,
        flag: Option<bool>,
        tags: Option<Vec<String>>,
        #[schemars(extend("enum" = ["a", "b"]))]
        kind: Option<String>,
        extra: Option<JsonObject>,
    }

    #[derive(Deserialize, JsonSchema)]
    struct Nothing {}

    fn two() -> i64 {
        2
    }

    fn refusal(args: Value) -> String {
        let Value::Object(args) = args else {
            panic!("an object")
        };
        match parse::<Example>(&schema::<Example>(), &args) {
            Ok(_) => panic!("accepted"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn the_schema_is_spelled_plainly() {
        let schema = Value::Object(schema::<Example>());
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "note": {"type": "string"},
                    "count": {"type": "integer", "minimum": 1, "maximum": 5, "default": 2},
                    "flag": {"type": "boolean"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "kind": {"type": "string", "enum": ["a", "b"]},
                    "extra": {"type": "object"},
                },
                "required": ["name"],
            })
        );
        assert_eq!(
            Value::Object(super::schema::<Nothing>()),
            json!({"type": "object", "properties": {}, "required": []})
        );
    }

    #[test]
    fn every_bad_argument_is_named() {
        for (args, expected) in [
            (json!({}), "\"name\" is required"),
            (json!({"name": null}), "\"name\" is required"),
            (json!({"name": 5}), "\"name\" must be a string"),
            (
                json!({"name": "x", "count": 0}),
                "\"count\" must be from 1 to 5",
            ),
            (
                json!({"name": "x", "count": 6}),
                "\"count\" must be from 1 to 5",
            ),
            (
                json!({"name": "x", "count": 1.5}),
                "\"count\" must be an integer",
            ),
            (
                json!({"name": "x", "count": "1"}),
                "\"count\" must be an integer",
            ),
            (
                json!({"name": "x", "flag": "yes"}),
                "\"flag\" must be true or false",
            ),
            (
                json!({"name": "x", "tags": "a"}),
                "\"tags\" must be an array of strings",
            ),
            (
                json!({"name": "x", "tags": [1]}),
                "\"tags\" must be an array of strings",
            ),
            (
                json!({"name": "x", "kind": "c"}),
                "\"kind\" must be one of [\"a\",\"b\"]",
            ),
            (
                json!({"name": "x", "extra": [1]}),
                "\"extra\" must be an object",
            ),
        ] {
            let message = refusal(args.clone());
            assert!(message.contains(expected), "{args}: {message}");
        }
    }

    #[test]
    fn nulls_are_absent_and_defaults_apply() {
        let Value::Object(args) = json!({"name": "x", "note": null, "count": null, "other": 1})
        else {
            panic!("an object")
        };
        let read = parse::<Example>(&schema::<Example>(), &args).unwrap();
        assert_eq!((read.name.as_str(), read.note, read.count), ("x", None, 2));
    }
}
