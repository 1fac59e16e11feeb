//! Messages inside the sandbox (not seen by the origin): supervisor ↔ zygote over a
//! SOCK_SEQPACKET control socket (one JSON message per packet; worker sockets ride along as
//! SCM_RIGHTS), and supervisor ↔ worker over the worker's socketpair (length-prefixed frames).

use std::collections::BTreeMap;

use contract::sandbox::{
    ContentBlock, InputContext, InputRequired, Layers, ToolError, Usage, ValidateResponse,
};
use serde::{Deserialize, Serialize};

/// Largest frame a worker may send (its result and stdout are capped well below this).
pub const MAX_WORKER_FRAME: u32 = 12 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ZygoteCommand {
    Spawn,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ZygoteMessage {
    /// Python is loaded; the zygote's own layers (network namespace, environment).
    Ready {
        network_namespace: bool,
        clean_environment: bool,
    },
    /// A worker was forked; its socket is attached to this packet.
    Spawned { pid: i32 },
    /// A worker was reaped.
    Exited { pid: i32, exit: ExitInfo },
    /// Forking failed.
    SpawnFailed { message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub usage: Usage,
}

/// Supervisor → worker: the one job of this worker's life.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Job {
    Execute {
        code: String,
        arguments: String,
        modules: Vec<String>,
        secrets: BTreeMap<String, String>,
        memory_mb: u64,
        stdout_bytes: u64,
        result_bytes: u64,
        /// The supervisor has seen this code and module list pass the static check before
        /// (a pure function of the two), so the worker may skip it.
        checked: bool,
        /// Granted package directories, added to the import path for this job only.
        #[serde(default)]
        package_paths: Vec<String>,
        /// The answers so far and the client's capabilities (`None`: no client to ask).
        #[serde(default)]
        input: Option<InputContext>,
    },
    Validate {
        code: String,
        modules: Vec<String>,
    },
}

/// Worker → supervisor.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// Sent once the worker is hardened and waiting for its job.
    Ready {
        layers: Layers,
    },
    Http(HttpRequest),
    /// A raw TCP operation, answered by a [`TcpReply`] (`broker::tcp`).
    Tcp(TcpRequest),
    /// Output printed since the last such message (streamed so a killed worker's output so far
    /// is not lost; `Done` carries the whole output again).
    Stdout {
        text: String,
    },
    /// `progress(done, total, message)`, already rate-limited by the worker.
    Progress(contract::sandbox::Progress),
    Done(Outcome),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    Executed {
        /// JSON text of the result, or the error.
        result: Result<String, ToolError>,
        /// Rich result blocks (`ExecuteResponse::content`).
        #[serde(default)]
        content: Vec<ContentBlock>,
        stdout: String,
        stdout_truncated: bool,
        usage: Usage,
        /// The tool ended asking for input it was not given (`result` then holds nothing of use).
        #[serde(default)]
        input_required: Option<InputRequired>,
    },
    Validated(ValidateResponse),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Base64.
    pub body: String,
    pub timeout_ms: Option<u64>,
    pub follow_redirects: bool,
}

/// Supervisor → worker, in reply to `Http`. Untagged: the Python side checks for `error`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum HttpReply {
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        /// Base64.
        body: String,
        url: String,
    },
    Refused {
        error: String,
    },
}

// --- Raw TCP through the broker -------------------------------------------------------------

/// Worker → supervisor: one operation on the call's broker-owned TCP streams. Streams are
/// numbered per call; data is base64.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TcpRequest {
    Connect {
        host: String,
        port: u16,
        timeout_ms: Option<u64>,
    },
    Send {
        stream: u32,
        data: String,
    },
    /// Up to `max` bytes; with `until`, read until that delimiter (returned with the data),
    /// `max` bytes, or the end of the stream.
    Recv {
        stream: u32,
        max: u32,
        until: Option<String>,
        timeout_ms: Option<u64>,
    },
    Close {
        stream: u32,
    },
}

/// Supervisor → worker, in reply to `Tcp`. Untagged like [`HttpReply`]: the Python side
/// checks for `error`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TcpReply {
    Opened { stream: u32, peer: String },
    Sent { sent: u64 },
    Received { data: String, eof: bool },
    Closed { closed: bool },
    Refused { error: String },
}
