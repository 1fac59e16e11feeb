//! The embedded interpreter: start-up (in the zygote), and running one job (in a worker).
//!
//! Everything here that touches tool-controlled objects is careful to run no Python code of the
//! tool's: results are walked with C-level accessors (`PyDict_Next`, list indexing, the value
//! inside an int/float/str), so a result whose methods are traps never gets a chance to run.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use contract::sandbox::{
    CodeError, ContentBlock, ErrorCategory, ErrorKind, InputContext, InputRequired,
    MAX_INPUT_REQUESTS_BYTES, ToolError, TraceFrame, Usage, ValidateResponse,
};
use pyo3::exceptions::{PyImportError, PyMemoryError, PyRecursionError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyModule, PyString, PyTuple};

use crate::error::Error;
use crate::frame;
use crate::protocol::{HttpRequest, MAX_WORKER_FRAME, Outcome, WorkerMessage};

const RUNTIME_SOURCE: &str = include_str!("../python/runtime.py");
/// Where the interpreter this binary was built against lives (see build.rs).
pub const PYTHON_HOME: &str = env!("MCPBOX_PYTHON_HOME");

/// Starts CPython with an isolated configuration: no environment variables, no user or site
/// packages, no signal handlers (the supervisor owns signals), no bytecode writes.
pub fn initialize() -> Result<(), Error> {
    use pyo3::ffi;
    let home = CString::new(PYTHON_HOME).map_err(|_| Error::Python("bad PYTHON_HOME".into()))?;
    // SAFETY: the documented PyConfig protocol: init, set fields, initialise, clear. Runs once,
    // on the main thread, before any other Python call.
    unsafe {
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::zeroed();
        ffi::PyConfig_InitIsolatedConfig(config.as_mut_ptr());
        let config_ptr = config.as_mut_ptr();
        (*config_ptr).site_import = 0;
        (*config_ptr).install_signal_handlers = 0;
        (*config_ptr).write_bytecode = 0;
        (*config_ptr).user_site_directory = 0;
        (*config_ptr).faulthandler = 0;
        let status =
            ffi::PyConfig_SetBytesString(config_ptr, &mut (*config_ptr).home, home.as_ptr());
        if ffi::PyStatus_Exception(status) != 0 {
            ffi::PyConfig_Clear(config_ptr);
            return Err(Error::Python("could not set the Python home".into()));
        }
        let status = ffi::Py_InitializeFromConfig(config_ptr);
        ffi::PyConfig_Clear(config_ptr);
        if ffi::PyStatus_Exception(status) != 0 {
            return Err(Error::Python("the embedded Python failed to start".into()));
        }
    }
    Ok(())
}

