//! Sandbox benchmark: prints per-call latency through the supervisor socket, throughput with
//! 2 and 16 concurrent callers, zygote RSS, per-worker PSS and supervisor cold start.
//!
//! Run: `cargo bench -p mcpbox-sandbox --bench calls` (release build).
//!
//! A/B: with `MCPBOX_BENCH_BASELINE=<another mcpbox-sandbox binary>` (e.g. one built from the
//! main branch) it instead runs that binary and this build side by side and prints, for a sync
//! and an async tool, sequential p50 (the two interleaved call by call), throughput at 32
//! callers (rounds alternating A, B, A, B…), and per call: the workers' CPU and minor page
//! faults and the zygote's (fork) CPU. The machine is shared and noisy; compare the ratios.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use contract::sandbox::{ExecuteRequest, Hello, Limits, Request, Response};

const TRIVIAL: &str = "async def main(x: int):\n    return {'doubled': x * 2}\n";
const KEY: &str = "benchmark-key-0123456789abcdef0123456789";

fn main() {
    if let Ok(baseline) = std::env::var("MCPBOX_BENCH_BASELINE") {
        ab::run(Path::new(&baseline));
        return;
    }
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
    start_binary(
        Path::new(env!("CARGO_BIN_EXE_mcpbox-sandbox")),
        socket,
        key_file,
        pool,
    )
}

#[allow(clippy::zombie_processes)]
fn start_binary(binary: &Path, socket: &Path, key_file: &Path, pool: usize) -> (Child, Duration) {
    let started = Instant::now();
    let mut child = Command::new(binary)
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
    call_code(stream, TRIVIAL, x);
}

