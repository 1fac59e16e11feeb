// The Worker shell under Miniflare without the upstreams: it loads, refuses to run half
// configured, serves the OAuth discovery documents, guards /mcp, and reaches KV.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startWorker } from "./lib/worker.mjs";

const accessVars = {
  ACCESS_CLIENT_ID: "access-client",
  ACCESS_CLIENT_SECRET: randomBytes(16).toString("hex"),
  ACCESS_ISSUER: "http://127.0.0.1:9/issuer",
  ACCESS_AUTHORIZATION_URL: "http://127.0.0.1:9/issuer/auth",
  ACCESS_TOKEN_URL: "http://127.0.0.1:9/issuer/token",
  ACCESS_JWKS_URL: "http://127.0.0.1:9/issuer/jwks",
};

test("a Worker without its vars and secrets answers 500 and says why in its log", async () => {
  const worker = await startWorker({ vars: { MCPBOX_PUBLIC_URL: "" } });
  try {
    const response = await fetch(`${worker.url}/mcp`, { method: "POST", body: "{}" });
    assert.equal(response.status, 500);
    assert.match(await response.text(), /misconfigured/);
  } finally {
    await worker.stop();
  }
});

let worker;
before(async () => {
  worker = await startWorker({ access: accessVars });
});
after(async () => worker?.stop());

test("discovery documents name this Worker as resource and issuer", async () => {
  for (const path of ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]) {
    const response = await fetch(worker.url + path);
    assert.equal(response.status, 200, path);
    const prm = await response.json();
    assert.equal(prm.resource, `${worker.url}/mcp`, path);
    assert.deepEqual(prm.authorization_servers, [worker.url], path);
  }
  const response = await fetch(`${worker.url}/.well-known/oauth-authorization-server`);
  assert.equal(response.status, 200);
  const meta = await response.json();
  assert.equal(meta.issuer, worker.url);
  assert.deepEqual(meta.code_challenge_methods_supported, ["S256"]);
  assert.ok(meta.registration_endpoint);
});

test("/mcp without a token is 401 with a pointer to the resource metadata", async () => {
  const response = await fetch(`${worker.url}/mcp`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} }),
  });
  assert.equal(response.status, 401);
  const challenge = response.headers.get("www-authenticate") ?? "";
  assert.match(challenge, /^Bearer /);
  assert.ok(challenge.includes(`resource_metadata="${worker.url}/.well-known/oauth-protected-resource/mcp"`), challenge);
});

test("client registration stores the client in KV (the shell's KV adapter)", async () => {
  const response = await fetch(`${worker.url}/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      client_name: "kv check",
      redirect_uris: ["http://127.0.0.1:33418/callback"],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    }),
  });
  assert.equal(response.status, 201, await response.clone().text());
  const client = await response.json();
  assert.ok(client.client_id);
  const keys = (await worker.kv.list()).keys.map((k) => k.name);
  assert.ok(keys.some((k) => k.startsWith("client:")), `KV keys: ${keys}`);
});

test("an unknown path is 404", async () => {
  const response = await fetch(`${worker.url}/nope`);
  assert.equal(response.status, 404);
  await response.arrayBuffer();
});

test("the KV config document written by the origin adds CORS origins (read through the shell's KV)", async () => {
  const fresh = await startWorker({ access: accessVars });
  try {
    const preflight = (origin) => fetch(`${fresh.url}/mcp`, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization" },
    });
    await fresh.kv.put("config:edge", JSON.stringify({ version: 1, cors_origins: ["https://app.example.com"], redirect_uris: [] }));
    let response = await preflight("https://app.example.com");
    assert.equal(response.headers.get("access-control-allow-origin"), "https://app.example.com");
    await response.arrayBuffer();
    response = await preflight("https://other.example.com");
    assert.equal(response.headers.get("access-control-allow-origin"), null);
    await response.arrayBuffer();
  } finally {
    await fresh.stop();
  }
});
