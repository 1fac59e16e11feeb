//! `/api/approvals/...` (reference paths), bound to versions: `approve` and `reject` take the
//! `version` reviewed, or without it apply to the tool's only version pending review (never to
//! a newer draft); `submit_for_review` without a version submits the newest.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::Reviewer;
use crate::activity::Audited;
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::{ApiJson, ApiQuery, Error, OptionalJson, Result};
use crate::openapi::{Admin, E400, E401, E404, E409, E422, JsonBody};
use crate::pagination::{Page, PageParams};
use crate::tools::api_version_body as version_body;
use contract::error::ErrorBody;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/approvals/stats", get(stats))
        .route("/api/approvals/tools", get(queue))
        .route("/api/approvals/tools/bulk-action", post(bulk))
        .route("/api/approvals/tools/{id}/action", post(action))
        .route("/api/approvals/tools/{id}/revoke", post(revoke))
}

const STATUSES: [&str; 5] = ["draft", "pending_review", "approved", "rejected", "revoked"];

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct QueueQuery {
    /// A status, or `all`. Default: `pending_review`.
    #[param(pattern = "^(draft|pending_review|approved|rejected|revoked|all)$")]
    status: Option<String>,
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = approvals::QueueEntry)]
struct QueueEntry {
    tool_id: String,
    tool_name: String,
    server_id: String,
    server_name: String,
    #[serde(flatten)]
    version: crate::tools::VersionBodyPublic,
}

#[utoipa::path(get, path = "/api/approvals/tools", tag = "approvals", operation_id = "approvals_queue", params(QueueQuery), responses((status = 200, body = Page<QueueEntry>), E400, E401, E422), security(("bearer" = [])))]
async fn queue(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<QueueQuery>,
) -> Result<Json<Page<QueueEntry>>> {
    auth.require(Role::Viewer)?;
    let status = match query.status.as_deref().unwrap_or("pending_review") {
        "all" => None,
        status if STATUSES.contains(&status) => Some(status),
        other => {
            return Err(Error::Validation(format!(
                "unknown status {other:?} (use one of {} or all)",
                STATUSES.join(", ")
            )));
        }
    };
    let request = PageParams {
        page: query.page,
        page_size: query.page_size,
    }
    .validate()?;
    let (items, total) = super::queue(&state.db, status, request.limit(), request.offset()).await?;
    let items = items
        .into_iter()
        .map(|item| QueueEntry {
            tool_id: item.tool_id,
            tool_name: item.tool_name,
            server_id: item.server_id,
            server_name: item.server_name,
            version: version_body(item.version),
        })
        .collect();
    Ok(Json(Page::new(items, total, request)))
}

/// `submit_for_review` needs an admin; `approve` and `reject` an approver.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = approvals::Action)]
enum Action {
    Approve,
    Reject,
    SubmitForReview,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = approvals::ActionRequest)]
struct ActionBody {
    action: Action,
    reason: Option<String>,
    #[serde(default, deserialize_with = "crate::integer::option_i64")]
    version: Option<i64>,
}

async fn apply(
    state: &AppState,
    audited: &Audited,
    tool_id: &str,
    action: Action,
    reason: Option<&str>,
    version: Option<i64>,
) -> Result<crate::tools::Version> {
    match action {
        Action::Approve => {
            super::approve(state, tool_id, version, &Reviewer::from_audited(audited)?).await
        }
        Action::Reject => {
            super::reject(
                state,
                tool_id,
                version,
                reason.unwrap_or(""),
                &Reviewer::from_audited(audited)?,
            )
            .await
        }
        Action::SubmitForReview => {
            audited.auth.require(Role::Admin)?;
            super::request_publish(state, tool_id, version, reason, &audited.audit).await
        }
    }
}

