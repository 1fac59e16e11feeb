// Per-request cost of the Worker: the median time of an authorized `/mcp` request through the
// Worker under Miniflare (workerd, with the origin behind the ORIGIN service binding) against the
// same request sent straight to the origin's tunnel listener with the headers the Worker adds.
// A program that prints numbers, not a test: `scripts/test-edge bench` (or, after the set-up it
// does, `node tests/edge/bench.mjs [iterations]`).
import { startStack } from "./lib/stack.mjs";
import { startWorker } from "./lib/worker.mjs";
import { mcpRequest, tokens, answer } from "./lib/oauth.mjs";
import { TOOL } from "./lib/origin.mjs";

const iterations = Number(process.argv[2] ?? 300);
const warmup = 30;

function stats(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), mean: sorted.reduce((a, b) => a + b, 0) / sorted.length };
}

async function time(url, headers, method, params) {
  const samples = [];
  for (let i = 0; i < warmup + iterations; i++) {
    const request = mcpRequest(method, params, i + 1);
    const started = process.hrtime.bigint();
    const response = await fetch(url, { method: "POST", headers: { ...request.headers, ...headers }, body: request.body });
    const text = await response.text();
    const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
    const message = answer(text, i + 1);
    if (response.status !== 200 || !message?.result) {
      throw new Error(`${method} at ${url}: ${response.status} ${text.slice(0, 300)}`);
    }
    if (i >= warmup) samples.push(elapsed);
  }
  return stats(samples);
}

const fmt = (s) => `p50 ${s.p50.toFixed(2)} ms  p90 ${s.p90.toFixed(2)} ms  p99 ${s.p99.toFixed(2)} ms  mean ${s.mean.toFixed(2)} ms`;

// The origin rate-limits each remote user (300 a minute by default): lift it to the maximum.
// Cold start: Miniflare (workerd) up, then the first request, which compiles and instantiates
// the wasm in a fresh isolate.
{
  const t0 = process.hrtime.bigint();
  const cold = await startWorker({ vars: { ACCESS_TEAM_DOMAIN: "team.example.com", ACCESS_CLIENT_ID: "c", ACCESS_CLIENT_SECRET: "s" } });
  const t1 = process.hrtime.bigint();
  const response = await fetch(`${cold.url}/.well-known/oauth-protected-resource/mcp`);
  await response.arrayBuffer();
  const t2 = process.hrtime.bigint();
  const again = await fetch(`${cold.url}/.well-known/oauth-protected-resource/mcp`);
  await again.arrayBuffer();
  const t3 = process.hrtime.bigint();
  const ms = (a, b) => (Number(b - a) / 1e6).toFixed(1);
  console.log(`cold start: Miniflare ready ${ms(t0, t1)} ms, first request ${ms(t1, t2)} ms (status ${response.status}), second ${ms(t2, t3)} ms`);
  await cold.stop();
}

const startedAt = process.hrtime.bigint();
const stack = await startStack({ rateLimitRpm: 10_000 });
try {
  console.log(`stack (Access stand-in, origin, Worker under Miniflare) up in ${(Number(process.hrtime.bigint() - startedAt) / 1e6).toFixed(0)} ms`);
  // The floor: a Worker answer that touches neither KV nor the origin.
  const floor = [];
  for (let i = 0; i < warmup + iterations; i++) {
    const started = process.hrtime.bigint();
    const response = await fetch(`${stack.worker.url}/.well-known/oauth-protected-resource/mcp`);
    await response.arrayBuffer();
    if (i >= warmup) floor.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  const { access_token: token } = await tokens(stack.worker.url);
  const viaWorker = { authorization: `Bearer ${token}` };
  const direct = { "x-mcpbox-service-token": stack.origin.serviceToken, "x-mcpbox-user-email": "alice@example.com" };
  const directUrl = `${stack.origin.tunnelUrl}/mcp`;
  console.log(`edge benchmark: ${iterations} sequential requests each (after ${warmup} warm-up), keep-alive, one client`);
  console.log(`Worker floor (GET protected-resource metadata, no KV, no origin)  ${fmt(stats(floor))}`);
  for (const [method, params] of [["tools/list", {}], ["tools/call", { name: TOOL, arguments: { city: "Paris" } }]]) {
    const origin = await time(directUrl, direct, method, params);
    const worker = await time(stack.mcpUrl, viaWorker, method, params);
    console.log(`${method}`);
    console.log(`  origin direct   ${fmt(origin)}`);
    console.log(`  through Worker  ${fmt(worker)}`);
    console.log(`  Worker adds     ${(worker.p50 - origin.p50).toFixed(2)} ms at the median`);
  }
} finally {
  await stack.stop();
}
