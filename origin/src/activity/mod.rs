//! The activity log: every state change with its actor and request id, filterable, with stats,
//! and a live stream (`/api/activity/stream`, server-sent events).
//!
//! `record` takes any executor, so a change and its audit row can share a transaction (the
//! approval transitions do). Each recorded event is also broadcast to live listeners; a slow
//! listener misses events rather than slowing anyone down.

mod api;

pub(crate) use api::openapi;

pub use api::{live, router};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};
use tokio::sync::broadcast;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{self, Db};
use crate::error::{Error, Result};

/// A stored status in the words a person reads, in activity messages and in the UI's badges
/// (`pending_review` → "waiting for review"): every value the schema allows for servers, tool
/// versions, module and network requests, external sources and levels, plus the UI's call
/// outcomes. Anything else reads with spaces for underscores.
pub fn status_words(status: &str) -> std::borrow::Cow<'_, str> {
    let words = match status {
        "pending_review" => "waiting for review",
        "pending" => "waiting for approval",
        "pending_approval" => "waiting for an admin",
        known @ ("draft" | "approved" | "rejected" | "revoked" | "running" | "stopped"
        | "active" | "error" | "info" | "warning" | "ok" | "healthy" | "unavailable"
        | "none") => known,
        other => return std::borrow::Cow::Owned(other.replace('_', " ")),
    };
    std::borrow::Cow::Borrowed(words)
}

/// Who made a change, and on which request: what every audit row carries.
#[derive(Debug, Clone)]
pub struct Audit {
    pub actor: String,
    pub request_id: Option<String>,
}

impl Audit {
    /// The security policy acting on its own (auto-approval).
    pub fn policy(request_id: Option<String>) -> Audit {
        Audit {
            actor: "auto_approve".into(),
            request_id,
        }
    }
}

/// A signed-in request that changes state: the account (for role checks) and the audit
/// context (its username and the request id), from one token validation.
pub struct Audited {
    pub auth: AuthUser,
    pub audit: Audit,
}

impl FromRequestParts<AppState> for Audited {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        let audit = Audit {
            actor: auth.user().username.clone(),
            request_id: request_id(parts),
        };
        Ok(Audited { auth, audit })
    }
}

/// The request id alone, for events before anyone is signed in (sign-in attempts).
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        Ok(RequestId(request_id(parts)))
    }
}

pub fn request_id(parts: &Parts) -> Option<String> {
    request_id_of(&parts.headers)
}

pub fn request_id_of(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = activity::Event)]
pub struct Event {
    pub id: String,
    pub created_at: String,
    pub actor: String,
    pub action: String,
    /// `info`, `warning` or `error`.
    pub level: String,
    pub server_id: Option<String>,
    pub tool_id: Option<String>,
    pub request_id: Option<String>,
    pub message: String,
    pub details: serde_json::Value,
}

/// The action of the live-only events `execution::run` publishes for each call. Calls are
/// stored in the execution log, not here: these events only feed live views (they are never
/// written to the activity table, and the tool-list watcher ignores them).
pub const CALL_ACTION: &str = "tool.call";

impl Event {
    /// A live-only event for one tool call (see `CALL_ACTION`).
    pub fn call(
        log_id: &str,
        actor: &str,
        approved: &crate::tools::Approved,
        ok: bool,
        duration_ms: u64,
    ) -> Event {
        let outcome = if ok { "succeeded" } else { "failed" };
        Event {
            id: log_id.to_owned(),
            created_at: crate::db::now(),
            actor: actor.to_owned(),
            action: CALL_ACTION.to_owned(),
            level: if ok { "info" } else { "warning" }.to_owned(),
            server_id: Some(approved.server_id.clone()),
            tool_id: Some(approved.tool_id.clone()),
            request_id: None,
            message: format!(
                "call of {} (version {}) {outcome} in {duration_ms} ms",
                approved.public_name, approved.version
            ),
            details: serde_json::json!({"log_id": log_id}),
        }
    }

    fn from_row(row: &AnyRow) -> Result<Event> {
        let details: String = row.try_get("details")?;
        Ok(Event {
            id: row.try_get("id")?,
            created_at: row.try_get("created_at")?,
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            level: row.try_get("level")?,
            server_id: row.try_get("server_id")?,
            tool_id: row.try_get("tool_id")?,
            request_id: row.try_get("request_id")?,
            message: row.try_get("message")?,
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
        })
    }
}

/// An event about to be recorded.
pub struct NewEvent<'a> {
    pub action: &'a str,
    pub level: &'a str,
    pub server_id: Option<&'a str>,
    pub tool_id: Option<&'a str>,
    pub message: String,
    pub details: serde_json::Value,
}