/// Loads the runtime module and imports every module a default tool may use, so forked workers
/// start with them in memory. Returns the runtime module and the directories Python may still
/// need to read (for modules imported lazily), for Landlock.
pub fn preload(
    py: Python<'_>,
) -> Result<(Py<PyModule>, Vec<String>, crate::isolation::LoopFds), Error> {
    let runtime = PyModule::from_code(
        py,
        &CString::new(RUNTIME_SOURCE).map_err(|_| Error::Python("NUL in runtime".into()))?,
        c"mcpbox_runtime.py",
        c"mcpbox_runtime",
    )
    .map_err(|err| Error::Python(format!("runtime: {err}")))?;
    let importlib = py.import("importlib").map_err(py_error)?;
    // Modules an admin may plausibly allow, loaded here because a worker cannot read files it
    // does not own once it runs as nobody; plus internals the default modules load lazily.
    let extra = [
        "_strptime",
        "encodings.idna",
        "json.decoder",
        "asyncio.base_events",
        "bisect",
        "calendar",
        "copy",
        "csv",
        "dataclasses",
        "difflib",
        "email.utils",
        "enum",
        "heapq",
        "hmac",
        "ipaddress",
        "numbers",
        "pprint",
        "secrets",
        "unicodedata",
        "xml.etree.ElementTree",
        "zlib",
        "zoneinfo",
        // What installed packages commonly import at load time (`six` needs both): a package's
        // code may import standard modules the Python directories' permissions hide from
        // the unprivileged worker (e.g. a Python under /root), so the common ones are here.
        "__future__",
        "importlib.util",
    ];
    for name in contract::sandbox::DEFAULT_MODULES
        .iter()
        .filter(|m| **m != "re")
        .chain(&extra)
    {
        importlib
            .call_method1("import_module", (*name,))
            .map_err(py_error)?;
    }
    let sys = py.import("sys").map_err(py_error)?;
    let paths: Vec<String> = sys
        .getattr("path")
        .and_then(|p| p.extract())
        .map_err(py_error)?;
    let readable = paths
        .into_iter()
        .filter(|p| std::path::Path::new(p).is_dir())
        .collect();
    let modules: Vec<&str> = contract::sandbox::DEFAULT_MODULES.to_vec();
    let overrides = PyDict::new(py);
    overrides
        .set_item("re", crate::regex_module::module(py).map_err(py_error)?)
        .map_err(py_error)?;
    runtime
        .call_method1(
            "configure",
            (
                wrap_pyfunction!(broker_send, py).map_err(py_error)?,
                wrap_pyfunction!(capture_write, py).map_err(py_error)?,
                overrides,
                PyList::new(py, modules).map_err(py_error)?,
            ),
        )
        .map_err(py_error)?;
    runtime
        .call_method1(
            "configure_content",
            (
                wrap_pyfunction!(crate::content::make_image, py).map_err(py_error)?,
                wrap_pyfunction!(crate::content::make_audio, py).map_err(py_error)?,
                wrap_pyfunction!(crate::content::make_resource, py).map_err(py_error)?,
                wrap_pyfunction!(crate::content::report_progress, py).map_err(py_error)?,
            ),
        )
        .map_err(py_error)?;
    warm_up_zygote(py, &runtime).map_err(py_error)?;
    // The loop every worker inherits (`runtime.make_loop`): built here, never run here.
    let loop_fds = crate::isolation::loop_fds()
        .ok_or_else(|| Error::Python("could not create the event loop's fds".into()))?;
    runtime
        .call_method1("make_loop", loop_fds)
        .map_err(py_error)?;
    // Move everything loaded so far out of the collector's reach: a forked worker's GC then
    // never walks (and so never copies-on-write) the inherited heap.
    // (Collected first: the warm-up's garbage need not be every worker's.)
    py.import("gc")
        .and_then(|gc| gc.call_method0("collect").and(Ok(gc)))
        .and_then(|gc| gc.call_method0("freeze"))
        .map_err(py_error)?;
    Ok((runtime.unbind(), readable, loop_fds))
}

fn py_error(err: PyErr) -> Error {
    Error::Python(err.to_string())
}

// --- State of the one job a worker runs ------------------------------------------------------

/// The worker's socket to the supervisor (fd), used by the `http` bridge.
static SUPERVISOR_FD: AtomicI32 = AtomicI32::new(-1);
/// Captured `print` output.
static CAPTURE: Mutex<Capture> = Mutex::new(Capture {
    text: String::new(),
    cap: 0,
    truncated: false,
    sent: 0,
    last_sent: None,
});

struct Capture {
    text: String,
    cap: usize,
    truncated: bool,
    /// Bytes of `text` already streamed to the supervisor, and when: what it holds of the
    /// output if the worker is killed (timeout, crash, cancellation) before it reports.
    sent: usize,
    last_sent: Option<std::time::Instant>,
}

/// Output is streamed to the supervisor at most this often (a tight `print` loop costs one
/// frame per interval, not one per call).
const STDOUT_STREAM_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

impl Capture {
    /// The output not yet streamed, if it is time to stream it.
    fn due(&mut self) -> Option<String> {
        let now = std::time::Instant::now();
        let due = self
            .last_sent
            .is_none_or(|last| now.duration_since(last) >= STDOUT_STREAM_INTERVAL);
        if !due || self.sent >= self.text.len() {
            return None;
        }
        let chunk = self.text[self.sent..].to_owned();
        self.sent = self.text.len();
        self.last_sent = Some(now);
        Some(chunk)
    }
}

pub fn set_supervisor_fd(fd: i32) {
    SUPERVISOR_FD.store(fd, Ordering::SeqCst);
}

