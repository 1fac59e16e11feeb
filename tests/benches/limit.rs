//! The limit of the design, measured on the box the bench runs on, and the sandbox and the gateway
//! measured against it in the same run (issue #17). Machines here are noisy and differ from one
//! another, so what this prints that matters is the ratios, and the instruction counts of
//! `--instructions` (callgrind: the same count however loaded the machine is).
//!
//! 1. **The limit**: every call forks a single-use worker from the zygote, so the most calls a box
//!    can run is how often it can fork, exit and reap a process of the zygote's size with nothing
//!    else done. A forker process maps as much private memory as the zygote has (`RssAnon`,
//!    written, so each page is a page-table entry fork copies) plus a file mapping as large as its
//!    `RssFile` (read), and forks children that `_exit(0)` at once; one forker per core.
//! 2. **The sandbox**: the origin's own supervisor, called straight on its socket
//!    (`<data dir>/sandbox.sock`, the key in `sandbox.key`): sequential p50 and throughput at 32
//!    concurrent connections.
//! 3. **The gateway**: the same tool through `/mcp` (raw HTTP, stateless 2026-07-28, one
//!    keep-alive connection per client), sequential p50 (interleaved call by call with the direct
//!    calls, so both see the same machine) and throughput at 32 concurrent clients driven by this
//!    Rust load generator.
//! 4. **Where one call's CPU goes**: utime + stime of the origin, the supervisor, the zygote and the
//!    workers it reaped (the zygote's `cutime`/`cstime`), per call, for each phase; and the minor
//!    page faults of the zygote and its workers per call (a worker's copy-on-write writes).
//!
//! Run: `cargo build --release --bins && cargo bench -p mcpbox-e2e --bench limit`. It then also
//! counts user-space instructions per call of the origin and the supervisor under callgrind
//! (skipped, and said so, without valgrind; `-- --no-instructions` skips it). The workers'
//! instructions are not counted: they run under seccomp, which valgrind cannot run inside; their
//! CPU time and minor faults per call are printed instead (`sandbox/benches/calls.rs` compares
//! them between two builds).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mcpbox_e2e::mcp::{Mcp, admin_token, approve_and_start, draft_tool, raise_rate_limits};
use mcpbox_e2e::{Origin, ServeOptions};
use serde_json::{Value, json};

const CODE: &str = "def main(n: int) -> dict:\n    return {'n': n}\n";
const TOOL: &str = "bench__echo";
const SEQUENTIAL: usize = 1000;
const CLIENTS: usize = 32;
const FOR: Duration = Duration::from_secs(5);
/// Set in the environment of the forker processes this bench starts of itself.
const FORKER: &str = "MCPBOX_BENCH_FORKER";

fn main() {
    if let Ok(spec) = std::env::var(FORKER) {
        forker(&spec);
        return;
    }
    // Instructions per call are counted by default (callgrind; `perf stat -e instructions` has
    // no hardware counter on these VMs); `--no-instructions` skips that slower second half.
    let instructions = !std::env::args().any(|a| a == "--no-instructions");
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    runtime.block_on(run(instructions));
}

