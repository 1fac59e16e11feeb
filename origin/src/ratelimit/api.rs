//! `GET|PATCH /api/settings/rate-limits`: the admin listener's limits (viewers read, admins
//! change).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::limits::{self, Limits, LimitsPatch};
use crate::activity::Audited;
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::{ApiJson, Result};
use contract::ErrorBody;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/settings/rate-limits", get(show).patch(update))
}

#[utoipa::path(get, path = "/api/settings/rate-limits", tag = "settings", operation_id = "settings_rate_limits", responses((status = 200, description = "The limits in force", body = Limits),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn show(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Limits>> {
    auth.require(Role::Viewer)?;
    Ok(Json(limits::stored(&state.db).await?))
}

#[utoipa::path(patch, path = "/api/settings/rate-limits", tag = "settings", operation_id = "settings_change_rate_limits", request_body = LimitsPatch, responses((status = 200, description = "The limits now in force", body = Limits),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is of the wrong type, or a limit is out of its range", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)), security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    audited: Audited,
    ApiJson(patch): ApiJson<LimitsPatch>,
) -> Result<Json<Limits>> {
    audited.auth.require(Role::Admin)?;
    Ok(Json(
        limits::set_recorded(&state, &patch, &audited.audit).await?,
    ))
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(show, update),
        components(schemas(
            Limits,
            LimitsPatch,
            super::limits::RulePatch,
            super::Rule,
            ErrorBody
        ))
    )]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
