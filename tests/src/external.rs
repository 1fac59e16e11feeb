//! The external MCP server of the tests (`tests/clients/external_server.py`, the official
//! Python SDK's MCPServer), started on a free port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The external MCP server; killed when dropped.
pub struct External {
    child: Child,
    /// Its `/mcp` URL.
    pub url: String,
}

impl External {
    /// `args`: `--require-header name=value` (401 without it), `--legacy` (no 2026-07-28).
    pub fn start(args: &[&str]) -> External {
        let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let sdk = std::env::var_os("MCPBOX_TEST_MCP_SDK")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(&std::env::var("HOME").unwrap()).join(".cache/mcpbox/py-mcp")
            });
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/external_server.py");
        let mut command = Command::new(python);
        command
            .arg(script)
            .env("PYTHONPATH", sdk)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        command.args(args);
        let mut child = command.spawn().expect("python starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the external server did not start: {line:?}"))
            .to_owned();
        External {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }
}

impl Drop for External {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
