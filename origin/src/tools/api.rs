//! Tool routes (reference paths): `/api/servers/{id}/tools`, `/api/tools/{id}`, versions,
//! compare, rollback, and `/api/tools/validate-code`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{Source, Tool, Version};
use crate::activity::Audited;
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::{ApiJson, ApiQuery, Result};
use crate::names::Name;
use crate::openapi::{Admin, E400, E401, E404, E409, E422, E503, JsonBody};
use crate::pagination::{Page, PageParams};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/servers/{id}/tools", get(list).post(create))
        .route("/api/tools/validate-code", post(validate_code))
        .route("/api/tools/{id}", get(show).patch(update).delete(remove))
        .route("/api/tools/{id}/versions", get(versions))
        .route("/api/tools/{id}/versions/compare", get(compare))
        .route("/api/tools/{id}/versions/{version}", get(show_version))
        .route(
            "/api/tools/{id}/versions/{version}/rollback",
            post(rollback),
        )
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = tools::Tool)]
struct ToolBody {
    id: String,
    server_id: String,
    name: String,
    /// `python`, or `passthrough` (a tool of an external MCP source; its versions' `python_code`
    /// holds the binding to the remote tool).
    kind: &'static str,
    enabled: bool,
    timeout_ms: Option<i64>,
    current_version: i64,
    /// The version that runs (the newest approved one), if any.
    approved_version: Option<i64>,
    created_by: String,
    created_at: String,
    updated_at: String,
    /// The newest version in full.
    latest: VersionBody,
}

/// A version as the API shows it (also used by the approvals routes).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = tools::Version)]
pub struct VersionBody {
    pub version: i64,
    pub description: String,
    pub python_code: String,
    /// SHA-256 of the code; of the code, annotations and output schema together when the
    /// version has either (`tools::version_hash`). Checked before every run.
    pub code_hash: String,
    /// The input schema, as JSON.
    pub input_schema: serde_json::Value,
    /// The MCP annotations the author declared (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<super::Annotations>,
    /// The output schema derived from `main`'s return annotation (absent: none, and results
    /// are not checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<serde_json::Value>,
    /// `admin`, `llm`, `rollback` or `import`.
    pub change_source: String,
    pub change_summary: String,
    pub created_by: String,
    pub created_at: String,
    /// `draft`, `pending_review`, `approved`, `rejected` or `revoked`.
    pub status: String,
    pub publish_notes: Option<String>,
    pub requested_at: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<String>,
    pub rejection_reason: Option<String>,
}

impl From<Version> for VersionBody {
    fn from(v: Version) -> Self {
        VersionBody {
            version: v.version,
            description: v.description,
            input_schema: serde_json::from_str(&v.input_schema).unwrap_or(serde_json::Value::Null),
            annotations: super::Annotations::from_stored(v.annotations.as_deref()),
            output_schema: v
                .output_schema
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            python_code: v.python_code,
            code_hash: v.code_hash,
            change_source: v.change_source,
            change_summary: v.change_summary,
            created_by: v.created_by,
            created_at: v.created_at,
            status: v.status,
            publish_notes: v.publish_notes,
            requested_at: v.requested_at,
            reviewed_by: v.reviewed_by,
            reviewed_at: v.reviewed_at,
            rejection_reason: v.rejection_reason,
        }
    }
}

async fn tool_body(state: &AppState, tool: Tool) -> Result<ToolBody> {
    let latest = super::version(&state.db, &tool.id, tool.current_version).await?;
    let approved_version = super::approved_version(&state.db, &tool.id).await?;
    Ok(ToolBody {
        id: tool.id,
        server_id: tool.server_id,
        name: tool.name,
        kind: tool.kind.as_str(),
        enabled: tool.enabled,
        timeout_ms: tool.timeout_ms,
        current_version: tool.current_version,
        approved_version,
        created_by: tool.created_by,
        created_at: tool.created_at,
        updated_at: tool.updated_at,
        latest: latest.into(),
    })
}

/// `python_code` must pass the sandbox's static check (an `async def main`, allowed imports):
/// 422 with the line numbers otherwise.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = tools::Create)]
struct CreateBody {
    #[schema(pattern = "^[a-z][a-z0-9]*(_[a-z0-9]+)*$", max_length = 61)]
    name: String,
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: String,
    #[schema(
        example = "async def main(name: str) -> dict:\n    \"\"\"Greets.\"\"\"\n    return {'hello': name}\n"
    )]
    python_code: String,
    /// MCP annotations (hints to clients) version 1 declares; reviewed with the code.
    #[serde(default)]
    annotations: Option<super::Annotations>,
}

