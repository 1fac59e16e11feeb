//! The escape corpus: attempts to get out of the sandbox, grouped by technique. Every case is
//! judged by its impact, not only by an error: no marker file created, no host environment
//! variable or host file content in any output, no connection reaching a listener the test
//! opened, and the run ended within its limit. `detectors_see_real_impact` proves the checks can
//! fail.

use std::io::ErrorKind as IoErrorKind;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use contract::sandbox::{ErrorKind, ExecuteRequest, ExecuteResponse, Limits};
use sandbox::supervisor::{Config, Supervisor};

const CANARY_VAR: &str = "MCPBOX_ESCAPE_CANARY";
const CANARY: &str = "canary-9f27c1e4-env";
const FILE_SECRET: &str = "canary-host-file-5d81";

struct Harness {
    supervisor: Supervisor,
    _dir: tempfile::TempDir,
    marker: PathBuf,
    secret_file: PathBuf,
    listener: TcpListener,
    port: u16,
}

struct Case {
    name: &'static str,
    code: &'static str,
    hosts: &'static [&'static str],
    timeout_ms: u64,
}

const fn case(name: &'static str, code: &'static str) -> Case {
    Case {
        name,
        code,
        hosts: &[],
        timeout_ms: 3_000,
    }
}

const fn net(name: &'static str, code: &'static str, hosts: &'static [&'static str]) -> Case {
    Case {
        name,
        code,
        hosts,
        timeout_ms: 3_000,
    }
}

impl Harness {
    async fn new() -> Harness {
        // SAFETY: set before the supervisor (and so before any thread of ours reads env).
        unsafe { std::env::set_var(CANARY_VAR, CANARY) };
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("marker");
        let secret_file = dir.path().join("host-secret.txt");
        std::fs::write(&secret_file, FILE_SECRET).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let supervisor = Supervisor::start(Config {
            pool_size: 4,
            program: PathBuf::from(env!("CARGO_BIN_EXE_mcpbox-sandbox")),
            unguarded_python: false,
            packages_dir: None,
        })
        .await
        .expect("supervisor starts");
        Harness {
            supervisor,
            _dir: dir,
            marker,
            secret_file,
            listener,
            port,
        }
    }

    fn code(&self, template: &str) -> String {
        template
            .replace("{MARKER}", &self.marker.display().to_string())
            .replace("{SECRET_FILE}", &self.secret_file.display().to_string())
            .replace("{PORT}", &self.port.to_string())
            .replace("{CANARY_VAR}", CANARY_VAR)
    }

    async fn run(&self, case: &Case) -> (ExecuteResponse, Duration) {
        let request = ExecuteRequest {
            input: None,
            code: self.code(case.code),
            arguments: "{}".into(),
            allowed_modules: None,
            allowed_hosts: case.hosts.iter().map(|h| self.code(h)).collect(),
            secrets: [("API_KEY".to_owned(), "tool-secret".to_owned())].into(),
            packages: Vec::new(),
            limits: Limits {
                timeout_ms: case.timeout_ms,
                ..Limits::default()
            },
        };
        let started = Instant::now();
        let response = self.supervisor.execute(request).await;
        (response, started.elapsed())
    }

    /// Every way an attack could have had an effect, as a list of findings.
    fn impact(&self, response: &ExecuteResponse, took: Duration, timeout_ms: u64) -> Vec<String> {
        let mut found = Vec::new();
        if self.marker.exists() {
            found.push("the marker file was created".to_owned());
        }
        let seen = format!(
            "{:?} {:?} {}",
            response.result, response.error, response.stdout
        );
        if seen.contains(CANARY) {
            found.push("the host environment leaked".to_owned());
        }
        if seen.contains(FILE_SECRET) {
            found.push("the host file was read".to_owned());
        }
        match self.listener.accept() {
            Err(err) if err.kind() == IoErrorKind::WouldBlock => {}
            Ok(_) => found.push("a connection reached the test listener".to_owned()),
            Err(err) => found.push(format!("listener error: {err}")),
        }
        if took > Duration::from_millis(timeout_ms) + Duration::from_secs(2) {
            found.push(format!("the run took {took:?}, beyond its limit"));
        }
        found
    }

