//! Local MCP client keys: what a client of the local listener's `/mcp` presents as
//! `Authorization: Bearer mcpbox_k_…`. Required when that listener is bound to a non-loopback
//! address (or `--mcp-require-key`), optional on loopback, where a key that is sent must still
//! be valid (`gateway::keys`). An admin issues a key with a name (shown once, stored only as its
//! SHA-256), sees when each was last used, and revokes it; a keyed client is trusted like a
//! local one, and the execution log names it `mcp:key:{name}`.
//!
//! The hot path (`Keys::verify`) does not read the database on every MCP request: keys checked
//! in the last `CACHE_TTL` are answered from memory (at most `CACHE_CAP` of them), `last_used_at`
//! is written at most once per `TOUCH_EVERY` per key, and a revocation empties the cache entry at
//! once in this process (and, through the activity hub, in other replicas; `CACHE_TTL` bounds
//! how long a replica that missed the event keeps accepting the key).

mod api;

pub(crate) use api::openapi;
pub use api::router;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio::sync::broadcast;

use crate::activity::{self, Audit, Event, NewEvent};
use crate::app::AppState;
use crate::db::{self, Db};
use crate::error::{Error, OnConflict, Result};

/// Keys not revoked that may exist at once; issuing more is refused.
pub const MAX_ACTIVE_KEYS: i64 = 100;
/// Revoked keys kept (their names explain old log rows); past it the oldest are forgotten when
/// a key is issued, so issue-and-revoke cannot grow the table without end.
pub const MAX_REVOKED_KEPT: i64 = 400;
pub const NAME_MAX: usize = 64;
/// What every key starts with: recognisable in a config file or a secret scanner.
pub const KEY_PREFIX: &str = "mcpbox_k_";
/// Characters after `KEY_PREFIX` shown in lists (48 of the key's 256 bits).
const SHOWN_CHARS: usize = 8;
/// Longest bearer value looked at; a real key is 52 characters.
const PRESENTED_MAX: usize = 256;

/// How long a key checked against the database is accepted from memory.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Most keys remembered at once (beyond `MAX_ACTIVE_KEYS` only while revoked ones age out).
pub const CACHE_CAP: usize = 256;
/// `last_used_at` is written at most this often per key (per replica).
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The action of the activity event of a revocation (other replicas forget the key on it).
pub const REVOKE_ACTION: &str = "mcp_keys.revoke";

/// A key as lists show it: never the key, only its first characters.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = mcp_keys::McpKey)]
pub struct McpKey {
    pub id: String,
    pub name: String,
    /// The key's first characters (`mcpbox_k_` and eight more), to tell keys apart.
    pub prefix: String,
    pub created_by: String,
    pub created_at: String,
    /// Within a minute or so (it is not written on every call); null: never used.
    pub last_used_at: Option<String>,
    /// Null while the key is valid.
    pub revoked_at: Option<String>,
}

const COLUMNS: &str = "id, name, prefix, created_by, created_at, last_used_at, revoked_at";

impl McpKey {
    fn from_row(row: &AnyRow) -> Result<McpKey> {
        Ok(McpKey {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            prefix: row.try_get("prefix")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            last_used_at: row.try_get("last_used_at")?,
            revoked_at: row.try_get("revoked_at")?,
        })
    }

    /// The prefix as shown: `mcpbox_k_AbCdEfGh…`.
    pub fn shown(&self) -> String {
        format!("{}…", self.prefix)
    }
}

/// A key just issued: the only time the key itself is in an answer.
pub struct Issued {
    pub key: McpKey,
    pub secret: String,
}

/// 1 to 64 of `a-z 0-9 - _ .`, starting with a letter or digit: it becomes part of the actor
/// `mcp:key:{name}` in logs and filters, so nothing that needs quoting.
pub fn check_name(text: &str) -> Result<String> {
    let name = text;
    let valid = !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !valid {
        return Err(Error::Validation(format!(
            "a key name is 1 to {NAME_MAX} lowercase letters, digits, '-', '_' or '.', starting \
             with a letter or digit (e.g. laptop-claude)"
        )));
    }
    Ok(name.to_owned())
}

