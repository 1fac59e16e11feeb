//! `progress()` reaches the caller rate-limited, and a dropped call kills its worker at once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use contract::sandbox::{ExecuteRequest, Limits};
use sandbox::supervisor::{Config, Supervisor};

const BINARY: &str = env!("CARGO_BIN_EXE_mcpbox-sandbox");

async fn supervisor(pool_size: usize) -> Supervisor {
    Supervisor::start(Config {
        pool_size,
        program: PathBuf::from(BINARY),
        unguarded_python: false,
        packages_dir: None,
    })
    .await
    .expect("supervisor starts")
}

fn request(code: &str, timeout_ms: u64) -> ExecuteRequest {
    ExecuteRequest {
        input: None,
        code: code.to_owned(),
        arguments: "{}".to_owned(),
        allowed_modules: None,
        allowed_hosts: vec![],
        secrets: Default::default(),
        limits: Limits {
            timeout_ms,
            ..Limits::default()
        },
        packages: Vec::new(),
    }
}

/// Pids of the zygote's children (the workers).
fn workers(zygote: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(')')?;
                    let mut fields = rest.split_whitespace();
                    let state = fields.next()?;
                    let ppid: i32 = fields.next()?.parse().ok()?;
                    Some(ppid == zygote && state != "Z")
                })
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test]
async fn progress_reports_arrive_in_order_rate_limited_with_the_last_one() {
    let supervisor = supervisor(2).await;
    let (sender, mut reports) = tokio::sync::mpsc::channel(64);
    // 200 reports in ~0.4 s: the worker passes about one per 100 ms, and the final one.
    let code = "import time\n\n\ndef main():\n    for i in range(200):\n        progress(i + 1, 200, f'item {i + 1}')\n        time.sleep(0.002)\n    return 'done'\n";
    let answer = supervisor
        .execute_observed(request(code, 10_000), Some(sender))
        .await;
    assert!(answer.ok, "{:?}", answer.error);
    let mut seen = Vec::new();
    while let Ok(report) = reports.try_recv() {
        seen.push(report);
    }
    assert!(
        (2..=10).contains(&seen.len()),
        "{} reports: {seen:?}",
        seen.len()
    );
    assert!(seen.windows(2).all(|w| w[0].done < w[1].done), "{seen:?}");
    let last = seen.last().unwrap();
    assert_eq!((last.done, last.total), (200.0, Some(200.0)));
    assert_eq!(last.message.as_deref(), Some("item 200"));
    // Bad arguments are the tool's error, with a reason.
    for (call, expected) in [
        ("progress('x')", "must be an int or a float"),
        ("progress(float('nan'))", "must be finite"),
        ("progress(1, 2, 3)", "must be a str"),
    ] {
        let code = format!("def main():\n    {call}\n");
        let error = supervisor
            .execute(request(&code, 5_000))
            .await
            .error
            .unwrap_or_else(|| panic!("{call} accepted"));
        assert!(
            error.message.contains(expected),
            "{call}: {}",
            error.message
        );
    }
}

#[tokio::test]
async fn a_dropped_call_kills_its_worker_at_once() {
    let supervisor = supervisor(1).await;
    let zygote = supervisor.zygote_pid();
    supervisor.wait_ready().await.unwrap();
    // The one idle worker is the one the call takes.
    let busy = workers(zygote);
    assert_eq!(busy.len(), 1, "{busy:?}");
    let call = tokio::spawn({
        let supervisor = supervisor.clone();
        async move {
            supervisor
                .execute(request(
                    "import time\n\n\ndef main():\n    time.sleep(60)\n",
                    120_000,
                ))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(workers(zygote).contains(&busy[0]), "the call did not start");
    call.abort();
    let aborted = Instant::now();
    // The sleeping worker is gone (its replacement is there, with a new pid).
    loop {
        let now = workers(zygote);
        if busy.iter().all(|pid| !now.contains(pid)) {
            break;
        }
        assert!(
            aborted.elapsed() < Duration::from_secs(2),
            "the cancelled worker still runs: {busy:?} {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The pool serves the next call.
    let next = supervisor
        .execute(request("def main():\n    return 1\n", 5_000))
        .await;
    assert!(next.ok, "{:?}", next.error);
}
