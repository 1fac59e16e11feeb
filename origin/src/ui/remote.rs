//! Remote access (admin only): the six-step Cloudflare wizard with each step's progress and
//! error, the connect snippets, the allowlist, teardown, and the tunnel page (health, the
//! connector token on request, how to run cloudflared). Thin calls into `cloudflare`, like its
//! REST twins; a failed step is shown on the page from its stored state.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};

use super::format::filters;
use super::{Chrome, Form, Page, Ui, done, failed, page};
use crate::app::AppState;
use crate::auth::Role;
use crate::cloudflare::client::Account;
use crate::cloudflare::store::{self, Step, StepError};
use crate::cloudflare::wizard::{self, ConnectInfo, Request};
use crate::cloudflare::{self, Failure};
use crate::error::Error;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/remote", get(show))
        // Step 2's form posts here too: a static route only answering GET would turn that
        // POST into 405 before `/ui/remote/{step}` is tried.
        .route("/ui/remote/tunnel", get(tunnel_page).post(run_tunnel_step))
        .route("/ui/remote/tunnel/token", post(reveal_token))
        .route("/ui/remote/teardown", post(teardown))
        .route("/ui/remote/allowlist", post(allowlist))
        .route("/ui/remote/{step}", post(run_step))
}

/// One step as the page shows it.
struct StepView {
    key: &'static str,
    number: u8,
    title: &'static str,
    /// "done", "failed", "not started" or "running".
    status: &'static str,
    tone: &'static str,
    progress: Vec<String>,
    error: Option<StepError>,
    updated_at: Option<String>,
}

#[derive(Template)]
#[template(path = "remote.html")]
struct RemotePage {
    chrome: Chrome,
    steps: Vec<StepView>,
    accounts: Vec<Account>,
    account: Option<String>,
    team_domain: Option<String>,
    worker_url: Option<String>,
    public_url: String,
    allowlist: String,
    flag_allowlist: Vec<String>,
    connect: Option<ConnectInfo>,
    resources: Vec<store::Resource>,
    removed: Vec<wizard::Removed>,
}

async fn steps_view(state: &AppState) -> crate::Result<Vec<StepView>> {
    let running_here = state.remote.lock.try_lock().is_err();
    Ok(store::steps(&state.db)
        .await?
        .into_iter()
        .map(|s| {
            let (status, tone, error) = match s.status.as_str() {
                "done" => ("done", "ok", None),
                "failed" => ("failed", "bad", s.error.clone()),
                "running" if running_here => ("running", "wait", None),
                // Left "running" by an origin that stopped.
                "running" => (
                    "failed",
                    "bad",
                    Some(StepError {
                        message: "interrupted: the origin stopped during this step".into(),
                        cloudflare: Vec::new(),
                        hint: "Run this step again; it continues where it stopped.".into(),
                    }),
                ),
                _ => ("not started", "plain", None),
            };
            StepView {
                key: s.step.as_str(),
                number: s.step.number(),
                title: s.step.title(),
                status,
                tone,
                progress: s.progress,
                error,
                updated_at: s.updated_at,
            }
        })
        .collect())
}

async fn remote_page(state: &AppState, ui: &Ui, removed: Vec<wizard::Removed>) -> Page {
    ui.require(Role::Admin)?;
    let db = &state.db;
    let accounts: Vec<Account> = store::value(db, "pending_accounts")
        .await?
        .and_then(|raw| serde_json::from_str::<Vec<(String, String)>>(&raw).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(id, name)| Account { id, name })
        .collect();
    let account = match (
        store::value(db, "account_name").await?,
        store::value(db, "account_id").await?,
    ) {
        (Some(name), Some(id)) => Some(format!("{name} ({id})")),
        _ => None,
    };
    page(&RemotePage {
        chrome: ui.chrome("remote"),
        steps: steps_view(state).await?,
        accounts,
        account,
        team_domain: store::value(db, "team_domain").await?,
        worker_url: store::value(db, "worker_url").await?,
        public_url: store::value(db, "public_url").await?.unwrap_or_default(),
        allowlist: store::allowlist(db).await?.join("\n"),
        flag_allowlist: state.remote.config.flag_allowlist.clone(),
        connect: wizard::connect_info(state).await?,
        resources: store::resources(db).await?,
        removed,
    })
}

async fn show(State(state): State<AppState>, ui: Ui) -> Page {
    remote_page(&state, &ui, Vec::new()).await
}

