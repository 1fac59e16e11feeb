//! What an LLM asks a person for (a module, network access, a review of a tool's newest version)
//! and what waits for review.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Context, ManagementTool, PAGE_SIZE_MAX, access_json};
use crate::access::{self, Kind, NewRequest};
use crate::error::Result;
use crate::{approvals, tools};

#[derive(Deserialize, schemars::JsonSchema)]
pub struct RequestModule {
    tool_id: String,
    module_name: String,
    justification: String,
}

impl ManagementTool for RequestModule {
    const NAME: &'static str = "mcpbox_request_module";
    const DESCRIPTION: &'static str = "Ask a person to allow a Python module for a tool's server: a standard-library module (`csv`), or a PyPI distribution with an optional version (`pyyaml`, `feedparser==6.0.11`). A distribution is resolved now (exact versions, hashes, known vulnerabilities) and installed when approved; the tool then imports it under its import names (`import yaml`).";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let new = NewRequest {
            kind: Kind::Module,
            tool_id: &self.tool_id,
            target: &self.module_name,
            port: None,
            justification: &self.justification,
        };
        Ok(access_json(
            access::request_scoped(cx.state, cx.audit, new, None).await?,
        ))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct RequestNetworkAccess {
    tool_id: String,
    host: String,
    port: Option<i64>,
    lan: Option<bool>,
    justification: String,
}

impl ManagementTool for RequestNetworkAccess {
    const NAME: &'static str = "mcpbox_request_network_access";
    const DESCRIPTION: &'static str = "Ask a person to allow a tool's server to reach a host (optionally one port). `host` may carry the port (`api.example.com:8443`, `192.168.1.20:8123`, `[fd00::5]:1883`). A LAN host (`lan: true`; any private IP address is one) needs a port: approved, the tools reach exactly that host and port over `http` and raw TCP (`tcp.connect(host, port)`); loopback, link-local and metadata addresses are never allowed. Public hosts stay public-only, even if their name resolves to a private address.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let new = NewRequest {
            kind: Kind::Network,
            tool_id: &self.tool_id,
            target: &self.host,
            port: self.port,
            justification: &self.justification,
        };
        Ok(access_json(
            access::request_scoped(cx.state, cx.audit, new, self.lan).await?,
        ))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct RequestPublish {
    tool_id: String,
    notes: Option<String>,
}

impl ManagementTool for RequestPublish {
    const NAME: &'static str = "mcpbox_request_publish";
    const DESCRIPTION: &'static str =
        "Ask a person to review and approve the tool's newest version.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let notes = self.notes.as_deref();
        let version =
            approvals::request_publish(cx.state, &self.tool_id, None, notes, cx.audit).await?;
        Ok(
            json!({"tool_id": self.tool_id, "version": version.version, "approval_status": version.status}),
        )
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct GetToolStatus {
    tool_id: String,
}

impl ManagementTool for GetToolStatus {
    const NAME: &'static str = "mcpbox_get_tool_status";
    const DESCRIPTION: &'static str =
        "A tool's approval state and every module and network request made for it.";
    const READ_ONLY: bool = true;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let db = &cx.state.db;
        let tool = tools::get(db, &self.tool_id).await?;
        let newest = tools::version(db, &tool.id, tool.current_version).await?;
        let requests: Vec<Value> = access::requests_of(db, &tool.server_id, Some(&tool.id), false)
            .await?
            .into_iter()
            .map(access_json)
            .collect();
        Ok(json!({
            "tool_id": tool.id, "current_version": tool.current_version,
            "approved_version": tools::approved_version(db, &tool.id).await?,
            "approval_status": newest.status, "publish_notes": newest.publish_notes,
            "requested_at": newest.requested_at, "reviewed_by": newest.reviewed_by,
            "reviewed_at": newest.reviewed_at, "rejection_reason": newest.rejection_reason,
            "requests": requests,
        }))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ListPendingRequests {}

impl ManagementTool for ListPendingRequests {
    const NAME: &'static str = "mcpbox_list_pending_requests";
    const DESCRIPTION: &'static str =
        "What waits for a person's review: tool versions, module requests and network requests.";
    const READ_ONLY: bool = true;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let db = &cx.state.db;
        let (versions, tool_total) =
            approvals::queue(db, Some("pending_review"), PAGE_SIZE_MAX, 0).await?;
        let tools: Vec<Value> = versions
            .iter()
            .map(|item| {
                json!({"tool_id": item.tool_id, "tool_name": item.tool_name,
                       "server_name": item.server_name, "version": item.version.version,
                       "requested_at": item.version.requested_at})
            })
            .collect();
        let (modules, module_total) =
            access::queue(db, Kind::Module, Some("pending"), PAGE_SIZE_MAX, 0).await?;
        let (network, network_total) =
            access::queue(db, Kind::Network, Some("pending"), PAGE_SIZE_MAX, 0).await?;
        let sources = crate::external::pending(db).await?;
        let total = tool_total + module_total + network_total + sources.len() as i64;
        Ok(json!({
            "tools": tools,
            "modules": modules.into_iter().map(access_json).collect::<Vec<_>>(),
            "network": network.into_iter().map(access_json).collect::<Vec<_>>(),
            "sources": sources.iter().map(|source| json!({"id": source.id,
                "server_id": source.server_id, "name": source.name, "url": source.url,
                "created_by": source.created_by, "created_at": source.created_at}))
                .collect::<Vec<_>>(),
            "summary": {"tools": tool_total, "modules": module_total, "network": network_total,
                        "sources": sources.len(), "total": total},
        }))
    }
}
