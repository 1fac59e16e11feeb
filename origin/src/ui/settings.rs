//! Settings (admin only to change, everyone signed in may read): the security policy with its
//! presets and what each less strict value risks, the modules every server may import, and the
//! accounts and their roles.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};

use super::format::filters;
use super::{Chrome, Form, Page, Ui, failed, outcome, page};
use crate::app::AppState;
use crate::auth::Role;
use crate::cloudflare::edge::{self, EdgeSettings, SyncStatus};
use crate::error::Error;
use crate::settings::{self, Policy};
use crate::users::{self, User};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/settings", get(show).post(update))
        .route("/ui/settings/preset", post(apply_preset))
        .route("/ui/settings/modules", post(change_modules))
        .route("/ui/settings/packages/recheck", post(recheck_packages))
        .route("/ui/settings/rate-limits", post(change_rate_limits))
        .route("/ui/settings/edge", post(change_edge))
        .route("/ui/settings/edge/sync", post(sync_edge))
        .route("/ui/users", get(users_page).post(create_user))
        .route("/ui/users/{id}", post(update_user))
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    policy: Policy,
    modules: Vec<String>,
    custom_modules: bool,
    /// Installed PyPI packages with their versions and known vulnerabilities.
    packages: Vec<crate::packages::Installed>,
    rate_limits: crate::ratelimit::Limits,
    /// The Worker's extra CORS origins and redirect URIs, one per line (admins only).
    edge: Option<(String, String, SyncStatus)>,
}

