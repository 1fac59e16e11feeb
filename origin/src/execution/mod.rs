//! Running approved tools, and the execution log.
//!
//! `run` is the one function that sends tool code to the sandbox: it takes an `Approved` (only
//! the call-time check makes one), adds the server's secrets, and records every run, failed or
//! not, with secrets redacted and sizes capped.

mod api;

pub(crate) use api::{LogBody, TestAnswer, openapi};

pub use api::router;

use contract::sandbox::{ErrorKind, ExecuteRequest, Limits, ToolError};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::app::AppState;
use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::tools::{Approved, Kind};
use rmcp::model::CallToolResult;

/// Results larger than this (as JSON text) are stored as a truncation marker.
pub const RESULT_LOG_BYTES: usize = 10 * 1024;
pub const STDOUT_LOG_BYTES: usize = 10 * 1024;
pub const ERROR_LOG_BYTES: usize = 5 * 1024;
/// Argument strings longer than this are cut in the log.
pub const ARGUMENT_STRING_LOG_CHARS: usize = 500;
pub const REDACTED: &str = "[REDACTED]";

/// Argument names whose values are always redacted in logs.
const SENSITIVE_KEYS: [&str; 14] = [
    "password",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "authorization",
    "auth",
    "credential",
    "private_key",
    "bearer",
    "cookie",
    "session",
    "key",
];

pub struct Outcome {
    pub ok: bool,
    pub result: Option<Value>,
    pub error: Option<ToolError>,
    pub stdout: String,
    pub duration_ms: u64,
    pub version: i64,
    pub log_id: String,
    /// A passthrough tool's answer as the external source gave it (redacted like `result`,
    /// which holds the same answer as JSON), so MCP clients get its content blocks unchanged.
    pub remote: Option<CallToolResult>,
}

/// Runs an approved version with `arguments` and logs it. A sandbox that cannot be reached is
/// an error (503) and is logged too; a tool that fails is an `Outcome` with `ok = false`.
pub async fn run(
    state: &AppState,
    approved: &Approved,
    arguments: Value,
    actor: &str,
    is_test: bool,
) -> Result<Outcome> {
    if !arguments.is_object() {
        return Err(Error::Validation("arguments must be a JSON object".into()));
    }
    // The reads a run needs are independent: issue them together (each is one round trip; on
    // the call path they were most of the origin's own latency).
    let access = async {
        match approved.kind {
            Kind::Python => tokio::try_join!(
                crate::access::allowed_modules(&state.db, &approved.server_id),
                crate::access::allowed_hosts(&state.db, &approved.server_id),
            )
            .map(Some),
            Kind::Passthrough => Ok(None),
        }
    };
    let (policy, secrets, access) = tokio::try_join!(
        crate::settings::policy(&state.db),
        crate::secrets::values(state, &approved.server_id),
        access,
    )?;
    let secret_values: Vec<String> = secrets.values().filter(|v| v.len() >= 4).cloned().collect();
    let started = std::time::Instant::now();
    let dispatched = match approved.kind {
        Kind::Python => {
            let (modules, hosts) = access.unwrap_or_default();
            execute(state, approved, &arguments, secrets, modules, hosts).await
        }
        Kind::Passthrough => crate::external::forward(state, approved, &arguments, &secrets, actor)
            .await
            .map(|remote| passthrough_response(remote, started)),
    };
    let (ok, result_text, error, stdout, duration_ms) = match dispatched {
        Ok(response) => (
            response.ok,
            response.result,
            response.error,
            response.stdout,
            response.duration_ms,
        ),
        Err(err) => {
            // Nothing answered (the sandbox or the external source is down): logged as a failed
            // run, and a clear error for the caller.
            let error = ToolError {
                kind: ErrorKind::Internal,
                message: redact_text(&err.to_string(), &secret_values),
                line: None,
            };
            let log = LogEntry::new(approved, &arguments, &secret_values, actor, is_test);
            log.write(
                &state.db,
                false,
                None,
                Some(&error),
                "",
                started.elapsed().as_millis() as u64,
            )
            .await?;
            // Sandbox failures are `Unavailable`; a passthrough call's own refusals (source not
            // approved, secret without a value) keep their kind; a down source is `Unavailable`
            // with its name. `forward` already took the source's credential out of the text.
            return Err(err);
        }
    };
    // Stored logs never hold a secret, whatever the tool did with it; what the caller gets is
    // redacted too unless the policy's `redact_secrets_in_output` is disabled.
    let redacted_result = result_text
        .as_deref()
        .map(|text| redact_text(text, &secret_values));
    let redacted_error = error.clone().map(|mut e| {
        e.message = redact_text(&e.message, &secret_values);
        e
    });
    let redacted_stdout = redact_text(&stdout, &secret_values);
    let log = LogEntry::new(approved, &arguments, &secret_values, actor, is_test);
    let log_id = log
        .write(
            &state.db,
            ok,
            redacted_result.as_deref(),
            redacted_error.as_ref(),
            &redacted_stdout,
            duration_ms,
        )
        .await?;
    state.activity.publish(crate::activity::Event::call(
        &log_id,
        actor,
        approved,
        ok,
        duration_ms,
    ));
    let (result_text, error, stdout) = if policy.redact_output() {
        (redacted_result, redacted_error, redacted_stdout)
    } else {
        (result_text, error, stdout)
    };
    let remote = match approved.kind {
        Kind::Passthrough => result_text
            .as_deref()
            .and_then(|text| serde_json::from_str::<CallToolResult>(text).ok()),
        Kind::Python => None,
    };
    let result = result_text.and_then(|text| serde_json::from_str(&text).ok());
    Ok(Outcome {
        remote,
        ok,
        result,
        error,
        stdout,
        duration_ms,
        version: approved.version,
        log_id,
    })
}

