//! The OS layers attacked on their own: workers here run unguarded Python (full builtins, no
//! static check), so only rlimits, the uid drop, the network namespace, Landlock and seccomp
//! stand between the code and the host. Each case must be stopped by those alone.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use contract::sandbox::{ExecuteRequest, ExecuteResponse, Limits};
use sandbox::supervisor::{Config, Supervisor};

async fn unguarded() -> Supervisor {
    Supervisor::start(Config {
        pool_size: 2,
        program: PathBuf::from(env!("CARGO_BIN_EXE_mcpbox-sandbox")),
        unguarded_python: true,
        packages_dir: None,
    })
    .await
    .expect("supervisor starts")
}

async fn run(supervisor: &Supervisor, code: &str) -> ExecuteResponse {
    supervisor
        .execute(ExecuteRequest {
            input: None,
            code: code.to_owned(),
            arguments: "{}".into(),
            allowed_modules: None,
            allowed_hosts: vec![],
            secrets: Default::default(),
            packages: Vec::new(),
            limits: Limits {
                timeout_ms: 5_000,
                ..Limits::default()
            },
        })
        .await
}

/// Runs `code` (whose main returns a JSON value) and returns the result text.
async fn result(supervisor: &Supervisor, code: &str) -> String {
    let response = run(supervisor, code).await;
    assert!(response.ok, "{code}\n{response:?}");
    response.result.unwrap_or_default()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[tokio::test]
async fn unguarded_mode_really_is_unguarded() {
    // Without this, every "blocked" below could be the static check's doing.
    let supervisor = unguarded().await;
    let text = result(
        &supervisor,
        "import os\ndef main():\n    return [os.getpid() > 0, ().__class__.__name__]\n",
    )
    .await;
    supervisor.shutdown();
    assert_eq!(text, r#"[true,"tuple"]"#);
}

#[tokio::test]
async fn seccomp_blocks_sockets_processes_exec_and_kill() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let supervisor = unguarded().await;
    let code = format!(
        r#"
import os, socket, threading
def attempt(f):
    try:
        f()
        return "allowed"
    except BaseException as e:
        return type(e).__name__
def main():
    return {{
        "tcp": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("127.0.0.1", {port}))),
        "unix": attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)),
        "socketpair": attempt(socket.socketpair),
        "fork": attempt(os.fork),
        "system": os.system("touch {marker}"),
        "exec": attempt(lambda: os.execv("/bin/sh", ["sh", "-c", "touch {marker}"])),
        "thread": attempt(lambda: threading.Thread(target=print).start()),
        "kill_parent": attempt(lambda: os.kill(os.getppid(), 9)),
        "setuid_root": attempt(lambda: os.setuid(0)),
    }}
"#,
        marker = marker.display()
    );
    let text = result(&supervisor, &code).await;
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    supervisor.shutdown();
    for key in [
        "tcp",
        "unix",
        "socketpair",
        "fork",
        "exec",
        "kill_parent",
        "setuid_root",
    ] {
        assert_eq!(value[key], "PermissionError", "{key}: {value}");
    }
    assert_ne!(value["system"], 0, "{value}");
    assert_eq!(value["thread"], "RuntimeError", "{value}");
    assert!(!marker.exists());
    assert!(
        listener.accept().is_err(),
        "a connection reached the listener"
    );
}

/// The zygote's own filter allows what forking and hardening a worker takes (epoll and a
/// socketpair for the event loop, dup2, ioctl, getsockname, wait4, the uid and Landlock calls…);
/// each worker's narrowing filter must deny all of it again once the worker runs code.
#[tokio::test]
async fn workers_cannot_make_the_zygotes_own_syscalls() {
    let supervisor = unguarded().await;
    let code = r#"
import os, select, socket, fcntl
def attempt(f):
    try:
        f()
        return "allowed"
    except BaseException as e:
        return type(e).__name__
def getsockname():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fileno=os.dup(0))
    try:
        s.getsockname()
    finally:
        s.detach()
def main():
    return {
        "epoll": attempt(select.epoll),
        "dup2": attempt(lambda: os.dup2(1, 9)),
        "ioctl": attempt(lambda: fcntl.ioctl(0, 0x5421, b"\1\0\0\0")),
        "getsockname": attempt(getsockname),
        "wait": attempt(os.wait),
        "setgroups": attempt(lambda: os.setgroups([])),
        "open_for_writing": attempt(lambda: open("/dev/null", "w")),
        "open_for_appending": attempt(lambda: os.open("/dev/null", os.O_RDONLY | os.O_APPEND)),
    }
"#;
    let text = result(&supervisor, code).await;
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    supervisor.shutdown();
    for key in [
        "epoll",
        "dup2",
        "ioctl",
        "getsockname",
        "wait",
        "setgroups",
        "open_for_writing",
        "open_for_appending",
    ] {
        assert_eq!(value[key], "PermissionError", "{key}: {value}");
    }
}

#[tokio::test]
async fn landlock_blocks_host_files_even_when_permissions_allow() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let secret = dir.path().join("readable-by-all.txt");
    std::fs::write(&secret, "host file content").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o666)).unwrap();
    let written = dir.path().join("written");
    let supervisor = unguarded().await;
    let code = format!(
        r#"
def attempt(f):
    try:
        return f()
    except BaseException as e:
        return type(e).__name__
def main():
    return {{
        "read": attempt(lambda: open("{secret}").read()),
        "write": attempt(lambda: open("{written}", "w").write("x")),
        "passwd": attempt(lambda: open("/etc/passwd").read()),
        "proc": attempt(lambda: open("/proc/self/environ").read()),
        "tmp": attempt(lambda: open("/tmp/mcpbox-layer-test", "w")),
    }}
"#,
        secret = secret.display(),
        written = written.display()
    );
    let text = result(&supervisor, &code).await;
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    supervisor.shutdown();
    for key in ["read", "write", "passwd", "proc", "tmp"] {
        assert_eq!(value[key], "PermissionError", "{key}: {value}");
    }
    assert!(!written.exists());
}

