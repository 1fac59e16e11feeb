//! The command line: `serve`, `exec`, `doctor` (and the internal `zygote`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use contract::sandbox::{DEFAULT_MODULES, ExecuteRequest, Limits};

use crate::supervisor::{Config, Supervisor};

/// The MCPbox sandbox: runs untrusted Python tools in isolated, single-use processes.
#[derive(Debug, Parser)]
#[command(name = "mcpbox-sandbox", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the supervisor on a unix socket for the origin.
    Serve(ServeArgs),
    /// Run one file exactly as a tool would run, and print one JSON object.
    Exec(ExecArgs),
    /// Report which isolation layers this host can apply.
    Doctor,
    /// Internal: the zygote process (started by the supervisor).
    #[command(hide = true)]
    Zygote {
        #[arg(long, hide = true)]
        unguarded_python_for_layer_tests: bool,
        /// Readable by workers (Landlock): installed PyPI packages live here.
        #[arg(long, hide = true)]
        packages_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Unix socket path to listen on (created mode 0600).
    #[arg(long, env = "MCPBOX_SANDBOX_SOCKET")]
    pub socket: PathBuf,
    /// File holding the shared key the origin must present (at least 32 characters).
    #[arg(long, env = "MCPBOX_SANDBOX_KEY_FILE", conflicts_with = "key")]
    pub key_file: Option<PathBuf>,
    /// The shared key itself (prefer --key-file: environment variables can leak to children).
    #[arg(long, env = "MCPBOX_SANDBOX_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Pre-forked idle workers kept ready.
    #[arg(long, env = "MCPBOX_SANDBOX_POOL", default_value_t = 4)]
    pub pool_size: usize,
    /// Directory of installed PyPI packages (the origin's `<data>/packages`): workers may read
    /// it, and a call may import from the package directories under it that its request grants.
    #[arg(long, env = "MCPBOX_SANDBOX_PACKAGES_DIR")]
    pub packages_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The Python file (defines `main`).
    pub file: PathBuf,
    /// Arguments for `main`, as a JSON object.
    #[arg(long = "args", default_value = "{}")]
    pub args: String,
    /// Also allow importing this module (added to the default list).
    #[arg(long = "allow-module")]
    pub allow_module: Vec<String>,
    /// Allow HTTP to this host (`host` or `host:port`).
    #[arg(long = "allow-host")]
    pub allow_host: Vec<String>,
    /// A secret visible to the tool as secrets["K"].
    #[arg(long = "secret", value_parser = parse_secret)]
    pub secret: Vec<(String, String)>,
    /// Wall-clock limit in seconds.
    #[arg(long, default_value_t = 30.0, allow_negative_numbers = true)]
    pub timeout: f64,
}

fn parse_secret(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| "expected K=V".to_owned())
}

fn config(pool_size: usize) -> anyhow::Result<Config> {
    Ok(Config {
        pool_size,
        program: std::env::current_exe()?,
        unguarded_python: false,
        packages_dir: None,
    })
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let key = match (&args.key_file, &args.key) {
        (Some(path), _) => std::fs::read_to_string(path)?.trim().to_owned(),
        (None, Some(key)) => key.clone(),
        (None, None) => anyhow::bail!("a key is required: --key-file FILE or MCPBOX_SANDBOX_KEY"),
    };
    anyhow::ensure!(
        key.len() >= 32,
        "the key must be at least 32 characters long"
    );
    let config = Config {
        packages_dir: args.packages_dir.clone(),
        ..config(args.pool_size.max(1))?
    };
    let supervisor = Supervisor::start(config).await?;
    supervisor.wait_ready().await?;
    let served = crate::server::serve(supervisor.clone(), &args.socket, key).await;
    supervisor.shutdown();
    Ok(served?)
}

