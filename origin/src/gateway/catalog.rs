//! `prompts/list`, `prompts/get`, `resources/list`, `resources/templates/list` and
//! `resources/read` over `prompts`: only approved, enabled items of running servers, the
//! served version re-verified against its approved hash at get/read time (`prompts::served`).
//!
//! Names: on `/mcp` a prompt is `{server}__{name}` (as a tool); on `/servers/{name}/mcp` its
//! own name. A resource's URI is `mcpbox://{server}/{name}` on both (`prompts::URI_SCHEME`),
//! a template's `mcpbox://{server}/{name}/{param}…`; one that declares its own URI is listed
//! under it on its server's endpoint (unique there, `prompts::checked`) and readable by both
//! there, while `/mcp`, where two servers may declare one URI, lists and reads only the
//! `mcpbox://` one. A tool-backed resource is read by running
//! its tool through `execution::run`, like a `tools/call` (approved, logged).

use rmcp::model::{
    ContentBlock as McpBlock, GetPromptResult, JsonObject, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, Prompt, PromptArgument, PromptMessage,
    ReadResourceResult, Resource, ResourceContents, ResourceTemplate, Role, SubscriptionFilter,
};
use rmcp::service::{Peer, ServiceError, SubscriptionContext, SubscriptionSendError};
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::{Value, json};

use super::to_protocol_error;
use crate::app::AppState;
use crate::error::Error;
use crate::prompts::content::Attachment;
use crate::prompts::{self, Item, Listed, ResourceContent};
use crate::tools::{self, Kind};

/// The name a listed item has where it is served.
fn listed_name(item: &Listed, scope: Option<&str>) -> String {
    match scope {
        Some(_) => item.name.clone(),
        None => prompts::public_name(&item.server_name, &item.name),
    }
}

fn description(item: &Listed, name: &str) -> String {
    if item.description.is_empty() {
        name.to_owned()
    } else {
        item.description.clone()
    }
}

/// The URI a resource is listed under where it is served: its declared one on its server's
/// endpoint, else `mcpbox://{server}/{name}` (with `/{param}`s for a template).
fn listed_uri(item: &Listed, resource: &ResourceContent, scope: Option<&str>) -> String {
    match (&resource.uri, scope) {
        (Some(declared), Some(_)) => declared.clone(),
        _ => prompts::uri(&item.server_name, &item.name, &resource.params),
    }
}

/// `(server, name, parameter values)` of a requested resource URI: an `mcpbox://` one anywhere,
/// a declared one (or an instance of a declared template) only on its server's endpoint.
async fn resolve(
    state: &AppState,
    scope: Option<&str>,
    uri: &str,
) -> Result<Option<(String, String, Vec<String>)>, McpError> {
    if let Some(parsed) = prompts::parse_uri(uri) {
        return Ok(Some(parsed));
    }
    let Some(server) = scope else {
        return Ok(None);
    };
    // One page holds all of a server's resources (PER_SERVER_MAX < PAGE_SIZE).
    let (page, _) = prompts::visible(&state.db, Kind::Resource, Some(server), None)
        .await
        .map_err(to_protocol_error)?;
    for item in page {
        let Item::Resource(ResourceContent {
            uri: Some(declared),
            params,
            ..
        }) = &item.item
        else {
            continue;
        };
        let values = if params.is_empty() {
            (declared == uri).then(Vec::new)
        } else {
            prompts::content::match_template(declared, uri)
        };
        if let Some(values) = values {
            return Ok(Some((item.server_name, item.name, values)));
        }
    }
    Ok(None)
}

