//! Sandbox dispatch: the one path from the origin to the sandbox supervisor.
//!
//! Requests go over the supervisor's unix socket (length-prefixed JSON, `contract::sandbox`)
//! on pooled connections that have passed the key handshake. Every request has a timeout; a
//! circuit breaker stops sending after repeated sandbox failures (tool errors do not count) and
//! lets one probe through after a pause. Nothing is retried: an `execute` that failed in transit
//! may have run, and running a tool twice is worse than reporting the failure.
//!
//! By default `mcpbox serve` starts the supervisor itself (`mcpbox-sandbox` next to `mcpbox`) with
//! a fresh key in the data directory, so one command runs the whole product; `--sandbox-socket`
//! points at a supervisor run separately instead.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use contract::sandbox::{
    ExecuteRequest, ExecuteResponse, HealthResponse, Hello, MAX_FRAME_BYTES, Progress, Request,
    Response, ValidateRequest, ValidateResponse,
};
use rand::RngCore;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Extra time beyond a tool's own limit before the origin gives up on the answer.
pub const EXECUTE_MARGIN: Duration = Duration::from_secs(5);
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(15);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle connections kept for reuse.
const POOL_SIZE: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The breaker is open, or the sandbox cannot be reached. The tool did not run.
    #[error("the sandbox is unavailable: {0}")]
    Unavailable(String),
    /// The request was sent but no good answer came back. The tool may have run.
    #[error("the sandbox did not answer properly: {0}")]
    Failed(String),
    /// The sandbox refused the request itself (malformed, or it could not serve it).
    #[error("the sandbox refused the request: {0}")]
    Refused(String),
}

impl DispatchError {
    /// The variant as a word (the trace's `error.type`).
    fn kind(&self) -> &'static str {
        match self {
            DispatchError::Unavailable(_) => "unavailable",
            DispatchError::Failed(_) => "failed",
            DispatchError::Refused(_) => "refused",
        }
    }
}

pub struct Sandbox {
    socket: PathBuf,
    key: String,
    /// Idle authenticated connections. A std mutex: held only to push or pop.
    idle: Mutex<Vec<UnixStream>>,
    breaker: Breaker,
    /// The supervisor this origin started, killed when the origin exits.
    child: Option<tokio::process::Child>,
    /// Why there is no sandbox at all (`Sandbox::unavailable`, for tests without one).
    missing: Option<String>,
    /// Told when the breaker opens (set once by `AppState::new`).
    alerts: OnceLock<crate::alerts::Alerts>,
}

/// Where the sandbox comes from (from the command line).
#[derive(Debug, Clone)]
pub enum SandboxSource {
    /// Start `binary serve` with a socket and key in `data_dir`.
    Spawn { binary: PathBuf, data_dir: PathBuf },
    /// Connect to a supervisor run separately.
    External { socket: PathBuf, key_file: PathBuf },
}

impl Sandbox {
    /// Starts or connects to the sandbox. A missing binary is an error: without the sandbox no
    /// tool can be validated, tested or called, so `serve` refuses to start rather than claim it
    /// is ready (see `app::serve`, which also waits for the first health answer).
    pub async fn open(source: SandboxSource) -> anyhow::Result<Sandbox> {
        match source {
            SandboxSource::External { socket, key_file } => {
                let key = std::fs::read_to_string(&key_file)
                    .with_context(|| format!("cannot read the sandbox key {}", key_file.display()))?
                    .trim()
                    .to_owned();
                Ok(Sandbox::new(socket, key, None, None))
            }
            SandboxSource::Spawn { binary, data_dir } => {
                let socket = data_dir.join("sandbox.sock");
                anyhow::ensure!(
                    binary.exists(),
                    "the sandbox binary {} is missing, so no tool could run. Build both binaries \
                     (./scripts/run does; or cargo build --release -p mcpbox-origin -p \
                     mcpbox-sandbox), pass --sandbox-binary, or run a supervisor yourself and pass \
                     --sandbox-socket and --sandbox-key-file",
                    binary.display()
                );
                let (child, key) = spawn_supervisor(&binary, &data_dir, &socket).await?;
                Ok(Sandbox::new(socket, key, Some(child), None))
            }
        }
    }

