//! `/api/servers/{id}/secrets` (admin only; values are write-only).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::activity::Audited;
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::{ApiJson, Error, Result};
use crate::openapi::{Admin, E401, E404, E409, JsonBody};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/servers/{id}/secrets", get(list).post(create))
        .route("/api/servers/{id}/secrets/{key}", put(set).delete(remove))
}

/// A secret as the API shows it: never its value.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = secrets::Secret)]
struct SecretBody {
    key: String,
    description: String,
    has_value: bool,
    updated_at: String,
}

#[utoipa::path(get, path = "/api/servers/{id}/secrets", tag = "secrets", operation_id = "secrets_list", params(("id" = String, Path, description = "The id")), responses((status = 200, body = Vec<SecretBody>), E401, E404), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(server_id): Path<String>,
) -> Result<Json<Vec<SecretBody>>> {
    auth.require(Role::Viewer)?;
    let items = super::list(&state.db, &server_id)
        .await?
        .into_iter()
        .map(SecretBody::from)
        .collect();
    Ok(Json(items))
}

impl From<super::Placeholder> for SecretBody {
    fn from(p: super::Placeholder) -> Self {
        SecretBody {
            key: p.key,
            description: p.description,
            has_value: p.has_value,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = secrets::Create)]
struct CreateBody {
    #[schema(pattern = "^[A-Z][A-Z0-9_]*$", max_length = 64)]
    key_name: String,
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: String,
}

#[utoipa::path(post, path = "/api/servers/{id}/secrets", tag = "secrets", operation_id = "secrets_create", params(("id" = String, Path, description = "The id")), request_body = CreateBody, responses((status = 201, description = "The new placeholder (no value yet)", body = SecretBody), JsonBody, Admin, E404, E409), security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    audited: Audited,
    Path(server_id): Path<String>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<SecretBody>)> {
    audited.auth.require(Role::Admin)?;
    super::create_placeholder_recorded(
        &state,
        &server_id,
        &body.key_name,
        &body.description,
        &audited.audit,
    )
    .await?;
    // Read back rather than rebuilt, so `updated_at` is the stored one.
    let created = super::list(&state.db, &server_id)
        .await?
        .into_iter()
        .find(|p| p.key == body.key_name)
        .ok_or_else(|| Error::NotFound("the secret was deleted meanwhile".into()))?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = secrets::Value)]
struct ValueBody {
    /// 8 to 10 000 characters (shorter values cannot be redacted reliably).
    #[schema(min_length = 8, max_length = 10000)]
    value: String,
}

#[utoipa::path(put, path = "/api/servers/{id}/secrets/{key}", tag = "secrets", operation_id = "secrets_set", params(("id" = String, Path, description = "The id"), ("key" = String, Path, description = "The secret key", pattern = "^[A-Z][A-Z0-9_]*$", max_length = 64)), request_body = ValueBody, responses((status = 204, description = "Stored (encrypted)"), JsonBody, Admin, E404), security(("bearer" = [])))]
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

#[utoipa::path(delete, path = "/api/servers/{id}/secrets/{key}", tag = "secrets", operation_id = "secrets_remove", params(("id" = String, Path, description = "The id"), ("key" = String, Path, description = "The secret key", pattern = "^[A-Z][A-Z0-9_]*$", max_length = 64)), responses((status = 204, description = "Deleted"), Admin, E404), security(("bearer" = [])))]
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
