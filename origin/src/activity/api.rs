//! `/api/activity/logs`, `/api/activity/stats`, `/api/activity/stream` (server-sent events).

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use super::{Event, Filter};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::error::{ApiQuery, Error, Result};
use crate::pagination::{Page, PageParams};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/activity/logs", get(logs))
        .route("/api/activity/stats", get(stats))
        .route("/api/activity/stream", get(stream_events))
}

#[derive(Deserialize, Default)]
struct FilterQuery {
    server_id: Option<String>,
    action: Option<String>,
    level: Option<String>,
    actor: Option<String>,
    request_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    page: Option<u32>,
    page_size: Option<u32>,
}

impl FilterQuery {
    fn filter(&self) -> Result<Filter> {
        if let Some(level) = &self.level
            && !["info", "warning", "error"].contains(&level.as_str())
        {
            return Err(Error::Validation(
                "level must be info, warning or error".into(),
            ));
        }
        Ok(Filter {
            server_id: self.server_id.clone(),
            action: self.action.clone(),
            level: self.level.clone(),
            actor: self.actor.clone(),
            request_id: self.request_id.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
        })
    }
}

#[utoipa::path(get, path = "/api/activity/logs", tag = "activity", operation_id = "activity_logs", responses((status = "2XX", description = "Success"), (status = "4XX", description = "A JSON error: {\"error\": {\"code\", \"message\"}}")), security(("bearer" = [])))]
async fn logs(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<FilterQuery>,
) -> Result<Json<Page<Event>>> {
    auth.require(Role::Viewer)?;
    let filter = q.filter()?;
    let request = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let (items, total) = super::list(&state.db, &filter, request.limit(), request.offset()).await?;
    Ok(Json(Page::new(items, total, request)))
}

#[derive(Deserialize)]
struct StatsQuery {
    /// 1h, 6h, 24h (default) or 7d.
    period: Option<String>,
}

#[derive(Serialize)]
struct Stats {
    period: String,
    by_action: std::collections::BTreeMap<String, i64>,
    by_level: std::collections::BTreeMap<String, i64>,
}

#[utoipa::path(get, path = "/api/activity/stats", tag = "activity", operation_id = "activity_stats", responses((status = "2XX", description = "Success"), (status = "4XX", description = "A JSON error: {\"error\": {\"code\", \"message\"}}")), security(("bearer" = [])))]
async fn stats(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Json<Stats>> {
    auth.require(Role::Viewer)?;
    let period = q.period.unwrap_or_else(|| "24h".into());
    let hours = match period.as_str() {
        "1h" => 1,
        "6h" => 6,
        "24h" => 24,
        "7d" => 24 * 7,
        other => {
            return Err(Error::Validation(format!(
                "unknown period {other:?} (use 1h, 6h, 24h or 7d)"
            )));
        }
    };
    let since = crate::db::timestamp(chrono::Utc::now() - chrono::Duration::hours(hours));
    let (by_action, by_level) = super::stats(&state.db, &since).await?;
    Ok(Json(Stats {
        period,
        by_action: by_action.into_iter().collect(),
        by_level: by_level.into_iter().collect(),
    }))
}

/// Live events as server-sent events (`event: activity`, JSON data), filtered like the list.
/// Events missed because the listener fell behind are announced with `event: lagged`.
#[utoipa::path(get, path = "/api/activity/stream", tag = "activity", operation_id = "activity_stream_events", responses((status = "2XX", description = "Success"), (status = "4XX", description = "A JSON error: {\"error\": {\"code\", \"message\"}}")), security(("bearer" = [])))]
async fn stream_events(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<FilterQuery>,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    auth.require(Role::Viewer)?;
    Ok(live(&state, q.filter()?))
}

/// The live stream of events passing `filter`, as server-sent events (the REST stream and the
/// UI's live view).
pub fn live(
    state: &AppState,
    filter: super::Filter,
) -> Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>> + use<>> {
    let receiver = state.activity.subscribe();
    let events = stream::unfold((receiver, filter), |(mut receiver, filter)| async move {
        loop {
            match receiver.recv().await {
                Ok(event) if filter.matches(&event) => {
                    let data = serde_json::to_string(&event).unwrap_or_default();
                    return Some((
                        Ok(SseEvent::default().event("activity").data(data)),
                        (receiver, filter),
                    ));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    let note = SseEvent::default().event("lagged").data(missed.to_string());
                    return Some((Ok(note), (receiver, filter)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(logs, stats, stream_events))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
