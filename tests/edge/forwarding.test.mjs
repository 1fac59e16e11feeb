// What the shell does with the core's forwarding decision, seen from outside: with a token from
// the real OAuth flow, `/mcp` reaches the real origin both through the ORIGIN binding (as the VPC
// binding in production) and by a plain fetch of MCPBOX_ORIGIN_URL; streamed (SSE) answers come
// back as streams; client-supplied identity headers never decide who the caller is.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { startStack } from "./lib/stack.mjs";
import { startAccess } from "./lib/access.mjs";
import { freePort, startWorker } from "./lib/worker.mjs";
import { answer, mcpRequest, tokens } from "./lib/oauth.mjs";
import { TOOL } from "./lib/origin.mjs";

for (const viaBinding of [true, false]) {
  const label = viaBinding ? "through the ORIGIN binding" : "by fetching MCPBOX_ORIGIN_URL";

  test(`/mcp ${label}: tools/list, tools/call, a 2025-11-25 session and its SSE stream`, async (t) => {
    const stack = await startStack({ viaBinding });
    t.after(() => stack.stop());
    const { access_token: token } = await tokens(stack.worker.url);
    const auth = { authorization: `Bearer ${token}` };

    const list = mcpRequest("tools/list");
    let response = await fetch(stack.mcpUrl, { method: "POST", headers: { ...list.headers, ...auth }, body: list.body });
    assert.equal(response.status, 200);
    const listed = answer(await response.text());
    assert.ok(listed.result.tools.some((tool) => tool.name === TOOL), JSON.stringify(listed));

    const call = mcpRequest("tools/call", { name: TOOL, arguments: { city: "Oslo" } });
    response = await fetch(stack.mcpUrl, { method: "POST", headers: { ...call.headers, ...auth }, body: call.body });
    assert.equal(response.status, 200);
    const called = answer(await response.text());
    assert.deepEqual(called.result.structuredContent, { hello: "Oslo" }, JSON.stringify(called));

    // A 2025-11-25 session: initialize, then the long-lived GET stream, which must arrive as a
    // stream (headers first, body still open) rather than be buffered by the Worker.
    response = await fetch(stack.mcpUrl, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...auth },
      body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: {
        protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "edge-e2e", version: "1" } } }),
    });
    assert.equal(response.status, 200);
    const session = response.headers.get("mcp-session-id");
    assert.ok(session, "no mcp-session-id came back through the Worker");
    assert.equal(answer(await response.text(), 0).result.protocolVersion, "2025-11-25");
    const sessionHeaders = { ...auth, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25" };
    response = await fetch(stack.mcpUrl, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...sessionHeaders },
      body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
    });
    assert.equal(response.status, 202);
    await response.arrayBuffer();
    const controller = new AbortController();
    const started = Date.now();
    const stream = await fetch(stack.mcpUrl, { headers: { accept: "text/event-stream", ...sessionHeaders }, signal: controller.signal });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get("content-type") ?? "", /text\/event-stream/);
    assert.ok(Date.now() - started < 5000, "the SSE stream's headers took too long: buffered?");
    controller.abort();
    await stream.body?.cancel().catch(() => {});
  });
}

let stack;
before(async () => { stack = await startStack(); });
after(async () => stack?.stop());

/** Identity headers a client might forge: ours, and Cloudflare Access's (in several casings). */
const SPOOFED = {
  "x-mcpbox-user-email": "bob@example.com",
  "x-mcpbox-service-token": "guessed-token-guessed-token-guessed",
  "Cf-Access-Jwt-Assertion": "eyJhbGciOiJub25lIn0.eyJlbWFpbCI6ImJvYkBleGFtcGxlLmNvbSJ9.",
  "Cf-Access-Authenticated-User-Email": "bob@example.com",
  "CF-ACCESS-CLIENT-ID": "forged.access",
  "cf-access-client-secret": "forged-secret",
};

test("a valid token with a spoofed identity header still acts as the signed-in user", async () => {
  // The origin only admits alice@example.com. Bob's email in a client header must be replaced by
  // the Worker with the email from the grant (alice's), so the call succeeds as alice.
  const { access_token: token } = await tokens(stack.worker.url);
  const call = mcpRequest("tools/list");
  const response = await fetch(stack.mcpUrl, {
    method: "POST",
    headers: { ...call.headers, authorization: `Bearer ${token}`, ...SPOOFED },
    body: call.body,
  });
  assert.equal(response.status, 200);
  assert.ok(answer(await response.text()).result.tools);
});

test("client copies of Cf-Access-* and our identity headers never reach the origin", async (t) => {
  // An origin that records what arrives: the real one ignores Cf-Access-* today, so only a
  // recording shows they are gone (and whatever sits behind the tunnel may read them tomorrow).
  const seen = [];
  const recorder = http.createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: 1, result: { tools: [] } }));
    });
  });
  await new Promise((resolve) => recorder.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise((resolve) => { recorder.closeAllConnections(); recorder.close(resolve); }));
  const origin = { tunnelUrl: `http://127.0.0.1:${recorder.address().port}`, serviceToken: "recorder-service-token" };
  for (const viaBinding of [true, false]) {
    const port = await freePort();
    const access = await startAccess({ redirectUri: `http://127.0.0.1:${port}/callback` });
    const worker = await startWorker({ port, origin, access: access.vars, viaBinding });
    try {
      const { access_token: token } = await tokens(worker.url);
      const call = mcpRequest("tools/list");
      const response = await fetch(`${worker.url}/mcp`, {
        method: "POST",
        headers: { ...call.headers, authorization: `Bearer ${token}`, ...SPOOFED },
        body: call.body,
      });
      assert.equal(response.status, 200);
      await response.arrayBuffer();
    } finally {
      await worker.stop();
      await access.stop();
    }
  }
  assert.equal(seen.length, 2);
  for (const headers of seen) {
    const text = JSON.stringify(headers);
    assert.deepEqual(Object.keys(headers).filter((name) => name.startsWith("cf-access-")), [], text);
    assert.equal(headers["x-mcpbox-user-email"], "alice@example.com", text);
    assert.equal(headers["x-mcpbox-service-token"], origin.serviceToken, text);
    assert.ok(!text.includes("bob@example.com") && !text.includes("forged"), text);
  }
});

test("a user Access signs in but the origin does not allow is refused by the origin", async (t) => {
  const other = await startStack({ email: "mallory@example.com" });
  t.after(() => other.stop());
  const { access_token: token } = await tokens(other.worker.url);
  const call = mcpRequest("tools/list");
  const response = await fetch(other.mcpUrl, { method: "POST", headers: { ...call.headers, authorization: `Bearer ${token}` }, body: call.body });
  assert.ok([401, 403].includes(response.status), `status ${response.status}`);
  await response.arrayBuffer();
});

test("CORS preflight on /mcp answers from the Worker", async () => {
  const response = await fetch(stack.mcpUrl, {
    method: "OPTIONS",
    headers: { origin: "http://localhost:6274", "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type, mcp-protocol-version" },
  });
  assert.ok(response.status === 204 || response.status === 200, `status ${response.status}`);
  assert.equal(response.headers.get("access-control-allow-origin"), "http://localhost:6274");
  await response.arrayBuffer();
});