/// Sends a Python tool's run to the sandbox with the server's modules, hosts and secrets.
async fn execute(
    state: &AppState,
    approved: &Approved,
    arguments: &Value,
    secrets: std::collections::BTreeMap<String, String>,
    allowed_modules: Vec<String>,
    allowed_hosts: Vec<String>,
) -> Result<contract::sandbox::ExecuteResponse> {
    let request = ExecuteRequest {
        code: approved.code.clone(),
        arguments: arguments.to_string(),
        allowed_modules: Some(allowed_modules),
        allowed_hosts,
        secrets,
        limits: Limits {
            timeout_ms: approved.timeout_ms.max(1) as u64,
            ..Limits::default()
        },
    };
    state
        .sandbox
        .execute(request)
        .await
        .map_err(|err| Error::Unavailable(err.to_string()))
}

/// An external source's answer in the shape a sandbox run has: the whole `CallToolResult` as
/// the result, its text as the error when it is one.
fn passthrough_response(
    remote: CallToolResult,
    started: std::time::Instant,
) -> contract::sandbox::ExecuteResponse {
    let ok = remote.is_error != Some(true);
    let error = (!ok).then(|| {
        let text: Vec<&str> = remote
            .content
            .iter()
            .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
            .collect();
        ToolError {
            kind: ErrorKind::Runtime,
            message: if text.is_empty() {
                "the external tool reported an error without a message".to_owned()
            } else {
                text.join("\n")
            },
            line: None,
        }
    });
    contract::sandbox::ExecuteResponse {
        ok,
        result: serde_json::to_string(&remote).ok(),
        error,
        stdout: String::new(),
        duration_ms: started.elapsed().as_millis() as u64,
        stdout_truncated: false,
        usage: contract::sandbox::Usage::default(),
    }
}

/// A client's call that was refused before anything ran (no approved version, tool disabled,
/// server stopped, code changed since approval): logged as a failed call with the refusal, so
/// the execution log holds every call a client made to a tool. Arguments are redacted by
/// sensitive key names only (no secret value was decrypted for a refused call).
pub async fn log_refusal(
    state: &AppState,
    tool_id: &str,
    arguments: &Value,
    actor: &str,
    refusal: &Error,
) -> Result<String> {
    let tool = crate::tools::get(&state.db, tool_id).await?;
    let server = crate::servers::get(&state.db, &tool.server_id).await?;
    let entry = LogEntry {
        tool_id: &tool.id,
        server_id: &server.id,
        public_name: crate::names::public_name(&server.name, &tool.name),
        version: tool.current_version,
        arguments: redact_arguments(arguments, &[]).to_string(),
        actor,
        is_test: false,
    };
    let error = ToolError {
        kind: ErrorKind::Internal,
        message: format!("refused: {}", refusal.public_message()),
        line: None,
    };
    entry
        .write(&state.db, false, None, Some(&error), "", 0)
        .await
}

