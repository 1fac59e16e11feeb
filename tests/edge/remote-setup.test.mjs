// The remote set-up wizard (issue #12) end to end, in headless Chromium, from a fresh
// `mcpbox serve` against the fake Cloudflare API (lib/fake-cloudflare.mjs): bad tokens first, then
// the six steps with a failure injected at step 4, an MCP client signing in through the Access
// stand-in and calling a tool through the uploaded Worker, the refusals (an address outside the
// policy at Access, a forged email header at the origin), a CORS origin from Settings reaching
// the running Worker, every step run again creating nothing, a name clash on a second install,
// and teardown leaving the fake with nothing the wizard made. Prints the wizard's time and the
// API calls per step, from the fake's request log.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ALL_PERMISSIONS, PERMISSIONS, startFakeCloudflare } from "./lib/fake-cloudflare.mjs";
import { startOrigin, api, PASSWORD, TOOL } from "./lib/origin.mjs";
import { freePort } from "./lib/worker.mjs";
import { startBrowser } from "./lib/webdriver.mjs";
import { authorize, cookieJar } from "./lib/browser.mjs";
import { register } from "./lib/oauth.mjs";
import { python, pySdk, repo } from "./lib/env.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const STEPS = ["token", "tunnel", "vpc_service", "worker", "access", "connect"];
const ALLOWED = ["alice@example.com", "@example.org"];
const CORS_ORIGIN = "https://app.example.com";
/** The committed bundle: what the origin embeds and uploads (scripts/test-edge proves it equals a fresh build). */
const DIST = path.join(repo, "edge-worker/dist");
const sha256 = (data) => createHash("sha256").update(data).digest("hex");

let fake;
let origin;
let browser;
let dir;
let logFile;
let workerUrl;
const figures = { steps: {}, failedAttempt: null };

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "remote-setup-"));
  logFile = path.join(dir, "cloudflare.jsonl");
  fake = await startFakeCloudflare({ log: logFile });
  origin = await startWizardOrigin();
  workerUrl = `http://127.0.0.1:${await freePort()}`;
  browser = await startBrowser();
  await browser.goto(`${origin.url}/ui/login`);
  await browser.type("#username", "admin");
  await browser.type("#password", PASSWORD);
  await browser.click("form button[type=submit]");
  await browser.waitForText("Dashboard");
});

