//! The dashboard: counts, pending reviews, calls and errors over time (SVG drawn server-side),
//! the sandbox's health and its isolation layers.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::Deserialize;

use super::format::{self, filters};
use super::render::{BAR_WIDTH, Bar, CHART_HEIGHT, bars};
use super::{Chrome, Page, Ui, page};
use crate::app::AppState;
use crate::auth::Role;
use crate::dashboard::{self, Dashboard};

pub fn routes() -> Router<AppState> {
    Router::new().route("/ui", get(show))
}

#[derive(Deserialize)]
struct Params {
    period: Option<String>,
}

pub struct Layer {
    pub name: &'static str,
    pub on: bool,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    data: Dashboard,
    bars: Vec<Bar>,
    chart_width: u32,
    chart_height: u32,
    bar_width: u32,
    sandbox_ok: bool,
    sandbox_error: String,
    idle_workers: u32,
    layers: Vec<Layer>,
    circuit: String,
}

async fn show(State(state): State<AppState>, ui: Ui, Query(params): Query<Params>) -> Page {
    ui.require(Role::Viewer)?;
    let period = params
        .period
        .as_deref()
        .filter(|p| ["1h", "6h", "24h", "7d"].contains(p))
        .unwrap_or("24h");
    let data = dashboard::build(&state.db, period).await?;
    let buckets: Vec<(String, i64, i64)> = data
        .series
        .iter()
        .map(|b| (format::bucket_label(&b.bucket), b.calls, b.errors))
        .collect();
    let bars = bars(&buckets);
    let (sandbox_ok, sandbox_error, idle_workers, layers) = match state.sandbox.health().await {
        Ok(health) => {
            let l = &health.layers;
            let layers = vec![
                Layer {
                    name: "static check",
                    on: l.static_check,
                },
                Layer {
                    name: "restricted runtime",
                    on: l.restricted_runtime,
                },
                Layer {
                    name: "resource limits",
                    on: l.rlimits,
                },
                Layer {
                    name: "closed file descriptors",
                    on: l.closed_fds,
                },
                Layer {
                    name: "clean environment",
                    on: l.clean_environment,
                },
                Layer {
                    name: "network namespace",
                    on: l.network_namespace,
                },
                Layer {
                    name: "Landlock",
                    on: l.landlock,
                },
                Layer {
                    name: "seccomp",
                    on: l.seccomp,
                },
                Layer {
                    name: "unprivileged user",
                    on: l.unprivileged_uid,
                },
                Layer {
                    name: "HTTP broker",
                    on: l.http_broker,
                },
            ];
            (true, String::new(), health.idle_workers, layers)
        }
        Err(err) => (false, err.to_string(), 0, Vec::new()),
    };
    page(&DashboardPage {
        chrome: ui.chrome("dashboard"),
        chart_width: (bars.len() as u32 * (BAR_WIDTH + 4)).max(BAR_WIDTH),
        chart_height: CHART_HEIGHT,
        bar_width: BAR_WIDTH,
        bars,
        data,
        sandbox_ok,
        sandbox_error,
        idle_workers,
        layers,
        circuit: format!("{:?}", state.sandbox.circuit()).to_lowercase(),
    })
}
