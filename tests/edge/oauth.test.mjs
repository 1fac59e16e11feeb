// The end-to-end path: the official MCP Python SDK's OAuth client provider against the
// Worker under Miniflare, with oidc-provider as the upstream Access and the real `mcpbox serve`
// tunnel listener as the origin. Discovery → registration (DCR, then a client ID metadata
// document) → authorize → callback → token → tools/list and tools/call → refresh.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startStack } from "./lib/stack.mjs";
import { startAccess } from "./lib/access.mjs";
import { freePort, startWorker } from "./lib/worker.mjs";
import { authorize, cookieJar } from "./lib/browser.mjs";
import { register, tokens } from "./lib/oauth.mjs";
import { python, pySdk } from "./lib/env.mjs";
import { TOOL } from "./lib/origin.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const REDIRECT_URI = "http://127.0.0.1:53682/callback";
const CIMD_URL = "https://client.example/mcpbox-e2e-client.json";
const cimdFetches = [];

// The client ID metadata document lives on "https://client.example": the Worker's outbound
// fetches are served here (everything else goes to the network as usual).
function outbound(request) {
  if (request.url === CIMD_URL) {
    cimdFetches.push(request.url);
    return new Response(JSON.stringify({
      client_id: CIMD_URL,
      client_name: "mcpbox edge e2e (metadata document)",
      redirect_uris: [REDIRECT_URI],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    }), { headers: { "content-type": "application/json" } });
  }
  return undefined;
}

let stack;
before(async () => {
  stack = await startStack({ outbound });
});
after(async () => stack?.stop());

function run(file, args, env) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: { ...process.env, ...env }, timeout: 180_000, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(args[0])} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

test("the Python SDK authorizes through the Worker and Access, calls tools, and refreshes", async () => {
  const { stdout } = await run(python, [path.join(here, "python/oauth_client.py"), stack.mcpUrl, REDIRECT_URI, CIMD_URL], {
    PYTHONPATH: pySdk,
  });
  const report = JSON.parse(stdout.trim().split("\n").pop());
  if (process.env.MCPBOX_EDGE_TEST_VERBOSE) console.log(JSON.stringify(report, null, 2));
  for (const kind of ["dcr", "cimd"]) {
    const seen = report[kind];
    assert.ok(seen, `${kind}: no report`);
    assert.deepEqual(seen.first_tools, [TOOL], kind);
    assert.deepEqual(seen.first_call, { hello: "first" }, `${kind}: ${JSON.stringify(seen.first_call)}`);
    assert.equal(seen.first_call_error, false, kind);
    assert.equal(seen.token_type.toLowerCase(), "bearer", kind);
    assert.equal(seen.has_refresh_token, true, kind);
    // The refresh: a new access token and a rotated refresh token, and it works.
    assert.equal(seen.refreshed_access_token_changed, true, kind);
    assert.equal(seen.refresh_token_rotated, true, kind);
    assert.deepEqual(seen.refreshed_call, { hello: "refreshed" }, kind);
    // Both protocol revisions went through the Worker: stateless 2026-07-28, then a 2025-11-25 session.
    assert.equal(seen.first_protocol, "2026-07-28", kind);
    assert.equal(seen.refreshed_protocol, "2025-11-25", kind);
    // Only one trip through /authorize per client: the refresh needed no browser.
    assert.equal(seen.authorizations, 1, `${kind}: ${seen.hops.join(" → ")}`);
    // The chain went through the upstream Access stand-in.
    assert.ok(seen.hops.some((hop) => hop.includes(new URL(stack.access.issuer).host)), seen.hops.join(" → "));
    assert.equal(seen.bogus_token_status, 401, kind);
  }
  assert.notEqual(report.dcr.client_id, CIMD_URL);
  assert.equal(report.cimd.client_id, CIMD_URL);
  assert.ok(cimdFetches.length >= 1, "the Worker never fetched the client ID metadata document");
  assert.ok(stack.access.logins >= 1, "nobody signed in upstream");
});

test("identity headers a client sends are replaced, never passed on", async () => {
  // Without a token the Worker must not forward at all, whatever identity headers come along.
  const response = await fetch(stack.mcpUrl, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "x-mcpbox-service-token": stack.origin.serviceToken,
      "x-mcpbox-user-email": "alice@example.com",
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} }),
  });
  assert.equal(response.status, 401);
  await response.arrayBuffer();
});

/** An /authorize URL for a fresh DCR client of the stack's Worker. */
async function authorizeUrl(workerUrl, redirectUri) {
  const client = await register(workerUrl, redirectUri);
  const url = new URL(`${workerUrl}/authorize`);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: client.client_id,
    redirect_uri: redirectUri,
    code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    code_challenge_method: "S256",
    state: "s",
  }).toString();
  return url.href;
}

test("a login consented to in one browser cannot be finished in another", async () => {
  // Mallory consents in her browser and stops at the redirect to Access; Alice, signed in to
  // Access, follows that link. Access sends Alice back to /callback, which refuses her browser.
  const redirectUri = "http://127.0.0.1:53684/callback";
  const mallory = cookieJar();
  const { url: accessLink } = await authorize(await authorizeUrl(stack.worker.url, redirectUri), `${stack.access.issuer}/auth?`, { jar: mallory });
  await assert.rejects(authorize(accessLink, redirectUri, { jar: cookieJar() }), (err) => {
    assert.match(err.message, /unexpected 400 at http:\/\/127\.0\.0\.1:\d+\/callback/);
    assert.match(err.message, /login_browser_mismatch/);
    return true;
  });
  // The same flow in one browser ends at the client with a code.
  const own = cookieJar();
  const { url: ownLink } = await authorize(await authorizeUrl(stack.worker.url, redirectUri), `${stack.access.issuer}/auth?`, { jar: own });
  const { url: back } = await authorize(ownLink, redirectUri, { jar: own });
  assert.ok(new URL(back).searchParams.get("code"), back);
});

test("an Access login without email_verified is refused with a page", async (t) => {
  const port = await freePort();
  const access = await startAccess({ redirectUri: `http://127.0.0.1:${port}/callback`, emailVerified: false });
  t.after(() => access.stop());
  const worker = await startWorker({ port, access: access.vars });
  t.after(() => worker.stop());
  await assert.rejects(tokens(worker.url), (err) => {
    assert.match(err.message, /unexpected 403 at http:\/\/127\.0\.0\.1:\d+\/callback/);
    assert.match(err.message, /email_not_verified/);
    return true;
  });
  assert.ok(access.logins >= 1, "the login never reached Access");
});