/// A test run (REST and MCP): the approved version, even on a stopped server or a disabled
/// tool; the newest version, draft or not, only when the policy approves tools automatically.
pub async fn test_run(
    state: &AppState,
    tool_id: &str,
    arguments: Value,
    actor: &str,
) -> Result<Outcome> {
    let purpose = if crate::settings::policy(&state.db)
        .await?
        .auto_approve_tools()
    {
        crate::tools::Purpose::TestNewest
    } else {
        crate::tools::Purpose::Test
    };
    let approved = crate::tools::runnable_for(&state.db, tool_id, purpose).await?;
    run(state, &approved, arguments, actor, true).await
}

/// Deletes execution logs older than the policy's `log_retention_days`; returns how many.
pub async fn apply_retention(db: &Db) -> Result<u64> {
    let days = crate::settings::policy(db).await?.log_retention_days;
    let cutoff = db::timestamp(chrono::Utc::now() - chrono::Duration::days(days));
    let deleted = sqlx::query("DELETE FROM execution_logs WHERE created_at < $1")
        .bind(cutoff)
        .execute(&db.pool)
        .await?;
    Ok(deleted.rows_affected())
}

/// Replaces every occurrence of a secret value.
pub fn redact_text(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

/// Arguments for the log: sensitive keys and secret values redacted, long strings cut.
pub fn redact_arguments(value: &Value, secrets: &[String]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| {
                    let lower = key.to_ascii_lowercase();
                    let sensitive = SENSITIVE_KEYS.iter().any(|word| lower.contains(word));
                    let item = if sensitive {
                        Value::String(REDACTED.into())
                    } else {
                        redact_arguments(item, secrets)
                    };
                    (key.clone(), item)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| redact_arguments(item, secrets))
                .collect(),
        ),
        Value::String(text) => {
            let text = redact_text(text, secrets);
            if text.chars().count() > ARGUMENT_STRING_LOG_CHARS {
                let cut: String = text.chars().take(ARGUMENT_STRING_LOG_CHARS).collect();
                Value::String(format!("{cut}… [cut]"))
            } else {
                Value::String(text)
            }
        }
        other => other.clone(),
    }
}

/// A result for the log: as is up to 10 KB, else an explicit marker with a preview.
pub fn cap_result(text: &str) -> String {
    if text.len() <= RESULT_LOG_BYTES {
        return text.to_owned();
    }
    let preview: String = text.chars().take(1000).collect();
    serde_json::json!({"_truncated": true, "_size_bytes": text.len(), "_preview": preview})
        .to_string()
}

fn cap(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated, {} bytes in all]", &text[..end], text.len())
}

struct LogEntry<'a> {
    tool_id: &'a str,
    server_id: &'a str,
    public_name: String,
    version: i64,
    arguments: String,
    actor: &'a str,
    is_test: bool,
}

