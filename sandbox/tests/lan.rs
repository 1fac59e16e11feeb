//! Approved LAN hosts, end to end through the real sandbox (`mcpbox-sandbox serve` over its
//! socket). The "LAN" is two network namespaces this test creates, joined to the host by veth
//! pairs (10.77.0.0/24 and 192.168.77.0/24), each running an HTTP server and a TCP
//! echo/MQTT-like server; never the machine's real network. Names come from a private
//! /etc/hosts bind-mounted in the sandbox's own mount namespace. Everything is removed on drop,
//! failures included. Needs root; under CI=true a missing prerequisite fails the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use contract::sandbox::{
    ErrorKind, ExecuteRequest, ExecuteResponse, Hello, Limits, Request, Response,
};

const BINARY: &str = env!("CARGO_BIN_EXE_mcpbox-sandbox");

/// The servers inside a namespace: HTTP on the given ports (`/to/URL` redirects to URL,
/// `/big` is 200 000 bytes), and on 1883 a TCP server that answers an MQTT CONNECT with a
/// CONNACK, `FLOOD\n` with 3 MB, `SILENT\n` with nothing, and echoes anything else.
const SERVERS: &str = r#"
import socket, sys, threading, http.server
host = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith('/to/'):
            self.send_response(302)
            self.send_header('Location', self.path[4:])
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        body = b'x' * 200000 if self.path == '/big' else (
            'hello from %s:%d %s' % (host, self.server.server_address[1], self.path)).encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
for port in sys.argv[2:]:
    server = http.server.ThreadingHTTPServer((host, int(port)), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
tcp = socket.socket()
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind((host, 1883))
tcp.listen(64)
def serve(conn):
    try:
        answer(conn)
    except OSError:
        pass
def answer(conn):
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            if data[:1] == b'\x10':
                conn.sendall(b'\x20\x02\x00\x00')
            elif data.startswith(b'FLOOD'):
                conn.sendall(b'y' * 3000000)
            elif data.startswith(b'SILENT'):
                pass
            else:
                conn.sendall(data)
print('ready', flush=True)
while True:
    conn, _ = tcp.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

/// Two namespaces with their servers; removed on drop.
struct Lan {
    namespaces: Vec<String>,
    links: Vec<String>,
    servers: Vec<Child>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|err| format!("ip {args:?}: {err}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Lan {
    fn create() -> Result<Lan, String> {
        let tag = std::process::id() % 100_000;
        let mut lan = Lan {
            namespaces: Vec::new(),
            links: Vec::new(),
            servers: Vec::new(),
        };
        for (n, (subnet, ports)) in [
            ("10.77.0", &["8080", "8081"][..]),
            ("192.168.77", &["8080"][..]),
        ]
        .into_iter()
        .enumerate()
        {
            let ns = format!("mcpbox-lan{tag}-{n}");
            let outside = format!("ml{tag}o{n}");
            let inside = format!("ml{tag}i{n}");
            let _ = ip(&["netns", "del", &ns]);
            let _ = ip(&["link", "del", &outside]);
            ip(&["netns", "add", &ns])?;
            lan.namespaces.push(ns.clone());
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ])?;
            lan.links.push(outside.clone());
            ip(&["link", "set", &inside, "netns", &ns])?;
            ip(&["addr", "add", &format!("{subnet}.1/24"), "dev", &outside])?;
            ip(&["link", "set", &outside, "up"])?;
            let in_ns = |args: &[&str]| {
                let mut all = vec!["netns", "exec", ns.as_str(), "ip"];
                all.extend_from_slice(args);
                ip(&all)
            };
            in_ns(&["addr", "add", &format!("{subnet}.2/24"), "dev", &inside])?;
            in_ns(&["link", "set", &inside, "up"])?;
            in_ns(&["link", "set", "lo", "up"])?;
            let host = format!("{subnet}.2");
            let mut child = Command::new("ip")
                .args(["netns", "exec", &ns, "python3", "-c", SERVERS, &host])
                .args(ports)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|err| format!("servers in {ns}: {err}"))?;
            let mut ready = String::new();
            let stdout = child.stdout.take().ok_or("no stdout")?;
            lan.servers.push(child);
            BufReader::new(stdout)
                .read_line(&mut ready)
                .map_err(|err| err.to_string())?;
            if ready.trim() != "ready" {
                return Err(format!("the servers in {ns} did not start"));
            }
        }
        Ok(lan)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for child in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        for link in &self.links {
            let _ = ip(&["link", "del", link]);
        }
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// `mcpbox-sandbox serve` in its own mount namespace, with names of our choosing in its
/// /etc/hosts (the machine's file is not touched).
struct Sandbox {
    child: Child,
    socket: PathBuf,
    key: String,
    _dir: tempfile::TempDir,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const HOSTS: &str = "127.0.0.1 localhost\n\
    10.77.0.2 nas.lan\n\
    10.77.0.2 ha.example.com\n\
    192.168.77.2 other.lan\n\
    127.0.0.1 rebind.example.com\n\
    169.254.169.254 meta.example.com\n\
    10.77.0.1 self.lan\n";

impl Sandbox {
    fn start() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sandbox.sock");
        let key = "k".repeat(40);
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, &key).unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, HOSTS).unwrap();
        let script = format!(
            "mount --bind {} /etc/hosts && exec {BINARY} serve --pool-size 2 --socket {} --key-file {}",
            hosts.display(),
            socket.display(),
            key_file.display()
        );
        let mut child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("unshare starts");
        let mut line = String::new();
        let mut stdout = child.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        while !line.ends_with('\n') && stdout.read(&mut byte).unwrap_or(0) == 1 {
            line.push(byte[0] as char);
        }
        assert!(line.starts_with("mcpbox-sandbox listening on"), "{line}");
        Sandbox {
            child,
            socket,
            key,
            _dir: dir,
        }
    }

    fn execute(&self, code: &str, hosts: &[&str], limits: Limits) -> ExecuteResponse {
        let mut stream = UnixStream::connect(&self.socket).unwrap();
        send(
            &mut stream,
            &Hello {
                key: self.key.clone(),
            },
        );
        send(
            &mut stream,
            &Request::Execute(ExecuteRequest {
                input: None,
                code: code.to_owned(),
                arguments: "{}".into(),
                allowed_modules: None,
                allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
                secrets: Default::default(),
                limits,
                packages: Vec::new(),
            }),
        );
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).unwrap();
        match serde_json::from_slice(&body).unwrap() {
            Response::Execute(done) => done,
            other => panic!("{other:?}"),
        }
    }
}