async fn run(instructions: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = Origin::start(ServeOptions::new(dir.path())).expect("mcpbox starts");
    let url = origin.url.clone();
    let mcp_url = format!("{url}/mcp");
    let token = admin_token(&url).await;
    raise_rate_limits(&url, &token).await;
    let (server, tool) = draft_tool(&url, &token, "bench", "echo", CODE).await;
    approve_and_start(&url, &token, &server, &tool).await;

    let origin_pid = origin.child.id() as i32;
    let supervisor = *children(origin_pid)
        .first()
        .expect("the origin's supervisor");
    let zygote = *children(supervisor)
        .first()
        .expect("the supervisor's zygote");
    let anon = status_kib(zygote, "RssAnon:");
    let file = status_kib(zygote, "RssFile:");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "box: {cores} cores; zygote RSS {:.1} MiB ({:.1} anonymous, {:.1} file)",
        (anon + file) as f64 / 1024.0,
        anon as f64 / 1024.0,
        file as f64 / 1024.0
    );

    // 1. The limit.
    let one = fork_limit(anon, file, 1);
    let all = fork_limit(anon, file, cores);
    println!(
        "limit: fork + exit + reap of a zygote-sized process: {:.0}/s on one core \
         ({:.0} µs CPU each), {:.0}/s on {cores} cores",
        one.per_second, one.cpu_us, all.per_second
    );
    let small = fork_limit(5 * 1024, 0, 1);
    println!(
        "       (for scale: {:.0}/s on one core at 5 MiB)",
        small.per_second
    );

    let socket = dir.path().join("sandbox.sock");
    let key = std::fs::read_to_string(dir.path().join("sandbox.key")).expect("sandbox key");
    let key = key.trim().to_owned();
    let pids = Pids {
        origin: origin_pid,
        supervisor,
        zygote,
    };

    // Warm both paths.
    let mut direct = Direct::connect(&socket, &key);
    let mut gateway = Mcp::stateless(&mcp_url);
    for n in 0..100 {
        direct.call(n);
        gateway_call(&mut gateway, n).await.expect("warm-up call");
    }

    // 3a. Sequential, interleaved.
    let before = pids.cpu();
    let (mut on_socket, mut through) = (Vec::new(), Vec::new());
    for n in 0..SEQUENTIAL as i64 {
        let began = Instant::now();
        direct.call(n);
        on_socket.push(began.elapsed());
        let began = Instant::now();
        gateway_call(&mut gateway, n).await.expect("call");
        through.push(began.elapsed());
    }
    let spent = pids.cpu().since(&before);
    let direct_p50 = percentile(&mut on_socket, 0.5);
    let gateway_p50 = percentile(&mut through, 0.5);
    println!(
        "sequential p50: {:.3} ms straight on the sandbox socket, {:.3} ms through /mcp \
         (p99 {:.3} / {:.3} ms, {SEQUENTIAL} calls each, interleaved)",
        ms(direct_p50),
        ms(gateway_p50),
        ms(percentile(&mut on_socket, 0.99)),
        ms(percentile(&mut through, 0.99)),
    );
    spent.print("CPU per call, sequential (both paths)", 2 * SEQUENTIAL);

    // 2. Sandbox throughput.
    let before = pids.cpu();
    let sandbox = socket_throughput(&socket, &key);
    let spent = pids.cpu().since(&before);
    println!(
        "sandbox: {:.0} calls/s with {CLIENTS} concurrent socket connections ({} calls)",
        sandbox.per_second, sandbox.calls
    );
    spent.print("CPU per call, sandbox at 32", sandbox.calls);

    // 3b. Gateway throughput.
    let before = pids.cpu();
    let through = gateway_throughput(&mcp_url).await;
    let spent = pids.cpu().since(&before);
    println!(
        "gateway: {:.0} calls/s with {CLIENTS} concurrent stateless clients ({} calls, {} errors)",
        through.per_second, through.calls, through.errors
    );
    spent.print("CPU per call, gateway at 32", through.calls);

    println!("ratios (goal in brackets):");
    println!(
        "  sandbox throughput / limit on {cores} cores: {:.2} (>= 0.80)",
        sandbox.per_second / all.per_second
    );
    println!(
        "  gateway throughput / sandbox throughput: {:.2} (>= 0.85)",
        through.per_second / sandbox.per_second
    );
    println!(
        "  gateway p50 / direct p50: {:.2} (<= 1.25)",
        gateway_p50.as_secs_f64() / direct_p50.as_secs_f64()
    );
    drop(direct);
    drop(origin);

    if instructions {
        counted::run().await;
    }
}

// ---------------------------------------------------------------------------------------------
// The limit.

struct Forks {
    per_second: f64,
    /// CPU (user + system, parent and children) per fork.
    cpu_us: f64,
}

/// Runs `processes` forkers (this binary again, as [`forker`]) at once for 3 s and adds up.
fn fork_limit(anon_kib: u64, file_kib: u64, processes: usize) -> Forks {
    let exe = std::env::current_exe().expect("current_exe");
    let forkers: Vec<_> = (0..processes)
        .map(|_| {
            std::process::Command::new(&exe)
                .env(FORKER, format!("{anon_kib}:{file_kib}:3"))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("forker")
        })
        .collect();
    let (mut per_second, mut cpu_us) = (0.0, 0.0);
    for forker in forkers {
        let output = forker.wait_with_output().expect("forker output");
        let text = String::from_utf8_lossy(&output.stdout);
        let mut fields = text
            .split_whitespace()
            .map(|f| f.parse::<f64>().unwrap_or(0.0));
        per_second += fields.next().unwrap_or(0.0);
        cpu_us += fields.next().unwrap_or(0.0) / processes as f64;
    }
    Forks { per_second, cpu_us }
}