#[utoipa::path(post, path = "/api/approvals/tools/{id}/action", tag = "approvals", operation_id = "approvals_action", params(("id" = String, Path, description = "The id")), request_body = ActionBody, responses((status = 200, body = crate::tools::VersionBodyPublic), JsonBody, Admin, E404, E409), security(("bearer" = [])))]
async fn action(
    State(state): State<AppState>,
    audited: Audited,
    Path(tool_id): Path<String>,
    ApiJson(body): ApiJson<ActionBody>,
) -> Result<Json<crate::tools::VersionBodyPublic>> {
    let version = apply(
        &state,
        &audited,
        &tool_id,
        body.action,
        body.reason.as_deref(),
        body.version,
    )
    .await?;
    Ok(Json(version_body(version)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = approvals::Revoke)]
struct RevokeBody {
    #[serde(default, deserialize_with = "crate::integer::option_i64")]
    version: Option<i64>,
}

#[utoipa::path(post, path = "/api/approvals/tools/{id}/revoke", tag = "approvals", operation_id = "approvals_revoke", params(("id" = String, Path, description = "The id")), request_body(content = Option<RevokeBody>, description = "Optional: without a version, the approved one"), responses((status = 200, body = crate::tools::VersionBodyPublic), (status = 400, description = "The body is not valid JSON", body = ErrorBody), (status = 413, description = "The body is larger than the limit", body = ErrorBody), Admin, E404, E409), security(("bearer" = [])))]
async fn revoke(
    State(state): State<AppState>,
    audited: Audited,
    Path(tool_id): Path<String>,
    OptionalJson(body): OptionalJson<RevokeBody>,
) -> Result<Json<crate::tools::VersionBodyPublic>> {
    let reviewer = Reviewer::from_audited(&audited)?;
    let version = body.and_then(|b| b.version);
    Ok(Json(version_body(
        super::revoke(&state, &tool_id, version, &reviewer).await?,
    )))
}

/// Either `tool_ids` (each resolves to its only version pending review, as listed by the
/// queue) or `items` naming the versions reviewed; not both.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = approvals::Bulk)]
struct BulkBody {
    #[serde(default)]
    #[schema(max_items = 100)]
    tool_ids: Vec<String>,
    #[serde(default)]
    #[schema(max_items = 100)]
    items: Vec<BulkItem>,
    action: Action,
    reason: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = approvals::BulkItem)]
struct BulkItem {
    tool_id: String,
    #[serde(deserialize_with = "crate::integer::i64")]
    version: i64,
}

const BULK_MAX: usize = 100;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = approvals::BulkResult)]
struct BulkResult {
    tool_id: String,
    ok: bool,
    version: Option<i64>,
    error: Option<String>,
}

/// Applies one action to each item: a listed version (`items`), or a tool's only version
/// pending review (`tool_ids`). Each item succeeds or fails on its own (and is atomic, with its
/// audit row); the answer lists every outcome.
#[utoipa::path(post, path = "/api/approvals/tools/bulk-action", tag = "approvals", operation_id = "approvals_bulk", request_body = BulkBody, responses((status = 200, description = "Every item's outcome", body = Vec<BulkResult>), JsonBody, Admin), security(("bearer" = [])))]
async fn bulk(
    State(state): State<AppState>,
    audited: Audited,
    ApiJson(body): ApiJson<BulkBody>,
) -> Result<Json<Vec<BulkResult>>> {
    audited.auth.require(Role::Approver)?;
    let targets: Vec<(String, Option<i64>)> =
        match (body.tool_ids.is_empty(), body.items.is_empty()) {
            (false, true) => body.tool_ids.into_iter().map(|id| (id, None)).collect(),
            (true, false) => body
                .items
                .into_iter()
                .map(|item| (item.tool_id, Some(item.version)))
                .collect(),
            _ => {
                return Err(Error::Validation(
                    "give either tool_ids or items (each {\"tool_id\", \"version\"}), not both"
                        .into(),
                ));
            }
        };
    if targets.len() > BULK_MAX {
        return Err(Error::Validation(format!(
            "tool_ids or items must list 1 to {BULK_MAX} tools"
        )));
    }
    if body.action == Action::Reject && body.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(Error::Validation(
            "rejecting needs a reason the author can act on".into(),
        ));
    }
    let mut results = Vec::with_capacity(targets.len());
    for (tool_id, version) in targets {
        let outcome = apply(
            &state,
            &audited,
            &tool_id,
            body.action,
            body.reason.as_deref(),
            version,
        )
        .await;
        results.push(match outcome {
            Ok(version) => BulkResult {
                tool_id,
                ok: true,
                version: Some(version.version),
                error: None,
            },
            Err(Error::Internal(err)) => return Err(Error::Internal(err)),
            Err(err) => BulkResult {
                tool_id,
                ok: false,
                version: None,
                error: Some(err.to_string()),
            },
        });
    }
    Ok(Json(results))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = approvals::Stats)]
struct Stats {
    by_status: std::collections::BTreeMap<String, i64>,
}

#[utoipa::path(get, path = "/api/approvals/stats", tag = "approvals", operation_id = "approvals_stats", responses((status = 200, body = Stats), E401), security(("bearer" = [])))]
async fn stats(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Stats>> {
    auth.require(Role::Viewer)?;
    let mut by_status: std::collections::BTreeMap<String, i64> =
        STATUSES.iter().map(|s| (s.to_string(), 0)).collect();
    for (status, count) in super::stats(&state.db).await? {
        by_status.insert(status, count);
    }
    Ok(Json(Stats { by_status }))
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(stats, queue, bulk, action, revoke))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
