//! Settings → MCP client keys (admins only): the keys local MCP clients send on `/mcp`, when
//! each was last used, issuing one (the key is shown on the answer page, once, and never again:
//! it is rendered into that page, not carried in a cookie or redirect) and revoking one. The
//! same domain functions as `/api/mcp-keys`.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};

use super::format::filters;
use super::{Chrome, Form, Page, Ui, failed, outcome, page};
use crate::app::AppState;
use crate::auth::Role;
use crate::mcp_keys::{self, McpKey};

const PAGE: &str = "/ui/settings/mcp-keys";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PAGE, get(show).post(issue))
        .route("/ui/settings/mcp-keys/{id}/revoke", post(revoke))
}

#[derive(Template)]
#[template(path = "mcp_keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<McpKey>,
    required: bool,
    max_active: i64,
    /// The name and the key just issued (this one answer only).
    issued: Option<(String, String)>,
}

impl KeysPage {
    fn active(&self) -> usize {
        self.keys.iter().filter(|k| k.revoked_at.is_none()).count()
    }
}

async fn render(state: &AppState, ui: &Ui, issued: Option<(String, String)>) -> Page {
    page(&KeysPage {
        chrome: ui.chrome("settings"),
        keys: mcp_keys::list(&state.db).await?,
        required: state.mcp_keys.required(),
        max_active: mcp_keys::MAX_ACTIVE_KEYS,
        issued,
    })
}

async fn show(State(state): State<AppState>, ui: Ui) -> Page {
    ui.require(Role::Admin)?;
    render(&state, &ui, None).await
}

/// Answers with the page itself (not a redirect) so the key is shown exactly once.
async fn issue(State(state): State<AppState>, ui: Ui, form: Form) -> Response {
    let result = async {
        ui.require(Role::Admin)?;
        mcp_keys::issue_recorded(&state, form.text("name"), &ui.audit()).await
    }
    .await;
    match result {
        Ok(issued) => match render(&state, &ui, Some((issued.key.name, issued.secret))).await {
            Ok(response) => response,
            Err(err) => axum::response::IntoResponse::into_response(err),
        },
        Err(err) => failed(PAGE, err),
    }
}

async fn revoke(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    _form: Form,
) -> Response {
    let result = async {
        ui.require(Role::Admin)?;
        mcp_keys::revoke_recorded(&state, &id, &ui.audit()).await
    }
    .await;
    let notice = match &result {
        Ok(key) => format!(
            "Key {} revoked: clients using it are refused from now on.",
            key.name
        ),
        Err(_) => String::new(),
    };
    outcome(PAGE, result, notice)
}
