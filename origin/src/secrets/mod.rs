//! Server secrets: placeholders the LLM may declare (key + description) and values only an admin
//! sets. Values are encrypted at rest with AES-256-GCM bound to `server_secret:{server_id}:{key}`,
//! are never returned by any API, and are redacted from everything a run records.

mod api;
pub mod rotation;

pub(crate) use api::openapi;

pub use api::router;

use std::collections::BTreeMap;

use sqlx::Row;

use crate::app::AppState;
use crate::db::{self, Db};
use crate::error::{Error, OnConflict, Result};

pub const KEY_MAX: usize = 64;
pub const VALUE_MAX: usize = 10_000;
/// The shortest value accepted. Runs redact secret values wherever they appear in output; a
/// value of a few bytes also appears in ordinary output (every `abc` would turn into
/// `[REDACTED]`, and what is left around it tells the value), so it cannot be redacted
/// reliably. Older shorter values are still passed and redacted, and warned about (in the log
/// at each run and on the server's page).
pub const MIN_VALUE_BYTES: usize = 8;

/// `^[A-Z][A-Z0-9_]*$`, at most 64 characters.
pub fn check_key(key: &str) -> Result<()> {
    let valid = !key.is_empty()
        && key.len() <= KEY_MAX
        && key.starts_with(|c: char| c.is_ascii_uppercase())
        && key
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Error::Validation(format!(
            "invalid secret key {key:?}: use 1 to {KEY_MAX} upper-case letters, digits and _, starting with a letter (like API_KEY)"
        )))
    }
}

fn aad(server_id: &str, key: &str) -> String {
    format!("server_secret:{server_id}:{key}")
}

pub struct Placeholder {
    pub key: String,
    pub description: String,
    pub has_value: bool,
    pub updated_at: String,
}

pub async fn list(db: &Db, server_id: &str) -> Result<Vec<Placeholder>> {
    crate::servers::get(db, server_id).await?;
    let rows = sqlx::query(
        "SELECT key, description, CAST(CASE WHEN encrypted_value IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_value, \
         updated_at FROM server_secrets \
         WHERE server_id = $1 ORDER BY key",
    )
    .bind(server_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Placeholder {
                key: row.try_get("key")?,
                description: row.try_get("description")?,
                has_value: row.try_get::<i64, _>("has_value")? != 0,
                updated_at: row.try_get("updated_at")?,
            })
        })
        .collect()
}

/// Declares a secret without a value (the LLM's and the admin's way to ask for one).
/// `create_placeholder` plus its activity row: what every front (REST, MCP) calls.
pub async fn create_placeholder_recorded(
    state: &crate::app::AppState,
    server_id: &str,
    key: &str,
    description: &str,
    audit: &crate::activity::Audit,
) -> Result<()> {
    create_placeholder(&state.db, server_id, key, description).await?;
    let event = crate::activity::NewEvent::info("secret.create", format!("secret {key} declared"))
        .server(server_id);
    crate::activity::record_now(state, audit, event).await
}

pub async fn create_placeholder(
    db: &Db,
    server_id: &str,
    key: &str,
    description: &str,
) -> Result<()> {
    check_key(key)?;
    crate::servers::check_description(description)?;
    crate::servers::get(db, server_id).await?;
    let now = db::now();
    sqlx::query(
        "INSERT INTO server_secrets (id, server_id, key, description, encrypted_value, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, NULL, $5, $5)",
    )
    .bind(db::new_id())
    .bind(server_id)
    .bind(key)
    .bind(description)
    .bind(now)
    .execute(&db.pool)
    .await
    .on_conflict(|| format!("the server already has a secret named {key}"))?;
    Ok(())
}

/// `set_value` plus its activity row (the key only: a value never reaches a log); REST and UI.
pub async fn set_value_recorded(
    state: &AppState,
    server_id: &str,
    key: &str,
    value: &str,
    audit: &crate::activity::Audit,
) -> Result<()> {
    set_value(state, server_id, key, value).await?;
    let event = crate::activity::NewEvent::info("secret.set", format!("value of secret {key} set"))
        .server(server_id);
    crate::activity::record_now(state, audit, event).await
}

