//! Events between origin replicas that share one PostgreSQL (DESIGN.md "Several origins"):
//! PostgreSQL's LISTEN/NOTIFY on one channel, no other service.
//!
//! What travels: batches of activity `Event`s as a small JSON document,
//! `{"from": replica, "events": [...], "refs": [...], "resync": bool}`, under NOTIFY's 8000-byte
//! payload limit (`PAYLOAD_BUDGET`). An event too large for a payload of its own travels as its
//! id in `refs`, and receivers read the row back from `activity_logs` (live-only call events
//! are always small). Receivers skip their own batches (they published those locally already).
//!
//! What can be missed, and what then happens: a notification sent while a listener's connection
//! is down is lost (NOTIFY is not a queue), and an outbound queue that fills up (the database is
//! slower than the events) drops events. Both become a `resync` for the receivers: the hub hands
//! its listeners a `RESYNC_ACTION` event, the tool-list watcher re-fingerprints the visible set,
//! and live views get a `lagged` message. Nothing is announced before it committed: events are
//! published after their transaction, and receivers read storage, never the payload, to decide
//! what clients see.
//!
//! SQLite is one process: nothing is started, and the hub stays local.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

use super::Db;
use crate::activity::{Event, Hub};

/// The channel's name before the schema: `mcpbox_events:{schema}`, so two installations in
/// different schemas of one database never hear each other.
pub const CHANNEL_PREFIX: &str = "mcpbox_events:";
/// PostgreSQL's identifier limit (NAMEDATALEN - 1), which channel names obey.
const CHANNEL_MAX: usize = 63;
/// Below PostgreSQL's 8000-byte NOTIFY limit, with room for the envelope.
pub const PAYLOAD_BUDGET: usize = 7_600;
/// Events waiting to be sent; past this they are dropped and receivers told to resync.
const QUEUE: usize = 4_096;
/// How long a lost listener connection waits before it reconnects (doubling, up to a cap).
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// One NOTIFY payload.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Batch {
    /// The sending replica's id (`Replication::id`).
    from: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    events: Vec<Event>,
    /// Ids of activity rows too large to travel inline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    refs: Vec<String>,
    /// The sender dropped events: receivers must assume anything changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    resync: bool,
}

/// The outbound half, held by the `Hub`: `send` never waits.
pub struct Outbound {
    queue: mpsc::Sender<Event>,
    dropped: Arc<AtomicBool>,
    dropped_total: Arc<AtomicU64>,
}

impl Outbound {
    /// Queues an event for the other replicas; a full queue drops it (and the next batch tells
    /// them to resync).
    pub fn send(&self, event: &Event) {
        if self.queue.try_send(event.clone()).is_err() {
            self.dropped.store(true, Ordering::Relaxed);
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped since start (queue full or closed).
    pub fn dropped(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }
}

/// Starts replication of `hub` over `url` when the database is PostgreSQL: the publisher (the
/// outbound queue to NOTIFY) and the listener (NOTIFY to the local hub). Returns the tasks, or
/// none on SQLite.
pub async fn start(
    db: &Db,
    url: &str,
    hub: &Hub,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    if db.backend != super::Backend::Postgres {
        return Ok(Vec::new());
    }
    let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(&db.pool)
        .await?;
    let channel = channel_name(&schema);
    let id = super::new_id();
    let (queue, receiver) = mpsc::channel(QUEUE);
    let dropped = Arc::new(AtomicBool::new(false));
    let outbound = Outbound {
        queue,
        dropped: dropped.clone(),
        dropped_total: Arc::new(AtomicU64::new(0)),
    };
    if !hub.replicate_to(outbound) {
        return Ok(Vec::new());
    }
    tracing::info!(
        replica = id,
        channel,
        "activity events are shared with other replicas (LISTEN/NOTIFY)"
    );
    Ok(vec![
        tokio::spawn(publish(
            db.clone(),
            channel.clone(),
            id.clone(),
            receiver,
            dropped,
        )),
        tokio::spawn(listen(db.clone(), url.to_owned(), channel, id, hub.clone())),
    ])
}

/// `mcpbox_events:{schema}`, cut to PostgreSQL's identifier limit on a character boundary.
fn channel_name(schema: &str) -> String {
    let mut channel = format!("{CHANNEL_PREFIX}{schema}");
    while channel.len() > CHANNEL_MAX {
        channel.pop();
    }
    channel
}

/// Drains the queue into NOTIFY payloads, as many events per payload as fit.
async fn publish(
    db: Db,
    channel: String,
    id: String,
    mut queue: mpsc::Receiver<Event>,
    dropped: Arc<AtomicBool>,
) {
    let mut carried: Option<Event> = None;
    loop {
        let first = match carried.take() {
            Some(event) => event,
            None => match queue.recv().await {
                Some(event) => event,
                None => return,
            },
        };
        let mut batch = Batch {
            from: id.clone(),
            resync: dropped.swap(false, Ordering::Relaxed),
            ..Batch::default()
        };
        let mut size = envelope_size(&batch);
        let mut next = Some(first);
        while let Some(event) = next.take() {
            let event_size = serde_json::to_string(&event).map_or(usize::MAX, |text| text.len());
            if size + event_size < PAYLOAD_BUDGET {
                size += event_size + 1;
                batch.events.push(event);
            } else if batch.events.is_empty() && batch.refs.is_empty() {
                // Too large even alone: receivers read it back by id.
                size += event.id.len() + 3;
                batch.refs.push(event.id);
            } else {
                carried = Some(event);
                break;
            }
            next = queue.try_recv().ok();
        }
        let payload = match serde_json::to_string(&batch) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::warn!(error = %err, "could not encode activity events for other replicas");
                continue;
            }
        };
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&channel)
            .bind(&payload)
            .execute(&db.pool)
            .await;
        if let Err(err) = sent {
            // The other replicas missed this batch: the next one tells them to resync.
            dropped.store(true, Ordering::Relaxed);
            tracing::warn!(error = %err, "could not send activity events to other replicas");
            tokio::time::sleep(RECONNECT_FIRST).await;
        }
    }
}