    /// A sandbox that is never available (tests of parts that do not need one).
    pub fn unavailable(why: &str) -> Sandbox {
        Sandbox::new(
            PathBuf::from("/nonexistent"),
            String::new(),
            None,
            Some(why.to_owned()),
        )
    }

    fn new(
        socket: PathBuf,
        key: String,
        child: Option<tokio::process::Child>,
        missing: Option<String>,
    ) -> Sandbox {
        Sandbox {
            socket,
            key,
            idle: Mutex::new(Vec::new()),
            breaker: Breaker::default(),
            child,
            missing,
            alerts: OnceLock::new(),
        }
    }

    /// Where the breaker's opening is raised (`alerts::Kind::BreakerOpened`).
    pub fn raise_alerts_to(&self, alerts: crate::alerts::Alerts) {
        let _ = self.alerts.set(alerts);
    }

    /// Counts an outcome against the breaker; its closed → open transition raises an alert (a
    /// non-blocking `try_send`, so a call is never slowed by it).
    fn record(&self, success: bool) {
        if self.breaker.record(success)
            && let Some(alerts) = self.alerts.get()
        {
            alerts.raise(
                crate::alerts::Kind::BreakerOpened,
                "sandbox",
                format!(
                    "the sandbox circuit breaker opened after {} consecutive sandbox failures: \
                     tool calls are refused for {} s, then one probe is let through (or reset it \
                     at /api/health/circuits/reset)",
                    Breaker::FAILURES,
                    Breaker::PAUSE.as_secs()
                ),
                serde_json::json!({
                    "consecutive_failures": Breaker::FAILURES,
                    "pause_seconds": Breaker::PAUSE.as_secs(),
                }),
            );
        }
    }

