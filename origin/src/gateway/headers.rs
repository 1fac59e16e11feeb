//! SEP-2243 request headers on 2026-07-28 requests: which `x-mcp-header` annotations the
//! gateway lists, so that every one it lists is one it checks.
//!
//! rmcp's Streamable HTTP server checks `Mcp-Method` and `Mcp-Name` against the body of every
//! 2026-07-28 request (missing or disagreeing: HTTP 400, JSON-RPC -32020), and the
//! `Mcp-Param-*` headers of a `tools/call` against the arguments, but only for a tool that
//! `ServerHandler::get_tool` returns, which is synchronous. So:
//! - the management tools (a fixed list) carry `x-mcp-header: Server-Id` on their
//!   `server_id` argument (a proxy can route or log by MCPbox server without reading the
//!   body), and `get_tool` returns them, so rmcp refuses a call whose `Mcp-Param-Server-Id`
//!   is missing or differs from the argument;
//! - a stored schema (a Python tool's, a passthrough tool's copy of its source's) is listed
//!   without `x-mcp-header` annotations: checking them would need the storage read rmcp's
//!   synchronous lookup cannot make, and an annotation listed but unchecked would be a
//!   promise the gateway does not keep. Clients then send no `Mcp-Param-*` for those tools.
//!
//! 2025-11-25 requests see the schemas as before, unannotated and unstripped: the headers
//! are a 2026-07-28 feature and rmcp checks nothing below that revision.

use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::model::{JsonObject, ProtocolVersion, Tool};
use rmcp::service::RequestContext;
use serde_json::Value;

/// The `x-mcp-header` name of a management tool's `server_id` (header `Mcp-Param-Server-Id`).
pub const SERVER_ID_HEADER: &str = "Server-Id";

/// The annotation keyword (SEP-2243).
const ANNOTATION: &str = "x-mcp-header";

/// Whether the request declares a revision with standard headers (2026-07-28 or later), the
/// same test rmcp applies before it checks them.
pub fn standard_headers(context: &RequestContext<RoleServer>) -> bool {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.headers.get("mcp-protocol-version"))
        .and_then(|value| value.to_str().ok())
        .is_some_and(|version| version >= ProtocolVersion::STANDARD_HEADERS.as_str())
}

/// A management tool with `x-mcp-header: Server-Id` on its `server_id` string argument.
pub fn annotate_management(tool: Tool) -> Tool {
    let mut schema = (*tool.input_schema).clone();
    if let Some(Value::Object(server_id)) = schema
        .get_mut("properties")
        .and_then(|properties| properties.get_mut("server_id"))
        && server_id.get("type").and_then(Value::as_str) == Some("string")
    {
        server_id.insert(ANNOTATION.to_owned(), SERVER_ID_HEADER.into());
    }
    let mut tool = tool;
    tool.input_schema = Arc::new(schema);
    tool
}

/// A stored tool without any `x-mcp-header` annotation (see the module comment).
pub fn unannotated(tool: Tool) -> Tool {
    if !mentions_annotation(&tool.input_schema) {
        return tool;
    }
    let mut schema = (*tool.input_schema).clone();
    strip(&mut schema);
    let mut tool = tool;
    tool.input_schema = Arc::new(schema);
    tool
}

/// Cheap test first: most schemas have no annotation, and are not copied.
fn mentions_annotation(schema: &JsonObject) -> bool {
    serde_json::to_string(schema).is_ok_and(|text| text.contains(ANNOTATION))
}

/// Removes the keyword from `schema` and every subschema; instance data (`default`,
/// `const`, `enum`, `examples`) is left alone, and a property *named* `x-mcp-header` (a key
/// of `properties`) stays: only the keyword inside a schema is removed.
fn strip(schema: &mut JsonObject) {
    schema.remove(ANNOTATION);
    for (key, value) in schema.iter_mut() {
        match key.as_str() {
            "default" | "const" | "enum" | "examples" | "dependentRequired" => {}
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas"
            | "dependencies" => {
                if let Value::Object(map) = value {
                    for subschema in map.values_mut() {
                        strip_value(subschema);
                    }
                }
            }
            _ => strip_value(value),
        }
    }
}

fn strip_value(value: &mut Value) {
    match value {
        Value::Object(schema) => strip(schema),
        Value::Array(items) => items.iter_mut().for_each(strip_value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(schema: Value) -> Tool {
        let Value::Object(schema) = schema else {
            panic!("a schema is an object")
        };
        Tool::new("t", "d", Arc::new(schema))
    }

    #[test]
    fn stored_schemas_lose_every_annotation_but_keep_properties_named_like_it() {
        let stripped = unannotated(tool(json!({
            "type": "object",
            "x-mcp-header": "Root",
            "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "x-mcp-header": {"type": "string", "default": {"x-mcp-header": "data"}},
                "nested": {"type": "object", "properties": {
                    "deep": {"type": "integer", "x-mcp-header": "Deep"}}},
                "list": {"type": "array", "items": {"type": "string", "x-mcp-header": "Item"}},
            },
            "$defs": {"d": {"type": "string", "x-mcp-header": "Def"}},
            "anyOf": [{"properties": {"a": {"x-mcp-header": "A"}}}],
        })));
        assert_eq!(
            Value::Object((*stripped.input_schema).clone()),
            json!({
                "type": "object",
                "properties": {
                    "region": {"type": "string"},
                    "x-mcp-header": {"type": "string", "default": {"x-mcp-header": "data"}},
                    "nested": {"type": "object", "properties": {"deep": {"type": "integer"}}},
                    "list": {"type": "array", "items": {"type": "string"}},
                },
                "$defs": {"d": {"type": "string"}},
                "anyOf": [{"properties": {"a": {}}}],
            })
        );
    }

    #[test]
    fn only_a_string_server_id_is_annotated() {
        let annotated = annotate_management(tool(json!({"type": "object", "properties": {
            "server_id": {"type": "string"}, "tool_id": {"type": "string"}}})));
        assert_eq!(
            annotated.input_schema["properties"],
            json!({"server_id": {"type": "string", "x-mcp-header": "Server-Id"},
                   "tool_id": {"type": "string"}})
        );
        let untouched = annotate_management(tool(
            json!({"type": "object", "properties": {"server_id": {"type": "integer"}}}),
        ));
        assert_eq!(
            untouched.input_schema["properties"],
            json!({"server_id": {"type": "integer"}})
        );
    }

    #[test]
    fn every_management_annotation_is_valid_for_a_2026_client() {
        // What a 2026-07-28 client checks before it keeps a tool (clients MUST drop a tool
        // whose annotations are invalid): a token, on a primitive property, once per tool.
        for tool in crate::gateway::management::tools()
            .into_iter()
            .map(annotate_management)
        {
            let properties = tool.input_schema["properties"].as_object().cloned();
            let annotated: Vec<_> = properties
                .iter()
                .flatten()
                .filter_map(|(name, schema)| Some((name, schema.get(ANNOTATION)?)))
                .collect();
            assert!(annotated.len() <= 1, "{}: {annotated:?}", tool.name);
            for (name, header) in annotated {
                assert_eq!(name, "server_id", "{}", tool.name);
                assert_eq!(header, SERVER_ID_HEADER);
                assert_eq!(tool.input_schema["properties"][name]["type"], "string");
            }
        }
    }
}
