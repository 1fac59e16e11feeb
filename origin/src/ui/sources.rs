//! External MCP sources of a server: add one (URL and auth from the server's secrets), approve a
//! source an LLM added, check its health, discover its tools and import chosen ones as
//! passthrough tools (drafts that go through review like any tool), delete it. Thin calls into
//! `external`, like its REST twins.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
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
}

/// How a source authenticates, as the page shows it (the secret's name, never its value).
pub fn auth_label(auth: &Auth) -> String {
    match auth {
        Auth::None => "none".into(),
        Auth::Bearer { secret } => format!("bearer token from secret {secret}"),
        Auth::Header { header, secret } => format!("header {header} from secret {secret}"),
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
            transport_type: None,
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