#[tokio::test]
async fn workers_have_no_environment_an_unprivileged_uid_and_tight_limits() {
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("MCPBOX_LAYER_CANARY", "visible-if-leaked") };
    let supervisor = unguarded().await;
    let text = result(
        &supervisor,
        "import os\ndef main():\n    return [dict(os.environ), os.getuid()]\n",
    )
    .await;
    assert!(!text.contains("visible-if-leaked"), "{text}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value[0], serde_json::json!({}), "{value}");
    if is_root() {
        assert_eq!(value[1], 65534, "{value}");
    }
    // The idle workers are already hardened: read their limits from outside.
    // Wait until the pool is refilled: every idle worker has reported Ready, i.e. is hardened.
    // (The worker that ran the job above may still be exiting: skip processes that are gone.)
    for _ in 0..200 {
        if supervisor.health().idle_workers == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut checked = 0;
    for pid in children_of(supervisor.zygote_pid()) {
        let (Ok(limits), Ok(environ)) = (
            std::fs::read_to_string(format!("/proc/{pid}/limits")),
            std::fs::read(format!("/proc/{pid}/environ")),
        ) else {
            continue;
        };
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        {
            continue; // the finished worker, already exited
        }
        checked += 1;
        let hard = |name: &str| {
            let line = limits
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name}"));
            line[25..].split_whitespace().nth(1).unwrap().to_owned()
        };
        assert_eq!(hard("Max cpu time"), "61");
        assert_eq!(hard("Max data size"), (256u64 * 1024 * 1024).to_string());
        assert_eq!(hard("Max open files"), "256");
        assert_eq!(hard("Max core file size"), "0");
        assert_eq!(hard("Max file size"), "0");
        assert_eq!(hard("Max processes"), "0");
        assert!(environ.is_empty(), "worker {pid} has an environment");
    }
    assert!(checked > 0, "no idle worker to inspect");
    supervisor.shutdown();
}

/// Pids whose parent is `parent`.
fn children_of(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    stat.rsplit_once(')')
                        .map(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_owned))
                })
                .flatten()
                .and_then(|ppid| ppid.parse::<i32>().ok())
                == Some(parent)
        })
        .collect()
}

#[tokio::test]
async fn workers_hold_no_inherited_file_descriptors() {
    let supervisor = unguarded().await;
    // fstat on every low fd number: only 0-2 (/dev/null), the supervisor socket (3) and the
    // event loop's own epoll and self-pipe may exist.
    let code = r#"
import os
def main():
    open_fds = []
    for fd in range(0, 256):
        try:
            os.fstat(fd)
            open_fds.append(fd)
        except OSError:
            pass
    return open_fds
"#;
    let text = result(&supervisor, code).await;
    supervisor.shutdown();
    let fds: Vec<i32> = serde_json::from_str(&text).unwrap();
    assert!(fds.len() <= 7, "{fds:?}");
    assert_eq!(&fds[..4], &[0, 1, 2, 3], "{fds:?}");
}

/// The event loop's epoll fd and self-pipe are made in each worker after the fork (never in the
/// zygote, where every worker would share the same kernel objects: one call's registrations and
/// wake-ups visible to the next). Two calls: the second sees other objects than the first, and
/// nothing the first wrote into every socket it held.
#[tokio::test]
async fn each_worker_has_its_own_event_loop_fds() {
    let supervisor = unguarded().await;
    let code = r#"
import os, stat
def main():
    fds, seen, unread = 0, [], []
    for fd in range(4, 64):
        try:
            info = os.fstat(fd)
        except OSError:
            continue
        fds += 1
        # (Every epoll fd shares the one anonymous inode; sockets have their own.)
        if stat.S_ISSOCK(info.st_mode):
            seen.append([info.st_dev, info.st_ino])
            try:
                unread.append(len(os.read(fd, 4096)))
            except BlockingIOError:
                pass
            try:
                os.write(fd, b"left by the previous call")
            except OSError:
                pass
    return {"fds": fds, "seen": seen, "unread": unread}
"#;
    let first: serde_json::Value = serde_json::from_str(&result(&supervisor, code).await).unwrap();
    let second: serde_json::Value = serde_json::from_str(&result(&supervisor, code).await).unwrap();
    supervisor.shutdown();
    let seen = |v: &serde_json::Value| v["seen"].as_array().cloned().unwrap_or_default();
    // The epoll fd and the two ends of the self-pipe.
    assert_eq!(first["fds"], 3, "{first}");
    assert_eq!(seen(&first).len(), 2, "{first}");
    for object in seen(&first) {
        assert!(!seen(&second).contains(&object), "{first} / {second}");
    }
    // Each worker reads what it wrote into its own pair (the self-pipe's two ends talk to
    // each other), never the other call's bytes: the same count in both.
    assert_eq!(first["unread"], second["unread"], "{first} / {second}");
}

#[tokio::test]
async fn workers_live_in_their_own_network_namespace() {
    if !is_root() {
        // Without root the namespace cannot be created; `doctor` reports it as off, and the
        // health layers say so (asserted in supervisor.rs).
        return;
    }
    let supervisor = unguarded().await;
    let zygote = supervisor.zygote_pid();
    let theirs = std::fs::read_link(format!("/proc/{zygote}/ns/net")).unwrap();
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(theirs, ours);
    assert!(supervisor.health().layers.network_namespace);
    supervisor.shutdown();
}
