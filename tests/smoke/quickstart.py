"""The quick start, exactly as the README writes it, as a newcomer types it (issue 11).

Usage: quickstart.py            (run by scripts/test as its last step; needs the MCP Python SDK on
                                 PYTHONPATH, which scripts/test installs)

1. Deletes the product's release binaries from the build cache, so only the run command can bring
   them back (dependencies stay cached: this costs a relink, not a cold build).
2. Runs `./scripts/run` with no extra build step before it, on a fresh data directory and a free
   port (given through the MCPBOX_DATA_DIR / MCPBOX_LISTEN variables the README documents), with
   none of the test command's build variables (CARGO_TARGET_DIR, PYO3_PYTHON) in its environment.
3. Waits for "MCPbox listening on URL", then for `/health/ready` = 200 with every isolation layer
   that `mcpbox-sandbox doctor` reports as on for this host.
4. Creates the first admin; over MCP (the SDK, as an LLM) creates a server and a tool and asks for
   review; the admin approves that version over REST; over MCP the LLM starts the server and calls
   the tool, whose answer must come from the sandbox.
5. Stops the server with SIGTERM and expects a clean exit.
Any failure exits 1 with what went wrong and the server's last output.
"""

import asyncio
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from mcp import Client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("MCPBOX_CACHE") or os.path.expanduser("~/.cache/mcpbox")
RELEASE = os.path.join(CACHE, "target", "release")
BINARIES = ("mcpbox", "mcpbox-sandbox")
# A cold release build takes 10-15 minutes on 2 cores; with cached dependencies about 3.
BUILD_TIMEOUT_S = 45 * 60
PASSWORD = "a long quick-start passphrase"
CODE = (
    "async def main(name: str) -> dict:\n"
    '    """Greets a newcomer."""\n'
    "    return {'hello': name, 'answer': sum(range(10))}\n"
)

output = collections.deque(maxlen=80)


def fail(message):
    print("\nquick start FAILED: " + message, file=sys.stderr)
    print("last output of ./scripts/run:\n" + "\n".join(output), file=sys.stderr)
    sys.exit(1)


def http(method, url, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def start():
    for name in BINARIES:
        path = os.path.join(RELEASE, name)
        if os.path.exists(path):
            os.remove(path)
    env = {k: v for k, v in os.environ.items() if k not in ("CARGO_TARGET_DIR", "PYO3_PYTHON", "PYTHONPATH")}
    for name in ("MCPBOX_ENCRYPTION_KEY", "DATABASE_URL", "MCPBOX_SANDBOX_BINARY", "MCPBOX_SANDBOX_SOCKET"):
        env.pop(name, None)
    env["MCPBOX_CACHE"] = CACHE
    env["MCPBOX_DATA_DIR"] = tempfile.mkdtemp(prefix="mcpbox-quickstart-")
    env["MCPBOX_LISTEN"] = "127.0.0.1:0"
    print(f"$ ./scripts/run   (MCPBOX_DATA_DIR={env['MCPBOX_DATA_DIR']} MCPBOX_LISTEN=127.0.0.1:0)", flush=True)
    child = subprocess.Popen(
        ["./scripts/run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    found = {}
    listening = threading.Event()

    def read():
        for line in child.stdout:
            line = line.rstrip("\n")
            output.append(line)
            # The build's progress and the server's log, for whoever reads the CI log.
            print("  | " + line, flush=True)
            match = re.match(r"MCPbox listening on (http://\S+)", line)
            if match:
                found["url"] = match.group(1)
                listening.set()

    threading.Thread(target=read, daemon=True).start()
    started = time.monotonic()
    while not listening.wait(5):
        if child.poll() is not None:
            fail(f"./scripts/run exited with {child.returncode} before it listened")
        if time.monotonic() - started > BUILD_TIMEOUT_S:
            child.kill()
            fail("./scripts/run did not listen within the build timeout")
    print(f"listening after {time.monotonic() - started:.0f} s at {found['url']}", flush=True)
    return child, found["url"]


def doctor_layers():
    doctor = os.path.join(RELEASE, "mcpbox-sandbox")
    if not os.path.exists(doctor):
        fail(f"{doctor} is missing: the run command did not build the sandbox")
    run = subprocess.run([doctor, "doctor"], capture_output=True, text=True, timeout=120)
    on = re.findall(r"^\[on\]\s+(\w+)", run.stdout, re.M)
    if not on:
        fail("mcpbox-sandbox doctor reported no layer:\n" + run.stdout + run.stderr)
    return on


def wait_ready(url, layers):
    deadline = time.monotonic() + 60
    while True:
        try:
            status, body = http("GET", url + "/health/ready")
        except OSError as err:
            status, body = 0, {"error": str(err)}
        if status == 200:
            break
        if time.monotonic() > deadline:
            fail(f"/health/ready stayed {status}: {body}")
        time.sleep(0.5)
    served = body["sandbox"]["layers"] or {}
    off = [layer for layer in layers if not served.get(layer)]
    if off:
        fail(f"doctor reports {off} on for this host, but the running product has them off: {served}")
    print(f"ready; isolation layers as doctor reports them: {', '.join(layers)}", flush=True)


async def tool_round_trip(url, token):
    async with Client(url + "/mcp") as llm:
        server = (await llm.call_tool("mcpbox_create_server", {"name": "quickstart"})).structured_content
        created = await llm.call_tool(
            "mcpbox_create_tool", {"server_id": server["id"], "name": "hello", "python_code": CODE}
        )
        if created.is_error:
            fail(f"mcpbox_create_tool failed: {created.content}")
        tool = created.structured_content
        published = await llm.call_tool("mcpbox_request_publish", {"tool_id": tool["id"], "notes": "first"})
        if published.is_error:
            fail(f"mcpbox_request_publish failed: {published.content}")
        status, body = await asyncio.to_thread(
            http,
            "POST",
            f"{url}/api/approvals/tools/{tool['id']}/action",
            {"action": "approve", "version": 1},
            token,
        )
        if status != 200:
            fail(f"approving version 1 answered {status}: {body}")
        started = await llm.call_tool("mcpbox_start_server", {"server_id": server["id"]})
        if started.is_error:
            fail(f"mcpbox_start_server failed: {started.content}")
        result = await llm.call_tool("quickstart__hello", {"name": "newcomer"})
        if result.is_error or result.structured_content != {"hello": "newcomer", "answer": 45}:
            fail(f"tools/call answered {result}")
    print("create -> approve -> start -> tools/call over MCP: ok", flush=True)


def main():
    child, url = start()
    try:
        wait_ready(url, doctor_layers())
        status, body = http("POST", url + "/auth/setup", {"username": "admin", "password": PASSWORD})
        if status != 201:
            fail(f"first-run set-up answered {status}: {body}")
        status, body = http("POST", url + "/auth/login", {"username": "admin", "password": PASSWORD})
        if status != 200:
            fail(f"sign-in answered {status}: {body}")
        asyncio.run(tool_round_trip(url, body["access_token"]))
        os.kill(child.pid, signal.SIGTERM)
        try:
            code = child.wait(20)
        except subprocess.TimeoutExpired:
            fail("the server did not stop within 20 s of SIGTERM")
        if code != 0:
            fail(f"the server exited with {code} after SIGTERM")
        print("stopped cleanly", flush=True)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
