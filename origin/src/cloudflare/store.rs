//! The wizard's rows: steps, the resources this install created (with their write-ahead
//! intents), values (secrets encrypted) and the remote email allowlist.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::client::CfMessage;
use crate::crypto::Keyring;
use crate::db::{self, Db};
use crate::error::Result;

/// The six steps, in order (serialised as `as_str` names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = cloudflare::Step)]
pub enum Step {
    Token,
    Tunnel,
    VpcService,
    Worker,
    Access,
    Connect,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Token,
        Step::Tunnel,
        Step::VpcService,
        Step::Worker,
        Step::Access,
        Step::Connect,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Token => "token",
            Step::Tunnel => "tunnel",
            Step::VpcService => "vpc_service",
            Step::Worker => "worker",
            Step::Access => "access",
            Step::Connect => "connect",
        }
    }

    pub fn number(self) -> u8 {
        Step::ALL.iter().position(|s| *s == self).unwrap_or(0) as u8 + 1
    }

    pub fn title(self) -> &'static str {
        match self {
            Step::Token => "API token",
            Step::Tunnel => "Tunnel",
            Step::VpcService => "Workers VPC service",
            Step::Worker => "Worker",
            Step::Access => "Access and allowlist",
            Step::Connect => "Connect",
        }
    }

    pub fn parse(text: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A failure as stored and shown: what happened, Cloudflare's own words, what to do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = cloudflare::StepError)]
pub struct StepError {
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cloudflare: Vec<CfMessage>,
    pub hint: String,
}

#[derive(Debug, Clone)]
pub struct StepState {
    pub step: Step,
    /// pending | running | done | failed
    pub status: String,
    pub progress: Vec<String>,
    pub error: Option<StepError>,
    pub updated_at: Option<String>,
}

pub async fn steps(db: &Db) -> Result<Vec<StepState>> {
    let rows =
        sqlx::query("SELECT step, status, progress, error, updated_at FROM cloudflare_steps")
            .fetch_all(&db.pool)
            .await?;
    let mut out: Vec<StepState> = Step::ALL
        .iter()
        .map(|step| StepState {
            step: *step,
            status: "pending".into(),
            progress: Vec::new(),
            error: None,
            updated_at: None,
        })
        .collect();
    for row in rows {
        let name: String = row.try_get("step")?;
        let Some(step) = Step::parse(&name) else {
            continue;
        };
        let progress: String = row.try_get("progress")?;
        let error: Option<String> = row.try_get("error")?;
        let state = &mut out[step.number() as usize - 1];
        state.status = row.try_get("status")?;
        state.progress = serde_json::from_str(&progress).unwrap_or_default();
        state.error = error.and_then(|e| serde_json::from_str(&e).ok());
        state.updated_at = Some(row.try_get("updated_at")?);
    }
    Ok(out)
}

pub async fn step_status(db: &Db, step: Step) -> Result<String> {
    let row = sqlx::query("SELECT status FROM cloudflare_steps WHERE step = $1")
        .bind(step.as_str())
        .fetch_optional(&db.pool)
        .await?;
    Ok(match row {
        Some(row) => row.try_get("status")?,
        None => "pending".into(),
    })
}

pub async fn set_step(
    db: &Db,
    step: Step,
    status: &str,
    progress: &[String],
    error: Option<&StepError>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO cloudflare_steps (step, status, progress, error, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (step) DO UPDATE SET status = $2, progress = $3, error = $4, updated_at = $5",
    )
    .bind(step.as_str())
    .bind(status)
    .bind(serde_json::to_string(progress).unwrap_or_else(|_| "[]".into()))
    .bind(error.map(|e| serde_json::to_string(e).unwrap_or_default()))
    .bind(db::now())
    .execute(&db.pool)
    .await?;
    Ok(())
}

pub async fn reset_steps(db: &Db, steps: &[Step]) -> Result<()> {
    for step in steps {
        sqlx::query("DELETE FROM cloudflare_steps WHERE step = $1")
            .bind(step.as_str())
            .execute(&db.pool)
            .await?;
    }
    Ok(())
}

/// The kinds of Cloudflare resource the wizard creates, in creation order.
pub const KINDS: [&str; 6] = [
    "tunnel",
    "vpc_service",
    "kv_namespace",
    "worker",
    "access_app",
    "access_policy",
];

/// A resource row: an intent (`id` None) or a created resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub kind: String,
    pub name: String,
    pub id: Option<String>,
    pub digest: Option<String>,
}

pub async fn resource(db: &Db, kind: &str) -> Result<Option<Resource>> {
    let row = sqlx::query(
        "SELECT kind, name, resource_id, digest FROM cloudflare_resources WHERE kind = $1",
    )
    .bind(kind)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|row| {
        Ok(Resource {
            kind: row.try_get("kind")?,
            name: row.try_get("name")?,
            id: row.try_get("resource_id")?,
            digest: row.try_get("digest")?,
        })
    })
    .transpose()
}

