//! Tools: list, create, inspect, version history, edit, delete, roll back, check code, and test runs.

use rmcp::model::JsonObject;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Context, ManagementTool, Paging, body_json};
use crate::app::AppState;
use crate::control::Principal;
use crate::error::Result;
use crate::names::Name;
use crate::tools;

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ListTools {
    server_id: String,
    #[serde(flatten)]
    paging: Paging,
}

impl ManagementTool for ListTools {
    const NAME: &'static str = "mcpbox_list_tools";
    const DESCRIPTION: &'static str = "List the tools of a server with their approval status.";
    const READ_ONLY: bool = true;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        crate::servers::get(&cx.state.db, &self.server_id).await?;
        let (limit, offset) = self.paging.limit_offset();
        let (listed, total) = tool_summaries(cx.state, &self.server_id, limit, offset).await?;
        Ok(json!({"tools": listed, "total": total, "page": self.paging.page, "page_size": limit}))
    }
}

/// A page of a server's tools with their newest version's description and approval status.
pub(super) async fn tool_summaries(
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

/// A stored input schema as JSON (it was derived and checked when saved).
fn stored_schema(text: &str) -> Value {
    serde_json::from_str::<Value>(text).unwrap_or(Value::Null)
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct CreateTool {
    server_id: String,
    name: String,
    description: Option<String>,
    python_code: String,
    /// MCP hints to clients about what the tool does (readOnlyHint, destructiveHint,
    /// idempotentHint, openWorldHint); a person reviews them with the code.
    annotations: Option<tools::Annotations>,
}

impl ManagementTool for CreateTool {
    const NAME: &'static str = "mcpbox_create_tool";
    const DESCRIPTION: &'static str = "Create a Python tool as a draft: `python_code` must define `main` (async or not); its \
             signature becomes the input schema and its docstring the description. A person must \
             approve it (see mcpbox_request_publish) before it can be called.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let name = Name::tool(&self.name)?;
        let new = tools::NewTool {
            server_id: &self.server_id,
            name: &name,
            description: self.description.as_deref().unwrap_or_default(),
            code: &self.python_code,
            source: tools::Source::Llm,
            audit: cx.audit,
            annotations: self.annotations.as_ref(),
        };
        let (tool, version) = tools::create(cx.state, new).await?;
        Ok(json!({
            "id": tool.id, "name": tool.name, "version": version.version,
            "approval_status": version.status,
            "input_schema": stored_schema(&version.input_schema),
            "output_schema": version.output_schema.as_deref().map(stored_schema),
            "annotations": tools::Annotations::from_stored(version.annotations.as_deref()),
            "next_step": "call mcpbox_request_publish so a person can review it",
        }))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct GetTool {
    tool_id: String,
}

impl ManagementTool for GetTool {
    const NAME: &'static str = "mcpbox_get_tool";
    const DESCRIPTION: &'static str = "A tool: its newest version's code, description, input schema and approval status, and the version that runs.";
    const READ_ONLY: bool = true;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let db = &cx.state.db;
        let tool = tools::get(db, &self.tool_id).await?;
        let newest = tools::version(db, &tool.id, tool.current_version).await?;
        Ok(json!({
            "id": tool.id, "server_id": tool.server_id, "name": tool.name,
            "kind": tool.kind.as_str(),
            "enabled": tool.enabled, "timeout_ms": tool.timeout_ms,
            "current_version": tool.current_version,
            "approved_version": tools::approved_version(db, &tool.id).await?,
            "description": newest.description, "python_code": newest.python_code,
            "input_schema": stored_schema(&newest.input_schema),
            "output_schema": newest.output_schema.as_deref().map(stored_schema),
            "annotations": tools::Annotations::from_stored(newest.annotations.as_deref()),
            "approval_status": newest.status, "rejection_reason": newest.rejection_reason,
        }))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ListToolVersions {
    tool_id: String,
}

impl ManagementTool for ListToolVersions {
    const NAME: &'static str = "mcpbox_list_tool_versions";
    const DESCRIPTION: &'static str =
        "Every version of a tool, newest first, with source, summary and approval status.";
    const READ_ONLY: bool = true;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let tool = tools::get(&cx.state.db, &self.tool_id).await?;
        let versions: Vec<Value> = tools::versions(&cx.state.db, &tool.id)
            .await?
            .into_iter()
            .map(|v| {
                json!({"version": v.version, "change_source": v.change_source,
                       "change_summary": v.change_summary, "status": v.status,
                       "created_by": v.created_by, "created_at": v.created_at})
            })
            .collect();
        Ok(
            json!({"tool_id": tool.id, "current_version": tool.current_version,
                  "total_versions": versions.len(), "versions": versions}),
        )
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct TestCode {
    tool_id: String,
    arguments: Option<JsonObject>,
}

impl ManagementTool for TestCode {
    const NAME: &'static str = "mcpbox_test_code";
    const DESCRIPTION: &'static str = "Run a tool's approved version (or its newest draft, if the policy approves automatically) with arguments, as a logged test. Like a call, it needs the tool enabled and its server running.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let arguments = Value::Object(self.arguments.unwrap_or_default());
        // An LLM's test run honours the admin's disable and stop like a call does.
        let outcome = crate::execution::test_run(
            cx.state,
            &self.tool_id,
            arguments,
            &cx.audit.actor,
            Principal::Llm,
        )
        .await?;
        Ok(body_json(crate::execution::TestAnswer::from(outcome)))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct UpdateTool {
    tool_id: String,
    name: Option<String>,
    description: Option<String>,
    python_code: Option<String>,
    enabled: Option<bool>,
    change_summary: Option<String>,
    /// New MCP hints (all of them; unset ones are dropped): makes a new draft version, like new
    /// code.
    annotations: Option<tools::Annotations>,
}

impl ManagementTool for UpdateTool {
    const NAME: &'static str = "mcpbox_update_tool";
    const DESCRIPTION: &'static str = "Change a tool. New code or description makes a new draft version (the approved one keeps running until the new one is approved; a version already waiting for review stays as it was). `enabled` can only be set to false here: an admin enables tools. A tool with an approved or pending version can only be renamed by an admin.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let changes = tools::Changes {
            name: self.name.as_deref().map(Name::tool).transpose()?,
            description: self.description,
            python_code: self.python_code,
            enabled: self.enabled,
            timeout_ms: None,
            summary: self.change_summary,
            annotations: self.annotations,
        };
        let (tool, version) = tools::update(
            cx.state,
            &self.tool_id,
            changes,
            tools::Source::Llm,
            cx.audit,
        )
        .await?;
        Ok(
            json!({"id": tool.id, "name": tool.name, "enabled": tool.enabled,
                  "current_version": tool.current_version,
                  "new_version": version.map(|v| json!({"version": v.version, "approval_status": v.status}))}),
        )
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct DeleteTool {
    tool_id: String,
}

impl ManagementTool for DeleteTool {
    const NAME: &'static str = "mcpbox_delete_tool";
    const DESCRIPTION: &'static str = "Delete a tool with its versions. Cannot be undone.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        tools::delete(cx.state, &self.tool_id, cx.audit).await?;
        Ok(json!({"deleted": self.tool_id}))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct RollbackTool {
    tool_id: String,
    #[schemars(range(min = 1))]
    version: i64,
}

impl ManagementTool for RollbackTool {
    const NAME: &'static str = "mcpbox_rollback_tool";
    const DESCRIPTION: &'static str = "Make an earlier version's code the newest version again, as a new draft that needs approval.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let version = tools::rollback(cx.state, &self.tool_id, self.version, cx.audit).await?;
        Ok(
            json!({"tool_id": self.tool_id, "version": version.version, "approval_status": version.status}),
        )
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ValidateCode {
    code: String,
    server_id: Option<String>,
}

impl ManagementTool for ValidateCode {
    const NAME: &'static str = "mcpbox_validate_code";
    const DESCRIPTION: &'static str = "Check Python tool code without saving it: syntax, safety rules, `main`, and the derived input schema. Give server_id to check against that server's allowed modules.";
    const READ_ONLY: bool = true;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let allowed_modules = match &self.server_id {
            Some(server_id) => Some(crate::access::allowed_modules(&cx.state.db, server_id).await?),
            None => None,
        };
        let checked = tools::check_code(&cx.state.sandbox, &self.code, allowed_modules).await?;
        let errors: Vec<Value> = checked
            .errors
            .iter()
            .map(
                |e| json!({"line": e.line, "col": e.col, "message": e.message, "source": e.source}),
            )
            .collect();
        Ok(json!({
            "valid": checked.valid, "has_main": checked.has_main,
            "errors": errors,
            "error": checked.as_tool_error(),
            "input_schema": checked.input_schema.as_deref().map(stored_schema),
            "output_schema": checked.output_schema.as_deref().map(stored_schema),
            "description": checked.description,
        }))
    }
}
