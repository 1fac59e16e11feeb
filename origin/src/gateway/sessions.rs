//! Bounds on 2025-11-25 MCP sessions, which rmcp keeps in memory (`LocalSessionManager`), and
//! the binding of each session to the caller that opened it.
//!
//! rmcp alone has no cap on sessions, accepts 4 MiB bodies, and resets a session's idle timer
//! whenever the *server* sends on it, so a tool-list change kept every idle session alive. Here:
//! - at most `MAX_SESSIONS` sessions per listener; an `initialize` beyond that is refused with
//!   503 and a JSON-RPC error (after closing the idle ones), never queued;
//! - a session is closed after `IDLE_TIMEOUT` without a request from its client (an open GET
//!   stream counts as activity; notifications the server sends do not), by `reap`, which also
//!   forgets sessions rmcp already closed;
//! - an `initialize` body is at most `MAX_INITIALIZE_BYTES` (its params live as long as the
//!   session), every other body at most `http::MAX_BODY_BYTES`;
//! - a session answers only the caller that opened it (the local caller, or the remote email the
//!   Worker vouched for): anyone else gets the same 404 as for an unknown session, so a leaked
//!   or guessed session id is worth nothing;
//! - and only on the endpoint it was opened on (`/mcp` or one `/servers/{name}/mcp`), so a
//!   per-server session never reaches other tools, nor an `/mcp` session those of one server.
//!
//! 2026-07-28 stateless requests hold nothing between requests and pass through untouched, apart
//! from the body limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde_json::json;

use super::Caller;
use crate::http::MAX_BODY_BYTES;

/// Open sessions per listener. A session costs tens of KB (its worker, channels and the
/// client's `initialize` params), so this bounds them to tens of MB.
pub const MAX_SESSIONS: u32 = 1_000;
/// A session without any request from its client for this long is closed; the client gets 404
/// and initializes again, as the protocol says.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The largest `initialize` request accepted (real clients send about 1 KB).
pub const MAX_INITIALIZE_BYTES: usize = 64 * 1024;
/// How often idle sessions are looked for.
const REAP_EVERY: Duration = Duration::from_secs(30);
const SESSION_HEADER: &str = "mcp-session-id";

/// What `serve` configures (`--mcp-max-sessions`, `--mcp-session-idle-timeout`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_sessions: usize,
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: MAX_SESSIONS as usize,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// Every listener's sessions (in `AppState`): their limits, and the figures `/health/ready`
/// reports.
#[derive(Default)]
pub struct Registry {
    limits: Mutex<Limits>,
    listeners: Mutex<Vec<Weak<Sessions>>>,
    /// Live list_changed tasks of 2025-11-25 sessions (`Gateway::on_initialized`).
    watchers: Arc<AtomicUsize>,
}

impl Registry {
    /// Set before the routers are built; later routers pick them up.
    pub fn set_limits(&self, limits: Limits) {
        *self
            .limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = limits;
    }

    pub fn limits(&self) -> Limits {
        *self
            .limits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Open sessions on every listener.
    pub fn open(&self) -> usize {
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        listeners.retain(|l| l.strong_count() > 0);
        listeners
            .iter()
            .filter_map(Weak::upgrade)
            .map(|s| s.open())
            .sum()
    }

    /// Sessions whose list_changed task still runs (and holds the session's peer).
    pub fn watchers(&self) -> usize {
        self.watchers.load(Ordering::Acquire)
    }

    /// Counts one list_changed task until the guard drops.
    pub fn watcher(&self) -> Watcher {
        self.watchers.fetch_add(1, Ordering::AcqRel);
        Watcher(self.watchers.clone())
    }

    /// The sessions table of a new listener.
    pub fn listener(&self, manager: &Arc<LocalSessionManager>) -> Arc<Sessions> {
        let limits = self.limits();
        let sessions = Sessions::with_limits(manager, limits.max_sessions, limits.idle_timeout);
        self.listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::downgrade(&sessions));
        sessions
    }
}

/// A running list_changed task (see `Registry::watcher`).
pub struct Watcher(Arc<AtomicUsize>);

