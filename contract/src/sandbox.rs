//! The origin ↔ sandbox supervisor protocol, over a unix socket.
//!
//! Framing: every message is a 4-byte big-endian length followed by that many bytes of JSON.
//! The first frame on a connection is a [`Hello`] with the shared key; the supervisor closes the
//! connection on a wrong key. After that the client sends [`Request`]s and reads one
//! [`Response`] for each, in order.
//!
//! Free-form JSON values (tool arguments, results, schemas) travel as JSON *text* in `String`
//! fields, so this crate needs nothing beyond serde and the supervisor passes them through
//! without re-encoding.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Largest frame either side accepts.
pub const MAX_FRAME_BYTES: u32 = 16 * 1024 * 1024;

/// Characters the static check refuses anywhere in a tool's source, strings and comments
/// included, and that the admin UI shows as a visible marker wherever it renders code. Each is
/// invisible, or reorders the text around it when displayed, so a browser can show a reviewer
/// other code than Python runs ("Trojan Source", CVE-2021-42574), or an identifier that looks
/// like another (Python accepts U+3164 HANGUL FILLER as a name). They are the control
/// characters other than tab, newline and carriage return; Unicode's format characters
/// (category Cf: the bidirectional controls U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
/// U+061C, the zero-width characters, tags, …); the line and paragraph separators; and the
/// Hangul fillers. A tool that needs one writes it as an escape in a string (`"\u202e"`).
///
/// `(first, last, name)`, sorted. `python/runtime.py` holds the same table for `check` (the
/// sandbox tests run every character of this one through it).
pub const HIDDEN_CHARACTERS: &[(u32, u32, &str)] = &[
    (0x00, 0x08, "CONTROL CHARACTER"),
    (0x0b, 0x0c, "CONTROL CHARACTER"),
    (0x0e, 0x1f, "CONTROL CHARACTER"),
    (0x7f, 0x9f, "CONTROL CHARACTER"),
    (0xad, 0xad, "SOFT HYPHEN"),
    (0x0600, 0x0605, "ARABIC NUMBER SIGN (FORMAT CHARACTER)"),
    (0x061c, 0x061c, "ARABIC LETTER MARK"),
    (0x06dd, 0x06dd, "ARABIC END OF AYAH (FORMAT CHARACTER)"),
    (
        0x070f,
        0x070f,
        "SYRIAC ABBREVIATION MARK (FORMAT CHARACTER)",
    ),
    (0x0890, 0x0891, "ARABIC POUND MARK (FORMAT CHARACTER)"),
    (
        0x08e2,
        0x08e2,
        "ARABIC DISPUTED END OF AYAH (FORMAT CHARACTER)",
    ),
    (0x115f, 0x1160, "HANGUL FILLER"),
    (0x180e, 0x180e, "MONGOLIAN VOWEL SEPARATOR"),
    (0x200b, 0x200b, "ZERO WIDTH SPACE"),
    (0x200c, 0x200c, "ZERO WIDTH NON-JOINER"),
    (0x200d, 0x200d, "ZERO WIDTH JOINER"),
    (0x200e, 0x200e, "LEFT-TO-RIGHT MARK"),
    (0x200f, 0x200f, "RIGHT-TO-LEFT MARK"),
    (0x2028, 0x2028, "LINE SEPARATOR"),
    (0x2029, 0x2029, "PARAGRAPH SEPARATOR"),
    (0x202a, 0x202a, "LEFT-TO-RIGHT EMBEDDING"),
    (0x202b, 0x202b, "RIGHT-TO-LEFT EMBEDDING"),
    (0x202c, 0x202c, "POP DIRECTIONAL FORMATTING"),
    (0x202d, 0x202d, "LEFT-TO-RIGHT OVERRIDE"),
    (0x202e, 0x202e, "RIGHT-TO-LEFT OVERRIDE"),
    (0x2060, 0x2060, "WORD JOINER"),
    (0x2061, 0x2064, "INVISIBLE MATHEMATICAL OPERATOR"),
    (0x2066, 0x2066, "LEFT-TO-RIGHT ISOLATE"),
    (0x2067, 0x2067, "RIGHT-TO-LEFT ISOLATE"),
    (0x2068, 0x2068, "FIRST STRONG ISOLATE"),
    (0x2069, 0x2069, "POP DIRECTIONAL ISOLATE"),
    (0x206a, 0x206f, "DEPRECATED FORMAT CHARACTER"),
    (0x3164, 0x3164, "HANGUL FILLER"),
    (0xfeff, 0xfeff, "ZERO WIDTH NO-BREAK SPACE"),
    (0xffa0, 0xffa0, "HALFWIDTH HANGUL FILLER"),
    (0xfff9, 0xfffb, "INTERLINEAR ANNOTATION CHARACTER"),
    (0x110bd, 0x110bd, "KAITHI NUMBER SIGN (FORMAT CHARACTER)"),
    (
        0x110cd,
        0x110cd,
        "KAITHI NUMBER SIGN ABOVE (FORMAT CHARACTER)",
    ),
    (0x13430, 0x1343f, "EGYPTIAN HIEROGLYPH FORMAT CONTROL"),
    (0x1bca0, 0x1bca3, "SHORTHAND FORMAT CONTROL"),
    (0x1d173, 0x1d17a, "MUSICAL SYMBOL FORMAT CONTROL"),
    (0xe0001, 0xe0001, "LANGUAGE TAG"),
    (0xe0020, 0xe007f, "TAG CHARACTER"),
];

