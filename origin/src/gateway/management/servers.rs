//! Servers: list, create, inspect, start and stop, delete, and the modules their tools may import.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Context, ManagementTool, PAGE_SIZE_MAX, Paging, access_json, body_json, with_field};
use crate::control::Principal;
use crate::error::Result;
use crate::names::Name;
use crate::servers::{self, ServerBody};

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ListServers {
    #[serde(flatten)]
    paging: Paging,
}

impl ManagementTool for ListServers {
    const NAME: &'static str = "mcpbox_list_servers";
    const DESCRIPTION: &'static str =
        "List the MCPbox servers (groups of tools) with their status.";
    const READ_ONLY: bool = true;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let (limit, offset) = self.paging.limit_offset();
        let (found, total) = servers::list(&cx.state.db, limit, offset).await?;
        let servers: Vec<Value> = found
            .into_iter()
            .map(|server| body_json(ServerBody::from(server)))
            .collect();
        Ok(
            json!({"servers": servers, "total": total, "page": self.paging.page, "page_size": limit}),
        )
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct CreateServer {
    name: String,
    description: Option<String>,
}

impl ManagementTool for CreateServer {
    const NAME: &'static str = "mcpbox_create_server";
    const DESCRIPTION: &'static str =
        "Create a server to hold new tools. Names: lower-case words joined by single underscores.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let name = Name::server(&self.name)?;
        let description = self.description.as_deref().unwrap_or_default();
        let created = servers::create_recorded(cx.state, &name, description, cx.audit).await?;
        Ok(body_json(ServerBody::from(created)))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct GetServer {
    server_id: String,
}

impl ManagementTool for GetServer {
    const NAME: &'static str = "mcpbox_get_server";
    const DESCRIPTION: &'static str = "A server with its tools (approval status each) and its pending module and network requests.";
    const READ_ONLY: bool = true;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let db = &cx.state.db;
        let server = servers::get(db, &self.server_id).await?;
        let (listed, total) =
            super::tools::tool_summaries(cx.state, &server.id, PAGE_SIZE_MAX, 0).await?;
        let pending = crate::access::requests_of(db, &server.id, None, true).await?;
        let pending: Vec<Value> = pending.into_iter().map(access_json).collect();
        let shown = body_json(ServerBody::from(server));
        let shown = with_field(shown, "tools", listed);
        let shown = with_field(shown, "tool_count", total);
        Ok(with_field(shown, "pending_requests", pending))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct StartServer {
    server_id: String,
}

impl ManagementTool for StartServer {
    const NAME: &'static str = "mcpbox_start_server";
    const DESCRIPTION: &'static str = "Start a server: its approved, enabled tools become callable MCP tools. A server an admin stopped can only be started again by an admin.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        set_running(cx, &self.server_id, true).await
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct StopServer {
    server_id: String,
}

impl ManagementTool for StopServer {
    const NAME: &'static str = "mcpbox_stop_server";
    const DESCRIPTION: &'static str = "Stop a server: its tools are no longer callable (you may start it again; after an admin's stop only an admin can).";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        set_running(cx, &self.server_id, false).await
    }
}

/// An LLM's start or stop: `Principal::Llm`, so an admin's stop holds against it.
async fn set_running(cx: &Context<'_>, server_id: &str, running: bool) -> Result<Value> {
    let server =
        servers::set_running_recorded(cx.state, server_id, running, Principal::Llm, cx.audit)
            .await?;
    Ok(body_json(ServerBody::from(server)))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct DeleteServer {
    server_id: String,
}

impl ManagementTool for DeleteServer {
    const NAME: &'static str = "mcpbox_delete_server";
    const DESCRIPTION: &'static str =
        "Delete a server with its tools, versions, secrets and logs. Cannot be undone.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        servers::delete_recorded(cx.state, &self.server_id, cx.audit).await?;
        Ok(json!({"deleted": self.server_id}))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct GetServerModules {
    server_id: String,
}

impl ManagementTool for GetServerModules {
    const NAME: &'static str = "mcpbox_get_server_modules";
    const DESCRIPTION: &'static str = "The Python modules a server's tools may import.";
    const READ_ONLY: bool = true;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let db = &cx.state.db;
        let server = servers::get(db, &self.server_id).await?;
        let allowed = crate::access::allowed_modules(db, &server.id).await?;
        let (global, custom) = crate::settings::global_modules(db).await?;
        Ok(json!({"server_id": server.id, "allowed_modules": allowed,
                  "total_allowed": allowed.len(), "global_modules": global,
                  "is_custom_config": custom,
                  "default_modules": contract::sandbox::DEFAULT_MODULES}))
    }
}
