//! External source routes (reference paths): `/api/external-sources/servers/{id}/sources`,
//! `/api/external-sources/sources/{sid}` and its `approve`, `discover`, `cached-tools`, `import`
//! and `health` actions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{Discovered, Source};
use crate::activity::Audited;
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::{ApiJson, Result};
use contract::ErrorBody;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/external-sources/servers/{id}/sources",
            get(list).post(create),
        )
        .route(
            "/api/external-sources/sources/{sid}",
            get(show).put(update).delete(remove),
        )
        .route("/api/external-sources/sources/{sid}/approve", post(approve))
        .route(
            "/api/external-sources/sources/{sid}/discover",
            post(discover),
        )
        .route(
            "/api/external-sources/sources/{sid}/cached-tools",
            get(cached_tools),
        )
        .route("/api/external-sources/sources/{sid}/import", post(import))
        .route("/api/external-sources/sources/{sid}/health", post(health))
        .route(
            "/api/external-sources/sources/{sid}/oauth/sign-out",
            post(sign_out),
        )
}

/// A source as both fronts show it: the secret's name, never its value.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = external::Source)]
pub struct SourceBody {
    id: String,
    server_id: String,
    name: String,
    url: String,
    /// `none`, `bearer`, `header` or `oauth`.
    auth_type: &'static str,
    /// The server secret the source authenticates with (bearer and header auth).
    auth_secret_name: Option<String>,
    /// The header that carries it (header auth).
    auth_header_name: Option<String>,
    /// `streamable_http`, or `sse` (the legacy HTTP+SSE transport of 2024-11-05).
    transport_type: &'static str,
    /// `pending_approval` (no request is sent until an admin approves), `active` or `error`.
    status: String,
    approved_by: Option<String>,
    approved_at: Option<String>,
    tool_count: i64,
    last_discovered_at: Option<String>,
    /// The last health check, discovery or failed call.
    last_checked_at: Option<String>,
    last_error: Option<String>,
    protocol_version: Option<String>,
    /// OAuth sources: `signed_out` (an admin signs in from the source's page in the admin UI),
    /// `signed_in`, or `sign_in_needed` (the grant was refused; sign in again). Absent otherwise.
    #[schema(pattern = "^(signed_out|signed_in|sign_in_needed)$")]
    oauth_status: Option<String>,
    created_by: String,
    created_at: String,
    updated_at: String,
}

impl From<Source> for SourceBody {
    fn from(source: Source) -> Self {
        SourceBody {
            auth_type: source.auth.kind(),
            auth_secret_name: match &source.auth {
                super::Auth::None | super::Auth::OAuth => None,
                super::Auth::Bearer { secret } | super::Auth::Header { secret, .. } => {
                    Some(secret.clone())
                }
            },
            auth_header_name: source.auth.header().map(str::to_owned),
            transport_type: if source.legacy_sse {
                "sse"
            } else {
                "streamable_http"
            },
            id: source.id,
            server_id: source.server_id,
            name: source.name,
            url: source.url,
            status: source.status,
            approved_by: source.approved_by,
            approved_at: source.approved_at,
            tool_count: source.tool_count,
            last_discovered_at: source.last_discovered_at,
            last_checked_at: source.last_checked_at,
            last_error: source.last_error,
            protocol_version: source.protocol_version,
            oauth_status: source.oauth_state,
            created_by: source.created_by,
            created_at: source.created_at,
            updated_at: source.updated_at,
        }
    }
}

/// A tool the source listed (the last discovery's cache).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = external::DiscoveredTool)]
pub struct DiscoveredBody {
    name: String,
    description: String,
    /// The tool's JSON Schema, as the source gave it.
    #[schema(value_type = Object)]
    input_schema: serde_json::Value,
    /// A tool of this server already passes calls through to it.
    already_imported: bool,
}

