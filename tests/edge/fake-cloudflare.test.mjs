// The fake Cloudflare API itself: the v4 envelope, paging, the token and its permissions, faults,
// the request log, a script upload running under Miniflare with its bindings, and Access
// policies deciding who signs in. The wizard's end-to-end test (remote-setup.test.mjs) relies on
// all of this behaving as Cloudflare does.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ALL_PERMISSIONS, PERMISSIONS, startFakeCloudflare } from "./lib/fake-cloudflare.mjs";
import { freePort } from "./lib/worker.mjs";
import { authorize, cookieJar } from "./lib/browser.mjs";

let fake;
let dir;
let logFile;
before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "fake-cf-test-"));
  logFile = path.join(dir, "requests.jsonl");
  fake = await startFakeCloudflare({ log: logFile });
});
after(async () => {
  await fake?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function call(method, route, body, token = fake.token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(fake.apiUrl + route, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: response.status, headers: response.headers, body: await response.json() };
}
const acct = (route) => `/accounts/${fake.accountId}${route}`;

test("answers in the v4 envelope and refuses any other token with 401 code 1000", async () => {
  const verified = await call("GET", "/user/tokens/verify");
  assert.equal(verified.status, 200);
  assert.deepEqual(Object.keys(verified.body).sort(), ["errors", "messages", "result", "success"]);
  assert.equal(verified.body.success, true);
  assert.equal(verified.body.result.status, "active");
  const wrong = await call("GET", "/user/tokens/verify", undefined, "not-the-token");
  assert.equal(wrong.status, 401);
  assert.deepEqual(wrong.body, { success: false, errors: [{ code: 1000, message: "Invalid API Token" }], messages: [], result: null });
  assert.equal((await call("GET", "/accounts", undefined, null)).status, 400);
});

test("pages lists with page/per_page and result_info", async () => {
  const names = ["p1", "p2", "p3", "p4", "p5", "p6", "p7"];
  for (const title of names) assert.equal((await call("POST", acct("/storage/kv/namespaces"), { title })).status, 200);
  const seen = [];
  for (let page = 1; page <= 3; page++) {
    const { body } = await call("GET", acct(`/storage/kv/namespaces?page=${page}&per_page=3`));
    assert.deepEqual(body.result_info, { page, per_page: 3, count: page < 3 ? 3 : 1, total_count: 7, total_pages: 3 });
    seen.push(...body.result.map((n) => n.title));
  }
  assert.deepEqual(seen, names);
  const clash = await call("POST", acct("/storage/kv/namespaces"), { title: "p1" });
  assert.equal(clash.status, 400);
  assert.equal(clash.body.errors[0].code, 10014);
  for (const n of fake.state().kv_namespaces) await call("DELETE", acct(`/storage/kv/namespaces/${n.id}`));
  assert.deepEqual(fake.state().kv_namespaces, []);
});

test("a missing permission is 403 code 10000 on that endpoint only", async (t) => {
  t.after(() => fake.setPermissions(ALL_PERMISSIONS));
  fake.setPermissions(ALL_PERMISSIONS.filter((p) => p !== PERMISSIONS.kv));
  const denied = await call("GET", acct("/storage/kv/namespaces?per_page=5"));
  assert.equal(denied.status, 403);
  assert.deepEqual(denied.body.errors, [{ code: 10000, message: "Authentication error" }]);
  assert.equal((await call("GET", acct("/cfd_tunnel?per_page=5"))).status, 200);
});

test("injected faults answer in order, 429 with Retry-After, then the request goes through", async () => {
  const before = fake.requests.length;
  fake.addFault({ method: "GET", path_prefix: acct("/workers/scripts"), statuses: [500, 429] });
  const first = await call("GET", acct("/workers/scripts"));
  assert.equal(first.status, 500);
  assert.equal(first.body.success, false);
  assert.ok(first.body.errors[0].message);
  const second = await call("GET", acct("/workers/scripts"));
  assert.equal(second.status, 429);
  assert.equal(second.headers.get("retry-after"), "1");
  const third = await call("GET", acct("/workers/scripts"));
  assert.equal(third.status, 200);
  // Workers scripts are one page, without result_info, as Cloudflare answers.
  assert.equal(third.body.result_info, undefined);
  const logged = readFileSync(logFile, "utf8").trim().split("\n").map(JSON.parse).slice(before);
  assert.deepEqual(logged.map((e) => [e.method, e.path, e.status]), [
    ["GET", acct("/workers/scripts"), 500], ["GET", acct("/workers/scripts"), 429], ["GET", acct("/workers/scripts"), 200],
  ]);
});

test("an uploaded script runs with its bindings; API KV writes reach it; Access policies decide who signs in", async () => {
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const tunnel = (await call("POST", acct("/cfd_tunnel"), { name: "t", config_src: "cloudflare" })).body.result;
  assert.ok(tunnel.token);
  const service = (await call("POST", acct("/connectivity/directory/services"), {
    name: "origin", type: "http", http_port: 9, host: { ipv4: "127.0.0.1", network: { tunnel_id: tunnel.id } },
  })).body.result;
  const ns = (await call("POST", acct("/storage/kv/namespaces"), { title: "kv" })).body.result;
  const script = `export default { async fetch(request, env) {
    return Response.json({ url: env.MCPBOX_PUBLIC_URL, secret: env.S, doc: await env.OAUTH_KV.get("config:edge"), origin: typeof env.ORIGIN?.fetch });
  } };`;
  const form = new FormData();
  form.append("metadata", new Blob([JSON.stringify({
    main_module: "index.js", compatibility_date: "2026-04-01", bindings: [
      { type: "kv_namespace", name: "OAUTH_KV", namespace_id: ns.id },
      { type: "vpc_service", name: "ORIGIN", service_id: service.service_id },
      { type: "plain_text", name: "MCPBOX_PUBLIC_URL", text: publicUrl },
      { type: "secret_text", name: "S", text: "hush" },
    ],
  })], { type: "application/json" }), "metadata.json");
  form.append("index.js", new Blob([script], { type: "application/javascript+module" }), "index.js");
  const upload = await fetch(fake.apiUrl + acct("/workers/scripts/w"), { method: "PUT", headers: { authorization: `Bearer ${fake.token}` }, body: form });
  assert.equal(upload.status, 200, await upload.clone().text());
  assert.equal((await upload.json()).result.id, "w");
  const logged = fake.requests.at(-1);
  assert.deepEqual(logged.parts.map((p) => [p.name, p.filename, p.content_type]), [
    ["metadata", "metadata.json", "application/json"], ["index.js", "index.js", "application/javascript+module"],
  ]);
  assert.equal(logged.parts[1].size, script.length);
  assert.equal(logged.parts[0].json.bindings.find((b) => b.name === "S").text, "<redacted>");

  await call("PUT", acct(`/storage/kv/namespaces/${ns.id}/bulk`), [{ key: "config:edge", value: "v1" }]);
  const seen = await (await fetch(publicUrl)).json();
  assert.deepEqual(seen, { url: publicUrl, secret: "hush", doc: "v1", origin: "function" });

  const app = (await call("POST", acct("/access/apps"), {
    name: "a", type: "saas", saas_app: { auth_type: "oidc", redirect_uris: [`${publicUrl}/callback`], grant_types: ["authorization_code"], scopes: ["openid", "email"] },
  })).body.result;
  assert.ok(app.saas_app.client_secret, "the secret is returned on creation");
  assert.equal((await call("GET", acct(`/access/apps/${app.id}`))).body.result.saas_app.client_secret, undefined);
  await call("POST", acct(`/access/apps/${app.id}/policies`), { name: "p", decision: "allow", precedence: 1, include: [{ email_domain: { domain: "example.com" } }] });
  const issuer = `${fake.accessUrl}/cdn-cgi/access/sso/oidc/${app.saas_app.client_id}`;
  const start = new URL(`${issuer}/authorization`);
  start.search = new URLSearchParams({
    response_type: "code", client_id: app.saas_app.client_id, redirect_uri: `${publicUrl}/callback`, scope: "openid email", state: "s",
  }).toString();
  fake.setIdentity("bob@example.com");
  const { url } = await authorize(start.href, `${publicUrl}/callback`, { jar: cookieJar() });
  assert.ok(new URL(url).searchParams.get("code"), url);
  fake.setIdentity("eve@evil.test");
  await assert.rejects(authorize(start.href, `${publicUrl}/callback`, { jar: cookieJar() }), /unexpected 403 .*Access denied/s);

  // Deleting the script stops its Miniflare; then nothing this test made is left.
  assert.equal((await call("DELETE", acct("/workers/scripts/w?force=true"))).status, 200);
  await assert.rejects(fetch(publicUrl));
  await call("DELETE", acct(`/access/apps/${app.id}`));
  await call("DELETE", acct(`/storage/kv/namespaces/${ns.id}`));
  await call("DELETE", acct(`/connectivity/directory/services/${service.service_id}`));
  await call("DELETE", acct(`/cfd_tunnel/${tunnel.id}`));
  const state = fake.state();
  for (const kind of ["tunnels", "vpc_services", "kv_namespaces", "workers", "access_apps"]) assert.deepEqual(state[kind], [], kind);
});
