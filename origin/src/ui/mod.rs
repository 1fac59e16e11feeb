//! The admin web UI: server-rendered pages (askama templates in `origin/templates`) under `/ui`,
//! a thin front over the same domain functions the REST API calls.
//!
//! Works without JavaScript: every action is a form that posts and redirects (the outcome
//! travels to the next page in a short-lived flash cookie). `static/app.js` only adds the live
//! activity view and keyboard shortcuts; the CSP (`script-src 'self'`) forbids inline script.
//!
//! Sessions: sign-in sets two HttpOnly, SameSite=Strict cookies scoped to `/ui` — the 15-minute
//! access token and the refresh token — so the JSON API (`/api`, bearer tokens only) can never be
//! driven by a browser's ambient cookies. Both are issued for the UI's own audience
//! (`Audience::Ui`): a leaked cookie value is refused as an API bearer token, and an API token
//! placed in the cookie is refused here. `session` validates the access cookie on every request
//! (against the database, like the API) and rotates the pair through the refresh token when it
//! has expired. Every form carries a CSRF token (HMAC of the account and its token epoch under a
//! derived key, so signing out everywhere also invalidates old forms); sign-in and set-up forms,
//! which have no account yet, use a random double-submit cookie instead. A posted form without
//! the right token is refused with 403 before anything is read from it.

mod activity;
mod alerts;
mod approvals;
mod auth;
mod dashboard;
mod format;
mod mcp_keys;
mod remote;
mod render;
mod servers;
mod settings;
mod sources;
mod tools;
mod transfer;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::activity::{Audit, Audited};
use crate::app::AppState;
use crate::auth::tokens::{self, Audience, Session, TokenPair};
use crate::auth::{AuthUser, Role};
use crate::error::Error;

pub use render::{highlight_python, render_diff};

const ACCESS_COOKIE: &str = "mcpbox_at";
const REFRESH_COOKIE: &str = "mcpbox_rt";
const PRE_COOKIE: &str = "mcpbox_pre";
const FLASH_COOKIE: &str = "mcpbox_flash";
/// The form field every posted form carries.
pub const CSRF_FIELD: &str = "_csrf";
/// Largest form body (code is never posted through the UI; reasons and secrets are short).
const MAX_FORM_BYTES: usize = 64 * 1024;

pub fn router(state: AppState) -> Router<AppState> {
    let private = Router::new()
        .merge(dashboard::routes())
        .merge(auth::private_routes())
        .merge(servers::routes())
        .merge(tools::routes())
        .merge(approvals::routes())
        .merge(activity::routes())
        .merge(settings::routes())
        .merge(alerts::routes())
        .merge(mcp_keys::routes())
        .merge(sources::routes())
        .merge(remote::routes())
        .merge(transfer::routes())
        .route_layer(middleware::from_fn_with_state(state, session));
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/static/app.css", get(stylesheet))
        .route("/ui/static/app.js", get(script))
        .merge(auth::public_routes())
        .merge(sources::public_routes())
        .merge(private)
}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../static/app.css"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../static/app.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// A signed-in page request: the account, its CSRF token, the request id and the flash message
/// left by the previous action (if any).
#[derive(Clone)]
pub struct Ui {
    pub auth: AuthUser,
    pub csrf: String,
    pub request_id: Option<String>,
    pub flash: Option<Flash>,
}

#[derive(Clone)]
pub struct Flash {
    pub error: bool,
    pub message: String,
}

impl Ui {
    pub fn audit(&self) -> Audit {
        Audit {
            actor: self.auth.user().username.clone(),
            request_id: self.request_id.clone(),
        }
    }

    /// The same pair the REST handlers get, for domain functions that take one (`Reviewer`).
    pub fn audited(&self) -> Audited {
        Audited {
            auth: self.auth.clone(),
            audit: self.audit(),
        }
    }

    pub fn require(&self, role: Role) -> Result<(), Error> {
        self.auth.require(role)
    }

    pub fn can(&self, role: Role) -> bool {
        self.auth.user().role.includes(role)
    }

    /// What every page's layout shows (the account, its rights, the flash message).
    pub fn chrome(&self, section: &'static str) -> Chrome {
        Chrome {
            section,
            username: self.auth.user().username.clone(),
            role: self.auth.user().role.as_str(),
            is_admin: self.can(Role::Admin),
            is_approver: self.can(Role::Approver),
            csrf: self.csrf.clone(),
            flash: self.flash.clone(),
        }
    }
}

