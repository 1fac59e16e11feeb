//! A run whose caller goes away midway: the worker is killed (dropping the dispatch closes its
//! connection, `dispatch`), and the log still gets the row, marked `cancelled`.

use contract::sandbox::{ErrorKind, ToolError};
use serde_json::Value;

use super::{InputLog, LogEntry, Redactor, redact_arguments};
use crate::app::AppState;
use crate::tools::Approved;

/// A run's log row, owned, for `CancelGuard` (which writes it after the run's future is gone).
pub(super) struct PendingLog {
    tool_id: String,
    server_id: String,
    public_name: String,
    version: i64,
    arguments: String,
    actor: String,
    is_test: bool,
    input: InputLog,
}

impl PendingLog {
    pub(super) fn new(
        approved: &Approved,
        arguments: &Value,
        redactor: &Redactor,
        actor: &str,
        is_test: bool,
        input: InputLog,
    ) -> PendingLog {
        PendingLog {
            tool_id: approved.tool_id.clone(),
            server_id: approved.server_id.clone(),
            public_name: approved.public_name.clone(),
            version: approved.version,
            arguments: redact_arguments(arguments, redactor).to_string(),
            actor: actor.to_owned(),
            is_test,
            input,
        }
    }

    fn entry(&self) -> LogEntry<'_> {
        LogEntry {
            tool_id: &self.tool_id,
            server_id: &self.server_id,
            public_name: self.public_name.clone(),
            version: self.version,
            arguments: self.arguments.clone(),
            actor: &self.actor,
            is_test: self.is_test,
            input: self.input.clone(),
        }
    }
}

/// Logs a run as `cancelled` when its future is dropped before the sandbox answered (an MCP
/// client's `notifications/cancelled`, an HTTP client that went away). Disarmed (`log = None`)
/// once the answer is in.
pub(super) struct CancelGuard {
    pub(super) state: AppState,
    pub(super) log: Option<PendingLog>,
    pub(super) started: std::time::Instant,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        let Some(log) = self.log.take() else { return };
        let state = self.state.clone();
        let elapsed = self.started.elapsed().as_millis() as u64;
        // Only inside a runtime (always, for a run): the write outlives the dropped future.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let error = ToolError::new(
                ErrorKind::Cancelled,
                "the call was cancelled by its caller; the tool was stopped",
            );
            if let Err(err) = log
                .entry()
                .write(&state.db, false, None, Some(&error), "", elapsed)
                .await
            {
                tracing::warn!(error = %err, "could not log a cancelled call");
            }
        });
    }
}
