//! `/api/servers/{id}/secrets` (admin only; values are write-only).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::activity::Audited;
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::{ApiJson, Result};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/servers/{id}/secrets", get(list).post(create))
        .route("/api/servers/{id}/secrets/{key}", put(set).delete(remove))
}

#[derive(Serialize)]
struct SecretBody {
    key: String,
    description: String,
    has_value: bool,
    updated_at: String,
}

#[utoipa::path(get, path = "/api/servers/{id}/secrets", tag = "secrets", operation_id = "secrets_list", params(("id" = String, Path, description = "The id")), responses((status = "2XX", description = "Success"), (status = "4XX", description = "A JSON error: {\"error\": {\"code\", \"message\"}}")), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(server_id): Path<String>,
) -> Result<Json<Vec<SecretBody>>> {
    auth.require(Role::Viewer)?;
    let items = super::list(&state.db, &server_id)
        .await?
        .into_iter()
        .map(|p| SecretBody {
            key: p.key,
            description: p.description,
            has_value: p.has_value,
            updated_at: p.updated_at,
        })
        .collect();
    Ok(Json(items))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    key_name: String,
    #[serde(default)]
    description: String,
}

#[utoipa::path(post, path = "/api/servers/{id}/secrets", tag = "secrets", operation_id = "secrets_create", params(("id" = String, Path, description = "The id")), responses((status = "2XX", description = "Success"), (status = "4XX", description = "A JSON error: {\"error\": {\"code\", \"message\"}}")), security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    audited: Audited,
    Path(server_id): Path<String>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<StatusCode> {
    audited.auth.require(Role::Admin)?;
    super::create_placeholder_recorded(
        &state,
        &server_id,
        &body.key_name,
        &body.description,
        &audited.audit,
    )
    .await?;
    Ok(StatusCode::CREATED)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValueBody {
    value: String,
}

#[utoipa::path(put, path = "/api/servers/{id}/secrets/{key}", tag = "secrets", operation_id = "secrets_set", params(("id" = String, Path, description = "The id"), ("key" = String, Path, description = "The secret key")), responses((status = "2XX", description = "Success"), (status = "4XX", description = "A JSON error: {\"error\": {\"code\", \"message\"}}")), security(("bearer" = [])))]
async fn set(
    State(state): State<AppState>,
    audited: Audited,
    Path((server_id, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<ValueBody>,
) -> Result<StatusCode> {
    audited.auth.require(Role::Admin)?;
    super::set_value_recorded(&state, &server_id, &key, &body.value, &audited.audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/servers/{id}/secrets/{key}", tag = "secrets", operation_id = "secrets_remove", params(("id" = String, Path, description = "The id"), ("key" = String, Path, description = "The secret key")), responses((status = "2XX", description = "Success"), (status = "4XX", description = "A JSON error: {\"error\": {\"code\", \"message\"}}")), security(("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    audited: Audited,
    Path((server_id, key)): Path<(String, String)>,
) -> Result<StatusCode> {
    audited.auth.require(Role::Admin)?;
    super::delete_recorded(&state, &server_id, &key, &audited.audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(list, create, set, remove))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
