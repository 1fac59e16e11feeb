//! Prompts and resources: list, create, change (over `prompts`). Publishing, status, versions,
//! rollback and delete are the tool ones (`mcpbox_request_publish` and the rest take a prompt's
//! or resource's id as `tool_id`): one approval flow for everything.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Context, ManagementTool, Paging};
use crate::error::Result;
use crate::names::Name;
use crate::prompts::{
    self, Item, ItemChanges, NewItem, PromptArgument, PromptContent, ResourceContent,
};
use crate::tools::{self, Kind, Source, Tool, Version};

/// A page of a server's prompts or resources with their newest version's status and content.
async fn summaries(
    cx: &Context<'_>,
    server_id: &str,
    kind: Kind,
    paging: &Paging,
) -> Result<Value> {
    let db = &cx.state.db;
    let server = crate::servers::get(db, server_id).await?;
    let (limit, offset) = paging.limit_offset();
    let (found, total) = prompts::list(db, server_id, kind, limit, offset).await?;
    let mut listed = Vec::with_capacity(found.len());
    for item in found {
        let newest = tools::version(db, &item.id, item.current_version).await?;
        let content: Value = serde_json::from_str(&newest.python_code).unwrap_or(Value::Null);
        let mut entry = json!({
            "id": item.id, "name": item.name, "description": newest.description,
            "enabled": item.enabled, "current_version": item.current_version,
            "approval_status": newest.status,
            "approved_version": tools::approved_version(db, &item.id).await?,
            "content": content,
        });
        if let Ok(Item::Resource(resource)) = Item::parse(kind, &newest.python_code) {
            entry["uri"] = prompts::uri(&server.name, &item.name, &resource.params).into();
        }
        listed.push(entry);
    }
    let key = match kind {
        Kind::Prompt => "prompts",
        _ => "resources",
    };
    Ok(json!({key: listed, "total": total, "page": paging.page, "page_size": limit}))
}

fn created(item: &Tool, version: &Version) -> Value {
    json!({
        "id": item.id, "name": item.name, "kind": item.kind.as_str(), "version": version.version,
        "approval_status": version.status,
        "next_step": "call mcpbox_request_publish with this id as tool_id so a person can review it",
    })
}