pub(super) async fn list_prompts(
    state: &AppState,
    scope: Option<&str>,
    cursor: Option<&str>,
) -> Result<ListPromptsResult, McpError> {
    let (page, next) = prompts::visible(&state.db, Kind::Prompt, scope, cursor)
        .await
        .map_err(to_protocol_error)?;
    let listed = page
        .iter()
        .filter_map(|item| {
            let Item::Prompt(prompt) = &item.item else {
                return None;
            };
            let name = listed_name(item, scope);
            let arguments = prompt
                .arguments
                .iter()
                .map(|a| {
                    let argument = PromptArgument::new(&a.name).with_required(a.required);
                    if a.description.is_empty() {
                        argument
                    } else {
                        argument.with_description(&a.description)
                    }
                })
                .collect();
            Some(Prompt::new(
                &name,
                Some(description(item, &name)),
                Some(arguments),
            ))
        })
        .collect();
    let mut result = ListPromptsResult::with_all_items(listed).with_ttl_ms(0);
    result.next_cursor = next;
    Ok(result)
}

/// `(server, name)` of a requested prompt name where it is served; `None`: malformed.
fn split_name<'a>(name: &'a str, scope: Option<&'a str>) -> Option<(&'a str, &'a str)> {
    match scope {
        Some(server) => Some((server, name)),
        None => name.split_once("__"),
    }
}

/// A serve-time refusal as the JSON-RPC error a client shows: unknown → invalid params naming
/// it; not approved, disabled, stopped or tampered → invalid params with the reason.
fn refused(what: &str, name: &str, err: Error) -> McpError {
    match err {
        Error::NotFound(_) => McpError::invalid_params(
            format!("unknown {what} {name:?}; list them to see what is offered"),
            Some(json!({ what: name })),
        ),
        Error::Conflict(reason) | Error::Validation(reason) => McpError::invalid_params(
            format!("the {what} {name:?} is not available: {reason}"),
            Some(json!({ what: name })),
        ),
        other => to_protocol_error(other),
    }
}

pub(super) async fn get_prompt(
    state: &AppState,
    scope: Option<&str>,
    name: &str,
    arguments: Option<JsonObject>,
) -> Result<GetPromptResult, McpError> {
    let unknown = || refused("prompt", name, Error::NotFound(String::new()));
    let Some((server, own)) = split_name(name, scope) else {
        return Err(unknown());
    };
    let Some(id) = prompts::id_of(&state.db, Kind::Prompt, server, own)
        .await
        .map_err(to_protocol_error)?
    else {
        return Err(unknown());
    };
    let served = prompts::served(&state.db, &id, Kind::Prompt)
        .await
        .map_err(|err| refused("prompt", name, err))?;
    let Item::Prompt(prompt) = &served.item else {
        return Err(unknown());
    };
    let arguments = arguments.unwrap_or_default();
    let invalid = |message: String| {
        McpError::invalid_params(
            format!("prompt {name:?}: {message}"),
            Some(json!({"prompt": name})),
        )
    };
    let text = prompt.render(&arguments).map_err(invalid)?;
    let attachments = prompt.render_attachments(&arguments).map_err(invalid)?;
    // The attachments first, so the text can refer to them ("the image above").
    let mut messages: Vec<PromptMessage> = attachments
        .into_iter()
        .map(|attachment| {
            let content = match attachment {
                Attachment::Image { mime_type, data } => McpBlock::image(data, mime_type),
                Attachment::Resource {
                    uri,
                    mime_type,
                    text,
                } => {
                    McpBlock::resource(ResourceContents::text(text, uri).with_mime_type(mime_type))
                }
            };
            PromptMessage::new(Role::User, content)
        })
        .collect();
    messages.push(PromptMessage::new_text(Role::User, text));
    let mut result = GetPromptResult::new(messages);
    if !served.description.is_empty() {
        result.description = Some(served.description);
    }
    Ok(result)
}

