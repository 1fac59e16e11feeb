//! The application: shared state, the router, and `serve` (bind, run, shut down cleanly).

use std::net::SocketAddr;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

use crate::auth::password::Passwords;
use crate::auth::throttle::SignInThrottle;
use crate::auth::tokens::{self, JwtKeys};
use crate::config::{ServeArgs, StorageArgs};
use crate::crypto::{KeySource, Keyring};
use crate::db::Db;
use crate::dispatch::{Sandbox, SandboxSource};
use crate::gateway::McpAccess;
use crate::{
    access, activity, approvals, auth, execution, health, http, secrets, servers, settings, tools,
    users,
};

/// Everything handlers share. Cloning copies one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

pub struct AppInner {
    pub db: Db,
    /// Encrypts values at rest; also the root of derived keys.
    pub keys: Keyring,
    pub jwt: JwtKeys,
    /// Failed sign-in counters (in the database, shared by replicas).
    pub throttle: SignInThrottle,
    /// The bounded pool every password hash and verification runs in.
    pub passwords: Passwords,
    /// The sandbox supervisor (every tool run and code validation goes through it).
    pub sandbox: Sandbox,
    /// Live listeners of the activity log.
    pub activity: crate::activity::Hub,
    /// Open clients of external MCP sources, one per source, reused by passthrough calls.
    pub external: crate::external::Pool,
    /// The MCP sessions of both listeners: their limits and counts.
    pub mcp_sessions: crate::gateway::sessions::Registry,
    /// The Prometheus registry (`/metrics` on the metrics listener).
    pub metrics: crate::metrics::Metrics,
    /// Alert raising (never waits) and the delivery queue (`alerts::start`).
    pub alerts: crate::alerts::Alerts,
    /// Request rate limits of this listener (in memory, per replica) and their settings.
    pub rate_limits: crate::ratelimit::RateLimits,
    /// The Cloudflare wizard: its flags, its one-step-at-a-time lock, the tunnel credentials
    /// cache.
    pub remote: crate::cloudflare::Remote,
    /// Whether this replica runs the periodic jobs (`db::locks`; always on SQLite).
    pub jobs: crate::db::locks::Lease,
    /// PyPI packages: where they come from and go, and the install queue.
    pub packages: crate::packages::Packages,
    /// Local MCP client keys: whether `/mcp` requires one, and the cache of valid ones.
    pub mcp_keys: crate::mcp_keys::Keys,
}

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppState {
    pub fn new(db: Db, keys: Keyring, sandbox: Sandbox) -> AppState {
        AppState::with_cloudflare(db, keys, sandbox, crate::cloudflare::Config::default())
    }

    /// `new` with the Cloudflare flags (`serve`, and tests that point the wizard at a fake).
    pub fn with_cloudflare(
        db: Db,
        keys: Keyring,
        sandbox: Sandbox,
        cloudflare: crate::cloudflare::Config,
    ) -> AppState {
        let jwt = JwtKeys::from_keyring(&keys);
        let alerts = crate::alerts::Alerts::default();
        sandbox.raise_alerts_to(alerts.clone());
        let throttle = SignInThrottle::new(db.clone());
        let activity = crate::activity::Hub::default();
        let mcp_keys = crate::mcp_keys::Keys::new(&activity);
        AppState(Arc::new(AppInner {
            db,
            keys,
            jwt,
            throttle,
            passwords: Passwords::default(),
            sandbox,
            activity,
            external: crate::external::Pool::default(),
            mcp_sessions: crate::gateway::sessions::Registry::default(),
            metrics: crate::metrics::Metrics::default(),
            alerts,
            rate_limits: crate::ratelimit::RateLimits::default(),
            remote: crate::cloudflare::Remote::new(cloudflare),
            jobs: crate::db::locks::Lease::always(),
            packages: crate::packages::Packages::default(),
            mcp_keys,
        }))
    }
}

/// The whole HTTP application of the admin/local listener.
pub fn router(state: AppState) -> Router {
    let changes = crate::gateway::watch_changes(&state);
    router_with(state, &McpAccess::default(), changes)
}