/// The name of `c` if it is one of [`HIDDEN_CHARACTERS`].
pub fn hidden_character(c: char) -> Option<&'static str> {
    let code = c as u32;
    let index = HIDDEN_CHARACTERS.partition_point(|&(_, last, _)| last < code);
    HIDDEN_CHARACTERS
        .get(index)
        .filter(|&&(first, _, _)| first <= code)
        .map(|&(_, _, name)| name)
}

/// The modules a tool may import when a request does not name its own list.
pub const DEFAULT_MODULES: &[&str] = &[
    "asyncio",
    "base64",
    "collections",
    "datetime",
    "decimal",
    "fractions",
    "functools",
    "hashlib",
    "html",
    "itertools",
    "json",
    "math",
    "random",
    "re",
    "statistics",
    "string",
    "textwrap",
    "time",
    "typing",
    "urllib.parse",
    "uuid",
];

/// Modules no allowlist can enable: each would give tools a way around the restricted runtime
/// (attribute access by string, code and frame objects, raw fds, processes, sockets). Matched on
/// the first dotted component. The sandbox's `runtime.py` holds the same list (a test checks).
pub const NEVER_IMPORTABLE: &[&str] = &[
    "os",
    "sys",
    "builtins",
    "importlib",
    "ctypes",
    "gc",
    "inspect",
    "types",
    "code",
    "codeop",
    "operator",
    "pickle",
    "marshal",
    "shelve",
    "copyreg",
    "subprocess",
    "socket",
    "ssl",
    "select",
    "selectors",
    "threading",
    "multiprocessing",
    "concurrent",
    "signal",
    "pty",
    "tty",
    "termios",
    "resource",
    "posix",
    "pwd",
    "grp",
    "io",
    "mmap",
    "fcntl",
    "shutil",
    "tempfile",
    "pathlib",
    "glob",
    "fileinput",
    "zipimport",
    "pkgutil",
    "runpy",
    "site",
    "sysconfig",
    "platform",
    "traceback",
    "linecache",
    "tracemalloc",
    "faulthandler",
    "pdb",
    "bdb",
    "trace",
    "warnings",
    "weakref",
    "atexit",
    "http",
    "ftplib",
    "smtplib",
    "telnetlib",
    "xmlrpc",
    "webbrowser",
    "ensurepip",
    "venv",
    "distutils",
    "setuptools",
    "pip",
    "getpass",
    "zipfile",
    "tarfile",
    "sqlite3",
    "dbm",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Closing the connection while an execute runs cancels it: the supervisor kills the
    /// worker at once (the origin closes it when its caller went away or cancelled).
    Execute(ExecuteRequest),
    /// An execute whose progress reports (`progress()` in the runtime) come back as
    /// [`Response::Progress`] frames before its [`Response::Execute`].
    ExecuteStreaming(ExecuteRequest),
    Validate(ValidateRequest),
    Health,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecuteRequest {
    /// The tool's Python source (`async def main(...)` or `def main(...)`).
    pub code: String,
    /// JSON text of an object: the keyword arguments for `main`.
    pub arguments: String,
    /// Importable modules; `None` means [`DEFAULT_MODULES`].
    #[serde(default)]
    pub allowed_modules: Option<Vec<String>>,
    /// Where `http` and `tcp` may go: `host` (any port), `host:port`, `*` (any public host), or
    /// `lan:host:port` (an approved LAN host and port, which may be a private address). Grammar
    /// and address rules: [`crate::network`]. Empty means no network.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Exposed to the tool as the read-only mapping `secrets`.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: Limits,
    /// Installed PyPI packages this call may import: only the server's approved ones. Their
    /// import names join the allowed modules (same proxy rules); their directories join the
    /// worker's import path for this call only.
    #[serde(default)]
    pub packages: Vec<PackageGrant>,
    /// What the tool's `ask`, `sample` and `roots` may be answered from: `None` when no MCP
    /// client stands behind the run (a test run), and the helpers raise inside the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputContext>,
}

/// A run's client-facing context for tools that ask back. Every round of a call re-runs the
/// tool from the start (workers are single-use) with all the answers so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputContext {
    /// JSON text of an object: request key → the client's answer (an `ElicitResult`,
    /// `CreateMessageResult` or `ListRootsResult` as the client sent it).
    pub answers: String,
    /// What the client declared it can answer, of [`INPUT_CAPABILITIES`].
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// The client capabilities a tool can ask through (`client_can(name)` in the runtime).
pub const INPUT_CAPABILITIES: &[&str] = &["elicitation", "sampling", "roots"];
/// Most requests one round may end with (`ask_all` included).
pub const MAX_INPUT_REQUESTS: usize = 16;
/// Longest request key a tool may name (`[A-Za-z0-9_.-]`).
pub const MAX_INPUT_KEY_CHARS: usize = 64;
/// Largest JSON text of one round's requests together.
pub const MAX_INPUT_REQUESTS_BYTES: usize = 256 * 1024;

/// One installed package (a `pip install --target` tree) a call may import.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PackageGrant {
    /// The installation's directory; must lie under the supervisor's packages directory.
    pub path: String,
    /// The top-level import names tools may use (`yaml` for PyYAML). Names starting with `_`
    /// and never-importable names are refused.
    pub modules: Vec<String>,
}

