//! Admin authentication: first-run set-up, sign-in, token refresh and revocation, and the
//! `AuthUser` extractor with the role check every protected route uses.
//!
//! Routes (paths kept from the reference system): `GET /auth/status`, `POST /auth/setup`,
//! `POST /auth/login`, `POST /auth/refresh`, `POST /auth/logout`, `POST /auth/logout-all`,
//! `POST /auth/change-password`, `GET /auth/me`.

pub mod password;
mod role;
pub mod throttle;
pub mod tokens;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

pub use role::{Role, UnknownRole};

use crate::activity::{self, Audit, NewEvent, RequestId};
use crate::app::AppState;
use crate::error::{ApiJson, Error, OptionalJson, Result};
use crate::openapi::{E401, E409, E503, JsonBody};
use crate::users;
use contract::error::ErrorBody;
use password::{NewPassword, Username};
use tokens::{Audience, Session, TokenPair};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/status", get(status))
        .route("/auth/setup", post(setup))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/logout-all", post(logout_all))
        .route("/auth/change-password", post(change_password))
        .route("/auth/me", get(me))
}

/// The signed-in account behind a request, from `Authorization: Bearer <access token>`.
/// Extracting it validates the token against the database (see `tokens::verify_access`).
#[derive(Debug, Clone)]
pub struct AuthUser(pub Session);

impl AuthUser {
    /// The one role check every protected handler calls first.
    pub fn require(&self, role: Role) -> Result<()> {
        if self.0.user.role.includes(role) {
            Ok(())
        } else {
            Err(Error::Forbidden(match role {
                Role::Admin => "only an admin may do this",
                Role::Approver => "only an approver or an admin may do this",
                Role::Viewer => "this account may not do this",
            }))
        }
    }

    pub fn user(&self) -> &users::User {
        &self.0.user
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let header =
            parts
                .headers
                .get(axum::http::header::AUTHORIZATION)
                .ok_or(Error::Unauthorized(
                    "sign in first: this needs an access token",
                ))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(Error::Unauthorized(
                "expected the header Authorization: Bearer <token>",
            ))?;
        tokens::verify_access(&state.db, &state.jwt, token, Audience::Api)
            .await
            .map(AuthUser)
    }
}

/// The peer address of the connection. Requests that reach a handler without one (only in-process
/// tests that do not set it) all share one bucket, which can only make throttling stricter.
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(ClientIp(ip))
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = auth::Status)]
struct StatusResponse {
    setup_required: bool,
    onboarding_completed: bool,
}

#[utoipa::path(get, path = "/auth/status", tag = "auth", operation_id = "auth_status", responses((status = 200, body = StatusResponse)))]
async fn status(State(state): State<AppState>) -> Result<Json<StatusResponse>> {
    Ok(Json(StatusResponse {
        setup_required: users::setup_required(&state.db).await?,
        onboarding_completed: crate::settings::get_flag(&state.db, "onboarding_completed").await?,
    }))
}

/// Set-up checks the new account's rules too (a username of 3 to 50 letters, digits and `_`
/// starting with a letter; a password of 12 to 128 characters): 422 otherwise.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = auth::Credentials)]
struct Credentials {
    #[schema(min_length = 1, max_length = 50)]
    username: String,
    #[schema(min_length = 1, max_length = 128)]
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = auth::User)]
pub struct UserResponse {
    id: String,
    username: String,
    #[schema(value_type = Role)]
    role: &'static str,
    is_active: bool,
    created_at: String,
    last_login_at: Option<String>,
}

impl From<&users::User> for UserResponse {
    fn from(user: &users::User) -> Self {
        UserResponse {
            id: user.id.clone(),
            username: user.username.clone(),
            role: user.role.as_str(),
            is_active: user.is_active,
            created_at: user.created_at.clone(),
            last_login_at: user.last_login_at.clone(),
        }
    }
}

