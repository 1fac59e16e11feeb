//! Prompt and resource routes: `/api/servers/{id}/prompts`, `/api/prompts/{id}`,
//! `/api/servers/{id}/resources`, `/api/resources/{id}`. Versions, compare, rollback, delete and
//! every approval decision are the tool routes' (`/api/tools/{id}/…`, `/api/approvals/…`):
//! a prompt or resource is a `tools` row, and its id works there.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{Item, ItemChanges, NewItem, PromptContent, ResourceContent};
use crate::activity::Audited;
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::{ApiJson, ApiQuery, Result};
use crate::names::Name;
use crate::openapi::{Admin, E400, E401, E404, E409, E422, JsonBody};
use crate::pagination::{Page, PageParams};
use crate::tools::{self, Kind, Source, Tool};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/servers/{id}/prompts",
            get(list_prompts).post(create_prompt),
        )
        .route("/api/prompts/{id}", get(show_prompt).patch(update_prompt))
        .route(
            "/api/servers/{id}/resources",
            get(list_resources).post(create_resource),
        )
        .route(
            "/api/resources/{id}",
            get(show_resource).patch(update_resource),
        )
}

/// A prompt or resource with its newest version's content.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = prompts::Item)]
struct ItemBody {
    id: String,
    server_id: String,
    name: String,
    /// `prompt` or `resource`.
    kind: &'static str,
    enabled: bool,
    current_version: i64,
    /// The version served (the newest approved one), if any.
    approved_version: Option<i64>,
    /// The newest version's description.
    description: String,
    /// The newest version's status: `draft`, `pending_review`, `approved`, `rejected` or
    /// `revoked`.
    status: String,
    /// The newest version's content: a `prompts.PromptContent` or a `prompts.ResourceContent`.
    content: serde_json::Value,
    /// Resources: the URI (a template's, with `{param}`s) clients read it by.
    uri: Option<String>,
    created_by: String,
    created_at: String,
    updated_at: String,
}

async fn item_body(state: &AppState, tool: Tool) -> Result<ItemBody> {
    let latest = tools::version(&state.db, &tool.id, tool.current_version).await?;
    let approved_version = tools::approved_version(&state.db, &tool.id).await?;
    let server = crate::servers::get(&state.db, &tool.server_id).await?;
    let content: serde_json::Value =
        serde_json::from_str(&latest.python_code).unwrap_or(serde_json::Value::Null);
    let uri = match Item::parse(tool.kind, &latest.python_code) {
        Ok(Item::Resource(resource)) => {
            Some(super::uri(&server.name, &tool.name, &resource.params))
        }
        _ => None,
    };
    Ok(ItemBody {
        id: tool.id,
        server_id: tool.server_id,
        name: tool.name,
        kind: tool.kind.as_str(),
        enabled: tool.enabled,
        current_version: tool.current_version,
        approved_version,
        description: latest.description,
        status: latest.status,
        content,
        uri,
        created_by: tool.created_by,
        created_at: tool.created_at,
        updated_at: tool.updated_at,
    })
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = prompts::Summary)]
struct ItemSummary {
    id: String,
    name: String,
    enabled: bool,
    current_version: i64,
}

async fn list_of(
    state: &AppState,
    server_id: &str,
    kind: Kind,
    params: PageParams,
) -> Result<Page<ItemSummary>> {
    let request = params.validate()?;
    let (items, total) = super::list(
        &state.db,
        server_id,
        kind,
        request.limit(),
        request.offset(),
    )
    .await?;
    let items = items
        .into_iter()
        .map(|t| ItemSummary {
            id: t.id,
            name: t.name,
            enabled: t.enabled,
            current_version: t.current_version,
        })
        .collect();
    Ok(Page::new(items, total, request))
}

/// A new prompt: a draft until a person approves it (`/api/tools/{id}/…` and the approvals
/// routes decide, as for tools).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = prompts::CreatePrompt)]
struct CreatePromptBody {
    #[schema(pattern = "^[a-z][a-z0-9]*(_[a-z0-9]+)*$", max_length = 61)]
    name: String,
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: String,
    content: PromptContent,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = prompts::CreateResource)]
struct CreateResourceBody {
    #[schema(pattern = "^[a-z][a-z0-9]*(_[a-z0-9]+)*$", max_length = 61)]
    name: String,
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: String,
    content: ResourceContent,
}

async fn create_item(
    state: &AppState,
    audited: &Audited,
    server_id: &str,
    name: &str,
    description: &str,
    item: Item,
) -> Result<(StatusCode, Json<ItemBody>)> {
    audited.auth.require(Role::Admin)?;
    let name = Name::tool(name)?;
    let (tool, _) = super::create(
        state,
        NewItem {
            server_id,
            name: &name,
            description,
            item,
            source: Source::Admin,
            audit: &audited.audit,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(item_body(state, tool).await?)))
}

/// Changes: new content or description is a new draft version (the approved one is served
/// until the new one is approved).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = prompts::UpdatePrompt)]
struct UpdatePromptBody {
    #[schema(pattern = "^[a-z][a-z0-9]*(_[a-z0-9]+)*$", max_length = 61)]
    name: Option<String>,
    #[schema(max_length = 2000)]
    description: Option<String>,
    content: Option<PromptContent>,
    enabled: Option<bool>,
    change_summary: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = prompts::UpdateResource)]