async fn show(State(state): State<AppState>, ui: Ui) -> Page {
    ui.require(Role::Viewer)?;
    let (modules, custom_modules) = settings::global_modules(&state.db).await?;
    page(&SettingsPage {
        chrome: ui.chrome("settings"),
        policy: settings::policy(&state.db).await?,
        modules,
        custom_modules,
        packages: crate::packages::installed(&state).await?,
        rate_limits: crate::ratelimit::limits::stored(&state.db).await?,
        edge: if ui.can(Role::Admin) {
            let (settings, sync) = edge::settings(&state).await?;
            Some((
                settings.cors_origins.join("\n"),
                settings.redirect_uris.join("\n"),
                sync,
            ))
        } else {
            None
        },
    })
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// Flash text of a refused edge change (the 400's message).
fn edge_error(failure: crate::cloudflare::Failure) -> Error {
    Error::Validation(failure.error.message)
}

async fn change_edge(State(state): State<AppState>, ui: Ui, form: Form) -> Response {
    let back = "/ui/settings#edge";
    if let Err(err) = ui.require(Role::Admin) {
        return failed(back, err);
    }
    let input = EdgeSettings {
        cors_origins: lines(form.text("cors_origins")),
        redirect_uris: lines(form.text("redirect_uris")),
    };
    match edge::update(&state, &input, &ui.audit()).await {
        Ok(sync) => match sync.error {
            None => super::done(back, "Edge settings saved and written to the Worker's KV."),
            Some(reason) => super::done(
                back,
                format!("Edge settings saved; not written to KV yet: {reason}"),
            ),
        },
        Err(failure) => failed(back, edge_error(failure)),
    }
}

async fn sync_edge(State(state): State<AppState>, ui: Ui, _form: Form) -> Response {
    let back = "/ui/settings#edge";
    if let Err(err) = ui.require(Role::Admin) {
        return failed(back, err);
    }
    match edge::sync(&state).await {
        Ok(()) => super::done(back, "Edge settings written to the Worker's KV."),
        Err(failure) => failed(back, edge_error(failure)),
    }
}

async fn update(State(state): State<AppState>, ui: Ui, form: Form) -> Response {
    let result = async {
        ui.require(Role::Admin)?;
        let number = |name: &str| {
            form.text(name).trim().parse::<i64>().map_err(|_| {
                Error::Validation(format!("{} must be a whole number", name.replace('_', " ")))
            })
        };
        let next = Policy {
            remote_tool_editing: form.text("remote_tool_editing").to_owned(),
            tool_approval_mode: form.text("tool_approval_mode").to_owned(),
            network_access_policy: form.text("network_access_policy").to_owned(),
            module_approval_mode: form.text("module_approval_mode").to_owned(),
            redact_secrets_in_output: form.text("redact_secrets_in_output").to_owned(),
            log_retention_days: number("log_retention_days")?,
            mcp_rate_limit_rpm: number("mcp_rate_limit_rpm")?,
        };
        // set_policy validates the whole policy before writing any of it.
        settings::apply_recorded(&state, &next, None, &ui.audit()).await
    }
    .await;
    outcome("/ui/settings", result, "Security policy saved.")
}

async fn apply_preset(State(state): State<AppState>, ui: Ui, form: Form) -> Response {
    let name = form.text("preset").to_owned();
    let result = async {
        ui.require(Role::Admin)?;
        let next = settings::preset(&name, &settings::policy(&state.db).await?)?;
        settings::apply_recorded(&state, &next, Some(&name), &ui.audit()).await
    }
    .await;
    outcome("/ui/settings", result, format!("Preset {name} applied."))
}

/// One form, three buttons: add the typed module, remove one (`remove` names it), or reset.
async fn change_modules(State(state): State<AppState>, ui: Ui, form: Form) -> Response {
    let add: Vec<String> = form
        .text("add")
        .split([',', ' '])
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect();
    let remove: Vec<String> = form
        .get("remove")
        .map(|m| vec![m.to_owned()])
        .unwrap_or_default();
    let reset = form.get("reset").is_some();
    let result = async {
        ui.require(Role::Admin)?;
        if add.is_empty() && remove.is_empty() && !reset {
            return Err(Error::Validation("type a module name to add".into()));
        }
        settings::change_global_modules(&state, &add, &remove, reset, &ui.audit()).await
    }
    .await;
    outcome("/ui/settings", result, "Module allowlist saved.")
}

/// Asks OSV about every installed package now (the same re-check as the daily one).
async fn recheck_packages(State(state): State<AppState>, ui: Ui) -> Response {
    let result = async {
        ui.require(Role::Admin)?;
        let packages = crate::packages::recheck(&state).await?;
        let event = crate::activity::NewEvent::info(
            "package.recheck",
            format!("{} packages checked against OSV", packages.len()),
        );
        crate::activity::record_now(&state, &ui.audit(), event).await
    }
    .await;
    outcome(
        "/ui/settings#packages",
        result,
        "Packages checked against OSV.",
    )
}

/// The rate limits: two numbers for each of the three limits.
async fn change_rate_limits(State(state): State<AppState>, ui: Ui, form: Form) -> Response {
    use crate::ratelimit::limits::{LimitsPatch, RulePatch};
    let result = async {
        ui.require(Role::Admin)?;
        let number = |name: &str| {
            form.text(name).trim().parse::<u32>().map_err(|_| {
                Error::Validation(format!("{} must be a whole number", name.replace('_', " ")))
            })
        };
        let rule = |name: &str| -> Result<Option<RulePatch>, Error> {
            Ok(Some(RulePatch {
                per_minute: Some(number(&format!("{name}_per_minute"))?),
                burst: Some(number(&format!("{name}_burst"))?),
            }))
        };
        let patch = LimitsPatch {
            api_per_address: rule("api_per_address")?,
            api_per_account: rule("api_per_account")?,
            mcp_per_address: rule("mcp_per_address")?,
        };
        crate::ratelimit::limits::set_recorded(&state, &patch, &ui.audit()).await
    }
    .await;
    outcome("/ui/settings", result, "Rate limits saved.")
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<User>,
    me: String,
}

async fn users_page(State(state): State<AppState>, ui: Ui) -> Page {
    ui.require(Role::Admin)?;
    let (users, _) = users::list(&state.db, 500, 0).await?;
    page(&UsersPage {
        chrome: ui.chrome("users"),
        users,
        me: ui.auth.user().id.clone(),
    })
}

async fn create_user(State(state): State<AppState>, ui: Ui, form: Form) -> Response {
    let result = async {
        ui.require(Role::Admin)?;
        users::create_recorded(
            &state,
            form.text("username"),
            form.text("password"),
            form.text("role"),
            &ui.audit(),
        )
        .await
    }
    .await;
    match result {
        Ok(user) => super::done("/ui/users", format!("Account {} created.", user.username)),
        Err(err) => failed("/ui/users", err),
    }
}

async fn update_user(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let result = async {
        ui.require(Role::Admin)?;
        let active = match form.get("is_active") {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        };
        users::update_recorded(&state, &id, form.get("role"), active, &ui.audit()).await
    }
    .await;
    outcome("/ui/users", result, "Account updated.")
}
