//! `/api/packages`: installed packages with their versions, install progress and known
//! vulnerabilities; the on-demand OSV re-check; what a module request resolved to.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::{Installed, Resolved};
use crate::activity::{self, Audited, NewEvent};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::{Error, Result};
use crate::openapi::{Admin, E404, E503};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/packages", get(list))
        .route("/api/packages/recheck", post(recheck))
        .route("/api/packages/requests/{id}", get(resolution))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = packages::List)]
struct List {
    packages: Vec<Installed>,
}

#[utoipa::path(get, path = "/api/packages", tag = "packages", operation_id = "packages_list",
    responses((status = 200, description = "Every installed (installing, failed) package", body = List), Admin),
    security(("bearer" = [])))]
async fn list(State(state): State<AppState>, auth: AuthUser) -> Result<Json<List>> {
    auth.require(Role::Viewer)?;
    Ok(Json(List {
        packages: super::installed(&state).await?,
    }))
}

#[utoipa::path(post, path = "/api/packages/recheck", tag = "packages", operation_id = "packages_recheck",
    responses((status = 200, description = "The packages after OSV was asked again", body = List), Admin, E503),
    security(("bearer" = [])))]
async fn recheck(State(state): State<AppState>, audited: Audited) -> Result<Json<List>> {
    audited.auth.require(Role::Admin)?;
    let packages = super::recheck(&state).await?;
    let event = NewEvent::info(
        "package.recheck",
        format!("{} packages checked against OSV", packages.len()),
    );
    activity::record_now(&state, &audited.audit, event).await?;
    Ok(Json(List { packages }))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = packages::Resolution)]
struct Resolution {
    request_id: String,
    /// Exactly what approving installs: each distribution pinned by version and sha256.
    distributions: Vec<Resolved>,
}

#[utoipa::path(get, path = "/api/packages/requests/{id}", tag = "packages", operation_id = "packages_resolution",
    params(("id" = String, Path, description = "The module request id")),
    responses((status = 200, description = "What the request resolved to", body = Resolution), Admin, E404),
    security(("bearer" = [])))]
async fn resolution(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Resolution>> {
    auth.require(Role::Viewer)?;
    let distributions = super::resolution_of(&state.db, &id)
        .await?
        .ok_or_else(|| Error::NotFound("no package request with that id".into()))?;
    Ok(Json(Resolution {
        request_id: id,
        distributions,
    }))
}

pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(list, recheck, resolution))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
