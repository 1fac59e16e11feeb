//! Test runs and execution logs: `/api/tools/test-code`, `/api/execution-logs`,
//! `/api/tools/{id}/logs`, `/api/servers/{id}/execution-logs`, `/api/logs/{id}`.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{LogFilter, LogRow};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::{ApiJson, ApiQuery, Result};
use crate::openapi::{Admin, E400, E401, E404, E409, E422, E503, JsonBody};
use crate::pagination::{Page, PageParams};
use crate::tools;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tools/test-code", post(test_code))
        .route("/api/execution-logs", get(all_logs))
        .route("/api/tools/{id}/logs", get(tool_logs))
        .route("/api/servers/{id}/execution-logs", get(server_logs))
        .route("/api/logs/{id}", get(one_log))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = execution::Test)]
struct TestBody {
    tool_id: String,
    /// The tool's arguments; default `{}`.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    arguments: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// A test run's answer (REST and the `mcpbox_test_code` tool).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = execution::TestAnswer)]
pub(crate) struct TestAnswer {
    success: bool,
    version: i64,
    result: Option<serde_json::Value>,
    error: Option<contract::sandbox::ToolError>,
    stdout: String,
    duration_ms: u64,
    log_id: String,
}

/// Runs the tool's approved version (a person may try it on a stopped server or while the tool
/// is disabled): the same path as a call, recorded with `is_test`. Drafts run only under `tool_approval_mode = auto_approve`.
#[utoipa::path(post, path = "/api/tools/test-code", tag = "execution", operation_id = "execution_test_code", request_body = TestBody, responses((status = 200, description = "The run's outcome (a failed run is a 200 with `success: false`)", body = TestAnswer), JsonBody, Admin, E404, E409, E503), security(("bearer" = [])))]
async fn test_code(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<TestBody>,
) -> Result<Json<TestAnswer>> {
    auth.require(Role::Approver)?;
    let outcome = super::test_run(
        &state,
        &body.tool_id,
        body.arguments,
        &auth.user().username,
        crate::control::Principal::Person,
    )
    .await?;
    Ok(Json(outcome.into()))
}

impl From<super::Outcome> for TestAnswer {
    fn from(outcome: super::Outcome) -> Self {
        TestAnswer {
            success: outcome.ok,
            version: outcome.version,
            result: outcome.result,
            error: outcome.error,
            stdout: outcome.stdout,
            duration_ms: outcome.duration_ms,
            log_id: outcome.log_id,
        }
    }
}

/// An execution-log row as clients see it (REST and the `mcpbox_get_tool_logs` tool).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = execution::Log)]
pub(crate) struct LogBody {
    id: String,
    tool_id: String,
    server_id: String,
    tool_name: String,
    version: i64,
    arguments: serde_json::Value,
    result: Option<serde_json::Value>,
    error: Option<String>,
    error_kind: Option<String>,
    /// `code`, `validation`, `timeout`, `network`, `sandbox`, `refused` or `cancelled`.
    error_category: Option<String>,
    /// The exception's class and the tool's own frames (null on success and on old rows).
    error_detail: Option<super::ErrorDetail>,
    stdout: String,
    duration_ms: i64,
    success: bool,
    /// `ok`, `error`, or `input_required`: the round ended asking the client (a tool that asks
    /// back runs once per round, each round a row).
    status: &'static str,
    /// The call's round this run was, from 1.
    input_round: i64,
    /// The questions an `input_required` round ended with (key → `{method, params}`).
    #[schema(value_type = Option<Object>)]
    input_requests: Option<serde_json::Value>,
    /// The client's answers the round ran with (redacted like arguments).
    #[schema(value_type = Option<Object>)]
    input_answers: Option<serde_json::Value>,
    is_test: bool,
    executed_by: String,
    created_at: String,
}

impl From<LogRow> for LogBody {
    fn from(row: LogRow) -> Self {
        LogBody {
            id: row.id,
            tool_id: row.tool_id,
            server_id: row.server_id,
            tool_name: row.tool_name,
            version: row.version,
            arguments: serde_json::from_str(&row.arguments).unwrap_or(serde_json::Value::Null),
            result: row.result.and_then(|r| serde_json::from_str(&r).ok()),
            error: row.error,
            error_kind: row.error_kind,
            error_category: row.error_category,
            error_detail: row
                .error_detail
                .as_deref()
                .map(|text| super::ErrorDetail::from_text(Some(text))),
            stdout: row.stdout,
            duration_ms: row.duration_ms,
            status: match (&row.input_requests, row.success) {
                (Some(_), _) => "input_required",
                (None, true) => "ok",
                (None, false) => "error",
            },
            success: row.success,
            input_round: row.input_round,
            input_requests: row
                .input_requests
                .and_then(|text| serde_json::from_str(&text).ok()),
            input_answers: row
                .input_answers
                .and_then(|text| serde_json::from_str(&text).ok()),
            is_test: row.is_test,
            executed_by: row.executed_by,
            created_at: row.created_at,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LogQuery {
    tool_id: Option<String>,
    server_id: Option<String>,
    success: Option<bool>,
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
    /// Keyset paging: `start` for the newest page, then each answer's `next_cursor`. Fast at
    /// any depth (page numbers slow down deep in a large log).
    cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = execution::CursorPage)]
struct CursorPage {
    items: Vec<LogBody>,
    /// `null` on the last page. Always present: it tells this shape from a numbered page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// A numbered page without `cursor`, a keyset page with it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(as = execution::LogsAnswer)]
enum LogsAnswer {
    Numbered(Page<LogBody>),
    Keyset(CursorPage),
}

async fn list(
    state: &AppState,
    filter: LogFilter,
    page: PageParams,
) -> Result<Json<Page<LogBody>>> {
    let request = page.validate()?;
    let (rows, total) = super::logs(&state.db, &filter, request.limit(), request.offset()).await?;
    Ok(Json(Page::new(
        rows.into_iter().map(Into::into).collect(),
        total,
        request,
    )))
}

/// Page numbers (`page`, with `total`), or keyset paging with `cursor`.
#[utoipa::path(get, path = "/api/execution-logs", tag = "execution", operation_id = "execution_all_logs", params(LogQuery), responses((status = 200, body = LogsAnswer), E400, E401, E422), security(("bearer" = [])))]
async fn all_logs(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Json<LogsAnswer>> {
    auth.require(Role::Viewer)?;
    let filter = LogFilter {
        tool_id: q.tool_id,
        server_id: q.server_id,
        success: q.success,
        executed_by: None,
    };
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    };
    let Some(cursor) = q.cursor else {
        let Json(numbered) = list(&state, filter, page).await?;
        return Ok(Json(LogsAnswer::Numbered(numbered)));
    };
    let request = page.validate()?;
    let cursor = if cursor == "start" {
        None
    } else {
        Some(super::Cursor::decode(&cursor)?)
    };
    let (rows, next) =
        super::logs_after(&state.db, &filter, cursor.as_ref(), request.limit()).await?;
    Ok(Json(LogsAnswer::Keyset(CursorPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor: next.map(|c| c.encode()),
    })))
}
#[utoipa::path(get, path = "/api/tools/{id}/logs", tag = "execution", operation_id = "execution_tool_logs", params(("id" = String, Path, description = "The id"), PageParams), responses((status = 200, body = Page<LogBody>), E400, E401, E404, E422), security(("bearer" = [])))]
async fn tool_logs(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<LogBody>>> {
    auth.require(Role::Viewer)?;
    tools::get(&state.db, &id).await?;
    list(
        &state,
        LogFilter {
            tool_id: Some(id),
            ..LogFilter::default()
        },
        page,
    )
    .await
}

#[utoipa::path(get, path = "/api/servers/{id}/execution-logs", tag = "execution", operation_id = "execution_server_logs", params(("id" = String, Path, description = "The id"), PageParams), responses((status = 200, body = Page<LogBody>), E400, E401, E404, E422), security(("bearer" = [])))]
async fn server_logs(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<LogBody>>> {
    auth.require(Role::Viewer)?;
    crate::servers::get(&state.db, &id).await?;
    list(
        &state,
        LogFilter {
            server_id: Some(id),
            ..LogFilter::default()
        },
        page,
    )
    .await
}

#[utoipa::path(get, path = "/api/logs/{id}", tag = "execution", operation_id = "execution_one_log", params(("id" = String, Path, description = "The id")), responses((status = 200, body = LogBody), E401, E404), security(("bearer" = [])))]
async fn one_log(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<LogBody>> {
    auth.require(Role::Viewer)?;
    Ok(Json(super::log(&state.db, &id).await?.into()))
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(test_code, all_logs, tool_logs, server_logs, one_log))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
