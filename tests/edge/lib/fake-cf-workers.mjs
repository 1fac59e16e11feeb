// The fake Cloudflare API's Workers runtime: an uploaded script runs under Miniflare (workerd)
// with the bindings it was uploaded with. Each script gets its own Miniflare; all of them keep KV
// in one directory per fake, so a re-upload (a new Miniflare) finds the Worker's own KV records.
import net from "node:net";
import { Miniflare, Log, LogLevel } from "miniflare";

process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";
process.env.WRANGLER_SEND_METRICS = "false";

/** Miniflare module types for the content types the script upload API accepts. */
const MODULE_TYPES = {
  "application/javascript+module": "ESModule",
  "text/javascript+module": "ESModule",
  "application/wasm": "CompiledWasm",
  "text/plain": "Text",
  "application/octet-stream": "Data",
};

export class UploadError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** The Miniflare module list of an upload's parts (everything but `metadata`). */
export function modulesOf(parts, mainModule) {
  const modules = [];
  for (const part of parts) {
    if (part.name === "metadata") continue;
    const type = MODULE_TYPES[(part.content_type ?? "").split(";")[0].trim().toLowerCase()];
    if (!type) {
      throw new UploadError(10021, `Unsupported module type '${part.content_type}' for module '${part.name}'`);
    }
    const path = `/${part.filename ?? part.name}`;
    modules.push({ type, path, contents: type === "ESModule" || type === "Text" ? part.data.toString("utf8") : new Uint8Array(part.data) });
  }
  const main = modules.findIndex((m) => m.path === `/${mainModule}`);
  if (main < 0) throw new UploadError(10021, `No such module "${mainModule}".`);
  if (modules[main].type !== "ESModule") throw new UploadError(10021, `main_module "${mainModule}" is not a JavaScript module`);
  // Miniflare takes the entry point first.
  modules.unshift(...modules.splice(main, 1));
  return modules;
}

/** The port of a loopback http URL (`http://127.0.0.1:<port>`), or null. */
export function loopbackPort(url) {
  const match = /^http:\/\/127\.0\.0\.1:(\d+)\/?$/.exec(url ?? "");
  return match ? Number(match[1]) : null;
}

async function portIsFree(port) {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * Start one Worker. `bindings` are the upload's bindings resolved by the fake:
 * { vars: {NAME: text}, kv: {NAME: namespace_id}, services: {NAME: "host:port"} }.
 * `seed(kvBindingName)` gives the API-written values of a bound namespace ([[key, value]]).
 * Resolves to { mf, url, kv(name), stop() }.
 */
export async function runWorker({ modules, compatibilityDate, bindings, persistDir, seed }) {
  const wanted = loopbackPort(bindings.vars.MCPBOX_PUBLIC_URL);
  // The previous instance of this script may still be releasing the port.
  if (wanted) {
    for (let i = 0; i < 50 && !(await portIsFree(wanted)); i++) await new Promise((r) => setTimeout(r, 100));
  }
  const serviceBindings = {};
  for (const [name, address] of Object.entries(bindings.services)) {
    serviceBindings[name] = { external: { address, http: {} } };
  }
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: wanted ?? 0,
    modules,
    modulesRoot: "/",
    compatibilityDate,
    cf: false,
    kvNamespaces: bindings.kv,
    kvPersist: persistDir,
    bindings: bindings.vars,
    serviceBindings,
    log: new Log(process.env.MCPBOX_EDGE_TEST_VERBOSE ? LogLevel.DEBUG : LogLevel.WARN),
  });
  let ready;
  try {
    ready = await mf.ready;
  } catch (err) {
    await mf.dispose().catch(() => {});
    throw new UploadError(10021, `Uncaught error while starting the Worker: ${err.message}`);
  }
  const worker = {
    mf,
    url: ready.href.replace(/\/$/, ""),
    kv: (name) => mf.getKVNamespace(name),
    stop: () => mf.dispose(),
  };
  for (const name of Object.keys(bindings.kv)) {
    const namespace = await worker.kv(name);
    for (const [key, value] of seed(name)) await namespace.put(key, value);
  }
  return worker;
}
