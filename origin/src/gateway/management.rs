//! The `mcpbox_*` management tools: how an LLM grows the toolbox over MCP. Each is a thin call
//! into the same domain functions the REST API uses; results are JSON objects.
//!
//! All 28 of issue #5, the four external-source ones (add/list/discover/import) over `external`.
//! LOCAL_ONLY covers the reference's whole list.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

use super::Caller;
use crate::activity::Audit;
use crate::app::AppState;
use crate::control::Principal;
use crate::error::{Error, Result};
use crate::names::Name;
use crate::{approvals, servers, tools};

/// Every management tool's name begins with it (`names` keeps other tools out of it).
pub const PREFIX: &str = crate::names::MANAGEMENT_PREFIX;

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
            "mcpbox_get_server",
            "A server with its tools (approval status each) and its pending module and network requests.",
            json!({"server_id": {"type": "string"}}),
            &["server_id"][..],
            true,
        ),
        (
            "mcpbox_get_tool",
            "A tool: its newest version's code, description, input schema and approval status, and the version that runs.",
            json!({"tool_id": {"type": "string"}}),
            &["tool_id"][..],
            true,
        ),
        (
            "mcpbox_list_tool_versions",
            "Every version of a tool, newest first, with source, summary and approval status.",
            json!({"tool_id": {"type": "string"}}),
            &["tool_id"][..],
            true,
        ),
        (
            "mcpbox_start_server",
            "Start a server: its approved, enabled tools become callable MCP tools. A server an admin stopped can only be started again by an admin.",
            json!({"server_id": {"type": "string"}}),
            &["server_id"][..],
            false,
        ),
        (
            "mcpbox_stop_server",
            "Stop a server: its tools are no longer callable (you may start it again; after an admin's stop only an admin can).",
            json!({"server_id": {"type": "string"}}),
            &["server_id"][..],
            false,
        ),
        (
            "mcpbox_test_code",
            "Run a tool's approved version (or its newest draft, if the policy approves automatically) with arguments, as a logged test. Like a call, it needs the tool enabled and its server running.",
            json!({"tool_id": {"type": "string"}, "arguments": {"type": "object"}}),
            &["tool_id"][..],
            false,
        ),
        (
            "mcpbox_get_tool_logs",
            "The newest execution logs of a tool (arguments redacted).",
            json!({"tool_id": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10}}),
            &["tool_id"][..],
            true,
        ),
        (
            "mcpbox_list_server_secrets",
            "The secret keys of a server and whether each has a value (values are never shown).",
            json!({"server_id": {"type": "string"}}),
            &["server_id"][..],
            true,
        ),
        (
            "mcpbox_request_module",
            "Ask a person to allow a Python module for a tool's server: a standard-library module (`csv`), or a PyPI distribution with an optional version (`pyyaml`, `feedparser==6.0.11`). A distribution is resolved now (exact versions, hashes, known vulnerabilities) and installed when approved; the tool then imports it under its import names (`import yaml`).",
            json!({"tool_id": {"type": "string"}, "module_name": {"type": "string"}, "justification": {"type": "string"}}),
            &["tool_id", "module_name", "justification"][..],
            false,
        ),
        (
            "mcpbox_request_network_access",
            "Ask a person to allow a tool's server to reach a host (optionally one port). `host` may carry the port (`api.example.com:8443`, `192.168.1.20:8123`, `[fd00::5]:1883`). A LAN host (`lan: true`; any private IP address is one) needs a port: approved, the tools reach exactly that host and port over `http` and raw TCP (`tcp.connect(host, port)`); loopback, link-local and metadata addresses are never allowed. Public hosts stay public-only, even if their name resolves to a private address.",
            json!({"tool_id": {"type": "string"}, "host": {"type": "string"}, "port": {"type": "integer"}, "lan": {"type": "boolean"}, "justification": {"type": "string"}}),
            &["tool_id", "host", "justification"][..],
            false,
        ),
        (
            "mcpbox_delete_server",
            "Delete a server with its tools, versions, secrets and logs. Cannot be undone.",
            json!({"server_id": {"type": "string"}}),
            &["server_id"][..],
            false,
        ),
        (
            "mcpbox_update_tool",
            "Change a tool. New code or description makes a new draft version (the approved one keeps running until the new one is approved; a version already waiting for review stays as it was). `enabled` can only be set to false here: an admin enables tools. A tool with an approved or pending version can only be renamed by an admin.",
            json!({"tool_id": {"type": "string"}, "name": {"type": "string"}, "description": {"type": "string"},
                   "python_code": {"type": "string"}, "enabled": {"type": "boolean"}, "change_summary": {"type": "string"}}),
            &["tool_id"][..],
            false,
        ),
        (
            "mcpbox_delete_tool",
            "Delete a tool with its versions. Cannot be undone.",
            json!({"tool_id": {"type": "string"}}),
            &["tool_id"][..],
            false,
        ),
        (
            "mcpbox_rollback_tool",
            "Make an earlier version's code the newest version again, as a new draft that needs approval.",
            json!({"tool_id": {"type": "string"}, "version": {"type": "integer", "minimum": 1}}),
            &["tool_id", "version"][..],
            false,
        ),
        (
            "mcpbox_validate_code",
            "Check Python tool code without saving it: syntax, safety rules, `main`, and the derived input schema. Give server_id to check against that server's allowed modules.",
            json!({"code": {"type": "string"}, "server_id": {"type": "string"}}),
            &["code"][..],
            true,
        ),
        (
            "mcpbox_get_server_modules",
            "The Python modules a server's tools may import.",
            json!({"server_id": {"type": "string"}}),
            &["server_id"][..],
            true,
        ),
        (
            "mcpbox_get_tool_status",
            "A tool's approval state and every module and network request made for it.",
            json!({"tool_id": {"type": "string"}}),
            &["tool_id"][..],
            true,
        ),
        (
            "mcpbox_create_server_secret",
            "Declare a secret a server's tools need (an admin sets its value; tools read it as secrets[KEY]).",
            json!({"server_id": {"type": "string"}, "key": {"type": "string"}, "description": {"type": "string"}}),
            &["server_id", "key"][..],
            false,
        ),
        (
            "mcpbox_list_pending_requests",
            "What waits for a person's review: tool versions, module requests and network requests.",
            json!({}),
            &[][..],
            true,
        ),
        (
            "mcpbox_request_publish",
            "Ask a person to review and approve the tool's newest version.",
            json!({"tool_id": {"type": "string"}, "notes": {"type": "string"}}),
            &["tool_id"][..],
            false,
        ),
        (
            "mcpbox_add_external_source",
            "Add an external MCP server (Streamable HTTP) whose tools this server can offer. \
             Auth comes from one of the server's secrets, named in auth_secret_name (bearer: \
             Authorization: Bearer; header: the header auth_header_name). A person must approve \
             the source before MCPbox contacts it.",
            json!({
                "server_id": {"type": "string"},
                "name": {"type": "string"},
                "url": {"type": "string"},
                "auth_type": {"type": "string", "enum": ["none", "bearer", "header"], "default": "none"},
                "auth_secret_name": {"type": "string"},
                "auth_header_name": {"type": "string"},
                "transport_type": {"type": "string", "enum": ["streamable_http", "sse"], "default": "streamable_http"},
            }),
            &["server_id", "name", "url"][..],
            false,
        ),
        (
            "mcpbox_list_external_sources",
            "The external MCP sources of a server with status (pending_approval, active, error), last error and tool count.",
            json!({"server_id": {"type": "string"}}),
            &["server_id"][..],
            true,
        ),
        (
            "mcpbox_discover_external_tools",
            "Connect to an approved external source and list (and remember) its tools.",
            json!({"source_id": {"type": "string"}}),
            &["source_id"][..],
            false,
        ),
        (
            "mcpbox_import_external_tools",
            "Import discovered tools of an external source as draft passthrough tools named \
             {source}_{tool}; a person approves them like any tool.",
            json!({"source_id": {"type": "string"}, "tool_names": {"type": "array", "items": {"type": "string"}}}),
            &["source_id", "tool_names"][..],
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
                .map(|server| body_json(servers::ServerBody::from(server)))
                .collect();
            json!({"servers": servers, "total": total, "page": page, "page_size": limit})
        }
        "mcpbox_create_server" => {
            let name = Name::server(text(args, "name")?)?;
            let description = optional_text(args, "description")?.unwrap_or_default();
            body_json(servers::ServerBody::from(
                servers::create_recorded(state, &name, description, audit).await?,
            ))
        }
        "mcpbox_list_tools" => {
            let server_id = text(args, "server_id")?;
            servers::get(&state.db, server_id).await?;
            let (limit, offset, page) = paging(args)?;
            let (listed, total) = tool_summaries(state, server_id, limit, offset).await?;
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
        "mcpbox_get_server" => {
            let server = servers::get(&state.db, text(args, "server_id")?).await?;
            let (listed, total) = tool_summaries(state, &server.id, PAGE_SIZE_MAX, 0).await?;
            let pending = crate::access::requests_of(&state.db, &server.id, None, true).await?;
            let mut shown = body_json(servers::ServerBody::from(server));
            if let Value::Object(fields) = &mut shown {
                fields.insert("tools".into(), listed.into());
                fields.insert("tool_count".into(), total.into());
                let pending: Vec<Value> = pending.into_iter().map(access_json).collect();
                fields.insert("pending_requests".into(), pending.into());
            }
            shown
        }
        "mcpbox_get_tool" => {
            let tool = tools::get(&state.db, text(args, "tool_id")?).await?;
            let newest = tools::version(&state.db, &tool.id, tool.current_version).await?;
            json!({
                "id": tool.id, "server_id": tool.server_id, "name": tool.name,
                "kind": tool.kind.as_str(),
                "enabled": tool.enabled, "timeout_ms": tool.timeout_ms,
                "current_version": tool.current_version,
                "approved_version": tools::approved_version(&state.db, &tool.id).await?,
                "description": newest.description, "python_code": newest.python_code,
                "input_schema": serde_json::from_str::<Value>(&newest.input_schema).unwrap_or(Value::Null),
                "approval_status": newest.status, "rejection_reason": newest.rejection_reason,
            })
        }
        "mcpbox_list_tool_versions" => {
            let tool = tools::get(&state.db, text(args, "tool_id")?).await?;
            let versions = tools::versions(&state.db, &tool.id).await?;
            let versions: Vec<Value> = versions
                .into_iter()
                .map(|v| {
                    json!({"version": v.version, "change_source": v.change_source,
                           "change_summary": v.change_summary, "status": v.status,
                           "created_by": v.created_by, "created_at": v.created_at})
                })
                .collect();
            json!({"tool_id": tool.id, "current_version": tool.current_version,
                   "total_versions": versions.len(), "versions": versions})
        }
        "mcpbox_start_server" | "mcpbox_stop_server" => {
            let running = name == "mcpbox_start_server";
            let server_id = text(args, "server_id")?;
            body_json(servers::ServerBody::from(
                servers::set_running_recorded(state, server_id, running, Principal::Llm, audit)
                    .await?,
            ))
        }
        "mcpbox_test_code" => {
            let arguments = match args.get("arguments") {
                None | Some(Value::Null) => Value::Object(JsonObject::new()),
                Some(value) => value.clone(),
            };
            // An LLM's test run honours the admin's disable and stop like a call does.
            let outcome = crate::execution::test_run(
                state,
                text(args, "tool_id")?,
                arguments,
                &audit.actor,
                Principal::Llm,
            )
            .await?;
            body_json(crate::execution::TestAnswer::from(outcome))
        }
        "mcpbox_get_tool_logs" => {
            let tool = tools::get(&state.db, text(args, "tool_id")?).await?;
            let limit = match args.get("limit") {
                None | Some(Value::Null) => 10,
                Some(value) => {
                    value
                        .as_i64()
                        .filter(|n| (1..=50).contains(n))
                        .ok_or_else(|| {
                            Error::Validation("limit must be an integer from 1 to 50".into())
                        })?
                }
            };
            let filter = crate::execution::LogFilter {
                tool_id: Some(tool.id),
                // A remote caller reads only its own calls; the local LLM (this machine's
                // trusted user) and admins (REST, UI) read every call.
                executed_by: caller.log_scope(),
                ..Default::default()
            };
            let (rows, total) = crate::execution::logs(&state.db, &filter, limit, 0).await?;
            let logs: Vec<Value> = rows
                .into_iter()
                .map(|row| body_json(crate::execution::LogBody::from(row)))
                .collect();
            json!({"logs": logs, "total": total})
        }
        "mcpbox_list_server_secrets" => {
            let server = servers::get(&state.db, text(args, "server_id")?).await?;
            let secrets: Vec<Value> = crate::secrets::list(&state.db, &server.id)
                .await?
                .into_iter()
                .map(|p| json!({"key": p.key, "description": p.description, "has_value": p.has_value}))
                .collect();
            json!({"server_id": server.id, "secrets": secrets})
        }
        "mcpbox_request_module" | "mcpbox_request_network_access" => {
            let module = name == "mcpbox_request_module";
            let port = match args.get("port") {
                None | Some(Value::Null) => None,
                Some(value) => Some(value.as_i64().ok_or_else(|| {
                    Error::Validation("the argument \"port\" must be an integer".into())
                })?),
            };
            let lan = match args.get("lan") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(lan)) => Some(*lan),
                Some(_) => {
                    return Err(Error::Validation(
                        "the argument \"lan\" must be true or false".into(),
                    ));
                }
            };
            let new = crate::access::NewRequest {
                kind: if module {
                    crate::access::Kind::Module
                } else {
                    crate::access::Kind::Network
                },
                tool_id: text(args, "tool_id")?,
                target: text(args, if module { "module_name" } else { "host" })?,
                port,
                justification: text(args, "justification")?,
            };
            access_json(crate::access::request_scoped(state, audit, new, lan).await?)
        }
        "mcpbox_delete_server" => {
            let server_id = text(args, "server_id")?;
            servers::delete_recorded(state, server_id, audit).await?;
            json!({"deleted": server_id})
        }
        "mcpbox_update_tool" => {
            let tool_id = text(args, "tool_id")?;
            let enabled = match args.get("enabled") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(enabled)) => Some(*enabled),
                Some(_) => {
                    return Err(Error::Validation(
                        "the argument \"enabled\" must be true or false".into(),
                    ));
                }
            };
            let changes = tools::Changes {
                name: optional_text(args, "name")?.map(Name::tool).transpose()?,
                description: optional_text(args, "description")?.map(str::to_owned),
                python_code: optional_text(args, "python_code")?.map(str::to_owned),
                enabled,
                timeout_ms: None,
                summary: optional_text(args, "change_summary")?.map(str::to_owned),
            };
            let (tool, version) =
                tools::update(state, tool_id, changes, tools::Source::Llm, audit).await?;
            json!({"id": tool.id, "name": tool.name, "enabled": tool.enabled,
                   "current_version": tool.current_version,
                   "new_version": version.map(|v| json!({"version": v.version, "approval_status": v.status}))})
        }
        "mcpbox_delete_tool" => {
            let tool_id = text(args, "tool_id")?;
            tools::delete(state, tool_id, audit).await?;
            json!({"deleted": tool_id})
        }
        "mcpbox_rollback_tool" => {
            let tool_id = text(args, "tool_id")?;
            let to = args.get("version").and_then(Value::as_i64).ok_or_else(|| {
                Error::Validation("the argument \"version\" must be an integer".into())
            })?;
            let version = tools::rollback(state, tool_id, to, audit).await?;
            json!({"tool_id": tool_id, "version": version.version, "approval_status": version.status})
        }
        "mcpbox_validate_code" => {
            let code = text(args, "code")?;
            let allowed_modules = match optional_text(args, "server_id")? {
                Some(server_id) => {
                    Some(crate::access::allowed_modules(&state.db, server_id).await?)
                }
                None => None,
            };
            let checked = tools::check_code(&state.sandbox, code, allowed_modules).await?;
            json!({
                "valid": checked.valid, "has_main": checked.has_main,
                "errors": checked.errors.iter().map(|e| json!({"line": e.line, "col": e.col, "message": e.message, "source": e.source})).collect::<Vec<_>>(),
                "error": checked.as_tool_error(),
                "input_schema": checked.input_schema.and_then(|t| serde_json::from_str::<Value>(&t).ok()),
                "description": checked.description,
            })
        }
        "mcpbox_get_server_modules" => {
            let server = servers::get(&state.db, text(args, "server_id")?).await?;
            let allowed = crate::access::allowed_modules(&state.db, &server.id).await?;
            let (global, custom) = crate::settings::global_modules(&state.db).await?;
            json!({"server_id": server.id, "allowed_modules": allowed,
                   "total_allowed": allowed.len(), "global_modules": global,
                   "is_custom_config": custom,
                   "default_modules": contract::sandbox::DEFAULT_MODULES})
        }
        "mcpbox_get_tool_status" => {
            let tool = tools::get(&state.db, text(args, "tool_id")?).await?;
            let newest = tools::version(&state.db, &tool.id, tool.current_version).await?;
            let requests: Vec<Value> =
                crate::access::requests_of(&state.db, &tool.server_id, Some(&tool.id), false)
                    .await?
                    .into_iter()
                    .map(access_json)
                    .collect();
            json!({
                "tool_id": tool.id, "current_version": tool.current_version,
                "approved_version": tools::approved_version(&state.db, &tool.id).await?,
                "approval_status": newest.status, "publish_notes": newest.publish_notes,
                "requested_at": newest.requested_at, "reviewed_by": newest.reviewed_by,
                "reviewed_at": newest.reviewed_at, "rejection_reason": newest.rejection_reason,
                "requests": requests,
            })
        }
        "mcpbox_create_server_secret" => {
            let server_id = text(args, "server_id")?;
            let key = text(args, "key")?;
            let description = optional_text(args, "description")?.unwrap_or_default();
            crate::secrets::create_placeholder_recorded(state, server_id, key, description, audit)
                .await?;
            json!({"server_id": server_id, "key": key, "has_value": false,
                   "next_step": "an admin sets the value in MCPbox; tools read it as secrets[KEY]"})
        }
        "mcpbox_list_pending_requests" => {
            let (versions, tool_total) =
                approvals::queue(&state.db, Some("pending_review"), PAGE_SIZE_MAX, 0).await?;
            let tools: Vec<Value> = versions
                .iter()
                .map(|item| {
                    json!({"tool_id": item.tool_id, "tool_name": item.tool_name,
                           "server_name": item.server_name, "version": item.version.version,
                           "requested_at": item.version.requested_at})
                })
                .collect();
            let (modules, module_total) = crate::access::queue(
                &state.db,
                crate::access::Kind::Module,
                Some("pending"),
                PAGE_SIZE_MAX,
                0,
            )
            .await?;
            let (network, network_total) = crate::access::queue(
                &state.db,
                crate::access::Kind::Network,
                Some("pending"),
                PAGE_SIZE_MAX,
                0,
            )
            .await?;
            let sources = crate::external::pending(&state.db).await?;
            json!({
                "tools": tools,
                "modules": modules.into_iter().map(access_json).collect::<Vec<_>>(),
                "network": network.into_iter().map(access_json).collect::<Vec<_>>(),
                "sources": sources.iter().map(|source| json!({"id": source.id,
                    "server_id": source.server_id, "name": source.name, "url": source.url,
                    "created_by": source.created_by, "created_at": source.created_at}))
                    .collect::<Vec<_>>(),
                "summary": {"tools": tool_total, "modules": module_total, "network": network_total,
                            "sources": sources.len(),
                            "total": tool_total + module_total + network_total + sources.len() as i64},
            })
        }
        "mcpbox_add_external_source" => {
            let new = crate::external::NewSource {
                server_id: text(args, "server_id")?,
                name: text(args, "name")?,
                url: text(args, "url")?,
                auth: crate::external::Auth::parse(
                    optional_text(args, "auth_type")?,
                    optional_text(args, "auth_secret_name")?,
                    optional_text(args, "auth_header_name")?,
                )?,
                transport_type: optional_text(args, "transport_type")?,
                // Over MCP, a source waits for a person before MCPbox sends it anything.
                approved_by: None,
            };
            let source = crate::external::add_recorded(state, new, audit).await?;
            let mut shown = body_json(crate::external::SourceBody::from(source));
            if let Value::Object(fields) = &mut shown {
                fields.insert(
                    "next_step".into(),
                    "a person approves the source in MCPbox; then call mcpbox_discover_external_tools"
                        .into(),
                );
            }
            shown
        }
        "mcpbox_list_external_sources" => {
            let server_id = text(args, "server_id")?;
            let sources: Vec<Value> = crate::external::list(&state.db, server_id)
                .await?
                .into_iter()
                .map(|source| body_json(crate::external::SourceBody::from(source)))
                .collect();
            json!({"server_id": server_id, "sources": sources})
        }
        "mcpbox_discover_external_tools" => {
            let source_id = text(args, "source_id")?;
            crate::external::discover_recorded(state, source_id, audit).await?;
            let tools: Vec<Value> = crate::external::cached_tools(&state.db, source_id)
                .await?
                .into_iter()
                .map(|(tool, already)| {
                    body_json(crate::external::DiscoveredBody::new(tool, already))
                })
                .collect();
            json!({"source_id": source_id, "tool_count": tools.len(), "tools": tools})
        }
        "mcpbox_import_external_tools" => {
            let source_id = text(args, "source_id")?;
            let names = match args.get("tool_names") {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect::<Option<Vec<String>>>(),
                _ => None,
            }
            .ok_or_else(|| {
                Error::Validation("the argument \"tool_names\" must be an array of strings".into())
            })?;
            let (imported, skipped) = crate::external::import_recorded(
                state,
                source_id,
                &names,
                tools::Source::Llm,
                audit,
            )
            .await?;
            let mut shown = body_json(crate::external::ImportBody::new(imported, skipped));
            if let Value::Object(fields) = &mut shown {
                fields.insert(
                    "next_step".into(),
                    "call mcpbox_request_publish for each imported tool so a person can review it"
                        .into(),
                );
            }
            shown
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

/// A page of a server's tools with their newest version's description and approval status.
async fn tool_summaries(
    state: &AppState,
    server_id: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Value>, i64)> {
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
    Ok((listed, total))
}

/// Answers reuse the REST bodies, so both fronts show the same fields.
fn access_json(request: crate::access::AccessRequest) -> Value {
    body_json(crate::access::RequestBody::from(request))
}

fn body_json(body: impl serde::Serialize) -> Value {
    serde_json::to_value(body).unwrap_or(Value::Null)
}
