//! Key/value settings. For now only flags read by `/auth/status`; the security policy (with its
//! presets and validation) lands here with the domain API.

use sqlx::Row;

use crate::db::Db;
use crate::error::Result;

/// A boolean setting; missing means false.
pub async fn get_flag(db: &Db, key: &str) -> Result<bool> {
    let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .fetch_optional(&db.pool)
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<String, _>("value")? == "true",
        None => false,
    })
}