after(async () => {
  await browser?.quit();
  await origin?.stop();
  await fake?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A fresh origin pointed at the fake, without a service token (the wizard makes one). */
function startWizardOrigin() {
  return startOrigin({
    allowedEmails: [],
    serviceToken: null,
    args: ["--cloudflare-api-url", fake.apiUrl, "--cloudflare-access-url", fake.accessUrl],
  });
}

/** The API requests logged since line `from` (MCPBOX_FAKE_CF_LOG's file). */
function logged(from = 0) {
  if (!existsSync(logFile)) return [];
  return readFileSync(logFile, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line)).slice(from);
}
const logLength = () => logged().length;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const acct = (route) => `/accounts/${fake.accountId}${route}`;

/** A step's badge text and error text on /ui/remote as it is now. */
async function stepView(step) {
  const status = (await browser.textIfAny(`#step-${step} .step-status`))?.trim().toLowerCase() ?? null;
  const error = (await browser.textIfAny(`#step-${step} .step-error`))?.trim() || null;
  return { status, error };
}

/**
 * Fill a step's form on /ui/remote, submit it and wait until the step is done or failed
 * (reloading /ui/remote while it runs). Resolves to { status, error, seconds, calls }.
 */
async function runStep(step, fields = {}, { timeout = 90 } = {}) {
  await browser.goto(`${origin.url}/ui/remote`);
  for (const [name, value] of Object.entries(fields)) {
    const css = `#form-${step} [name=${name}]`;
    await browser.find(css);
    if (await browser.script(`return document.querySelector(${JSON.stringify(css)}).tagName`) === "SELECT") {
      await browser.script(`document.querySelector(${JSON.stringify(css)}).value = ${JSON.stringify(value)}`);
    } else {
      await browser.type(css, value);
    }
  }
  const from = logLength();
  const started = Date.now();
  // Mark the page, so the one the form's answer brings is told apart from it.
  await browser.script("document.documentElement.dataset.before = 'submit'");
  await browser.click(`#form-${step} button[type=submit]`);
  const until = started + timeout * 1000;
  let view;
  for (;;) {
    const fresh = await browser.script("return document.readyState === 'complete' && !document.documentElement.dataset.before");
    if (fresh) {
      view = await stepView(step);
      if (view.status === "done" || view.status === "failed") break;
    }
    if (Date.now() > until) throw new Error(`step ${step} did not finish in ${timeout} s: ${JSON.stringify(view)} ${(await browser.pageText()).slice(0, 1500)}`);
    await sleep(500);
    if (fresh) await browser.goto(`${origin.url}/ui/remote`);
  }
  return { ...view, seconds: (Date.now() - started) / 1000, calls: logged(from) };
}

/** Resources in the fake that the test did not pre-create. */
function created(state = fake.state()) {
  const out = {};
  for (const kind of ["tunnels", "vpc_services", "kv_namespaces", "workers", "access_apps"]) {
    out[kind] = state[kind].filter((r) => !r.precreated);
  }
  return out;
}
const counts = (resources) => Object.fromEntries(Object.entries(resources).map(([k, v]) => [k, v.length]));

const creates = (calls) => calls.filter((c) => c.status === 200 && (
  (c.method === "POST" && /\/(cfd_tunnel|connectivity\/directory\/services|storage\/kv\/namespaces|access\/apps|access\/apps\/[^/]+\/policies)$/.test(c.path)) ||
  (c.method === "PUT" && /\/workers\/scripts\/[^/]+$/.test(c.path))));

test("a wrong token and a token without a needed permission are refused, naming what is wrong", async (t) => {
  const wrong = await runStep("token", { api_token: "not-a-cloudflare-token" });
  assert.equal(wrong.status, "failed");
  assert.match(wrong.error ?? "", /token/i, `the error says the token is the problem: ${wrong.error}`);
  assert.ok(wrong.calls.some((c) => c.status === 401), "the token was tried against Cloudflare");

  t.after(() => fake.setPermissions(ALL_PERMISSIONS));
  fake.setPermissions(ALL_PERMISSIONS.filter((p) => p !== PERMISSIONS.kv));
  const lacking = await runStep("token", { api_token: fake.token });
  assert.equal(lacking.status, "failed");
  assert.match(lacking.error ?? "", /Workers KV Storage/, `the error names the missing permission: ${lacking.error}`);
  assert.ok(lacking.calls.some((c) => c.status === 403 && c.path.includes("/storage/kv/namespaces")), "the KV probe got 403");
  assert.deepEqual(counts(created()), { tunnels: 0, vpc_services: 0, kv_namespaces: 0, workers: 0, access_apps: 0 });
});

test("the admin walks the six steps; a failure at step 4 (500, then 429) is shown and resumes on retry", async () => {
  const tunnelPort = Number(new URL(origin.tunnelUrl).port);
  const wizardStarted = Date.now();

  // The token reaches two accounts: the step asks which one, then the choice alone completes it.
  const other = fake.addAccount("Someone Else's Account");
  const ask = await runStep("token", { api_token: fake.token });
  assert.equal(ask.status, "failed");
  assert.match(ask.error ?? "", /several accounts/i, ask.error);
  const options = await browser.script("return [...document.querySelectorAll('#form-token select[name=account_id] option')].map((o) => o.value)");
  assert.deepEqual(options.sort(), [fake.accountId, other.id].sort(), "the account choice lists both");
  const token = await runStep("token", { account_id: fake.accountId });
  assert.equal(token.status, "done", token.error);
  figures.steps.token = token;
  assert.match(await browser.pageText(), /MCPbox Test Account/);

  const tunnel = await runStep("tunnel");
  assert.equal(tunnel.status, "done", tunnel.error);
  figures.steps.tunnel = tunnel;
  const [madeTunnel] = created().tunnels;
  assert.ok(madeTunnel, "a tunnel exists");
  assert.equal(madeTunnel.config_src, "cloudflare");

  const vpc = await runStep("vpc_service");
  assert.equal(vpc.status, "done", vpc.error);
  figures.steps.vpc_service = vpc;
  const [service] = created().vpc_services;
  assert.equal(service.type, "http");
  assert.equal(service.http_port, tunnelPort, "the VPC service points at the tunnel listener");
  assert.equal(service.host.network?.tunnel_id ?? service.host.resolver_network?.tunnel_id, madeTunnel.id);

  // Step 4 with Cloudflare failing the upload once (500: the step fails and says so), then
  // rate-limiting it once (429: the client waits Retry-After and tries again by itself).
  fake.addFault({ method: "PUT", path_prefix: acct("/workers/scripts/"), statuses: [500, 429] });
  const failed = await runStep("worker", { public_url: workerUrl });
  assert.equal(failed.status, "failed", "the 500 fails the step");
  assert.match(failed.error ?? "", /unknown error/i, `Cloudflare's message is shown: ${failed.error}`);
  figures.failedAttempt = failed;
  const worker = await runStep("worker", { public_url: workerUrl });
  assert.equal(worker.status, "done", worker.error);
  figures.steps.worker = worker;
  const uploads = worker.calls.filter((c) => c.method === "PUT" && /\/workers\/scripts\/[^/]+$/.test(c.path));
  assert.deepEqual(uploads.map((c) => c.status), [429, 200], "the 429 was retried once, the same request");
  const kvCreates = [...failed.calls, ...worker.calls].filter((c) => c.method === "POST" && c.path.endsWith("/storage/kv/namespaces"));
  assert.equal(kvCreates.length, 1, "the retry resumed: the KV namespace made before the failure was kept");

  // What was uploaded: the committed bundle, with the contract's bindings.
  const upload = uploads.at(-1);
  assert.deepEqual(upload.parts.map((p) => [p.name, p.filename, p.content_type]), [
    ["metadata", upload.parts[0].filename, "application/json"],
    ["index.js", "index.js", "application/javascript+module"],
    ["index_bg.wasm", "index_bg.wasm", "application/wasm"],
  ]);
  const metadata = upload.parts[0].json;
  assert.equal(metadata.main_module, "index.js");
  const binding = (name) => metadata.bindings.find((b) => b.name === name);
  assert.equal(binding("OAUTH_KV").type, "kv_namespace");
  assert.equal(binding("ORIGIN").type, "vpc_service");
  assert.equal(binding("ORIGIN").service_id, service.service_id);
  assert.deepEqual(binding("MCPBOX_PUBLIC_URL"), { type: "plain_text", name: "MCPBOX_PUBLIC_URL", text: workerUrl });
  for (const secret of ["MCPBOX_SERVICE_TOKEN", "MCPBOX_ENCRYPTION_KEY"]) {
    assert.deepEqual(binding(secret), { type: "secret_text", name: secret, text: "<redacted>" }, `${secret} is a secret, redacted in the log`);
  }
  const [script] = created().workers;
  assert.equal(script.running, true);
  assert.equal(script.url, workerUrl, "the Worker listens at the public URL given in step 4");
  for (const file of ["index.js", "index_bg.wasm"]) {
    const sent = script.modules.find((m) => m.name === file);
    assert.equal(sent.sha256, sha256(readFileSync(path.join(DIST, file))), `${file} is edge-worker/dist/${file}`);
  }

  const access = await runStep("access", { allowed_emails: ALLOWED.join("\n") });
  assert.equal(access.status, "done", access.error);
  figures.steps.access = access;
  const [app] = created().access_apps;
  assert.equal(app.type, "saas");
  assert.deepEqual(app.saas_app.redirect_uris, [`${workerUrl}/callback`]);
  const rules = app.policies.flatMap((p) => p.include).map((r) => JSON.stringify(r)).sort();
  assert.deepEqual(rules, [{ email: { email: "alice@example.com" } }, { email_domain: { domain: "example.org" } }].map((r) => JSON.stringify(r)).sort());
  // The Worker now knows its Access app (the settings went up with a second upload).
  const vars = Object.fromEntries(fake.state().workers.find((w) => w.id === script.id).bindings.map((b) => [b.name, b.text]));
  assert.equal(vars.ACCESS_CLIENT_ID, app.saas_app.client_id);
  assert.equal(vars.ACCESS_ISSUER, `${fake.accessUrl}/cdn-cgi/access/sso/oidc/${app.saas_app.client_id}`);
  assert.equal(vars.ACCESS_CLIENT_SECRET, app.saas_app.client_secret);
  const probe = await fetch(`${workerUrl}/mcp`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  assert.equal(probe.status, 401);
  assert.match(probe.headers.get("www-authenticate") ?? "", /resource_metadata=/);

  await browser.goto(`${origin.url}/ui/remote`);
  if (await browser.exists("#form-connect button[type=submit]")) {
    const connect = await runStep("connect");
    assert.equal(connect.status, "done", connect.error);
    figures.steps.connect = connect;
  }
  assert.equal((await browser.text("code#mcp-url")).trim(), `${workerUrl}/mcp`);
  const snippets = await browser.script("return [...document.querySelectorAll('pre.snippet')].map((p) => p.textContent)");
  assert.ok(snippets.length >= 4, `snippets for claude.ai, ChatGPT, Claude Code and Cursor: ${snippets.length}`);
  for (const snippet of snippets) assert.ok(snippet.includes(`${workerUrl}/mcp`), snippet);
  for (const step of STEPS) {
    assert.equal((await stepView(step)).status, "done", `step ${step} shows done`);
  }
  figures.wizardSeconds = (Date.now() - wizardStarted) / 1000;
  report();
});

function report() {
  const rows = Object.entries(figures.steps).map(([step, run]) => {
    const byKind = {};
    for (const c of run.calls) byKind[c.method] = (byKind[c.method] ?? 0) + 1;
    return `  ${step.padEnd(12)} ${String(run.calls.length).padStart(3)} calls (${Object.entries(byKind).map(([m, n]) => `${n} ${m}`).join(", ")}) in ${run.seconds.toFixed(2)} s`;
  });
  const total = Object.values(figures.steps).reduce((sum, run) => sum + run.seconds, 0);
  console.log([
    "remote set-up wizard against the fake Cloudflare API:",
    ...rows,
    `  step 4 failed attempt (injected 500): ${figures.failedAttempt?.calls.length ?? 0} calls in ${figures.failedAttempt?.seconds.toFixed(2)} s`,
    `  steps total ${total.toFixed(2)} s (their clicks to "done"), whole walk incl. page loads and the failed attempt ${figures.wizardSeconds?.toFixed(2)} s`,
  ].join("\n"));
}

function run(file, args, env) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: { ...process.env, ...env }, timeout: 180_000, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(args[0])} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

test("the MCP Python SDK signs in through Access as an allowed address and calls the approved tool", async () => {
  const mcpUrl = (await browser.text("code#mcp-url")).trim();
  fake.setIdentity("alice@example.com");
  const { stdout } = await run(python, [path.join(here, "python/oauth_client.py"), mcpUrl, "http://127.0.0.1:53690/callback"], { PYTHONPATH: pySdk });
  const seen = JSON.parse(stdout.trim().split("\n").pop()).dcr;
  assert.deepEqual(seen.first_tools, [TOOL]);
  assert.deepEqual(seen.first_call, { hello: "first" });
  assert.equal(seen.first_call_error, false);
  assert.deepEqual(seen.refreshed_call, { hello: "refreshed" });
  assert.ok(seen.hops.some((hop) => hop.includes(`${new URL(fake.accessUrl).host}/cdn-cgi/access/sso/oidc/`)), seen.hops.join(" → "));
  assert.deepEqual(fake.state().access.logins.map((l) => [l.email, l.allowed]), [["alice@example.com", true]]);
});

/** An /authorize URL of the Worker for a fresh DCR client. */
async function authorizeUrl(redirectUri) {
  const client = await register(workerUrl, redirectUri);
  const url = new URL(`${workerUrl}/authorize`);
  url.search = new URLSearchParams({
    response_type: "code", client_id: client.client_id, redirect_uri: redirectUri,
    code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", code_challenge_method: "S256", state: "s",
  }).toString();
  return url.href;
}

test("an address outside the policy is refused by Access; one under an allowed @domain gets through", async () => {
  const redirectUri = "http://127.0.0.1:53691/callback";
  fake.setIdentity("mallory@evil.test");
  await assert.rejects(authorize(await authorizeUrl(redirectUri), redirectUri, { jar: cookieJar() }), (err) => {
    assert.match(err.message, /unexpected 403 at .*\/cdn-cgi\/access\/sso\/oidc\/.*Access denied/s);
    return true;
  });
  fake.setIdentity("bob@example.org");
  const { url } = await authorize(await authorizeUrl(redirectUri), redirectUri, { jar: cookieJar() });
  assert.ok(new URL(url).searchParams.get("code"), url);
  assert.deepEqual(fake.state().access.logins.slice(-2).map((l) => [l.email, l.allowed]), [["mallory@evil.test", false], ["bob@example.org", true]]);
});

test("the origin refuses a forged email header even with the right service token", async () => {
  const [script] = created().workers;
  const serviceToken = script.bindings.find((b) => b.name === "MCPBOX_SERVICE_TOKEN").text;
  assert.ok(serviceToken.length >= 32);
  const initialize = (email) => fetch(`${origin.tunnelUrl}/mcp`, {
    method: "POST",
    headers: {
      "content-type": "application/json", accept: "application/json, text/event-stream",
      "x-mcpbox-service-token": serviceToken, "x-mcpbox-user-email": email,
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: {
      protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "forger", version: "1" },
    } }),
  });
  const forged = await initialize("mallory@evil.test");
  assert.equal(forged.status, 403, "an address not on the allowlist is refused by the tunnel listener");
  await forged.arrayBuffer();
  // The same request for an address on the list goes through: the 403 was the allowlist's.
  const allowed = await initialize("alice@example.com");
  assert.equal(allowed.status, 200, await allowed.clone().text());
  await allowed.arrayBuffer();
  const viaDomain = await initialize("carol@example.org");
  assert.equal(viaDomain.status, 200);
  await viaDomain.arrayBuffer();
});

