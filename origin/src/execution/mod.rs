//! Running approved tools, and the execution log.
//!
//! `run` is the one function that sends tool code to the sandbox: it takes an `Approved` (only
//! the call-time check makes one), adds the server's secrets, and records every run, failed or
//! not, with secrets redacted (`redact::Redactor`, on values, before anything is serialised or
//! cut) and sizes capped.

mod api;
mod cancel;
mod content;
mod detail;
mod redact;
pub mod rounds;

pub(crate) use api::{LogBody, TestAnswer, openapi};

pub use api::router;
use cancel::{CancelGuard, PendingLog};
pub use content::mcp_blocks;
pub use detail::ErrorDetail;
use detail::redact_error;
pub use redact::{REDACTED, Redactor};

use contract::sandbox::{ErrorKind, ExecuteRequest, InputContext, Limits, ToolError};
use rounds::{Asked, Round};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::app::AppState;
use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::metrics::CallOutcome;
use crate::tools::{Approved, Kind};
use rmcp::model::CallToolResult;

/// Results larger than this (as JSON text) are stored as a truncation marker.
pub const RESULT_LOG_BYTES: usize = 10 * 1024;
pub const STDOUT_LOG_BYTES: usize = 10 * 1024;
pub const ERROR_LOG_BYTES: usize = 5 * 1024;
/// Argument strings longer than this are cut in the log.
pub const ARGUMENT_STRING_LOG_CHARS: usize = 500;

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
    /// Rich result blocks (`content::mcp_blocks`); `result` holds their markers.
    pub content: Vec<contract::sandbox::ContentBlock>,
    /// The run ended asking the client (`rounds`): `ok` is false, `result` and `error` are
    /// absent. Its requests are redacted like a result when the policy redacts output.
    pub asked: Option<Asked>,
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
    run_observed(state, approved, arguments, actor, is_test, None, None).await
}

