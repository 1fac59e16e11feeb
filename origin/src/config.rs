//! Command line and environment: one clap tree; every flag is also an `MCPBOX_*` variable
//! (`DATABASE_URL` and the OpenTelemetry `OTEL_*` variables of `telemetry::TracingArgs` keep
//! their conventional names). Parsed once in `main` and passed down explicitly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::auth::Role;

/// MCPbox: a self-hosted MCP server where an LLM writes Python tools, a person approves them, and
/// approved tools run in a hardened sandbox.
#[derive(Debug, Parser)]
#[command(name = "mcpbox", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the origin service: admin API, MCP gateway (local and tunnel listeners), and (later)
    /// the UI. Boxed: it is much larger than the other commands.
    Serve(Box<ServeArgs>),
    /// Manage admin accounts from the command line (for the first account on a headless host,
    /// or when every admin password is lost).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Write a consistent backup of the whole database to a file. Safe while the origin serves
    /// (SQLite and PostgreSQL alike). The encryption key is NOT in the backup: keep it with it.
    Backup {
        #[command(flatten)]
        storage: StorageArgs,
        /// The backup file to write (mode 0600). Written under a temporary name and renamed, so a
        /// failed backup leaves nothing half-written.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Replace FILE if it exists (otherwise an existing file is refused).
        #[arg(long)]
        force: bool,
    },
    /// Replace the database's contents with a backup made by `mcpbox backup` (into the same kind
    /// of database it was made from). The file is checked before anything changes. SQLite: stop
    /// the origin first. Secrets decrypt only with the encryption key of the backed-up install.
    Restore {
        #[command(flatten)]
        storage: StorageArgs,
        /// The backup file to restore.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Replace a database that already holds accounts, servers, tools, secrets or logs
        /// (otherwise it is refused and left as it is).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Directory for the SQLite database, the generated encryption key and other state.
    /// Created with mode 0700 when missing.
    #[arg(long, env = "MCPBOX_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database URL. Default: the SQLite file `mcpbox.db` in the data directory.
    /// `postgres://user:pass@host/db` selects PostgreSQL (needed to run several origin replicas).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// The 32-byte key (64 hex characters) that encrypts secrets at rest and signs sessions.
    /// Default: read from `encryption.key` in the data directory, generated there on first start.
    /// Losing it makes stored secrets unreadable and signs everyone out.
    #[arg(long, env = "MCPBOX_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,

    /// The previous key during a key rotation: values encrypted with it stay readable.
    #[arg(long, env = "MCPBOX_PREVIOUS_ENCRYPTION_KEY", hide_env_values = true)]
    pub previous_encryption_key: Option<String>,
}

impl StorageArgs {
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => sqlite_url(&self.data_dir.join("mcpbox.db")),
        }
    }
}