#[utoipa::path(post, path = "/auth/setup", tag = "auth", operation_id = "auth_setup", request_body = Credentials, responses((status = 201, body = UserResponse), JsonBody, E409, E503))]
async fn setup(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<(StatusCode, Json<UserResponse>)> {
    let user = first_admin(&state, &body.username, &body.password).await?;
    Ok((StatusCode::CREATED, Json(UserResponse::from(&user))))
}

/// First-run set-up: creates the first admin, once. The JSON API and the UI both call this.
pub async fn first_admin(state: &AppState, username: &str, password: &str) -> Result<users::User> {
    // Cheap refusal before the checks and the expensive hash (once set-up is done, nothing sent
    // here can succeed); the transaction in create_first_admin is what actually guarantees
    // set-up happens once.
    if !users::setup_required(&state.db).await? {
        return Err(Error::Conflict(
            "set-up is already done: sign in instead".to_owned(),
        ));
    }
    let username = Username::parse(username)?;
    let password = NewPassword::parse(password)?;
    let user = users::create_first_admin(&state.db, &state.passwords, &username, &password).await?;
    tracing::info!(username = %user.username, "first admin created");
    Ok(user)
}

#[utoipa::path(post, path = "/auth/login", tag = "auth", operation_id = "auth_login", request_body = Credentials, responses((status = 200, body = TokenPair), JsonBody, (status = 401, description = "Wrong username or password, or a disabled account", body = ErrorBody), E503))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Json<TokenPair>> {
    let (_, pair) = sign_in(
        &state,
        ip,
        request_id,
        &body.username,
        &body.password,
        Audience::Api,
    )
    .await?;
    Ok(Json(pair))
}

/// Checks a username and password (throttled per address and per account, failures recorded in
/// the activity log) and issues a token pair for `audience` in a new family. The JSON API and the
/// UI sign-in form both call this.
///
/// The attempt is counted before the password is checked (a right password gives it back), and
/// the check runs in the bounded `Passwords` pool: simultaneous guesses from one address get 429
/// before any hashing, and a flood from many addresses gets 503 instead of exhausting memory.
pub async fn sign_in(
    state: &AppState,
    ip: IpAddr,
    request_id: Option<String>,
    username: &str,
    presented: &str,
    audience: Audience,
) -> Result<(users::User, TokenPair)> {
    if username.is_empty() || username.chars().count() > password::USERNAME_MAX {
        return Err(Error::Validation(format!(
            "the username must be 1 to {} characters long",
            password::USERNAME_MAX
        )));
    }
    password::check_presented(presented)?;
    let account = username.to_ascii_lowercase();
    let attempt = state
        .throttle
        .reserve(ip, &account)
        .await?
        .map_err(|wait| {
            // A refused guess is a failure too: a spike shows in either count.
            state.alerts.sign_in_failed();
            too_many_attempts(wait)
        })?;
    let found = users::find_for_login(&state.db, &account).await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    let matches = match state.passwords.verify(presented, hash).await {
        Ok(matches) => matches,
        Err(busy @ Error::Busy { .. }) => {
            // Nothing was checked: the attempt is given back.
            state.throttle.released(attempt).await;
            return Err(busy);
        }
        Err(other) => return Err(other),
    };
    let user = match user {
        Some(user) if matches && user.is_active => {
            state.throttle.succeeded(attempt).await;
            user
        }
        Some(_) if matches => {
            // The right password of a disabled account is not a guess.
            state.throttle.released(attempt).await;
            return Err(Error::Unauthorized("this account is disabled"));
        }
        _ => {
            state.throttle.failed(attempt).await;
            state.alerts.sign_in_failed();
            tracing::info!(%ip, "failed sign-in");
            // Recorded as anonymous: the name tried may not exist (and is kept only in details).
            let audit = Audit {
                actor: "anonymous".into(),
                request_id,
            };
            let event = NewEvent::warning("auth.login_failed", format!("failed sign-in from {ip}"))
                .details(serde_json::json!({"username": username, "ip": ip.to_string()}));
            activity::record_now(state, &audit, event).await?;
            return Err(Error::Unauthorized("wrong username or password"));
        }
    };
    users::record_login(&state.db, &user.id).await?;
    let audit = Audit {
        actor: user.username.clone(),
        request_id,
    };
    let event = NewEvent::info("auth.login", format!("signed in from {ip}"))
        .details(serde_json::json!({"ip": ip.to_string()}));
    activity::record_now(state, &audit, event).await?;
    let mut conn = state.db.pool.acquire().await?;
    let pair = tokens::issue_pair(&mut conn, &state.jwt, &user, None, audience).await?;
    Ok((user, pair))
}

fn too_many_attempts(wait: std::time::Duration) -> Error {
    let secs = wait.as_secs().max(1);
    Error::TooManyRequests {
        message: format!("too many failed sign-in attempts; try again in {secs} seconds"),
        retry_after_secs: secs,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = auth::Refresh)]
struct RefreshBody {
    refresh_token: String,
}