/// One forker: `anon_kib:file_kib:seconds`. Prints forks per second and CPU µs per fork.
fn forker(spec: &str) {
    let mut parts = spec.split(':').map(|p| p.parse::<u64>().unwrap_or(0));
    let (anon, file, seconds) = (
        parts.next().unwrap_or(0) * 1024,
        parts.next().unwrap_or(0) * 1024,
        parts.next().unwrap_or(3),
    );
    let page = 4096usize;
    // SAFETY: plain anonymous and file mappings this process owns for its whole life; every
    // access stays inside them.
    unsafe {
        if anon > 0 {
            let memory = libc::mmap(
                std::ptr::null_mut(),
                anon as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            ) as *mut u8;
            assert!(memory as isize != -1, "mmap");
            for offset in (0..anon as usize).step_by(page) {
                *memory.add(offset) = 1;
            }
        }
        if file > 0 {
            let backing = tempfile::tempfile().expect("file");
            backing.set_len(file).expect("size");
            let memory = libc::mmap(
                std::ptr::null_mut(),
                file as usize,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                std::os::fd::AsRawFd::as_raw_fd(&backing),
                0,
            ) as *const u8;
            assert!(memory as isize != -1, "mmap");
            let mut sum = 0u8;
            for offset in (0..file as usize).step_by(page) {
                sum = sum.wrapping_add(std::ptr::read_volatile(memory.add(offset)));
            }
            std::hint::black_box(sum);
            std::mem::forget(backing);
        }
    }
    let cpu = || {
        let mut total = 0.0;
        for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
            // SAFETY: getrusage writes into the struct it is given.
            let usage = unsafe {
                let mut usage: libc::rusage = std::mem::zeroed();
                libc::getrusage(who, &mut usage);
                usage
            };
            for time in [usage.ru_utime, usage.ru_stime] {
                total += time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
            }
        }
        total
    };
    let (began, cpu_before) = (Instant::now(), cpu());
    let deadline = began + Duration::from_secs(seconds);
    let mut forks = 0u64;
    while Instant::now() < deadline {
        // SAFETY: the child only calls `_exit`, which is async-signal-safe.
        match unsafe { libc::fork() } {
            0 => unsafe { libc::_exit(0) },
            -1 => panic!("fork failed"),
            child => {
                let mut status = 0;
                // SAFETY: waits for the child just forked.
                unsafe { libc::waitpid(child, &mut status, 0) };
                forks += 1;
            }
        }
    }
    let took = began.elapsed().as_secs_f64();
    println!(
        "{} {}",
        forks as f64 / took,
        (cpu() - cpu_before) * 1e6 / forks.max(1) as f64
    );
}

// ---------------------------------------------------------------------------------------------
// The two paths.

/// A connection to the sandbox supervisor, speaking its frames (4-byte length + JSON).
struct Direct(UnixStream);

impl Direct {
    fn connect(socket: &Path, key: &str) -> Direct {
        let mut stream = UnixStream::connect(socket).expect("sandbox socket");
        send(&mut stream, &json!({"key": key}));
        Direct(stream)
    }

    /// What the origin sends for this tool, minus its secrets (none) and module list (default).
    fn call(&mut self, n: i64) {
        let request = json!({
            "type": "execute",
            "code": CODE,
            "arguments": json!({"n": n}).to_string(),
        });
        send(&mut self.0, &request);
        let mut len = [0u8; 4];
        self.0.read_exact(&mut len).expect("read length");
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.0.read_exact(&mut body).expect("read body");
        let answer: Value = serde_json::from_slice(&body).expect("response");
        assert_eq!(answer["ok"], true, "direct call failed: {answer}");
    }
}

fn send(stream: &mut UnixStream, value: &Value) {
    let body = serde_json::to_vec(value).expect("json");
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    stream.write_all(&frame).expect("write");
}

async fn gateway_call(client: &mut Mcp, n: i64) -> Result<(), String> {
    let answer = client
        .call("tools/call", json!({"name": TOOL, "arguments": {"n": n}}))
        .await;
    if answer["result"]["structuredContent"]["n"] == json!(n) {
        Ok(())
    } else {
        Err(answer.to_string())
    }
}

struct Throughput {
    per_second: f64,
    calls: usize,
    errors: usize,
}

