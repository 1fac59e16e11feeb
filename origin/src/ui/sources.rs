//! External MCP sources of a server: add one (URL and auth from the server's secrets), approve a
//! source an LLM added, check its health, discover its tools and import chosen ones as
//! passthrough tools (drafts that go through review like any tool), delete it. Thin calls into
//! `external`, like its REST twins.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::format::filters;
use super::{Chrome, Form, Page, Ui, failed, outcome, page};
use crate::app::AppState;
use crate::auth::Role;
use crate::external::{self, Auth, Discovered, NewSource, Source};
use crate::servers::{self, Server};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/servers/{id}/sources", post(add))
        .route("/ui/sources/{sid}", get(show))
        .route("/ui/sources/{sid}/{action}", post(act))
        .route("/ui/sources/{sid}/oauth/start", post(sign_in))
}

/// The OAuth redirect URI: public, since the browser arrives from the authorization server's
/// site and so carries no `SameSite=Strict` session cookie; `external::oauth::finish` checks the
/// sign-in's own `SameSite=Lax` nonce cookie and the admin who started it instead.
pub fn public_routes() -> Router<AppState> {
    Router::new().route("/ui/sources/{sid}/oauth/callback", get(callback))
}

/// How a source authenticates, as the page shows it (the secret's name, never its value).
pub fn auth_label(auth: &Auth) -> String {
    match auth {
        Auth::None => "none".into(),
        Auth::Bearer { secret } => format!("bearer token from secret {secret}"),
        Auth::Header { header, secret } => format!("header {header} from secret {secret}"),
        Auth::OAuth => "OAuth 2.1 (an admin signs in at the source's authorization server)".into(),
    }
}

async fn add(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let back = format!("/ui/servers/{id}");
    let result = async {
        ui.require(Role::Admin)?;
        let optional = |name: &str| form.get(name).map(str::trim).filter(|v| !v.is_empty());
        let auth = Auth::parse(
            optional("auth_type"),
            optional("auth_secret_name"),
            optional("auth_header_name"),
        )?;
        let audit = ui.audit();
        let new = NewSource {
            server_id: &id,
            name: form.text("name").trim(),
            url: form.text("url").trim(),
            auth,
            transport_type: optional("transport_type"),
            // An admin adding a source is its approval.
            approved_by: Some(&audit.actor),
        };
        external::add_recorded(&state, new, &audit).await
    }
    .await;
    match result {
        Ok(source) => super::done(
            &format!("/ui/sources/{}", source.id),
            format!("Source {} added; discover its tools next.", source.name),
        ),
        Err(err) => failed(&back, err),
    }
}

pub struct Row {
    pub tool: Discovered,
    pub imported: bool,
    pub schema: String,
}

#[derive(Template)]
#[template(path = "source.html")]
struct SourcePage {
    chrome: Chrome,
    source: Source,
    server: Server,
    auth: String,
    tools: Vec<Row>,
}

async fn show(State(state): State<AppState>, ui: Ui, Path(sid): Path<String>) -> Page {
    ui.require(Role::Viewer)?;
    let source = external::get(&state.db, &sid).await?;
    let server = servers::get(&state.db, &source.server_id).await?;
    let tools = external::cached_tools(&state.db, &sid)
        .await?
        .into_iter()
        .map(|(tool, imported)| Row {
            schema: serde_json::to_string(&tool.input_schema).unwrap_or_default(),
            tool,
            imported,
        })
        .collect();
    page(&SourcePage {
        chrome: ui.chrome("servers"),
        auth: auth_label(&source.auth),
        source,
        server,
        tools,
    })
}