/// Per-call limits. The supervisor clamps each to its hard maximum.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Limits {
    pub timeout_ms: u64,
    pub memory_mb: u64,
    /// Cap on captured `print` output.
    pub stdout_bytes: u64,
    /// Cap on the JSON text of the result.
    pub result_bytes: u64,
    /// Cap on each HTTP response body the broker hands back.
    pub http_response_bytes: u64,
    /// Cap on HTTP requests in one call.
    pub http_requests: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: 30_000,
            memory_mb: 256,
            stdout_bytes: 64 * 1024,
            result_bytes: 1024 * 1024,
            http_response_bytes: 5 * 1024 * 1024,
            http_requests: 50,
        }
    }
}

impl Limits {
    /// The hard maximums no request can exceed.
    pub const MAX: Limits = Limits {
        timeout_ms: 300_000,
        memory_mb: 1024,
        stdout_bytes: 1024 * 1024,
        result_bytes: 8 * 1024 * 1024,
        http_response_bytes: 20 * 1024 * 1024,
        http_requests: 500,
    };

    pub fn clamped(&self) -> Limits {
        let max = Limits::MAX;
        Limits {
            timeout_ms: self.timeout_ms.clamp(1, max.timeout_ms),
            memory_mb: self.memory_mb.clamp(64, max.memory_mb),
            stdout_bytes: self.stdout_bytes.min(max.stdout_bytes),
            result_bytes: self.result_bytes.clamp(1024, max.result_bytes),
            http_response_bytes: self.http_response_bytes.min(max.http_response_bytes),
            http_requests: self.http_requests.min(max.http_requests),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidateRequest {
    pub code: String,
    #[serde(default)]
    pub allowed_modules: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Execute(ExecuteResponse),
    Validate(ValidateResponse),
    Health(HealthResponse),
    /// A progress report of the running `ExecuteStreaming` (never the answer itself).
    Progress(Progress),
    /// The request itself was refused (malformed, or the sandbox cannot serve it now).
    Error {
        message: String,
    },
}

/// A tool's `progress(done, total, message)`. The worker sends at most one every
/// [`PROGRESS_INTERVAL_MS`] (the last, where `done == total`, always).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    pub done: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

pub const PROGRESS_INTERVAL_MS: u64 = 100;
/// Longest progress message (characters); longer ones are cut.
pub const MAX_PROGRESS_MESSAGE_CHARS: usize = 500;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExecuteResponse {
    pub ok: bool,
    /// JSON text of `main`'s return value when `ok`.
    pub result: Option<String>,
    pub error: Option<ToolError>,
    pub stdout: String,
    pub stdout_truncated: bool,
    pub duration_ms: u64,
    pub usage: Usage,
    /// Rich results (`image`, `audio`, `resource` in the runtime), in the order `main` returned
    /// them; `result` holds a [`CONTENT_MARKER`] object (type, MIME type, size, no bytes) in
    /// each one's place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<ContentBlock>,
    /// Set when the tool ended asking the client for input it was not given (`ok` is false,
    /// `result` and `error` are absent): the origin asks and runs it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_required: Option<InputRequired>,
}

/// A run that ended asking (`ask`, `sample`, `roots`, `ask_all` in the runtime).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputRequired {
    /// JSON text of an object: key → `{"method", "params"}` (`elicitation/create`,
    /// `sampling/createMessage`, `roots/list`), at most [`MAX_INPUT_REQUESTS`].
    pub requests: String,
    /// Every key this run looked up, answered or not: the answers worth carrying into the next
    /// round (an answer nothing asked for is dropped).
    pub asked: Vec<String>,
}

/// The key of the object that stands for a [`ContentBlock`] in a result: its value is the
/// block's index in `ExecuteResponse::content`.
pub const CONTENT_MARKER: &str = "$content";

/// Largest rich result block (its raw bytes, or its text).
pub const MAX_CONTENT_BYTES: usize = 4 * 1024 * 1024;

/// MIME types a tool may return as an image, as audio, or as an embedded resource (a type
/// a client would render as active content, such as SVG or HTML, is not among them).
pub const IMAGE_MIME_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];
pub const AUDIO_MIME_TYPES: &[&str] = &[
    "audio/wav",
    "audio/mpeg",
    "audio/ogg",
    "audio/webm",
    "audio/flac",
    "audio/aac",
];
pub const RESOURCE_MIME_TYPES: &[&str] = &[
    "text/plain",
    "text/markdown",
    "text/csv",
    "application/json",
    "application/pdf",
    "application/octet-stream",
];

/// One rich result block; bytes travel as base64.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Image {
        mime_type: String,
        data: String,
    },
    Audio {
        mime_type: String,
        data: String,
    },
    Resource {
        uri: String,
        mime_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        blob: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolError {
    pub kind: ErrorKind,
    /// What an author does about it (derived from `kind`, and from the exception for network
    /// failures). Absent from older supervisors: `ToolError::category_of` fills it in.
    #[serde(default = "ErrorCategory::unknown")]
    pub category: ErrorCategory,
    pub message: String,
    /// Line in the tool's source, when the error points at one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<u32>,
    /// The exception's class name (`KeyError`), when the tool raised one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_type: Option<String>,
    /// The traceback restricted to the tool's own code, outermost first (never the runtime's
    /// or the sandbox's frames), each with its line and the source line that ran.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub traceback: Vec<TraceFrame>,
    /// The client capability (`elicitation`, `sampling`, `roots`) the tool asked through and
    /// the client had not declared, when that is what ended the run (`InputUnavailable` raised
    /// out of `main`): a 2026-07-28 call answers it with -32021, naming the capability.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub required_capability: Option<String>,
}

impl ToolError {
    /// An error without a line or traceback, its category derived from `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ToolError {
        ToolError {
            kind,
            category: kind.category(),
            message: message.into(),
            line: None,
            error_type: None,
            traceback: Vec::new(),
            required_capability: None,
        }
    }

    pub fn at_line(mut self, line: Option<u32>) -> ToolError {
        self.line = line;
        self
    }

    /// The error as text an author reads (the MCP tool error, the UI's message): kind,
    /// category and line, the message, then the tool's own frames with their source lines.
    pub fn describe(&self) -> String {
        let kind = self.kind.as_str();
        let category = self.clone().with_known_category().category;
        let label = format!(
            "{}{} error ({})",
            kind[..1].to_uppercase(),
            &kind[1..],
            category.as_str()
        );
        let mut text = match self.line {
            Some(line) => format!("{label} at line {line}: {}", self.message),
            None => format!("{label}: {}", self.message),
        };
        let frames: Vec<&TraceFrame> = self
            .traceback
            .iter()
            .filter(|f| f.function != CHECK_FRAME)
            .collect();
        if !frames.is_empty() {
            text.push_str("\nTraceback (the tool's own code, most recent call last):");
            for frame in frames {
                text.push_str(&format!("\n  line {}, in {}", frame.line, frame.function));
                if !frame.source.is_empty() {
                    text.push_str(&format!(": {}", frame.source));
                }
            }
        }
        text
    }

    /// Fills in a category an older peer did not send.
    pub fn with_known_category(mut self) -> ToolError {
        if self.category == ErrorCategory::Unknown {
            self.category = self.kind.category();
        }
        self
    }
}

