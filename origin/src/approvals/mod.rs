//! Approvals, bound to tool versions.
//!
//! States of a version: `draft` → (`request_publish`) → `pending_review` → `approved` or
//! `rejected`; an `approved` version can be `revoked`. Every transition is one conditional
//! UPDATE, so it is atomic and a race cannot apply it twice. Reviewing needs a `Reviewer`, which
//! only a signed-in approver or admin can be: no path from MCP (the LLM) can approve anything.

mod api;

pub use api::router;

use sqlx::Row;

use crate::auth::{AuthUser, Role};
use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::tools::{self, VERSION_COLUMNS, Version};

pub const REASON_MAX: usize = 1000;

/// A person allowed to review. Only `from_auth` builds one.
pub struct Reviewer(String);

impl Reviewer {
    pub fn from_auth(auth: &AuthUser) -> Result<Reviewer> {
        auth.require(Role::Approver)?;
        Ok(Reviewer(auth.user().username.clone()))
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// The policy itself, when `tool_approval_mode` or `module_approval_mode` is `auto_approve`.
    /// Private to approvals and access: nothing a client sends can produce it.
    pub(crate) fn policy() -> Reviewer {
        Reviewer("auto_approve".to_owned())
    }
}

/// Under `tool_approval_mode = auto_approve`, approves `version` at once (a new draft, or a
/// request for review). Returns the approved version, or `None` under `require_approval`.
pub async fn auto_approve(db: &Db, tool_id: &str, version: i64) -> Result<Option<Version>> {
    if !crate::settings::policy(db).await?.auto_approve_tools() {
        return Ok(None);
    }
    approve(db, tool_id, Some(version), &Reviewer::policy())
        .await
        .map(Some)
}

/// The version an action applies to: the one named, or the tool's newest.
async fn resolve(db: &Db, tool_id: &str, version: Option<i64>) -> Result<i64> {
    match version {
        Some(version) => Ok(version),
        None => Ok(tools::get(db, tool_id).await?.current_version),
    }
}

/// Runs a transition `UPDATE … WHERE status IN (from)`; explains a refusal.
async fn transition(
    db: &Db,
    tool_id: &str,
    version: i64,
    from: &[&str],
    set: &str,
    binds: Vec<Option<String>>,
    action: &str,
) -> Result<Version> {
    let allowed = from
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE tool_versions SET {set} WHERE tool_id = ${} AND version = ${} AND status IN ({allowed}) RETURNING {VERSION_COLUMNS}",
        binds.len() + 1,
        binds.len() + 2
    );
    let mut query = sqlx::query(&sql);
    for value in binds {
        query = query.bind(value);
    }
    let updated = query
        .bind(tool_id)
        .bind(version)
        .fetch_optional(&db.pool)
        .await?;
    match updated {
        Some(row) => Version::from_row(&row),
        None => {
            let current = tools::version(db, tool_id, version).await?;
            Err(Error::Conflict(format!(
                "cannot {action} version {version}: it is {} (only {} can be)",
                current.status,
                from.join(" or ")
            )))
        }
    }
}

/// The author asks for review (MCP `request_publish`, or an admin's `submit_for_review`).
pub async fn request_publish(
    db: &Db,
    tool_id: &str,
    version: Option<i64>,
    notes: Option<&str>,
) -> Result<Version> {
    let version = resolve(db, tool_id, version).await?;
    let notes: Option<String> = notes.map(|n| n.chars().take(REASON_MAX).collect());
    let pending = transition(
        db,
        tool_id,
        version,
        &["draft", "rejected"],
        "status = 'pending_review', requested_at = $1, publish_notes = $2, rejection_reason = NULL",
        vec![Some(db::now()), notes],
        "request review of",
    )
    .await?;
    Ok(auto_approve(db, tool_id, pending.version)
        .await?
        .unwrap_or(pending))
}

