//! Helpers for end-to-end tests: start the real `mcpbox` binary on a free port with its own data
//! directory, wait for it, and stop it.

pub mod browser;
pub mod external;
pub mod fixture;
pub mod mcp;
pub mod otlp;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Path of a binary built in this workspace (tests run from `target/<profile>/deps`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// The npm prefix where `scripts/test` installs the Node tools the tests use (Node 22, the MCP
/// conformance suite and Inspector, axe-core): `$MCPBOX_TEST_NODE_DIR`, else
/// `$MCPBOX_CACHE/node`, else `~/.cache/mcpbox/node`.
pub fn node_dir() -> PathBuf {
    match std::env::var_os("MCPBOX_TEST_NODE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("MCPBOX_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/mcpbox")
            })
            .join("node"),
    }
}

/// A running `mcpbox serve`; killed when dropped.
pub struct Origin {
    pub child: Child,
    pub url: String,
    /// The tunnel listener's URL, when started with `--tunnel-listen`.
    pub tunnel_url: Option<String>,
    /// The metrics listener's URL, when started with `--metrics-listen`.
    pub metrics_url: Option<String>,
    /// stderr lines (the log), collected in the background.
    pub log: mpsc::Receiver<String>,
}

pub struct ServeOptions<'a> {
    pub data_dir: &'a Path,
    pub env: Vec<(&'a str, String)>,
    pub args: Vec<String>,
    /// The admin listener's address (default `127.0.0.1:0`, a free port); a fixed one lets a
    /// killed process come back where a load balancer expects it.
    pub listen: Option<String>,
}

impl<'a> ServeOptions<'a> {
    pub fn new(data_dir: &'a Path) -> Self {
        ServeOptions {
            data_dir,
            env: Vec::new(),
            args: Vec::new(),
            listen: None,
        }
    }
}

/// Which start-up line of `mcpbox serve` was read.
enum Listener {
    Main,
    Tunnel,
    Metrics,
}

impl Origin {
    pub fn start(options: ServeOptions<'_>) -> anyhow::Result<Origin> {
        let mut command = Command::new(binary("mcpbox"));
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(options.data_dir)
            .arg("--listen")
            .arg(options.listen.as_deref().unwrap_or("127.0.0.1:0"))
            .args(&options.args)
            .env_remove("MCPBOX_ENCRYPTION_KEY")
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &options.env {
            command.env(key, value);
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (log_tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = log_tx.send(line);
            }
        });
        let (url_tx, url_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("MCPbox listening on ") {
                    let _ = url_tx.send((Listener::Main, url.to_owned()));
                } else if let Some(url) = line.strip_prefix("MCPbox tunnel listener on ") {
                    let _ = url_tx.send((Listener::Tunnel, url.to_owned()));
                } else if let Some(url) = line.strip_prefix("MCPbox metrics listener on ") {
                    let _ = url_tx.send((Listener::Metrics, url.to_owned()));
                }
            }
        });
        let wants_tunnel = options.args.iter().any(|a| a == "--tunnel-listen");
        let wants_metrics = options.args.iter().any(|a| a == "--metrics-listen")
            || options
                .env
                .iter()
                .any(|(k, _)| *k == "MCPBOX_METRICS_LISTEN");
        let (mut url, mut tunnel_url, mut metrics_url) = (None, None, None);
        while url.is_none()
            || (wants_tunnel && tunnel_url.is_none())
            || (wants_metrics && metrics_url.is_none())
        {
            match url_rx.recv_timeout(Duration::from_secs(30)) {
                Ok((Listener::Main, found)) => url = Some(found),
                Ok((Listener::Tunnel, found)) => tunnel_url = Some(found),
                Ok((Listener::Metrics, found)) => metrics_url = Some(found),
                Err(_) => {
                    let _ = child.kill();
                    let log: Vec<String> = log.try_iter().collect();
                    anyhow::bail!("mcpbox did not start:\n{}", log.join("\n"));
                }
            }
        }
        let url = url.unwrap_or_default();
        Ok(Origin {
            child,
            url,
            tunnel_url,
            metrics_url,
            log,
        })
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "mcpbox did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
