//! Sandbox benchmark: prints per-call latency through the supervisor socket, throughput with
//! 2 and 16 concurrent callers, zygote RSS, per-worker PSS and supervisor cold start.
//!
//! Run: `cargo bench -p mcpbox-sandbox --bench calls` (release build).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use contract::sandbox::{ExecuteRequest, Hello, Limits, Request, Response};

const TRIVIAL: &str = "async def main(x: int):\n    return {'doubled': x * 2}\n";
const KEY: &str = "benchmark-key-0123456789abcdef0123456789";

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("sandbox.sock");
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, KEY).expect("key");

    let mut cold = Vec::new();
    for _ in 0..5 {
        let (child, took) = start(&socket, &key_file, 4);
        cold.push(took);
        stop(child);
    }
    let (child, _) = start(&socket, &key_file, 16);

    let mut stream = connect(&socket);
    for i in 0..200 {
        call(&mut stream, i); // warm-up
    }
    // Back to back, and with a 2 ms pause between calls (closer to how an LLM calls tools: the
    // pool refills in the pause).
    for (label, pause) in [
        ("back to back", None),
        ("2 ms apart", Some(Duration::from_millis(2))),
    ] {
        let mut latencies = Vec::new();
        for i in 0..2000 {
            let started = Instant::now();
            call(&mut stream, i);
            latencies.push(started.elapsed());
            if let Some(pause) = pause {
                std::thread::sleep(pause);
            }
        }
        latencies.sort_unstable();
        let pct =
            |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        println!(
            "trivial tool through the socket, sequential, {label}: p50 {:.3} ms, p99 {:.3} ms ({} calls)",
            ms(pct(0.50)),
            ms(pct(0.99)),
            latencies.len()
        );
    }
    for concurrency in [2, 16] {
        let per_thread = 1500 / concurrency;
        let started = Instant::now();
        let threads: Vec<_> = (0..concurrency)
            .map(|_| {
                let socket = socket.clone();
                std::thread::spawn(move || {
                    let mut stream = connect(&socket);
                    for i in 0..per_thread {
                        call(&mut stream, i as i64);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("caller thread");
        }
        let total = per_thread * concurrency;
        println!(
            "throughput with {concurrency} concurrent callers: {:.0} calls/s ({total} calls)",
            total as f64 / started.elapsed().as_secs_f64()
        );
    }
    let zygote = children(child.id() as i32)
        .into_iter()
        .next()
        .expect("zygote");
    std::thread::sleep(Duration::from_millis(300));
    let workers = children(zygote);
    let zygote_rss = status_kib(zygote, "VmRSS:");
    let pss: Vec<u64> = workers.iter().filter_map(|pid| pss_kib(*pid)).collect();
    println!("zygote RSS: {:.1} MiB", zygote_rss as f64 / 1024.0);
    if !pss.is_empty() {
        println!(
            "idle worker PSS: {:.1} MiB average over {} workers (RSS {:.1} MiB each, mostly shared with the zygote)",
            pss.iter().sum::<u64>() as f64 / pss.len() as f64 / 1024.0,
            pss.len(),
            status_kib(workers[0], "VmRSS:") as f64 / 1024.0
        );
    }
    cold.sort_unstable();
    println!(
        "supervisor cold start to first ready worker: median {:.1} ms (min {:.1}, max {:.1})",
        ms(cold[cold.len() / 2]),
        ms(cold[0]),
        ms(cold[cold.len() - 1])
    );
    stop(child);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// The child is handed back and waited for in `stop`; the lint cannot see that.
#[allow(clippy::zombie_processes)]
fn start(socket: &Path, key_file: &Path, pool: usize) -> (Child, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpbox-sandbox"))
        .args(["serve", "--pool-size", &pool.to_string(), "--socket"])
        .arg(socket)
        .arg("--key-file")
        .arg(key_file)
        .env("MCPBOX_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mcpbox-sandbox");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read");
    assert!(line.starts_with("mcpbox-sandbox listening"), "{line}");
    (child, started.elapsed())
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn connect(socket: &Path) -> UnixStream {
    let mut stream = UnixStream::connect(socket).expect("connect");
    send(
        &mut stream,
        &Hello {
            key: KEY.to_owned(),
        },
    );
    stream
}

fn send<T: serde::Serialize>(stream: &mut UnixStream, value: &T) {
    let body = serde_json::to_vec(value).expect("json");
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame).expect("write");
}

fn call(stream: &mut UnixStream, x: i64) {
    send(
        stream,
        &Request::Execute(ExecuteRequest {
            code: TRIVIAL.to_owned(),
            arguments: format!("{{\"x\": {x}}}"),
            allowed_modules: None,
            allowed_hosts: vec![],
            secrets: Default::default(),
            packages: Vec::new(),
            limits: Limits::default(),
        }),
    );
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).expect("read length");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).expect("read body");
    match serde_json::from_slice::<Response>(&body).expect("response") {
        Response::Execute(response) if response.ok => {}
        other => panic!("call failed: {other:?}"),
    }
}

fn children(parent: i32) -> Vec<i32> {
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    stat.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                })
                == Some(parent)
        })
        .collect();
    pids.sort_unstable();
    pids
}

fn status_kib(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn pss_kib(pid: i32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("Pss:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}