fn supervisor_file() -> ManuallyDrop<File> {
    // SAFETY: the fd stays open for the worker's whole life; ManuallyDrop never closes it.
    ManuallyDrop::new(unsafe { File::from_raw_fd(SUPERVISOR_FD.load(Ordering::SeqCst)) })
}

/// `print` lands here.
#[pyfunction]
fn capture_write(text: &str) {
    let mut capture = CAPTURE.lock().unwrap_or_else(|p| p.into_inner());
    if capture.truncated {
        return;
    }
    let room = capture.cap.saturating_sub(capture.text.len());
    if text.len() <= room {
        capture.text.push_str(text);
    } else {
        let mut end = room;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        capture.text.push_str(&text[..end]);
        capture.truncated = true;
    }
    let chunk = capture.due();
    drop(capture);
    if let Some(text) = chunk {
        send_to_supervisor(&WorkerMessage::Stdout { text });
    }
}

/// A message the supervisor reads while the job runs (output, progress). Best effort: a
/// supervisor that stopped reading has killed this worker anyway.
pub(crate) fn send_to_supervisor(message: &WorkerMessage) {
    if SUPERVISOR_FD.load(Ordering::SeqCst) >= 0 {
        let _ = frame::write_sync(&mut *supervisor_file(), message);
    }
}

/// `http.*` lands here: one request to the supervisor's broker, waiting for its reply.
#[pyfunction]
fn broker_send(py: Python<'_>, request: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let json = to_json(request, 1 << 24).map_err(|err| PyValueError::new_err(err.0))?;
    // `tcp.*` sends operations tagged `op` (`protocol::TcpRequest`); `http.*` the rest.
    let message = if json.starts_with("{\"op\":") {
        WorkerMessage::Tcp(
            serde_json::from_str(&json)
                .map_err(|err| PyValueError::new_err(format!("bad tcp request: {err}")))?,
        )
    } else {
        let request: HttpRequest = serde_json::from_str(&json)
            .map_err(|err| PyValueError::new_err(format!("bad http request: {err}")))?;
        WorkerMessage::Http(request)
    };
    let mut file = supervisor_file();
    frame::write_sync(&mut *file, &message)
        .map_err(|err| PyValueError::new_err(format!("sandbox broker unavailable: {err}")))?;
    // Either reply shape (`HttpReply`, `TcpReply`) is handed to Python as it came.
    let value: serde_json::Value = frame::read_sync(&mut *file, MAX_WORKER_FRAME)
        .map_err(|err| PyValueError::new_err(format!("sandbox broker unavailable: {err}")))?;
    Ok(from_json(py, &value)?.unbind())
}

pub struct ExecuteJob<'a> {
    pub code: &'a str,
    pub arguments: &'a str,
    pub modules: &'a [String],
    pub secrets: &'a std::collections::BTreeMap<String, String>,
    pub stdout_bytes: u64,
    pub result_bytes: u64,
    /// The supervisor has seen this exact code and module list pass the static check.
    pub checked: bool,
    /// Layer tests only: skip the Python-level guards (see `Config::unguarded_python`).
    pub unguarded: bool,
    /// Granted package directories (already checked by the supervisor).
    pub package_paths: &'a [String],
    /// The answers so far and the client's capabilities (`None`: no client to ask).
    pub input: Option<&'a InputContext>,
}

/// Runs a tool: static check, load, call, serialise. Never panics on tool behaviour.
pub fn execute(py: Python<'_>, runtime: &Bound<'_, PyModule>, job: ExecuteJob<'_>) -> Outcome {
    {
        let mut capture = CAPTURE.lock().unwrap_or_else(|p| p.into_inner());
        capture.cap = usize::try_from(job.stdout_bytes).unwrap_or(usize::MAX);
    }
    let (mut result, content) = match execute_inner(py, runtime, &job) {
        Ok((json, content)) => (Ok(json), content),
        Err(error) => (Err(error), Vec::new()),
    };
    // Read after the run whatever it did: requests still pending win over a return value or
    // an exception (a tool that caught `InputRequired` still ends asking).
    let input_required = match pending_input(runtime) {
        Ok(pending) => pending,
        Err(error) => {
            result = Err(error);
            None
        }
    };
    if let Err(error) = &mut result {
        error.required_capability = required_capability(runtime, error);
    }
    let capture = CAPTURE.lock().unwrap_or_else(|p| p.into_inner());
    Outcome::Executed {
        result,
        content,
        stdout: capture.text.clone(),
        stdout_truncated: capture.truncated,
        usage: self_usage(),
        input_required,
    }
}

