//! `/api/mcp-keys` (admin only): list the local MCP client keys, issue one (the key is in that
//! answer and never again), revoke one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::McpKey;
use crate::activity::Audited;
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::{ApiJson, Result};
use contract::ErrorBody;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/mcp-keys", get(list).post(issue))
        .route("/api/mcp-keys/{id}", delete(revoke))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = mcp_keys::McpKeyList)]
struct KeyList {
    /// Valid keys first, then revoked ones; never the keys themselves.
    keys: Vec<McpKey>,
    /// Whether this listener refuses `/mcp` requests without a key.
    required: bool,
    /// The most valid keys there may be.
    max_active: i64,
}

#[utoipa::path(get, path = "/api/mcp-keys", tag = "mcp_keys", operation_id = "mcp_keys_list",
    responses((status = 200, description = "Every key, without the keys themselves", body = KeyList),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(State(state): State<AppState>, auth: AuthUser) -> Result<Json<KeyList>> {
    auth.require(Role::Admin)?;
    Ok(Json(KeyList {
        keys: super::list(&state.db).await?,
        required: state.mcp_keys.required(),
        max_active: super::MAX_ACTIVE_KEYS,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = mcp_keys::McpKeyCreate)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    /// 1 to 64 of lowercase letters, digits, `-`, `_` and `.`, starting with a letter or digit;
    /// unique (revoked keys keep theirs). The execution log shows `mcp:key:{name}`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[a-z0-9][a-z0-9._-]{0,63}$"
    )]
    name: String,
}

/// A key just issued: `key` is shown here once and stored only as a hash.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = mcp_keys::IssuedMcpKey)]
struct IssuedKey {
    id: String,
    name: String,
    prefix: String,
    created_by: String,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
    /// The key: send it as `Authorization: Bearer <key>` to `/mcp`. Not retrievable later.
    key: String,
}

#[utoipa::path(post, path = "/api/mcp-keys", tag = "mcp_keys", operation_id = "mcp_keys_create",
    request_body = IssueBody,
    responses((status = 201, description = "Issued; the key is in this answer only", body = IssuedKey),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 409, description = "A key with this name exists, or the most valid keys there may be exist already", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is missing, of the wrong type or not acceptable", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn issue(
    State(state): State<AppState>,
    audited: Audited,
    ApiJson(body): ApiJson<IssueBody>,
) -> Result<(StatusCode, Json<IssuedKey>)> {
    audited.auth.require(Role::Admin)?;
    let issued = super::issue_recorded(&state, &body.name, &audited.audit).await?;
    let key = issued.key;
    Ok((
        StatusCode::CREATED,
        Json(IssuedKey {
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            created_by: key.created_by,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
            key: issued.secret,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/mcp-keys/{id}", tag = "mcp_keys", operation_id = "mcp_keys_revoke",
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 204, description = "Revoked: refused from now on"),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "The key is already revoked", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn revoke(
    State(state): State<AppState>,
    audited: Audited,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    audited.auth.require(Role::Admin)?;
    super::revoke_recorded(&state, &id, &audited.audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(list, issue, revoke))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