impl DiscoveredBody {
    pub fn new(tool: Discovered, already_imported: bool) -> Self {
        DiscoveredBody {
            name: tool.name,
            description: tool.description,
            input_schema: tool.input_schema,
            already_imported,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = external::ImportResult)]
pub struct ImportBody {
    imported: Vec<ImportedTool>,
    skipped: Vec<SkippedTool>,
}

/// A new draft passthrough tool.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = external::ImportedTool)]
struct ImportedTool {
    id: String,
    /// `{source}_{tool}`, sanitised.
    name: String,
    remote_tool: String,
    version: i64,
    /// The draft's approval status (`draft`, or `approved` under auto-approval).
    approval_status: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = external::SkippedTool)]
struct SkippedTool {
    remote_tool: String,
    /// Why: not in the cache, already imported, or the name is taken.
    reason: String,
}

impl ImportBody {
    pub fn new(imported: Vec<super::Imported>, skipped: Vec<super::Skipped>) -> Self {
        ImportBody {
            imported: imported
                .into_iter()
                .map(|i| ImportedTool {
                    id: i.tool.id,
                    name: i.tool.name,
                    remote_tool: i.remote_tool,
                    version: i.version.version,
                    approval_status: i.version.status,
                })
                .collect(),
            skipped: skipped
                .into_iter()
                .map(|s| SkippedTool {
                    remote_tool: s.remote_tool,
                    reason: s.reason,
                })
                .collect(),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = external::SourceCreate)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// A tool-style name: its tools are named `{name}_{tool}`.
    #[schema(pattern = "^[a-z][a-z0-9]*(_[a-z0-9]+)*$", max_length = 32)]
    name: String,
    /// `https://…` (or `http://` to a loopback address): the source's MCP endpoint.
    url: String,
    /// `none` (the default), `bearer`, `header` or `oauth` (an admin then signs in from the
    /// source's page in the admin UI).
    #[schema(pattern = "^(none|bearer|header|oauth)$")]
    auth_type: Option<String>,
    /// Bearer and header auth: the name of one of the server's secrets.
    auth_secret_name: Option<String>,
    /// Header auth: the header's name.
    auth_header_name: Option<String>,
    /// `streamable_http` (the default), or `sse` for a server that only speaks the legacy
    /// HTTP+SSE transport (the URL is then its SSE endpoint; not with `oauth`).
    #[schema(pattern = "^(streamable_http|sse)$")]
    transport_type: Option<String>,
}

#[utoipa::path(post, path = "/api/external-sources/servers/{id}/sources", tag = "external", operation_id = "external_create", params(("id" = String, Path, description = "The server id")), request_body = CreateBody, responses((status = 201, description = "The source, active (an admin adding it approves it)", body = SourceBody),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such server", body = ErrorBody),
        (status = 409, description = "The server has a source with this name", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is of the wrong type, the URL is not acceptable, or the auth fields do not fit together", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    audited: Audited,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<SourceBody>)> {
    audited.auth.require(Role::Admin)?;
    let new = super::NewSource {
        server_id: &id,
        name: &body.name,
        url: &body.url,
        auth: super::Auth::parse(
            body.auth_type.as_deref(),
            body.auth_secret_name.as_deref(),
            body.auth_header_name.as_deref(),
        )?,
        transport_type: body.transport_type.as_deref(),
        // An admin adding a source is its approval.
        approved_by: Some(&audited.audit.actor),
    };
    let source = super::add_recorded(&state, new, &audited.audit).await?;
    Ok((StatusCode::CREATED, Json(source.into())))
}

#[utoipa::path(get, path = "/api/external-sources/servers/{id}/sources", tag = "external", operation_id = "external_list", params(("id" = String, Path, description = "The server id")), responses((status = 200, description = "The server's sources, by name", body = Vec<SourceBody>),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 404, description = "No such server", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<SourceBody>>> {
    auth.require(Role::Viewer)?;
    let sources = super::list(&state.db, &id).await?;
    Ok(Json(sources.into_iter().map(Into::into).collect()))
}