async fn act(
    State(state): State<AppState>,
    ui: Ui,
    Path((sid, action)): Path<(String, String)>,
    form: Form,
) -> Response {
    let back = format!("/ui/sources/{sid}");
    if let Err(err) = ui.require(Role::Admin) {
        return failed(&back, err);
    }
    let audit = ui.audit();
    match action.as_str() {
        "sign-out" => outcome(
            &back,
            external::oauth::sign_out_recorded(&state, &sid, &audit).await,
            "Signed out: the source's tokens are deleted.",
        ),
        "approve" => outcome(
            &back,
            external::approve_recorded(&state, &sid, &audit).await,
            "Source approved: MCPbox may now contact it.",
        ),
        "health" => match external::health_recorded(&state, &sid, &audit).await {
            Ok(source) if source.status == "error" => failed(
                &back,
                crate::error::Error::Unavailable(format!(
                    "the source does not answer: {}",
                    source.last_error.unwrap_or_default()
                )),
            ),
            Ok(_) => super::done(&back, "The source answers."),
            Err(err) => failed(&back, err),
        },
        "discover" => match external::discover_recorded(&state, &sid, &audit).await {
            Ok((_, found)) => super::done(&back, format!("{} tool(s) found.", found.len())),
            Err(err) => failed(&back, err),
        },
        "import" => {
            let names: Vec<String> = form.all("tool").into_iter().map(str::to_owned).collect();
            match external::import_recorded(
                &state,
                &sid,
                &names,
                crate::tools::Source::Admin,
                &audit,
            )
            .await
            {
                Ok((imported, skipped)) => {
                    let skipped: Vec<String> = skipped
                        .iter()
                        .map(|s| format!("{} ({})", s.remote_tool, s.reason))
                        .collect();
                    let mut notice = format!(
                        "{} tool(s) imported as drafts; review them in Approvals.",
                        imported.len()
                    );
                    if !skipped.is_empty() {
                        notice.push_str(&format!(" Skipped: {}.", skipped.join(", ")));
                    }
                    super::done(&back, notice)
                }
                Err(err) => failed(&back, err),
            }
        }
        "delete" => {
            let result = async {
                let source = external::get(&state.db, &sid).await?;
                super::confirm_typed(&form, &source.name, "source")?;
                external::delete_recorded(&state, &sid, &audit).await?;
                Ok::<_, crate::error::Error>(source.server_id)
            }
            .await;
            match result {
                Ok(server) => super::done(
                    &format!("/ui/servers/{server}"),
                    "Source deleted with its imported tools.",
                ),
                Err(err) => failed(&back, err),
            }
        }
        other => failed(
            &back,
            crate::error::Error::NotFound(format!("unknown action {other:?}")),
        ),
    }
}

/// "Sign in": discovers the source's authorization server, registers MCPbox and sends the
/// browser there, with the nonce cookie that binds the sign-in to it.
async fn sign_in(
    State(state): State<AppState>,
    ui: Ui,
    Path(sid): Path<String>,
    headers: HeaderMap,
    _form: Form,
) -> Response {
    let back = format!("/ui/sources/{sid}");
    let result = async {
        ui.require(Role::Admin)?;
        // The redirect URI names this origin as the admin's browser reached it.
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .filter(|host| {
                !host.is_empty()
                    && host.len() <= 255
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            })
            .ok_or_else(|| {
                crate::error::Error::Validation("the request has no usable Host header".into())
            })?;
        let secure = super::over_https(&headers);
        let base = format!("{}://{host}", if secure { "https" } else { "http" });
        let (starter, nonce) = external::oauth::Starter::new(ui.auth.user());
        let url = external::oauth::start(
            &state,
            &sid,
            starter,
            &external::oauth::redirect_uri(&base, &sid),
        )
        .await?;
        Ok::<_, crate::error::Error>((url, nonce, secure))
    }
    .await;
    match result {
        Ok((url, nonce, secure)) => {
            let mut response = Redirect::to(&url).into_response();
            let cookie = format!(
                "{}={nonce}; Path=/ui/sources/{sid}/oauth/callback; Max-Age={}; HttpOnly; SameSite=Lax{}",
                external::oauth::NONCE_COOKIE,
                external::oauth::PENDING_TTL.as_secs(),
                if secure { "; Secure" } else { "" }
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Err(err) => failed(&back, err),
    }
}

async fn callback(
    State(state): State<AppState>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    // `sid` goes into the page below: only an id's characters are let through.
    let back = if !sid.is_empty()
        && sid.len() <= 64
        && sid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        format!("/ui/sources/{sid}")
    } else {
        "/ui/servers".to_owned()
    };
    let field = |name: &str| query.get(name).map(String::as_str);
    let callback = external::oauth::Callback {
        state: field("state").unwrap_or_default(),
        code: field("code"),
        iss: field("iss"),
        error: field("error"),
        nonce: super::cookie(&headers, external::oauth::NONCE_COOKIE),
    };
    let outcome = match external::oauth::finish(&state, &sid, callback).await {
        Ok(source) => super::done(&back, format!("Signed in to {} with OAuth.", source.name)),
        Err(err) => failed(&back, err),
    };
    landing(outcome, &back)
}

/// The callback's answer is a page that moves itself on rather than a redirect: a redirect would
/// continue the navigation that started at the authorization server's site, and the next page
/// would again get no session cookie. The flash cookie of `outcome` is kept.
fn landing(outcome: Response, to: &str) -> Response {
    if !outcome.status().is_redirection() {
        return outcome;
    }
    let mut page = Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={to}\"><title>MCPbox sign-in</title></head>\
         <body><p><a href=\"{to}\">Back to the source</a></p></body></html>"
    ))
    .into_response();
    for value in outcome.headers().get_all(header::SET_COOKIE) {
        page.headers_mut().append(header::SET_COOKIE, value.clone());
    }
    page
}