    /// Runs a tool in the sandbox. Traced as a client span around the whole exchange; the trace
    /// context is not passed over the socket (the supervisor exports nothing), so the
    /// sandbox's own time is the span's `mcpbox.sandbox.duration_ms`.
    #[tracing::instrument(name = "sandbox execute", skip_all, fields(
        otel.kind = "client",
        rpc.system = "mcpbox-sandbox",
        rpc.method = "execute",
        mcpbox.sandbox.duration_ms = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    ))]
    pub async fn execute(
        &self,
        request: ExecuteRequest,
        progress: Option<tokio::sync::mpsc::Sender<Progress>>,
    ) -> Result<ExecuteResponse, DispatchError> {
        let timeout = Duration::from_millis(request.limits.clamped().timeout_ms) + EXECUTE_MARGIN;
        // Dropping this future (the caller cancelled or went away) drops the connection, which
        // tells the supervisor to kill the worker.
        let answer = match progress {
            Some(progress) => {
                self.send_observed(
                    &Request::ExecuteStreaming(request),
                    timeout,
                    Some(&progress),
                )
                .await
            }
            None => self.send(&Request::Execute(request), timeout).await,
        };
        let span = tracing::Span::current();
        if let Err(err) = &answer {
            span.record("error.type", err.kind());
            span.record("otel.status_code", "error");
        }
        match answer? {
            Response::Execute(response) => {
                span.record("mcpbox.sandbox.duration_ms", response.duration_ms);
                // A tool's own failure is an answer; only the sandbox failing counts against it.
                let sandbox_failed = response
                    .error
                    .as_ref()
                    .is_some_and(|e| e.kind == contract::sandbox::ErrorKind::Internal);
                self.record(!sandbox_failed);
                Ok(response)
            }
            other => Err(self.unexpected(other)),
        }
    }

    pub async fn validate(
        &self,
        request: ValidateRequest,
    ) -> Result<ValidateResponse, DispatchError> {
        match self
            .send(&Request::Validate(request), VALIDATE_TIMEOUT)
            .await?
        {
            Response::Validate(response) => {
                self.record(true);
                Ok(response)
            }
            other => Err(self.unexpected(other)),
        }
    }

    pub async fn health(&self) -> Result<HealthResponse, DispatchError> {
        match self.send(&Request::Health, HEALTH_TIMEOUT).await? {
            Response::Health(response) => {
                self.record(true);
                Ok(response)
            }
            other => Err(self.unexpected(other)),
        }
    }

    /// The supervisor this origin started, if any (diagnostics and tests).
    pub fn supervisor_pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(tokio::process::Child::id)
    }

    pub fn circuit(&self) -> CircuitState {
        self.breaker.state()
    }

    pub fn reset_circuit(&self) {
        self.breaker.reset();
    }

    fn unexpected(&self, response: Response) -> DispatchError {
        match response {
            Response::Error { message } => {
                self.record(false);
                DispatchError::Refused(message)
            }
            other => {
                self.record(false);
                DispatchError::Failed(format!("unexpected answer {other:?}"))
            }
        }
    }

    async fn send(&self, request: &Request, timeout: Duration) -> Result<Response, DispatchError> {
        self.send_observed(request, timeout, None).await
    }

    /// `send`, passing `Response::Progress` frames that come before the answer to `progress`
    /// (dropped when it is full).
    async fn send_observed(
        &self,
        request: &Request,
        timeout: Duration,
        progress: Option<&tokio::sync::mpsc::Sender<Progress>>,
    ) -> Result<Response, DispatchError> {
        if let Some(why) = &self.missing {
            return Err(DispatchError::Unavailable(why.clone()));
        }
        if !self.breaker.allow() {
            return Err(DispatchError::Unavailable(
                "too many recent sandbox failures; the circuit breaker is open (it retries by itself, or reset it at /api/health/circuits/reset)".into(),
            ));
        }
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut stream = match pooled {
            Some(stream) => stream,
            None => match self.connect().await {
                Ok(stream) => stream,
                Err(err) => {
                    self.record(false);
                    return Err(DispatchError::Unavailable(err));
                }
            },
        };
        let exchange = async {
            write_frame(&mut stream, request).await?;
            loop {
                match read_frame(&mut stream).await? {
                    Response::Progress(report) => {
                        if let Some(progress) = progress {
                            let _ = progress.try_send(report);
                        }
                    }
                    answer => return Ok::<_, std::io::Error>(answer),
                }
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(response)) => {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                if idle.len() < POOL_SIZE {
                    idle.push(stream);
                }
                Ok(response)
            }
            Ok(Err(err)) => {
                self.record(false);
                Err(DispatchError::Failed(err.to_string()))
            }
            Err(_) => {
                self.record(false);
                Err(DispatchError::Failed(format!(
                    "no answer within {} s",
                    timeout.as_secs()
                )))
            }
        }
    }

    async fn connect(&self) -> Result<UnixStream, String> {
        let connect = UnixStream::connect(&self.socket);
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| "connecting timed out".to_owned())?
            .map_err(|err| format!("cannot connect to {}: {err}", self.socket.display()))?;
        write_frame(
            &mut stream,
            &Hello {
                key: self.key.clone(),
            },
        )
        .await
        .map_err(|err| format!("handshake: {err}"))?;
        Ok(stream)
    }
}

