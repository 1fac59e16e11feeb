//! The supervisor: a tokio process that never embeds Python. It starts the zygote, keeps a pool
//! of pre-forked, already-hardened workers, hands each call to one worker, serves that worker's
//! HTTP requests through the broker, and kills it at the wall-clock deadline. A worker that
//! crashes or is killed fails only its own call.

use std::collections::{HashMap, VecDeque};
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use contract::sandbox::{
    DEFAULT_MODULES, ErrorKind, ExecuteRequest, ExecuteResponse, HealthResponse, Layers, Progress,
    ToolError, Usage, ValidateRequest, ValidateResponse,
};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, socketpair,
};
use tokio::net::UnixStream;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::broker::{AddressPolicy, Broker, CallScope};
use crate::error::Error;
use crate::frame::{self, FrameError};
use crate::protocol::{
    ExitInfo, HttpReply, Job, MAX_WORKER_FRAME, Outcome, WorkerMessage, ZygoteCommand,
    ZygoteMessage,
};

/// How long a call may wait for a free worker before it fails (the pool refills in about a
/// millisecond; this only bites when the zygote is down).
const WORKER_WAIT: Duration = Duration::from_secs(10);
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Config {
    /// Idle, pre-forked workers kept ready.
    pub pool_size: usize,
    /// The `mcpbox-sandbox` binary, run as `zygote`.
    pub program: PathBuf,
    /// Layer tests only: workers run tool code with full builtins and no static check, so tests
    /// can attack the OS layers directly. No command-line flag or variable sets this.
    pub unguarded_python: bool,
    /// Installed PyPI packages (see `packages`): workers may read this directory, and a call
    /// imports only from the package directories under it that its request grants.
    pub packages_dir: Option<PathBuf>,
}

#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    /// Sending side of the zygote's control socket; `None` while the zygote is down.
    control: Mutex<Option<Arc<OwnedFd>>>,
    /// Pre-forked workers waiting for a job, oldest first.
    idle: Mutex<VecDeque<Worker>>,
    /// Signalled when a worker joins `idle`.
    available: Notify,
    /// Exit reports from the zygote, for explaining crashes.
    exits: Mutex<ExitBook>,
    /// Layers reported by the zygote (network namespace, clean environment).
    zygote_layers: Mutex<(bool, bool)>,
    /// Layers reported by the most recent worker.
    worker_layers: Mutex<Option<Layers>>,
    broker: Broker,
    /// Woken when the zygote's control socket closes, to restart it.
    zygote_down: Notify,
    /// The current zygote's pid (0 when none), for shutdown.
    zygote_pid: AtomicI32,
    /// Set by `shutdown`, so a zygote that exits then is not restarted.
    stopping: AtomicBool,
    /// Dead zygotes restarted since start (`health` reports it; the origin alerts on a rise).
    zygote_restarts: AtomicU64,
    /// (module list, code) pairs a worker has seen pass the static check.
    checked: Mutex<CheckedCodes>,
}

/// The static check is a pure function of the code and the module list, so once a worker has
/// passed a pair, later workers may skip re-checking it (the most expensive step of a call in a
/// fresh fork). Bounded; forgetting a pair only costs a re-check.
#[derive(Default)]
struct CheckedCodes {
    known: std::collections::HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl CheckedCodes {
    const KEEP: usize = 4096;

    fn key(code: &str, modules: &[String]) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut sorted: Vec<&String> = modules.iter().collect();
        sorted.sort();
        let mut hash = Sha256::new();
        for module in sorted {
            hash.update(module.as_bytes());
            hash.update([0]);
        }
        hash.update([0]);
        hash.update(code.as_bytes());
        hash.finalize().into()
    }

    fn insert(&mut self, key: [u8; 32]) {
        if self.known.insert(key) {
            self.order.push_back(key);
            if self.order.len() > Self::KEEP
                && let Some(old) = self.order.pop_front()
            {
                self.known.remove(&old);
            }
        }
    }
}

/// A worker taken for one call; dropping it asks for its replacement if that was deferred,
/// and kills the worker unless it reported (a call dropped midway, i.e. cancelled, must not
/// leave its tool running).
struct Lease {
    worker: Worker,
    supervisor: Supervisor,
    /// Whether the replacement was already requested when the worker was taken.
    replaced: bool,
    /// The worker reported its outcome (it exits by itself).
    settled: bool,
}