/// SHA-256 (hex) of a key. Keys are 256 random bits, so a fast hash is enough: there is nothing
/// to guess, and Argon2 on every MCP request would cost tens of milliseconds for no gain.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn generate() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

/// Every key, valid ones first, newest first (at most `MAX_ACTIVE_KEYS + MAX_REVOKED_KEPT`).
pub async fn list(db: &Db) -> Result<Vec<McpKey>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM mcp_client_keys \
         ORDER BY CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END, created_at DESC, id DESC"
    ))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(McpKey::from_row).collect()
}

pub async fn get(db: &Db, id: &str) -> Result<McpKey> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM mcp_client_keys WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| Error::NotFound("no such MCP client key".into()))?;
    McpKey::from_row(&row)
}

/// Issues a key named `name` and records it (the activity row in the same transaction), in any
/// process that can open the database: the server's fronts through `issue_recorded`, and
/// `mcpbox admin mcp-key create`. At most `MAX_ACTIVE_KEYS` valid keys: counted by the INSERT
/// itself in a transaction that, on PostgreSQL, first locks the table against other writers, so
/// keys issued at the same moment cannot pass the bound (SQLite has one writer).
pub async fn issue(db: &Db, name: &str, audit: &Audit) -> Result<(Issued, Event)> {
    let name = check_name(name)?;
    let secret = generate();
    let prefix: String = secret
        .chars()
        .take(KEY_PREFIX.len() + SHOWN_CHARS)
        .collect();
    let id = db::new_id();
    let now = db::now();
    let mut tx = db.pool.begin().await?;
    if db.backend == db::Backend::Postgres {
        sqlx::query("LOCK TABLE mcp_client_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
    }
    let inserted = sqlx::query(
        "INSERT INTO mcp_client_keys (id, name, key_hash, prefix, created_by, created_at) \
         SELECT $1, $2, $3, $4, $5, $6 \
         WHERE (SELECT COUNT(*) FROM mcp_client_keys WHERE revoked_at IS NULL) < $7",
    )
    .bind(&id)
    .bind(&name)
    .bind(hash(&secret))
    .bind(&prefix)
    .bind(&audit.actor)
    .bind(&now)
    .bind(MAX_ACTIVE_KEYS)
    .execute(&mut *tx)
    .await
    .on_conflict(|| {
        format!(
            "a key named {name:?} exists (revoked keys keep their names, so the logs stay \
             unambiguous): choose another name"
        )
    })?;
    if inserted.rows_affected() == 0 {
        return Err(Error::Conflict(format!(
            "there are already {MAX_ACTIVE_KEYS} valid MCP client keys, the most MCPbox keeps: \
             revoke one first"
        )));
    }
    // The oldest revoked keys beyond the ones kept.
    sqlx::query(
        "DELETE FROM mcp_client_keys WHERE revoked_at IS NOT NULL AND id NOT IN \
         (SELECT id FROM mcp_client_keys WHERE revoked_at IS NOT NULL \
          ORDER BY revoked_at DESC, id DESC LIMIT $1)",
    )
    .bind(MAX_REVOKED_KEPT)
    .execute(&mut *tx)
    .await?;
    let event = NewEvent::warning(
        "mcp_keys.issue",
        format!("MCP client key {name} issued ({prefix}…)"),
    )
    .details(serde_json::json!({"key_id": id, "name": name, "prefix": prefix}));
    let event = activity::record(&mut *tx, audit, event).await?;
    tx.commit().await?;
    let key = get(db, &id).await?;
    Ok((Issued { key, secret }, event))
}

/// `issue`, announced on this server's activity hub (live views, other replicas).
pub async fn issue_recorded(state: &AppState, name: &str, audit: &Audit) -> Result<Issued> {
    let (issued, event) = issue(&state.db, name, audit).await?;
    state.activity.publish(event);
    Ok(issued)
}

/// Revokes a key (the activity row in the same transaction). A server learns of it from its
/// activity hub (`revoke_recorded` forgets it at once in its own process and tells the other
/// replicas); a revocation from another process reaches a running server within `CACHE_TTL`, or
/// at once on PostgreSQL through `db::events::announce`.
pub async fn revoke(db: &Db, id: &str, audit: &Audit) -> Result<(McpKey, Event)> {
    let current = get(db, id).await?;
    let already = || Error::Conflict(format!("the key {} is already revoked", current.name));
    if current.revoked_at.is_some() {
        return Err(already());
    }
    let mut tx = db.pool.begin().await?;
    let revoked = sqlx::query(
        "UPDATE mcp_client_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
    )
    .bind(db::now())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if revoked.rows_affected() == 0 {
        return Err(already());
    }
    let event = NewEvent::warning(
        REVOKE_ACTION,
        format!("MCP client key {} revoked", current.name),
    )
    .details(serde_json::json!({"key_id": id, "name": current.name}));
    let event = activity::record(&mut *tx, audit, event).await?;
    tx.commit().await?;
    Ok((get(db, id).await?, event))
}

/// `revoke` on this server: refused from this moment in this process, within the event's trip
/// in other replicas (at most `CACHE_TTL` if they miss it).
pub async fn revoke_recorded(state: &AppState, id: &str, audit: &Audit) -> Result<McpKey> {
    let result = revoke(&state.db, id, audit).await;
    // Forgotten whatever the answer: a key someone asked to revoke is checked afresh.
    state.mcp_keys.forget(id);
    let (key, event) = result?;
    state.activity.publish(event);
    Ok(key)
}

/// The key with this id, or else the valid key with this name (what the command line takes).
pub async fn find(db: &Db, id_or_name: &str) -> Result<McpKey> {
    match get(db, id_or_name).await {
        Err(Error::NotFound(_)) => {}
        found => return found,
    }
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM mcp_client_keys WHERE name = $1 AND revoked_at IS NULL"
    ))
    .bind(id_or_name)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| Error::NotFound(format!("no valid MCP client key named {id_or_name:?}")))?;
    McpKey::from_row(&row)
}

