//! External MCP sources: add one (pending a person's approval), list them, discover an approved
//! one's tools, and import them as draft passthrough tools.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Context, ManagementTool, body_json, with_field};
use crate::error::Result;
use crate::external::{self, Auth, DiscoveredBody, ImportBody, NewSource, SourceBody};

#[derive(Deserialize, schemars::JsonSchema)]
pub struct AddExternalSource {
    server_id: String,
    name: String,
    url: String,
    // `external` checks the values (the REST API takes the same strings); the schema lists them.
    #[schemars(extend("enum" = ["none", "bearer", "header", "oauth"], "default" = "none"))]
    auth_type: Option<String>,
    auth_secret_name: Option<String>,
    auth_header_name: Option<String>,
    #[schemars(extend("enum" = ["streamable_http", "sse"], "default" = "streamable_http"))]
    transport_type: Option<String>,
}

impl ManagementTool for AddExternalSource {
    const NAME: &'static str = "mcpbox_add_external_source";
    const DESCRIPTION: &'static str = "Add an external MCP server (Streamable HTTP, or the legacy HTTP+SSE \
             transport with transport_type sse) whose tools this server can offer. Auth comes from \
             one of the server's secrets, named in auth_secret_name (bearer: Authorization: \
             Bearer; header: the header auth_header_name), or is OAuth 2.1 (auth_type oauth: a \
             person signs in to the source from MCPbox's UI; no secret is given here). A person \
             must approve the source before MCPbox contacts it.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let new = NewSource {
            server_id: &self.server_id,
            name: &self.name,
            url: &self.url,
            auth: Auth::parse(
                self.auth_type.as_deref(),
                self.auth_secret_name.as_deref(),
                self.auth_header_name.as_deref(),
            )?,
            transport_type: self.transport_type.as_deref(),
            // Over MCP, a source waits for a person before MCPbox sends it anything.
            approved_by: None,
        };
        let source = external::add_recorded(cx.state, new, cx.audit).await?;
        Ok(with_field(
            body_json(SourceBody::from(source)),
            "next_step",
            "a person approves the source in MCPbox; then call mcpbox_discover_external_tools",
        ))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ListExternalSources {
    server_id: String,
}

impl ManagementTool for ListExternalSources {
    const NAME: &'static str = "mcpbox_list_external_sources";
    const DESCRIPTION: &'static str = "The external MCP sources of a server with status (pending_approval, active, error), last error and tool count.";
    const READ_ONLY: bool = true;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let sources: Vec<Value> = external::list(&cx.state.db, &self.server_id)
            .await?
            .into_iter()
            .map(|source| body_json(SourceBody::from(source)))
            .collect();
        Ok(json!({"server_id": self.server_id, "sources": sources}))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct DiscoverExternalTools {
    source_id: String,
}

impl ManagementTool for DiscoverExternalTools {
    const NAME: &'static str = "mcpbox_discover_external_tools";
    const DESCRIPTION: &'static str =
        "Connect to an approved external source and list (and remember) its tools.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        external::discover_recorded(cx.state, &self.source_id, cx.audit).await?;
        let tools: Vec<Value> = external::cached_tools(&cx.state.db, &self.source_id)
            .await?
            .into_iter()
            .map(|(tool, already)| body_json(DiscoveredBody::new(tool, already)))
            .collect();
        Ok(json!({"source_id": self.source_id, "tool_count": tools.len(), "tools": tools}))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ImportExternalTools {
    source_id: String,
    tool_names: Vec<String>,
}

impl ManagementTool for ImportExternalTools {
    const NAME: &'static str = "mcpbox_import_external_tools";
    const DESCRIPTION: &'static str = "Import discovered tools of an external source as draft passthrough tools named \
             {source}_{tool}; a person approves them like any tool.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let (imported, skipped) = external::import_recorded(
            cx.state,
            &self.source_id,
            &self.tool_names,
            crate::tools::Source::Llm,
            cx.audit,
        )
        .await?;
        Ok(with_field(
            body_json(ImportBody::new(imported, skipped)),
            "next_step",
            "call mcpbox_request_publish for each imported tool so a person can review it",
        ))
    }
}