impl std::ops::Deref for Lease {
    type Target = Worker;
    fn deref(&self) -> &Worker {
        &self.worker
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Worker {
        &mut self.worker
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.settled {
            kill(&self.worker);
        }
        if !self.replaced {
            self.supervisor.request_spawn();
        }
    }
}

struct Worker {
    pid: i32,
    /// Refers to this exact process even after it exits, so a kill can never hit a reused pid.
    pidfd: Option<OwnedFd>,
    stream: UnixStream,
}

#[derive(Default)]
struct ExitBook {
    recent: HashMap<i32, ExitInfo>,
    order: VecDeque<i32>,
    waiters: HashMap<i32, oneshot::Sender<ExitInfo>>,
}

impl ExitBook {
    const KEEP: usize = 512;

    fn record(&mut self, pid: i32, exit: ExitInfo) {
        if let Some(waiter) = self.waiters.remove(&pid) {
            let _ = waiter.send(exit);
            return;
        }
        self.recent.insert(pid, exit);
        self.order.push_back(pid);
        while self.order.len() > Self::KEEP {
            if let Some(old) = self.order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }
}

impl Supervisor {
    /// Starts the zygote and fills the pool. Returns once the zygote has loaded Python.
    pub async fn start(config: Config) -> Result<Supervisor, Error> {
        let broker = Broker::new(AddressPolicy::PublicOnly)
            .map_err(|err| Error::Zygote(format!("http client: {err}")))?;
        let supervisor = Supervisor {
            inner: Arc::new(Inner {
                config,
                control: Mutex::new(None),
                idle: Mutex::new(VecDeque::new()),
                available: Notify::new(),
                exits: Mutex::new(ExitBook::default()),
                zygote_layers: Mutex::new((false, false)),
                worker_layers: Mutex::new(None),
                broker,
                zygote_down: Notify::new(),
                zygote_pid: AtomicI32::new(0),
                stopping: AtomicBool::new(false),
                zygote_restarts: AtomicU64::new(0),
                checked: Mutex::new(CheckedCodes::default()),
            }),
        };
        supervisor.launch_zygote().await?;
        let restarter = supervisor.clone();
        tokio::spawn(async move { restarter.restart_zygote_when_down().await });
        Ok(supervisor)
    }

    async fn launch_zygote(&self) -> Result<(), Error> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|err| Error::Zygote(format!("socketpair: {err}")))?;
        let child_fd = theirs.as_raw_fd();
        let mut command = Command::new(&self.inner.config.program);
        command.arg("zygote");
        if self.inner.config.unguarded_python {
            command.arg("--unguarded-python-for-layer-tests");
        }
        if let Some(dir) = &self.inner.config.packages_dir {
            command.arg("--packages-dir").arg(dir);
        }
        command
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // SAFETY: dup2 is async-signal-safe; it puts the control socket on the zygote's fd 3
        // (and clears close-on-exec there).
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(child_fd, crate::zygote::CONTROL_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // The zygote's parent-death signal fires when the spawning *thread* exits: this runs on
        // a runtime worker thread, which lives as long as the runtime (never a blocking-pool one).
        let mut child = command
            .spawn()
            .map_err(|err| Error::Zygote(format!("spawn: {err}")))?;
        drop(theirs);
        self.inner
            .zygote_pid
            .store(child.id() as i32, Ordering::SeqCst);
        let control = Arc::new(ours);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (spawned_tx, spawned_rx) = mpsc::unbounded_channel();
        let reader_fd = control.clone();
        let inner = self.inner.clone();
        std::thread::Builder::new()
            .name("zygote-reader".into())
            .spawn(move || read_zygote(reader_fd, inner, ready_tx, spawned_tx))
            .map_err(|err| Error::Zygote(format!("reader thread: {err}")))?;
        let adopter = self.clone();
        tokio::spawn(async move { adopter.adopt_workers(spawned_rx).await });
        match tokio::time::timeout(Duration::from_secs(30), ready_rx).await {
            Ok(Ok(layers)) => {
                *self
                    .inner
                    .zygote_layers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = layers;
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Zygote(
                    "the zygote did not start (see its stderr above)".into(),
                ));
            }
        }
        // The zygote is reaped by this thread when it exits, so it never lingers as a zombie.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        *self.inner.control.lock().unwrap_or_else(|p| p.into_inner()) = Some(control);
        for _ in 0..self.inner.config.pool_size {
            self.request_spawn();
        }
        Ok(())
    }