async fn write_frame(stream: &mut UnixStream, value: &impl Serialize) -> std::io::Result<()> {
    let body = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(|_| std::io::Error::other("request too large"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await
}

async fn read_frame(stream: &mut UnixStream) -> std::io::Result<Response> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME_BYTES {
        return Err(std::io::Error::other(format!(
            "answer of {len} bytes is over the limit"
        )));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(std::io::Error::other)
}

/// Starts `mcpbox-sandbox serve` with a fresh key (0600) and waits until it listens.
async fn spawn_supervisor(
    binary: &Path,
    data_dir: &Path,
    socket: &Path,
) -> anyhow::Result<(tokio::process::Child, String)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let key = hex::encode(raw);
    let key_file = data_dir.join("sandbox.key");
    let _ = std::fs::remove_file(&key_file);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_file)?;
    std::io::Write::write_all(&mut file, key.as_bytes())?;
    let mut command = tokio::process::Command::new(binary);
    command
        .arg("serve")
        .arg("--socket")
        .arg(socket)
        .arg("--key-file")
        .arg(&key_file)
        .env_remove("MCPBOX_SANDBOX_KEY")
        .env("MCPBOX_SANDBOX_PACKAGES_DIR", data_dir.join("packages"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    // If the origin dies without dropping it (SIGKILL), the supervisor follows. The signal fires
    // when the spawning thread exits: a runtime worker thread, alive as long as the origin.
    // SAFETY: prctl is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let stdout = child.stdout.take().context("supervisor stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let listening = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("mcpbox-sandbox listening on") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    anyhow::ensure!(
        listening,
        "the sandbox supervisor did not start (its log is above)"
    );
    tracing::info!(socket = %socket.display(), "sandbox supervisor started");
    Ok((child, key))
}

/// Circuit breaker state, as shown by the health endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

/// Opens after `FAILURES` consecutive sandbox failures; after `PAUSE` one probe is let through
/// (half-open) and its outcome closes or reopens it.
#[derive(Debug, Default)]
struct Breaker {
    /// (consecutive failures, opened at). A std mutex: held for a few assignments only.
    state: Mutex<(u32, Option<Instant>)>,
}

impl Breaker {
    const FAILURES: u32 = 5;
    const PAUSE: Duration = Duration::from_secs(30);

    fn allow(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.1 {
            None => true,
            Some(opened) if opened.elapsed() >= Self::PAUSE => {
                // Half-open: this caller is the probe; others wait for its outcome.
                state.1 = Some(Instant::now());
                true
            }
            Some(_) => false,
        }
    }

    /// Whether this outcome opened a closed breaker (a failed half-open probe reopens it: not
    /// a new opening).
    fn record(&self, success: bool) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if success {
            *state = (0, None);
            false
        } else {
            state.0 += 1;
            if state.0 >= Self::FAILURES {
                let opened = state.1.is_none();
                state.1 = Some(Instant::now());
                return opened;
            }
            false
        }
    }

    fn state(&self) -> CircuitState {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.1 {
            None => CircuitState::Closed,
            Some(opened) if opened.elapsed() >= Self::PAUSE => CircuitState::HalfOpen,
            Some(_) => CircuitState::Open,
        }
    }

    fn reset(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = (0, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_repeated_failures_and_closes_on_success() {
        let breaker = Breaker::default();
        for _ in 0..Breaker::FAILURES - 1 {
            assert!(!breaker.record(false));
            assert!(breaker.allow());
        }
        assert!(breaker.record(false), "the opening is reported once");
        assert!(!breaker.record(false), "already open");
        assert_eq!(breaker.state(), CircuitState::Open);
        assert!(!breaker.allow());
        // After the pause, one probe goes through; its success closes the breaker.
        breaker.state.lock().unwrap().1 = Some(Instant::now() - Breaker::PAUSE);
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        assert!(breaker.allow());
        assert!(!breaker.allow(), "only one probe at a time");
        breaker.record(true);
        assert_eq!(breaker.state(), CircuitState::Closed);
        breaker.record(false);
        assert_eq!(
            breaker.state(),
            CircuitState::Closed,
            "one failure does not open it"
        );
    }

    #[tokio::test]
    async fn a_missing_sandbox_is_reported_not_fatal() {
        let sandbox = Sandbox::unavailable("no binary");
        let err = sandbox.health().await.unwrap_err();
        assert!(matches!(err, DispatchError::Unavailable(ref m) if m == "no binary"));
    }
}
