//! Approvals, bound to tool versions.
//!
//! States of a version: `draft` → (`request_publish`) → `pending_review` → `approved` or
//! `rejected`; an `approved` version can be `revoked`. A person approves only a version pending
//! review, and a decision binds to the version the reviewer saw: it names the version, or
//! (without one) resolves to the tool's single version pending review, never to the newest
//! draft (`for_review`). Only the policy in auto mode approves a draft, and only the exact
//! version it was given. Every transition is one conditional
//! UPDATE written in the same transaction as its activity-log row, so it is atomic, a race cannot
//! apply it twice, and no change goes unrecorded. Reviewing needs a `Reviewer`, which only a
//! signed-in approver or admin (or the policy in auto mode) can be: no path from MCP (the LLM)
//! can approve anything.

mod api;

pub(crate) use api::openapi;

pub use api::router;

use sqlx::Row;

use crate::activity::{self, Audit, Audited, NewEvent};
use crate::app::AppState;
use crate::auth::Role;
use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::tools::{self, VERSION_COLUMNS, Version};

pub const REASON_MAX: usize = 1000;

/// A person (or the policy) allowed to review, with the audit context of the request.
pub struct Reviewer(Audit);

impl Reviewer {
    /// A signed-in approver or admin.
    pub fn from_audited(audited: &Audited) -> Result<Reviewer> {
        audited.auth.require(Role::Approver)?;
        Ok(Reviewer(audited.audit.clone()))
    }

    /// The policy itself, when `tool_approval_mode` or `module_approval_mode` is `auto_approve`.
    /// Crate-private: nothing a client sends can produce it.
    pub(crate) fn policy(request_id: Option<String>) -> Reviewer {
        Reviewer(Audit::policy(request_id))
    }

    pub fn name(&self) -> &str {
        &self.0.actor
    }

    pub fn audit(&self) -> &Audit {
        &self.0
    }
}

/// Under `tool_approval_mode = auto_approve`, approves `version` at once (a new draft, or a
/// request for review). Returns the approved version, or `None` under `require_approval`.
pub async fn auto_approve(
    state: &AppState,
    tool_id: &str,
    version: i64,
    request_id: Option<String>,
) -> Result<Option<Version>> {
    if !crate::settings::policy(&state.db)
        .await?
        .auto_approve_tools()
    {
        return Ok(None);
    }
    // Auto mode means no review: the draft (or pending version) just written is approved as
    // it is, bound to its number.
    approve_exact(
        state,
        tool_id,
        version,
        &["draft", "pending_review"],
        &Reviewer::policy(request_id),
    )
    .await
    .map(Some)
}

/// The version an author's request applies to: the one named, or the tool's newest.
async fn resolve(db: &Db, tool_id: &str, version: Option<i64>) -> Result<i64> {
    match version {
        Some(version) => Ok(version),
        None => Ok(tools::get(db, tool_id).await?.current_version),
    }
}

/// The version a reviewer's decision applies to: the one named, or else the tool's only
/// version pending review (what the queue listed). Never the newest version: an LLM can write
/// a new draft between the listing and the decision.
async fn for_review(db: &Db, tool_id: &str, version: Option<i64>) -> Result<i64> {
    if let Some(version) = version {
        return Ok(version);
    }
    let tool = tools::get(db, tool_id).await?;
    let rows = sqlx::query(
        "SELECT version FROM tool_versions WHERE tool_id = $1 AND status = 'pending_review' \
         ORDER BY version",
    )
    .bind(tool_id)
    .fetch_all(&db.pool)
    .await?;
    let pending = rows
        .iter()
        .map(|row| row.try_get::<i64, _>("version"))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    match pending.as_slice() {
        [only] => Ok(*only),
        [] => {
            let newest = tools::version(db, tool_id, tool.current_version).await?;
            Err(Error::Conflict(format!(
                "no version of {:?} is pending review (its newest, version {}, is {}): only a \
                 version submitted for review can be decided without naming it",
                tool.name,
                tool.current_version,
                status_words(&newest.status)
            )))
        }
        several => Err(Error::Conflict(format!(
            "versions {} of {:?} are pending review: name the version you reviewed",
            several
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            tool.name
        ))),
    }
}

/// One transition: `UPDATE … WHERE status IN (from)` plus its activity row, in a transaction;
/// explains a refusal.
struct Transition<'a> {
    tool_id: &'a str,
    version: i64,
    from: &'a [&'a str],
    set: &'a str,
    binds: Vec<Option<String>>,
    verb: &'a str,
    event: &'a str,
    reason: Option<&'a str>,
}

