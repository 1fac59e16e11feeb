//! The supervisor under failure, and its two fronts (`serve` over the socket, `exec` on the
//! command line) as other programs use them.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use contract::sandbox::{
    ErrorKind, ExecuteRequest, Hello, Limits, Request, Response, ValidateRequest,
};
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

fn request(code: &str, arguments: &str, timeout_ms: u64) -> ExecuteRequest {
    ExecuteRequest {
        input: None,
        code: code.to_owned(),
        arguments: arguments.to_owned(),
        allowed_modules: None,
        allowed_hosts: vec![],
        secrets: Default::default(),
        packages: Vec::new(),
        limits: Limits {
            timeout_ms,
            ..Limits::default()
        },
    }
}

/// User + system CPU time of a process, in clock ticks (usually 1/100 s).
fn cpu_ticks(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// (pid, state) of every process whose parent is `parent`.
fn children(parent: i32) -> Vec<(i32, char)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            let mut fields = rest.split_whitespace();
            let state = fields.next()?.chars().next()?;
            let ppid: i32 = fields.next()?.parse().ok()?;
            (ppid == parent).then_some((pid, state))
        })
        .collect()
}

#[tokio::test]
async fn a_worker_killed_mid_call_fails_only_that_call() {
    let supervisor = supervisor(3).await;
    let zygote = supervisor.zygote_pid();
    let busy = tokio::spawn({
        let supervisor = supervisor.clone();
        async move {
            supervisor
                .execute(request(
                    "def main():\n    while True:\n        pass\n",
                    "{}",
                    20_000,
                ))
                .await
        }
    });
    let calm = tokio::spawn({
        let supervisor = supervisor.clone();
        async move {
            supervisor
                .execute(request(
                    "import time\ndef main():\n    time.sleep(1)\n    return 'calm'\n",
                    "{}",
                    20_000,
                ))
                .await
        }
    });
    // The busy worker is the zygote child that has used real CPU time (a refill worker warming up
    // is briefly running too, but for milliseconds); kill it from outside.
    let deadline = Instant::now() + Duration::from_secs(10);
    let victim = loop {
        if let Some(pid) = children(zygote)
            .into_iter()
            .map(|(pid, _)| pid)
            .find(|pid| cpu_ticks(*pid) >= 20)
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "no busy worker found");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // SAFETY: sending a signal to a process of ours.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let busy = busy.await.unwrap();
    assert_eq!(
        busy.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::Crashed),
        "{busy:?}"
    );
    assert!(
        busy.error.as_ref().unwrap().message.contains("killed"),
        "{busy:?}"
    );
    let calm = calm.await.unwrap();
    assert_eq!(calm.result.as_deref(), Some("\"calm\""), "{calm:?}");
    // And the supervisor keeps serving.
    let after = supervisor
        .execute(request("def main():\n    return 7\n", "{}", 5_000))
        .await;
    assert_eq!(after.result.as_deref(), Some("7"));
    supervisor.shutdown();
}

