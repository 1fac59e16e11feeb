//! Start-up benchmark: prints the time from spawning `mcpbox serve` to `/health/ready` = 200
//! (fresh data dir: key generation + migrations; and warm: existing data dir), and the idle RSS
//! of the process after start-up and a sign-in.
//!
//! Run: `cargo build --release --bins && cargo bench -p mcpbox-origin --bench startup` (the
//! origin starts the release `mcpbox-sandbox` next to it; ready includes the sandbox).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 10;

fn main() {
    let binary = env!("CARGO_BIN_EXE_mcpbox");
    let mut fresh = Vec::new();
    let mut warm = Vec::new();
    let mut rss_kib = Vec::new();
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().expect("tempdir");
        let (child, took, _) = start(binary, dir.path());
        fresh.push(took);
        stop(child);
        let (child, took, _) = start(binary, dir.path());
        warm.push(took);
        stop(child);
    }
    // Idle RSS: start, set up, sign in once, let it settle, read VmRSS.
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let (child, _, addr) = start(binary, dir.path());
        let body = r#"{"username":"admin","password":"correct horse battery"}"#;
        assert!(http(&addr, "POST", "/auth/setup", body).starts_with("HTTP/1.1 201"));
        assert!(http(&addr, "POST", "/auth/login", body).starts_with("HTTP/1.1 200"));
        std::thread::sleep(Duration::from_millis(500));
        rss_kib.push(vm_rss_kib(child.id()));
        stop(child);
    }
    report("cold start to /health/ready (new data dir)", &mut fresh);
    report("cold start to /health/ready (existing data dir)", &mut warm);
    rss_kib.sort_unstable();
    println!(
        "idle RSS of mcpbox after start + sign-in (the sandbox's processes are apart): median {:.1} MiB (min {:.1}, max {:.1}) over {} runs",
        rss_kib[rss_kib.len() / 2] as f64 / 1024.0,
        rss_kib[0] as f64 / 1024.0,
        rss_kib[rss_kib.len() - 1] as f64 / 1024.0,
        rss_kib.len()
    );
}

// The child is handed to the caller, which waits for it in `stop`; the lint cannot see that.
#[allow(clippy::zombie_processes)]
fn start(binary: &str, data_dir: &std::path::Path) -> (Child, Duration, String) {
    let began = Instant::now();
    let mut child = Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("MCPBOX_ENCRYPTION_KEY")
        .env("MCPBOX_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mcpbox");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("mcpbox exited before listening")
            .expect("read");
        if let Some(url) = line.strip_prefix("MCPbox listening on http://") {
            break url.to_owned();
        }
    };
    // Ready means the database and the sandbox (which `serve` starts) both answer.
    loop {
        if http(&addr, "GET", "/health/ready", "").starts_with("HTTP/1.1 200") {
            return (child, began.elapsed(), addr);
        }
        if began.elapsed() > Duration::from_secs(30) {
            let body = http(&addr, "GET", "/health/ready", "");
            stop(child);
            panic!(
                "not ready after 30 s (is mcpbox-sandbox built next to mcpbox? `cargo build --release --bins`):\n{body}"
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// A minimal HTTP/1.1 request (no client library, so the bench measures the server only).
fn http(addr: &str, method: &str, path: &str, body: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return String::new();
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS")
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: median {:.1} ms (min {:.1}, max {:.1}) over {} runs",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
}