fn socket_throughput(socket: &Path, key: &str) -> Throughput {
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (socket, key) = (socket.to_path_buf(), key.to_owned());
            let (stop, calls) = (stop.clone(), calls.clone());
            std::thread::spawn(move || {
                let mut direct = Direct::connect(&socket, &key);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    direct.call(n);
                    n += 1;
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(FOR);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("caller");
    }
    let calls = calls.load(Ordering::Relaxed) as usize;
    Throughput {
        per_second: calls as f64 / began.elapsed().as_secs_f64(),
        calls,
        errors: 0,
    }
}

async fn gateway_throughput(mcp_url: &str) -> Throughput {
    let deadline = Instant::now() + FOR;
    let began = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut client = Mcp::stateless(mcp_url);
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0usize, 0usize);
                while Instant::now() < deadline {
                    match gateway_call(&mut client, ok as i64).await {
                        Ok(()) => ok += 1,
                        Err(error) => {
                            failed += 1;
                            if failed == 1 {
                                eprintln!("first error: {error}");
                            }
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut calls, mut errors) = (0, 0);
    for worker in workers {
        let (ok, failed) = worker.await.expect("client");
        calls += ok;
        errors += failed;
    }
    Throughput {
        per_second: calls as f64 / began.elapsed().as_secs_f64(),
        calls,
        errors,
    }
}

// ---------------------------------------------------------------------------------------------
// CPU per process.

struct Pids {
    origin: i32,
    supervisor: i32,
    zygote: i32,
}

/// Seconds of CPU: the origin, the supervisor, the zygote itself (its fork calls) and the
/// workers it reaped; and this process (the load generator). Then the minor page faults of the
/// zygote and of the workers it reaped (mostly copy-on-write of the zygote's pages).
#[derive(Clone, Copy)]
struct Cpu([f64; 5], [f64; 2]);

impl Pids {
    fn cpu(&self) -> Cpu {
        let (origin, _) = times(self.origin);
        let (supervisor, _) = times(self.supervisor);
        let (zygote, workers) = times(self.zygote);
        let (generator, _) = times(std::process::id() as i32);
        Cpu(
            [origin, supervisor, zygote, workers, generator],
            faults(self.zygote),
        )
    }
}

impl Cpu {
    fn since(&self, before: &Cpu) -> Cpu {
        let mut spent = [0.0; 5];
        for (i, value) in spent.iter_mut().enumerate() {
            *value = self.0[i] - before.0[i];
        }
        let faults = [self.1[0] - before.1[0], self.1[1] - before.1[1]];
        Cpu(spent, faults)
    }

    fn print(&self, what: &str, calls: usize) {
        let per = |s: f64| s * 1e6 / calls.max(1) as f64;
        let [origin, supervisor, zygote, workers, generator] = self.0;
        println!(
            "  {what}: origin {:.0} µs, supervisor {:.0} µs, zygote (fork) {:.0} µs, \
             worker {:.0} µs; load generator {:.0} µs",
            per(origin),
            per(supervisor),
            per(zygote),
            per(workers),
            per(generator)
        );
        let count = |n: f64| n / calls.max(1) as f64;
        println!(
            "    minor page faults per call: zygote {:.0}, worker {:.0}",
            count(self.1[0]),
            count(self.1[1])
        );
    }
}

/// (minflt, cminflt) of `pid`.
fn faults(pid: i32) -> [f64; 2] {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default();
    // After the command: state(0) ppid(1) pgrp(2) session(3) tty(4) tpgid(5) flags(6)
    // minflt(7) cminflt(8).
    let at = |i: usize| fields.get(i).copied().unwrap_or(0.0);
    [at(7), at(8)]
}

/// (utime + stime, cutime + cstime) of `pid` in seconds.
fn times(pid: i32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default();
    // After the command: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
    let at = |i: usize| fields.get(i).copied().unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ((at(11) + at(12)) / ticks, (at(13) + at(14)) / ticks)
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

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * q) as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------------------------
// Instructions per call, counted by callgrind.

mod counted {
    //! The origin and its supervisor run under `valgrind --tool=callgrind` (the zygote and the
    //! workers natively: the supervisor execs the zygote and `--trace-children=no`), so their
    //! user-space instructions are counted exactly. Each phase is bracketed by
    //! `callgrind_control --zero` and `--dump`; the dump's `summary:` line is the count.
    //! Kernel work (fork, page faults, sockets) is not in these counts: the CPU times above have it.

    use super::*;

    pub async fn run() {
        if std::process::Command::new("valgrind")
            .arg("--version")
            .output()
            .is_err()
        {
            println!("instructions: valgrind is not installed; skipped");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("callgrind");
        std::fs::create_dir_all(&out).expect("out dir");
        let wrapper = dir.path().join("sandbox-under-callgrind");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec valgrind --tool=callgrind --trace-children=no \
                 --callgrind-out-file={}/supervisor.%p -q {} \"$@\"\n",
                out.display(),
                mcpbox_e2e::binary("mcpbox-sandbox").display()
            ),
        )
        .expect("wrapper");
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let Some(origin) = Counted::start(&data, &wrapper, &out) else {
            println!("instructions: the origin did not start under callgrind; skipped");
            return;
        };
        let url = origin.url.clone();
        let mcp_url = format!("{url}/mcp");
        let token = admin_token(&url).await;
        raise_rate_limits(&url, &token).await;
        let (server, tool) = draft_tool(&url, &token, "bench", "echo", CODE).await;
        approve_and_start(&url, &token, &server, &tool).await;
        let supervisor = *children(origin.pid()).first().expect("supervisor");
        let key = std::fs::read_to_string(data.join("sandbox.key")).expect("key");
        let mut direct = Direct::connect(&data.join("sandbox.sock"), key.trim());
        let mut gateway = Mcp::stateless(&mcp_url);
        for n in 0..20 {
            direct.call(n);
            gateway_call(&mut gateway, n).await.expect("warm-up");
        }
        const CALLS: usize = 200;
        let phases: [(&str, bool); 2] = [("straight on the socket", false), ("through /mcp", true)];
        for (label, through_gateway) in phases {
            zero(origin.pid());
            zero(supervisor);
            for n in 0..CALLS as i64 {
                if through_gateway {
                    gateway_call(&mut gateway, n).await.expect("call");
                } else {
                    direct.call(n);
                }
            }
            let origin_count = dump(origin.pid());
            let supervisor_count = dump(supervisor);
            let per = |count: Option<u64>| {
                count.map_or("n/a".to_owned(), |c| format!("{}", c / CALLS as u64))
            };
            println!(
                "instructions per call {label} (user space, callgrind, {CALLS} calls): \
                 origin {}, supervisor {}",
                per(origin_count),
                per(supervisor_count)
            );
        }
    }

    fn zero(pid: i32) {
        let _ = std::process::Command::new("callgrind_control")
            .args(["--zero", &pid.to_string()])
            .output();
    }

    /// Dumps the counters of `pid` and reads the instruction total of that dump.
    fn dump(pid: i32) -> Option<u64> {
        let output = std::process::Command::new("callgrind_control")
            .args(["--dump", &pid.to_string()])
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        // callgrind_control -s? prints no totals; the dump file's `summary:` (or `totals:`) does.
        let newest = newest_dump(pid)?;
        let text = std::fs::read_to_string(newest).ok()?;
        text.lines()
            .find_map(|l| {
                l.strip_prefix("summary:")
                    .or_else(|| l.strip_prefix("totals:"))
            })
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }

    fn newest_dump(pid: i32) -> Option<PathBuf> {
        let dir = OUT.get()?;
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(&format!(".{pid}")))
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
            .map(|e| e.path())
    }

    static OUT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

    /// `mcpbox serve` under callgrind; killed when dropped.
    struct Counted {
        child: std::process::Child,
        url: String,
    }

    impl Counted {
        fn start(data: &Path, sandbox: &Path, out: &Path) -> Option<Counted> {
            let _ = OUT.set(out.to_path_buf());
            let mut child = std::process::Command::new("valgrind")
                .arg("--tool=callgrind")
                .arg("-q")
                .arg(format!("--callgrind-out-file={}/origin.%p", out.display()))
                .arg(mcpbox_e2e::binary("mcpbox"))
                .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(data)
                .arg("--sandbox-binary")
                .arg(sandbox)
                .env_remove("MCPBOX_ENCRYPTION_KEY")
                .env_remove("DATABASE_URL")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()?;
            let stdout = child.stdout.take()?;
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    if let Some(url) = line.strip_prefix("MCPbox listening on ") {
                        let _ = tx.send(url.to_owned());
                    }
                }
            });
            match rx.recv_timeout(Duration::from_secs(180)) {
                Ok(url) => Some(Counted { child, url }),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    None
                }
            }
        }

        fn pid(&self) -> i32 {
            self.child.id() as i32
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