/// Exit status 0 whenever the sandbox itself worked (even if the tool failed); 2 for usage.
pub async fn exec(args: ExecArgs) -> i32 {
    let usage = |message: String| {
        eprintln!("mcpbox-sandbox exec: {message}");
        2
    };
    let code = match std::fs::read_to_string(&args.file) {
        Ok(code) => code,
        Err(err) => return usage(format!("cannot read {}: {err}", args.file.display())),
    };
    match serde_json::from_str::<serde_json::Value>(&args.args) {
        Ok(value) if value.is_object() => {}
        Ok(_) => return usage("--args must be a JSON object".into()),
        Err(err) => return usage(format!("--args is not valid JSON: {err}")),
    }
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        return usage("--timeout must be a positive number of seconds".into());
    }
    let mut modules: Vec<String> = DEFAULT_MODULES.iter().map(|m| (*m).to_owned()).collect();
    modules.extend(args.allow_module);
    let request = ExecuteRequest {
        input: None,
        code,
        arguments: args.args,
        allowed_modules: Some(modules),
        allowed_hosts: args.allow_host,
        secrets: args.secret.into_iter().collect::<BTreeMap<_, _>>(),
        packages: Vec::new(),
        limits: Limits {
            timeout_ms: (args.timeout * 1000.0) as u64,
            ..Limits::default()
        },
    };
    let supervisor = match config(1) {
        Ok(config) => Supervisor::start(config).await,
        Err(err) => return usage(err.to_string()),
    };
    let supervisor = match supervisor {
        Ok(supervisor) => supervisor,
        Err(err) => {
            eprintln!("mcpbox-sandbox exec: the sandbox failed to start: {err}");
            return 1;
        }
    };
    let response = supervisor.execute(request).await;
    supervisor.shutdown();
    let result = response
        .result
        .as_deref()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .unwrap_or(serde_json::Value::Null);
    let output = serde_json::json!({
        "ok": response.ok,
        "result": result,
        "error": response.error,
        "stdout": response.stdout,
        "duration_ms": response.duration_ms,
    });
    println!("{output}");
    0
}

pub async fn doctor() -> i32 {
    let supervisor = match config(1) {
        Ok(config) => Supervisor::start(config).await,
        Err(err) => {
            eprintln!("{err}");
            return 1;
        }
    };
    let supervisor = match supervisor {
        Ok(supervisor) => supervisor,
        Err(err) => {
            eprintln!("the sandbox failed to start: {err}");
            return 1;
        }
    };
    if let Err(err) = supervisor.wait_ready().await {
        eprintln!("no worker started: {err}");
        return 1;
    }
    let layers = supervisor.health().layers;
    supervisor.shutdown();
    let rows = [
        (
            "static_check",
            layers.static_check,
            "CPython ast check of every tool before it runs",
        ),
        (
            "restricted_runtime",
            layers.restricted_runtime,
            "curated builtins, proxy modules, import allowlist",
        ),
        (
            "rlimits",
            layers.rlimits,
            "CPU 60 s, data 256 MB, 256 fds, no core, no file writes, no processes",
        ),
        (
            "closed_fds",
            layers.closed_fds,
            "workers start with only their socket to the supervisor",
        ),
        (
            "clean_environment",
            layers.clean_environment,
            "no environment variables reach tools",
        ),
        (
            "network_namespace",
            layers.network_namespace,
            "workers live in an empty network namespace (needs root)",
        ),
        (
            "landlock",
            layers.landlock,
            "no file writes, reads only under Python's directories, no TCP (needs Landlock in the kernel)",
        ),
        (
            "seccomp",
            layers.seccomp,
            "syscall allowlist: no sockets, processes, exec or kill",
        ),
        (
            "unprivileged_uid",
            layers.unprivileged_uid,
            "workers run as nobody (when started as root)",
        ),
        (
            "http_broker",
            layers.http_broker,
            "HTTP only through the supervisor's checked broker",
        ),
    ];
    for (name, on, what) in rows {
        println!("{} {name:<19} {what}", if on { "[on] " } else { "[OFF]" });
    }
    let missing = layers.missing();
    if missing.is_empty() {
        println!("every isolation layer is active");
        0
    } else {
        println!(
            "DEGRADED: {} layer(s) could not be applied on this host: {}",
            missing.len(),
            missing.join(", ")
        );
        1
    }
}