/// `delete` plus its activity row; REST and UI.
pub async fn delete_recorded(
    state: &AppState,
    server_id: &str,
    key: &str,
    audit: &crate::activity::Audit,
) -> Result<()> {
    delete(&state.db, server_id, key).await?;
    let event =
        crate::activity::NewEvent::warning("secret.delete", format!("secret {key} deleted"))
            .server(server_id);
    crate::activity::record_now(state, audit, event).await
}

/// Sets (or replaces) a value, creating the placeholder if needed.
pub async fn set_value(state: &AppState, server_id: &str, key: &str, value: &str) -> Result<()> {
    check_key(key)?;
    // Counted in characters, as the document's minLength counts them; 8 characters are at
    // least 8 bytes, what redaction needs.
    if value.chars().count() < MIN_VALUE_BYTES {
        return Err(Error::Validation(format!(
            "the value must be at least {MIN_VALUE_BYTES} characters long (so at least \
             {MIN_VALUE_BYTES} bytes): MCPbox redacts secret values \
             from everything a run returns and records, and a shorter value cannot be told apart \
             from ordinary output"
        )));
    }
    if value.chars().count() > VALUE_MAX {
        return Err(Error::Validation(format!(
            "the value must be at most {VALUE_MAX} characters long"
        )));
    }
    crate::servers::get(&state.db, server_id).await?;
    let encrypted = state.keys.encrypt_to_string(value, &aad(server_id, key));
    let now = db::now();
    sqlx::query(
        "INSERT INTO server_secrets (id, server_id, key, description, encrypted_value, created_at, updated_at) \
         VALUES ($1, $2, $3, '', $4, $5, $5) \
         ON CONFLICT (server_id, key) DO UPDATE SET encrypted_value = $4, updated_at = $5",
    )
    .bind(db::new_id())
    .bind(server_id)
    .bind(key)
    .bind(encrypted)
    .bind(now)
    .execute(&state.db.pool)
    .await?;
    Ok(())
}

pub async fn delete(db: &Db, server_id: &str, key: &str) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM server_secrets WHERE server_id = $1 AND key = $2")
        .bind(server_id)
        .bind(key)
        .execute(&db.pool)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(format!(
            "the server has no secret named {key}"
        )));
    }
    Ok(())
}

/// The decrypted values of a server's secrets, for a run. A value that does not decrypt (wrong
/// key, tampered row, row copied from another server) is an error, never silently skipped.
pub async fn values(state: &AppState, server_id: &str) -> Result<BTreeMap<String, String>> {
    let rows = sqlx::query("SELECT key, encrypted_value FROM server_secrets WHERE server_id = $1 AND encrypted_value IS NOT NULL")
        .bind(server_id)
        .fetch_all(&state.db.pool)
        .await?;
    let mut values = BTreeMap::new();
    for row in rows {
        let key: String = row.try_get("key")?;
        let stored: String = row.try_get("encrypted_value")?;
        let value = state
            .keys
            .decrypt_str(&stored, &aad(server_id, &key))
            .map_err(|err| {
                tracing::error!(server_id, key, error = %err, "a server secret does not decrypt");
                Error::Conflict(format!(
                    "the secret {key} cannot be decrypted ({err}); set it again"
                ))
            })?;
        values.insert(key, value);
    }
    Ok(values)
}

/// The keys of decrypted `values` shorter than `MIN_VALUE_BYTES` (set before that minimum).
pub fn too_short(values: &BTreeMap<String, String>) -> impl Iterator<Item = &str> {
    values
        .iter()
        .filter(|(_, value)| value.len() < MIN_VALUE_BYTES)
        .map(|(key, _)| key.as_str())
}

/// The keys of a server's secrets whose values are shorter than `MIN_VALUE_BYTES`, for the
/// admin's warning on the server page. A value that does not decrypt is left out here (a run
/// reports it).
pub async fn short_keys(state: &AppState, server_id: &str) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT key, encrypted_value FROM server_secrets WHERE server_id = $1 AND encrypted_value IS NOT NULL")
        .bind(server_id)
        .fetch_all(&state.db.pool)
        .await?;
    let mut short = Vec::new();
    for row in rows {
        let key: String = row.try_get("key")?;
        let stored: String = row.try_get("encrypted_value")?;
        if let Ok(value) = state.keys.decrypt_str(&stored, &aad(server_id, &key))
            && value.len() < MIN_VALUE_BYTES
        {
            short.push(key);
        }
    }
    Ok(short)
}
