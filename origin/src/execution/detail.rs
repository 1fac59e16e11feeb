//! What an author needs to fix a failed run, as the log keeps it: the error's detail (the
//! exception's class, the tool's own frames), redacted and cut like the rest of a row.

use contract::sandbox::ToolError;

use super::{Redactor, cap};

/// Most frames a log row keeps (the innermost: where it failed).
const LOG_FRAMES: usize = 20;

/// A failed run's detail as the log stores it (`error_detail`): the exception's class and the
/// tool's own frames, each source line cut like the message.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = execution::ErrorDetail)]
pub struct ErrorDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default)]
    pub traceback: Vec<contract::sandbox::TraceFrame>,
}

impl ErrorDetail {
    pub(super) fn of(error: &ToolError) -> ErrorDetail {
        let skip = error.traceback.len().saturating_sub(LOG_FRAMES);
        ErrorDetail {
            error_type: error.error_type.as_ref().map(|t| cap(t, 200)),
            traceback: error
                .traceback
                .iter()
                .skip(skip)
                .map(|frame| contract::sandbox::TraceFrame {
                    line: frame.line,
                    function: cap(&frame.function, 200),
                    source: cap(&frame.source, 500),
                })
                .collect(),
        }
    }

    pub(super) fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The stored text back (a row from before the column, or unreadable text: empty).
    pub fn from_text(text: Option<&str>) -> ErrorDetail {
        text.and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }
}

/// A tool's error without secrets: its message, and the source lines of its traceback (the
/// tool's code holds no secret values, but a frame's line may quote one a tool was given).
pub(super) fn redact_error(redactor: &Redactor, mut error: ToolError) -> ToolError {
    error.message = redact_error_message(redactor, &error.message);
    for frame in &mut error.traceback {
        frame.source = redactor.text(&frame.source);
    }
    error
}

/// A tool's error message without secrets. The sandbox cuts long messages and marks the cut
/// with a trailing `…`: a secret's beginning before it is hidden too.
fn redact_error_message(redactor: &Redactor, message: &str) -> String {
    match message.strip_suffix('…') {
        Some(cut) => format!("{}…", redactor.cut_text(cut)),
        None => redactor.text(message),
    }
}