/// The layout's data, a field of every page template.
pub struct Chrome {
    pub section: &'static str,
    pub username: String,
    pub role: &'static str,
    pub is_admin: bool,
    pub is_approver: bool,
    pub csrf: String,
    pub flash: Option<Flash>,
}

impl Chrome {
    /// The layout of pages shown before sign-in (no navigation).
    pub fn public(csrf: String, flash: Option<Flash>) -> Chrome {
        Chrome {
            section: "",
            username: String::new(),
            role: "",
            is_admin: false,
            is_approver: false,
            csrf,
            flash,
        }
    }

    pub fn signed_in(&self) -> bool {
        !self.username.is_empty()
    }
}

impl FromRequestParts<AppState> for Ui {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Error> {
        parts
            .extensions
            .get::<Ui>()
            .cloned()
            .ok_or(Error::Unauthorized("sign in first"))
    }
}

/// The CSRF token of an account: bound to its id and token epoch (which "sign out everywhere"
/// and a password change bump), under a key derived for this purpose only.
fn csrf_token(state: &AppState, session: &Session) -> String {
    let key = state.keys.derive("ui-csrf");
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&key) else {
        return String::new();
    };
    mac.update(session.user.id.as_bytes());
    mac.update(b":");
    mac.update(session.user.token_epoch.to_string().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The value of one cookie in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, scoped to `/ui`, Secure behind https.
fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/ui; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

fn session_cookies(pair: &TokenPair, secure: bool) -> Vec<HeaderValue> {
    let keep = tokens::REFRESH_TTL.num_seconds();
    [
        set_cookie(ACCESS_COOKIE, &pair.access_token, keep, secure),
        set_cookie(REFRESH_COOKIE, &pair.refresh_token, keep, secure),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn clear_cookies(secure: bool) -> Vec<HeaderValue> {
    [ACCESS_COOKIE, REFRESH_COOKIE]
        .iter()
        .filter_map(|name| set_cookie(name, "", 0, secure))
        .collect()
}

fn flash_from(headers: &HeaderMap) -> Option<Flash> {
    let raw = cookie(headers, FLASH_COOKIE)?;
    let decoded: String = form_urlencoded::parse(format!("m={raw}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())?;
    let (kind, message) = decoded.split_once(':')?;
    Some(Flash {
        error: kind == "e",
        message: message.chars().take(500).collect(),
    })
}

/// The middleware of every signed-in page: a valid access cookie, or a refresh that rotates
/// both cookies; otherwise back to the sign-in page.
async fn session(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let headers = request.headers().clone();
    let secure = over_https(&headers);
    let mut rotated: Option<TokenPair> = None;
    let mut found = match cookie(&headers, ACCESS_COOKIE) {
        Some(token) if !token.is_empty() => {
            tokens::verify_access(&state.db, &state.jwt, token, Audience::Ui)
                .await
                .ok()
        }
        _ => None,
    };
    if found.is_none()
        && let Some(refresh) = cookie(&headers, REFRESH_COOKIE).filter(|t| !t.is_empty())
        && let Ok(pair) = tokens::refresh(&state.db, &state.jwt, refresh, Audience::Ui).await
    {
        found = tokens::verify_access(&state.db, &state.jwt, &pair.access_token, Audience::Ui)
            .await
            .ok();
        rotated = Some(pair);
    }
    let Some(session) = found else {
        let mut response = Redirect::to("/ui/login").into_response();
        for value in clear_cookies(secure) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        return response;
    };
    let flash = flash_from(&headers);
    let ui = Ui {
        csrf: csrf_token(&state, &session),
        auth: AuthUser(session),
        request_id: crate::activity::request_id_of(&headers),
        flash: flash.clone(),
    };
    request.extensions_mut().insert(ui);
    let mut response = next.run(request).await;
    if let Some(pair) = rotated {
        for value in session_cookies(&pair, secure) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    // The flash was shown on this page; a redirect sets a new one itself.
    if flash.is_some()
        && !response.headers().contains_key(header::SET_COOKIE)
        && let Some(value) = set_cookie(FLASH_COOKIE, "", 0, secure)
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// A posted form (`application/x-www-form-urlencoded`) whose CSRF token has been checked: the
/// account's token on signed-in pages, the double-submit cookie on the sign-in and set-up pages.
/// Repeated fields (checkbox lists) are kept in order.
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A field as typed, or "" when it is missing.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

impl FromRequest<AppState> for Form {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(error_page(
                None,
                Error::UnsupportedMediaType("this page accepts only its own forms"),
            ));
        }
        // A cross-site form post names another origin. Under our `Referrer-Policy: no-referrer`
        // browsers send `Origin: null` for our own forms, which proves nothing either way: the
        // CSRF token below is the guard, this check is an extra one.
        if let Some(origin) = parts
            .headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .filter(|origin| *origin != "null")
        {
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
            if origin_host != host {
                return Err(error_page(
                    None,
                    Error::Forbidden("this form was posted from another site"),
                ));
            }
        }
        let expected = match Ui::from_request_parts(&mut parts, state).await {
            Ok(ui) => ui.csrf,
            Err(_) => cookie(&parts.headers, PRE_COOKIE).unwrap_or("").to_owned(),
        };
        let request = Request::from_parts(parts, body);
        let bytes = match Bytes::from_request(request, state).await {
            Ok(bytes) if bytes.len() <= MAX_FORM_BYTES => bytes,
            Ok(_) => {
                return Err(error_page(
                    None,
                    Error::PayloadTooLarge {
                        limit: MAX_FORM_BYTES,
                    },
                ));
            }
            Err(rejection) => return Err(rejection.into_response()),
        };
        let fields: Vec<(String, String)> = form_urlencoded::parse(&bytes)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let form = Form { fields };
        if !same(form.text(CSRF_FIELD), &expected) {
            return Err(error_page(
                None,
                Error::Forbidden(
                    "this form is out of date or was not sent by this site: reload the page and try again",
                ),
            ));
        }
        Ok(form)
    }
}

/// The confirmation of a destructive form: the thing's name typed exactly, so a stray click
/// cannot delete it.
pub fn confirm_typed(form: &Form, name: &str, what: &str) -> Result<(), Error> {
    if form.text("confirm_name") == name {
        Ok(())
    } else {
        Err(Error::Validation(format!(
            "type the {what}'s name exactly to delete it"
        )))
    }
}

/// After a successful action: back to `to` with a notice.
pub fn done(to: &str, notice: impl AsRef<str>) -> Response {
    redirect_with_flash(to, 'n', notice.as_ref())
}

/// After a refused action: back to `to` with the reason (the form page shows it).
pub fn failed(to: &str, error: Error) -> Response {
    if matches!(error, Error::Internal(_)) {
        return error_page(None, error);
    }
    redirect_with_flash(to, 'e', &error.public_message())
}

/// Either outcome of an action, with the success notice.
pub fn outcome<T>(to: &str, result: Result<T, Error>, notice: impl AsRef<str>) -> Response {
    match result {
        Ok(_) => done(to, notice),
        Err(err) => failed(to, err),
    }
}

fn redirect_with_flash(to: &str, kind: char, message: &str) -> Response {
    let value: String =
        form_urlencoded::byte_serialize(format!("{kind}:{message}").as_bytes()).collect();
    let mut response = see_other(to);
    if let Some(cookie) = set_cookie(FLASH_COOKIE, &value, 60, false) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// 303 to a page of ours. `to` may hold ids taken from the URL: anything that is not a plain
/// `/ui` path (or cannot be a header) goes to the dashboard instead of panicking or leaving.
pub fn see_other(to: &str) -> Response {
    let safe = to.starts_with("/ui") && !to.starts_with("//") && !to.contains(['\\', '\r', '\n']);
    let location = HeaderValue::from_str(if safe { to } else { "/ui" })
        .unwrap_or(HeaderValue::from_static("/ui"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// An HTML error page with the error's status and its public message.
pub fn error_page(ui: Option<&Ui>, error: Error) -> Response {
    let status = error.status();
    let page = render::ErrorPage {
        chrome: match ui {
            Some(ui) => ui.chrome(""),
            None => Chrome::public(String::new(), None),
        },
        status: status.as_u16(),
        message: error.public_message(),
    };
    render::html(status, &page)
}

/// What page handlers return: a page, or an error page.
pub type Page = Result<Response, PageError>;

/// An error on a page request, rendered as an HTML page (not the API's JSON).
pub struct PageError(pub Error);

impl<E: Into<Error>> From<E> for PageError {
    fn from(err: E) -> Self {
        PageError(err.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(None, self.0)
    }
}

/// 200 with the page.
pub fn page<T: askama::Template>(template: &T) -> Page {
    Ok(render::html(StatusCode::OK, template))
}