#[utoipa::path(get, path = "/api/external-sources/sources/{sid}", tag = "external", operation_id = "external_show", params(("sid" = String, Path, description = "The source id")), responses((status = 200, description = "The source", body = SourceBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn show(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(sid): Path<String>,
) -> Result<Json<SourceBody>> {
    auth.require(Role::Viewer)?;
    Ok(Json(super::get(&state.db, &sid).await?.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = external::SourceUpdate)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[schema(pattern = "^[a-z][a-z0-9]*(_[a-z0-9]+)*$", max_length = 32)]
    name: Option<String>,
    url: Option<String>,
    /// Given: the whole auth is replaced by these three fields. A new URL or leaving `oauth`
    /// forgets an OAuth grant.
    #[schema(pattern = "^(none|bearer|header|oauth)$")]
    auth_type: Option<String>,
    auth_secret_name: Option<String>,
    auth_header_name: Option<String>,
}

#[utoipa::path(put, path = "/api/external-sources/sources/{sid}", tag = "external", operation_id = "external_update", params(("sid" = String, Path, description = "The source id")), request_body = UpdateBody, responses((status = 200, description = "The source after the change", body = SourceBody),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 409, description = "The server has a source with this name", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is of the wrong type, the URL is not acceptable, or the auth fields do not fit together", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    audited: Audited,
    Path(sid): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<SourceBody>> {
    audited.auth.require(Role::Admin)?;
    let auth = match &body.auth_type {
        Some(kind) => Some(super::Auth::parse(
            Some(kind),
            body.auth_secret_name.as_deref(),
            body.auth_header_name.as_deref(),
        )?),
        None if body.auth_secret_name.is_some() || body.auth_header_name.is_some() => {
            return Err(crate::error::Error::Validation(
                "give auth_type with auth_secret_name and auth_header_name".into(),
            ));
        }
        None => None,
    };
    let changes = super::SourceChanges {
        name: body.name.as_deref(),
        url: body.url.as_deref(),
        auth,
    };
    Ok(Json(
        super::update_recorded(&state, &sid, changes, &audited.audit)
            .await?
            .into(),
    ))
}

#[utoipa::path(delete, path = "/api/external-sources/sources/{sid}", tag = "external", operation_id = "external_remove", params(("sid" = String, Path, description = "The source id")), responses((status = 204, description = "Deleted, with its passthrough tools"),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    audited: Audited,
    Path(sid): Path<String>,
) -> Result<StatusCode> {
    audited.auth.require(Role::Admin)?;
    super::delete_recorded(&state, &sid, &audited.audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/external-sources/sources/{sid}/approve", tag = "external", operation_id = "external_approve", params(("sid" = String, Path, description = "The source id")), responses((status = 200, description = "The source, active", body = SourceBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 409, description = "The source is already approved", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn approve(
    State(state): State<AppState>,
    audited: Audited,
    Path(sid): Path<String>,
) -> Result<Json<SourceBody>> {
    audited.auth.require(Role::Admin)?;
    Ok(Json(
        super::approve_recorded(&state, &sid, &audited.audit)
            .await?
            .into(),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = external::Discovery)]
struct DiscoverAnswer {
    source: SourceBody,
    tools: Vec<DiscoveredBody>,
}

#[utoipa::path(post, path = "/api/external-sources/sources/{sid}/discover", tag = "external", operation_id = "external_discover", params(("sid" = String, Path, description = "The source id")), responses((status = 200, description = "The tools the source lists now", body = DiscoverAnswer),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 409, description = "The source waits for approval, or its secret has no value", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody),
        (status = 502, description = "The source could not be reached or did not list its tools", body = ErrorBody)), security(("bearer" = [])))]