/// `run`, handing the tool's progress reports to `progress`. Dropping the future midway (the
/// caller cancelled or went away) kills the worker (`dispatch`) and logs the run as
/// `cancelled` (`CancelGuard`).
// The span is here, not on `run`: the gateway calls this directly (for progress).
#[tracing::instrument(name = "run", skip_all, fields(
    mcpbox.server = %approved.server_name,
    mcpbox.tool = %approved.tool_name,
    mcpbox.version = approved.version,
    mcpbox.test = is_test,
    mcpbox.ok = tracing::field::Empty,
    mcpbox.round = round.map_or(1, |round| round.number),
))]
// A call's facts, its caller, and what observes it: one parameter each, none a flag to split on.
#[allow(clippy::too_many_arguments)]
pub async fn run_observed(
    state: &AppState,
    approved: &Approved,
    arguments: Value,
    actor: &str,
    is_test: bool,
    progress: Option<tokio::sync::mpsc::Sender<contract::sandbox::Progress>>,
    // The round of a call whose client can be asked (`rounds`); `None`: nobody to ask.
    round: Option<&Round>,
) -> Result<Outcome> {
    if !arguments.is_object() {
        return Err(Error::Validation("arguments must be a JSON object".into()));
    }
    // A prompt's or resource's content is never code: whatever path asked, it does not run.
    if !approved.kind.is_tool() {
        return Err(Error::Validation(format!(
            "{:?} is a {}, not a tool: it cannot be called",
            approved.tool_name,
            approved.kind.as_str()
        )));
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
            Kind::Passthrough | Kind::Prompt | Kind::Resource => Ok(None),
        }
    };
    let (policy, secrets, access) = tokio::try_join!(
        crate::settings::policy(&state.db),
        crate::secrets::values(state, &approved.server_id),
        access,
    )?;
    // Every value is redacted, however short; values too short to redact reliably are refused
    // when set (`secrets::set_value`), and older ones are named here so an admin replaces them.
    let short: Vec<&str> = crate::secrets::too_short(&secrets).collect();
    if !short.is_empty() {
        tracing::warn!(
            server_id = approved.server_id,
            keys = ?short,
            "server secrets shorter than {} bytes: redacting them mangles output and may miss \
             them; set longer values",
            crate::secrets::MIN_VALUE_BYTES
        );
    }
    let redactor = Redactor::new(secrets.values().map(String::as_str));
    let started = std::time::Instant::now();
    let input_log = InputLog::of(round, &redactor);
    let mut guard = CancelGuard {
        state: state.clone(),
        log: Some(PendingLog::new(
            approved,
            &arguments,
            &redactor,
            actor,
            is_test,
            input_log.clone(),
        )),
        started,
    };
    let dispatched = match approved.kind {
        Kind::Python => {
            let (modules, hosts) = access.unwrap_or_default();
            let input = round.map(|round| InputContext {
                answers: Value::Object(round.answers.clone()).to_string(),
                capabilities: round.capabilities.clone(),
            });
            execute(
                state, approved, &arguments, secrets, modules, hosts, progress, input,
            )
            .await
        }
        Kind::Passthrough => crate::external::forward(state, approved, &arguments, &secrets, actor)
            .await
            .map(|remote| passthrough_response(remote, started)),
        // Refused at the top of this function.
        Kind::Prompt | Kind::Resource => Err(Error::Internal(anyhow::anyhow!(
            "a {} reached the sandbox path",
            approved.kind.as_str()
        ))),
    };
    guard.log = None;
    let elapsed = started.elapsed();
    // Counted here, before the log write, so a call is counted even if logging it fails.
    // Test runs are a person or an LLM trying a tool, not a client's call: not counted.
    if !is_test {
        let outcome = match &dispatched {
            Ok(response) if response.input_required.is_some() => CallOutcome::InputRequired,
            Ok(response) if response.ok => CallOutcome::Ok,
            Ok(response) => match response.error.as_ref().map(|error| error.kind) {
                Some(ErrorKind::Timeout) => CallOutcome::Timeout,
                _ => CallOutcome::Error,
            },
            Err(Error::Unavailable(_)) => CallOutcome::Unavailable,
            // A passthrough call's own refusals (source not approved, secret without a value).
            Err(_) => CallOutcome::Refused,
        };
        state.metrics.tool_call(
            &approved.server_name,
            &approved.tool_name,
            outcome,
            Some(elapsed),
        );
    }
    let response = match dispatched {
        Ok(response) => response,
        Err(err) => {
            // Nothing answered (the sandbox or the external source is down): logged as a failed
            // run, and a clear error for the caller.
            let error = ToolError::new(ErrorKind::Internal, redactor.text(&err.to_string()));
            let mut log = LogEntry::new(approved, &arguments, &redactor, actor, is_test);
            log.input = input_log;
            log.write(
                &state.db,
                false,
                None,
                Some(&error),
                "",
                elapsed.as_millis() as u64,
            )
            .await?;
            // Sandbox failures are `Unavailable`; a passthrough call's own refusals (source not
            // approved, secret without a value) keep their kind; a down source is `Unavailable`
            // with its name. `forward` already took the source's credential out of the text.
            return Err(err);
        }
    };
    let ok = response.ok;
    let mut content = response.content;
    tracing::Span::current().record("mcpbox.ok", ok);
    let duration_ms = response.duration_ms;
    // The result travels as JSON text: redacted as a value (its strings, keys and numbers), so
    // a secret with a quote, a backslash or a control character, escaped in that text, is found
    // too. Text that is not JSON (never from the sandbox) is redacted as text for the log.
    let result: Option<Value> = response
        .result
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok());
    let redacted_result = result.clone().map(|value| redactor.value(value));
    let logged_result = match (&redacted_result, &response.result) {
        (Some(value), _) => Some(value.to_string()),
        (None, Some(text)) => Some(redactor.text(text)),
        (None, None) => None,
    };
    let redacted_error = response
        .error
        .clone()
        .map(|error| redact_error(&redactor, error.with_known_category()));
    // The sandbox caps stdout and may have cut it inside a secret.
    let redacted_stdout = if response.stdout_truncated {
        redactor.cut_text(&response.stdout)
    } else {
        redactor.text(&response.stdout)
    };
    // The questions a round ended with come from the tool like a result: redacted alike.
    let asked = match response.input_required.as_ref().map(asked_of).transpose() {
        Ok(asked) => asked,
        Err(message) => {
            return Err(Error::Internal(anyhow::anyhow!(message)));
        }
    };
    let redacted_asked = asked.clone().map(|asked| Asked {
        requests: match redactor.value(Value::Object(asked.requests)) {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        },
        asked: asked.asked,
    });
    // Stored logs never hold a secret, whatever the tool did with it; what the caller gets is
    // redacted too unless the policy's `redact_secrets_in_output` is disabled.
    let mut log = LogEntry::new(approved, &arguments, &redactor, actor, is_test);
    log.input = input_log;
    log.input.requests = redacted_asked
        .as_ref()
        .map(|asked| cap_result(&Value::Object(asked.requests.clone()).to_string()));
    // A round that ended asking did not fail: `success` stays 1 (the dashboard counts
    // failures), and `input_requests` tells it apart from a completed run.
    let log_id = log
        .write(
            &state.db,
            ok || asked.is_some(),
            logged_result.as_deref(),
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
    let (result, error, stdout, asked) = if policy.redact_output() {
        content = content::redact(&redactor, content);
        (
            redacted_result,
            redacted_error,
            redacted_stdout,
            redacted_asked,
        )
    } else {
        (
            result,
            response.error.map(ToolError::with_known_category),
            response.stdout,
            asked,
        )
    };
    let remote = match approved.kind {
        Kind::Passthrough => result
            .clone()
            .and_then(|value| serde_json::from_value::<CallToolResult>(value).ok()),
        Kind::Python | Kind::Prompt | Kind::Resource => None,
    };
    Ok(Outcome {
        asked,
        remote,
        content,
        ok,
        result,
        error,
        stdout,
        duration_ms,
        version: approved.version,
        log_id,
    })
}