fn send<T: serde::Serialize>(stream: &mut UnixStream, value: &T) {
    let body = serde_json::to_vec(value).unwrap();
    stream
        .write_all(&(body.len() as u32).to_be_bytes())
        .unwrap();
    stream.write_all(&body).unwrap();
}

fn limits() -> Limits {
    Limits {
        timeout_ms: 10_000,
        ..Limits::default()
    }
}

fn lan_or_skip() -> Option<Lan> {
    match Lan::create() {
        Ok(lan) => Some(lan),
        Err(why) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: cannot build the test LAN ({why})");
            None
        }
        Err(why) => panic!("cannot build the test LAN under CI: {why}"),
    }
}

const GET: &str = "async def main():\n    r = await http.get(URL)\n    return r.text\n";

fn get(url: &str) -> String {
    GET.replace("URL", &format!("{url:?}"))
}

/// Every approved host and port this test's tools have: the two LAN targets on 10.77.0.2
/// (HTTP 8080 and TCP 1883, by address and by name), and the traps.
const APPROVED: &[&str] = &[
    "lan:10.77.0.2:8080",
    "lan:nas.lan:8080",
    "lan:nas.lan:1883",
    // A public entry whose name resolves to a private address: still public-only.
    "ha.example.com",
    // LAN entries a reviewer should never have approved: the broker refuses them anyway.
    "lan:rebind.example.com:8080",
    "lan:meta.example.com:80",
    "lan:169.254.169.254:80",
    "lan:self.lan:8080",
    "lan:[::ffff:127.0.0.1]:8080",
    "lan:0.0.0.0:8080",
];

