//! The activity log: filterable pages, and a live view fed by the same event stream as
//! `/api/activity/stream` (here authenticated by the session cookie, which EventSource sends).

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::{Chrome, Page, Ui, page};
use crate::activity::{self, Event, Filter};
use crate::app::AppState;
use crate::auth::Role;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/activity", get(list))
        .route("/ui/activity/stream", get(stream))
}

const PER_PAGE: i64 = 50;
const RECENT_CALLS: i64 = 20;

#[derive(Deserialize, Default)]
struct Params {
    level: Option<String>,
    action: Option<String>,
    actor: Option<String>,
    page: Option<i64>,
}

impl Params {
    fn filter(&self) -> Filter {
        let given = |v: &Option<String>| {
            v.as_ref()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        Filter {
            level: given(&self.level),
            action: given(&self.action),
            actor: given(&self.actor),
            ..Filter::default()
        }
    }
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    chrome: Chrome,
    events: Vec<Event>,
    total: i64,
    calls: Vec<crate::execution::LogRow>,
    level: String,
    action: String,
    actor: String,
    page: i64,
    pages: i64,
}

async fn list(State(state): State<AppState>, ui: Ui, Query(params): Query<Params>) -> Page {
    ui.require(Role::Viewer)?;
    let filter = params.filter();
    let page_number = params.page.unwrap_or(1).clamp(1, 100_000);
    let (events, total) =
        activity::list(&state.db, &filter, PER_PAGE, (page_number - 1) * PER_PAGE).await?;
    let (calls, _) = crate::execution::logs(
        &state.db,
        &crate::execution::LogFilter::default(),
        RECENT_CALLS,
        0,
    )
    .await?;
    page(&ActivityPage {
        chrome: ui.chrome("activity"),
        events,
        total,
        calls,
        level: filter.level.unwrap_or_default(),
        action: filter.action.unwrap_or_default(),
        actor: filter.actor.unwrap_or_default(),
        page: page_number,
        pages: ((total + PER_PAGE - 1) / PER_PAGE).max(1),
    })
}

async fn stream(State(state): State<AppState>, ui: Ui, Query(params): Query<Params>) -> Response {
    if let Err(err) = ui.require(Role::Viewer) {
        return super::error_page(Some(&ui), err);
    }
    activity::live(&state, params.filter()).into_response()
}