/// Tells the replicas serving from this database about `event`, from a process that runs no
/// hub of its own (`mcpbox admin …`): one batch from a one-off sender id. Nothing on SQLite,
/// whose one server process learns of the change by reading storage (e.g. `mcp_keys::CACHE_TTL`).
pub async fn announce(db: &Db, event: &Event) -> Result<(), sqlx::Error> {
    if db.backend != super::Backend::Postgres {
        return Ok(());
    }
    let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
        .fetch_one(&db.pool)
        .await?;
    let mut batch = Batch {
        from: super::new_id(),
        ..Batch::default()
    };
    if envelope_size(&batch) + serde_json::to_string(event).map_or(usize::MAX, |t| t.len())
        < PAYLOAD_BUDGET
    {
        batch.events.push(event.clone());
    } else {
        batch.refs.push(event.id.clone());
    }
    let payload = serde_json::to_string(&batch).map_err(|err| sqlx::Error::Encode(err.into()))?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel_name(&schema))
        .bind(payload)
        .execute(&db.pool)
        .await?;
    Ok(())
}

fn envelope_size(batch: &Batch) -> usize {
    serde_json::to_string(batch).map_or(0, |text| text.len()) + 32
}

/// Receives other replicas' batches and publishes them on the local hub (locally only). On a
/// lost connection, or before the first one, listeners are told to resync.
async fn listen(db: Db, url: String, channel: String, id: String, hub: Hub) {
    let mut wait = RECONNECT_FIRST;
    loop {
        let mut listener = match connect(&url, &channel).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "could not listen for other replicas' events; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        wait = RECONNECT_FIRST;
        // Whatever happened while this replica was not listening is unknown.
        hub.resync_locally();
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => receive(&db, &id, &hub, notification.payload()).await,
                // The connection was lost; notifications in between are gone.
                Ok(None) => {
                    tracing::warn!("lost the connection for other replicas' events; reconnecting");
                    hub.resync_locally();
                }
                Err(err) => {
                    tracing::warn!(error = %err, "listening for other replicas' events failed");
                    break;
                }
            }
        }
        tokio::time::sleep(wait).await;
    }
}

async fn connect(url: &str, channel: &str) -> Result<PgListener, sqlx::Error> {
    // Not `eager_reconnect`: try_recv reconnects and re-listens by itself on its next call,
    // reporting the gap first as `None`.
    let mut listener = PgListener::connect(url).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

async fn receive(db: &Db, id: &str, hub: &Hub, payload: &str) {
    let batch: Batch = match serde_json::from_str(payload) {
        Ok(batch) => batch,
        Err(err) => {
            tracing::warn!(error = %err, "unreadable event from another replica; resyncing");
            hub.resync_locally();
            return;
        }
    };
    if batch.from == id {
        return;
    }
    if batch.resync {
        hub.resync_locally();
    }
    for event in batch.events {
        hub.publish_locally(event);
    }
    for event_id in batch.refs {
        match crate::activity::get(db, &event_id).await {
            Ok(Some(event)) => hub.publish_locally(event),
            Ok(None) => hub.resync_locally(),
            Err(err) => {
                tracing::warn!(error = %err, "could not read another replica's event back");
                hub.resync_locally();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_is_per_schema_and_a_valid_identifier() {
        assert_eq!(channel_name("public"), "mcpbox_events:public");
        let long = channel_name(&"é".repeat(40));
        assert!(long.len() <= CHANNEL_MAX && long.starts_with(CHANNEL_PREFIX));
    }

    #[test]
    fn the_envelope_reads_back_and_omits_what_is_empty() {
        let batch = Batch {
            from: "r1".into(),
            ..Batch::default()
        };
        let text = serde_json::to_string(&batch).unwrap();
        assert_eq!(text, r#"{"from":"r1"}"#);
        let back: Batch = serde_json::from_str(r#"{"from":"r2","resync":true}"#).unwrap();
        assert!(back.resync && back.events.is_empty() && back.refs.is_empty());
    }
}
