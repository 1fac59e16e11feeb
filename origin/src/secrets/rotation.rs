//! Finishing a key rotation: `mcpbox admin reencrypt` rewrites every stored value that an older
//! key wrote under the current key.
//!
//! Each row is rewritten on its own, with a conditional UPDATE on the value it read, so the
//! command is resumable (a second run skips what is done), safe while the origin serves (a value
//! set meanwhile is left alone, being current already) and never half-applies a row. Values that
//! no configured key opens are counted and left untouched.

use sqlx::Row;

use crate::crypto::Keyring;
use crate::db::Db;
use crate::error::Result;

/// Rows read per query.
const BATCH: i64 = 500;

/// What a run did, and what still depends on the previous key.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reencrypted {
    /// Rewritten under the current key by this run.
    pub reencrypted: u64,
    /// Already under the current key.
    pub current: u64,
    /// Changed by someone else between read and write (the newer value is kept).
    pub changed_meanwhile: u64,
    /// Under a key that is neither the current nor the previous one, or damaged: these still
    /// need the key that wrote them (or setting again).
    pub undecryptable: u64,
}

impl Reencrypted {
    /// Whether the previous key may be dropped now.
    pub fn previous_key_unused(&self) -> bool {
        self.undecryptable == 0
    }
}

/// One encrypted text column of a table keyed by a text id: what `rewrite` re-encrypts.
/// Names are the code's own constants, never input.
pub struct Column {
    pub table: &'static str,
    pub id: &'static str,
    pub value: &'static str,
    /// Extra condition on the rows holding a sealed value (`""`: every non-NULL one).
    pub only: &'static str,
}

/// Re-encrypts `column`'s values an older key wrote, each row on its own with a conditional
/// UPDATE on the value read (`aad` from the row's id). Adds to `report`. Every store but the
/// server secrets (batched, with a two-part AAD, above) goes through here.
pub async fn rewrite(
    db: &Db,
    keys: &Keyring,
    column: Column,
    aad: impl Fn(&str) -> String,
    report: &mut Reencrypted,
) -> Result<()> {
    let Column {
        table,
        id,
        value,
        only,
    } = column;
    let rows = sqlx::query(&format!(
        "SELECT {id}, {value} FROM {table} WHERE {value} IS NOT NULL {only}"
    ))
    .fetch_all(&db.pool)
    .await?;
    for row in rows {
        let row_id: String = row.try_get(id)?;
        let stored: String = row.try_get(value)?;
        if !keys.needs_reencryption_str(&stored) {
            report.current += 1;
            continue;
        }
        let Ok(plain) = keys.decrypt_str(&stored, &aad(&row_id)) else {
            tracing::warn!(table, id = row_id, "a value opens with no configured key");
            report.undecryptable += 1;
            continue;
        };
        let updated = sqlx::query(&format!(
            "UPDATE {table} SET {value} = $1 WHERE {id} = $2 AND {value} = $3"
        ))
        .bind(keys.encrypt_to_string(&plain, &aad(&row_id)))
        .bind(&row_id)
        .bind(&stored)
        .execute(&db.pool)
        .await?;
        if updated.rows_affected() == 1 {
            report.reencrypted += 1;
        } else {
            report.changed_meanwhile += 1;
        }
    }
    Ok(())
}

/// Re-encrypts every server secret, alert webhook URL, external source's OAuth grant and remote
/// set-up secret not under `keys`' current key.
pub async fn reencrypt(db: &Db, keys: &Keyring) -> Result<Reencrypted> {
    let mut report = Reencrypted::default();
    let mut after = String::new();
    loop {
        let rows = sqlx::query(
            "SELECT id, server_id, key, encrypted_value FROM server_secrets \
             WHERE encrypted_value IS NOT NULL AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(&after)
        .bind(BATCH)
        .fetch_all(&db.pool)
        .await?;
        let Some(last) = rows.last() else {
            crate::alerts::webhooks::reencrypt(db, keys, &mut report).await?;
            crate::external::oauth::reencrypt(db, keys, &mut report).await?;
            // The remote set-up's secrets (API token, service token, …) too.
            crate::cloudflare::store::reencrypt(db, keys, &mut report).await?;
            return Ok(report);
        };
        after = last.try_get("id")?;
        for row in rows {
            let id: String = row.try_get("id")?;
            let server_id: String = row.try_get("server_id")?;
            let key: String = row.try_get("key")?;
            let stored: String = row.try_get("encrypted_value")?;
            let aad = super::aad(&server_id, &key);
            if !keys.needs_reencryption_str(&stored) {
                report.current += 1;
                continue;
            }
            let Ok(plain) = keys.decrypt_str(&stored, &aad) else {
                tracing::warn!(
                    server_id,
                    key,
                    "a server secret opens with no configured key"
                );
                report.undecryptable += 1;
                continue;
            };
            let fresh = keys.encrypt_to_string(&plain, &aad);
            let updated = sqlx::query(
                "UPDATE server_secrets SET encrypted_value = $1 WHERE id = $2 AND encrypted_value = $3",
            )
            .bind(&fresh)
            .bind(&id)
            .bind(&stored)
            .execute(&db.pool)
            .await?
            .rows_affected();
            if updated == 1 {
                report.reencrypted += 1;
            } else {
                report.changed_meanwhile += 1;
            }
        }
    }
}