impl Drop for Watcher {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The sessions of one listener's `/mcp`, beside rmcp's own table.
pub struct Sessions {
    manager: Weak<LocalSessionManager>,
    entries: Mutex<HashMap<String, Entry>>,
    /// `initialize` requests in flight, counted against the cap before they create a session.
    pending: AtomicUsize,
    max: usize,
    idle: Duration,
}

struct Entry {
    /// Who opened it; `None` for a session adopted from rmcp's table whose opener this table
    /// never saw (nobody may use it: it can only expire).
    owner: Option<Caller>,
    /// The path of the endpoint that opened it (`/mcp`, `/servers/{name}/mcp`); with the
    /// route's shape and server names' bound, it is short.
    endpoint: Box<str>,
    last_seen: Instant,
    /// Open GET streams of this session: a client listening is not idle.
    streams: Arc<AtomicUsize>,
}

/// What a request with a session id may do.
enum Access {
    Granted(Arc<AtomicUsize>),
    /// Opened by someone else.
    Foreign,
    /// Not (or no longer) known here: rmcp decides (it answers 404 for unknown ids).
    Unknown,
}

impl Sessions {
    /// Starts the reaper, which ends when the manager is dropped.
    fn with_limits(
        manager: &Arc<LocalSessionManager>,
        max: usize,
        idle: Duration,
    ) -> Arc<Sessions> {
        let sessions = Arc::new(Sessions {
            manager: Arc::downgrade(manager),
            entries: Mutex::new(HashMap::new()),
            pending: AtomicUsize::new(0),
            max,
            idle,
        });
        let reaper = Arc::downgrade(&sessions);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(REAP_EVERY.min(idle));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(sessions) = reaper.upgrade() else {
                    return;
                };
                if !sessions.reap().await {
                    return;
                }
            }
        });
        sessions
    }

    /// Sessions open now (as this table knows them).
    pub fn open(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock leaves plain data behind: keep using it.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn access(&self, id: &str, caller: &Caller, endpoint: &str) -> Access {
        let mut entries = self.lock();
        match entries.get_mut(id) {
            Some(entry) if entry.owner.as_ref() == Some(caller) && *entry.endpoint == *endpoint => {
                entry.last_seen = Instant::now();
                Access::Granted(entry.streams.clone())
            }
            Some(_) => Access::Foreign,
            None => Access::Unknown,
        }
    }

    /// Closes sessions idle past the timeout and forgets those rmcp closed itself (DELETE, a
    /// dead worker). Sessions rmcp has that this table lacks are adopted, so none escapes the
    /// timeout. Returns false once the manager is gone.
    pub async fn reap(&self) -> bool {
        let Some(manager) = self.manager.upgrade() else {
            return false;
        };
        let live: std::collections::HashSet<String> = manager
            .sessions
            .read()
            .await
            .keys()
            .map(|id| id.to_string())
            .collect();
        let now = Instant::now();
        let idle: Vec<String> = {
            let mut entries = self.lock();
            // A session registered after `live` was read is young: keep it.
            entries.retain(|id, e| live.contains(id) || now - e.last_seen < Duration::from_secs(5));
            for id in &live {
                entries.entry(id.clone()).or_insert_with(|| Entry {
                    owner: None,
                    endpoint: Box::from(""),
                    last_seen: now,
                    streams: Arc::new(AtomicUsize::new(0)),
                });
            }
            entries
                .iter()
                .filter(|(_, e)| {
                    e.streams.load(Ordering::Relaxed) == 0 && now - e.last_seen >= self.idle
                })
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in idle {
            self.lock().remove(&id);
            if let Err(err) = manager.close_session(&Arc::from(id.as_str())).await {
                tracing::debug!(error = %err, "closing an idle MCP session");
            }
        }
        true
    }
}

/// The middleware in front of rmcp's service on `/mcp` and `/servers/{name}/mcp` (see the
/// module comment).
pub async fn guard(
    State(sessions): State<Arc<Sessions>>,
    request: Request,
    next: Next,
) -> Response {
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller::Local);
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let endpoint: Box<str> = request.uri().path().into();
    if let Some(id) = session {
        return within_session(&sessions, &id, &caller, &endpoint, request, next).await;
    }
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the request body is larger than {} KB",
                MAX_BODY_BYTES / 1024
            ),
        );
    };
    if !is_initialize(&bytes) {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    if bytes.len() > MAX_INITIALIZE_BYTES {
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "an initialize request may be at most {} KB",
                MAX_INITIALIZE_BYTES / 1024
            ),
        );
    }
    if !reserve(&sessions).await {
        tracing::warn!(
            max = sessions.max,
            "MCP session limit reached; refusing initialize"
        );
        let mut response = refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "MCPbox has {} open MCP sessions, its limit; close one (DELETE) or use \
                 stateless requests (protocol 2026-07-28), or try again later",
                sessions.max
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        return response;
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if let Some(id) = response
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        sessions.lock().insert(
            id.to_owned(),
            Entry {
                owner: Some(caller),
                endpoint,
                last_seen: Instant::now(),
                streams: Arc::new(AtomicUsize::new(0)),
            },
        );
    }
    sessions.pending.fetch_sub(1, Ordering::AcqRel);
    response
}

