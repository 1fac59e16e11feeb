// Token life cycle through the Worker under Miniflare, on the real stack: two concurrent
// refreshes with the same refresh token both work (the rotation grace), revocation (RFC 7009)
// takes effect at /mcp, and a real third-party client (MCP Inspector CLI) calls through the
// Worker with a bearer token.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import os from "node:os";
import { mkdtempSync } from "node:fs";
import { startStack } from "./lib/stack.mjs";
import { answer, mcpRequest, tokens } from "./lib/oauth.mjs";
import { TOOL } from "./lib/origin.mjs";
import { nodeDir } from "./lib/env.mjs";

let stack;
before(async () => { stack = await startStack(); });
after(async () => stack?.stop());

async function mcp(token, method = "tools/list", params = {}) {
  const request = mcpRequest(method, params);
  const response = await fetch(stack.mcpUrl, { method: "POST", headers: { ...request.headers, authorization: `Bearer ${token}` }, body: request.body });
  return { status: response.status, message: answer(await response.text()) };
}

function refresh(clientId, refreshToken) {
  return fetch(`${stack.worker.url}/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken, client_id: clientId, resource: stack.mcpUrl }).toString(),
  }).then(async (response) => ({ status: response.status, body: await response.json() }));
}

test("two concurrent refreshes with one refresh token both succeed, and both new tokens work", async () => {
  const first = await tokens(stack.worker.url);
  const [a, b] = await Promise.all([refresh(first.clientId, first.refresh_token), refresh(first.clientId, first.refresh_token)]);
  assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.equal(b.status, 200, JSON.stringify(b.body));
  assert.notEqual(a.body.access_token, b.body.access_token);
  for (const token of [a.body.access_token, b.body.access_token]) {
    const { status, message } = await mcp(token);
    assert.equal(status, 200);
    assert.ok(message.result.tools.some((t) => t.name === TOOL));
  }
});

test("a revoked access token stops working at /mcp; a revoked refresh token ends the grant", async () => {
  const pair = await tokens(stack.worker.url);
  assert.equal((await mcp(pair.access_token)).status, 200);
  const revoke = (token) => fetch(`${stack.worker.url}/revoke`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token, client_id: pair.clientId }).toString(),
  });
  let response = await revoke(pair.access_token);
  assert.equal(response.status, 200);
  await response.arrayBuffer();
  assert.equal((await mcp(pair.access_token)).status, 401);
  response = await revoke(pair.refresh_token);
  assert.equal(response.status, 200);
  await response.arrayBuffer();
  const after = await refresh(pair.clientId, pair.refresh_token);
  assert.equal(after.status, 400, JSON.stringify(after.body));
  assert.equal(after.body.error, "invalid_grant");
});

test("MCP Inspector CLI lists and calls tools through the Worker with a bearer token", async () => {
  const { access_token: token } = await tokens(stack.worker.url);
  const catalog = path.join(mkdtempSync(path.join(os.tmpdir(), "mcpbox-edge-inspector-")), "mcp.json");
  const node = path.join(nodeDir, "node_modules/node/bin/node");
  const cli = path.join(nodeDir, "node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js");
  const run = (args) => new Promise((resolve, reject) => {
    execFile(node, [cli, "--cli", stack.mcpUrl, "--transport", "http", "--header", `Authorization: Bearer ${token}`, ...args],
      { timeout: 120_000, env: { ...process.env, PATH: `${path.dirname(node)}:${process.env.PATH}`, MCP_CATALOG_PATH: catalog } },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(JSON.parse(stdout))));
  });
  const listed = await run(["--method", "tools/list"]);
  assert.ok(listed.tools.some((t) => t.name === TOOL), JSON.stringify(listed).slice(0, 300));
  const called = await run(["--method", "tools/call", "--tool-name", TOOL, "--tool-arg", "city=Lisbon"]);
  assert.deepEqual(called.structuredContent, { hello: "Lisbon" }, JSON.stringify(called));
});