/// The same, with the `/mcp` Host/Origin allowlists `serve` derives from its flags and the
/// tool-list change feed it shares with the tunnel listener.
pub fn router_with(
    state: AppState,
    mcp: &McpAccess,
    changes: tokio::sync::watch::Receiver<crate::gateway::VisibleSet>,
) -> Router {
    let routes = Router::new()
        // The client-key check is this listener's only (the tunnel has its own guard).
        .merge(crate::gateway::keys::guarded(
            crate::gateway::router(state.clone(), mcp, changes),
            state.clone(),
        ))
        .merge(health::router())
        .merge(auth::router())
        .merge(users::router())
        .merge(servers::router())
        .merge(crate::external::router())
        .merge(tools::router())
        .merge(crate::prompts::router())
        .merge(approvals::router())
        .merge(secrets::router())
        .merge(execution::router())
        .merge(access::router())
        .merge(settings::router())
        .merge(crate::cloudflare::router())
        .merge(activity::router())
        .merge(crate::dashboard::router())
        .merge(crate::alerts::router())
        .merge(crate::packages::router())
        .merge(crate::transfer::router())
        .merge(crate::mcp_keys::router())
        .merge(crate::openapi::router())
        .merge(crate::ui::router(state.clone()))
        .merge(crate::ratelimit::api::router())
        // Inside the shared layers, so a 429 gets the security headers, a request id and its
        // count in the metrics like any response.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::ratelimit::guard::limit,
        ))
        .with_state(state.clone());
    http::with_layers(routes, &state.metrics.http_requests)
}

/// Opens the data directory, the keyring and the database, as `serve` and the CLI need them.
pub async fn open_storage(storage: &StorageArgs) -> anyhow::Result<(Db, Keyring)> {
    prepare_data_dir(&storage.data_dir)?;
    let (keys, source) = Keyring::load(
        &storage.data_dir,
        storage.encryption_key.as_deref(),
        storage.previous_encryption_key.as_deref(),
    )?;
    match source {
        KeySource::Generated(path) => tracing::warn!(
            path = %path.display(),
            "generated a new encryption key. Back it up: without it, stored secrets cannot be \
             decrypted. Set MCPBOX_ENCRYPTION_KEY to manage it yourself"
        ),
        KeySource::File(path) => tracing::info!(path = %path.display(), "encryption key loaded"),
        KeySource::Environment => tracing::info!("encryption key taken from MCPBOX_ENCRYPTION_KEY"),
    }
    let db = Db::connect(&storage.database_url()).await?;
    tracing::info!(backend = db.backend.name(), "database ready");
    Ok((db, keys))
}

pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create the data directory {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (db, keys) = open_storage(&args.storage).await?;
    let source = match (&args.sandbox_socket, &args.sandbox_key_file) {
        (Some(socket), Some(key_file)) => SandboxSource::External {
            socket: socket.clone(),
            key_file: key_file.clone(),
        },
        _ => SandboxSource::Spawn {
            binary: match &args.sandbox_binary {
                Some(binary) => binary.clone(),
                None => std::env::current_exe()?.with_file_name("mcpbox-sandbox"),
            },
            data_dir: args.storage.data_dir.clone(),
        },
    };
    // Before the sandbox starts: its workers are given read access to this directory.
    crate::packages::prepare_dir(&args.storage.data_dir)?;
    let sandbox = Sandbox::open(source).await?;
    sandbox_ready(&sandbox).await?;
    let state = AppState::with_cloudflare(db.clone(), keys, sandbox, args.cloudflare_config());
    state.packages.configure(crate::packages::Config::new(
        &args.storage.data_dir,
        args.packages.packages_python.clone(),
        &args.packages.pypi_url,
        &args.packages.osv_url,
    ));
    let package_tasks = crate::packages::start(&state);
    state.mcp_sessions.set_limits(args.mcp_session_limits());
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("could not listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // These two lines are the start-up contract scripts and tests read (stdout, not the log).
    println!("MCPbox listening on http://{addr}");
    println!(
        "Open http://{}/ in a browser to finish set-up and sign in.",
        display_addr(addr)
    );

    // One watcher of the visible tool set feeds list_changed on both listeners.
    let changes = crate::gateway::watch_changes(&state);
    // The tunnel listener, when asked for: bound before anything is served, so a bad address
    // fails the start instead of half-starting.
    let tunnel = match &args.tunnel_listen {
        Some(address) => {
            if let Some(token) = &args.service_token
                && token.len() < crate::gateway::tunnel::SERVICE_TOKEN_MIN_LEN
            {
                anyhow::bail!(
                    "the service token must be at least {} characters",
                    crate::gateway::tunnel::SERVICE_TOKEN_MIN_LEN
                );
            }
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("could not listen on {address} (tunnel)"))?;
            let bound = listener.local_addr()?;
            println!("MCPbox tunnel listener on http://{bound}");
            // Only set here, once per process; a second set cannot happen.
            let _ = state.remote.tunnel_bound.set(bound);
            let wizard_token = crate::cloudflare::tunnel_auth(&state)
                .await
                .map(|auth| auth.service_token.is_some())
                .unwrap_or(false);
            if args.service_token.is_none() && !wizard_token {
                tracing::warn!(
                    "the tunnel listener refuses every request until a service token exists: \
                     set MCPBOX_SERVICE_TOKEN or run step 4 of Remote set-up"
                );
            }
            let allowlist =
                crate::gateway::tunnel::EmailAllowlist::new(&args.remote_allowed_emails);
            let app = crate::gateway::tunnel::router(
                state.clone(),
                args.service_token.as_deref(),
                allowlist,
                changes.clone(),
            );
            let limits = args.listener_limits();
            Some(tokio::spawn(crate::listener::serve(
                listener,
                app,
                limits,
                shutdown_signal(),
            )))
        }
        None => None,
    };
    // The metrics listener, when asked for: bound before anything is served, like the tunnel.
    let metrics = match args.metrics_listen {
        Some(address) => {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("could not listen on {address} (metrics)"))?;
            println!(
                "MCPbox metrics listener on http://{}",
                listener.local_addr()?
            );
            Some(tokio::spawn(crate::listener::serve(
                listener,
                crate::metrics::router(state.clone()),
                args.listener_limits(),
                shutdown_signal(),
            )))
        }
        None => None,
    };
    let cloudflared = match (
        args.run_cloudflared,
        crate::cloudflare::connector::find_on_path(),
    ) {
        (false, _) => None,
        (true, Some(binary)) => Some(tokio::spawn(crate::cloudflare::connector::run(
            state.clone(),
            binary,
        ))),
        (true, None) => {
            tracing::warn!("--run-cloudflared: cloudflared is not on PATH; not running it");
            None
        }
    };
    // Several replicas on one PostgreSQL: events cross between them, the jobs run on one.
    let replication = crate::db::events::start(&db, &args.storage.database_url(), &state.activity)
        .await
        .context("could not set up the events shared with other replicas")?;
    let lease = crate::db::locks::contend(&db, crate::db::locks::LockId::Jobs, &state.jobs);
    let pruner = tokio::spawn(prune_tokens_periodically(db.clone(), state.jobs.clone()));
    let retention = tokio::spawn(apply_retention_periodically(db.clone(), state.jobs.clone()));
    let alerts = crate::alerts::start(&state).await;
    let mcp = args.mcp_access(addr);
    // Decided from the address actually bound: anything but loopback (0.0.0.0 and :: too) is
    // reachable from other hosts, which must not get local rights without a key.
    let keys_required = args.mcp_require_key || !addr.ip().is_loopback();
    state.mcp_keys.set_required(keys_required);
    if keys_required {
        tracing::info!(%addr, "local /mcp requires a client key (Settings → MCP client keys)");
    }
    let app = router_with(state, &mcp, changes);
    crate::listener::serve(listener, app, args.listener_limits(), shutdown_signal()).await;
    if let Some(tunnel) = tunnel
        && let Err(err) = tunnel.await
    {
        tracing::error!(error = %err, "the tunnel listener panicked");
    }
    if let Some(metrics) = metrics
        && let Err(err) = metrics.await
    {
        tracing::error!(error = %err, "the metrics listener panicked");
    }
    if let Some(cloudflared) = cloudflared {
        // Dropping the task's child kills cloudflared.
        cloudflared.abort();
        let _ = cloudflared.await;
    }
    pruner.abort();
    retention.abort();
    for task in replication.into_iter().chain(lease) {
        task.abort();
    }
    for task in package_tasks {
        task.abort();
    }
    for task in alerts {
        task.abort();
    }
    db.pool.close().await;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Waits for the sandbox's first health answer, so "listening" is never printed for a product