#[utoipa::path(post, path = "/auth/refresh", tag = "auth", operation_id = "auth_refresh", request_body = RefreshBody, responses((status = 200, body = TokenPair), JsonBody, (status = 401, description = "The refresh token is not valid (expired, revoked or reused)", body = ErrorBody)))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Json<TokenPair>> {
    Ok(Json(
        tokens::refresh(&state.db, &state.jwt, &body.refresh_token, Audience::Api).await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = auth::Logout)]
struct LogoutBody {
    refresh_token: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = auth::Message)]
struct Message {
    message: &'static str,
}

/// The body is optional: `{"refresh_token": "…"}` also revokes that sign-in's refresh tokens.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", operation_id = "auth_logout", request_body(content = Option<LogoutBody>, description = "Optional: an empty body signs out this access token only"), responses((status = 200, body = Message), (status = 400, description = "The body is not valid JSON", body = ErrorBody), (status = 413, description = "The body is larger than the limit", body = ErrorBody), E401), security(("bearer" = [])))]
async fn logout(
    State(state): State<AppState>,
    auth: AuthUser,
    OptionalJson(body): OptionalJson<LogoutBody>,
) -> Result<Json<Message>> {
    let refresh_token = body.and_then(|b| b.refresh_token);
    tokens::logout(&state.db, &auth.0, refresh_token.as_deref()).await?;
    Ok(Json(Message {
        message: "signed out",
    }))
}

#[utoipa::path(post, path = "/auth/logout-all", tag = "auth", operation_id = "auth_logout_all", responses((status = 200, body = Message), E401), security(("bearer" = [])))]
async fn logout_all(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Message>> {
    let mut conn = state.db.pool.acquire().await?;
    users::revoke_all_tokens(&mut conn, &auth.user().id).await?;
    Ok(Json(Message {
        message: "signed out everywhere",
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = auth::ChangePassword)]
struct ChangePasswordBody {
    #[schema(min_length = 1, max_length = 128)]
    current_password: String,
    /// Not only spaces.
    #[schema(min_length = 12, max_length = 128, pattern = "\\S")]
    new_password: String,
}

/// Revokes every earlier token and returns a fresh pair, so the caller stays signed in here only.
#[utoipa::path(post, path = "/auth/change-password", tag = "auth", operation_id = "auth_change_password", request_body = ChangePasswordBody, responses((status = 200, body = TokenPair), JsonBody, (status = 401, description = "No valid token, or the current password is wrong", body = ErrorBody), E503), security(("bearer" = [])))]
async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    auth: AuthUser,
    ApiJson(body): ApiJson<ChangePasswordBody>,
) -> Result<Json<TokenPair>> {
    Ok(Json(
        change_password_of(
            &state,
            ip,
            &auth,
            &body.current_password,
            &body.new_password,
            Audience::Api,
        )
        .await?,
    ))
}

/// Checks the current password (throttled and pooled like a sign-in), sets the new one, revokes
/// every earlier token and returns a fresh pair for `audience`. The JSON API and the UI form both
/// call this.
pub async fn change_password_of(
    state: &AppState,
    ip: IpAddr,
    auth: &AuthUser,
    current: &str,
    new: &str,
    audience: Audience,
) -> Result<TokenPair> {
    password::check_presented(current)?;
    let new_password = NewPassword::parse(new)?;
    let account = auth.user().username.to_ascii_lowercase();
    let attempt = state
        .throttle
        .reserve(ip, &account)
        .await?
        .map_err(too_many_attempts)?;
    let (_, hash) = users::find_for_login(&state.db, &account)
        .await?
        .ok_or(Error::Unauthorized("this account no longer exists"))?;
    match state.passwords.verify(current, Some(hash)).await {
        Ok(true) => state.throttle.succeeded(attempt).await,
        Ok(false) => {
            state.throttle.failed(attempt).await;
            return Err(Error::Unauthorized("the current password is wrong"));
        }
        Err(busy @ Error::Busy { .. }) => {
            state.throttle.released(attempt).await;
            return Err(busy);
        }
        Err(other) => return Err(other),
    }
    let user =
        users::set_password(&state.db, &state.passwords, &auth.user().id, &new_password).await?;
    let mut conn = state.db.pool.acquire().await?;
    tokens::issue_pair(&mut conn, &state.jwt, &user, None, audience).await
}

#[utoipa::path(get, path = "/auth/me", tag = "auth", operation_id = "auth_me", responses((status = 200, body = UserResponse), E401), security(("bearer" = [])))]
async fn me(auth: AuthUser) -> Json<UserResponse> {
    Json(UserResponse::from(auth.user()))
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(status, setup, login, refresh, logout, logout_all, change_password, me))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
