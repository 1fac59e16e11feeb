"""schemathesis against the live admin API, from the document it serves (issue 15).

Usage: run.py MCPBOX_BINARY [SCHEMATHESIS_ARGS…]
       (run by scripts/test; needs schemathesis on PYTHONPATH, which scripts/test installs; extra
       arguments go to `schemathesis run`, e.g. `--include-tag servers` while working on one
       module)

1. Starts the real `mcpbox serve` (with its own sandbox) on a fresh data directory (SQLite) and a
   free port, pointed at a Cloudflare API address that refuses connections.
2. Creates the first admin, signs in, and raises the API rate limits for the run (the run is one
   client at one address sending thousands of requests: with the shipped limits most answers
   would be 429, which is documented and proves nothing).
3. Runs `schemathesis run http://…/api/openapi.json` signed in as that admin, every phase
   (examples, coverage, fuzzing, stateful through the document's links) and every check, with the
   settings and exclusions of schemathesis.toml next to this file (each exclusion says why).
4. Prints the counts (operations, test cases, failures) and exits 1 on any failure, or when the
   server died or logged a panic.
"""

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

HERE = os.path.dirname(os.path.abspath(__file__))
USERNAME = "admin"
PASSWORD = "a long schemathesis passphrase"
# Generous enough that the run is never throttled (the maximum the API accepts).
UNLIMITED = {"per_minute": 1_000_000, "burst": 100_000}
START_TIMEOUT_S = 60

output = []


def fail(message):
    print("\nschemathesis step FAILED: " + message, file=sys.stderr)
    notable = [line for line in output if " WARN " in line or " ERROR " in line or "panicked" in line]
    print("the server's warnings and errors:\n" + "\n".join(notable[-40:]), file=sys.stderr)
    print("(its whole log is server.log in the data directory)", file=sys.stderr)
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


def start(binary, data_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPBOX_") and k != "DATABASE_URL"}
    # Port 9 (discard) on loopback refuses connections: Cloudflare calls fail at once.
    env["MCPBOX_CLOUDFLARE_API_URL"] = "http://127.0.0.1:9/client/v4"
    child = subprocess.Popen(
        [binary, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    found = {}
    listening = threading.Event()

    log = open(os.path.join(data_dir, "server.log"), "w")

    def read():
        for line in child.stdout:
            log.write(line)
            log.flush()
            output.append(line.rstrip("\n"))
            match = re.match(r"MCPbox listening on (http://\S+)", line)
            if match:
                found["url"] = match.group(1).rstrip("/")
                listening.set()

    threading.Thread(target=read, daemon=True).start()
    if not listening.wait(START_TIMEOUT_S):
        child.kill()
        fail(f"mcpbox serve did not listen within {START_TIMEOUT_S} s")
    return child, found["url"]


def counts(report_path):
    """Operations tested, test cases, checks run and failed checks from schemathesis' ndjson
    event stream (one `ScenarioFinished` per operation and phase; stateful scenarios are
    labelled "Stateful tests" and count for cases and checks only)."""
    operations, cases, checks, failures = set(), 0, 0, set()
    with open(report_path) as report:
        for line in report:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if not finished or finished.get("status") == "skip":
                continue
            recorder = finished.get("recorder", {})
            label = recorder.get("label", "?")
            if re.match(r"[A-Z]+ /", label):
                operations.add(label)
            cases += len(recorder.get("cases", {}))
            for results in recorder.get("checks", {}).values():
                for result in results:
                    checks += 1
                    if result.get("status") == "failure":
                        failures.add(f"{result.get('name')}: {label}")
    return operations, cases, checks, sorted(failures)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    data_dir = tempfile.mkdtemp(prefix="mcpbox-schemathesis-")
    child, url = start(binary, data_dir)
    try:
        status, body = http("POST", url + "/auth/setup", {"username": USERNAME, "password": PASSWORD})
        if status != 201:
            fail(f"set-up answered {status}: {body}")
        status, body = http("POST", url + "/auth/login", {"username": USERNAME, "password": PASSWORD})
        if status != 200:
            fail(f"sign-in answered {status}: {body}")
        token = body["access_token"]
        status, body = http(
            "PATCH",
            url + "/api/settings/rate-limits",
            {"api_per_address": UNLIMITED, "api_per_account": UNLIMITED},
            token,
        )
        if status != 200:
            fail(f"raising the rate limits answered {status}: {body}")
        report_dir = tempfile.mkdtemp(prefix="mcpbox-schemathesis-report-")
        ndjson = os.path.join(report_dir, "events.ndjson")
        command = [
            sys.executable, "-m", "schemathesis.cli",
            "--config-file", os.path.join(HERE, "schemathesis.toml"),
            "run", url + "/api/openapi.json",
            "--report", "ndjson", "--report-ndjson-path", ndjson,
            *sys.argv[2:],
        ]
        print("$ schemathesis run " + url + "/api/openapi.json (settings: tests/schemathesis/schemathesis.toml)", flush=True)
        started = time.monotonic()
        # The config signs in with these (and again after a 401).
        fuzz_env = dict(os.environ, MCPBOX_FUZZ_USERNAME=USERNAME, MCPBOX_FUZZ_PASSWORD=PASSWORD)
        run = subprocess.run(command, env=fuzz_env)
        elapsed = time.monotonic() - started
        if child.poll() is not None:
            fail(f"mcpbox serve exited with {child.returncode} during the run")
        panics = [line for line in output if "panicked" in line]
        operations, cases, checks, failures = counts(ndjson)
        print(
            f"\nschemathesis: {len(operations)} operations tested, {cases} test cases generated, "
            f"{checks} checks run, {len(failures)} distinct failures (check: operation), "
            f"in {elapsed:.0f} s",
            flush=True,
        )
        for failure in failures:
            print("  " + failure)
        if panics:
            fail("the server panicked:\n" + "\n".join(panics[:10]))
        if run.returncode != 0:
            fail(f"schemathesis exited with {run.returncode} (its summary is above)")
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    main()