/// that cannot run tools. A supervisor run separately may still be starting: it gets a grace
/// period. Missing isolation layers are a loud warning, not a refusal: `mcpbox-sandbox doctor`
/// explains them and `/health/ready` keeps reporting them.
async fn sandbox_ready(sandbox: &Sandbox) -> anyhow::Result<()> {
    const GRACE: Duration = Duration::from_secs(30);
    let started = std::time::Instant::now();
    let health = loop {
        match sandbox.health().await {
            Ok(health) => break health,
            Err(err) if started.elapsed() < GRACE => {
                tracing::debug!(error = %err, "waiting for the sandbox");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => anyhow::bail!(
                "the sandbox does not answer ({err}), so no tool could run; not starting. Check \
                 the supervisor's log above, or run `mcpbox-sandbox doctor`"
            ),
        }
    };
    let missing = health.layers.missing();
    if missing.is_empty() {
        tracing::info!(
            idle_workers = health.idle_workers,
            "sandbox ready, every isolation layer active"
        );
    } else {
        tracing::warn!(
            missing = %missing.join(", "),
            "SANDBOX DEGRADED: these isolation layers cannot be applied on this host; tools run \
             with the others. `mcpbox-sandbox doctor` explains each"
        );
    }
    Ok(())
}

/// An unspecified bind address is reachable as localhost from this machine.
fn display_addr(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// How often the periodic jobs look whether they are due (and whether this replica runs them).
const JOB_CHECK: Duration = Duration::from_secs(60);

/// Every ten minutes on the replica holding the jobs' lease: delete expired tokens, ended
/// sign-in windows and full rate-limit buckets.
async fn prune_tokens_periodically(db: Db, jobs: crate::db::locks::Lease) {
    run_when_due(&jobs, Duration::from_secs(600), || async {
        match tokens::prune_expired(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "pruned expired tokens"),
            Err(err) => tracing::warn!(error = %err, "could not prune expired tokens"),
        }
        // Ended sign-in windows and full rate-limit buckets carry no information.
        let throttle = SignInThrottle::new(db.clone());
        let ended = tokio::try_join!(throttle.prune(), crate::ratelimit::shared::prune(&db),);
        if let Err(err) = ended {
            tracing::warn!(error = %err, "could not prune throttle and rate-limit rows");
        }
    })
    .await
}

/// Hourly on the replica holding the jobs' lease: delete execution and activity logs older than
/// the policy's `log_retention_days`.
async fn apply_retention_periodically(db: Db, jobs: crate::db::locks::Lease) {
    run_when_due(&jobs, Duration::from_secs(3600), || async {
        for (what, pruned) in [
            (
                "execution logs",
                crate::execution::apply_retention(&db).await,
            ),
            ("activity logs", crate::activity::apply_retention(&db).await),
        ] {
            match pruned {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, what, "old rows deleted (retention policy)"),
                Err(err) => tracing::warn!(error = %err, what, "could not apply log retention"),
            }
        }
    })
    .await
}

/// Runs `job` every `every` while this replica holds `jobs`; a replica that takes the lease over
/// runs it within `JOB_CHECK`, since it has not run it yet.
async fn run_when_due<F, Fut>(jobs: &crate::db::locks::Lease, every: Duration, job: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut check = tokio::time::interval(JOB_CHECK.min(every));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<tokio::time::Instant> = None;
    loop {
        check.tick().await;
        if !jobs.held() {
            last = None;
            continue;
        }
        if last.is_none_or(|at| at.elapsed() >= every) {
            job().await;
            last = Some(tokio::time::Instant::now());
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}