/// A failure as the flash says it: the step, Cloudflare's message, what to do.
fn failure_error(failure: Failure) -> Error {
    let mut message = match failure.step {
        Some(step) => format!(
            "Step {} ({}) failed: {}",
            step.number(),
            step.title(),
            failure.error.message
        ),
        None => failure.error.message.clone(),
    };
    if !failure.error.hint.is_empty() {
        message.push_str(&format!(" — {}", failure.error.hint));
    }
    if failure.status.is_server_error() && failure.code == "internal_error" {
        Error::Internal(anyhow::anyhow!(message))
    } else {
        Error::Validation(message)
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn run_tunnel_step(state: State<AppState>, ui: Ui, form: Form) -> Response {
    run_step(state, ui, Path("tunnel".to_owned()), form).await
}

async fn run_step(
    State(state): State<AppState>,
    ui: Ui,
    Path(step): Path<String>,
    form: Form,
) -> Response {
    let back = "/ui/remote";
    if let Err(err) = ui.require(Role::Admin) {
        return failed(back, err);
    }
    let Some(step) = Step::parse(&step) else {
        return failed(back, Error::NotFound(format!("there is no step {step:?}")));
    };
    let optional = |name: &str| {
        form.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let port = match optional("port").map(|p| p.parse::<u16>()) {
        Some(Ok(port)) => Some(port),
        Some(Err(_)) => {
            return failed(
                back,
                Error::Validation("port must be a number from 1 to 65535".into()),
            );
        }
        None => None,
    };
    let request = Request {
        name: optional("name"),
        replace: form.get("replace").is_some(),
        api_token: optional("api_token"),
        account_id: optional("account_id"),
        host: optional("host"),
        port,
        // Present (even empty) means "use this": empty goes back to workers.dev.
        public_url: form.get("public_url").map(|v| v.trim().to_owned()),
        allowed_emails: form.get("allowed_emails").map(lines),
    };
    match wizard::run(&state, step, request, &ui.audit()).await {
        Ok(_) => done(
            &format!("{back}#step-{}", step.as_str()),
            format!("Step {} ({}) done.", step.number(), step.title()),
        ),
        Err(failure) => failed(
            &format!("{back}#step-{}", step.as_str()),
            failure_error(failure),
        ),
    }
}

async fn allowlist(State(state): State<AppState>, ui: Ui, form: Form) -> Response {
    let back = "/ui/remote#allowlist";
    if let Err(err) = ui.require(Role::Admin) {
        return failed(back, err);
    }
    let entries = lines(form.text("entries"));
    match cloudflare::set_allowlist_recorded(&state, &entries, &ui.audit()).await {
        Ok(entries) => done(
            back,
            format!("Allowlist saved ({} entries).", entries.len()),
        ),
        Err(failure) => failed(back, failure_error(failure)),
    }
}

async fn teardown(State(state): State<AppState>, ui: Ui, form: Form) -> Response {
    let back = "/ui/remote#teardown";
    if let Err(err) = ui.require(Role::Admin) {
        return failed(back, err);
    }
    if form.get("confirm").is_none() {
        return failed(
            back,
            Error::Validation(
                "tick the box to confirm: teardown deletes what the wizard created in Cloudflare"
                    .into(),
            ),
        );
    }
    match wizard::teardown(&state, &ui.audit()).await {
        // The report is the page itself (it would not fit a flash message).
        Ok(removed) => match remote_page(&state, &ui, removed).await {
            Ok(response) => response,
            Err(err) => failed(back, err.0),
        },
        Err(failure) => failed(back, failure_error(failure)),
    }
}

struct ConnectionView {
    colo_name: String,
    origin_ip: String,
    opened_at: String,
    client_version: String,
    pending: bool,
}

#[derive(Template)]
#[template(path = "remote_tunnel.html")]
struct TunnelPage {
    chrome: Chrome,
    name: Option<String>,
    id: Option<String>,
    health: Option<String>,
    health_error: Option<String>,
    connections: Vec<ConnectionView>,
    token: Option<String>,
    unit_path: &'static str,
}

async fn tunnel_view(state: &AppState, ui: &Ui, token: Option<String>) -> Page {
    ui.require(Role::Admin)?;
    let record = store::resource(&state.db, "tunnel").await?;
    let (health, health_error, connections) = match wizard::tunnel_health(state).await {
        Ok(Some(tunnel)) => (
            Some(tunnel.status.unwrap_or_else(|| "unknown".into())),
            None,
            tunnel
                .connections
                .into_iter()
                .map(|c| ConnectionView {
                    colo_name: c.colo_name,
                    origin_ip: c.origin_ip,
                    opened_at: c.opened_at,
                    client_version: c.client_version,
                    pending: c.is_pending_reconnect,
                })
                .collect(),
        ),
        Ok(None) => (None, None, Vec::new()),
        Err(failure) => (None, Some(failure.error.message), Vec::new()),
    };
    page(&TunnelPage {
        chrome: ui.chrome("remote"),
        name: record.as_ref().map(|r| r.name.clone()),
        id: record.and_then(|r| r.id),
        health,
        health_error,
        connections,
        token,
        unit_path: "infra/systemd/cloudflared.service",
    })
}

async fn tunnel_page(State(state): State<AppState>, ui: Ui) -> Page {
    tunnel_view(&state, &ui, None).await
}

/// The connector token, shown on this response only (never in a flash cookie or a URL).
async fn reveal_token(State(state): State<AppState>, ui: Ui, _form: Form) -> Response {
    let back = "/ui/remote/tunnel";
    if let Err(err) = ui.require(Role::Admin) {
        return failed(back, err);
    }
    match wizard::tunnel_token(&state, &ui.audit()).await {
        Ok(token) => match tunnel_view(&state, &ui, Some(token)).await {
            Ok(response) => response,
            Err(err) => failed(back, err.0),
        },
        Err(failure) => failed(back, failure_error(failure)),
    }
}
