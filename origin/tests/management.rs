//! The `mcpbox_*` management tools as MCP lists them, against a fixture generated once from the
//! hand-written list they replaced: names, order, descriptions, annotations and every
//! parameter's name, type, bounds and default are contracts LLM prompts rely on.

mod common;

use origin::gateway::management;
use serde_json::{Map, Value, json};

/// Where the fixture lives (generated from the hand-written list before the typed tools).
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/management_tools.json"
);

/// What of a listed tool is a contract, in a spelling-independent form: required as a sorted
/// set, each property's keywords that carry meaning (not how a generator spells the rest).
fn semantic(tool: &rmcp::model::Tool) -> Value {
    let schema = Value::Object((*tool.input_schema).clone());
    assert_eq!(schema["type"], "object", "{}: {schema}", tool.name);
    let mut required: Vec<String> = schema["required"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    required.sort();
    let mut properties = Map::new();
    if let Some(listed) = schema["properties"].as_object() {
        for (name, property) in listed {
            let mut kept = Map::new();
            for keyword in [
                "type",
                "minimum",
                "maximum",
                "default",
                "enum",
                "description",
            ] {
                if let Some(value) = property.get(keyword) {
                    kept.insert(keyword.to_owned(), value.clone());
                }
            }
            if let Some(items) = property.get("items") {
                kept.insert("items_type".to_owned(), items["type"].clone());
            }
            properties.insert(name.clone(), Value::Object(kept));
        }
    }
    let annotations = tool.annotations.as_ref();
    json!({
        "name": tool.name,
        "description": tool.description,
        "read_only": annotations.and_then(|a| a.read_only_hint),
        "destructive": annotations.and_then(|a| a.destructive_hint),
        "open_world": annotations.and_then(|a| a.open_world_hint),
        "required": required,
        "properties": properties,
    })
}

#[test]
fn the_management_tools_keep_their_names_parameters_and_order() {
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    let listed: Vec<Value> = management::tools().iter().map(semantic).collect();
    let expected = fixture["tools"].as_array().unwrap();
    assert_eq!(expected.len(), 28);
    for (index, expected) in expected.iter().enumerate() {
        assert_eq!(
            listed.get(index),
            Some(expected),
            "tool {index} ({}) changed",
            expected["name"]
        );
    }
    assert_eq!(
        json!(management::LOCAL_ONLY),
        fixture["local_only"],
        "the LOCAL_ONLY list changed"
    );
}