impl<'a> LogEntry<'a> {
    fn new(
        approved: &'a Approved,
        arguments: &Value,
        secrets: &[String],
        actor: &'a str,
        is_test: bool,
    ) -> LogEntry<'a> {
        LogEntry {
            tool_id: &approved.tool_id,
            server_id: &approved.server_id,
            public_name: approved.public_name.clone(),
            version: approved.version,
            arguments: redact_arguments(arguments, secrets).to_string(),
            actor,
            is_test,
        }
    }

    async fn write(
        &self,
        db: &Db,
        ok: bool,
        result: Option<&str>,
        error: Option<&ToolError>,
        stdout: &str,
        duration_ms: u64,
    ) -> Result<String> {
        let id = db::new_id();
        let error_kind = error.map(|e| {
            serde_json::to_value(e.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        });
        sqlx::query(
            "INSERT INTO execution_logs (id, tool_id, server_id, tool_name, version, arguments, result, error, \
             error_kind, stdout, duration_ms, success, is_test, executed_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&id)
        .bind(self.tool_id)
        .bind(self.server_id)
        .bind(&self.public_name)
        .bind(self.version)
        .bind(&self.arguments)
        .bind(result.map(cap_result))
        .bind(error.map(|e| cap(&e.message, ERROR_LOG_BYTES)))
        .bind(error_kind)
        .bind(cap(stdout, STDOUT_LOG_BYTES))
        .bind(duration_ms as i64)
        .bind(i64::from(ok))
        .bind(i64::from(self.is_test))
        .bind(self.actor)
        .bind(db::now())
        .execute(&db.pool)
        .await?;
        Ok(id)
    }
}

#[derive(Debug, Clone)]
pub struct LogRow {
    pub id: String,
    pub tool_id: String,
    pub server_id: String,
    pub tool_name: String,
    pub version: i64,
    pub arguments: String,
    pub result: Option<String>,
    pub error: Option<String>,
    pub error_kind: Option<String>,
    pub stdout: String,
    pub duration_ms: i64,
    pub success: bool,
    pub is_test: bool,
    pub executed_by: String,
    pub created_at: String,
}

const LOG_COLUMNS: &str = "id, tool_id, server_id, tool_name, version, arguments, result, error, error_kind, stdout, \
     duration_ms, success, is_test, executed_by, created_at";

impl LogRow {
    fn from_row(row: &AnyRow) -> Result<LogRow> {
        Ok(LogRow {
            id: row.try_get("id")?,
            tool_id: row.try_get("tool_id")?,
            server_id: row.try_get("server_id")?,
            tool_name: row.try_get("tool_name")?,
            version: row.try_get("version")?,
            arguments: row.try_get("arguments")?,
            result: row.try_get("result")?,
            error: row.try_get("error")?,
            error_kind: row.try_get("error_kind")?,
            stdout: row.try_get("stdout")?,
            duration_ms: row.try_get("duration_ms")?,
            success: row.try_get::<i64, _>("success")? != 0,
            is_test: row.try_get::<i64, _>("is_test")? != 0,
            executed_by: row.try_get("executed_by")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

#[derive(Debug, Default)]
pub struct LogFilter {
    pub tool_id: Option<String>,
    pub server_id: Option<String>,
    pub success: Option<bool>,
    /// Only the calls of this actor: what a remote MCP caller may read of the log is its own
    /// calls, never another user's arguments (`gateway::management`).
    pub executed_by: Option<String>,
}

/// The WHERE clause for a filter (plus extra conditions), with its string binds in order.
fn where_clause(
    filter: &LogFilter,
    mut binds: Vec<String>,
    mut clauses: Vec<String>,
) -> (String, Vec<String>) {
    if let Some(tool) = &filter.tool_id {
        binds.push(tool.clone());
        clauses.push(format!("tool_id = ${}", binds.len()));
    }
    if let Some(server) = &filter.server_id {
        binds.push(server.clone());
        clauses.push(format!("server_id = ${}", binds.len()));
    }
    if let Some(success) = filter.success {
        clauses.push(format!("success = {}", i64::from(success)));
    }
    if let Some(actor) = &filter.executed_by {
        binds.push(actor.clone());
        clauses.push(format!("executed_by = ${}", binds.len()));
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (sql, binds)
}

async fn fetch_logs(
    db: &Db,
    sql: &str,
    binds: &[String],
    limit: i64,
    offset: Option<i64>,
) -> Result<Vec<LogRow>> {
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(bind);
    }
    query = query.bind(limit);
    if let Some(offset) = offset {
        query = query.bind(offset);
    }
    query
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(LogRow::from_row)
        .collect()
}

/// Newest first, with optional filters, by page number (with the total).
pub async fn logs(
    db: &Db,
    filter: &LogFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<LogRow>, i64)> {
    let (where_sql, binds) = where_clause(filter, Vec::new(), Vec::new());
    let n = binds.len();
    let sql = format!(
        "SELECT {LOG_COLUMNS} FROM execution_logs {where_sql} ORDER BY created_at DESC, id DESC LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    let rows = fetch_logs(db, &sql, &binds, limit, Some(offset)).await?;
    let count_sql = format!("SELECT COUNT(*) AS n FROM execution_logs {where_sql}");
    let mut count = sqlx::query(&count_sql);
    for bind in &binds {
        count = count.bind(bind);
    }
    let total: i64 = count.fetch_one(&db.pool).await?.try_get("n")?;
    Ok((rows, total))
}

/// A position in the log, newest first: the last row a page ended on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: String,
    pub id: String,
}

impl Cursor {
    /// Opaque to clients: `created_at~id`.
    pub fn encode(&self) -> String {
        format!("{}~{}", self.created_at, self.id)
    }

    pub fn decode(text: &str) -> Result<Cursor> {
        let (created_at, id) = text
            .split_once('~')
            .filter(|(at, id)| !at.is_empty() && !id.is_empty())
            .ok_or_else(|| {
                Error::Validation("invalid cursor (use next_cursor from the previous page)".into())
            })?;
        Ok(Cursor {
            created_at: created_at.to_owned(),
            id: id.to_owned(),
        })
    }
}

/// Newest first after `cursor` (keyset paging: as fast on the millionth row as on the first).
/// Returns the rows and the cursor of the next page, if there is one.
pub async fn logs_after(
    db: &Db,
    filter: &LogFilter,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<(Vec<LogRow>, Option<Cursor>)> {
    let (binds, clauses) = match cursor {
        Some(cursor) => (
            vec![cursor.created_at.clone(), cursor.id.clone()],
            // A row-value comparison: both backends turn it into a range scan of the
            // (created_at, id) index (the equivalent OR form is a scan).
            vec!["(created_at, id) < ($1, $2)".to_owned()],
        ),
        None => (Vec::new(), Vec::new()),
    };
    let (where_sql, binds) = where_clause(filter, binds, clauses);
    let sql = format!(
        "SELECT {LOG_COLUMNS} FROM execution_logs {where_sql} ORDER BY created_at DESC, id DESC LIMIT ${}",
        binds.len() + 1
    );
    let rows = fetch_logs(db, &sql, &binds, limit, None).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| {
            rows.last().map(|row| Cursor {
                created_at: row.created_at.clone(),
                id: row.id.clone(),
            })
        })
        .flatten();
    Ok((rows, next))
}

pub async fn log(db: &Db, id: &str) -> Result<LogRow> {
    let row = sqlx::query(&format!(
        "SELECT {LOG_COLUMNS} FROM execution_logs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| Error::NotFound("no execution log with that id".into()))?;
    LogRow::from_row(&row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_redacted_and_cut() {
        let secrets = vec!["hunter2-secret".to_owned()];
        let args = serde_json::json!({
            "city": "Oslo",
            "api_key": "abc",
            "nested": {"Authorization": "Bearer x", "note": "my pw is hunter2-secret!"},
            "list": ["hunter2-secret", "x".repeat(600)],
        });
        let logged = redact_arguments(&args, &secrets);
        assert_eq!(logged["city"], "Oslo");
        assert_eq!(logged["api_key"], REDACTED);
        assert_eq!(logged["nested"]["Authorization"], REDACTED);
        assert_eq!(logged["nested"]["note"], "my pw is [REDACTED]!");
        assert_eq!(logged["list"][0], REDACTED);
        assert!(logged["list"][1].as_str().unwrap().ends_with("… [cut]"));
    }

    #[test]
    fn large_results_get_an_explicit_marker() {
        assert_eq!(cap_result("[1,2]"), "[1,2]");
        let big = format!("\"{}\"", "y".repeat(20_000));
        let capped: Value = serde_json::from_str(&cap_result(&big)).unwrap();
        assert_eq!(capped["_truncated"], true);
        assert_eq!(capped["_size_bytes"], 20_002);
        assert_eq!(capped["_preview"].as_str().unwrap().chars().count(), 1000);
        assert!(cap(&"é".repeat(10), 5).starts_with("éé…"));
    }
}