/// One frame of a tool's traceback.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TraceFrame {
    pub line: u32,
    /// The function (`main`, `<module>` for top-level code).
    pub function: String,
    /// The source line, stripped; empty when the line is not in the source.
    pub source: String,
}

/// The error categories an author (often an LLM) acts on.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCategory {
    /// The tool's code raised, or returned something that is not a result: fix the code.
    Code,
    /// The code failed the static check, or the arguments do not fit: fix the code or call.
    Validation,
    /// The tool ran past its timeout: make it faster or raise the tool's timeout.
    Timeout,
    /// An HTTP request failed or was refused (host not allowed, upstream down, bad status).
    Network,
    /// The sandbox stopped the tool (memory, CPU, crash) or failed itself.
    Sandbox,
    /// MCPbox refused the call before it ran (not approved, disabled, server stopped, a
    /// module not allowed).
    Refused,
    /// The caller cancelled the call; the worker was stopped.
    Cancelled,
    /// Sent by nothing current: a peer older than categories.
    Unknown,
}

impl ErrorCategory {
    fn unknown() -> ErrorCategory {
        ErrorCategory::Unknown
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCategory::Code => "code",
            ErrorCategory::Validation => "validation",
            ErrorCategory::Timeout => "timeout",
            ErrorCategory::Network => "network",
            ErrorCategory::Sandbox => "sandbox",
            ErrorCategory::Refused => "refused",
            ErrorCategory::Cancelled => "cancelled",
            ErrorCategory::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The code failed the static check (or has no `main`).
    Validation,
    /// The arguments are not a JSON object.
    Arguments,
    /// The tool raised an exception.
    Runtime,
    /// A refused import.
    Import,
    /// `main` returned something that is not JSON (or too large).
    Result,
    /// The wall-clock deadline passed; the worker was killed.
    Timeout,
    /// The memory limit was hit.
    Memory,
    /// The worker died (signal, CPU limit).
    Crashed,
    /// The sandbox itself failed; the tool may not have run.
    Internal,
    /// MCPbox refused the call before anything ran (not approved, disabled, server stopped).
    Refused,
    /// The caller cancelled the call (or went away); the worker was killed.
    Cancelled,
}

impl ErrorKind {
    /// The category of an error of this kind. `Runtime` is `Code` unless the exception says
    /// network (the sandbox decides that, from the exception's class).
    pub fn category(self) -> ErrorCategory {
        match self {
            ErrorKind::Validation | ErrorKind::Arguments => ErrorCategory::Validation,
            ErrorKind::Runtime | ErrorKind::Result => ErrorCategory::Code,
            ErrorKind::Import | ErrorKind::Refused => ErrorCategory::Refused,
            ErrorKind::Timeout => ErrorCategory::Timeout,
            ErrorKind::Memory | ErrorKind::Crashed | ErrorKind::Internal => ErrorCategory::Sandbox,
            ErrorKind::Cancelled => ErrorCategory::Cancelled,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Validation => "validation",
            ErrorKind::Arguments => "arguments",
            ErrorKind::Runtime => "runtime",
            ErrorKind::Import => "import",
            ErrorKind::Result => "result",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Memory => "memory",
            ErrorKind::Crashed => "crashed",
            ErrorKind::Internal => "internal",
            ErrorKind::Refused => "refused",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

/// Resource use of the worker process, as its parent saw it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    pub cpu_ms: u64,
    pub max_rss_kb: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ValidateResponse {
    pub valid: bool,
    pub has_main: bool,
    pub errors: Vec<CodeError>,
    /// JSON text of the input schema derived from `main`'s signature.
    pub input_schema: Option<String>,
    /// JSON text of the MCP output schema derived from `main`'s return annotation (always
    /// `type: object`; a non-object type wrapped as `{"result": ...}` and marked
    /// `x-mcpbox-wrap-result`); absent without an annotation, and from older supervisors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<String>,
    /// The docstring of `main`, if any.
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CodeError {
    pub line: u32,
    pub col: u32,
    pub message: String,
    /// The source line the error points at, stripped (absent from older supervisors).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub source: String,
}

/// Most static-check errors one [`ToolError`] lists as frames.
const MAX_CHECK_FRAMES: usize = 20;

impl ValidateResponse {
    /// A failed validation in the shape a failed run has (category `validation`, the first
    /// error's line, each error a frame with its source line), so an author reads one shape.
    pub fn as_tool_error(&self) -> Option<ToolError> {
        if self.valid {
            return None;
        }
        let message = if self.errors.is_empty() {
            "the code is not valid".to_owned()
        } else {
            self.errors
                .iter()
                .map(|e| format!("line {}: {}", e.line, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let mut error = ToolError::new(ErrorKind::Validation, message)
            .at_line(self.errors.first().map(|e| e.line));
        error.traceback = self
            .errors
            .iter()
            .take(MAX_CHECK_FRAMES)
            .map(|e| TraceFrame {
                line: e.line,
                function: CHECK_FRAME.to_owned(),
                source: e.source.clone(),
            })
            .collect();
        Some(error)
    }
}

/// The `function` of a frame that stands for a static-check error rather than a call.
pub const CHECK_FRAME: &str = "<static check>";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HealthResponse {
    pub version: String,
    pub layers: Layers,
    pub idle_workers: u32,
    /// Times the supervisor restarted a dead zygote since it started (a rising count is a crash
    /// loop; the origin alerts on it). Absent from older supervisors: 0.
    #[serde(default)]
    pub zygote_restarts: u64,
}

/// Which isolation layers are in force for workers. A `false` is a degraded host: the
/// supervisor logs it loudly at start and `doctor` explains it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Layers {
    pub static_check: bool,
    pub restricted_runtime: bool,
    pub rlimits: bool,
    pub closed_fds: bool,
    pub clean_environment: bool,
    pub network_namespace: bool,
    pub landlock: bool,
    pub seccomp: bool,
    pub unprivileged_uid: bool,
    pub http_broker: bool,
}

impl Layers {
    /// The layers that are off, by name.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            ("static_check", self.static_check),
            ("restricted_runtime", self.restricted_runtime),
            ("rlimits", self.rlimits),
            ("closed_fds", self.closed_fds),
            ("clean_environment", self.clean_environment),
            ("network_namespace", self.network_namespace),
            ("landlock", self.landlock),
            ("seccomp", self.seccomp),
            ("unprivileged_uid", self.unprivileged_uid),
            ("http_broker", self.http_broker),
        ]
        .into_iter()
        .filter(|(_, on)| !on)
        .map(|(name, _)| name)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_characters_are_found_at_every_edge_of_the_table() {
        assert!(
            HIDDEN_CHARACTERS
                .windows(2)
                .all(|pair| pair[0].1 < pair[1].0 && pair[0].0 <= pair[0].1),
            "sorted and disjoint"
        );
        for &(first, last, name) in HIDDEN_CHARACTERS {
            for code in [first, last] {
                let c = char::from_u32(code).unwrap();
                assert_eq!(hidden_character(c), Some(name), "U+{code:04X}");
            }
        }
        assert_eq!(hidden_character('\u{202e}'), Some("RIGHT-TO-LEFT OVERRIDE"));
        for visible in [
            '\t', '\n', '\r', ' ', 'a', 'é', '✓', '\u{2027}', '\u{2065}', '\u{fe0f}',
        ] {
            assert_eq!(hidden_character(visible), None, "{visible:?}");
        }
    }

    #[test]
    fn limits_are_clamped_to_the_hard_maximums() {
        let wild = Limits {
            timeout_ms: u64::MAX,
            memory_mb: 0,
            stdout_bytes: u64::MAX,
            result_bytes: 0,
            http_response_bytes: u64::MAX,
            http_requests: u32::MAX,
        };
        let clamped = wild.clamped();
        assert_eq!(clamped.timeout_ms, Limits::MAX.timeout_ms);
        assert_eq!(clamped.memory_mb, 64);
        assert_eq!(clamped.stdout_bytes, Limits::MAX.stdout_bytes);
        assert_eq!(clamped.result_bytes, 1024);
        assert_eq!(clamped.http_requests, Limits::MAX.http_requests);
    }

    #[test]
    fn requests_are_tagged_by_type() {
        let text = serde_json::to_string(&Request::Health).unwrap();
        assert_eq!(text, r#"{"type":"health"}"#);
        let parsed: Request =
            serde_json::from_str(r#"{"type":"execute","code":"x","arguments":"{}"}"#).unwrap();
        let Request::Execute(execute) = parsed else {
            panic!("not execute")
        };
        assert_eq!(execute.limits, Limits::default());
        assert!(execute.allowed_modules.is_none());
    }
}
