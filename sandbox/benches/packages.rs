//! Package benchmark: the cost of installing a package (time, disk) and of a server that uses
//! one, against one that does not (call p50/p99, zygote RSS with and without the packages
//! directory, worker peak RSS). Real pip and PyPI.
//!
//! Run: `cargo bench -p mcpbox-sandbox --bench packages` (needs network access to PyPI).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use contract::sandbox::{ExecuteRequest, Limits, PackageGrant};
use sandbox::supervisor::{Config, Supervisor};

const CALLS: usize = 300;
const PLAIN: &str = "import json\ndef main():\n    return json.loads('{\"a\": [1, 2]}')\n";
const WITH_YAML: &str = "import yaml\ndef main():\n    return yaml.safe_load('a: [1, 2]')\n";

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("packages");
    std::fs::create_dir(&root).expect("packages dir");
    let mut grants = Vec::new();
    for (dir_name, spec, module) in [
        ("pyyaml-6.0.3", "pyyaml==6.0.3", "yaml"),
        ("feedparser-6.0.14", "feedparser==6.0.14", "feedparser"),
        (
            "feedparser-sgmllib-2.1.0",
            "feedparser-sgmllib==2.1.0",
            "sgmllib",
        ),
    ] {
        let target = root.join(dir_name);
        let started = Instant::now();
        let status = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
            ])
            .args(["--compile", "--disable-pip-version-check", "--target"])
            .arg(&target)
            .arg(spec)
            .status()
            .expect("pip");
        assert!(status.success(), "pip install {spec}");
        println!(
            "install {spec}: {:.2} s, {} KiB on disk",
            started.elapsed().as_secs_f64(),
            disk_kib(&target)
        );
        grants.push(PackageGrant {
            path: target.to_string_lossy().into_owned(),
            modules: vec![module.to_owned()],
        });
    }
    open_up(dir.path());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        for packages_dir in [None, Some(root.clone())] {
            let label = if packages_dir.is_some() {
                "with"
            } else {
                "without"
            };
            let supervisor = Supervisor::start(Config {
                pool_size: 4,
                program: PathBuf::from(env!("CARGO_BIN_EXE_mcpbox-sandbox")),
                unguarded_python: false,
                packages_dir,
            })
            .await
            .expect("supervisor");
            supervisor.wait_ready().await.expect("ready");
            println!(
                "zygote RSS {label} a packages directory: {:.1} MiB",
                zygote_rss_kib() as f64 / 1024.0
            );
            if label == "with" {
                measure(&supervisor, "server with pyyaml", WITH_YAML, &grants[..1]).await;
            }
            measure(
                &supervisor,
                &format!("server without packages ({label} dir)"),
                PLAIN,
                &[],
            )
            .await;
            supervisor.shutdown();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
}

async fn measure(supervisor: &Supervisor, label: &str, code: &str, grants: &[PackageGrant]) {
    let mut latencies = Vec::with_capacity(CALLS);
    let mut peak_rss = 0;
    for i in 0..CALLS + 20 {
        let started = Instant::now();
        let response = supervisor
            .execute(ExecuteRequest {
                input: None,
                code: code.to_owned(),
                arguments: "{}".into(),
                allowed_modules: None,
                allowed_hosts: Vec::new(),
                secrets: Default::default(),
                packages: grants.to_vec(),
                limits: Limits::default(),
            })
            .await;
        assert!(response.ok, "{response:?}");
        if i >= 20 {
            latencies.push(started.elapsed());
            peak_rss = peak_rss.max(response.usage.max_rss_kb);
        }
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{label}: call p50 {:.2} ms, p99 {:.2} ms, worker peak RSS {:.1} MiB ({CALLS} calls)",
        pct(0.5).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        peak_rss as f64 / 1024.0
    );
}

/// The zygote: this process's child running `mcpbox-sandbox zygote`.
fn zygote_rss_kib() -> u64 {
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let path = entry.path();
        let Ok(status) = std::fs::read_to_string(path.join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l[name.len()..].trim().to_owned())
        };
        let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
        if field("PPid:").as_deref() == Some(me.as_str())
            && String::from_utf8_lossy(&cmdline).contains("zygote")
        {
            return field("VmRSS:")
                .and_then(|v| v.trim_end_matches(" kB").trim().parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

fn disk_kib(path: &Path) -> u64 {
    let out = Command::new("du")
        .arg("-sk")
        .arg(path)
        .output()
        .expect("du");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn open_up(path: &Path) {
    let mode = if path.is_dir() { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read_dir").flatten() {
            open_up(&entry.path());
        }
    }
}