#[utoipa::path(post, path = "/api/servers/{id}/tools", tag = "tools", operation_id = "tools_create", params(("id" = String, Path, description = "The id")), request_body = CreateBody, responses((status = 201, body = ToolBody), JsonBody, Admin, E404, E409, E503), security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    audited: Audited,
    Path(server_id): Path<String>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<ToolBody>)> {
    audited.auth.require(Role::Admin)?;
    let name = Name::tool(&body.name)?;
    let new = super::NewTool {
        server_id: &server_id,
        name: &name,
        description: &body.description,
        code: &body.python_code,
        source: Source::Admin,
        audit: &audited.audit,
        annotations: body.annotations.as_ref(),
    };
    let (tool, _) = super::create(&state, new).await?;
    Ok((StatusCode::CREATED, Json(tool_body(&state, tool).await?)))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = tools::Summary)]
struct ToolSummary {
    id: String,
    name: String,
    enabled: bool,
    current_version: i64,
}

#[utoipa::path(get, path = "/api/servers/{id}/tools", tag = "tools", operation_id = "tools_list", params(("id" = String, Path, description = "The id"), PageParams), responses((status = 200, body = Page<ToolSummary>), E400, E401, E404, E422), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(server_id): Path<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<Page<ToolSummary>>> {
    auth.require(Role::Viewer)?;
    let request = params.validate()?;
    let (tools, total) =
        super::list(&state.db, &server_id, request.limit(), request.offset()).await?;
    let items = tools
        .into_iter()
        .map(|t| ToolSummary {
            id: t.id,
            name: t.name,
            enabled: t.enabled,
            current_version: t.current_version,
        })
        .collect();
    Ok(Json(Page::new(items, total, request)))
}

#[utoipa::path(get, path = "/api/tools/{id}", tag = "tools", operation_id = "tools_show", params(("id" = String, Path, description = "The id")), responses((status = 200, body = ToolBody), E401, E404), security(("bearer" = [])))]
async fn show(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ToolBody>> {
    auth.require(Role::Viewer)?;
    let tool = super::get(&state.db, &id).await?;
    Ok(Json(tool_body(&state, tool).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = tools::Update)]
struct UpdateBody {
    #[schema(pattern = "^[a-z][a-z0-9]*(_[a-z0-9]+)*$", max_length = 61)]
    name: Option<String>,
    #[schema(max_length = 2000)]
    description: Option<String>,
    python_code: Option<String>,
    enabled: Option<bool>,
    /// `null` clears it (the server's default applies).
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<i64>, minimum = 1000, maximum = 300000)]
    timeout_ms: Option<Option<i64>>,
    change_summary: Option<String>,
    /// New MCP annotations (all of them; `{}` clears them): a new draft version, like new code.
    annotations: Option<super::Annotations>,
}

/// Tells "absent" (leave alone) from `null` (clear) for `timeout_ms`.
mod double_option {
    use serde::Deserializer;
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<i64>>, D::Error> {
        crate::integer::option_i64(deserializer).map(Some)
    }
}

#[utoipa::path(patch, path = "/api/tools/{id}", tag = "tools", operation_id = "tools_update", params(("id" = String, Path, description = "The id")), request_body = UpdateBody, responses((status = 200, body = ToolBody), JsonBody, Admin, E404, E409, E503), security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    audited: Audited,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<ToolBody>> {
    audited.auth.require(Role::Admin)?;
    let changes = super::Changes {
        name: body.name.as_deref().map(Name::tool).transpose()?,
        description: body.description,
        python_code: body.python_code,
        enabled: body.enabled,
        timeout_ms: body.timeout_ms,
        summary: body.change_summary,
        annotations: body.annotations,
    };
    let (tool, _) = super::update(&state, &id, changes, Source::Admin, &audited.audit).await?;
    Ok(Json(tool_body(&state, tool).await?))
}

#[utoipa::path(delete, path = "/api/tools/{id}", tag = "tools", operation_id = "tools_remove", params(("id" = String, Path, description = "The id")), responses((status = 204, description = "Deleted"), Admin, E404), security(("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    audited: Audited,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    audited.auth.require(Role::Admin)?;
    super::delete(&state, &id, &audited.audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = tools::VersionSummary)]
struct VersionSummary {
    version: i64,
    status: String,
    change_source: String,
    change_summary: String,
    created_by: String,
    created_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = tools::VersionList)]
struct VersionList {
    current_version: i64,
    approved_version: Option<i64>,
    total_versions: usize,
    versions: Vec<VersionSummary>,
}