/// The requests of a run that ended asking, as the sandbox sent them.
fn asked_of(pending: &contract::sandbox::InputRequired) -> std::result::Result<Asked, String> {
    match serde_json::from_str(&pending.requests) {
        Ok(Value::Object(requests)) => Ok(Asked {
            requests,
            asked: pending.asked.clone(),
        }),
        _ => Err("the sandbox sent input requests that are not a JSON object".into()),
    }
}

/// Sends a Python tool's run to the sandbox with the server's modules, hosts and secrets.
#[allow(clippy::too_many_arguments)]
async fn execute(
    state: &AppState,
    approved: &Approved,
    arguments: &Value,
    secrets: std::collections::BTreeMap<String, String>,
    allowed_modules: Vec<String>,
    allowed_hosts: Vec<String>,
    progress: Option<tokio::sync::mpsc::Sender<contract::sandbox::Progress>>,
    input: Option<InputContext>,
) -> Result<contract::sandbox::ExecuteResponse> {
    let packages = crate::packages::grants(state, &approved.server_id).await?;
    let request = ExecuteRequest {
        input,
        code: approved.code.clone(),
        arguments: arguments.to_string(),
        allowed_modules: Some(allowed_modules),
        allowed_hosts,
        secrets,
        packages,
        limits: Limits {
            timeout_ms: approved.timeout_ms.max(1) as u64,
            ..Limits::default()
        },
    };
    state
        .sandbox
        .execute(request, progress)
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
        ToolError::new(
            ErrorKind::Runtime,
            if text.is_empty() {
                "the external tool reported an error without a message".to_owned()
            } else {
                text.join("\n")
            },
        )
    });
    contract::sandbox::ExecuteResponse {
        input_required: None,
        ok,
        result: serde_json::to_string(&remote).ok(),
        error,
        stdout: String::new(),
        duration_ms: started.elapsed().as_millis() as u64,
        stdout_truncated: false,
        usage: contract::sandbox::Usage::default(),
        content: Vec::new(),
    }
}