#[test]
fn approved_lan_hosts_are_reachable_and_nothing_else_is() {
    let Some(_lan) = lan_or_skip() else { return };
    let sandbox = Sandbox::start();
    let mut failures = Vec::new();
    let mut expect = |name: &str, response: ExecuteResponse, ok: bool, needle: &str| {
        let seen = format!(
            "{} {}",
            response.result.as_deref().unwrap_or(""),
            response
                .error
                .as_ref()
                .map(|e| e.message.as_str())
                .unwrap_or("")
        );
        if response.ok != ok || !seen.contains(needle) {
            failures.push(format!(
                "{name}: wanted ok={ok} with {needle:?}, got {seen}"
            ));
        }
    };
    let run = |code: &str| sandbox.execute(code, APPROVED, limits());

    // Reachable: the approved host:port, by address and by name, and a redirect between them.
    expect(
        "lan by address",
        run(&get("http://10.77.0.2:8080/a")),
        true,
        "hello from 10.77.0.2:8080 /a",
    );
    expect(
        "lan by name",
        run(&get("http://nas.lan:8080/b")),
        true,
        "hello from 10.77.0.2:8080 /b",
    );
    expect(
        "redirect to another approved target",
        run(&get("http://10.77.0.2:8080/to/http://nas.lan:8080/c")),
        true,
        "hello from 10.77.0.2:8080 /c",
    );
    // Refused: the same host on another port, another private address, a public name that
    // resolves to a private address, redirects out of the approved set.
    expect(
        "same host, other port",
        run(&get("http://10.77.0.2:8081/")),
        false,
        "not in this tool's approved hosts",
    );
    expect(
        "same name, other port",
        run(&get("http://nas.lan:8081/")),
        false,
        "not in this tool's approved hosts",
    );
    expect(
        "other private address",
        run(&get("http://192.168.77.2:8080/")),
        false,
        "not in this tool's approved hosts",
    );
    expect(
        "other private name",
        run(&get("http://other.lan:8080/")),
        false,
        "not in this tool's approved hosts",
    );
    expect(
        "public name resolving private",
        run(&get("http://ha.example.com:8080/")),
        false,
        "not a public address",
    );
    expect(
        "redirect to another private address",
        run(&get("http://10.77.0.2:8080/to/http://192.168.77.2:8080/")),
        false,
        "not in this tool's approved hosts",
    );
    expect(
        "redirect to metadata",
        run(&get(
            "http://10.77.0.2:8080/to/http://169.254.169.254/latest/",
        )),
        false,
        "never reachable",
    );
    expect(
        "redirect to a public name resolving private",
        run(&get("http://10.77.0.2:8080/to/http://ha.example.com:8080/")),
        false,
        "not a public address",
    );
    // Approved as LAN hosts, but never reachable: loopback by DNS (rebinding), metadata by
    // DNS and by address, this machine's own address, loopback in IPv4-mapped form, 0.0.0.0.
    expect(
        "lan name resolving to loopback",
        run(&get("http://rebind.example.com:8080/")),
        false,
        "never reachable",
    );
    expect(
        "lan name resolving to metadata",
        run(&get("http://meta.example.com/")),
        false,
        "never reachable",
    );
    expect(
        "metadata address",
        run(&get("http://169.254.169.254/")),
        false,
        "never reachable",
    );
    expect(
        "the host's own address",
        run(&get("http://self.lan:8080/")),
        false,
        "MCPbox host itself",
    );
    expect(
        "mapped loopback",
        run(&get("http://[::ffff:127.0.0.1]:8080/")),
        false,
        "never reachable",
    );
    expect(
        "unspecified",
        run(&get("http://0.0.0.0:8080/")),
        false,
        "never reachable",
    );
    // Without the LAN entry, the same URL is refused as before.
    expect(
        "no entry",
        sandbox.execute(&get("http://10.77.0.2:8080/"), &["10.77.0.2"], limits()),
        false,
        "not a public address",
    );

    // Raw TCP: the approved port speaks, by name; HTTP over a raw stream to the approved
    // HTTP port works too (the approval is the host and port, not the protocol).
    let tcp_echo = "async def main():\n    async with await tcp.connect('nas.lan', 1883, timeout=5) as s:\n        await s.send(b'\\x10\\x0c\\x00\\x04MQTT\\x04\\x02\\x00\\x3c\\x00\\x00')\n        connack = await s.recv_exactly(4)\n        await s.send('ping\\npong\\n')\n        first = await s.recv_until(b'\\n')\n        second = await s.recv_until(b'\\n')\n        return [connack.hex(), first.decode(), second.decode(), s.peer]\n";
    expect(
        "tcp mqtt-like",
        run(tcp_echo),
        true,
        r#"["20020000","ping\n","pong\n","10.77.0.2:1883"]"#,
    );
    let raw_http = "async def main():\n    s = await tcp.connect('10.77.0.2', 8080)\n    await s.send(b'GET /raw HTTP/1.0\\r\\n\\r\\n')\n    data = b''\n    while True:\n        chunk = await s.recv(4096, timeout=5)\n        if not chunk:\n            break\n        data += chunk\n    await s.close()\n    return data.decode().split('\\r\\n\\r\\n')[1]\n";
    expect(
        "tcp to the approved http port",
        run(raw_http),
        true,
        "hello from 10.77.0.2:8080 /raw",
    );
    let connect = |host: &str, port: u16| {
        format!(
            "async def main():\n    s = await tcp.connect({host:?}, {port}, timeout=3)\n    return s.peer\n"
        )
    };
    expect(
        "tcp other port",
        run(&connect("10.77.0.2", 8081)),
        false,
        "not an approved TCP target",
    );
    expect(
        "tcp other private host",
        run(&connect("192.168.77.2", 1883)),
        false,
        "not an approved TCP target",
    );
    expect(
        "tcp public entry without port",
        run(&connect("ha.example.com", 1883)),
        false,
        "not an approved TCP target",
    );
    expect(
        "tcp lan name resolving to loopback",
        run(&connect("rebind.example.com", 8080)),
        false,
        "never reachable",
    );
    expect(
        "tcp metadata",
        run(&connect("169.254.169.254", 80)),
        false,
        "never reachable",
    );
    expect(
        "tcp host's own address",
        run(&connect("self.lan", 8080)),
        false,
        "MCPbox host itself",
    );
    expect(
        "tcp public host:port entry resolving private",
        sandbox.execute(
            &connect("ha.example.com", 1883),
            &["ha.example.com:1883"],
            limits(),
        ),
        false,
        "not a public address",
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn raw_tcp_is_capped_in_streams_bytes_and_time() {
    let Some(_lan) = lan_or_skip() else { return };
    let sandbox = Sandbox::start();
    let hosts = &["lan:10.77.0.2:1883"];

    // Connection attempts per call.
    let many = "async def main():\n    opened = 0\n    try:\n        for _ in range(20):\n            await tcp.connect('10.77.0.2', 1883)\n            opened += 1\n    except TCPError as e:\n        return [opened, str(e)]\n";
    let done = sandbox.execute(many, hosts, limits());
    assert!(done.ok, "{done:?}");
    let result = done.result.unwrap();
    assert!(
        result.starts_with("[8,") && result.contains("too many TCP connections"),
        "{result}"
    );

    // Bytes received per call: the call's cap is the HTTP response cap.
    let flood = "async def main():\n    s = await tcp.connect('10.77.0.2', 1883)\n    await s.send(b'FLOOD\\n')\n    got = 0\n    try:\n        while True:\n            chunk = await s.recv(65536, timeout=5)\n            if not chunk:\n                return ['eof', got]\n            got += len(chunk)\n    except TCPError as e:\n        return [got, str(e)]\n";
    let capped = Limits {
        http_response_bytes: 100_000,
        ..limits()
    };
    let done = sandbox.execute(flood, hosts, capped.clone());
    let result = done.result.clone().unwrap_or_default();
    assert!(
        result.starts_with("[100000,") && result.contains("used up"),
        "{done:?}"
    );
    // Bytes sent per call.
    let send = "async def main():\n    s = await tcp.connect('10.77.0.2', 1883)\n    await s.send(b'SILENT' + b'z' * 99990)\n    await s.send(b'z' * 10)\n    return 'sent'\n";
    let done = sandbox.execute(send, hosts, capped);
    assert!(
        done.error
            .as_ref()
            .is_some_and(|e| e.message.contains("limit of 100000 bytes sent")),
        "{done:?}"
    );

    // A recv's own timeout, then the call's deadline: a silent server cannot hold the call.
    let silent = "async def main():\n    s = await tcp.connect('10.77.0.2', 1883)\n    await s.send(b'SILENT\\n')\n    try:\n        await s.recv(10, timeout=0.3)\n    except TCPError as e:\n        first = str(e)\n    await s.recv(10)\n    return first\n";
    let started = Instant::now();
    let done = sandbox.execute(
        silent,
        hosts,
        Limits {
            timeout_ms: 1_500,
            ..limits()
        },
    );
    let took = started.elapsed();
    // Either the broker's wait (which ends at the deadline) or the supervisor's kill ends it.
    let error = done.error.as_ref().expect("the call fails");
    assert!(
        error.kind == ErrorKind::Timeout || error.message.contains("receiving timed out"),
        "{done:?}"
    );
    assert!(took < Duration::from_secs(4), "{took:?}");
    let short_wait = "async def main():\n    s = await tcp.connect('10.77.0.2', 1883)\n    await s.send(b'SILENT\\n')\n    try:\n        await s.recv(10, timeout=0.3)\n    except TCPError as e:\n        return str(e)\n";
    let started = Instant::now();
    let done = sandbox.execute(short_wait, hosts, limits());
    assert_eq!(
        done.result.as_deref(),
        Some("\"receiving timed out\""),
        "{done:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // Streams end with the call: the next call starts from nothing (stream 0 is not there).
    let forged =
        "async def main():\n    s = await tcp.connect('10.77.0.2', 1883)\n    return s.peer\n";
    assert!(sandbox.execute(forged, hosts, limits()).ok);
    assert!(sandbox.execute(forged, hosts, limits()).ok);
}
