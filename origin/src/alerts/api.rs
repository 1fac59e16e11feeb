//! Alert routes, admin only: `/api/alerts/webhooks` (list, create), `/api/alerts/webhooks/{id}`
//! (show, change, delete), `/api/alerts/webhooks/{id}/test` (send a test alert now), and
//! `/api/settings/alerts` (thresholds, counters and the alerts raised lately).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::webhooks::{self, Change, Flavour, NewWebhook, Webhook};
use super::{AlertSettings, Kind, Stats, settings};
use crate::activity::Audited;
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::{ApiJson, Result};
use contract::ErrorBody;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/alerts/webhooks", get(list).post(create))
        .route(
            "/api/alerts/webhooks/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/api/alerts/webhooks/{id}/test", post(test))
        .route(
            "/api/settings/alerts",
            get(show_settings).patch(update_settings),
        )
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = alerts::WebhookList)]
struct WebhookList {
    webhooks: Vec<Webhook>,
}

#[utoipa::path(get, path = "/api/alerts/webhooks", tag = "alerts", operation_id = "alerts_webhooks_list",
    responses((status = 200, description = "Every webhook, URLs masked", body = WebhookList),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list(State(state): State<AppState>, auth: AuthUser) -> Result<Json<WebhookList>> {
    auth.require(Role::Admin)?;
    Ok(Json(WebhookList {
        webhooks: webhooks::list(&state.db).await?,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = alerts::WebhookCreate)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// 1 to 64 characters, unique.
    name: String,
    #[schema(value_type = Flavour)]
    flavour: String,
    /// `https://…`, or `http://` to a loopback address. Stored encrypted, never shown again.
    url: String,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(post, path = "/api/alerts/webhooks", tag = "alerts", operation_id = "alerts_webhooks_create",
    request_body = CreateBody,
    responses((status = 201, description = "Created", body = Webhook),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 409, description = "A webhook with this name exists, or the most webhooks there may be exist already", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is missing, of the wrong type or not acceptable", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    audited: Audited,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Webhook>)> {
    audited.auth.require(Role::Admin)?;
    let new = NewWebhook {
        name: &body.name,
        flavour: &body.flavour,
        url: &body.url,
        enabled: body.enabled,
    };
    let webhook = webhooks::create_recorded(&state, new, &audited.audit).await?;
    Ok((StatusCode::CREATED, Json(webhook)))
}

#[utoipa::path(get, path = "/api/alerts/webhooks/{id}", tag = "alerts", operation_id = "alerts_webhooks_show",
    params(("id" = String, Path, description = "The webhook id")),
    responses((status = 200, description = "The webhook, URL masked", body = Webhook),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn show(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Webhook>> {
    auth.require(Role::Admin)?;
    Ok(Json(webhooks::get(&state.db, &id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = alerts::WebhookUpdate)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    name: Option<String>,
    #[schema(value_type = Option<Flavour>)]
    flavour: Option<String>,
    /// A new URL (the delivery record starts again).
    url: Option<String>,
    enabled: Option<bool>,
}

#[utoipa::path(patch, path = "/api/alerts/webhooks/{id}", tag = "alerts", operation_id = "alerts_webhooks_update",
    params(("id" = String, Path, description = "The webhook id")),
    request_body = UpdateBody,
    responses((status = 200, description = "Changed", body = Webhook),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
        (status = 409, description = "A webhook with this name exists", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is missing, of the wrong type or not acceptable", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    audited: Audited,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Webhook>> {
    audited.auth.require(Role::Admin)?;
    let change = Change {
        name: body.name.as_deref(),
        flavour: body.flavour.as_deref(),
        url: body.url.as_deref(),
        enabled: body.enabled,
    };
    Ok(Json(
        webhooks::update_recorded(&state, &id, change, &audited.audit).await?,
    ))
}

#[utoipa::path(delete, path = "/api/alerts/webhooks/{id}", tag = "alerts", operation_id = "alerts_webhooks_delete",
    params(("id" = String, Path, description = "The webhook id")),
    responses((status = 204, description = "Deleted"),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    audited: Audited,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    audited.auth.require(Role::Admin)?;
    webhooks::delete_recorded(&state, &id, &audited.audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/alerts/webhooks/{id}/test", tag = "alerts", operation_id = "alerts_webhooks_test",
    params(("id" = String, Path, description = "The webhook id")),
    responses((status = 200, description = "Sent once (no retries); the webhook with the outcome in last_status and last_error", body = Webhook),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
        (status = 409, description = "The webhook's URL does not decrypt with the configured keys", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn test(
    State(state): State<AppState>,
    audited: Audited,
    Path(id): Path<String>,
) -> Result<Json<Webhook>> {
    audited.auth.require(Role::Admin)?;
    Ok(Json(
        webhooks::test_recorded(&state, &id, &audited.audit).await?,
    ))
}

/// One alert raised lately (this replica, since it started).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = alerts::RecentAlert)]
struct RecentAlert {
    kind: Kind,
    subject: String,
    message: String,
    timestamp: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = alerts::SettingsView)]
struct SettingsBody {
    settings: AlertSettings,
    /// Counters of this replica since it started.
    stats: Stats,
    recent: Vec<RecentAlert>,
}

fn settings_body(state: &AppState, settings: AlertSettings) -> SettingsBody {
    SettingsBody {
        settings,
        stats: state.alerts.stats(),
        recent: state
            .alerts
            .recent()
            .into_iter()
            .rev()
            .map(|alert| RecentAlert {
                kind: alert.kind,
                subject: alert.subject,
                message: alert.message,
                timestamp: alert.timestamp,
            })
            .collect(),
    }
}

#[utoipa::path(get, path = "/api/settings/alerts", tag = "alerts", operation_id = "alerts_settings_show",
    responses((status = 200, description = "Thresholds, counters, recent alerts", body = SettingsBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn show_settings(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<SettingsBody>> {
    auth.require(Role::Admin)?;
    let current = settings::load(&state.db).await?;
    Ok(Json(settings_body(&state, current)))
}

/// Any subset of the thresholds; the result must be valid as a whole.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = alerts::SettingsPatch)]
#[serde(deny_unknown_fields)]
struct SettingsPatch {
    #[schema(minimum = 1, maximum = 1440)]
    #[serde(default, deserialize_with = "crate::integer::option_i64")]
    dedup_window_minutes: Option<i64>,
    #[schema(minimum = 1, maximum = 10080)]
    #[serde(default, deserialize_with = "crate::integer::option_i64")]
    approval_wait_minutes: Option<i64>,
    #[schema(minimum = 3, maximum = 100000)]
    #[serde(default, deserialize_with = "crate::integer::option_i64")]
    sign_in_failures: Option<i64>,
    #[schema(minimum = 1, maximum = 1440)]
    #[serde(default, deserialize_with = "crate::integer::option_i64")]
    sign_in_window_minutes: Option<i64>,
    #[schema(minimum = 1, maximum = 600)]
    #[serde(default, deserialize_with = "crate::integer::option_i64")]
    per_webhook_per_minute: Option<i64>,
}

#[utoipa::path(patch, path = "/api/settings/alerts", tag = "alerts", operation_id = "alerts_settings_update",
    request_body = SettingsPatch,
    responses((status = 200, description = "Saved", body = SettingsBody),
        (status = 400, description = "The body is not valid JSON", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "This account's role may not do this", body = ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is of the wrong type, or a threshold is out of its range", body = ErrorBody),
        (status = 429, description = "Too many requests; Retry-After says when to try again", body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_settings(
    State(state): State<AppState>,
    audited: Audited,
    ApiJson(patch): ApiJson<SettingsPatch>,
) -> Result<Json<SettingsBody>> {
    audited.auth.require(Role::Admin)?;
    let current = settings::load(&state.db).await?;
    let next = AlertSettings {
        dedup_window_minutes: patch
            .dedup_window_minutes
            .unwrap_or(current.dedup_window_minutes),
        approval_wait_minutes: patch
            .approval_wait_minutes
            .unwrap_or(current.approval_wait_minutes),
        sign_in_failures: patch.sign_in_failures.unwrap_or(current.sign_in_failures),
        sign_in_window_minutes: patch
            .sign_in_window_minutes
            .unwrap_or(current.sign_in_window_minutes),
        per_webhook_per_minute: patch
            .per_webhook_per_minute
            .unwrap_or(current.per_webhook_per_minute),
    };
    settings::store_recorded(&state, &next, &audited.audit).await?;
    Ok(Json(settings_body(&state, next)))
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(
        list,
        create,
        show,
        update,
        remove,
        test,
        show_settings,
        update_settings
    ))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
