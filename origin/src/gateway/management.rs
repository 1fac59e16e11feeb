//! The `mcpbox_*` management tools: how an LLM grows the toolbox over MCP. Each is a thin call
//! into the same domain functions the REST API uses; results are JSON objects.
//!
//! Built so far (issue #5 lists 28): `list_servers`, `create_server`, `list_tools`,
//! `create_tool`, `request_publish`. The LOCAL_ONLY rule already covers the reference's whole
//! list, so tools added later are gated from the start.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

use super::Caller;
use crate::activity::Audit;
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::names::Name;
use crate::{approvals, servers, tools};

pub const PREFIX: &str = "mcpbox_";

/// Tools a remote caller (through the Worker) may use only when the policy's
/// `remote_tool_editing` is `enabled` (the reference's list).
pub const LOCAL_ONLY: [&str; 8] = [
    "mcpbox_create_server",
    "mcpbox_delete_server",
    "mcpbox_create_tool",
    "mcpbox_update_tool",
    "mcpbox_delete_tool",
    "mcpbox_rollback_tool",
    "mcpbox_add_external_source",
    "mcpbox_import_external_tools",
];

const PAGE_SIZE_MAX: i64 = 100;

/// The management tools as MCP lists them.
pub fn tools() -> Vec<Tool> {
    let page = json!({
        "page": {"type": "integer", "minimum": 1, "default": 1},
        "page_size": {"type": "integer", "minimum": 1, "maximum": PAGE_SIZE_MAX, "default": 50},
    });
    let with = |mut base: Value, more: Value| {
        if let (Some(base), Value::Object(more)) = (base.as_object_mut(), more) {
            base.extend(more);
        }
        base
    };
    [
        (
            "mcpbox_list_servers",
            "List the MCPbox servers (groups of tools) with their status.",
            with(page.clone(), json!({})),
            &[][..],
            true,
        ),
        (
            "mcpbox_create_server",
            "Create a server to hold new tools. Names: lower-case words joined by single underscores.",
            json!({"name": {"type": "string"}, "description": {"type": "string"}}),
            &["name"][..],
            false,
        ),
        (
            "mcpbox_list_tools",
            "List the tools of a server with their approval status.",
            with(page, json!({"server_id": {"type": "string"}})),
            &["server_id"][..],
            true,
        ),
        (
            "mcpbox_create_tool",
            "Create a Python tool as a draft: `python_code` must define `main` (async or not); its \
             signature becomes the input schema and its docstring the description. A person must \
             approve it (see mcpbox_request_publish) before it can be called.",
            json!({
                "server_id": {"type": "string"},
                "name": {"type": "string"},
                "description": {"type": "string"},
                "python_code": {"type": "string"},
            }),
            &["server_id", "name", "python_code"][..],
            false,
        ),
        (
            "mcpbox_request_publish",
            "Ask a person to review and approve the tool's newest version.",
            json!({"tool_id": {"type": "string"}, "notes": {"type": "string"}}),
            &["tool_id"][..],
            false,
        ),
    ]
    .into_iter()
    .map(|(name, description, properties, required, read_only)| {
        let schema = json!({"type": "object", "properties": properties, "required": required});
        let schema: JsonObject = match schema {
            Value::Object(schema) => schema,
            _ => JsonObject::new(),
        };
        Tool::new(name, description, Arc::new(schema)).with_annotations(
            ToolAnnotations::new()
                .read_only(read_only)
                .destructive(false)
                .open_world(false),
        )
    })
    .collect()
}