#[tokio::test]
async fn no_zombies_or_leftover_processes() {
    let supervisor = supervisor(2).await;
    let zygote = supervisor.zygote_pid();
    let calls = (0..20).map(|i| {
        let supervisor = supervisor.clone();
        tokio::spawn(async move {
            supervisor
                .execute(request(
                    "def main(n: int):\n    return n * 2\n",
                    &format!("{{\"n\": {i}}}"),
                    5_000,
                ))
                .await
        })
    });
    for (i, call) in calls.enumerate() {
        let response = call.await.unwrap();
        assert_eq!(response.result, Some((i * 2).to_string()));
    }
    // A timed-out worker is killed too.
    let slow = supervisor
        .execute(request(
            "def main():\n    while True:\n        pass\n",
            "{}",
            300,
        ))
        .await;
    assert_eq!(slow.error.map(|e| e.kind), Some(ErrorKind::Timeout));
    // Once the pool has settled, the zygote's only children are its idle workers: no zombies.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let kids = children(zygote);
        if kids.len() == 2 && kids.iter().all(|(_, state)| *state != 'Z') {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "zygote children did not settle: {kids:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    supervisor.shutdown();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{zygote}")).exists() || !children(zygote).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the zygote or its workers outlived shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_crashed_zygote_is_restarted() {
    let supervisor = supervisor(1).await;
    assert_eq!(supervisor.health().zygote_restarts, 0);
    let first = supervisor.zygote_pid();
    // SAFETY: killing the zygote we started.
    unsafe { libc::kill(first, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = supervisor
            .execute(request("def main():\n    return 'back'\n", "{}", 5_000))
            .await;
        if response.ok {
            assert_eq!(response.result.as_deref(), Some("\"back\""));
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {response:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A worker forked before the crash may answer before the supervisor has noticed it (the
    // pool keeps idle workers), so wait for the replacement itself, then use it.
    while supervisor.zygote_pid() == first {
        assert!(Instant::now() < deadline, "the zygote was not replaced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = supervisor
        .execute(request(
            "def main():
    return 'new'
",
            "{}",
            5_000,
        ))
        .await;
    assert!(after.ok, "{after:?}");
    // Counted, so the origin can tell a crash loop from one crash.
    assert_eq!(supervisor.health().zygote_restarts, 1);
    supervisor.shutdown();
}

#[tokio::test]
async fn validation_reports_errors_and_derives_the_schema() {
    let supervisor = supervisor(2).await;
    let validate = |code: &str| {
        let supervisor = supervisor.clone();
        let code = code.to_owned();
        async move {
            supervisor
                .validate(ValidateRequest {
                    code,
                    allowed_modules: None,
                })
                .await
                .unwrap()
        }
    };
    let good = validate(
        "from typing import Literal, Optional\nasync def main(city: str, days: int = 3, unit: Literal['c', 'f'] = 'c', note: Optional[str] = None) -> dict:\n    \"\"\"Weather for a city.\n\n    Args:\n        city: Which city.\n    \"\"\"\n    return {}\n",
    )
    .await;
    assert!(good.valid && good.has_main, "{good:?}");
    assert_eq!(good.description.as_deref(), Some("Weather for a city."));
    let schema: serde_json::Value =
        serde_json::from_str(good.input_schema.as_deref().unwrap()).unwrap();
    assert_eq!(schema["required"], serde_json::json!(["city"]));
    assert_eq!(
        schema["properties"]["city"],
        serde_json::json!({"type": "string", "description": "Which city."})
    );
    assert_eq!(
        schema["properties"]["days"],
        serde_json::json!({"type": "integer", "default": 3})
    );
    assert_eq!(
        schema["properties"]["unit"]["enum"],
        serde_json::json!(["c", "f"])
    );
    assert_eq!(schema["properties"]["note"]["type"], "string");
    assert_eq!(schema["additionalProperties"], false);
    let no_required = validate("def main(x: int = 1):\n    return x\n").await;
    let schema: serde_json::Value =
        serde_json::from_str(no_required.input_schema.as_deref().unwrap()).unwrap();
    assert!(
        schema.get("required").is_none(),
        "never `required: null`: {schema}"
    );
    // The output schema comes from the return annotation: an object type as it is, any other
    // wrapped as {"result": ...} (MCP's outputSchema is always an object); none without one.
    assert_eq!(
        good.output_schema.as_deref(),
        Some(r#"{"type":"object"}"#),
        "{good:?}"
    );
    assert_eq!(no_required.output_schema, None);
    let wrapped = validate("def main() -> list[int]:\n    return [1]\n").await;
    let schema: serde_json::Value =
        serde_json::from_str(wrapped.output_schema.as_deref().unwrap()).unwrap();
    assert_eq!(
        schema,
        serde_json::json!({"type": "object", "required": ["result"],
            "properties": {"result": {"type": "array", "items": {"type": "integer"}}},
            "x-mcpbox-wrap-result": true})
    );
    let bad = validate("import os\ndef main():\n    return os.__name__\n").await;
    assert!(!bad.valid);
    assert_eq!(
        bad.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        vec![1, 3]
    );
    let syntax = validate("def main(:\n").await;
    assert!(!syntax.valid && syntax.errors[0].message.contains("syntax error"));
    // Parsed but not compilable (found by the fuzzer): refused up front, not at load time.
    for uncompilable in [
        "*w\n",
        "return 1\ndef main():\n    pass\n",
        "def main():\n    await x\n",
    ] {
        let refused = validate(uncompilable).await;
        assert!(
            !refused.valid && refused.errors[0].message.contains("syntax error"),
            "{uncompilable:?}: {refused:?}"
        );
    }
    let no_main = validate("def helper():\n    return 1\n").await;
    assert!(!no_main.valid && !no_main.has_main);
    assert!(no_main.errors[0].message.contains("main"));
    supervisor.shutdown();
}

/// "Trojan Source" (CVE-2021-42574): bidirectional controls make a browser show
/// `# Check if admin` as a comment after the string while Python reads it inside the string.
/// The check refuses such characters anywhere, strings and comments included, with the line;
/// and every character of `contract::sandbox::HIDDEN_CHARACTERS` (the table the UI marks) is
/// refused by `runtime.py`'s own copy of it.
#[tokio::test]
async fn hidden_characters_are_refused_anywhere_with_their_line() {
    let supervisor = supervisor(2).await;
    let validate = |code: String| {
        let supervisor = supervisor.clone();
        async move {
            supervisor
                .validate(ValidateRequest {
                    code,
                    allowed_modules: None,
                })
                .await
                .unwrap()
        }
    };
    let trojan = "def main(access_level: str = 'user') -> bool:\n    if access_level != \"user\u{202e} \u{2066}# Check if admin\u{2069} \u{2066}\":\n        return True\n    return False\n";
    let refused = validate(trojan.to_owned()).await;
    assert!(!refused.valid, "{refused:?}");
    assert_eq!(refused.errors.len(), 1, "{refused:?}");
    assert_eq!((refused.errors[0].line, refused.errors[0].col), (2, 29));
    assert!(
        refused.errors[0]
            .message
            .contains("U+202E RIGHT-TO-LEFT OVERRIDE"),
        "{refused:?}"
    );
    // A run refuses it too (the check runs before any code does).
    let ran = supervisor
        .execute(request(&format!("{trojan}\n"), "{}", 5_000))
        .await;
    assert_eq!(
        ran.error.as_ref().map(|e| (e.kind, e.line)),
        Some((ErrorKind::Validation, Some(2))),
        "{ran:?}"
    );
    // In a comment, in a docstring, as an invisible name (U+3164 is a valid identifier).
    for (code, line) in [
        ("def main():\n    # ok\u{200b}\n    return 1\n", 2),
        (
            "def main():\n    \"\"\"Doc\u{2067}.\"\"\"\n    return 1\n",
            2,
        ),
        (
            "def main():\n    x = 1\n    \u{3164} = 2\n    return x\n",
            3,
        ),
        ("\u{feff}def main():\n    return 1\n", 1),
    ] {
        let refused = validate(code.to_owned()).await;
        assert!(!refused.valid, "{code:?}: {refused:?}");
        assert_eq!(refused.errors[0].line, line, "{code:?}: {refused:?}");
    }
    // Escapes in strings stay allowed; ordinary non-ASCII too.
    let escaped = validate("def main() -> str:\n    return 'a\\u202eb' + 'é✓'\n".to_owned()).await;
    assert!(escaped.valid, "{escaped:?}");
    // Every character of the shared table, one per line (at most 20 lines are reported a time).
    let every: Vec<char> = contract::sandbox::HIDDEN_CHARACTERS
        .iter()
        .flat_map(|&(first, last, _)| first..=last)
        .map(|code| char::from_u32(code).unwrap())
        .collect();
    for chunk in every.chunks(20) {
        let code: String = chunk.iter().map(|c| format!("# {c}\n")).collect();
        let refused = validate(format!("{code}def main():\n    return 1\n")).await;
        let lines: Vec<u32> = refused.errors.iter().map(|e| e.line).collect();
        assert_eq!(
            lines,
            (1..=chunk.len() as u32).collect::<Vec<_>>(),
            "{chunk:?}: {refused:?}"
        );
    }
    supervisor.shutdown();
}

#[tokio::test]
async fn tools_get_json_results_stdout_and_readable_errors() {
    let supervisor = supervisor(2).await;
    let run = |code: &str, args: &str| {
        let supervisor = supervisor.clone();
        let request = request(code, args, 5_000);
        async move { supervisor.execute(request).await }
    };
    let plain = run("def main(a: int, b: int):\n    print('adding')\n    return {'sum': a + b, 'items': (1, 'two', None, 2.5, True)}\n", r#"{"a": 2, "b": 3}"#).await;
    assert_eq!(
        plain.result.as_deref(),
        Some(r#"{"sum":5,"items":[1,"two",null,2.5,true]}"#)
    );
    assert_eq!(plain.stdout, "adding\n");
    let raised = run(
        "def main():\n    x = 1\n    raise ValueError('bad input: ' + str(x))\n",
        "{}",
    )
    .await;
    let error = raised.error.unwrap();
    assert_eq!((error.kind, error.line), (ErrorKind::Runtime, Some(3)));
    assert_eq!(error.message, "ValueError: bad input: 1");
    let missing = run("def main(a):\n    return a\n", "{}").await;
    assert!(
        missing
            .error
            .unwrap()
            .message
            .contains("missing 1 required positional argument")
    );
    let not_object = run("def main():\n    return 1\n", "[1, 2]").await;
    assert_eq!(not_object.error.map(|e| e.kind), Some(ErrorKind::Arguments));
    let bad_json = run("def main():\n    return 1\n", "{oops").await;
    assert_eq!(bad_json.error.map(|e| e.kind), Some(ErrorKind::Arguments));
    let import = run("import csv\ndef main():\n    return 1\n", "{}").await;
    assert_eq!(import.error.map(|e| e.kind), Some(ErrorKind::Validation));
    let compat = run(
        "async def main():\n    return json.dumps({'t': datetime.date(2024, 1, 2).isoformat()})\n",
        "{}",
    )
    .await;
    assert_eq!(
        compat.result.as_deref(),
        Some(r#""{\"t\": \"2024-01-02\"}""#),
        "{compat:?}"
    );
    let http_without_hosts = run("async def main():\n    r = await http.get('https://example.com/')\n    return r.status_code\n", "{}").await;
    assert!(
        http_without_hosts
            .error
            .unwrap()
            .message
            .contains("not in this tool's approved hosts")
    );
    supervisor.shutdown();
}

/// The event loop is built only when `main` returns a coroutine (`runtime.PreparedLoop`, on fds
/// the worker made before seccomp): everything a tool may do with asyncio still works on it —
/// timers, tasks, gather, wait_for's timeout, queues, events — and a sync tool runs without one.
#[tokio::test]
async fn async_tools_run_on_the_lazily_built_loop() {
    let supervisor = supervisor(2).await;
    let code = r#"
import asyncio
async def main(n: int):
    async def twice(x):
        await asyncio.sleep(0.001)
        return 2 * x
    doubled = await asyncio.gather(*(twice(i) for i in range(n)))
    task = asyncio.create_task(twice(21))
    try:
        await asyncio.wait_for(asyncio.sleep(10), timeout=0.01)
        timed_out = False
    except asyncio.TimeoutError:
        timed_out = True
    queue = asyncio.Queue()
    event = asyncio.Event()
    async def producer():
        for i in range(3):
            await queue.put(i)
        event.set()
    asyncio.create_task(producer())
    await event.wait()
    items = [queue.get_nowait() for _ in range(3)]
    return {"doubled": doubled, "task": await task, "timed_out": timed_out, "items": items}
"#;
    let response = supervisor
        .execute(request(code, r#"{"n": 4}"#, 5_000))
        .await;
    assert_eq!(
        response.result.as_deref(),
        Some(r#"{"doubled":[0,2,4,6],"task":42,"timed_out":true,"items":[0,1,2]}"#),
        "{response:?}"
    );
    // A sync tool has no running loop to find, and asyncio's coroutine helpers still say so.
    let sync = supervisor
        .execute(request(
            "import asyncio\ndef main():\n    return asyncio.iscoroutinefunction(main)\n",
            "{}",
            5_000,
        ))
        .await;
    assert_eq!(sync.result.as_deref(), Some("false"), "{sync:?}");
    supervisor.shutdown();
}

#[tokio::test]
async fn the_linear_time_re_behaves_like_pythons() {
    let supervisor = supervisor(1).await;
    let code = r#"
import re
def main():
    p = re.compile(r"(?P<user>\w+)@(?P<host>[\w.]+)")
    m = p.search("write to bob@example.com today")
    return {
        "group": m.group(0), "named": m.group("host"), "groups": m.groups(), "dict": m.groupdict(),
        "span": m.span(), "start": m.start("host"),
        "findall": re.findall(r"\d+", "a1b22c333"),
        "findall_groups": re.findall(r"(\w)=(\d)", "a=1, b=2"),
        "sub": re.sub(r"(\w+)@(\w+)", r"\2 at \1", "x@y and z@w"),
        "sub_fn": re.sub(r"\d", lambda m: str(int(m.group()) * 2), "a1b2"),
        "subn": re.subn("a", "b", "aaa", count=2),
        "split": re.split(r",\s*", "a, b,c"),
        "split_groups": re.split(r"(-)", "a-b"),
        "empty": re.findall(r"\w*", "ab c"),
        "match_none": re.match(r"b", "ab") is None,
        "fullmatch": bool(re.fullmatch(r"a|ab", "ab")),
        "ignorecase": bool(re.search("HELLO", "hello", re.I)),
        "unicode_span": re.search("é+", "caféé!").span(),
        "escape": bool(re.fullmatch(re.escape("a.b*c"), "a.b*c")),
        "backtracking_bomb": re.match(r"(a+)+$", "a" * 30000 + "!") is None,
    }
"#;
    let response = supervisor.execute(request(code, "{}", 5_000)).await;
    supervisor.shutdown();
    assert!(response.ok, "{response:?}");
    let value: serde_json::Value =
        serde_json::from_str(response.result.as_deref().unwrap()).unwrap();
    let expected = serde_json::json!({
        "group": "bob@example.com", "named": "example.com", "groups": ["bob", "example.com"],
        "dict": {"user": "bob", "host": "example.com"}, "span": [9, 24], "start": 13,
        "findall": ["1", "22", "333"], "findall_groups": [["a", "1"], ["b", "2"]],
        "sub": "y at x and w at z", "sub_fn": "a2b4", "subn": ["bba", 2],
        "split": ["a", "b", "c"], "split_groups": ["a", "-", "b"], "empty": ["ab", "", "c", ""],
        "match_none": true, "fullmatch": true, "ignorecase": true, "unicode_span": [3, 5],
        "escape": true, "backtracking_bomb": true,
    });
    assert_eq!(value, expected);
    assert!(
        response.duration_ms < 2_000,
        "the bomb pattern must not backtrack: {response:?}"
    );
}

// --- `serve`: the socket the origin uses -------------------------------------------------------

struct Served {
    child: Child,
    socket: PathBuf,
    key: String,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sandbox.sock");
    let key = "k".repeat(40);
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, &key).unwrap();
    let mut child = Command::new(BINARY)
        .args(["serve", "--pool-size", "2", "--socket"])
        .arg(&socket)
        .arg("--key-file")
        .arg(&key_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    while !line.ends_with('\n') && stdout.read(&mut byte).unwrap_or(0) == 1 {
        line.push(byte[0] as char);
    }
    assert!(line.starts_with("mcpbox-sandbox listening on"), "{line}");
    Served {
        child,
        socket,
        key,
        _dir: dir,
    }
}

fn send<T: serde::Serialize>(stream: &mut UnixStream, value: &T) {
    try_send(stream, value).unwrap();
}

fn try_send<T: serde::Serialize>(stream: &mut UnixStream, value: &T) -> std::io::Result<()> {
    let body = serde_json::to_vec(value).unwrap();
    stream.write_all(&(body.len() as u32).to_be_bytes())?;
    stream.write_all(&body)
}

fn receive(stream: &mut UnixStream) -> Option<Response> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

#[test]
fn the_socket_is_private_and_needs_the_key() {
    let served = serve();
    let mode = std::fs::metadata(&served.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    let mut wrong = UnixStream::connect(&served.socket).unwrap();
    send(
        &mut wrong,
        &Hello {
            key: "k".repeat(39) + "x",
        },
    );
    let refused = receive(&mut wrong);
    assert!(
        matches!(refused, Some(Response::Error { ref message }) if message.contains("key")),
        "{refused:?}"
    );
    // The server has closed the connection: the write may fail, and nothing comes back.
    let _ = try_send(&mut wrong, &Request::Health);
    assert!(
        receive(&mut wrong).is_none(),
        "the connection must be closed after a wrong key"
    );

    let mut garbage = UnixStream::connect(&served.socket).unwrap();
    garbage.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
    assert!(matches!(
        receive(&mut garbage),
        Some(Response::Error { .. }) | None
    ));

    let mut good = UnixStream::connect(&served.socket).unwrap();
    send(
        &mut good,
        &Hello {
            key: served.key.clone(),
        },
    );
    send(&mut good, &Request::Health);
    let Some(Response::Health(health)) = receive(&mut good) else {
        panic!("no health")
    };
    assert!(
        health.layers.static_check && health.layers.seccomp,
        "{health:?}"
    );
    // A malformed request gets an error and the connection stays usable.
    let body = br#"{"type":"execute","code":42}"#;
    good.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    good.write_all(body).unwrap();
    assert!(
        matches!(receive(&mut good), Some(Response::Error { ref message }) if message.contains("malformed"))
    );
    send(
        &mut good,
        &Request::Execute(request(
            "def main():\n    return 'via socket'\n",
            "{}",
            5_000,
        )),
    );
    let Some(Response::Execute(done)) = receive(&mut good) else {
        panic!("no execute response")
    };
    assert_eq!(done.result.as_deref(), Some("\"via socket\""));
}

#[test]
fn serve_refuses_to_start_without_a_strong_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BINARY)
        .args(["serve", "--key", "short", "--socket"])
        .arg(dir.path().join("s.sock"))
        .env_remove("MCPBOX_SANDBOX_KEY_FILE")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 32 characters"));
}

// --- `exec`: the one-off command line ------------------------------------------------------------

fn exec(args: &[&str], code: &str) -> (Option<i32>, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tool.py");
    std::fs::write(&file, code).unwrap();
    let output = Command::new(BINARY)
        .arg("exec")
        .arg(&file)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let value = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (
        output.status.code(),
        value,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn exec_prints_one_json_object_with_the_documented_fields() {
    let (status, value, _) = exec(
        &[
            "--args",
            r#"{"name": "ann"}"#,
            "--secret",
            "TOKEN=s3cret",
            "--allow-module",
            "csv",
        ],
        "import csv\ndef main(name: str):\n    print('hi')\n    return {'hello': name, 'token': secrets['TOKEN']}\n",
    );
    assert_eq!(status, Some(0));
    assert_eq!(value["ok"], true, "{value}");
    assert_eq!(
        value["result"],
        serde_json::json!({"hello": "ann", "token": "s3cret"})
    );
    assert_eq!(value["error"], serde_json::Value::Null);
    assert_eq!(value["stdout"], "hi\n");
    assert!(value["duration_ms"].is_u64());
    // A failing tool still exits 0: the sandbox worked.
    let (status, value, _) = exec(&[], "def main():\n    raise KeyError('x')\n");
    assert_eq!(status, Some(0));
    assert_eq!(value["ok"], false);
    assert_eq!(value["error"]["kind"], "runtime");
    assert_eq!(value["error"]["line"], 2);
    let (status, value, _) = exec(
        &["--timeout", "0.5"],
        "def main():\n    while True:\n        pass\n",
    );
    assert_eq!(
        (status, value["error"]["kind"].as_str()),
        (Some(0), Some("timeout"))
    );
}

#[test]
fn exec_usage_errors_exit_2() {
    for (args, needle) in [
        (vec!["--args", "[1]"], "JSON object"),
        (vec!["--args", "{nope"], "not valid JSON"),
        (vec!["--timeout", "-1"], "positive"),
        (vec!["--secret", "NOEQUALS"], "K=V"),
    ] {
        let (status, _, stderr) = exec(&args, "def main():\n    return 1\n");
        assert_eq!(status, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let missing = Command::new(BINARY)
        .args(["exec", "/nonexistent/tool.py"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn doctor_reports_every_layer() {
    let output = Command::new(BINARY).arg("doctor").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    for layer in [
        "static_check",
        "restricted_runtime",
        "rlimits",
        "closed_fds",
        "clean_environment",
        "network_namespace",
        "landlock",
        "seccomp",
        "unprivileged_uid",
        "http_broker",
    ] {
        assert!(stdout.contains(layer), "{layer} missing from:\n{stdout}");
    }
    // Exit status says whether the host is degraded, and the text agrees.
    assert_eq!(
        output.status.success(),
        stdout.contains("every isolation layer is active"),
        "{stdout}"
    );
}
