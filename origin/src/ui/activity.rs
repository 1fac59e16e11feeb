//! The activity log: filterable pages, and a live view fed by the same event stream as
//! `/api/activity/stream` (here authenticated by the session cookie, which EventSource sends).

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::format::filters;
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
    /// `created_at~id` of the last row of the previous page (keyset paging).
    before: Option<String>,
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
    calls: Vec<crate::execution::LogRow>,
    level: String,
    action: String,
    actor: String,
    /// The cursor of the next (older) page, when this page is full.
    older: Option<String>,
    paged: bool,
}

async fn list(State(state): State<AppState>, ui: Ui, Query(params): Query<Params>) -> Page {
    ui.require(Role::Viewer)?;
    let filter = params.filter();
    let before = params
        .before
        .as_deref()
        .and_then(|cursor| cursor.split_once('~'));
    let events = activity::list_before(&state.db, &filter, before, PER_PAGE).await?;
    let older = (events.len() as i64 == PER_PAGE)
        .then(|| events.last().map(|e| format!("{}~{}", e.created_at, e.id)))
        .flatten();
    let (calls, _) = crate::execution::logs_after(
        &state.db,
        &crate::execution::LogFilter::default(),
        None,
        RECENT_CALLS,
    )
    .await?;
    page(&ActivityPage {
        chrome: ui.chrome("activity"),
        events,
        calls,
        level: filter.level.unwrap_or_default(),
        action: filter.action.unwrap_or_default(),
        actor: filter.actor.unwrap_or_default(),
        older,
        paged: before.is_some(),
    })
}

async fn stream(State(state): State<AppState>, ui: Ui, Query(params): Query<Params>) -> Response {
    if let Err(err) = ui.require(Role::Viewer) {
        return super::error_page(Some(&ui), err);
    }
    activity::live(&state, ui.auth.0.clone(), params.filter()).into_response()
}