/// A key accepted by `Keys::verify`.
#[derive(Debug, Clone)]
pub struct Verified {
    pub id: String,
    pub name: String,
}

struct Entry {
    id: String,
    name: String,
    /// When the database last confirmed the key valid.
    checked: Instant,
    /// When `last_used_at` was last written for it (by this replica).
    touched: Option<Instant>,
}

/// The key check of the local `/mcp`: whether keys are required, and the cache of valid ones.
pub struct Keys {
    required: AtomicBool,
    /// Keyed by the key's SHA-256 (hex): the key itself is never held.
    cache: Mutex<HashMap<String, Entry>>,
    /// Bumped by every forget: a database answer read before it is not cached after it.
    generation: AtomicU64,
    /// The activity hub, drained on each check for revocations (here and on other replicas).
    events: Mutex<broadcast::Receiver<Event>>,
}

impl Keys {
    pub fn new(hub: &crate::activity::Hub) -> Keys {
        Keys {
            required: AtomicBool::new(false),
            cache: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            events: Mutex::new(hub.subscribe()),
        }
    }

    /// Whether a request without a key is refused (`serve`: a non-loopback bind address or
    /// `--mcp-require-key`).
    pub fn set_required(&self, required: bool) {
        self.required.store(required, Ordering::Relaxed);
    }

    pub fn required(&self) -> bool {
        self.required.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Plain data: a panic elsewhere leaves nothing half-changed that matters.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops a key from the cache (its revocation).
    pub fn forget(&self, id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.lock().retain(|_, entry| entry.id != id);
    }

    fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.lock().clear();
    }