async fn discover(
    State(state): State<AppState>,
    audited: Audited,
    Path(sid): Path<String>,
) -> Result<Json<DiscoverAnswer>> {
    audited.auth.require(Role::Admin)?;
    let (source, found) = super::discover_recorded(&state, &sid, &audited.audit).await?;
    let imported = super::cached_tools(&state.db, &source.id).await?;
    let tools = found
        .into_iter()
        .map(|tool| {
            let already = imported
                .iter()
                .any(|(cached, already)| *already && cached.name == tool.name);
            DiscoveredBody::new(tool, already)
        })
        .collect();
    Ok(Json(DiscoverAnswer {
        source: source.into(),
        tools,
    }))
}

#[utoipa::path(get, path = "/api/external-sources/sources/{sid}/cached-tools", tag = "external", operation_id = "external_cached_tools", params(("sid" = String, Path, description = "The source id")), responses((status = 200, description = "The last discovery's tools", body = Vec<DiscoveredBody>),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn cached_tools(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(sid): Path<String>,
) -> Result<Json<Vec<DiscoveredBody>>> {
    auth.require(Role::Viewer)?;
    let cached = super::cached_tools(&state.db, &sid).await?;
    Ok(Json(
        cached
            .into_iter()
            .map(|(tool, already)| DiscoveredBody::new(tool, already))
            .collect(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = external::Import)]
#[serde(deny_unknown_fields)]
struct ImportRequest {
    /// Names from the discovery cache.
    #[schema(min_items = 1, max_items = 500)]
    tool_names: Vec<String>,
}

/// Imported tools are drafts here too: an admin approves them like any tool.
#[utoipa::path(post, path = "/api/external-sources/sources/{sid}/import", tag = "external", operation_id = "external_import", params(("sid" = String, Path, description = "The source id")), request_body = ImportRequest, responses((status = 200, description = "The draft tools made, and the names skipped with the reason", body = ImportBody),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 409, description = "The source waits for approval", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is of the wrong type, or no or too many tool names", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn import(
    State(state): State<AppState>,
    audited: Audited,
    Path(sid): Path<String>,
    ApiJson(body): ApiJson<ImportRequest>,
) -> Result<Json<ImportBody>> {
    audited.auth.require(Role::Admin)?;
    let (imported, skipped) = super::import_recorded(
        &state,
        &sid,
        &body.tool_names,
        crate::tools::Source::Admin,
        &audited.audit,
    )
    .await?;
    Ok(Json(ImportBody::new(imported, skipped)))
}

#[utoipa::path(post, path = "/api/external-sources/sources/{sid}/health", tag = "external", operation_id = "external_health", params(("sid" = String, Path, description = "The source id")), responses((status = 200, description = "The source with the check's outcome in status, last_checked_at and last_error (a failed check is not an error here)", body = SourceBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 409, description = "The source waits for approval, or its secret has no value", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn health(
    State(state): State<AppState>,
    audited: Audited,
    Path(sid): Path<String>,
) -> Result<Json<SourceBody>> {
    audited.auth.require(Role::Admin)?;
    Ok(Json(
        super::health_recorded(&state, &sid, &audited.audit)
            .await?
            .into(),
    ))
}

/// Forgets the source's OAuth grant; signing in again happens in the admin UI (a browser
/// redirect to the authorization server and back, which this API cannot carry).
#[utoipa::path(post, path = "/api/external-sources/sources/{sid}/oauth/sign-out", tag = "external", operation_id = "external_oauth_sign_out", params(("sid" = String, Path, description = "The source id")), responses((status = 200, description = "The source, oauth_status signed_out", body = SourceBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 409, description = "The source does not authenticate with OAuth", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn sign_out(
    State(state): State<AppState>,
    audited: Audited,
    Path(sid): Path<String>,
) -> Result<Json<SourceBody>> {
    audited.auth.require(Role::Admin)?;
    Ok(Json(
        super::oauth::sign_out_recorded(&state, &sid, &audited.audit)
            .await?
            .into(),
    ))
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(
        create,
        list,
        show,
        update,
        remove,
        approve,
        discover,
        cached_tools,
        import,
        health,
        sign_out
    ))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