async function preflight() {
  const response = await fetch(`${workerUrl}/mcp`, {
    method: "OPTIONS",
    headers: { origin: CORS_ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
  });
  await response.arrayBuffer();
  return response.headers.get("access-control-allow-origin");
}

test("a CORS origin added in Settings is answered by the running Worker's preflight", async () => {
  assert.notEqual(await preflight(), CORS_ORIGIN, "not allowed before the setting");
  await browser.goto(`${origin.url}/ui/settings`);
  await browser.type("#form-edge [name=cors_origins]", CORS_ORIGIN);
  await browser.script("document.documentElement.dataset.before = 'submit'");
  await browser.click("#form-edge button[type=submit]");
  const until = Date.now() + 20_000;
  while (await browser.script("return !!document.documentElement.dataset.before") && Date.now() < until) await sleep(200);
  const sync = await browser.text("#edge-sync");
  assert.doesNotMatch(sync, /fail|error/i, sync);
  const [namespace] = created().kv_namespaces;
  const doc = JSON.parse(namespace.values["config:edge"]);
  assert.equal(doc.version, 1);
  assert.deepEqual(doc.cors_origins, [CORS_ORIGIN]);
  // The Worker caches the document for 30 s per isolate (edge-worker/core RULES_CACHE_SECONDS).
  const started = Date.now();
  let allowed;
  while ((allowed = await preflight()) !== CORS_ORIGIN && Date.now() - started < 45_000) await sleep(1000);
  assert.equal(allowed, CORS_ORIGIN, "the Worker's preflight allows the new origin");
  console.log(`CORS origin reached the Worker ${((Date.now() - started) / 1000).toFixed(1)} s after the KV write`);
});

test("running every step a second time makes no new resource", async () => {
  const before = counts(created());
  const from = logLength();
  const again = {
    token: await runStep("token", { api_token: fake.token }),
    tunnel: await runStep("tunnel"),
    vpc_service: await runStep("vpc_service"),
    worker: await runStep("worker", { public_url: workerUrl }),
    access: await runStep("access", { allowed_emails: ALLOWED.join("\n") }),
  };
  for (const [step, result] of Object.entries(again)) assert.equal(result.status, "done", `${step}: ${result.error}`);
  const calls = logged(from);
  assert.deepEqual(creates(calls).map((c) => `${c.method} ${c.path}`), [], "no create and no upload the second time");
  assert.deepEqual(counts(created()), before);
  console.log(`second run of steps 1-5: ${calls.length} API calls, ${Object.entries(again).map(([s, r]) => `${s} ${r.calls.length}`).join(", ")}`);
});

test("a name clash with a resource this install did not create is refused, and replaced only when asked", async (t) => {
  const other = await startWizardOrigin();
  t.after(() => other.stop());
  const token = other.adminToken;
  const connected = await api(other.url, "/api/cloudflare/token", { api_token: fake.token, account_id: fake.accountId }, token);
  assert.equal(connected.status, 200, JSON.stringify(connected.body));
  const theirs = await fake.precreate({ kind: "tunnel", name: "someone-elses-tunnel" });
  const clash = await api(other.url, "/api/cloudflare/tunnel", { name: "someone-elses-tunnel" }, token);
  assert.equal(clash.status, 409, JSON.stringify(clash.body));
  assert.equal(clash.body.error.code, "conflict");
  assert.match(JSON.stringify(clash.body.error), /someone-elses-tunnel/);
  assert.ok(fake.state().tunnels.some((t) => t.id === theirs.id), "the other tunnel is still there");
  const replaced = await api(other.url, "/api/cloudflare/tunnel", { name: "someone-elses-tunnel", replace: true }, token);
  assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
  const tunnels = fake.state().tunnels.filter((t) => t.name === "someone-elses-tunnel");
  assert.equal(tunnels.length, 1);
  assert.notEqual(tunnels[0].id, theirs.id, "replaced by a tunnel of this install");
  const down = await api(other.url, "/api/cloudflare/teardown", { confirm: true }, token);
  assert.equal(down.status, 200, JSON.stringify(down.body));
  assert.ok(!fake.state().tunnels.some((t) => t.name === "someone-elses-tunnel"), "its teardown removed it");
});

test("an origin killed in the middle of step 4 continues where it stopped after a restart", async (t) => {
  const flags = ["--cloudflare-api-url", fake.apiUrl, "--cloudflare-access-url", fake.accessUrl];
  const tunnelListen = `127.0.0.1:${await freePort()}`;
  let other = await startOrigin({ allowedEmails: [], serviceToken: null, args: flags, tunnelListen });
  const dataDir = other.dataDir;
  t.after(() => other.stop());
  const steps = [
    ["/api/cloudflare/token", { api_token: fake.token, account_id: fake.accountId }],
    ["/api/cloudflare/tunnel", { name: "restart-tunnel" }],
    ["/api/cloudflare/vpc-service", { name: "restart-origin" }],
  ];
  for (const [route, body] of steps) {
    const done = await api(other.url, route, body, other.adminToken);
    assert.equal(done.status, 200, `${route}: ${JSON.stringify(done.body)}`);
  }
  const otherWorker = `http://127.0.0.1:${await freePort()}`;
  const step4 = { name: "restart-edge", public_url: otherWorker };
  // Cloudflare never answers the upload; the origin dies while it waits.
  fake.addFault({ method: "PUT", path_prefix: acct("/workers/scripts/restart-edge"), statuses: [0] });
  const from = logLength();
  const hanging = api(other.url, "/api/cloudflare/worker", step4, other.adminToken).catch((err) => err);
  const until = Date.now() + 30_000;
  while (!logged(from).some((c) => c.status === 0) && Date.now() < until) await sleep(100);
  assert.ok(logged(from).some((c) => c.status === 0), "the upload reached Cloudflare");
  await other.stop({ signal: "SIGKILL", keepData: true });
  await hanging;

  other = await startOrigin({ allowedEmails: [], serviceToken: null, args: flags, tunnelListen, dataDir });
  const status = await api(other.url, "/api/cloudflare/status", undefined, other.adminToken, "GET");
  const byStep = Object.fromEntries(status.body.steps.map((s) => [s.step, s.status]));
  assert.deepEqual([byStep.token, byStep.tunnel, byStep.vpc_service], ["done", "done", "done"], JSON.stringify(status.body));
  assert.notEqual(byStep.worker, "done");
  const resumed = await api(other.url, "/api/cloudflare/worker", step4, other.adminToken);
  assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
  const calls = logged(from);
  assert.equal(calls.filter((c) => c.method === "POST" && c.path.endsWith("/storage/kv/namespaces")).length, 1,
    "the KV namespace made before the crash was adopted, not made again");
  assert.equal(fake.state().kv_namespaces.filter((n) => n.title === "restart-edge-oauth").length, 1);
  assert.equal(fake.state().tunnels.filter((n) => n.name === "restart-tunnel").length, 1);
  const script = fake.state().workers.find((w) => w.id === "restart-edge");
  assert.equal(script?.running, true, "the Worker was uploaded after the restart");
  assert.equal(script.url, otherWorker);
  const down = await api(other.url, "/api/cloudflare/teardown", { confirm: true }, other.adminToken);
  assert.equal(down.status, 200, JSON.stringify(down.body));
  const left = fake.state();
  assert.ok(!left.tunnels.some((x) => x.name === "restart-tunnel") && !left.workers.some((x) => x.id === "restart-edge")
    && !left.kv_namespaces.some((x) => x.title === "restart-edge-oauth") && !left.vpc_services.some((x) => x.name === "restart-origin"),
  `the restarted install tore down all it made: ${JSON.stringify(down.body)}`);
});

test("teardown leaves the fake with nothing the wizard created", async () => {
  await browser.goto(`${origin.url}/ui/remote`);
  const checkbox = await browser.find("#form-teardown input[name=confirm]");
  if (!(await browser.script("return document.querySelector('#form-teardown input[name=confirm]').checked"))) {
    await browser.click("#form-teardown input[name=confirm]");
  }
  assert.ok(checkbox);
  const from = logLength();
  await browser.script("document.documentElement.dataset.before = 'submit'");
  await browser.click("#form-teardown button[type=submit]");
  const until = Date.now() + 60_000;
  while (Object.values(counts(created())).some((n) => n > 0) && Date.now() < until) await sleep(300);
  assert.deepEqual(counts(created()), { tunnels: 0, vpc_services: 0, kv_namespaces: 0, workers: 0, access_apps: 0 },
    JSON.stringify(logged(from).map((c) => `${c.method} ${c.path} ${c.status}`)));
  await assert.rejects(fetch(`${workerUrl}/health`), "the Worker is gone");
  const deletes = logged(from).filter((c) => c.method === "DELETE").map((c) => c.path.replace(/^\/accounts\/[^/]+/, ""));
  console.log(`teardown: ${logged(from).length} API calls, deletes in order: ${deletes.join(", ")}`);
});