/// Runs management tool `name`. `Ok(None)`: no such management tool.
pub async fn call(
    state: &AppState,
    caller: &Caller,
    audit: &Audit,
    name: &str,
    args: &JsonObject,
) -> Result<Option<Value>> {
    if LOCAL_ONLY.contains(&name) && matches!(caller, Caller::Remote { .. }) {
        let policy = crate::settings::policy(&state.db).await?;
        if policy.remote_tool_editing != "enabled" {
            return Err(Error::Forbidden(
                "this tool is only available to local MCP clients: the security policy's \
                 remote_tool_editing is disabled",
            ));
        }
    }
    let value = match name {
        "mcpbox_list_servers" => {
            let (limit, offset, page) = paging(args)?;
            let (found, total) = servers::list(&state.db, limit, offset).await?;
            let servers: Vec<Value> = found
                .into_iter()
                .map(|s| {
                    json!({"id": s.id, "name": s.name, "description": s.description,
                           "status": if s.running { "running" } else { "stopped" },
                           "created_at": s.created_at})
                })
                .collect();
            json!({"servers": servers, "total": total, "page": page, "page_size": limit})
        }
        "mcpbox_create_server" => {
            let name = Name::server(text(args, "name")?)?;
            let description = optional_text(args, "description")?.unwrap_or_default();
            let server = servers::create_recorded(state, &name, description, audit).await?;
            json!({"id": server.id, "name": server.name, "status": "stopped"})
        }
        "mcpbox_list_tools" => {
            let server_id = text(args, "server_id")?;
            servers::get(&state.db, server_id).await?;
            let (limit, offset, page) = paging(args)?;
            let (found, total) = tools::list(&state.db, server_id, limit, offset).await?;
            let mut listed = Vec::with_capacity(found.len());
            for tool in found {
                let newest = tools::version(&state.db, &tool.id, tool.current_version).await?;
                listed.push(json!({
                    "id": tool.id, "name": tool.name, "description": newest.description,
                    "enabled": tool.enabled, "current_version": tool.current_version,
                    "approval_status": newest.status,
                    "approved_version": tools::approved_version(&state.db, &tool.id).await?,
                }));
            }
            json!({"tools": listed, "total": total, "page": page, "page_size": limit})
        }
        "mcpbox_create_tool" => {
            let name = Name::tool(text(args, "name")?)?;
            let new = tools::NewTool {
                server_id: text(args, "server_id")?,
                name: &name,
                description: optional_text(args, "description")?.unwrap_or_default(),
                code: text(args, "python_code")?,
                source: tools::Source::Llm,
                audit,
            };
            let (tool, version) = tools::create(state, new).await?;
            json!({
                "id": tool.id, "name": tool.name, "version": version.version,
                "approval_status": version.status,
                "input_schema": serde_json::from_str::<Value>(&version.input_schema).unwrap_or(Value::Null),
                "next_step": "call mcpbox_request_publish so a person can review it",
            })
        }
        "mcpbox_request_publish" => {
            let tool_id = text(args, "tool_id")?;
            let notes = optional_text(args, "notes")?;
            let version = approvals::request_publish(state, tool_id, None, notes, audit).await?;
            json!({"tool_id": tool_id, "version": version.version, "approval_status": version.status})
        }
        _ => return Ok(None),
    };
    Ok(Some(value))
}

fn text<'a>(args: &'a JsonObject, key: &str) -> Result<&'a str> {
    optional_text(args, key)?
        .ok_or_else(|| Error::Validation(format!("the argument {key:?} is required")))
}

fn optional_text<'a>(args: &'a JsonObject, key: &str) -> Result<Option<&'a str>> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(Error::Validation(format!(
            "the argument {key:?} must be a string"
        ))),
    }
}

/// `(limit, offset, page)` from `page` (≥ 1) and `page_size` (1..=100, default 50).
fn paging(args: &JsonObject) -> Result<(i64, i64, i64)> {
    let number = |key: &str, default: i64| match args.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value
            .as_i64()
            .ok_or_else(|| Error::Validation(format!("the argument {key:?} must be an integer"))),
    };
    let page = number("page", 1)?;
    let page_size = number("page_size", 50)?;
    if page < 1 || !(1..=PAGE_SIZE_MAX).contains(&page_size) {
        return Err(Error::Validation(format!(
            "page must be at least 1 and page_size between 1 and {PAGE_SIZE_MAX}"
        )));
    }
    Ok((page_size, (page - 1) * page_size, page))
}
