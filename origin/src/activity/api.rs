//! `/api/activity/logs`, `/api/activity/stats`, `/api/activity/stream` (server-sent events).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use super::{Event, Filter};
use crate::app::AppState;
use crate::auth::tokens::{self, Session};
use crate::auth::{AuthUser, Role};
use crate::db::Db;
use crate::error::{ApiQuery, Error, Result};
use crate::openapi::{E400, E401, E422};
use crate::pagination::{Page, PageParams};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/activity/logs", get(logs))
        .route("/api/activity/stats", get(stats))
        .route("/api/activity/stream", get(stream_events))
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct FilterQuery {
    server_id: Option<String>,
    action: Option<String>,
    #[param(pattern = "^(info|warning|error)$")]
    level: Option<String>,
    actor: Option<String>,
    request_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
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

#[utoipa::path(get, path = "/api/activity/logs", tag = "activity", operation_id = "activity_logs", params(FilterQuery), responses((status = 200, body = Page<Event>), E400, E401, E422), security(("bearer" = [])))]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct StatsQuery {
    /// 1h, 6h, 24h (default) or 7d.
    #[param(pattern = "^(1h|6h|24h|7d)$")]
    period: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = activity::Stats)]
struct Stats {
    period: String,
    by_action: std::collections::BTreeMap<String, i64>,
    by_level: std::collections::BTreeMap<String, i64>,
}

#[utoipa::path(get, path = "/api/activity/stats", tag = "activity", operation_id = "activity_stats", params(StatsQuery), responses((status = 200, body = Stats), E400, E401, E422), security(("bearer" = [])))]
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
#[utoipa::path(get, path = "/api/activity/stream", tag = "activity", operation_id = "activity_stream_events", params(FilterQuery), responses((status = 200, description = "Server-sent events: `event: activity` with an event as JSON data, `event: lagged` with the number missed", content_type = "text/event-stream", body = String), E400, E401, E422), security(("bearer" = [])))]
async fn stream_events(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(q): ApiQuery<FilterQuery>,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    auth.require(Role::Viewer)?;
    let filter = q.filter()?;
    Ok(live(&state, auth.0, filter))
}

/// The live stream of events passing `filter`, as server-sent events (the REST stream and the
/// UI's live view), for as long as `session` holds: it is re-checked against the database
/// (`tokens::still_valid`) before every event is sent, so signing out, "sign out everywhere",
/// a password change, disabling the account or changing its role ends the stream instead of
/// letting it deliver; and it ends when the access token expires (clients reconnect with a
/// fresh one; the UI's EventSource does so by itself through the refresh cookie).
pub fn live(
    state: &AppState,
    session: Session,
    filter: super::Filter,
) -> Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>> + use<>> {
    let left = session.expires_at - chrono::Utc::now().timestamp();
    let live = Live {
        receiver: state.activity.subscribe(),
        filter,
        db: state.db.clone(),
        expires: tokio::time::Instant::now() + Duration::from_secs(left.max(0).unsigned_abs()),
        session,
    };
    let events = stream::unfold(live, |mut live| async move {
        loop {
            let received = tokio::select! {
                received = live.receiver.recv() => received,
                () = tokio::time::sleep_until(live.expires) => return None,
            };
            let message = match received {
                // Another replica's events may have been missed: the view may have gaps.
                Ok(event) if event.action == super::RESYNC_ACTION => {
                    SseEvent::default().event("lagged").data("0")
                }
                Ok(event) if live.filter.matches(&event) => {
                    let data = serde_json::to_string(&event).unwrap_or_default();
                    SseEvent::default().event("activity").data(data)
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    SseEvent::default().event("lagged").data(missed.to_string())
                }
                Err(RecvError::Closed) => return None,
            };
            // Fails closed: a database error ends the stream too (the client reconnects).
            return match tokens::still_valid(&live.db, &live.session).await {
                Ok(_) => Some((Ok(message), live)),
                Err(_) => None,
            };
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// The state of one live stream between events.
struct Live {
    receiver: tokio::sync::broadcast::Receiver<Event>,
    filter: super::Filter,
    db: Db,
    session: Session,
    expires: tokio::time::Instant,
}

/// This module's routes in the OpenAPI document (`crate::openapi`).
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(logs, stats, stream_events))]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