impl<'a> NewEvent<'a> {
    pub fn info(action: &'a str, message: impl Into<String>) -> NewEvent<'a> {
        NewEvent {
            action,
            level: "info",
            server_id: None,
            tool_id: None,
            message: message.into(),
            details: serde_json::json!({}),
        }
    }

    pub fn warning(action: &'a str, message: impl Into<String>) -> NewEvent<'a> {
        NewEvent {
            level: "warning",
            ..NewEvent::info(action, message)
        }
    }

    pub fn server(mut self, id: &'a str) -> Self {
        self.server_id = Some(id);
        self
    }

    pub fn tool(mut self, id: &'a str) -> Self {
        self.tool_id = Some(id);
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// Live listeners. Capacity bounds memory; a lagging listener skips events.
///
/// With several replicas on one PostgreSQL (`db::events`), what is published here also goes to
/// the other replicas' hubs, and theirs arrives here (`publish_locally`); a gap in that feed
/// reaches listeners as a `RESYNC_ACTION` event. Cloning shares the same hub.
#[derive(Clone)]
pub struct Hub {
    sender: broadcast::Sender<Event>,
    outbound: std::sync::Arc<std::sync::OnceLock<crate::db::events::Outbound>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            sender: broadcast::channel(1024).0,
            outbound: Default::default(),
        }
    }
}

/// The action of the live-only event a hub hands its listeners when events from other replicas
/// may have been missed (a lost listener connection, a full queue): "anything may have changed".
/// Never stored; the tool-list watcher re-reads the visible set, live views say they lagged.
pub const RESYNC_ACTION: &str = "hub.resync";

impl Hub {
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// To local listeners, and to the other replicas when replication is on.
    pub fn publish(&self, event: Event) {
        if let Some(outbound) = self.outbound.get() {
            outbound.send(&event);
        }
        self.publish_locally(event);
    }

    /// To this replica's listeners only (events that came from another replica).
    pub fn publish_locally(&self, event: Event) {
        // No listener is not an error.
        let _ = self.sender.send(event);
    }

    /// Tells this replica's listeners that they may have missed events.
    pub fn resync_locally(&self) {
        self.publish_locally(Event {
            id: db::new_id(),
            created_at: db::now(),
            actor: "mcpbox".into(),
            action: RESYNC_ACTION.into(),
            level: "info".into(),
            server_id: None,
            tool_id: None,
            request_id: None,
            message: "events from other replicas may have been missed".into(),
            details: serde_json::json!({}),
        });
    }

    /// Turns replication on (once; `db::events::start`). False if it already was.
    pub fn replicate_to(&self, outbound: crate::db::events::Outbound) -> bool {
        self.outbound.set(outbound).is_ok()
    }

    /// Events not sent to other replicas because the outbound queue was full.
    pub fn dropped(&self) -> u64 {
        self.outbound.get().map_or(0, |outbound| outbound.dropped())
    }
}

/// One stored event by id (what a replica reads back when an event was too large to travel).
pub async fn get(db: &Db, id: &str) -> Result<Option<Event>> {
    let row = sqlx::query(
        "SELECT id, created_at, actor, action, level, server_id, tool_id, request_id, message, details \
         FROM activity_logs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(Event::from_row).transpose()
}

/// Writes an event (inside the caller's transaction when given one) and returns it; the caller
/// publishes it once committed (`Hub::publish`), or use `record_now`.
pub async fn record<'e>(
    executor: impl Executor<'e, Database = Any>,
    audit: &Audit,
    new: NewEvent<'_>,
) -> Result<Event> {
    let row = sqlx::query(
        "INSERT INTO activity_logs (id, created_at, actor, action, level, server_id, tool_id, request_id, message, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         RETURNING id, created_at, actor, action, level, server_id, tool_id, request_id, message, details",
    )
    .bind(db::new_id())
    .bind(db::now())
    .bind(&audit.actor)
    .bind(new.action)
    .bind(new.level)
    .bind(new.server_id)
    .bind(new.tool_id)
    .bind(audit.request_id.as_deref())
    .bind(new.message)
    .bind(new.details.to_string())
    .fetch_one(executor)
    .await?;
    Event::from_row(&row)
}

/// Records outside any transaction and publishes at once.
pub async fn record_now(state: &AppState, audit: &Audit, new: NewEvent<'_>) -> Result<()> {
    let event = record(&state.db.pool, audit, new).await?;
    state.activity.publish(event);
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub server_id: Option<String>,
    pub action: Option<String>,
    pub level: Option<String>,
    pub actor: Option<String>,
    pub request_id: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

impl Filter {
    fn sql(&self) -> (String, Vec<String>) {
        let mut clauses = Vec::new();
        let mut binds = Vec::new();
        let mut add = |column: &str, op: &str, value: &Option<String>| {
            if let Some(value) = value {
                binds.push(value.clone());
                clauses.push(format!("{column} {op} ${}", binds.len()));
            }
        };
        add("server_id", "=", &self.server_id);
        add("action", "=", &self.action);
        add("level", "=", &self.level);
        add("actor", "=", &self.actor);
        add("request_id", "=", &self.request_id);
        add("created_at", ">=", &self.since);
        add("created_at", "<", &self.until);
        let sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        (sql, binds)
    }

    /// Whether a live event passes the filter (the stream uses the same filters as the list).
    pub fn matches(&self, event: &Event) -> bool {
        let same = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == have)
        };
        same(&self.server_id, event.server_id.as_deref())
            && same(&self.action, Some(&event.action))
            && same(&self.level, Some(&event.level))
            && same(&self.actor, Some(&event.actor))
            && same(&self.request_id, event.request_id.as_deref())
    }
}

/// Newest first from just before `before` (`created_at`, `id` of the last row seen), without a
/// total: keyset paging, as fast deep in the log as at its start (the UI pages this way).
pub async fn list_before(
    db: &Db,
    filter: &Filter,
    before: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<Event>> {
    let (where_sql, mut binds) = filter.sql();
    let mut where_sql = where_sql;
    if let Some((created_at, id)) = before {
        binds.push(created_at.to_owned());
        binds.push(id.to_owned());
        let (a, b) = (binds.len() - 1, binds.len());
        let clause = format!("(created_at < ${a} OR (created_at = ${a} AND id < ${b}))");
        where_sql = if where_sql.is_empty() {
            format!("WHERE {clause}")
        } else {
            format!("{where_sql} AND {clause}")
        };
    }
    let sql = format!(
        "SELECT id, created_at, actor, action, level, server_id, tool_id, request_id, message, details FROM activity_logs \
         {where_sql} ORDER BY created_at DESC, id DESC LIMIT ${}",
        binds.len() + 1
    );
    let mut query = sqlx::query(&sql);
    for bind in &binds {
        query = query.bind(bind);
    }
    let rows = query.bind(limit).fetch_all(&db.pool).await?;
    rows.iter().map(Event::from_row).collect()
}

pub async fn list(db: &Db, filter: &Filter, limit: i64, offset: i64) -> Result<(Vec<Event>, i64)> {
    let (where_sql, binds) = filter.sql();
    let sql = format!(
        "SELECT id, created_at, actor, action, level, server_id, tool_id, request_id, message, details FROM activity_logs \
         {where_sql} ORDER BY created_at DESC, id DESC LIMIT ${} OFFSET ${}",
        binds.len() + 1,
        binds.len() + 2
    );
    let mut query = sqlx::query(&sql);
    for bind in &binds {
        query = query.bind(bind);
    }
    let rows = query.bind(limit).bind(offset).fetch_all(&db.pool).await?;
    let count_sql = format!("SELECT COUNT(*) AS n FROM activity_logs {where_sql}");
    let mut count = sqlx::query(&count_sql);
    for bind in &binds {
        count = count.bind(bind);
    }
    let total: i64 = count.fetch_one(&db.pool).await?.try_get("n")?;
    Ok((
        rows.iter().map(Event::from_row).collect::<Result<_>>()?,
        total,
    ))
}

/// Counts by action and by level since `since`.
pub async fn stats(db: &Db, since: &str) -> Result<(Vec<(String, i64)>, Vec<(String, i64)>)> {
    let by = |column: &'static str| {
        let sql = format!(
            "SELECT {column} AS k, COUNT(*) AS n FROM activity_logs WHERE created_at >= $1 GROUP BY {column} ORDER BY {column}"
        );
        async move {
            let rows = sqlx::query(&sql).bind(since).fetch_all(&db.pool).await?;
            rows.iter()
                .map(|row| Ok((row.try_get("k")?, row.try_get("n")?)))
                .collect::<Result<Vec<_>>>()
        }
    };
    Ok((by("action").await?, by("level").await?))
}

/// Deletes activity older than the policy's `log_retention_days`; returns how many.
pub async fn apply_retention(db: &Db) -> Result<u64> {
    let days = crate::settings::policy(db).await?.log_retention_days;
    let cutoff = db::timestamp(chrono::Utc::now() - chrono::Duration::days(days));
    let deleted = sqlx::query("DELETE FROM activity_logs WHERE created_at < $1")
        .bind(cutoff)
        .execute(&db.pool)
        .await?;
    Ok(deleted.rows_affected())
}