fn call_code(stream: &mut UnixStream, code: &str, x: i64) {
    send(
        stream,
        &Request::Execute(ExecuteRequest {
            input: None,
            code: code.to_owned(),
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

mod ab {
    //! This build against a baseline binary, in one run (see the module comment).

    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::*;

    const SYNC: &str = "def main(x: int) -> dict:\n    return {'doubled': x * 2}\n";
    const CALLERS: usize = 32;
    const ROUNDS: usize = 3;
    const ROUND: Duration = Duration::from_secs(3);
    const SEQUENTIAL: usize = 600;

    struct Side {
        label: &'static str,
        child: Child,
        socket: std::path::PathBuf,
        zygote: i32,
    }

    pub fn run(baseline: &Path) {
        let dir = tempfile::tempdir().expect("tempdir");
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, KEY).expect("key");
        let this = Path::new(env!("CARGO_BIN_EXE_mcpbox-sandbox"));
        let mut sides: Vec<Side> = [("A baseline", baseline), ("B this build", this)]
            .into_iter()
            .enumerate()
            .map(|(i, (label, binary))| {
                let socket = dir.path().join(format!("sandbox-{i}.sock"));
                let (child, _) = start_binary(binary, &socket, &key_file, 16);
                let zygote = children(child.id() as i32)
                    .into_iter()
                    .next()
                    .expect("zygote");
                Side {
                    label,
                    child,
                    socket,
                    zygote,
                }
            })
            .collect();
        for (name, code) in [("sync", SYNC), ("async", TRIVIAL)] {
            let mut streams: Vec<UnixStream> = sides.iter().map(|s| connect(&s.socket)).collect();
            for i in 0..100 {
                for stream in &mut streams {
                    call_code(stream, code, i);
                }
            }
            // Sequential, interleaved call by call.
            let mut latencies = vec![Vec::new(); sides.len()];
            let before: Vec<Counters> = sides.iter().map(|s| Counters::of(s.zygote)).collect();
            for i in 0..SEQUENTIAL as i64 {
                for (side, stream) in streams.iter_mut().enumerate() {
                    let began = Instant::now();
                    call_code(stream, code, i);
                    latencies[side].push(began.elapsed());
                }
            }
            // Let the pools refill so the counters include every replacement's fork + warm-up.
            std::thread::sleep(Duration::from_millis(500));
            let p50: Vec<Duration> = latencies
                .iter_mut()
                .map(|l| {
                    l.sort_unstable();
                    l[l.len() / 2]
                })
                .collect();
            for (side, s) in sides.iter().enumerate() {
                let spent = Counters::of(s.zygote).since(&before[side]);
                println!(
                    "{name} tool, {}: sequential p50 {:.3} ms; per call: worker CPU {:.0} µs, \
                     worker minor faults {:.0}, zygote (fork) CPU {:.0} µs",
                    s.label,
                    ms(p50[side]),
                    spent.worker_us / SEQUENTIAL as f64,
                    spent.worker_faults / SEQUENTIAL as f64,
                    spent.zygote_us / SEQUENTIAL as f64,
                );
            }
            println!(
                "{name} tool: p50 B/A {:.2}",
                p50[1].as_secs_f64() / p50[0].as_secs_f64()
            );
            drop(streams);
            // Throughput, rounds alternating between the two.
            let mut totals = vec![(0usize, Duration::ZERO, Counters::default()); sides.len()];
            for _ in 0..ROUNDS {
                for (side, s) in sides.iter().enumerate() {
                    let before = Counters::of(s.zygote);
                    let (calls, took) = throughput(&s.socket, code);
                    std::thread::sleep(Duration::from_millis(300));
                    let spent = Counters::of(s.zygote).since(&before);
                    totals[side].0 += calls;
                    totals[side].1 += took;
                    totals[side].2 = totals[side].2.plus(&spent);
                }
            }
            let rates: Vec<f64> = totals
                .iter()
                .map(|(calls, took, _)| *calls as f64 / took.as_secs_f64())
                .collect();
            for (side, s) in sides.iter().enumerate() {
                let (calls, _, spent) = &totals[side];
                let calls = *calls as f64;
                println!(
                    "{name} tool, {}: {:.0} calls/s with {CALLERS} callers; per call: worker CPU \
                     {:.0} µs, worker minor faults {:.0}, zygote (fork) CPU {:.0} µs",
                    s.label,
                    rates[side],
                    spent.worker_us / calls,
                    spent.worker_faults / calls,
                    spent.zygote_us / calls,
                );
            }
            println!("{name} tool: throughput B/A {:.2}", rates[1] / rates[0]);
        }
        for side in sides.drain(..) {
            stop(side.child);
        }
    }

    fn throughput(socket: &Path, code: &'static str) -> (usize, Duration) {
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let began = Instant::now();
        let threads: Vec<_> = (0..CALLERS)
            .map(|_| {
                let socket = socket.to_path_buf();
                let (stop, calls) = (stop.clone(), calls.clone());
                std::thread::spawn(move || {
                    let mut stream = connect(&socket);
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        call_code(&mut stream, code, i);
                        i += 1;
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        std::thread::sleep(ROUND);
        stop.store(true, Ordering::Relaxed);
        for thread in threads {
            thread.join().expect("caller");
        }
        (calls.load(Ordering::Relaxed) as usize, began.elapsed())
    }

    /// The zygote's own CPU (its forks) and its reaped workers' CPU and minor faults.
    #[derive(Default, Clone, Copy)]
    struct Counters {
        zygote_us: f64,
        worker_us: f64,
        worker_faults: f64,
    }

    impl Counters {
        fn of(pid: i32) -> Counters {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let fields: Vec<f64> = stat
                .rsplit_once(')')
                .map(|(_, rest)| {
                    rest.split_whitespace()
                        .map(|f| f.parse().unwrap_or(0.0))
                        .collect()
                })
                .unwrap_or_default();
            // After the command: state(0) … minflt(7) cminflt(8) … utime(11) stime(12)
            // cutime(13) cstime(14); times in clock ticks.
            let at = |i: usize| fields.get(i).copied().unwrap_or(0.0);
            let tick_us = 1e6 / 100.0;
            Counters {
                zygote_us: (at(11) + at(12)) * tick_us,
                worker_us: (at(13) + at(14)) * tick_us,
                worker_faults: at(8),
            }
        }

        fn since(&self, before: &Counters) -> Counters {
            Counters {
                zygote_us: self.zygote_us - before.zygote_us,
                worker_us: self.worker_us - before.worker_us,
                worker_faults: self.worker_faults - before.worker_faults,
            }
        }

        fn plus(&self, other: &Counters) -> Counters {
            Counters {
                zygote_us: self.zygote_us + other.zygote_us,
                worker_us: self.worker_us + other.worker_us,
                worker_faults: self.worker_faults + other.worker_faults,
            }
        }
    }
}