pub async fn resources(db: &Db) -> Result<Vec<Resource>> {
    let mut out = Vec::new();
    for kind in KINDS {
        if let Some(found) = resource(db, kind).await? {
            out.push(found);
        }
    }
    Ok(out)
}

/// The write-ahead intent: written before the create call.
pub async fn intend(db: &Db, kind: &str, name: &str) -> Result<()> {
    let now = db::now();
    sqlx::query(
        "INSERT INTO cloudflare_resources (kind, name, state, resource_id, digest, created_at, updated_at) \
         VALUES ($1, $2, 'creating', NULL, NULL, $3, $3) \
         ON CONFLICT (kind) DO UPDATE SET name = $2, state = 'creating', resource_id = NULL, digest = NULL, updated_at = $3",
    )
    .bind(kind)
    .bind(name)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The resource exists with this id (created, adopted or kept).
pub async fn record(db: &Db, kind: &str, name: &str, id: &str, digest: Option<&str>) -> Result<()> {
    let now = db::now();
    sqlx::query(
        "INSERT INTO cloudflare_resources (kind, name, state, resource_id, digest, created_at, updated_at) \
         VALUES ($1, $2, 'created', $3, $4, $5, $5) \
         ON CONFLICT (kind) DO UPDATE SET name = $2, state = 'created', resource_id = $3, digest = $4, updated_at = $5",
    )
    .bind(kind)
    .bind(name)
    .bind(id)
    .bind(digest)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(())
}

pub async fn forget(db: &Db, kind: &str) -> Result<()> {
    sqlx::query("DELETE FROM cloudflare_resources WHERE kind = $1")
        .bind(kind)
        .execute(&db.pool)
        .await?;
    Ok(())
}

fn aad(key: &str) -> String {
    format!("cloudflare:{key}")
}

/// Plain values (account id, team domain, URLs) and encrypted ones (`set_secret`).
pub async fn value(db: &Db, key: &str) -> Result<Option<String>> {
    let row = sqlx::query("SELECT value FROM cloudflare_values WHERE key = $1 AND encrypted = 0")
        .bind(key)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|row| row.try_get("value")).transpose()?)
}

async fn put(db: &Db, key: &str, value: &str, encrypted: bool) -> Result<()> {
    sqlx::query(
        "INSERT INTO cloudflare_values (key, value, encrypted, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key) DO UPDATE SET value = $2, encrypted = $3, updated_at = $4",
    )
    .bind(key)
    .bind(value)
    .bind(i64::from(encrypted))
    .bind(db::now())
    .execute(&db.pool)
    .await?;
    Ok(())
}

pub async fn set_value(db: &Db, key: &str, value: &str) -> Result<()> {
    put(db, key, value, false).await
}

pub async fn set_secret(db: &Db, keys: &Keyring, key: &str, value: &str) -> Result<()> {
    put(db, key, &keys.encrypt_to_string(value, &aad(key)), true).await
}

/// A secret, decrypted. One that no configured key opens is an internal error (the key changed
/// without a rotation): the admin runs the step again to replace it.
pub async fn secret(db: &Db, keys: &Keyring, key: &str) -> Result<Option<String>> {
    let row = sqlx::query("SELECT value FROM cloudflare_values WHERE key = $1 AND encrypted = 1")
        .bind(key)
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let stored: String = row.try_get("value")?;
    keys.decrypt_str(&stored, &aad(key))
        .map(Some)
        .map_err(|err| {
            crate::Error::Internal(anyhow::anyhow!(
                "the stored Cloudflare value {key} does not decrypt: {err}"
            ))
        })
}

pub async fn delete_values(db: &Db, keys: &[&str]) -> Result<()> {
    for key in keys {
        sqlx::query("DELETE FROM cloudflare_values WHERE key = $1")
            .bind(key)
            .execute(&db.pool)
            .await?;
    }
    Ok(())
}

/// Re-encrypts the wizard's secrets not under the current key (`mcpbox admin reencrypt`,
/// `rotation::rewrite`).
pub async fn reencrypt(
    db: &Db,
    keys: &Keyring,
    report: &mut crate::secrets::rotation::Reencrypted,
) -> Result<()> {
    let column = crate::secrets::rotation::Column {
        table: "cloudflare_values",
        id: "key",
        value: "value",
        only: "AND encrypted = 1",
    };
    crate::secrets::rotation::rewrite(db, keys, column, aad, report).await
}

pub async fn allowlist(db: &Db) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT entry FROM remote_allowed_emails ORDER BY entry")
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|row| Ok(row.try_get("entry")?)).collect()
}

/// Replaces the whole list in one transaction.
pub async fn set_allowlist(db: &Db, entries: &[String]) -> Result<()> {
    let now = db::now();
    let mut tx = db.pool.begin().await?;
    sqlx::query("DELETE FROM remote_allowed_emails")
        .execute(&mut *tx)
        .await?;
    for entry in entries {
        sqlx::query("INSERT INTO remote_allowed_emails (entry, created_at) VALUES ($1, $2)")
            .bind(entry)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