/// The capability the run failed for want of: only when `InputUnavailable` itself ended it (a
/// tool that caught it and failed later failed for another reason), and only one of
/// `INPUT_CAPABILITIES` (the runtime's record, never the tool's text).
fn required_capability(runtime: &Bound<'_, PyModule>, error: &ToolError) -> Option<String> {
    if error.error_type.as_deref() != Some("InputUnavailable") {
        return None;
    }
    let missing: Option<String> = runtime
        .call_method0("missing_capability")
        .ok()?
        .extract()
        .ok()?;
    missing.filter(|name| contract::sandbox::INPUT_CAPABILITIES.contains(&name.as_str()))
}

/// The requests the run ended with (`runtime.pending_requests`), serialised by Rust like a
/// result, within [`MAX_INPUT_REQUESTS_BYTES`].
fn pending_input(runtime: &Bound<'_, PyModule>) -> Result<Option<InputRequired>, ToolError> {
    let py = runtime.py();
    let pending = runtime
        .call_method0("pending_requests")
        .map_err(|err| tool_error(py, err, ""))?;
    if pending.is_none() {
        return Ok(None);
    }
    let (requests, asked): (Bound<'_, PyAny>, Vec<String>) =
        pending.extract().map_err(|err| tool_error(py, err, ""))?;
    let requests = to_json(&requests, MAX_INPUT_REQUESTS_BYTES).map_err(|err| {
        ToolError::new(
            ErrorKind::Result,
            format!("the tool's questions for the client: {}", err.0),
        )
    })?;
    Ok(Some(InputRequired { requests, asked }))
}

fn execute_inner(
    py: Python<'_>,
    runtime: &Bound<'_, PyModule>,
    job: &ExecuteJob<'_>,
) -> Result<(String, Vec<ContentBlock>), ToolError> {
    if job.unguarded {
        return execute_unguarded(py, runtime, job);
    }
    let errors = if job.checked {
        Vec::new()
    } else {
        static_check(runtime, job.code, job.modules)?
    };
    if let Some(first) = errors.first() {
        let message = errors
            .iter()
            .map(|e| format!("line {}: {}", e.line, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        let mut error = ToolError::new(ErrorKind::Validation, message).at_line(Some(first.line));
        error.traceback = check_frames(&errors);
        return Err(error);
    }
    let arguments: serde_json::Value = serde_json::from_str(job.arguments).map_err(|err| {
        ToolError::new(
            ErrorKind::Arguments,
            format!("the arguments are not valid JSON: {err}"),
        )
    })?;
    if !arguments.is_object() {
        return Err(ToolError::new(
            ErrorKind::Arguments,
            "the arguments must be a JSON object",
        ));
    }
    let internal = |err: PyErr| tool_error(py, err, "");
    let arguments = from_json(py, &arguments).map_err(internal)?;
    let arguments = arguments
        .cast_into::<PyDict>()
        .map_err(|_| ToolError::new(ErrorKind::Internal, "arguments did not convert to a dict"))?;
    let secrets = PyDict::new(py);
    for (key, value) in job.secrets {
        secrets.set_item(key, value).map_err(internal)?;
    }
    let modules = PyList::new(py, job.modules).map_err(internal)?;
    if !job.package_paths.is_empty() {
        let paths = PyList::new(py, job.package_paths).map_err(internal)?;
        runtime
            .call_method1("add_package_paths", (paths,))
            .map_err(internal)?;
    }
    let asking = match job.input {
        None => py.None().into_bound(py),
        Some(input) => {
            let answers: serde_json::Value =
                serde_json::from_str(&input.answers).map_err(|err| {
                    ToolError::new(
                        ErrorKind::Arguments,
                        format!("the answers are not JSON: {err}"),
                    )
                })?;
            let answers = from_json(py, &answers).map_err(internal)?;
            let capabilities = PyList::new(py, &input.capabilities).map_err(internal)?;
            PyTuple::new(py, [answers, capabilities.into_any()])
                .map_err(internal)?
                .into_any()
        }
    };
    let main = runtime
        .call_method1("load", (job.code, modules, secrets, asking))
        .map_err(|err| {
            let mut error = tool_error(py, err, job.code);
            if error
                .message
                .starts_with("LookupError: the code defines no main")
            {
                error = ToolError::new(
                    ErrorKind::Validation,
                    "the code must define a function named main",
                );
            }
            error
        })?;
    let result = runtime
        .call_method1("call", (main, arguments))
        .map_err(|err| tool_error(py, err, job.code))?;
    let limit = usize::try_from(job.result_bytes).unwrap_or(usize::MAX);
    crate::content::to_result(&result, limit)
        .map_err(|err| ToolError::new(ErrorKind::Result, err.0))
}

/// The warm-up tool: our own code, never a tool's.
const WARM_UP_CODE: &str = "def main():\n    return {'a': [1, 'b', None, 1.5, True]}\n";
const WARM_UP_ASYNC_CODE: &str = "async def main():\n    return {'a': [1, 'b', None, 1.5, True]}\n";

/// Once, in the zygote, before `gc.freeze`: the warm-up tool through the whole call path, sync
/// and async (on a loop of its own, closed after, which closes its fds too), so whatever that
/// path builds lazily the first time (interned names, method caches, asyncio's internals) is
/// built once in the memory every worker shares instead of in each worker. Nothing of it is
/// reachable from a tool: `load` gives every run fresh globals.
fn warm_up_zygote(py: Python<'_>, runtime: &Bound<'_, PyModule>) -> PyResult<()> {
    let modules = PyList::new(py, contract::sandbox::DEFAULT_MODULES)?;
    let main = runtime.call_method1("load", (WARM_UP_CODE, &modules, PyDict::new(py)))?;
    let result = runtime.call_method1("call", (main, PyDict::new(py)))?;
    let _ = crate::content::to_result(&result, 1024);
    let fds = crate::isolation::loop_fds()
        .ok_or_else(|| PyValueError::new_err("could not create the warm-up loop's fds"))?;
    let main = runtime.call_method1("load", (WARM_UP_ASYNC_CODE, &modules, PyDict::new(py)))?;
    let result = runtime.call_method1("run_closing", (main, fds))?;
    let _ = crate::content::to_result(&result, 1024);
    Ok(())
}

/// In each worker while it waits in the pool: the warm-up tool again (sync: no loop), so the
/// copy-on-write faults of the call path are paid before a call rather than during it. Our own
/// code; nothing of it is visible to the next job.
pub fn warm_up(py: Python<'_>, runtime: &Bound<'_, PyModule>) {
    let modules = PyList::new(py, contract::sandbox::DEFAULT_MODULES);
    let warmed = modules.and_then(|modules| {
        let main = runtime.call_method1("load", (WARM_UP_CODE, modules, PyDict::new(py)))?;
        runtime.call_method1("call", (main, PyDict::new(py)))
    });
    if let Ok(result) = warmed {
        let _ = crate::content::to_result(&result, 1024);
    }
}

fn execute_unguarded(
    py: Python<'_>,
    runtime: &Bound<'_, PyModule>,
    job: &ExecuteJob<'_>,
) -> Result<(String, Vec<ContentBlock>), ToolError> {
    let main = runtime
        .call_method1("load_unguarded", (job.code,))
        .map_err(|e| tool_error(py, e, job.code))?;
    let result = runtime
        .call_method1("call", (main, PyDict::new(py)))
        .map_err(|e| tool_error(py, e, job.code))?;
    to_json(&result, 1 << 20)
        .map(|json| (json, Vec::new()))
        .map_err(|err| ToolError::new(ErrorKind::Result, err.0))
}

fn static_check(
    runtime: &Bound<'_, PyModule>,
    code: &str,
    modules: &[String],
) -> Result<Vec<CodeError>, ToolError> {
    let py = runtime.py();
    let found = runtime
        .call_method1(
            "check",
            (
                code,
                PyList::new(py, modules).map_err(|e| tool_error(py, e, ""))?,
            ),
        )
        .map_err(|err| tool_error(py, err, ""))?;
    let found: Vec<(u32, u32, String)> = found.extract().map_err(|err| tool_error(py, err, ""))?;
    Ok(found
        .into_iter()
        .map(|(line, col, message)| CodeError {
            line,
            col,
            message,
            source: source_line(code, line),
        })
        .collect())
}

/// Validation: the static check plus `main`'s schema. Runs in a worker like execution does,
/// because parsing hostile source is itself untrusted work.
pub fn validate(runtime: &Bound<'_, PyModule>, code: &str, modules: &[String]) -> Outcome {
    let mut errors = match static_check(runtime, code, modules) {
        Ok(errors) => errors,
        Err(err) => vec![CodeError {
            line: err.line.unwrap_or(1),
            col: 1,
            message: err.message,
            source: String::new(),
        }],
    };
    let described = runtime.call_method1("describe", (code,)).and_then(|d| {
        d.extract::<(
            bool,
            Option<String>,
            Option<Bound<'_, PyAny>>,
            Option<Bound<'_, PyAny>>,
        )>()
    });
    let (has_main, description, schema, output_schema) = match described {
        Ok((has_main, description, schema, output)) => {
            let schema = schema.and_then(|s| to_json(&s, 1 << 20).ok());
            let output = output.and_then(|s| to_json(&s, 1 << 20).ok());
            (has_main, description, schema, output)
        }
        Err(_) => (false, None, None, None),
    };
    if !has_main && errors.is_empty() {
        errors.push(CodeError {
            line: 1,
            col: 1,
            message: "the code must define a function named main".into(),
            source: String::new(),
        });
    }
    Outcome::Validated(ValidateResponse {
        valid: errors.is_empty() && has_main,
        has_main,
        errors,
        input_schema: schema,
        output_schema,
        description,
    })
}

/// A tool's exception as a `ToolError`: its kind and category, the exception's class, and the
/// traceback through the tool's own source (`code`; empty when the error is not the tool's).
fn tool_error(py: Python<'_>, err: PyErr, code: &str) -> ToolError {
    let kind = if err.is_instance_of::<PyMemoryError>(py) {
        ErrorKind::Memory
    } else if err.is_instance_of::<PyImportError>(py) {
        ErrorKind::Import
    } else {
        ErrorKind::Runtime
    };
    let exception_type = err.get_type(py);
    let type_name = exception_type
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".to_owned());
    let detail = if err.is_instance_of::<PyRecursionError>(py) {
        "maximum recursion depth exceeded".to_owned()
    } else {
        err.value(py)
            .str()
            .map(|s| s.to_string())
            .unwrap_or_default()
    };
    let mut message = if detail.is_empty() {
        type_name.clone()
    } else {
        format!("{type_name}: {detail}")
    };
    cut_text(&mut message, 4000);
    let traceback = tool_frames(py, &err, code);
    let mut error = ToolError::new(kind, message).at_line(traceback.last().map(|f| f.line));
    if kind == ErrorKind::Runtime && is_network_error(&exception_type) {
        error.category = ErrorCategory::Network;
    }
    error.error_type = Some(type_name);
    error.traceback = traceback;
    error
}

/// Cuts `text` to at most `limit` bytes (on a character boundary), marking the cut with `…`.
fn cut_text(text: &mut String, limit: usize) {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
}

/// The runtime's own HTTP exceptions (a refused host, a failed request, `raise_for_status`).
/// Read from the class's `__module__` in its type dict: a tool's class of the same name lives
/// in module `tool`.
fn is_network_error(exception_type: &Bound<'_, pyo3::types::PyType>) -> bool {
    let module = exception_type
        .getattr("__module__")
        .and_then(|m| m.extract::<String>())
        .unwrap_or_default();
    let name = exception_type
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    module == "mcpbox_runtime" && matches!(name.as_str(), "HTTPError" | "HTTPStatusError")
}

/// Frames kept of a deep traceback (the innermost ones: where it failed).
const MAX_FRAMES: usize = 20;
/// Longest source line quoted in a frame.
const MAX_SOURCE_CHARS: usize = 200;

/// The traceback's frames that run the tool's own source (`<tool>`), outermost first. Walks the
/// C-level traceback objects (their attributes are not the tool's to redefine).
fn tool_frames(py: Python<'_>, err: &PyErr, code: &str) -> Vec<TraceFrame> {
    let mut frames = Vec::new();
    let mut current = err.traceback(py).map(Bound::into_any);
    while let Some(tb) = current {
        let f_code = tb.getattr("tb_frame").and_then(|f| f.getattr("f_code"));
        let in_tool = f_code
            .as_ref()
            .ok()
            .and_then(|c| c.getattr("co_filename").ok())
            .and_then(|n| n.extract::<String>().ok())
            .is_some_and(|name| name == "<tool>");
        if in_tool && let Ok(line) = tb.getattr("tb_lineno").and_then(|l| l.extract::<u32>()) {
            let function = f_code
                .and_then(|c| c.getattr("co_name"))
                .and_then(|n| n.extract::<String>())
                .unwrap_or_default();
            frames.push(TraceFrame {
                line,
                function,
                source: source_line(code, line),
            });
        }
        current = tb.getattr("tb_next").ok().filter(|next| !next.is_none());
    }
    if frames.len() > MAX_FRAMES {
        frames.drain(..frames.len() - MAX_FRAMES);
    }
    frames
}

/// Line `line` (1-based) of `code`, stripped and cut to a readable length.
fn source_line(code: &str, line: u32) -> String {
    let text = code
        .lines()
        .nth((line as usize).saturating_sub(1))
        .filter(|_| line > 0)
        .unwrap_or("")
        .trim();
    match text.char_indices().nth(MAX_SOURCE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Static-check errors as frames (what `ValidateResponse::as_tool_error` builds too).
fn check_frames(errors: &[CodeError]) -> Vec<TraceFrame> {
    errors
        .iter()
        .take(MAX_FRAMES)
        .map(|e| TraceFrame {
            line: e.line,
            function: contract::sandbox::CHECK_FRAME.to_owned(),
            source: e.source.clone(),
        })
        .collect()
}

fn self_usage() -> Usage {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let ms = |tv: libc::timeval| (tv.tv_sec as u64) * 1000 + (tv.tv_usec as u64) / 1000;
    Usage {
        cpu_ms: ms(usage.ru_utime) + ms(usage.ru_stime),
        max_rss_kb: usage.ru_maxrss as u64,
    }
}

pub fn flush_stdio() {
    let _ = std::io::stdout().flush();
}

// --- JSON ⇄ Python ----------------------------------------------------------------------------

pub struct JsonError(pub String);

const MAX_DEPTH: usize = 64;

/// Serialises a Python value to JSON text using exact type checks and C-level access only.
pub fn to_json(value: &Bound<'_, PyAny>, limit: usize) -> Result<String, JsonError> {
    let mut out = String::new();
    write_json(value, 0, limit, &mut out)?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

pub(crate) fn write_json(
    value: &Bound<'_, PyAny>,
    depth: usize,
    limit: usize,
    out: &mut String,
) -> Result<(), JsonError> {
    if out.len() > limit {
        return Err(JsonError(format!(
            "the result is larger than the limit of {limit} bytes"
        )));
    }
    if depth > MAX_DEPTH {
        return Err(JsonError(format!(
            "the result is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if value.is_none() {
        out.push_str("null");
    } else if let Ok(b) = value.cast::<PyBool>() {
        out.push_str(if b.is_true() { "true" } else { "false" });
    } else if let Ok(i) = value.cast::<PyInt>() {
        match i.extract::<i128>() {
            Ok(n) => out.push_str(&n.to_string()),
            Err(_) => {
                return Err(JsonError(
                    "the result has an integer too large for JSON".into(),
                ));
            }
        }
    } else if let Ok(f) = value.cast::<PyFloat>() {
        let x = f.value();
        if !x.is_finite() {
            return Err(JsonError(
                "the result has a NaN or infinite number, which JSON cannot hold".into(),
            ));
        }
        out.push_str(
            &serde_json::Number::from_f64(x)
                .map(|n| n.to_string())
                .unwrap_or_else(|| "null".into()),
        );
    } else if let Ok(s) = value.cast::<PyString>() {
        let text = s
            .to_str()
            .map_err(|_| JsonError("the result has a string that is not valid Unicode".into()))?;
        push_json_string(text, out);
    } else if let Ok(dict) = value.cast::<PyDict>() {
        out.push('{');
        for (index, (key, item)) in dict.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            push_json_string(&json_key(&key)?, out);
            out.push(':');
            write_json(&item, depth + 1, limit, out)?;
        }
        out.push('}');
    } else if let Ok(list) = value.cast::<PyList>() {
        out.push('[');
        for index in 0..list.len() {
            if index > 0 {
                out.push(',');
            }
            let item = list
                .get_item(index)
                .map_err(|_| JsonError("the result list changed while being read".into()))?;
            write_json(&item, depth + 1, limit, out)?;
        }
        out.push(']');
    } else if let Ok(tuple) = value.cast::<PyTuple>() {
        out.push('[');
        for (index, item) in tuple.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            write_json(&item, depth + 1, limit, out)?;
        }
        out.push(']');
    } else if crate::content::is_content(value) {
        return Err(JsonError(
            "image(), audio() and resource() may be returned alone or as items of the list main returns, not inside other values".into(),
        ));
    } else {
        let type_name = value
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "object".into());
        return Err(JsonError(format!(
            "main returned a value of type {type_name}, which is not JSON (use dict, list, str, int, float, bool or None)"
        )));
    }
    Ok(())
}

fn too_large(limit: usize) -> JsonError {
    JsonError(format!(
        "the result is larger than the limit of {limit} bytes"
    ))
}

/// Object keys: strings as they are; numbers, booleans and None as json.dumps would write them.
fn json_key(key: &Bound<'_, PyAny>) -> Result<String, JsonError> {
    if let Ok(s) = key.cast::<PyString>() {
        return s
            .to_str()
            .map(str::to_owned)
            .map_err(|_| JsonError("a result key is not valid Unicode".into()));
    }
    if key.is_none() {
        return Ok("null".into());
    }
    if let Ok(b) = key.cast::<PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.into());
    }
    if let Ok(i) = key.cast::<PyInt>()
        && let Ok(n) = i.extract::<i128>()
    {
        return Ok(n.to_string());
    }
    if let Ok(f) = key.cast::<PyFloat>() {
        return Ok(f.value().to_string());
    }
    Err(JsonError(
        "the result has a dict key that is not a string".into(),
    ))
}

fn push_json_string(text: &str, out: &mut String) {
    // serde_json's escaping; writing into a String cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into()));
}

/// Builds Python objects from JSON (arguments, broker replies).
pub fn from_json<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use pyo3::IntoPyObjectExt;
    Ok(match value {
        serde_json::Value::Null => py.None().into_bound(py),
        serde_json::Value::Bool(b) => b.into_bound_py_any(py)?,
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_bound_py_any(py)?
            } else if let Some(u) = n.as_u64() {
                u.into_bound_py_any(py)?
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_bound_py_any(py)?
            }
        }
        serde_json::Value::String(s) => s.into_bound_py_any(py)?,
        serde_json::Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(from_json(py, item)?)?;
            }
            list.into_any()
        }
        serde_json::Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, from_json(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

#[cfg(test)]
mod tests {
    /// The Python runtime and `contract` must refuse the same modules.
    #[test]
    fn never_importable_lists_agree() {
        let block = super::RUNTIME_SOURCE
            .split_once("NEVER_IMPORTABLE = frozenset({")
            .and_then(|(_, rest)| rest.split_once("})"))
            .map(|(block, _)| block)
            .expect("NEVER_IMPORTABLE in runtime.py");
        let mut python: Vec<&str> = block.split('"').skip(1).step_by(2).collect();
        let mut contract: Vec<&str> = contract::sandbox::NEVER_IMPORTABLE.to_vec();
        python.sort_unstable();
        contract.sort_unstable();
        assert_eq!(python, contract);
    }
}