/// A client's call that was refused before anything ran (no approved version, tool disabled,
/// server stopped, code changed since approval): logged as a failed call with the refusal, so
/// the execution log holds every call a client made to a tool. Arguments are redacted like a
/// run's: by sensitive key names and by the server's secret values.
pub async fn log_refusal(
    state: &AppState,
    tool_id: &str,
    arguments: &Value,
    actor: &str,
    refusal: &Error,
) -> Result<String> {
    let tool = crate::tools::get(&state.db, tool_id).await?;
    let server = crate::servers::get(&state.db, &tool.server_id).await?;
    // Names read from the database: a call to a tool that does not exist never gets here.
    state
        .metrics
        .tool_call(&server.name, &tool.name, CallOutcome::Refused, None);
    let redactor = match crate::secrets::values(state, &server.id).await {
        Ok(secrets) => Redactor::new(secrets.values().map(String::as_str)),
        // `values` logged which secret does not decrypt; a value that cannot be read cannot
        // be in the arguments through this server either.
        Err(_) => Redactor::default(),
    };
    let entry = LogEntry {
        tool_id: &tool.id,
        server_id: &server.id,
        public_name: crate::names::public_name(&server.name, &tool.name),
        version: tool.current_version,
        arguments: redact_arguments(arguments, &redactor).to_string(),
        actor,
        is_test: false,
        input: InputLog::default(),
    };
    let error = ToolError::new(
        ErrorKind::Refused,
        format!("refused: {}", refusal.public_message()),
    );
    entry
        .write(&state.db, false, None, Some(&error), "", 0)
        .await
}