struct UpdateResourceBody {
    #[schema(pattern = "^[a-z][a-z0-9]*(_[a-z0-9]+)*$", max_length = 61)]
    name: Option<String>,
    #[schema(max_length = 2000)]
    description: Option<String>,
    content: Option<ResourceContent>,
    enabled: Option<bool>,
    change_summary: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn update_item(
    state: &AppState,
    audited: &Audited,
    id: &str,
    kind: Kind,
    name: Option<String>,
    description: Option<String>,
    item: Option<Item>,
    enabled: Option<bool>,
    summary: Option<String>,
) -> Result<Json<ItemBody>> {
    audited.auth.require(Role::Admin)?;
    let changes = ItemChanges {
        name: name.as_deref().map(Name::tool).transpose()?,
        description,
        item,
        enabled,
        summary,
    };
    let (tool, _) = super::update(state, id, kind, changes, Source::Admin, &audited.audit).await?;
    Ok(Json(item_body(state, tool).await?))
}

#[utoipa::path(get, path = "/api/servers/{id}/prompts", tag = "prompts", operation_id = "prompts_list", params(("id" = String, Path, description = "The server's id"), PageParams), responses((status = 200, body = Page<ItemSummary>), E400, E401, E404, E422), security(("bearer" = [])))]
async fn list_prompts(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(server_id): Path<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<Page<ItemSummary>>> {
    auth.require(Role::Viewer)?;
    Ok(Json(
        list_of(&state, &server_id, Kind::Prompt, params).await?,
    ))
}

#[utoipa::path(post, path = "/api/servers/{id}/prompts", tag = "prompts", operation_id = "prompts_create", params(("id" = String, Path, description = "The server's id")), request_body = CreatePromptBody, responses((status = 201, body = ItemBody), JsonBody, Admin, E404, E409), security(("bearer" = [])))]
async fn create_prompt(
    State(state): State<AppState>,
    audited: Audited,
    Path(server_id): Path<String>,
    ApiJson(body): ApiJson<CreatePromptBody>,
) -> Result<(StatusCode, Json<ItemBody>)> {
    let item = Item::Prompt(body.content);
    create_item(
        &state,
        &audited,
        &server_id,
        &body.name,
        &body.description,
        item,
    )
    .await
}

#[utoipa::path(get, path = "/api/prompts/{id}", tag = "prompts", operation_id = "prompts_show", params(("id" = String, Path, description = "The id")), responses((status = 200, body = ItemBody), E401, E404), security(("bearer" = [])))]
async fn show_prompt(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ItemBody>> {
    auth.require(Role::Viewer)?;
    let tool = super::get(&state.db, &id, Kind::Prompt).await?;
    Ok(Json(item_body(&state, tool).await?))
}

#[utoipa::path(patch, path = "/api/prompts/{id}", tag = "prompts", operation_id = "prompts_update", params(("id" = String, Path, description = "The id")), request_body = UpdatePromptBody, responses((status = 200, body = ItemBody), JsonBody, Admin, E404, E409), security(("bearer" = [])))]
async fn update_prompt(
    State(state): State<AppState>,
    audited: Audited,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdatePromptBody>,
) -> Result<Json<ItemBody>> {
    let item = body.content.map(Item::Prompt);
    update_item(
        &state,
        &audited,
        &id,
        Kind::Prompt,
        body.name,
        body.description,
        item,
        body.enabled,
        body.change_summary,
    )
    .await
}

#[utoipa::path(get, path = "/api/servers/{id}/resources", tag = "prompts", operation_id = "resources_list", params(("id" = String, Path, description = "The server's id"), PageParams), responses((status = 200, body = Page<ItemSummary>), E400, E401, E404, E422), security(("bearer" = [])))]
async fn list_resources(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(server_id): Path<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<Page<ItemSummary>>> {
    auth.require(Role::Viewer)?;
    Ok(Json(
        list_of(&state, &server_id, Kind::Resource, params).await?,
    ))
}

#[utoipa::path(post, path = "/api/servers/{id}/resources", tag = "prompts", operation_id = "resources_create", params(("id" = String, Path, description = "The server's id")), request_body = CreateResourceBody, responses((status = 201, body = ItemBody), JsonBody, Admin, E404, E409), security(("bearer" = [])))]
async fn create_resource(
    State(state): State<AppState>,
    audited: Audited,
    Path(server_id): Path<String>,
    ApiJson(body): ApiJson<CreateResourceBody>,
) -> Result<(StatusCode, Json<ItemBody>)> {
    let item = Item::Resource(body.content);
    create_item(
        &state,
        &audited,
        &server_id,
        &body.name,
        &body.description,
        item,
    )
    .await
}

#[utoipa::path(get, path = "/api/resources/{id}", tag = "prompts", operation_id = "resources_show", params(("id" = String, Path, description = "The id")), responses((status = 200, body = ItemBody), E401, E404), security(("bearer" = [])))]
async fn show_resource(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ItemBody>> {
    auth.require(Role::Viewer)?;
    let tool = super::get(&state.db, &id, Kind::Resource).await?;
    Ok(Json(item_body(&state, tool).await?))
}

#[utoipa::path(patch, path = "/api/resources/{id}", tag = "prompts", operation_id = "resources_update", params(("id" = String, Path, description = "The id")), request_body = UpdateResourceBody, responses((status = 200, body = ItemBody), JsonBody, Admin, E404, E409), security(("bearer" = [])))]
async fn update_resource(
    State(state): State<AppState>,
    audited: Audited,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateResourceBody>,
) -> Result<Json<ItemBody>> {
    let item = body.content.map(Item::Resource);
    update_item(
        &state,
        &audited,
        &id,
        Kind::Resource,
        body.name,
        body.description,
        item,
        body.enabled,
        body.change_summary,
    )
    .await
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(
        list_prompts,
        create_prompt,
        show_prompt,
        update_prompt,
        list_resources,
        create_resource,
        show_resource,
        update_resource
    ))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
