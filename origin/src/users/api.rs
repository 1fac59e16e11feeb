//! `/api/users`: admins list, create, enable/disable and re-role accounts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use utoipa::openapi::{RefOr, Schema};

use crate::activity::{self, Audited, NewEvent};
use crate::app::AppState;
use crate::auth::password::{NewPassword, Username};
use crate::auth::{AuthUser, Role, UserResponse};
use crate::error::{ApiJson, ApiQuery, Error, Result};
use crate::openapi::{Admin, E400, E404, E409, E422, E503, JsonBody};
use crate::pagination::{Page, PageParams};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", get(list).post(create))
        .route("/api/users/{id}", get(show).patch(update))
}

#[utoipa::path(get, path = "/api/users", tag = "users", operation_id = "users_list", params(PageParams), responses((status = 200, body = Page<UserResponse>), E400, Admin, E422), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<Page<UserResponse>>> {
    auth.require(Role::Admin)?;
    let request = params.validate()?;
    let (users, total) = super::list(&state.db, request.limit(), request.offset()).await?;
    let items = users.iter().map(UserResponse::from).collect();
    Ok(Json(Page::new(items, total, request)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = users::Create)]
struct CreateBody {
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_]*$", min_length = 3, max_length = 50)]
    username: String,
    /// Not only spaces.
    #[schema(min_length = 12, max_length = 128, pattern = "\\S")]
    password: String,
    #[schema(value_type = Role)]
    role: String,
}

/// A field that may be left out but not sent as `null` (which would change nothing).
fn present<'de, D, T>(deserializer: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

fn parse_role(text: &str) -> Result<Role> {
    text.parse()
        .map_err(|err: crate::auth::UnknownRole| Error::Validation(err.to_string()))
}

#[utoipa::path(post, path = "/api/users", tag = "users", operation_id = "users_create", request_body = CreateBody, responses((status = 201, body = UserResponse), JsonBody, Admin, E409, E503), security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    audited: Audited,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<UserResponse>)> {
    audited.auth.require(Role::Admin)?;
    let user = create_recorded(
        &state,
        &body.username,
        &body.password,
        &body.role,
        &audited.audit,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(UserResponse::from(&user))))
}

#[utoipa::path(get, path = "/api/users/{id}", tag = "users", operation_id = "users_show", params(("id" = String, Path, description = "The id")), responses((status = 200, body = UserResponse), Admin, E404), security(("bearer" = [])))]
async fn show(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<UserResponse>> {
    auth.require(Role::Admin)?;
    Ok(Json(UserResponse::from(
        &super::get(&state.db.pool, &id).await?,
    )))
}

/// At least one of the two (422 otherwise).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = users::Update)]
struct UpdateBody {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Role>, nullable = false)]
    role: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    is_active: Option<bool>,
}

#[utoipa::path(patch, path = "/api/users/{id}", tag = "users", operation_id = "users_update", params(("id" = String, Path, description = "The id")), request_body = UpdateBody, responses((status = 200, body = UserResponse), JsonBody, Admin, E404, E409), security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    audited: Audited,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<UserResponse>> {
    audited.auth.require(Role::Admin)?;
    let user = update_recorded(
        &state,
        &id,
        body.role.as_deref(),
        body.is_active,
        &audited.audit,
    )
    .await?;
    Ok(Json(UserResponse::from(&user)))
}

/// Creates an account from what a person typed and records it: what the REST API and the UI call.
pub async fn create_recorded(
    state: &AppState,
    username: &str,
    password: &str,
    role: &str,
    audit: &activity::Audit,
) -> Result<super::User> {
    let username = Username::parse(username)?;
    let password = NewPassword::parse(password)?;
    let role = parse_role(role)?;
    let user = super::create(&state.db, &state.passwords, &username, &password, role).await?;
    let event = NewEvent::info(
        "user.create",
        format!("account {} created ({role})", user.username),
    );
    activity::record_now(state, audit, event).await?;
    Ok(user)
}

/// Changes an account's role and/or active flag and records it (REST API and UI).
pub async fn update_recorded(
    state: &AppState,
    id: &str,
    role: Option<&str>,
    is_active: Option<bool>,
    audit: &activity::Audit,
) -> Result<super::User> {
    let role = role.map(parse_role).transpose()?;
    if role.is_none() && is_active.is_none() {
        return Err(Error::Validation(
            "nothing to change: give role and/or is_active".to_owned(),
        ));
    }
    let user = super::update(&state.db, id, role, is_active).await?;
    let message = format!(
        "account {} is now {} ({})",
        user.username,
        user.role,
        if user.is_active { "active" } else { "disabled" }
    );
    activity::record_now(state, audit, NewEvent::warning("user.update", message)).await?;
    Ok(user)
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(list, create, show, update))]
    struct Doc;
    let mut doc = <Doc as utoipa::OpenApi>::openapi();
    // An update changes at least one field. Set by hand: utoipa 5.5 writes
    // `#[schema(min_properties)]` as maxProperties.
    let update = doc
        .components
        .as_mut()
        .and_then(|components| components.schemas.get_mut("users.Update"));
    if let Some(RefOr::T(Schema::Object(update))) = update {
        update.min_properties = Some(1);
    }
    doc
}