pub(super) async fn list_resources(
    state: &AppState,
    scope: Option<&str>,
    cursor: Option<&str>,
) -> Result<ListResourcesResult, McpError> {
    let (page, next) = prompts::visible(&state.db, Kind::Resource, scope, cursor)
        .await
        .map_err(to_protocol_error)?;
    let listed = page
        .iter()
        .filter_map(|item| {
            let Item::Resource(resource) = &item.item else {
                return None;
            };
            if !resource.params.is_empty() {
                return None;
            }
            let name = listed_name(item, scope);
            let uri = listed_uri(item, resource, scope);
            let mut listed = Resource::new(uri, &name)
                .with_description(description(item, &name))
                .with_mime_type(resource.mime_type.clone());
            if let Some(text) = &resource.text {
                listed = listed.with_size(text.len() as u64);
            }
            if let Some(bytes) = resource.blob_bytes() {
                listed = listed.with_size(bytes.len() as u64);
            }
            Some(listed)
        })
        .collect();
    let mut result = ListResourcesResult::with_all_items(listed).with_ttl_ms(0);
    result.next_cursor = next;
    Ok(result)
}

pub(super) async fn list_resource_templates(
    state: &AppState,
    scope: Option<&str>,
    cursor: Option<&str>,
) -> Result<ListResourceTemplatesResult, McpError> {
    let (page, next) = prompts::visible(&state.db, Kind::Resource, scope, cursor)
        .await
        .map_err(to_protocol_error)?;
    let listed = page
        .iter()
        .filter_map(|item| {
            let Item::Resource(resource) = &item.item else {
                return None;
            };
            if resource.params.is_empty() {
                return None;
            }
            let name = listed_name(item, scope);
            let uri = listed_uri(item, resource, scope);
            Some(
                ResourceTemplate::new(uri, &name)
                    .with_description(description(item, &name))
                    .with_mime_type(resource.mime_type.clone()),
            )
        })
        .collect();
    let mut result = ListResourceTemplatesResult::with_all_items(listed).with_ttl_ms(0);
    result.next_cursor = next;
    Ok(result)
}

pub(super) async fn read_resource(
    state: &AppState,
    scope: Option<&str>,
    uri: &str,
    actor: &str,
) -> Result<ReadResourceResult, McpError> {
    // SEP-2164: an unknown resource is invalid params, naming the URI.
    let unknown = || {
        McpError::invalid_params(
            format!("no resource {uri:?}; call resources/list or resources/templates/list"),
            Some(json!({"uri": uri})),
        )
    };
    let Some((server, name, segments)) = resolve(state, scope, uri).await? else {
        return Err(unknown());
    };
    if scope.is_some_and(|scope| scope != server) {
        return Err(unknown());
    }
    let Some(id) = prompts::id_of(&state.db, Kind::Resource, &server, &name)
        .await
        .map_err(to_protocol_error)?
    else {
        return Err(unknown());
    };
    let served = prompts::served(&state.db, &id, Kind::Resource)
        .await
        .map_err(|err| refused("resource", uri, err))?;
    let Item::Resource(resource) = served.item else {
        return Err(unknown());
    };
    if segments.len() != resource.params.len() {
        return Err(McpError::invalid_params(
            format!(
                "the resource {uri:?} takes {} path parameter(s) after its name ({}), got {}",
                resource.params.len(),
                prompts::uri(&server, &name, &resource.params),
                segments.len()
            ),
            Some(json!({"uri": uri})),
        ));
    }
    if let Some(bytes) = resource.blob_bytes() {
        use base64::Engine;
        let blob = base64::engine::general_purpose::STANDARD.encode(bytes);
        return Ok(ReadResourceResult::new(vec![
            ResourceContents::blob(blob, uri).with_mime_type(resource.mime_type),
        ]));
    }
    let text = match (&resource.text, &resource.tool) {
        (Some(text), _) => text.clone(),
        (None, Some(tool)) => {
            let arguments: serde_json::Map<String, Value> = resource
                .params
                .iter()
                .cloned()
                .zip(segments.into_iter().map(Value::String))
                .collect();
            produce(state, &served.server_name, tool, arguments, actor, uri).await?
        }
        (None, None) => return Err(unknown()),
    };
    Ok(ReadResourceResult::new(vec![
        ResourceContents::text(text, uri).with_mime_type(resource.mime_type),
    ]))
}