/// Takes a place for a new session, closing idle ones first when the table is full.
async fn reserve(sessions: &Sessions) -> bool {
    let fits = |sessions: &Sessions| {
        let pending = sessions.pending.fetch_add(1, Ordering::AcqRel);
        if sessions.open() + pending < sessions.max {
            true
        } else {
            sessions.pending.fetch_sub(1, Ordering::AcqRel);
            false
        }
    };
    if fits(sessions) {
        return true;
    }
    sessions.reap().await;
    fits(sessions)
}

async fn within_session(
    sessions: &Sessions,
    id: &str,
    caller: &Caller,
    endpoint: &str,
    request: Request,
    next: Next,
) -> Response {
    let streams = match sessions.access(id, caller, endpoint) {
        Access::Granted(streams) => Some(streams),
        Access::Unknown => None,
        Access::Foreign => {
            tracing::warn!(
                endpoint,
                "an MCP session id was used by a caller other than its owner, or on another \
                 endpoint than the one that opened it"
            );
            return refusal(StatusCode::NOT_FOUND, "session not found");
        }
    };
    let method = request.method().clone();
    let response = next.run(request).await;
    if method == Method::DELETE && response.status().is_success() {
        sessions.lock().remove(id);
    }
    match streams {
        // A GET stream keeps its session alive while it is open.
        Some(streams) if method == Method::GET && response.status() == StatusCode::OK => {
            let (parts, body) = response.into_parts();
            let open = OpenStream::new(streams);
            let body = body.into_data_stream().map(move |chunk| {
                let _still_open = &open;
                chunk
            });
            Response::from_parts(parts, Body::from_stream(body))
        }
        _ => response,
    }
}

/// Counts an open stream until dropped.
struct OpenStream(Arc<AtomicUsize>);

impl OpenStream {
    fn new(count: Arc<AtomicUsize>) -> OpenStream {
        count.fetch_add(1, Ordering::AcqRel);
        OpenStream(count)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether a JSON-RPC body is an `initialize` request (a batch never is in these revisions).
fn is_initialize(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Probe<'_>>(body)
        .ok()
        .and_then(|p| p.method)
        .is_some_and(|m| m == "initialize")
}

/// A refusal as a JSON-RPC error with no id, the shape MCP clients read.
fn refusal(status: StatusCode, message: &str) -> Response {
    let code = match status {
        StatusCode::NOT_FOUND => -32001,
        _ => -32000,
    };
    (
        status,
        axum::Json(
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}}),
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_initialize_is_recognised() {
        assert!(is_initialize(
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#
        ));
        assert!(!is_initialize(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#
        ));
        assert!(!is_initialize(br#"[{"method":"initialize"}]"#));
        assert!(!is_initialize(b"not json"));
        // An escaped method name is still the same name.
        assert!(is_initialize(br#"{"method":"initi\u0061lize"}"#));
    }
}