fn changed(item: &Tool, version: Option<Version>) -> Value {
    json!({"id": item.id, "name": item.name, "enabled": item.enabled,
           "current_version": item.current_version,
           "new_version": version.map(|v| json!({"version": v.version, "approval_status": v.status}))})
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ListPrompts {
    server_id: String,
    #[serde(flatten)]
    paging: Paging,
}

impl ManagementTool for ListPrompts {
    const NAME: &'static str = "mcpbox_list_prompts";
    const DESCRIPTION: &'static str =
        "List the prompts of a server with their template, arguments and approval status.";
    const READ_ONLY: bool = true;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        summaries(cx, &self.server_id, Kind::Prompt, &self.paging).await
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct CreatePrompt {
    server_id: String,
    name: String,
    description: Option<String>,
    /// Text with `{argument}` placeholders, replaced by the arguments' values (nothing else is
    /// special).
    template: String,
    #[serde(default)]
    arguments: Vec<PromptArgument>,
}

impl ManagementTool for CreatePrompt {
    const NAME: &'static str = "mcpbox_create_prompt";
    const DESCRIPTION: &'static str = "Create an MCP prompt as a draft: `template` is text in which `{name}` is replaced by the value of the declared argument `name` (plain substitution, no code). A person must approve it (see mcpbox_request_publish, with the prompt's id as tool_id) before clients see it in prompts/list.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let name = Name::tool(&self.name)?;
        let item = Item::Prompt(PromptContent {
            template: self.template,
            arguments: self.arguments,
            attachments: Vec::new(),
        });
        let new = NewItem {
            server_id: &self.server_id,
            name: &name,
            description: self.description.as_deref().unwrap_or_default(),
            item,
            source: Source::Llm,
            audit: cx.audit,
        };
        let (item, version) = prompts::create(cx.state, new).await?;
        Ok(created(&item, &version))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct UpdatePrompt {
    prompt_id: String,
    name: Option<String>,
    description: Option<String>,
    /// The new template (the newest version's is kept when absent).
    template: Option<String>,
    /// The new arguments, all of them (the newest version's are kept when absent).
    arguments: Option<Vec<PromptArgument>>,
    enabled: Option<bool>,
    change_summary: Option<String>,
}

impl ManagementTool for UpdatePrompt {
    const NAME: &'static str = "mcpbox_update_prompt";
    const DESCRIPTION: &'static str = "Change a prompt. A new template, arguments or description makes a new draft version (the approved one is served until the new one is approved). `enabled` can only be set to false here. A prompt with an approved or pending version can only be renamed by an admin.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let db = &cx.state.db;
        let item = match (self.template, self.arguments) {
            (None, None) => None,
            (template, arguments) => {
                let current = prompts::get(db, &self.prompt_id, Kind::Prompt).await?;
                let newest = tools::version(db, &current.id, current.current_version).await?;
                let old: PromptContent = prompts::content::parse("prompt", &newest.python_code)?;
                Some(Item::Prompt(PromptContent {
                    template: template.unwrap_or(old.template),
                    arguments: arguments.unwrap_or(old.arguments),
                    // Attachments are set by an admin (the REST API); kept here.
                    attachments: old.attachments,
                }))
            }
        };
        let changes = ItemChanges {
            name: self.name.as_deref().map(Name::tool).transpose()?,
            description: self.description,
            item,
            enabled: self.enabled,
            summary: self.change_summary,
        };
        let (item, version) = prompts::update(
            cx.state,
            &self.prompt_id,
            Kind::Prompt,
            changes,
            Source::Llm,
            cx.audit,
        )
        .await?;
        Ok(changed(&item, version))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ListResources {
    server_id: String,
    #[serde(flatten)]
    paging: Paging,
}

impl ManagementTool for ListResources {
    const NAME: &'static str = "mcpbox_list_resources";
    const DESCRIPTION: &'static str = "List the resources of a server with their URI, content (text, or the tool that produces it) and approval status.";
    const READ_ONLY: bool = true;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        summaries(cx, &self.server_id, Kind::Resource, &self.paging).await
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct CreateResource {
    server_id: String,
    name: String,
    description: Option<String>,
    /// `type/subtype`; `text/plain` when absent.
    mime_type: Option<String>,
    /// Static content. Give exactly one of `text` and `tool`.
    text: Option<String>,
    /// A tool of the same server whose result is the content, run like a tools/call.
    tool: Option<String>,
    /// With `tool`: the URI template's parameters, passed to the tool as string arguments.
    #[serde(default)]
    params: Vec<String>,
}

impl ManagementTool for CreateResource {
    const NAME: &'static str = "mcpbox_create_resource";
    const DESCRIPTION: &'static str = "Create an MCP resource as a draft, served as mcpbox://{server}/{name}: static `text`, or produced by `tool` (a tool of the same server; with `params` it is a resource template mcpbox://{server}/{name}/{param}… whose values become the tool's arguments). A person must approve it (see mcpbox_request_publish, with the resource's id as tool_id) before clients can read it.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let name = Name::tool(&self.name)?;
        let item = Item::Resource(ResourceContent {
            mime_type: self.mime_type.unwrap_or_else(|| "text/plain".to_owned()),
            uri: None,
            text: self.text,
            blob: None,
            tool: self.tool,
            params: self.params,
        });
        let new = NewItem {
            server_id: &self.server_id,
            name: &name,
            description: self.description.as_deref().unwrap_or_default(),
            item,
            source: Source::Llm,
            audit: cx.audit,
        };
        let (item, version) = prompts::create(cx.state, new).await?;
        Ok(created(&item, &version))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct UpdateResource {
    resource_id: String,
    name: Option<String>,
    description: Option<String>,
    /// The new content, all of it (the newest version's is kept when absent).
    content: Option<ResourceContent>,
    enabled: Option<bool>,
    change_summary: Option<String>,
}

impl ManagementTool for UpdateResource {
    const NAME: &'static str = "mcpbox_update_resource";
    const DESCRIPTION: &'static str = "Change a resource. New content ({mime_type, text} or {mime_type, tool, params}) or description makes a new draft version (the approved one is served until the new one is approved). `enabled` can only be set to false here. A resource with an approved or pending version can only be renamed by an admin.";
    const READ_ONLY: bool = false;

    async fn run(self, cx: &Context<'_>) -> Result<Value> {
        let changes = ItemChanges {
            name: self.name.as_deref().map(Name::tool).transpose()?,
            description: self.description,
            item: self.content.map(Item::Resource),
            enabled: self.enabled,
            summary: self.change_summary,
        };
        let (item, version) = prompts::update(
            cx.state,
            &self.resource_id,
            Kind::Resource,
            changes,
            Source::Llm,
            cx.audit,
        )
        .await?;
        Ok(changed(&item, version))
    }
}
