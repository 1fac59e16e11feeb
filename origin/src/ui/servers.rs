//! Servers: list and create, detail (tools, start/stop, modules and hosts in force, secrets),
//! delete with a confirmation page.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};

use super::format::filters;
use super::{Chrome, Form, Page, Ui, failed, outcome, page};
use crate::access::{self, AccessRequest};
use crate::app::AppState;
use crate::auth::Role;
use crate::error::Error;
use crate::names::{Name, public_name};
use crate::secrets::{self, Placeholder};
use crate::servers::{self, Server};
use crate::tools::{self, Tool};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/servers", get(list).post(create))
        .route("/ui/servers/{id}", get(show))
        .route("/ui/servers/{id}/edit", post(edit))
        .route("/ui/servers/{id}/start", post(start))
        .route("/ui/servers/{id}/stop", post(stop))
        .route("/ui/servers/{id}/delete", get(confirm_delete).post(delete))
        .route("/ui/servers/{id}/secrets", post(set_secret))
        .route("/ui/servers/{id}/secrets/{key}/delete", post(delete_secret))
}

/// Servers shown on one page of the list (the list pages past it).
const PAGE: i64 = 100;

#[derive(Template)]
#[template(path = "servers.html")]
struct ServersPage {
    chrome: Chrome,
    servers: Vec<Server>,
    total: i64,
}

async fn list(State(state): State<AppState>, ui: Ui) -> Page {
    ui.require(Role::Viewer)?;
    let (servers, total) = servers::list(&state.db, PAGE, 0).await?;
    page(&ServersPage {
        chrome: ui.chrome("servers"),
        servers,
        total,
    })
}

async fn create(State(state): State<AppState>, ui: Ui, form: Form) -> Response {
    let result = async {
        ui.require(Role::Admin)?;
        let name = Name::server(form.text("name"))?;
        servers::create_recorded(&state, &name, form.text("description"), &ui.audit()).await
    }
    .await;
    match result {
        Ok(server) => super::done(
            &format!("/ui/servers/{}", server.id),
            format!("Server {} created.", server.name),
        ),
        Err(err) => failed("/ui/servers", err),
    }
}

pub struct ToolRow {
    pub tool: Tool,
    pub public_name: String,
    pub approved: Option<i64>,
}

#[derive(Template)]
#[template(path = "server.html")]
struct ServerPage {
    chrome: Chrome,
    server: Server,
    tools: Vec<ToolRow>,
    /// Its prompts and resources (`prompts`): reviewed on the same tool and review pages.
    items: Vec<ToolRow>,
    modules: Vec<String>,
    hosts: Vec<String>,
    requests: Vec<AccessRequest>,
    /// Each placeholder, and whether its value is too short to redact reliably (admins only).
    secrets: Vec<(Placeholder, bool)>,
    min_secret_bytes: usize,
    sources: Vec<(crate::external::Source, String)>,
}

async fn show(State(state): State<AppState>, ui: Ui, Path(id): Path<String>) -> Page {
    ui.require(Role::Viewer)?;
    let server = servers::get(&state.db, &id).await?;
    let (tools, _) = tools::list(&state.db, &id, 500, 0).await?;
    let content_kinds = [tools::Kind::Prompt, tools::Kind::Resource];
    let (items, _) = tools::list_of(&state.db, &id, &content_kinds, 500, 0).await?;
    let approved = tools::approved_versions(&state.db, &id).await?;
    let to_row = |tool: Tool| ToolRow {
        public_name: public_name(&server.name, &tool.name),
        approved: approved.get(&tool.id).copied(),
        tool,
    };
    let rows = tools.into_iter().map(to_row).collect();
    let items = items.into_iter().map(to_row).collect();
    let chrome = ui.chrome("servers");
    // Only admins can replace a value, and only they are told which ones are too short.
    let short = if chrome.is_admin {
        secrets::short_keys(&state, &id).await?
    } else {
        Vec::new()
    };
    let secret_rows = secrets::list(&state.db, &id)
        .await?
        .into_iter()
        .map(|placeholder| {
            let too_short = short.contains(&placeholder.key);
            (placeholder, too_short)
        })
        .collect();
    page(&ServerPage {
        chrome,
        modules: access::allowed_modules(&state.db, &id).await?,
        hosts: access::allowed_hosts(&state.db, &id).await?,
        requests: access::requests_of(&state.db, &id, None, false).await?,
        secrets: secret_rows,
        min_secret_bytes: secrets::MIN_VALUE_BYTES,
        sources: crate::external::list(&state.db, &id)
            .await?
            .into_iter()
            .map(|source| {
                let auth = super::sources::auth_label(&source.auth);
                (source, auth)
            })
            .collect(),
        tools: rows,
        items,
        server,
    })
}