    async fn restart_zygote_when_down(self) {
        loop {
            self.inner.zygote_down.notified().await;
            if self.inner.stopping.load(Ordering::SeqCst) {
                return;
            }
            tracing::error!("the sandbox zygote exited; restarting it");
            self.inner.zygote_restarts.fetch_add(1, Ordering::SeqCst);
            self.inner
                .control
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            // Its workers die with it (parent-death signal); drop our ends.
            self.inner
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                match self.launch_zygote().await {
                    Ok(()) => break,
                    Err(err) => tracing::error!(error = %err, "could not restart the zygote"),
                }
            }
        }
    }

    fn request_spawn(&self) {
        let control = self
            .inner
            .control
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(control) = control else { return };
        let Ok(bytes) = serde_json::to_vec(&ZygoteCommand::Spawn) else {
            return;
        };
        // SAFETY: send on a socket we own; a small packet never blocks in practice.
        let sent =
            unsafe { libc::send(control.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if sent < 0 {
            tracing::warn!("could not ask the zygote for a worker");
        }
    }

    /// Turns sockets from the zygote into ready workers (after their `Ready` message).
    async fn adopt_workers(self, mut spawned: mpsc::UnboundedReceiver<(i32, OwnedFd)>) {
        while let Some((pid, fd)) = spawned.recv().await {
            let std_stream = std::os::unix::net::UnixStream::from(fd);
            if std_stream.set_nonblocking(true).is_err() {
                continue;
            }
            let Ok(mut stream) = UnixStream::from_std(std_stream) else {
                continue;
            };
            let ready = tokio::time::timeout(
                Duration::from_secs(10),
                frame::read_async::<WorkerMessage>(&mut stream, MAX_WORKER_FRAME),
            )
            .await;
            let layers = match ready {
                Ok(Ok(WorkerMessage::Ready { layers })) => layers,
                other => {
                    tracing::error!(pid, ?other, "a new worker failed to start");
                    continue;
                }
            };
            let first = {
                let mut current = self
                    .inner
                    .worker_layers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let first = current.is_none();
                *current = Some(layers);
                first
            };
            if first {
                let missing = self.health().layers.missing();
                if missing.is_empty() {
                    tracing::info!("sandbox isolation: every layer is active");
                } else {
                    tracing::warn!(
                        missing = ?missing,
                        "SANDBOX ISOLATION IS DEGRADED on this host: these layers could not be \
                         applied (run `mcpbox-sandbox doctor` for details)"
                    );
                }
            }
            let pidfd = pidfd_open(pid);
            self.inner
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_back(Worker { pid, pidfd, stream });
            self.inner.available.notify_one();
        }
    }

    /// Takes an idle worker. Its replacement is forked at once when the pool is running low,
    /// otherwise when the lease is dropped after the call, so the fork of the next worker does
    /// not compete with this call for CPU (measured on 2 cores with calls 2 ms apart: p50
    /// 0.45 ms deferred against 0.77 ms immediate).
    async fn take_worker(&self) -> Result<Lease, Error> {
        let give_up = Instant::now() + WORKER_WAIT;
        loop {
            let (worker, remaining) = {
                let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
                let worker = idle.pop_front();
                (worker, idle.len())
            };
            if let Some(worker) = worker {
                let low = remaining < self.inner.config.pool_size.div_ceil(2);
                if low {
                    self.request_spawn();
                }
                return Ok(Lease {
                    worker,
                    supervisor: self.clone(),
                    replaced: low,
                    settled: false,
                });
            }
            if tokio::time::timeout_at(give_up, self.inner.available.notified())
                .await
                .is_err()
            {
                return Err(Error::NoWorker);
            }
        }
    }

    /// Stops the zygote; its workers die with it (parent-death signal). Calls in flight fail.
    pub fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner
            .control
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let pid = self.inner.zygote_pid.swap(0, Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: signals the zygote we started; its reaper thread collects it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// The zygote's pid, for diagnostics and tests.
    pub fn zygote_pid(&self) -> i32 {
        self.inner.zygote_pid.load(Ordering::SeqCst)
    }

    pub fn health(&self) -> HealthResponse {
        let (network_namespace, clean_environment) = *self
            .inner
            .zygote_layers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let worker = self
            .inner
            .worker_layers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        HealthResponse {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            layers: Layers {
                static_check: true,
                restricted_runtime: true,
                http_broker: true,
                network_namespace,
                clean_environment,
                ..worker
            },
            idle_workers: self
                .inner
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len() as u32,
            zygote_restarts: self.inner.zygote_restarts.load(Ordering::SeqCst),
        }
    }

    /// Waits until at least one worker is ready (start-up, `doctor`).
    pub async fn wait_ready(&self) -> Result<(), Error> {
        let give_up = Instant::now() + WORKER_WAIT;
        while self.health().idle_workers == 0 {
            tokio::time::timeout_at(give_up, self.inner.available.notified())
                .await
                .map_err(|_| Error::NoWorker)?;
        }
        // The notification we consumed may have been meant for a caller: pass it on.
        self.inner.available.notify_one();
        Ok(())
    }

    pub async fn execute(&self, request: ExecuteRequest) -> ExecuteResponse {
        self.execute_observed(request, None).await
    }

    /// `execute`, handing the tool's progress reports to `progress` as they come (dropped when
    /// it is full: reports are a view of the run, never a reason to slow it). Dropping the
    /// future kills the worker at once (`Lease`): that is how a call is cancelled.
    pub async fn execute_observed(
        &self,
        request: ExecuteRequest,
        progress: Option<mpsc::Sender<Progress>>,
    ) -> ExecuteResponse {
        let started = Instant::now();
        let limits = request.limits.clamped();
        let deadline = started + Duration::from_millis(limits.timeout_ms);
        // What the worker streamed of its output, kept when it is killed before it reports.
        let mut streamed = Streamed::new(limits.stdout_bytes);
        let failure = |kind, message: String, usage, streamed: Streamed| ExecuteResponse {
            input_required: None,
            ok: false,
            result: None,
            error: Some(ToolError::new(kind, message)),
            stdout: streamed.text,
            stdout_truncated: streamed.truncated,
            duration_ms: started.elapsed().as_millis() as u64,
            usage,
            content: Vec::new(),
        };
        let mut worker = match self.take_worker().await {
            Ok(worker) => worker,
            Err(err) => {
                return failure(
                    ErrorKind::Internal,
                    format!("the sandbox is unavailable: {err}"),
                    Usage::default(),
                    streamed,
                );
            }
        };
        let mut modules = request.allowed_modules.unwrap_or_else(default_modules);
        let package_paths = match crate::packages::granted(
            self.inner.config.packages_dir.as_deref(),
            &request.packages,
        ) {
            Ok(granted) => {
                modules.extend(granted.modules);
                granted.paths
            }
            Err(message) => return failure(ErrorKind::Import, message, Usage::default(), streamed),
        };
        let check_key = CheckedCodes::key(&request.code, &modules);
        let checked = self
            .inner
            .checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .known
            .contains(&check_key);
        let job = Job::Execute {
            code: request.code,
            arguments: request.arguments,
            modules,
            secrets: request.secrets,
            memory_mb: limits.memory_mb,
            stdout_bytes: limits.stdout_bytes,
            result_bytes: limits.result_bytes,
            checked,
            package_paths,
            input: request.input,
        };
        let scope = CallScope {
            allowed_hosts: request.allowed_hosts,
            response_bytes: limits.http_response_bytes,
            max_requests: limits.http_requests,
            deadline,
        };
        let talked = tokio::time::timeout_at(
            deadline,
            self.converse(
                &mut worker.stream,
                &job,
                &scope,
                &mut streamed,
                progress.as_ref(),
            ),
        )
        .await;
        match talked {
            Ok(Ok(Outcome::Executed {
                result,
                content,
                stdout,
                stdout_truncated,
                usage,
                input_required,
            })) => {
                worker.settled = true;
                let passed_check =
                    !matches!(&result, Err(error) if error.kind == ErrorKind::Validation);
                if !checked && passed_check {
                    self.inner
                        .checked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(check_key);
                }
                // A pending request wins over whatever `main` did after it (returned, raised).
                let (ok, result, error) = match (result, &input_required) {
                    (_, Some(_)) => (false, None, None),
                    (Ok(json), None) => (true, Some(json), None),
                    (Err(error), None) => (false, None, Some(error)),
                };
                ExecuteResponse {
                    input_required,
                    ok,
                    result,
                    error,
                    stdout,
                    stdout_truncated,
                    duration_ms: started.elapsed().as_millis() as u64,
                    usage,
                    content,
                }
            }
            Ok(Ok(Outcome::Validated(_))) => {
                kill(&worker);
                failure(
                    ErrorKind::Internal,
                    "the worker answered the wrong job".into(),
                    Usage::default(),
                    streamed,
                )
            }
            Ok(Err(err)) => {
                kill(&worker);
                let exit = self.wait_exit(worker.pid, Duration::from_millis(500)).await;
                let (kind, message) = crash_message(exit.as_ref(), &err);
                failure(
                    kind,
                    message,
                    exit.map(|e| e.usage).unwrap_or_default(),
                    streamed,
                )
            }
            Err(_) => {
                kill(&worker);
                let exit = self.wait_exit(worker.pid, Duration::from_millis(200)).await;
                failure(
                    ErrorKind::Timeout,
                    format!(
                        "the tool did not finish within {} ms and was stopped",
                        limits.timeout_ms
                    ),
                    exit.map(|e| e.usage).unwrap_or_default(),
                    streamed,
                )
            }
        }
    }

    async fn converse(
        &self,
        stream: &mut UnixStream,
        job: &Job,
        scope: &CallScope,
        streamed: &mut Streamed,
        progress: Option<&mpsc::Sender<Progress>>,
    ) -> Result<Outcome, FrameError> {
        frame::write_async(stream, job).await?;
        let mut requests = 0u32;
        // The call's raw TCP streams: dropped (closed) when this conversation ends, however.
        let mut tcp = crate::broker::tcp::TcpSession::new();
        loop {
            match frame::read_async::<WorkerMessage>(stream, MAX_WORKER_FRAME).await? {
                WorkerMessage::Http(request) => {
                    requests += 1;
                    let reply = if requests > scope.max_requests {
                        HttpReply::Refused {
                            error: format!(
                                "too many HTTP requests in one call (limit {})",
                                scope.max_requests
                            ),
                        }
                    } else {
                        self.inner.broker.fetch(request, scope).await
                    };
                    frame::write_async(stream, &reply).await?;
                }
                WorkerMessage::Tcp(request) => {
                    let reply = tcp.handle(&self.inner.broker, request, scope).await;
                    frame::write_async(stream, &reply).await?;
                }
                WorkerMessage::Stdout { text } => streamed.push(&text),
                WorkerMessage::Progress(report) => {
                    if let Some(progress) = progress {
                        let _ = progress.try_send(report);
                    }
                }
                WorkerMessage::Done(outcome) => return Ok(outcome),
                WorkerMessage::Ready { .. } => {
                    return Err(FrameError::Io(std::io::Error::other(
                        "unexpected message from worker",
                    )));
                }
            }
        }
    }

    pub async fn validate(&self, request: ValidateRequest) -> Result<ValidateResponse, Error> {
        let mut worker = self.take_worker().await?;
        let job = Job::Validate {
            code: request.code,
            modules: request.allowed_modules.unwrap_or_else(default_modules),
        };
        let talk = async {
            frame::write_async(&mut worker.stream, &job).await?;
            frame::read_async::<WorkerMessage>(&mut worker.stream, MAX_WORKER_FRAME).await
        };
        match tokio::time::timeout(VALIDATE_TIMEOUT, talk).await {
            Ok(Ok(WorkerMessage::Done(Outcome::Validated(response)))) => Ok(response),
            Ok(Ok(_)) => {
                kill(&worker);
                Err(Error::Zygote("the worker answered the wrong job".into()))
            }
            Ok(Err(err)) => {
                kill(&worker);
                Err(err.into())
            }
            Err(_) => {
                kill(&worker);
                Err(Error::Zygote("validation timed out".into()))
            }
        }
    }

    async fn wait_exit(&self, pid: i32, within: Duration) -> Option<ExitInfo> {
        let receiver = {
            let mut book = self.inner.exits.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(exit) = book.recent.remove(&pid) {
                return Some(exit);
            }
            let (tx, rx) = oneshot::channel();
            book.waiters.insert(pid, tx);
            rx
        };
        let found = tokio::time::timeout(within, receiver)
            .await
            .ok()
            .and_then(Result::ok);
        if found.is_none() {
            self.inner
                .exits
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .waiters
                .remove(&pid);
        }
        found
    }
}

/// A worker's streamed output, capped like the worker caps it (a worker cannot make the
/// supervisor hold more than the call's `stdout_bytes`).
struct Streamed {
    text: String,
    cap: usize,
    truncated: bool,
}

impl Streamed {
    fn new(cap: u64) -> Streamed {
        Streamed {
            text: String::new(),
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
            truncated: false,
        }
    }

    fn push(&mut self, chunk: &str) {
        let room = self.cap.saturating_sub(self.text.len());
        if chunk.len() <= room {
            self.text.push_str(chunk);
            return;
        }
        let mut end = room;
        while !chunk.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(&chunk[..end]);
        self.truncated = true;
    }
}

fn default_modules() -> Vec<String> {
    DEFAULT_MODULES.iter().map(|m| (*m).to_owned()).collect()
}

/// Blocking loop on the zygote's control socket (SCM_RIGHTS needs recvmsg, so a thread).
fn read_zygote(
    control: Arc<OwnedFd>,
    inner: Arc<Inner>,
    ready: oneshot::Sender<(bool, bool)>,
    spawned: mpsc::UnboundedSender<(i32, OwnedFd)>,
) {
    let mut ready = Some(ready);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let received = recvmsg::<()>(
            control.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        );
        let (bytes, fds) = match received {
            Ok(message) if message.bytes > 0 => {
                let mut fds = Vec::new();
                if let Ok(cmsgs) = message.cmsgs() {
                    for cmsg in cmsgs {
                        if let ControlMessageOwned::ScmRights(received) = cmsg {
                            // SAFETY: the kernel just gave us these fds; we own them now.
                            fds.extend(
                                received
                                    .into_iter()
                                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                            );
                        }
                    }
                }
                (message.bytes, fds)
            }
            Ok(_) | Err(_) => {
                inner.zygote_down.notify_one();
                return;
            }
        };
        let message = match serde_json::from_slice::<ZygoteMessage>(&buf[..bytes]) {
            Ok(message) => message,
            Err(err) => {
                tracing::error!(error = %err, "bad message from the zygote");
                continue;
            }
        };
        match message {
            ZygoteMessage::Ready {
                network_namespace,
                clean_environment,
            } => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send((network_namespace, clean_environment));
                }
            }
            ZygoteMessage::Spawned { pid } => {
                if let Some(fd) = fds.into_iter().next() {
                    let _ = spawned.send((pid, fd));
                }
            }
            ZygoteMessage::Exited { pid, exit } => {
                inner
                    .exits
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record(pid, exit);
            }
            ZygoteMessage::SpawnFailed { message } => {
                tracing::error!(message, "the zygote could not fork a worker");
            }
        }
    }
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open returns a new fd we own, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn kill(worker: &Worker) {
    // SAFETY: signals a process we hold a pidfd for (or, without pidfd support, by pid).
    unsafe {
        match &worker.pidfd {
            Some(pidfd) => {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<()>(),
                    0,
                );
            }
            None => {
                libc::kill(worker.pid, libc::SIGKILL);
            }
        }
    }
}

fn crash_message(exit: Option<&ExitInfo>, err: &FrameError) -> (ErrorKind, String) {
    match exit.and_then(|e| e.signal) {
        Some(libc::SIGXCPU) => (
            ErrorKind::Crashed,
            "the tool used up its CPU time limit and was stopped".into(),
        ),
        Some(libc::SIGSEGV) => (
            ErrorKind::Crashed,
            "the tool's process crashed (segmentation fault)".into(),
        ),
        Some(libc::SIGABRT) => (
            ErrorKind::Crashed,
            "the tool's process aborted (often: out of memory)".into(),
        ),
        Some(libc::SIGKILL) => (ErrorKind::Crashed, "the tool's process was killed".into()),
        Some(signal) => (
            ErrorKind::Crashed,
            format!("the tool's process died from signal {signal}"),
        ),
        None => match exit.and_then(|e| e.code) {
            Some(code) => (
                ErrorKind::Crashed,
                format!("the tool's process exited early (status {code})"),
            ),
            None => (
                ErrorKind::Crashed,
                format!("the tool's process stopped answering: {err}"),
            ),
        },
    }
}