/// Runs the tool behind a resource exactly as `tools/call` would (call-time check, logged) and
/// returns its result as text: a string as it is, anything else as JSON.
async fn produce(
    state: &AppState,
    server: &str,
    tool: &str,
    arguments: serde_json::Map<String, Value>,
    actor: &str,
    uri: &str,
) -> Result<String, McpError> {
    let failed = |message: String| {
        McpError::internal_error(
            format!("the resource {uri:?} could not be produced: {message}"),
            Some(json!({"uri": uri, "tool": tool})),
        )
    };
    let Some(tool_id) = super::visible::tool_id_in(&state.db, server, tool)
        .await
        .map_err(to_protocol_error)?
    else {
        return Err(failed(format!("its tool {tool:?} does not exist")));
    };
    let arguments = Value::Object(arguments);
    let approved = match tools::runnable(&state.db, &tool_id).await {
        Ok(approved) => approved,
        Err(err) => {
            if let Err(log_err) =
                crate::execution::log_refusal(state, &tool_id, &arguments, actor, &err).await
            {
                tracing::warn!(error = %log_err, "could not log a refused call");
            }
            return Err(match err {
                Error::Internal(_) => to_protocol_error(err),
                err => failed(err.to_string()),
            });
        }
    };
    let outcome = match crate::execution::run(state, &approved, arguments, actor, false).await {
        Ok(outcome) => outcome,
        // Internals stay in the log.
        Err(err @ Error::Internal(_)) => return Err(to_protocol_error(err)),
        Err(err) => return Err(failed(err.to_string())),
    };
    if !outcome.ok {
        let message = match &outcome.error {
            Some(error) => error.describe(),
            None => "the tool failed without a message".to_owned(),
        };
        return Err(failed(message));
    }
    Ok(match outcome.result {
        Some(Value::String(text)) => text,
        Some(value) => value.to_string(),
        None => String::new(),
    })
}

/// The notification categories `subscriptions/listen` acknowledges: those asked for, of the
/// three lists. Always `Some` in the handler: `None` would make `subscriptions/listen` "method
/// not found" for a client asking for categories we do not have.
pub(super) fn accepted_filter(requested: &SubscriptionFilter) -> SubscriptionFilter {
    let mut builder = SubscriptionFilter::builder();
    if requested.tools_list_changed == Some(true) {
        builder = builder.tools_list_changed();
    }
    if requested.prompts_list_changed == Some(true) {
        builder = builder.prompts_list_changed();
    }
    if requested.resources_list_changed == Some(true) {
        builder = builder.resources_list_changed();
    }
    builder.build()
}

/// A change of the visible set (one digest covers tools, prompts and resources: `visible`)
/// told to a 2025-11-25 session: all three lists may have changed. A client re-reads an
/// unchanged list at the cost of one request; a second watcher per list would cost a digest of
/// each on every recorded change.
pub(super) async fn notify_session(peer: &Peer<RoleServer>) -> Result<(), ServiceError> {
    peer.notify_tool_list_changed().await?;
    peer.notify_prompt_list_changed().await?;
    peer.notify_resource_list_changed().await
}

/// The same for a 2026-07-28 `subscriptions/listen`: only the categories it accepted.
pub(super) async fn notify_listener(
    context: &SubscriptionContext,
) -> Result<(), SubscriptionSendError> {
    let accepted = context.accepted();
    let sink = context.sink();
    if accepted.tools_list_changed == Some(true) {
        sink.notify_tool_list_changed().await?;
    }
    if accepted.prompts_list_changed == Some(true) {
        sink.notify_prompt_list_changed().await?;
    }
    if accepted.resources_list_changed == Some(true) {
        sink.notify_resource_list_changed().await?;
    }
    Ok(())
}