pub async fn approve(
    db: &Db,
    tool_id: &str,
    version: Option<i64>,
    reviewer: &Reviewer,
) -> Result<Version> {
    let version = resolve(db, tool_id, version).await?;
    // The modules and hosts in force at approval, recorded with it.
    let server_id = tools::get(db, tool_id).await?.server_id;
    let modules = crate::access::allowed_modules(db, &server_id).await?;
    let hosts = crate::access::allowed_hosts(db, &server_id).await?;
    let modules = serde_json::to_string(&modules).map_err(|e| Error::Internal(e.into()))?;
    let hosts = serde_json::to_string(&hosts).map_err(|e| Error::Internal(e.into()))?;
    transition(
        db,
        tool_id,
        version,
        &["draft", "pending_review", "rejected"],
        "status = 'approved', reviewed_by = $1, reviewed_at = $2, rejection_reason = NULL, approved_modules = $3, approved_hosts = $4",
        vec![Some(reviewer.name().to_owned()), Some(db::now()), Some(modules), Some(hosts)],
        "approve",
    )
    .await
}

pub async fn reject(
    db: &Db,
    tool_id: &str,
    version: Option<i64>,
    reason: &str,
    reviewer: &Reviewer,
) -> Result<Version> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::Validation(
            "rejecting needs a reason the author can act on".into(),
        ));
    }
    if reason.chars().count() > REASON_MAX {
        return Err(Error::Validation(format!(
            "the reason is longer than {REASON_MAX} characters"
        )));
    }
    let version = resolve(db, tool_id, version).await?;
    transition(
        db,
        tool_id,
        version,
        &["pending_review", "draft"],
        "status = 'rejected', reviewed_by = $1, reviewed_at = $2, rejection_reason = $3",
        vec![
            Some(reviewer.name().to_owned()),
            Some(db::now()),
            Some(reason.to_owned()),
        ],
        "reject",
    )
    .await
}

/// Takes an approval back: the version stops running at once (an older approved one, if any,
/// runs instead).
pub async fn revoke(
    db: &Db,
    tool_id: &str,
    version: Option<i64>,
    reviewer: &Reviewer,
) -> Result<Version> {
    let version = match version {
        Some(version) => version,
        None => tools::approved_version(db, tool_id)
            .await?
            .ok_or_else(|| Error::Conflict("the tool has no approved version to revoke".into()))?,
    };
    transition(
        db,
        tool_id,
        version,
        &["approved"],
        "status = 'revoked', reviewed_by = $1, reviewed_at = $2",
        vec![Some(reviewer.name().to_owned()), Some(db::now())],
        "revoke",
    )
    .await
}

pub struct QueueItem {
    pub tool_id: String,
    pub tool_name: String,
    pub server_id: String,
    pub server_name: String,
    pub version: Version,
}

/// Versions by status (`None` = every status), oldest request first.
pub async fn queue(
    db: &Db,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<QueueItem>, i64)> {
    let filter = if status.is_some() {
        "WHERE v.status = $3"
    } else {
        ""
    };
    let columns = VERSION_COLUMNS
        .split(", ")
        .map(|c| format!("v.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT {columns}, t.name AS tool_name, s.id AS server_id, s.name AS server_name \
         FROM tool_versions v JOIN tools t ON t.id = v.tool_id JOIN servers s ON s.id = t.server_id \
         {filter} ORDER BY COALESCE(v.requested_at, v.created_at), v.tool_id, v.version LIMIT $1 OFFSET $2"
    );
    let mut query = sqlx::query(&sql).bind(limit).bind(offset);
    if let Some(status) = status {
        query = query.bind(status);
    }
    let rows = query.fetch_all(&db.pool).await?;
    let count_sql = format!(
        "SELECT COUNT(*) AS n FROM tool_versions v {}",
        filter.replace("$3", "$1")
    );
    let mut count = sqlx::query(&count_sql);
    if let Some(status) = status {
        count = count.bind(status);
    }
    let total: i64 = count.fetch_one(&db.pool).await?.try_get("n")?;
    let items = rows
        .iter()
        .map(|row| {
            Ok(QueueItem {
                tool_id: row.try_get("tool_id")?,
                tool_name: row.try_get("tool_name")?,
                server_id: row.try_get("server_id")?,
                server_name: row.try_get("server_name")?,
                version: Version::from_row(row)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok((items, total))
}

/// Number of versions in each status.
pub async fn stats(db: &Db) -> Result<Vec<(String, i64)>> {
    let rows = sqlx::query(
        "SELECT status, COUNT(*) AS n FROM tool_versions GROUP BY status ORDER BY status",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("status")?, row.try_get("n")?)))
        .collect()
}
