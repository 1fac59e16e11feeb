// The edge worker under Miniflare (workerd), from the bundle edge-worker/build.sh produced.
import net from "node:net";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { Miniflare, Log, LogLevel } from "miniflare";
import { bundleDir, compatibilityDate } from "./env.mjs";

process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";
process.env.WRANGLER_SEND_METRICS = "false";

/** A port nothing listens on right now (the OS picks it). */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** An outbound request of the Worker sent on to the network as it is (redirects not followed). */
async function passThrough(request) {
  const body = ["GET", "HEAD"].includes(request.method) ? undefined : await request.arrayBuffer();
  const response = await fetch(request.url, { method: request.method, headers: request.headers, body, redirect: "manual" });
  return new Response(response.body, { status: response.status, headers: response.headers });
}

/**
 * Start the Worker. Options:
 * - port: where to listen (default: a free one); the public URL is http://127.0.0.1:<port>
 * - origin: { tunnelUrl, serviceToken } from startOrigin
 * - viaBinding: reach the origin through the ORIGIN service binding (as the VPC binding does in
 *   production) instead of a plain fetch of MCPBOX_ORIGIN_URL (default true)
 * - access: the ACCESS_* vars (startAccess().vars)
 * - vars: more vars (override everything else)
 * - outbound: optional (Request) => Response | undefined for the Worker's own outbound fetches
 *   (client ID metadata documents, upstream OIDC); undefined falls through to the network.
 * Resolves to { url, mf, kv, stop() }.
 */
export async function startWorker({ port, origin, viaBinding = true, access, vars = {}, outbound } = {}) {
  port ??= await freePort();
  const url = `http://127.0.0.1:${port}`;
  const bindings = {
    MCPBOX_PUBLIC_URL: url,
    MCPBOX_ORIGIN_URL: origin?.tunnelUrl ?? "http://127.0.0.1:9",
    MCPBOX_SERVICE_TOKEN: origin?.serviceToken ?? randomBytes(24).toString("hex"),
    MCPBOX_ENCRYPTION_KEY: randomBytes(32).toString("hex"),
    ...(access ?? {}),
    ...vars,
  };
  const options = {
    host: "127.0.0.1",
    port,
    modules: true,
    scriptPath: path.join(bundleDir, "index.js"),
    modulesRoot: bundleDir,
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"], fallthrough: true }],
    compatibilityDate,
    cf: false,
    kvNamespaces: ["OAUTH_KV"],
    bindings,
    log: new Log(process.env.MCPBOX_EDGE_TEST_VERBOSE ? LogLevel.DEBUG : LogLevel.WARN),
  };
  if (origin && viaBinding) {
    const tunnel = new URL(origin.tunnelUrl);
    options.serviceBindings = { ORIGIN: { external: { address: tunnel.host, http: {} } } };
  }
  if (outbound) {
    options.outboundService = async (request) => (await outbound(request)) ?? passThrough(request);
  }
  const mf = new Miniflare(options);
  const ready = await mf.ready;
  const kv = await mf.getKVNamespace("OAUTH_KV");
  return {
    url,
    ready: ready.href,
    mf,
    kv,
    vars: bindings,
    stop: () => mf.dispose(),
  };
}