#[utoipa::path(get, path = "/api/tools/{id}/versions", tag = "tools", operation_id = "tools_versions", params(("id" = String, Path, description = "The id")), responses((status = 200, body = VersionList), E401, E404), security(("bearer" = [])))]
async fn versions(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<VersionList>> {
    auth.require(Role::Viewer)?;
    let tool = super::get(&state.db, &id).await?;
    let versions: Vec<VersionSummary> = super::versions(&state.db, &id)
        .await?
        .into_iter()
        .map(|v| VersionSummary {
            version: v.version,
            status: v.status,
            change_source: v.change_source,
            change_summary: v.change_summary,
            created_by: v.created_by,
            created_at: v.created_at,
        })
        .collect();
    Ok(Json(VersionList {
        current_version: tool.current_version,
        approved_version: super::approved_version(&state.db, &id).await?,
        total_versions: versions.len(),
        versions,
    }))
}

#[utoipa::path(get, path = "/api/tools/{id}/versions/{version}", tag = "tools", operation_id = "tools_show_version", params(("id" = String, Path, description = "The id"), ("version" = i64, Path, description = "A version number")), responses((status = 200, body = VersionBody), E400, E401, E404), security(("bearer" = [])))]
async fn show_version(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, version)): Path<(String, i64)>,
) -> Result<Json<VersionBody>> {
    auth.require(Role::Viewer)?;
    Ok(Json(super::version(&state.db, &id, version).await?.into()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CompareQuery {
    from_version: i64,
    to_version: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = tools::Comparison)]
struct Comparison {
    from_version: i64,
    to_version: i64,
    diff: String,
    /// Each version's MCP annotations (absent: none), which the code diff does not show.
    #[serde(skip_serializing_if = "Option::is_none")]
    from_annotations: Option<super::Annotations>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_annotations: Option<super::Annotations>,
    /// Each version's output schema (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    from_output_schema: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_output_schema: Option<serde_json::Value>,
}

#[utoipa::path(get, path = "/api/tools/{id}/versions/compare", tag = "tools", operation_id = "tools_compare", params(("id" = String, Path, description = "The id"), CompareQuery), responses((status = 200, body = Comparison), E400, E401, E404), security(("bearer" = [])))]
async fn compare(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<CompareQuery>,
) -> Result<Json<Comparison>> {
    auth.require(Role::Viewer)?;
    let diff = super::diff(&state.db, &id, query.from_version, query.to_version).await?;
    let from = super::version(&state.db, &id, query.from_version).await?;
    let to = super::version(&state.db, &id, query.to_version).await?;
    let schema = |v: &Version| {
        v.output_schema
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
    };
    Ok(Json(Comparison {
        from_version: query.from_version,
        to_version: query.to_version,
        diff,
        from_annotations: super::Annotations::from_stored(from.annotations.as_deref()),
        to_annotations: super::Annotations::from_stored(to.annotations.as_deref()),
        from_output_schema: schema(&from),
        to_output_schema: schema(&to),
    }))
}

#[utoipa::path(post, path = "/api/tools/{id}/versions/{version}/rollback", tag = "tools", operation_id = "tools_rollback", params(("id" = String, Path, description = "The id"), ("version" = i64, Path, description = "A version number")), responses((status = 201, body = VersionBody), E400, Admin, E404, E422, E503), security(("bearer" = [])))]
async fn rollback(
    State(state): State<AppState>,
    audited: Audited,
    Path((id, version)): Path<(String, i64)>,
) -> Result<(StatusCode, Json<VersionBody>)> {
    audited.auth.require(Role::Admin)?;
    let created = super::rollback(&state, &id, version, &audited.audit).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = tools::Validate)]
struct ValidateBody {
    code: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = tools::Validation)]
struct ValidateAnswer {
    valid: bool,
    has_main: bool,
    errors: Vec<contract::sandbox::CodeError>,
    description: Option<String>,
    input_schema: Option<serde_json::Value>,
    /// The output schema derived from `main`'s return annotation, if it has one.
    output_schema: Option<serde_json::Value>,
    /// When not valid: the errors in the shape a failed run has (category `validation`).
    error: Option<contract::sandbox::ToolError>,
}

/// Checks code without saving it (same check as create/update).
#[utoipa::path(post, path = "/api/tools/validate-code", tag = "tools", operation_id = "tools_validate_code", request_body = ValidateBody, responses((status = 200, body = ValidateAnswer), JsonBody, Admin, E503), security(("bearer" = [])))]
async fn validate_code(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<ValidateBody>,
) -> Result<Json<ValidateAnswer>> {
    auth.require(Role::Approver)?;
    let checked = super::check_code(&state.sandbox, &body.code, None).await?;
    Ok(Json(ValidateAnswer {
        error: checked.as_tool_error(),
        valid: checked.valid,
        has_main: checked.has_main,
        errors: checked.errors,
        description: checked.description,
        input_schema: checked
            .input_schema
            .and_then(|s| serde_json::from_str(&s).ok()),
        output_schema: checked
            .output_schema
            .and_then(|s| serde_json::from_str(&s).ok()),
    }))
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(
        list,
        create,
        validate_code,
        show,
        update,
        remove,
        versions,
        compare,
        show_version,
        rollback
    ))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
