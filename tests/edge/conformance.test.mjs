// The official MCP conformance suite's authorization-server scenarios against the Worker under
// Miniflare (full stack: the authorize step goes through the Worker's consent page and the
// upstream Access stand-in). The suite prints the authorization URL and waits on its own callback
// server; the test plays the browser. Every check must pass.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { startStack } from "./lib/stack.mjs";
import { freePort } from "./lib/worker.mjs";
import { authorize } from "./lib/browser.mjs";
import { nodeDir } from "./lib/env.mjs";

let stack;
before(async () => {
  stack = await startStack();
});
after(async () => stack?.stop());

function checksIn(dir) {
  const found = [];
  for (const entry of readdirSync(dir)) {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) found.push(...checksIn(full));
    else if (entry === "checks.json") found.push(...JSON.parse(readFileSync(full, "utf8")));
  }
  return found;
}

test("conformance: authorization-server scenarios pass against the Worker", async () => {
  const port = await freePort();
  const callback = `http://127.0.0.1:${port}/callback`;
  const registered = await fetch(`${stack.worker.url}/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      client_name: "mcp conformance suite",
      redirect_uris: [callback],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    }),
  });
  assert.equal(registered.status, 201, await registered.clone().text());
  const { client_id: clientId } = await registered.json();

  const out = mkdtempSync(path.join(os.tmpdir(), "mcpbox-edge-conformance-"));
  const node = path.join(nodeDir, "node_modules/node/bin/node");
  const cli = path.join(nodeDir, "node_modules/@modelcontextprotocol/conformance/dist/index.js");
  const child = spawn(node, [cli, "authorization", "--url", stack.worker.url, "--client-id", clientId,
    "--resource", stack.mcpUrl, "--port", String(port), "--output-dir", out], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PATH: `${path.dirname(node)}:${process.env.PATH}` },
  });
  const output = [];
  let browsing = Promise.resolve();
  let expectUrl = false;
  readline.createInterface({ input: child.stderr }).on("line", (line) => output.push(line));
  readline.createInterface({ input: child.stdout }).on("line", (line) => {
    output.push(line);
    if (/Access the following URL/.test(line)) { expectUrl = true; return; }
    if (expectUrl && /^https?:\/\//.test(line.trim())) {
      expectUrl = false;
      const url = line.trim();
      browsing = browsing.then(async () => {
        const { url: redirect } = await authorize(url, callback);
        // Deliver the code to the suite's callback server, as a browser would.
        await (await fetch(redirect)).text();
      }).catch((err) => output.push(`browser: ${err.stack}`));
    }
  });
  const code = await new Promise((resolve) => child.on("exit", resolve));
  await browsing;
  const checks = checksIn(out);
  rmSync(out, { recursive: true, force: true });
  const summary = checks.map((c) => `${c.status} ${c.id}${c.errorMessage ? `: ${c.errorMessage}` : ""}`);
  console.log(`conformance authorization (${checks.length} checks):\n  ${summary.join("\n  ")}`);
  const ids = new Set(checks.map((c) => c.id));
  assert.ok(ids.has("authorization-code-grant"), `the code grant never ran:\n${output.join("\n")}`);
  assert.ok(checks.length >= 2, output.join("\n"));
  const failed = checks.filter((c) => c.status !== "SUCCESS");
  assert.deepEqual(failed, [], output.join("\n"));
  assert.equal(code, 0, output.join("\n"));
});