/// `mode=rwc` creates the file on first start.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,

    /// Address of the admin/local listener (admin API, UI, local MCP clients). Keep it on
    /// loopback or the LAN; remote clients come through the tunnel listener instead.
    /// Port 0 picks a free port (printed at start).
    #[arg(long, env = "MCPBOX_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// Unix socket of a sandbox supervisor run separately (`mcpbox-sandbox serve`). Default:
    /// `mcpbox` starts its own supervisor, with a socket and a fresh key in the data directory.
    #[arg(long, env = "MCPBOX_SANDBOX_SOCKET", requires = "sandbox_key_file")]
    pub sandbox_socket: Option<PathBuf>,

    /// The key file of that separately run supervisor.
    #[arg(long, env = "MCPBOX_SANDBOX_KEY_FILE")]
    pub sandbox_key_file: Option<PathBuf>,

    /// The `mcpbox-sandbox` binary to start. Default: the one next to `mcpbox`.
    #[arg(long, env = "MCPBOX_SANDBOX_BINARY")]
    pub sandbox_binary: Option<PathBuf>,

    /// Extra names `/mcp` answers to in the `Host` header, besides loopback and the listen
    /// address (e.g. `mcpbox.lan` or `192.168.1.20:8000`). Other hosts are refused, which stops
    /// DNS-rebinding attacks from web pages.
    #[arg(
        long = "mcp-allowed-host",
        env = "MCPBOX_MCP_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub mcp_allowed_hosts: Vec<String>,

    /// Extra browser origins allowed to call `/mcp` (e.g. `http://mcpbox.lan:8000`); loopback
    /// origins are always allowed. Requests without an `Origin` header are not browser requests
    /// and pass.
    #[arg(
        long = "mcp-allowed-origin",
        env = "MCPBOX_MCP_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub mcp_allowed_origins: Vec<String>,

    /// Require a client key (`Authorization: Bearer mcpbox_k_…`, issued under Settings → MCP
    /// client keys) on the local listener's `/mcp` even on loopback. Always on when `--listen`
    /// is not a loopback address.
    #[arg(long, env = "MCPBOX_MCP_REQUIRE_KEY")]
    pub mcp_require_key: bool,

    /// Address of the tunnel listener: `/mcp` for remote clients through the Cloudflare Worker
    /// (cloudflared points here). Every request must carry the service token (this flag's, or
    /// the one the Remote wizard generated); until one exists every request is refused. Off by
    /// default.
    #[arg(long, env = "MCPBOX_TUNNEL_LISTEN")]
    pub tunnel_listen: Option<SocketAddr>,

    /// The Worker's service token (at least 32 characters) the tunnel listener requires in
    /// `X-MCPbox-Service-Token`, for a Worker deployed by hand. Not needed when the Remote
    /// wizard deployed the Worker (it generates and stores its own). Prefer the variable.
    #[arg(long, env = "MCPBOX_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<String>,

    /// Who may use MCPbox through the tunnel: email addresses and `@domain` entries
    /// (case-insensitive; comma-separated in the variable). Empty: everyone the Worker lets
    /// through (Cloudflare Access decides). Checked again here on every request. When the
    /// Remote wizard's allowlist is set too, a caller must be on both.
    #[arg(
        long = "remote-allowed-email",
        env = "MCPBOX_REMOTE_ALLOWED_EMAILS",
        value_delimiter = ','
    )]
    pub remote_allowed_emails: Vec<String>,

    /// The Cloudflare API the Remote wizard calls (tests and proxies point it elsewhere).
    #[arg(long, env = "MCPBOX_CLOUDFLARE_API_URL", default_value = crate::cloudflare::client::DEFAULT_API_URL)]
    pub cloudflare_api_url: String,

    /// The Cloudflare Access base URL the Worker signs users in at, instead of
    /// `https://<team domain>` (tests point it at a stand-in). Unset for real accounts.
    #[arg(long, env = "MCPBOX_CLOUDFLARE_ACCESS_URL")]
    pub cloudflare_access_url: Option<String>,

    /// Run cloudflared (from PATH) as a child with the connector token of the tunnel the Remote
    /// wizard created: started once the tunnel exists, restarted when it exits or the token
    /// changes, stopped with mcpbox. Off by default (run it as its own service instead).
    #[arg(long, env = "MCPBOX_RUN_CLOUDFLARED")]
    pub run_cloudflared: bool,

    /// Seconds a connection may take to send a whole request head (and may stay idle between
    /// requests) before it is closed; applies to both listeners. Never cuts a response being
    /// streamed (MCP streams, the live activity stream).
    #[arg(
        long,
        env = "MCPBOX_HEADER_READ_TIMEOUT",
        default_value_t = 20,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub header_read_timeout: u64,

    /// Connections each listener keeps open at most (streams included). Beyond it, new
    /// connections wait in the kernel's listen backlog until one closes.
    #[arg(
        long,
        env = "MCPBOX_MAX_CONNECTIONS",
        default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..=65_536)
    )]
    pub max_connections: u32,

    /// Most 2025-11-25 MCP sessions open at once on each listener; an `initialize` beyond it
    /// gets 503 (stateless 2026-07-28 requests hold no session and are not counted).
    #[arg(long, env = "MCPBOX_MCP_MAX_SESSIONS", default_value_t = crate::gateway::sessions::MAX_SESSIONS, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub mcp_max_sessions: u32,

    /// Seconds without a request from its client after which an MCP session is closed (an
    /// open GET stream counts as activity; the client initializes again).
    #[arg(long, env = "MCPBOX_MCP_SESSION_IDLE_TIMEOUT", default_value_t = crate::gateway::sessions::IDLE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub mcp_session_idle_timeout: u64,

    /// Address of the metrics listener: Prometheus exposition at `/metrics`, nothing else (never
    /// on the admin/local nor the tunnel listener). Off by default. Port 0 picks a free port
    /// (printed at start).
    #[arg(long, env = "MCPBOX_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Log output: `text` for people, `json` for log collectors.
    #[arg(long, env = "MCPBOX_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// OpenTelemetry trace export (off unless an OTLP endpoint is given).
    #[command(flatten)]
    pub tracing: crate::telemetry::TracingArgs,

    #[command(flatten)]
    pub packages: PackageArgs,
}