async fn set_running(state: &AppState, ui: &Ui, id: &str, running: bool) -> Response {
    let back = format!("/ui/servers/{id}");
    let result = async {
        ui.require(Role::Admin)?;
        servers::set_running_recorded(
            state,
            id,
            running,
            crate::control::Principal::Person,
            &ui.audit(),
        )
        .await
    }
    .await;
    outcome(
        &back,
        result,
        if running {
            "Server started: its approved tools are live."
        } else {
            "Server stopped: its tools are no longer listed or callable."
        },
    )
}

async fn start(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    _form: Form,
) -> Response {
    set_running(&state, &ui, &id, true).await
}

async fn stop(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    _form: Form,
) -> Response {
    set_running(&state, &ui, &id, false).await
}

#[derive(Template)]
#[template(path = "server_delete.html")]
struct DeletePage {
    chrome: Chrome,
    server: Server,
    tools: i64,
}

async fn confirm_delete(State(state): State<AppState>, ui: Ui, Path(id): Path<String>) -> Page {
    ui.require(Role::Admin)?;
    let server = servers::get(&state.db, &id).await?;
    let (_, tools) = tools::list(&state.db, &id, 1, 0).await?;
    page(&DeletePage {
        chrome: ui.chrome("servers"),
        server,
        tools,
    })
}

async fn delete(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let back = format!("/ui/servers/{id}/delete");
    let result = async {
        ui.require(Role::Admin)?;
        let server = servers::get(&state.db, &id).await?;
        super::confirm_typed(&form, &server.name, "server")?;
        servers::delete_recorded(&state, &id, &ui.audit()).await
    }
    .await;
    match result {
        Ok(()) => super::done("/ui/servers", "Server deleted with its tools."),
        Err(err) => failed(&back, err),
    }
}

async fn set_secret(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let back = format!("/ui/servers/{id}");
    let key = form.text("key").trim().to_owned();
    let result = async {
        ui.require(Role::Admin)?;
        secrets::set_value_recorded(&state, &id, &key, form.text("value"), &ui.audit()).await
    }
    .await;
    outcome(&back, result, format!("Value of secret {key} saved."))
}

async fn delete_secret(
    State(state): State<AppState>,
    ui: Ui,
    Path((id, key)): Path<(String, String)>,
    _form: Form,
) -> Response {
    let back = format!("/ui/servers/{id}");
    let result = async {
        ui.require(Role::Admin)?;
        secrets::delete_recorded(&state, &id, &key, &ui.audit()).await
    }
    .await;
    outcome(&back, result, format!("Secret {key} deleted."))
}

async fn edit(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let result = async {
        ui.require(Role::Admin)?;
        let timeout = form.text("default_timeout_ms").trim();
        let changes = servers::Changes {
            name: None,
            description: Some(form.text("description").to_owned()),
            default_timeout_ms: Some(timeout.parse::<i64>().map_err(|_| {
                Error::Validation(
                    "the default timeout must be a whole number of milliseconds".into(),
                )
            })?),
        };
        servers::update_recorded(&state, &id, changes, &ui.audit()).await
    }
    .await;
    outcome(&format!("/ui/servers/{id}"), result, "Server saved.")
}
