//! First-run set-up, sign-in, sign-out (here and everywhere) and the password change.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rand::RngCore;

use super::{
    Chrome, Form, PRE_COOKIE, Page, REFRESH_COOKIE, Ui, clear_cookies, cookie, done, failed,
    flash_from, over_https, page, render, session_cookies, set_cookie,
};
use crate::activity::RequestId;
use crate::app::AppState;
use crate::auth::tokens::{self, Audience};
use crate::auth::{self, ClientIp};
use crate::error::Error;
use crate::users;

pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/setup", get(setup_page).post(setup))
}

pub fn private_routes() -> Router<AppState> {
    Router::new()
        .route("/ui/logout", post(logout))
        .route("/ui/logout-all", post(logout_all))
        .route("/ui/account", get(account_page).post(change_password))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    username: String,
    setup: bool,
}

/// The double-submit token of the sign-in forms: the request's cookie, or a new one.
fn pre_session_token(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, PRE_COOKIE).filter(|t| t.len() == 64) {
        Some(token) => (token.to_owned(), false),
        None => {
            let mut raw = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            (hex::encode(raw), true)
        }
    }
}

fn public_form(
    headers: &HeaderMap,
    status: StatusCode,
    username: &str,
    setup: bool,
    error: Option<String>,
) -> Response {
    let (token, fresh) = pre_session_token(headers);
    let flash = error
        .map(|message| super::Flash {
            error: true,
            message,
        })
        .or_else(|| flash_from(headers));
    let mut response = render::html(
        status,
        &LoginPage {
            chrome: Chrome::public(token.clone(), flash),
            username: username.to_owned(),
            setup,
        },
    );
    if fresh && let Some(value) = set_cookie(PRE_COOKIE, &token, 3600, over_https(headers)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Page {
    if users::setup_required(&state.db).await? {
        return Ok(Redirect::to("/ui/setup").into_response());
    }
    Ok(public_form(&headers, StatusCode::OK, "", false, None))
}

async fn setup_page(State(state): State<AppState>, headers: HeaderMap) -> Page {
    if !users::setup_required(&state.db).await? {
        return Ok(Redirect::to("/ui/login").into_response());
    }
    Ok(public_form(&headers, StatusCode::OK, "", true, None))
}

fn signed_in(headers: &HeaderMap, pair: &tokens::TokenPair) -> Response {
    let mut response = Redirect::to("/ui").into_response();
    for value in session_cookies(pair, over_https(headers)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let username = form.text("username");
    let password = form.text("password");
    match auth::sign_in(&state, ip, request_id, username, password, Audience::Ui).await {
        Ok((_, pair)) => signed_in(&headers, &pair),
        Err(err) if !matches!(err, Error::Internal(_)) => public_form(
            &headers,
            err.status(),
            username,
            false,
            Some(err.public_message()),
        ),
        Err(err) => super::error_page(None, err),
    }
}

async fn setup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let username = form.text("username");
    let password = form.text("password");
    if password != form.text("confirm") {
        return public_form(
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            username,
            true,
            Some("the two passwords differ".into()),
        );
    }
    let result = match auth::first_admin(&state, username, password).await {
        Ok(_) => auth::sign_in(&state, ip, request_id, username, password, Audience::Ui).await,
        Err(err) => Err(err),
    };
    match result {
        Ok((_, pair)) => signed_in(&headers, &pair),
        Err(Error::Conflict(_)) => Redirect::to("/ui/login").into_response(),
        Err(err) if !matches!(err, Error::Internal(_)) => public_form(
            &headers,
            err.status(),
            username,
            true,
            Some(err.public_message()),
        ),
        Err(err) => super::error_page(None, err),
    }
}

fn signed_out(headers: &HeaderMap, message: &str) -> Response {
    let mut response = done("/ui/login", message);
    for value in clear_cookies(over_https(headers)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn logout(
    State(state): State<AppState>,
    ui: Ui,
    headers: HeaderMap,
    _form: Form,
) -> Response {
    let refresh = cookie(&headers, REFRESH_COOKIE);
    match tokens::logout(&state.db, &ui.auth.0, refresh).await {
        Ok(()) => signed_out(&headers, "Signed out."),
        Err(err) => failed("/ui", err),
    }
}

async fn logout_all(
    State(state): State<AppState>,
    ui: Ui,
    headers: HeaderMap,
    _form: Form,
) -> Response {
    let result = async {
        let mut conn = state.db.pool.acquire().await?;
        users::revoke_all_tokens(&mut conn, &ui.auth.user().id).await
    }
    .await;
    match result {
        Ok(_) => signed_out(&headers, "Signed out on every device."),
        Err(err) => failed("/ui/account", err),
    }
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
}

async fn account_page(ui: Ui) -> Page {
    page(&AccountPage {
        chrome: ui.chrome("account"),
    })
}

async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ui: Ui,
    headers: HeaderMap,
    form: Form,
) -> Response {
    if form.text("new_password") != form.text("confirm") {
        return failed(
            "/ui/account",
            Error::Validation("the two new passwords differ".into()),
        );
    }
    match auth::change_password_of(
        &state,
        ip,
        &ui.auth,
        form.text("current_password"),
        form.text("new_password"),
        Audience::Ui,
    )
    .await
    {
        Ok(pair) => {
            let mut response = done(
                "/ui/account",
                "Password changed; every other session is signed out.",
            );
            for value in session_cookies(&pair, over_https(&headers)) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Err(err) => failed("/ui/account", err),
    }
}