    async fn attack_all(&self, cases: &[Case]) {
        let runs = cases.iter().map(|case| async move {
            let (response, took) = self.run(case).await;
            let impact = self.impact(&response, took, case.timeout_ms);
            (case.name, response, impact)
        });
        let mut failures = Vec::new();
        for (name, response, impact) in futures_join(runs).await {
            if !impact.is_empty() {
                failures.push(format!("{name}: {impact:?} ({})", short(&response)));
            }
            if response.ok
                && response
                    .result
                    .as_deref()
                    .is_some_and(|r| r.contains("tool-secret") && name.contains("tamper"))
            {
                failures.push(format!(
                    "{name}: secrets were changed: {}",
                    short(&response)
                ));
            }
        }
        self.supervisor.shutdown();
        assert!(
            failures.is_empty(),
            "escapes with impact:\n{}",
            failures.join("\n")
        );
    }
}

/// A response for failure messages, with long fields cut.
fn short(response: &ExecuteResponse) -> String {
    let mut text = format!("{response:?}");
    if text.len() > 600 {
        let mut end = 600;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

async fn futures_join<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().collect();
    let mut out = Vec::with_capacity(handles.len());
    // Sequential awaits would serialise the cases; join them through a JoinSet-like fan-out.
    let mut pinned: Vec<_> = handles.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (index, future) in pinned.iter_mut().enumerate() {
            if results[index].is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => results[index] = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}

#[tokio::test]
async fn detectors_see_real_impact() {
    let harness = Harness::new().await;
    std::fs::write(&harness.marker, "x").unwrap();
    let _client = std::net::TcpStream::connect(("127.0.0.1", harness.port)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let leaked = ExecuteResponse {
        input_required: None,
        ok: true,
        result: Some(format!("\"{CANARY} {FILE_SECRET}\"")),
        error: None,
        stdout: String::new(),
        stdout_truncated: false,
        duration_ms: 0,
        usage: Default::default(),
        content: Vec::new(),
    };
    let impact = harness.impact(&leaked, Duration::from_secs(30), 1000);
    harness.supervisor.shutdown();
    assert_eq!(impact.len(), 5, "{impact:?}");
}

#[tokio::test]
async fn frame_walking() {
    Harness::new().await.attack_all(&[
        case("generator gi_frame", "def main():\n    g = (x for x in [1])\n    return str(g.gi_frame.f_back.f_globals)\n"),
        case("generator f_builtins open", "def g():\n    yield 1\ndef main():\n    x = g()\n    next(x)\n    return x.gi_frame.f_builtins['open']('{SECRET_FILE}').read()\n"),
        case("coroutine cr_frame", "async def f():\n    return 1\ndef main():\n    c = f()\n    return str(c.cr_frame.f_globals)\n"),
        case("async generator ag_frame", "async def f():\n    yield 1\ndef main():\n    return str(f().ag_frame)\n"),
        case("traceback tb_frame", "def main():\n    try:\n        1 / 0\n    except Exception as e:\n        return str(e.__traceback__.tb_frame.f_globals)\n"),
        case("task get_stack", "import asyncio\nasync def main():\n    t = asyncio.create_task(asyncio.sleep(0))\n    return str(t.get_stack())\n"),
        case("task get_coro", "import asyncio\nasync def main():\n    t = asyncio.create_task(asyncio.sleep(0))\n    return str(t.get_coro().cr_frame)\n"),
        case("task get_loop", "import asyncio\nasync def main():\n    t = asyncio.create_task(asyncio.sleep(0))\n    return str(t.get_loop())\n"),
        case("code object", "def main():\n    return str((lambda: 0).__code__.co_consts)\n"),
        case("gi_code via walrus", "def main():\n    return [(g := (i for i in [1])), g.gi_code]\n"),
    ]).await;
}

#[tokio::test]
async fn format_string_attribute_access() {
    Harness::new().await.attack_all(&[
        case("str.format globals", "def main():\n    return '{0.__globals__}'.format(main)\n"),
        case("format_map", "def main():\n    return '{x.__class__}'.format_map({'x': 1})\n"),
        case("str.format unbound", "def main():\n    return str.format('{0.__init__.__globals__}', main)\n"),
        case("format via map", "def main():\n    return list(map(str.format, ['{0.__class__}'], [1]))\n"),
        case("string.Formatter", "import string\ndef main():\n    return string.Formatter().get_field('0.__globals__', [main], {})\n"),
        case("from string import Formatter", "from string import Formatter\ndef main():\n    return Formatter().vformat('{0.__globals__}', [main], {})\n"),
        case("f-string dunder", "def main():\n    return f'{main.__globals__}'\n"),
        case("format builtin is harmless", "def main():\n    return format(main, '') + format(3.14159, '.2f')\n"),
    ]).await;
}

#[tokio::test]
async fn dunder_access_by_strings_and_helpers() {
    Harness::new().await.attack_all(&[
        case("getattr computed", "def main():\n    return str(getattr(main, '__glo' + 'bals__'))\n"),
        case("vars", "def main():\n    return str(vars(main))\n"),
        case("operator.attrgetter", "import operator\ndef main():\n    return str(operator.attrgetter('__globals__')(main))\n"),
        case("__dict__", "def main():\n    return str(main.__dict__)\n"),
        case("type()", "def main():\n    return str(type(main))\n"),
        case("__builtins__", "def main():\n    return __builtins__['open']('{SECRET_FILE}').read()\n"),
        case("__import__", "def main():\n    return __import__('os').system('touch {MARKER}')\n"),
        case("globals()", "def main():\n    return str(globals()['__builtins__'])\n"),
        case("eval", "def main():\n    return eval(\"__import__('os').system('touch {MARKER}')\")\n"),
        case("exec", "def main():\n    exec(\"import os; os.system('touch {MARKER}')\")\n"),
        case("compile", "def main():\n    return str(compile('1', 'x', 'eval'))\n"),
        case("mro subclasses", "def main():\n    return str(int.mro()[-1].__subclasses__())\n"),
        case("object subclasses", "def main():\n    return str(object.__subclasses__())\n"),
        case("class __init__ globals", "class A:\n    pass\ndef main():\n    return str(A.__init__.__globals__)\n"),
        case("dict.__getitem__ on module dict", "import json\ndef main():\n    return str(json.__dict__['__builtins__'])\n"),
        case("string annotation eval", "def f(x: \"__import__('os').system('touch {MARKER}')\"):\n    pass\ndef main():\n    return 1\n"),
        case("metaclass", "class M(type):\n    pass\nclass A(metaclass=M):\n    pass\ndef main():\n    return 1\n"),
        case("keyword dunder", "def main():\n    return dict(__class__=1)\n"),
        case("open builtin", "def main():\n    return open('{SECRET_FILE}').read()\n"),
        case("breakpoint and input", "def main():\n    breakpoint()\n    return input()\n"),
    ]).await;
}

#[tokio::test]
async fn public_attribute_chains_through_allowed_modules() {
    Harness::new()
        .await
        .attack_all(&[
            case(
                "random._os",
                "import random\ndef main():\n    return random._os.system('touch {MARKER}')\n",
            ),
            case(
                "uuid.os",
                "import uuid\ndef main():\n    return uuid.os.system('touch {MARKER}')\n",
            ),
            case(
                "json.decoder submodule",
                "import json\ndef main():\n    return str(json.decoder.scanstring)\n",
            ),
            case(
                "collections.abc",
                "import collections\ndef main():\n    return str(collections.abc)\n",
            ),
            case(
                "textwrap.re",
                "import textwrap\ndef main():\n    return str(textwrap.re)\n",
            ),
            case(
                "asyncio.subprocess",
                "import asyncio\ndef main():\n    return str(asyncio.subprocess)\n",
            ),
            case(
                "asyncio.events",
                "import asyncio\ndef main():\n    return str(asyncio.events.get_event_loop())\n",
            ),
            case(
                "functools.singledispatch",
                "import functools\ndef main():\n    return str(functools.singledispatch)\n",
            ),
            case(
                "typing.get_type_hints",
                "import typing\ndef main():\n    return str(typing.get_type_hints(main))\n",
            ),
            case(
                "time has no os",
                "import time\ndef main():\n    return str(time.os)\n",
            ),
            case(
                "hashlib internals",
                "import hashlib\ndef main():\n    return str(hashlib.sys)\n",
            ),
            case(
                "html.parser",
                "import html\ndef main():\n    return str(html.parser)\n",
            ),
            case(
                "json.JSONDecoder scanner module",
                "import json\ndef main():\n    return str(json.JSONDecoder().scan_once)\n",
            ),
            case(
                "datetime chain",
                "import datetime\ndef main():\n    return str(datetime.datetime.now().tzinfo)\n",
            ),
            case(
                "from-import submodule",
                "from json import decoder\ndef main():\n    return str(decoder)\n",
            ),
        ])
        .await;
}

#[tokio::test]
async fn imports_and_loader_tricks() {
    Harness::new().await.attack_all(&[
        case("import os", "import os\ndef main():\n    return os.system('touch {MARKER}')\n"),
        case("import subprocess", "import subprocess\ndef main():\n    return subprocess.run(['touch', '{MARKER}'])\n"),
        case("import sys", "import sys\ndef main():\n    return str(sys.modules)\n"),
        case("import importlib", "import importlib\ndef main():\n    return importlib.import_module('os').system('touch {MARKER}')\n"),
        case("import builtins", "import builtins\ndef main():\n    return builtins.open('{SECRET_FILE}').read()\n"),
        case("import ctypes", "import ctypes\ndef main():\n    return ctypes.CDLL(None).system(b'touch {MARKER}')\n"),
        case("import _ctypes", "import _ctypes\ndef main():\n    return 1\n"),
        case("import socket", "import socket\ndef main():\n    s = socket.create_connection(('127.0.0.1', {PORT}))\n    return 1\n"),
        case("import pickle", "import pickle\ndef main():\n    return pickle.loads(b'cos\\nsystem\\n(S\"touch {MARKER}\"\\ntR.')\n"),
        case("from os import system", "from os import system\ndef main():\n    return system('touch {MARKER}')\n"),
        case("relative import", "from . import x\ndef main():\n    return 1\n"),
        case("star import", "from json import *\ndef main():\n    return 1\n"),
        case("__loader__", "def main():\n    return str(__loader__)\n"),
        case("__spec__", "def main():\n    return str(__spec__)\n"),
        case("import json.decoder", "import json.decoder\ndef main():\n    return 1\n"),
        case("dynamic import in function", "def main():\n    import posix\n    return posix.system('touch {MARKER}')\n"),
    ]).await;
}

#[tokio::test]
async fn match_class_patterns() {
    Harness::new().await.attack_all(&[
        case("match __globals__", "def main():\n    match main:\n        case object(__globals__=g):\n            return str(g)\n    return 0\n"),
        case("match __class__", "def main():\n    match 1:\n        case int(__class__=c):\n            return str(c)\n    return 0\n"),
        case("match gi_frame", "def main():\n    g = (i for i in [1])\n    match g:\n        case object(gi_frame=f):\n            return str(f.f_globals)\n    return 0\n"),
        case("match format", "def main():\n    match 'x':\n        case str(format=f):\n            return f('{0.__class__}', 1)\n    return 0\n"),
    ]).await;
}

#[tokio::test]
async fn asyncio_subprocesses_sockets_and_threads() {
    Harness::new().await.attack_all(&[
        case("create_subprocess_shell", "import asyncio\nasync def main():\n    p = await asyncio.create_subprocess_shell('touch {MARKER}')\n    return 1\n"),
        case("open_connection", "import asyncio\nasync def main():\n    r, w = await asyncio.open_connection('127.0.0.1', {PORT})\n    return 1\n"),
        case("get_event_loop", "import asyncio\nasync def main():\n    loop = asyncio.get_event_loop()\n    return 1\n"),
        case("get_running_loop", "import asyncio\nasync def main():\n    loop = asyncio.get_running_loop()\n    await loop.create_connection(object, '127.0.0.1', {PORT})\n"),
        case("to_thread", "import asyncio\nasync def main():\n    return await asyncio.to_thread(print, 1)\n"),
        case("wrap_future", "import asyncio\nasync def main():\n    return str(asyncio.wrap_future)\n"),
    ]).await;
}

#[tokio::test]
async fn resource_bombs_end_within_their_limits() {
    let harness = Harness::new().await;
    let bombs = [
        Case {
            name: "busy loop",
            code: "def main():\n    while True:\n        pass\n",
            hosts: &[],
            timeout_ms: 1_500,
        },
        Case {
            name: "huge power",
            code: "def main():\n    return 10 ** 10 ** 10\n",
            hosts: &[],
            timeout_ms: 1_500,
        },
        Case {
            name: "async busy loop",
            code: "async def main():\n    while True:\n        pass\n",
            hosts: &[],
            timeout_ms: 1_500,
        },
        Case {
            name: "sleep past deadline",
            code: "import time\ndef main():\n    time.sleep(100)\n",
            hosts: &[],
            timeout_ms: 1_500,
        },
        case("big list", "def main():\n    return [0] * (10 ** 10)\n"),
        case(
            "growing memory",
            "def main():\n    keep = []\n    while True:\n        keep.append('x' * 10 ** 6)\n",
        ),
        case("huge string", "def main():\n    return 'a' * (10 ** 10)\n"),
        case(
            "recursion",
            "def f(n):\n    return f(n + 1)\ndef main():\n    return f(0)\n",
        ),
        case(
            "deeply nested source",
            "def main():\n    return ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))\n",
        ),
        case(
            "fork",
            "import os\ndef main():\n    while True:\n        os.fork()\n",
        ),
        case(
            "threads",
            "import threading\ndef main():\n    threading.Thread(target=print).start()\n",
        ),
    ];
    let mut failures = Vec::new();
    for bomb in &bombs {
        let (response, took) = harness.run(bomb).await;
        let impact = harness.impact(&response, took, bomb.timeout_ms);
        if !impact.is_empty() || response.ok {
            failures.push(format!("{}: {impact:?} {}", bomb.name, short(&response)));
        }
    }
    // The supervisor keeps serving after every bomb.
    let (after, _) = harness
        .run(&case("after the bombs", "def main():\n    return 42\n"))
        .await;
    harness.supervisor.shutdown();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(after.result.as_deref(), Some("42"));
}

#[tokio::test]
async fn result_traps_and_serialiser_patching() {
    let harness = Harness::new().await;
    let run = |name, code| {
        let harness = &harness;
        async move { harness.run(&case(name, code)).await.0 }
    };
    // An overridden `items` never runs: the result is read at the C level.
    let dict = run("dict subclass trap", "class D(dict):\n    def items(self):\n        while True:\n            pass\n    def keys(self):\n        while True:\n            pass\ndef main():\n    return D(a=1)\n").await;
    assert_eq!(
        dict.result.as_deref(),
        Some(r#"{"a":1}"#),
        "{}",
        short(&dict)
    );
    let list = run("list subclass trap", "class L(list):\n    def pop(self):\n        while True:\n            pass\ndef main():\n    return L([1, 2])\n").await;
    assert_eq!(list.result.as_deref(), Some("[1,2]"), "{}", short(&list));
    let cycle = run(
        "self-referential",
        "def main():\n    x = []\n    x.append(x)\n    return x\n",
    )
    .await;
    assert_eq!(
        cycle.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::Result),
        "{}",
        short(&cycle)
    );
    let object = run(
        "object result",
        "class A:\n    pass\ndef main():\n    return A()\n",
    )
    .await;
    assert!(
        object
            .error
            .as_ref()
            .is_some_and(|e| e.kind == ErrorKind::Result && e.message.contains("type A")),
        "{}",
        short(&object)
    );
    let generator = run(
        "generator result",
        "def main():\n    return (i for i in [1])\n",
    )
    .await;
    assert_eq!(
        generator.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::Result)
    );
    let huge = run(
        "oversize result",
        "def main():\n    return 'x' * (4 * 1024 * 1024)\n",
    )
    .await;
    assert!(
        huge.error
            .as_ref()
            .is_some_and(|e| e.message.contains("larger than")),
        "{}",
        short(&huge)
    );
    let nan = run("nan", "def main():\n    return {'x': float('nan')}\n").await;
    assert_eq!(nan.error.as_ref().map(|e| e.kind), Some(ErrorKind::Result));
    // Patching the json module changes nothing for the host: Rust serialises.
    let patched = run("JSONEncoder patch", "import json\ndef main():\n    json.JSONEncoder.default = lambda self, o: 'pwned'\n    json.dumps = None\n    return {'ok': [1, 2.5, None, True]}\n").await;
    assert_eq!(
        patched.result.as_deref(),
        Some(r#"{"ok":[1,2.5,null,true]}"#),
        "{}",
        short(&patched)
    );
    // ...and the patch does not survive into the next call (single-use workers).
    let next = run(
        "after patch",
        "import json\ndef main():\n    return json.dumps({'a': 1})\n",
    )
    .await;
    assert_eq!(
        next.result.as_deref(),
        Some(r#""{\"a\": 1}""#),
        "{}",
        short(&next)
    );
    harness.supervisor.shutdown();
}

#[tokio::test]
async fn secrets_cannot_be_tampered_with_and_state_does_not_leak() {
    let harness = Harness::new().await;
    harness
        .attack_all(&[
            case(
                "secrets tamper assign",
                "def main():\n    secrets['API_KEY'] = 'x'\n    return secrets['API_KEY']\n",
            ),
            case(
                "secrets tamper clear",
                "def main():\n    secrets.clear()\n    return 1\n",
            ),
            case(
                "secrets tamper del",
                "def main():\n    del secrets['API_KEY']\n    return 1\n",
            ),
        ])
        .await;
    let harness = Harness::new().await;
    let first = harness
        .run(&case(
            "plant",
            "import json\ndef main():\n    json.planted = 'left behind'\n    return 1\n",
        ))
        .await
        .0;
    assert!(first.ok, "{}", short(&first));
    let second = harness
        .run(&case(
            "look",
            "import json\ndef main():\n    return str(json.planted)\n",
        ))
        .await
        .0;
    assert!(!second.ok, "state leaked between calls: {second:?}");
    let read = harness
        .run(&case(
            "read",
            "def main():\n    return secrets['API_KEY']\n",
        ))
        .await
        .0;
    assert_eq!(read.result.as_deref(), Some("\"tool-secret\""));
    harness.supervisor.shutdown();
}

#[tokio::test]
async fn output_floods_are_capped() {
    let harness = Harness::new().await;
    let flood = harness
        .run(&case(
            "print flood",
            "def main():\n    print('x' * (10 ** 7))\n    return 1\n",
        ))
        .await
        .0;
    assert!(flood.ok, "{}", short(&flood));
    assert!(flood.stdout_truncated);
    assert_eq!(flood.stdout.len() as u64, Limits::default().stdout_bytes);
    let endless = Case {
        name: "endless print",
        code: "def main():\n    while True:\n        print('y' * 1000)\n",
        hosts: &[],
        timeout_ms: 1_000,
    };
    let (response, took) = harness.run(&endless).await;
    assert!(harness.impact(&response, took, 1_000).is_empty());
    assert_eq!(response.error.map(|e| e.kind), Some(ErrorKind::Timeout));
    harness.supervisor.shutdown();
}

#[tokio::test]
async fn ssrf_in_every_notation() {
    const GET: &str = "async def main():\n    r = await http.get(URL)\n    return r.text\n";
    let notations = [
        ("loopback", "http://127.0.0.1:{PORT}/", "127.0.0.1"),
        ("localhost", "http://localhost:{PORT}/", "localhost"),
        ("decimal", "http://2130706433:{PORT}/", "2130706433"),
        ("hex", "http://0x7f000001:{PORT}/", "0x7f000001"),
        ("octal", "http://0177.0.0.1:{PORT}/", "0177.0.0.1"),
        ("short form", "http://127.1:{PORT}/", "127.1"),
        (
            "ipv4-mapped ipv6",
            "http://[::ffff:127.0.0.1]:{PORT}/",
            "::ffff:127.0.0.1",
        ),
        ("ipv6 loopback", "http://[::1]:{PORT}/", "::1"),
        ("unspecified", "http://0.0.0.0:{PORT}/", "0.0.0.0"),
        (
            "userinfo trick",
            "http://example.com@127.0.0.1:{PORT}/",
            "example.com",
        ),
        (
            "metadata",
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
        ),
        ("cgnat", "http://100.64.0.1:{PORT}/", "100.64.0.1"),
        ("private", "http://10.0.0.1:{PORT}/", "10.0.0.1"),
        ("file scheme", "file://{SECRET_FILE}", "localhost"),
        (
            "not on allowlist",
            "http://127.0.0.1:{PORT}/",
            "example.com",
        ),
    ];
    let cases: Vec<(String, String, String)> = notations
        .iter()
        .map(|(name, url, host)| {
            (
                name.to_string(),
                GET.replace("URL", &format!("{url:?}")),
                host.to_string(),
            )
        })
        .collect();
    let harness = Harness::new().await;
    let mut failures = Vec::new();
    for (name, code, host) in &cases {
        let leaked_code: &'static str = Box::leak(code.clone().into_boxed_str());
        let leaked_host: &'static str = Box::leak(host.clone().into_boxed_str());
        let hosts: &'static [&'static str] = Box::leak(vec![leaked_host].into_boxed_slice());
        let attack = net("ssrf", leaked_code, hosts);
        let (response, took) = harness.run(&attack).await;
        let impact = harness.impact(&response, took, attack.timeout_ms);
        if !impact.is_empty() || response.ok {
            failures.push(format!("{name}: {impact:?} {}", short(&response)));
        }
    }
    // A raw socket from the tool does not work either (seccomp), even if the import did.
    let raw = harness
        .run(&net(
            "socket via http internals",
            "async def main():\n    return str(http.request.__func__)\n",
            &[],
        ))
        .await
        .0;
    assert!(!raw.ok);
    harness.supervisor.shutdown();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// --- LAN entries and raw TCP (issue #14) ------------------------------------------------------

/// Raw TCP and LAN entries cannot reach this machine: the listener on 127.0.0.1:{PORT} stands
/// for the origin. Every entry below is one a reviewer should never approve (the origin refuses
/// them); the broker refuses them even so, by address, by DNS (`localhost`, a rebinding-style
/// name), and in every loopback notation. Python-level ways at a real socket fail as before.
#[tokio::test]
async fn raw_tcp_and_lan_entries_cannot_reach_the_host() {
    const CONNECT: &str = "async def main():\n    s = await tcp.connect(HOST, {PORT}, timeout=2)\n    await s.send(b'hi')\n    return s.peer\n";
    let cases: Vec<(&str, String, &'static [&'static str])> = vec![
        ("tcp loopback, lan entry", CONNECT.replace("HOST", "'127.0.0.1'"), &["lan:127.0.0.1:{PORT}"]),
        ("tcp loopback, public host:port entry", CONNECT.replace("HOST", "'127.0.0.1'"), &["127.0.0.1:{PORT}"]),
        ("tcp loopback, any public host", CONNECT.replace("HOST", "'127.0.0.1'"), &["*"]),
        ("tcp localhost by DNS, lan entry", CONNECT.replace("HOST", "'localhost'"), &["lan:localhost:{PORT}"]),
        ("tcp localhost, public entry", CONNECT.replace("HOST", "'localhost'"), &["localhost:{PORT}"]),
        ("tcp ipv6 loopback", CONNECT.replace("HOST", "'::1'"), &["lan:[::1]:{PORT}"]),
        ("tcp mapped loopback", CONNECT.replace("HOST", "'::ffff:127.0.0.1'"), &["lan:[::ffff:127.0.0.1]:{PORT}"]),
        ("tcp unspecified", CONNECT.replace("HOST", "'0.0.0.0'"), &["lan:0.0.0.0:{PORT}"]),
        ("tcp 127.1 short form", CONNECT.replace("HOST", "'127.1'"), &["lan:127.1:{PORT}"]),
        ("tcp decimal loopback", CONNECT.replace("HOST", "'2130706433'"), &["lan:2130706433:{PORT}"]),
        ("tcp trailing-dot localhost", CONNECT.replace("HOST", "'localhost.'"), &["lan:localhost:{PORT}"]),
        (
            "http lan entry, localhost by DNS",
            "async def main():\n    return (await http.get('http://localhost:{PORT}/')).text\n".into(),
            &["lan:localhost:{PORT}"],
        ),
        (
            "http lan entry, mapped loopback",
            "async def main():\n    return (await http.get('http://[::ffff:7f00:1]:{PORT}/')).text\n".into(),
            &["lan:[::ffff:127.0.0.1]:{PORT}"],
        ),
        (
            "http lan entry, 0.0.0.0",
            "async def main():\n    return (await http.get('http://0.0.0.0:{PORT}/')).text\n".into(),
            &["lan:0.0.0.0:{PORT}"],
        ),
        (
            "tcp internals",
            "async def main():\n    return str(tcp.connect.__closure__)\n".into(),
            &["*"],
        ),
        (
            "tcp stream internals",
            "async def main():\n    s = tcp\n    return getattr(s, '_' + 'call')\n".into(),
            &["*"],
        ),
        (
            "asyncio socket with a lan entry",
            "import asyncio\nasync def main():\n    r, w = await asyncio.open_connection('127.0.0.1', {PORT})\n    return 1\n".into(),
            &["lan:127.0.0.1:{PORT}"],
        ),
    ];
    let harness = Harness::new().await;
    let mut failures = Vec::new();
    for (name, code, hosts) in cases {
        let attack = Case {
            name,
            code: Box::leak(code.into_boxed_str()),
            hosts,
            timeout_ms: 3_000,
        };
        let (response, took) = harness.run(&attack).await;
        let impact = harness.impact(&response, took, attack.timeout_ms);
        if !impact.is_empty() || response.ok {
            failures.push(format!("{name}: {impact:?} {}", short(&response)));
        }
    }
    harness.supervisor.shutdown();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