/// Where PyPI packages for tools come from (module requests naming a distribution).
#[derive(Debug, Clone, Args)]
pub struct PackageArgs {
    /// PyPI's base URL: pip's index and the JSON simple API the release dates come from
    /// (`<url>/simple`).
    #[arg(long, env = "MCPBOX_PYPI_URL", default_value = "https://pypi.org")]
    pub pypi_url: String,
    /// OSV's API base URL, asked about each exact package version.
    #[arg(long, env = "MCPBOX_OSV_URL", default_value = "https://api.osv.dev")]
    pub osv_url: String,
    /// The Python whose pip resolves and installs packages: the sandbox's Python version.
    #[arg(long, env = "MCPBOX_PACKAGES_PYTHON", default_value = "python3")]
    pub packages_python: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an account. The password is read from MCPBOX_ADMIN_PASSWORD, or else from the first
    /// line of standard input.
    Create {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long)]
        username: String,
        /// admin, approver or viewer.
        #[arg(long, default_value = "admin")]
        role: Role,
    },
    /// Finish a key rotation: re-encrypt every stored value that the previous key wrote under
    /// the current one (MCPBOX_ENCRYPTION_KEY new, MCPBOX_PREVIOUS_ENCRYPTION_KEY old). Safe
    /// while the origin serves and resumable; prints what it did and what still needs the old key.
    Reencrypt {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Local MCP client keys (what a client of the local `/mcp` presents as a bearer token when
    /// the listener is not loopback-only): issue, list, revoke, like Settings → MCP client keys.
    McpKey {
        #[command(subcommand)]
        command: McpKeyCommand,
    },
    /// Set a new password for an account and sign it out everywhere. The password is read like
    /// `create` reads it.
    ResetPassword {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long)]
        username: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum McpKeyCommand {
    /// Issue a key and print it (the only time it is shown; only its hash is stored).
    Create {
        #[command(flatten)]
        storage: StorageArgs,
        /// What the key is for (e.g. laptop-claude); logs name callers `mcp:key:{name}`.
        #[arg(long)]
        name: String,
    },
    /// List the keys (never the keys themselves, only their first characters).
    List {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Revoke a key, by its name or id.
    Revoke {
        #[command(flatten)]
        storage: StorageArgs,
        /// The key's name or id.
        key: String,
    },
}

impl ServeArgs {
    /// What the Remote wizard takes from the flags.
    pub fn cloudflare_config(&self) -> crate::cloudflare::Config {
        crate::cloudflare::Config {
            api_url: self.cloudflare_api_url.clone(),
            access_url: self
                .cloudflare_access_url
                .as_deref()
                .map(|url| url.trim_end_matches('/').to_owned()),
            tunnel_listen: self.tunnel_listen,
            flag_allowlist: self.remote_allowed_emails.clone(),
        }
    }

    /// The connection limits of each listener.
    pub fn listener_limits(&self) -> crate::listener::Limits {
        crate::listener::Limits {
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout),
            max_connections: self.max_connections as usize,
        }
    }

    pub fn mcp_session_limits(&self) -> crate::gateway::sessions::Limits {
        crate::gateway::sessions::Limits {
            max_sessions: self.mcp_max_sessions as usize,
            idle_timeout: std::time::Duration::from_secs(self.mcp_session_idle_timeout),
        }
    }

    /// Loopback, the address actually bound (when it is a specific one) and the extra flags.
    pub fn mcp_access(&self, bound: SocketAddr) -> crate::gateway::McpAccess {
        let mut hosts = crate::gateway::McpAccess::default()
            .allowed_hosts
            .unwrap_or_default();
        let mut origins = crate::gateway::McpAccess::default()
            .allowed_origins
            .unwrap_or_default();
        if !bound.ip().is_unspecified() && !bound.ip().is_loopback() {
            hosts.push(bound.ip().to_string());
            origins.push(format!("http://{bound}"));
        }
        hosts.extend(self.mcp_allowed_hosts.iter().cloned());
        origins.extend(self.mcp_allowed_origins.iter().cloned());
        crate::gateway::McpAccess {
            allowed_hosts: Some(hosts),
            allowed_origins: Some(origins),
        }
    }
}
