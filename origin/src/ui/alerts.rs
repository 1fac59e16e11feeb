//! Settings → Alerts (admins only): the webhooks with their last delivery, adding, enabling,
//! re-pointing, testing and deleting them, the alert thresholds, and the alerts raised lately.
//! The same domain functions as `/api/alerts` (`alerts::webhooks`, `alerts::settings`).

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};

use super::format::filters;
use super::{Chrome, Form, Page, Ui, confirm_typed, failed, outcome, page};
use crate::alerts::webhooks::{self, Change, NewWebhook, Webhook};
use crate::alerts::{self, Alert, AlertSettings, Stats};
use crate::app::AppState;
use crate::auth::Role;
use crate::error::Error;

const PAGE: &str = "/ui/settings/alerts";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PAGE, get(show).post(update_settings))
        .route("/ui/settings/alerts/webhooks", post(create))
        .route("/ui/settings/alerts/webhooks/{id}", post(update))
        .route("/ui/settings/alerts/webhooks/{id}/test", post(test))
        .route("/ui/settings/alerts/webhooks/{id}/delete", post(delete))
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    chrome: Chrome,
    webhooks: Vec<Webhook>,
    settings: AlertSettings,
    stats: Stats,
    recent: Vec<Alert>,
    max_webhooks: i64,
}

async fn show(State(state): State<AppState>, ui: Ui) -> Page {
    ui.require(Role::Admin)?;
    let mut recent = state.alerts.recent();
    recent.reverse();
    page(&AlertsPage {
        chrome: ui.chrome("settings"),
        webhooks: webhooks::list(&state.db).await?,
        settings: alerts::settings::load(&state.db).await?,
        stats: state.alerts.stats(),
        recent,
        max_webhooks: webhooks::MAX_WEBHOOKS,
    })
}

async fn update_settings(State(state): State<AppState>, ui: Ui, form: Form) -> Response {
    let result = async {
        ui.require(Role::Admin)?;
        let number = |name: &str| {
            form.text(name).trim().parse::<i64>().map_err(|_| {
                Error::Validation(format!("{} must be a whole number", name.replace('_', " ")))
            })
        };
        let next = AlertSettings {
            dedup_window_minutes: number("dedup_window_minutes")?,
            approval_wait_minutes: number("approval_wait_minutes")?,
            sign_in_failures: number("sign_in_failures")?,
            sign_in_window_minutes: number("sign_in_window_minutes")?,
            per_webhook_per_minute: number("per_webhook_per_minute")?,
        };
        alerts::settings::store_recorded(&state, &next, &ui.audit()).await
    }
    .await;
    outcome(PAGE, result, "Alert settings saved.")
}

async fn create(State(state): State<AppState>, ui: Ui, form: Form) -> Response {
    let result = async {
        ui.require(Role::Admin)?;
        let new = NewWebhook {
            name: form.text("name"),
            flavour: form.text("flavour"),
            url: form.text("url"),
            enabled: true,
        };
        webhooks::create_recorded(&state, new, &ui.audit()).await
    }
    .await;
    match result {
        Ok(webhook) => super::done(PAGE, format!("Webhook {} added.", webhook.name)),
        Err(err) => failed(PAGE, err),
    }
}

/// One form per webhook, three buttons: enable, disable, or replace the URL with the typed one.
async fn update(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let result = async {
        ui.require(Role::Admin)?;
        let change = match form.text("action") {
            "enable" => Change {
                enabled: Some(true),
                ..Change::default()
            },
            "disable" => Change {
                enabled: Some(false),
                ..Change::default()
            },
            "url" => Change {
                url: Some(form.text("url")),
                ..Change::default()
            },
            _ => {
                return Err(Error::Validation(
                    "choose enable, disable or a new URL".into(),
                ));
            }
        };
        webhooks::update_recorded(&state, &id, change, &ui.audit()).await
    }
    .await;
    outcome(PAGE, result, "Webhook saved.")
}

async fn test(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    _form: Form,
) -> Response {
    let result = async {
        ui.require(Role::Admin)?;
        webhooks::test_recorded(&state, &id, &ui.audit()).await
    }
    .await;
    match result {
        Ok(webhook) if webhook.last_status.as_deref() == Some("delivered") => {
            super::done(PAGE, format!("Test alert delivered to {}.", webhook.name))
        }
        Ok(webhook) => failed(
            PAGE,
            Error::Conflict(format!(
                "The test alert to {} failed: {}",
                webhook.name,
                webhook.last_error.unwrap_or_default()
            )),
        ),
        Err(err) => failed(PAGE, err),
    }
}

async fn delete(
    State(state): State<AppState>,
    ui: Ui,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    let result = async {
        ui.require(Role::Admin)?;
        let webhook = webhooks::get(&state.db, &id).await?;
        confirm_typed(&form, &webhook.name, "webhook")?;
        webhooks::delete_recorded(&state, &id, &ui.audit()).await
    }
    .await;
    outcome(PAGE, result, "Webhook deleted.")
}
