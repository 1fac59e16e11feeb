//! `/api/servers` and the start/stop routes (reference paths under `/api/sandbox/servers`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::Server;
use crate::activity::Audited;
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::{ApiJson, ApiQuery, Result};
use crate::names::Name;
use crate::openapi::{Admin, E400, E401, E404, E409, E422, E503, JsonBody};
use crate::pagination::{Page, PageParams};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/servers", get(list).post(create))
        .route("/api/servers/{id}", get(show).patch(update).delete(remove))
        .route("/api/sandbox/servers/{id}/start", post(start))
        .route("/api/sandbox/servers/{id}/stop", post(stop))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = servers::Server)]
pub struct ServerBody {
    id: String,
    name: String,
    description: String,
    status: Status,
    /// Stopped by a person: only a person (not an LLM over MCP) can start it again.
    stopped_by_admin: bool,
    default_timeout_ms: i64,
    created_by: String,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = servers::Status)]
enum Status {
    Running,
    Stopped,
}

impl From<Server> for ServerBody {
    fn from(server: Server) -> Self {
        let status = if server.running {
            Status::Running
        } else {
            Status::Stopped
        };
        ServerBody {
            id: server.id,
            name: server.name,
            description: server.description,
            status,
            stopped_by_admin: server.stopped_by_admin,
            default_timeout_ms: server.default_timeout_ms,
            created_by: server.created_by,
            created_at: server.created_at,
            updated_at: server.updated_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = servers::Create)]
struct CreateBody {
    #[schema(pattern = "^[a-z][a-z0-9]*(_[a-z0-9]+)*$", max_length = 30)]
    name: String,
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: String,
}

#[utoipa::path(post, path = "/api/servers", tag = "servers", operation_id = "servers_create", request_body = CreateBody, responses((status = 201, body = ServerBody), JsonBody, Admin, E409), security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    audited: Audited,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<ServerBody>)> {
    audited.auth.require(Role::Admin)?;
    let name = Name::server(&body.name)?;
    let server = super::create_recorded(&state, &name, &body.description, &audited.audit).await?;
    Ok((StatusCode::CREATED, Json(server.into())))
}

#[utoipa::path(get, path = "/api/servers", tag = "servers", operation_id = "servers_list", params(PageParams), responses((status = 200, body = Page<ServerBody>), E400, E401, E422), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<Page<ServerBody>>> {
    auth.require(Role::Viewer)?;
    let request = params.validate()?;
    let (servers, total) = super::list(&state.db, request.limit(), request.offset()).await?;
    Ok(Json(Page::new(
        servers.into_iter().map(Into::into).collect(),
        total,
        request,
    )))
}

#[utoipa::path(get, path = "/api/servers/{id}", tag = "servers", operation_id = "servers_show", params(("id" = String, Path, description = "The id")), responses((status = 200, body = ServerBody), E401, E404), security(("bearer" = [])))]
async fn show(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ServerBody>> {
    auth.require(Role::Viewer)?;
    Ok(Json(super::get(&state.db, &id).await?.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = servers::Update)]
struct UpdateBody {
    #[schema(pattern = "^[a-z][a-z0-9]*(_[a-z0-9]+)*$", max_length = 30)]
    name: Option<String>,
    #[schema(max_length = 2000)]
    description: Option<String>,
    #[serde(default, deserialize_with = "crate::integer::option_i64")]
    #[schema(minimum = 1000, maximum = 300000)]
    default_timeout_ms: Option<i64>,
}

#[utoipa::path(patch, path = "/api/servers/{id}", tag = "servers", operation_id = "servers_update", params(("id" = String, Path, description = "The id")), request_body = UpdateBody, responses((status = 200, body = ServerBody), JsonBody, Admin, E404, E409), security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    audited: Audited,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<ServerBody>> {
    audited.auth.require(Role::Admin)?;
    let changes = super::Changes {
        name: body.name.as_deref().map(Name::server).transpose()?,
        description: body.description,
        default_timeout_ms: body.default_timeout_ms,
    };
    let server = super::update_recorded(&state, &id, changes, &audited.audit).await?;
    Ok(Json(server.into()))
}

#[utoipa::path(delete, path = "/api/servers/{id}", tag = "servers", operation_id = "servers_remove", params(("id" = String, Path, description = "The id")), responses((status = 204, description = "Deleted"), Admin, E404), security(("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    audited: Audited,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    audited.auth.require(Role::Admin)?;
    super::delete_recorded(&state, &id, &audited.audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_running(
    state: &AppState,
    audited: &Audited,
    id: &str,
    running: bool,
) -> Result<Json<ServerBody>> {
    audited.auth.require(Role::Admin)?;
    let server = super::set_running_recorded(
        state,
        id,
        running,
        crate::control::Principal::Person,
        &audited.audit,
    )
    .await?;
    Ok(Json(server.into()))
}

#[utoipa::path(post, path = "/api/sandbox/servers/{id}/start", tag = "servers", operation_id = "servers_start", params(("id" = String, Path, description = "The id")), responses((status = 200, body = ServerBody), Admin, E404, E409, E503), security(("bearer" = [])))]
async fn start(
    State(state): State<AppState>,
    audited: Audited,
    Path(id): Path<String>,
) -> Result<Json<ServerBody>> {
    set_running(&state, &audited, &id, true).await
}

#[utoipa::path(post, path = "/api/sandbox/servers/{id}/stop", tag = "servers", operation_id = "servers_stop", params(("id" = String, Path, description = "The id")), responses((status = 200, body = ServerBody), Admin, E404, E409), security(("bearer" = [])))]
async fn stop(
    State(state): State<AppState>,
    audited: Audited,
    Path(id): Path<String>,
) -> Result<Json<ServerBody>> {
    set_running(&state, &audited, &id, false).await
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(list, create, show, update, remove, start, stop))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