/// A test run (REST, UI and MCP), as `control::test_purpose` rules for `by`: the approved
/// version (the newest version, draft or not, only when the policy approves tools
/// automatically); a person's run may try a stopped server or a disabled tool, an LLM's is
/// refused there exactly like a call.
pub async fn test_run(
    state: &AppState,
    tool_id: &str,
    arguments: Value,
    actor: &str,
    by: crate::control::Principal,
) -> Result<Outcome> {
    let auto_approve = crate::settings::policy(&state.db)
        .await?
        .auto_approve_tools();
    let purpose = crate::control::test_purpose(by, auto_approve);
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

/// Arguments for the log: secret values redacted (`Redactor::value`), then values under
/// sensitive key names redacted and long strings cut (after redaction, so a cut never leaves
/// the start of a secret).
pub fn redact_arguments(value: &Value, redactor: &Redactor) -> Value {
    cut_for_log(redactor.value(value.clone()))
}

fn cut_for_log(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, item)| {
                    let lower = key.to_ascii_lowercase();
                    let sensitive = SENSITIVE_KEYS.iter().any(|word| lower.contains(word));
                    let item = if sensitive {
                        Value::String(REDACTED.into())
                    } else {
                        cut_for_log(item)
                    };
                    (key, item)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(cut_for_log).collect()),
        Value::String(text) => {
            if text.chars().count() > ARGUMENT_STRING_LOG_CHARS {
                let cut: String = text.chars().take(ARGUMENT_STRING_LOG_CHARS).collect();
                Value::String(format!("{cut}… [cut]"))
            } else {
                Value::String(text)
            }
        }
        other => other,
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

pub(crate) fn cap(text: &str, limit: usize) -> String {
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
    input: InputLog,
}

/// A run's round for the log (migration 0018): its number, the answers it ran with (redacted
/// like arguments) and the questions it ended with (redacted like a result), as JSON text.
#[derive(Debug, Clone)]
struct InputLog {
    round: i64,
    answers: Option<String>,
    requests: Option<String>,
}

impl Default for InputLog {
    fn default() -> Self {
        InputLog {
            round: 1,
            answers: None,
            requests: None,
        }
    }
}

impl InputLog {
    fn of(round: Option<&Round>, redactor: &Redactor) -> InputLog {
        let Some(round) = round else {
            return InputLog::default();
        };
        let answers = (!round.answers.is_empty())
            .then(|| redact_arguments(&Value::Object(round.answers.clone()), redactor).to_string());
        InputLog {
            round: i64::from(round.number),
            answers: answers.map(|text| cap_result(&text)),
            requests: None,
        }
    }
}

impl<'a> LogEntry<'a> {
    fn new(
        approved: &'a Approved,
        arguments: &Value,
        redactor: &Redactor,
        actor: &'a str,
        is_test: bool,
    ) -> LogEntry<'a> {
        LogEntry {
            tool_id: &approved.tool_id,
            server_id: &approved.server_id,
            public_name: approved.public_name.clone(),
            version: approved.version,
            arguments: redact_arguments(arguments, redactor).to_string(),
            actor,
            is_test,
            input: InputLog::default(),
        }
    }

    /// Stores a run. `result`, `error` and `stdout` arrive redacted and are cut to size here,
    /// after redaction, so a cut never leaves a secret's beginning.
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
        let error_kind = error.map(|e| e.kind.as_str());
        let error_category = error.map(|e| e.category.as_str());
        let error_detail = error.map(ErrorDetail::of).map(|d| d.to_text());
        sqlx::query(
            "INSERT INTO execution_logs (id, tool_id, server_id, tool_name, version, arguments, result, error, \
             error_kind, stdout, duration_ms, success, is_test, executed_by, created_at, error_category, \
             error_detail, input_round, input_requests, input_answers) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             $19, $20)",
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
        .bind(error_category)
        .bind(error_detail)
        .bind(self.input.round)
        .bind(self.input.requests.as_deref())
        .bind(self.input.answers.as_deref())
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
    pub error_category: Option<String>,
    /// JSON text of an [`ErrorDetail`].
    pub error_detail: Option<String>,
    pub stdout: String,
    pub duration_ms: i64,
    pub success: bool,
    pub is_test: bool,
    pub executed_by: String,
    pub created_at: String,
    /// The call's round this run was (1 unless the tool asks back, `rounds`).
    pub input_round: i64,
    /// JSON of the questions the round ended with: set only on an input-required round.
    pub input_requests: Option<String>,
    /// JSON of the client's answers the round ran with.
    pub input_answers: Option<String>,
}

const LOG_COLUMNS: &str = "id, tool_id, server_id, tool_name, version, arguments, result, error, error_kind, stdout, \
     duration_ms, success, is_test, executed_by, created_at, error_category, error_detail, \
     input_round, input_requests, input_answers";

impl LogRow {
    /// A failed run's category and the tool's frames, one per line, for the log views
    /// (`[code] ZeroDivisionError` then `line 3, in main: return 1 / x`).
    pub fn error_trace(&self) -> Option<String> {
        let category = self.error_category.as_deref()?;
        let detail = ErrorDetail::from_text(self.error_detail.as_deref());
        let mut text = format!("[{category}]");
        if let Some(error_type) = &detail.error_type {
            text.push_str(&format!(" {error_type}"));
        }
        for frame in &detail.traceback {
            text.push_str(&format!("\nline {}, in {}", frame.line, frame.function));
            if !frame.source.is_empty() {
                text.push_str(&format!(": {}", frame.source));
            }
        }
        Some(text)
    }

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
            error_category: row.try_get("error_category")?,
            error_detail: row.try_get("error_detail")?,
            stdout: row.try_get("stdout")?,
            duration_ms: row.try_get("duration_ms")?,
            success: row.try_get::<i64, _>("success")? != 0,
            is_test: row.try_get::<i64, _>("is_test")? != 0,
            executed_by: row.try_get("executed_by")?,
            created_at: row.try_get("created_at")?,
            input_round: row.try_get("input_round")?,
            input_requests: row.try_get("input_requests")?,
            input_answers: row.try_get("input_answers")?,
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
        let secrets = Redactor::new(["hunter2-secret"]);
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