    /// Applies the revocations the hub has seen since the last check (no task of its own: the
    /// receiver is drained here; one that lagged or a resync forgets everything).
    fn apply_events(&self) {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            match events.try_recv() {
                Ok(event) if event.action == REVOKE_ACTION => {
                    match event.details["key_id"].as_str() {
                        Some(id) => self.forget(id),
                        None => self.forget_all(),
                    }
                }
                Ok(event) if event.action == activity::RESYNC_ACTION => self.forget_all(),
                Ok(_) => {}
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.forget_all(),
                Err(_) => return,
            }
        }
    }

    /// The key `presented` names, if it is valid now; `None` for anything else.
    pub async fn verify(&self, db: &Db, presented: &str) -> Result<Option<Verified>> {
        if presented.len() > PRESENTED_MAX || !presented.starts_with(KEY_PREFIX) {
            return Ok(None);
        }
        self.apply_events();
        let digest = hash(presented);
        let now = Instant::now();
        let cached = {
            let mut cache = self.lock();
            match cache.get_mut(&digest) {
                Some(entry) if now.duration_since(entry.checked) < CACHE_TTL => {
                    let touch = entry.touched.is_none_or(|at| now - at >= TOUCH_EVERY);
                    if touch {
                        entry.touched = Some(now);
                    }
                    Some((
                        Verified {
                            id: entry.id.clone(),
                            name: entry.name.clone(),
                        },
                        touch,
                    ))
                }
                _ => None,
            }
        };
        if let Some((verified, touch)) = cached {
            if touch {
                spawn_touch(db, &verified.id);
            }
            return Ok(Some(verified));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        // The hash is the lookup key: equality on a digest of a secret leaks nothing usable
        // about the secret through timing.
        let row = sqlx::query(
            "SELECT id, name FROM mcp_client_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(&digest)
        .fetch_optional(&db.pool)
        .await?;
        let Some(row) = row else {
            // Not cached: unknown keys are not remembered (the rate limit in front of `/mcp`
            // bounds how often they can be tried).
            return Ok(None);
        };
        let verified = Verified {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
        };
        let touch = {
            let mut cache = self.lock();
            if self.generation.load(Ordering::SeqCst) != generation {
                // Revoked (or everything forgotten) while the database was asked: accept this
                // request, which raced the revocation, but do not remember the answer.
                true
            } else {
                if cache.len() >= CACHE_CAP && !cache.contains_key(&digest) {
                    cache.retain(|_, entry| now.duration_since(entry.checked) < CACHE_TTL);
                    if cache.len() >= CACHE_CAP {
                        cache.clear();
                    }
                }
                let entry = cache.entry(digest).or_insert_with(|| Entry {
                    id: verified.id.clone(),
                    name: verified.name.clone(),
                    checked: now,
                    touched: None,
                });
                entry.checked = now;
                let touch = entry.touched.is_none_or(|at| now - at >= TOUCH_EVERY);
                if touch {
                    entry.touched = Some(now);
                }
                touch
            }
        };
        if touch {
            spawn_touch(db, &verified.id);
        }
        Ok(Some(verified))
    }
}

/// Writes `last_used_at` off the request path (at most once per `TOUCH_EVERY` per key, so at
/// most `CACHE_CAP` such writes a minute).
fn spawn_touch(db: &Db, id: &str) {
    let db = db.clone();
    let id = id.to_owned();
    tokio::spawn(async move {
        let written = sqlx::query("UPDATE mcp_client_keys SET last_used_at = $1 WHERE id = $2")
            .bind(db::now())
            .bind(&id)
            .execute(&db.pool)
            .await;
        if let Err(err) = written {
            tracing::debug!(error = %err, "could not note an MCP client key's last use");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_recognisable() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        // 32 bytes in unpadded base64url.
        assert_eq!(a.len(), KEY_PREFIX.len() + 43);
        assert!(
            a[KEY_PREFIX.len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn names_are_plain_words() {
        for good in [
            "laptop",
            "claude-desktop",
            "ci_runner.2",
            "a",
            &"x".repeat(64),
        ] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            " laptop",
            "",
            "   ",
            "Laptop",
            "-x",
            ".x",
            "a b",
            "a:b",
            "a/b",
            "é",
            "a\nb",
            &"x".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