async fn transition(state: &AppState, audit: &Audit, t: Transition<'_>) -> Result<Version> {
    let allowed = t
        .from
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE tool_versions SET {} WHERE tool_id = ${} AND version = ${} AND status IN ({allowed}) RETURNING {VERSION_COLUMNS}",
        t.set,
        t.binds.len() + 1,
        t.binds.len() + 2
    );
    let mut tx = state.db.pool.begin().await?;
    let mut query = sqlx::query(&sql);
    for value in t.binds {
        query = query.bind(value);
    }
    let updated = query
        .bind(t.tool_id)
        .bind(t.version)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = updated else {
        drop(tx);
        let current = tools::version(&state.db, t.tool_id, t.version).await?;
        let hint = if current.status == "draft" && !t.from.contains(&"draft") {
            "; a draft must first be submitted for review (mcpbox_request_publish, or an admin's \
             submit_for_review)"
        } else {
            ""
        };
        return Err(Error::Conflict(format!(
            "cannot {} version {}: it is {} (it must be {}){hint}",
            t.verb,
            t.version,
            status_words(&current.status),
            t.from
                .iter()
                .map(|s| status_words(s))
                .collect::<Vec<_>>()
                .join(" or ")
        )));
    };
    let version = Version::from_row(&row)?;
    let tool = sqlx::query("SELECT name, server_id FROM tools WHERE id = $1")
        .bind(t.tool_id)
        .fetch_one(&mut *tx)
        .await?;
    let (name, server_id): (String, String) = (tool.try_get("name")?, tool.try_get("server_id")?);
    let event = NewEvent::info(t.event, format!("{}: version {} of {name} is now {}", t.event, version.version, activity::status_words(&version.status)))
        .server(&server_id)
        .tool(t.tool_id)
        .details(serde_json::json!({"version": version.version, "status": version.status, "reason": t.reason}));
    let recorded = activity::record(&mut *tx, audit, event).await?;
    tx.commit().await?;
    state.activity.publish(recorded);
    Ok(version)
}

/// A status as a sentence says it.
fn status_words(status: &str) -> &str {
    match status {
        "draft" => "a draft",
        "pending_review" => "pending review",
        other => other,
    }
}

/// The author asks for review (MCP `request_publish`, or an admin's `submit_for_review`).
pub async fn request_publish(
    state: &AppState,
    tool_id: &str,
    version: Option<i64>,
    notes: Option<&str>,
    audit: &Audit,
) -> Result<Version> {
    let version = resolve(&state.db, tool_id, version).await?;
    let notes: Option<String> = notes.map(|n| n.chars().take(REASON_MAX).collect());
    let pending = transition(
        state,
        audit,
        Transition {
            tool_id,
            version,
            from: &["draft", "rejected"],
            set: "status = 'pending_review', requested_at = $1, publish_notes = $2, rejection_reason = NULL",
            binds: vec![Some(db::now()), notes],
            verb: "request review of",
            event: "tool.request_publish",
            reason: None,
        },
    )
    .await?;
    Ok(
        auto_approve(state, tool_id, pending.version, audit.request_id.clone())
            .await?
            .unwrap_or(pending),
    )
}

/// A person's approval: of the version named, or of the only version pending review; only a
/// version pending review can be approved (a draft was never put up for review).
pub async fn approve(
    state: &AppState,
    tool_id: &str,
    version: Option<i64>,
    reviewer: &Reviewer,
) -> Result<Version> {
    let version = for_review(&state.db, tool_id, version).await?;
    approve_exact(state, tool_id, version, &["pending_review"], reviewer).await
}

async fn approve_exact(
    state: &AppState,
    tool_id: &str,
    version: i64,
    from: &[&str],
    reviewer: &Reviewer,
) -> Result<Version> {
    // The modules and hosts in force at approval, recorded with it.
    let server_id = tools::get(&state.db, tool_id).await?.server_id;
    let modules = crate::access::allowed_modules(&state.db, &server_id).await?;
    let hosts = crate::access::allowed_hosts(&state.db, &server_id).await?;
    let modules = serde_json::to_string(&modules).map_err(|e| Error::Internal(e.into()))?;
    let hosts = serde_json::to_string(&hosts).map_err(|e| Error::Internal(e.into()))?;
    transition(
        state,
        reviewer.audit(),
        Transition {
            tool_id,
            version,
            from,
            set: "status = 'approved', reviewed_by = $1, reviewed_at = $2, rejection_reason = NULL, approved_modules = $3, approved_hosts = $4",
            binds: vec![Some(reviewer.name().to_owned()), Some(db::now()), Some(modules), Some(hosts)],
            verb: "approve",
            event: "tool.approve",
            reason: None,
        },
    )
    .await
}

pub async fn reject(
    state: &AppState,
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
    let version = for_review(&state.db, tool_id, version).await?;
    transition(
        state,
        reviewer.audit(),
        Transition {
            tool_id,
            version,
            from: &["pending_review", "draft"],
            set: "status = 'rejected', reviewed_by = $1, reviewed_at = $2, rejection_reason = $3",
            binds: vec![
                Some(reviewer.name().to_owned()),
                Some(db::now()),
                Some(reason.to_owned()),
            ],
            verb: "reject",
            event: "tool.reject",
            reason: Some(reason),
        },
    )
    .await
}

/// Takes an approval back: the version stops running at once (an older approved one, if any,
/// runs instead).
pub async fn revoke(
    state: &AppState,
    tool_id: &str,
    version: Option<i64>,
    reviewer: &Reviewer,
) -> Result<Version> {
    let version = match version {
        Some(version) => version,
        None => tools::approved_version(&state.db, tool_id)
            .await?
            .ok_or_else(|| Error::Conflict("the tool has no approved version to revoke".into()))?,
    };
    transition(
        state,
        reviewer.audit(),
        Transition {
            tool_id,
            version,
            from: &["approved"],
            set: "status = 'revoked', reviewed_by = $1, reviewed_at = $2",
            binds: vec![Some(reviewer.name().to_owned()), Some(db::now())],
            verb: "revoke",
            event: "tool.revoke",
            reason: None,
        },
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
