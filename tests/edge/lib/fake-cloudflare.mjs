// A fake of the Cloudflare API v4 for the remote set-up wizard's tests (/work/notes contract,
// issue #12), on one loopback HTTP server:
//   /client/v4/…                          the API: the v4 envelope, page/per_page paging, one
//                                         accepted token with a set of permissions (403 code 10000
//                                         on an endpoint it lacks), faults on request;
//   /cdn-cgi/access/sso/oidc/<client_id>  Access for SaaS: an oidc-provider per OIDC app, its
//                                         policies deciding who signs in;
//   /__fake/…                             test controls: state, faults (status 0: never answer),
//                                         identity, pre-created resources, the token's permissions,
//                                         more accounts.
// Backed by real parts: an uploaded Worker script runs under Miniflare with its uploaded bindings
// (vars, secrets, KV, the VPC service as a service binding to its host:port), and KV writes
// through the API land in that Miniflare's KV. With `log` (or MCPBOX_FAKE_CF_LOG) every API
// request is appended to that file as one JSON line: method, path (below /client/v4), query,
// body (JSON) or, for multipart, parts [{name, filename, content_type, size, json?}] with
// secret_text values redacted; plus the status answered.
import http from "node:http";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { boundaryOf, parseMultipart } from "./multipart.mjs";
import { UploadError, modulesOf, runWorker } from "./fake-cf-workers.mjs";
import { ACCESS_PREFIX, accessProvider } from "./fake-cf-access.mjs";

export const API_PREFIX = "/client/v4";

/** The permission each endpoint family needs (names as Cloudflare's token editor shows them). */
export const PERMISSIONS = {
  tunnel: "Cloudflare Tunnel Edit",
  vpc: "Connectivity Directory Admin",
  kv: "Workers KV Storage Edit",
  workers: "Workers Scripts Edit",
  accessOrganization: "Access: Organizations, Identity Providers, and Groups Read",
  accessApps: "Access: Apps and Policies Edit",
};
export const ALL_PERMISSIONS = Object.values(PERMISSIONS);

/** A Cloudflare-shaped failure: HTTP status, error code and message. */
class ApiError extends Error {
  constructor(status, code, message, headers = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

const FAULT_ERRORS = {
  429: [971, "Please wait and consider throttling your request speed"],
  500: [10013, "An unknown error has occurred. Please try again later."],
  502: [10013, "Bad gateway"],
  503: [10013, "Service temporarily unavailable"],
};

const now = () => new Date().toISOString();
const hex = (bytes) => randomBytes(bytes).toString("hex");
const envelope = (result, resultInfo) => ({
  success: true, errors: [], messages: [], result, ...(resultInfo ? { result_info: resultInfo } : {}),
});
const failure = (code, message) => ({ success: false, errors: [{ code, message }], messages: [], result: null });

/** One page of `items` for ?page=&per_page= (Cloudflare's V4PagePaginationArray). */
function paged(items, query, defaultPerPage = 20) {
  const page = Math.max(1, Number.parseInt(query.page ?? "1", 10) || 1);
  const perPage = Math.min(1000, Math.max(1, Number.parseInt(query.per_page ?? String(defaultPerPage), 10) || defaultPerPage));
  const slice = items.slice((page - 1) * perPage, page * perPage);
  return {
    body: envelope(slice, {
      page, per_page: perPage, count: slice.length, total_count: items.length,
      total_pages: Math.max(1, Math.ceil(items.length / perPage)),
    }),
  };
}

function requireString(value, field, max = 512) {
  if (typeof value !== "string" || value.trim() === "" || value.length > max) {
    throw new ApiError(400, 1001, `${field} is required and must be a non-empty string of at most ${max} characters`);
  }
  return value;
}

function requirePort(value, field) {
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new ApiError(400, 1001, `${field} must be an integer port (1-65535)`);
  }
  return value;
}

/**
 * Start the fake. Options: token (default random), permissions (default all), accounts
 * ([{id, name, type}], default one), teamDomain, subdomain (workers.dev), log (file), port.
 * Resolves to { url, apiUrl, accessUrl, token, accountId, state(), requests, stop(), … }.
 */
export async function startFakeCloudflare({
  token = `fake-${hex(20)}`,
  permissions = ALL_PERMISSIONS,
  accounts = [{ id: hex(16), name: "MCPbox Test Account", type: "standard" }],
  teamDomain = "team.cloudflareaccess.com",
  subdomain = "mcpbox-test",
  log = process.env.MCPBOX_FAKE_CF_LOG,
  port = 0,
} = {}) {
  const persistDir = mkdtempSync(path.join(os.tmpdir(), "fake-cf-kv-"));
  const granted = new Set(permissions);
  const tunnels = new Map();
  const services = new Map();
  const namespaces = new Map(); // id → {id, title, supports_url_encoding, values: Map}
  const scripts = new Map(); // name → record (with .worker when running)
  const apps = new Map(); // id → record (with .policies, .provider)
  const faults = [];
  const logins = [];
  const requests = [];
  const precreated = new Set();
  let identity = null;
  let base;

  const organization = {
    auth_domain: teamDomain, name: teamDomain.split(".")[0], login_design: {},
    is_ui_read_only: false, auto_redirect_to_identity: false, session_duration: "24h",
    created_at: now(), updated_at: now(),
  };

  function account(id) {
    if (!accounts.some((a) => a.id === id)) {
      throw new ApiError(404, 7003, `Could not route to /accounts/${id}, perhaps your object identifier is invalid?`);
    }
    return id;
  }

  // --- tunnels -------------------------------------------------------------------------------
  function tunnelView(t) {
    const { secret: _secret, ...view } = t;
    return view;
  }
  function liveTunnel(a, id) {
    const t = tunnels.get(id);
    if (!t || t.account_tag !== a || t.deleted_at) throw new ApiError(404, 1003, "Tunnel not found.");
    return t;
  }
  function createTunnel(a, body) {
    const name = requireString(body?.name, "name");
    if ([...tunnels.values()].some((t) => t.account_tag === a && !t.deleted_at && t.name === name)) {
      throw new ApiError(409, 1013, "You already have a tunnel with this name.");
    }
    const configSrc = body.config_src ?? "local";
    if (!["cloudflare", "local"].includes(configSrc)) throw new ApiError(400, 1001, "config_src must be cloudflare or local");
    const id = randomUUID();
    const t = {
      id, account_tag: a, created_at: now(), deleted_at: null, name, connections: [],
      conns_active_at: null, conns_inactive_at: null, tun_type: "cfd_tunnel", metadata: {},
      status: "inactive", remote_config: configSrc === "cloudflare", config_src: configSrc,
      secret: randomBytes(32).toString("base64"),
    };
    tunnels.set(id, t);
    return t;
  }
  const tunnelToken = (t) => Buffer.from(JSON.stringify({ a: t.account_tag, t: t.id, s: t.secret })).toString("base64");

  // --- Workers VPC services --------------------------------------------------------------------
  function serviceBody(a, body, existing) {
    const name = requireString(body?.name, "name");
    if ((body.type ?? "http") !== "http" && body.type !== "tcp") throw new ApiError(400, 1001, "type must be http or tcp");
    const host = body.host;
    const tunnelId = host?.network?.tunnel_id ?? host?.resolver_network?.tunnel_id;
    const address = host?.ipv4 ?? host?.ipv6 ?? host?.hostname;
    if (!host || typeof tunnelId !== "string" || typeof address !== "string") {
      throw new ApiError(400, 1001, "host must be {ipv4|ipv6, network:{tunnel_id}} or {hostname, resolver_network:{tunnel_id}}");
    }
    liveTunnel(a, tunnelId);
    if ([...services.values()].some((s) => s.account_id === a && s.name === name && s !== existing)) {
      throw new ApiError(409, 1002, `A service named '${name}' already exists`);
    }
    const service = {
      service_id: existing?.service_id ?? randomUUID(), name, type: body.type ?? "http", host,
      http_port: requirePort(body.http_port ?? 80, "http_port"),
      ...(body.https_port !== undefined ? { https_port: requirePort(body.https_port, "https_port") } : {}),
      created_at: existing?.created_at ?? now(), updated_at: now(),
    };
    Object.defineProperty(service, "account_id", { value: a, enumerable: false });
    return service;
  }
  function liveService(a, id) {
    const s = services.get(id);
    if (!s || s.account_id !== a) throw new ApiError(404, 1002, "Service not found");
    return s;
  }
  const serviceAddress = (s) => {
    const host = s.host.ipv4 ?? (s.host.ipv6 ? `[${s.host.ipv6}]` : s.host.hostname);
    return `${host}:${s.http_port}`;
  };

  // --- KV ----------------------------------------------------------------------------------------
  function createNamespace(a, body) {
    const title = requireString(body?.title, "title");
    if ([...namespaces.values()].some((n) => n.account_id === a && n.title === title)) {
      throw new ApiError(400, 10014, "A namespace with this account ID and title already exists");
    }
    const ns = { id: hex(16), title, supports_url_encoding: true };
    Object.defineProperty(ns, "account_id", { value: a, enumerable: false });
    Object.defineProperty(ns, "values", { value: new Map(), enumerable: false });
    namespaces.set(ns.id, ns);
    return ns;
  }
  function liveNamespace(a, id) {
    const ns = namespaces.get(id);
    if (!ns || ns.account_id !== a) throw new ApiError(404, 10013, "namespace not found");
    return ns;
  }
  /** Running Workers bound to a namespace, with the binding names. */
  function boundTo(namespaceId) {
    const out = [];
    for (const script of scripts.values()) {
      for (const b of script.bindings ?? []) {
        if (b.type === "kv_namespace" && b.namespace_id === namespaceId && script.worker) out.push([script.worker, b.name]);
      }
    }
    return out;
  }

  // --- Worker scripts ---------------------------------------------------------------------------
  function resolveBindings(a, bindings) {
    if (!Array.isArray(bindings)) throw new ApiError(400, 10021, "metadata.bindings must be an array");
    const out = { vars: {}, kv: {}, services: {} };
    for (const b of bindings) {
      if (typeof b?.name !== "string" || !b.name) throw new ApiError(400, 10021, "a binding without a name");
      switch (b.type) {
        case "plain_text":
        case "secret_text":
          if (typeof b.text !== "string") throw new ApiError(400, 10021, `binding ${b.name}: text must be a string`);
          out.vars[b.name] = b.text;
          break;
        case "kv_namespace":
          if (!namespaces.has(b.namespace_id) || namespaces.get(b.namespace_id).account_id !== a) {
            throw new ApiError(400, 10041, `KV namespace '${b.namespace_id}' is not valid.`);
          }
          out.kv[b.name] = b.namespace_id;
          break;
        case "vpc_service": {
          const service = services.get(b.service_id);
          if (!service || service.account_id !== a) {
            throw new ApiError(400, 10021, `binding ${b.name}: VPC service '${b.service_id}' not found`);
          }
          out.services[b.name] = serviceAddress(service);
          break;
        }
        default:
          throw new ApiError(400, 10021, `binding ${b.name}: unsupported binding type '${b.type}'`);
      }
    }
    return out;
  }
  async function startScript(a, script) {
    script.worker = await runWorker({
      modules: script.modules,
      compatibilityDate: script.compatibility_date,
      bindings: resolveBindings(a, script.bindings),
      persistDir,
      seed: (name) => {
        const id = script.bindings.find((b) => b.type === "kv_namespace" && b.name === name).namespace_id;
        return [...namespaces.get(id).values];
      },
    });
  }
  async function stopScript(script) {
    const worker = script.worker;
    script.worker = null;
    if (worker) await worker.stop();
  }
  function scriptView(s) {
    return {
      id: s.id, tag: s.tag, etag: s.etag, handlers: ["fetch"], compatibility_date: s.compatibility_date,
      usage_model: "standard", has_modules: true, has_assets: false, created_on: s.created_on, modified_on: s.modified_on,
    };
  }
  async function uploadScript(a, name, req, rawBody) {
    const boundary = boundaryOf(req.headers["content-type"]);
    if (!boundary) throw new ApiError(400, 10001, "Content-Type must be multipart/form-data");
    let parts;
    try {
      parts = parseMultipart(rawBody, boundary);
    } catch (err) {
      throw new ApiError(400, 10001, `malformed multipart body: ${err.message}`);
    }
    const metadataPart = parts.find((p) => p.name === "metadata");
    let metadata;
    try {
      metadata = JSON.parse(metadataPart.data.toString("utf8"));
    } catch {
      throw new ApiError(400, 10021, "the metadata part is missing or not JSON");
    }
    if (typeof metadata.main_module !== "string") throw new ApiError(400, 10021, "metadata.main_module is required");
    let modules;
    try {
      modules = modulesOf(parts, metadata.main_module);
    } catch (err) {
      if (err instanceof UploadError) throw new ApiError(400, err.code, err.message);
      throw err;
    }
    resolveBindings(a, metadata.bindings ?? []);
    const previous = scripts.get(name);
    const script = {
      id: name, tag: previous?.tag ?? hex(16),
      etag: createHash("sha256").update(rawBody).digest("hex"),
      created_on: previous?.created_on ?? now(), modified_on: now(),
      compatibility_date: metadata.compatibility_date ?? "2026-04-01",
      bindings: metadata.bindings ?? [], observability: metadata.observability ?? null,
      modules, module_parts: parts.filter((p) => p.name !== "metadata").map((p) => ({
        name: p.name, filename: p.filename, content_type: p.content_type, size: p.data.length,
        sha256: createHash("sha256").update(p.data).digest("hex"),
      })),
      subdomain: previous?.subdomain ?? { enabled: false, previews_enabled: false },
      worker: null,
    };
    Object.defineProperty(script, "account_id", { value: a, enumerable: false });
    if (previous) await stopScript(previous);
    try {
      await startScript(a, script);
    } catch (err) {
      // A script that does not start is refused and the previous version keeps running.
      if (previous?.modules) await startScript(a, previous).catch(() => {});
      if (err instanceof UploadError) throw new ApiError(400, err.code, err.message);
      throw err;
    }
    scripts.set(name, script);
    return { ...scriptView(script), startup_time_ms: 1 };
  }
  function liveScript(a, name) {
    const s = scripts.get(name);
    if (!s || s.account_id !== a) throw new ApiError(404, 10007, `This Worker does not exist on your account.`);
    return s;
  }

  // --- Access apps and policies --------------------------------------------------------------------
  function appBody(body, existing) {
    const name = requireString(body?.name, "name");
    const type = body.type ?? existing?.type;
    if (type !== "saas") throw new ApiError(400, 12130, "access.api.error.invalid_request: only type saas is supported by this fake");
    const saas = body.saas_app ?? {};
    if (saas.auth_type !== "oidc") throw new ApiError(400, 12130, "access.api.error.invalid_request: saas_app.auth_type must be oidc");
    const redirectUris = saas.redirect_uris;
    if (!Array.isArray(redirectUris) || redirectUris.length === 0 || redirectUris.some((u) => {
      try { new URL(u); return false; } catch { return true; }
    })) {
      throw new ApiError(400, 12130, "access.api.error.invalid_request: saas_app.redirect_uris must be a non-empty list of URLs");
    }
    return {
      id: existing?.id ?? randomUUID(), name, type, domain: existing?.domain ?? `${teamDomain}/cdn-cgi/access/sso/oidc`,
      aud: existing?.aud ?? hex(32), session_duration: "24h",
      saas_app: {
        auth_type: "oidc", redirect_uris: redirectUris,
        grant_types: saas.grant_types ?? ["authorization_code"], scopes: saas.scopes ?? ["openid", "email", "profile"],
        client_id: existing?.saas_app.client_id ?? hex(32), client_secret: existing?.saas_app.client_secret ?? hex(32),
        app_launcher_url: saas.app_launcher_url, group_filter_regex: saas.group_filter_regex,
        public_key: existing?.saas_app.public_key ?? hex(16), created_at: existing?.saas_app.created_at ?? now(), updated_at: now(),
      },
      created_at: existing?.created_at ?? now(), updated_at: now(),
    };
  }
  /** What the API shows of an app: Access returns the client secret only when it creates the app. */
  function appView(app, withSecret = false) {
    const { client_secret: secret, ...saas } = app.saas_app;
    return {
      ...app.record, saas_app: withSecret ? { ...saas, client_secret: secret } : saas,
      policies: app.policies.map((p) => ({ ...p })),
    };
  }
  function installApp(record, existing) {
    const app = existing ?? { policies: [], account_id: null };
    app.record = { ...record };
    delete app.record.saas_app;
    app.saas_app = record.saas_app;
    app.provider = accessProvider({
      base, identity: () => identity, events: logins,
      app: () => ({ saas_app: app.saas_app, policies: app.policies }),
    });
    apps.set(record.id, app);
    return app;
  }
  function liveApp(a, id) {
    const app = apps.get(id);
    if (!app || app.account_id !== a) throw new ApiError(404, 12130, "access.api.error.not_found: application not found");
    return app;
  }
  function policyBody(body, existing) {
    const name = requireString(body?.name, "name");
    const decision = body.decision ?? existing?.decision;
    if (!["allow", "deny", "bypass", "non_identity"].includes(decision)) {
      throw new ApiError(400, 12130, "access.api.error.invalid_request: decision must be allow, deny, bypass or non_identity");
    }
    const known = (rule) => rule && typeof rule === "object" && (
      (rule.email && typeof rule.email.email === "string") ||
      (rule.email_domain && typeof rule.email_domain.domain === "string") ||
      (rule.everyone && typeof rule.everyone === "object"));
    for (const field of ["include", "exclude", "require"]) {
      const rules = body[field] ?? [];
      if (!Array.isArray(rules) || !rules.every(known)) {
        throw new ApiError(400, 12130, `access.api.error.invalid_request: ${field} must be a list of email, email_domain or everyone rules`);
      }
    }
    if (!Array.isArray(body.include) || body.include.length === 0) {
      throw new ApiError(400, 12130, "access.api.error.invalid_request: a policy needs at least one include rule");
    }
    return {
      id: existing?.id ?? randomUUID(), name, decision, precedence: body.precedence ?? existing?.precedence ?? 1,
      include: body.include, exclude: body.exclude ?? [], require: body.require ?? [],
      reusable: false, app_count: 1, created_at: existing?.created_at ?? now(), updated_at: now(),
    };
  }

  // --- the API's routes ---------------------------------------------------------------------------
  const A = "/accounts/([^/]+)";
  const routes = [
    ["GET", /^\/user\/tokens\/verify$/, null, () => ({ body: envelope({ id: tokenId, status: "active" }) })],
    ["GET", /^\/accounts$/, null, ({ query }) => paged(accounts.map((a) => ({ ...a, settings: {}, created_on: "2026-01-01T00:00:00Z" })), query)],
    ["GET", new RegExp(`^${A}/access/organizations$`), "accessOrganization", ({ a }) => {
      if (!organization) throw new ApiError(404, 12130, "access.api.error.not_found: no Access organization");
      return { body: envelope(organization) };
    }],
    // Tunnels
    ["GET", new RegExp(`^${A}/cfd_tunnel$`), "tunnel", ({ a, query }) => {
      let list = [...tunnels.values()].filter((t) => t.account_tag === a);
      if (query.name !== undefined) list = list.filter((t) => t.name === query.name);
      if (query.uuid !== undefined) list = list.filter((t) => t.id === query.uuid);
      if (query.is_deleted === "false") list = list.filter((t) => !t.deleted_at);
      if (query.is_deleted === "true") list = list.filter((t) => t.deleted_at);
      return paged(list.map(tunnelView), query);
    }],
    ["POST", new RegExp(`^${A}/cfd_tunnel$`), "tunnel", ({ a, body }) => {
      const t = createTunnel(a, body);
      return { body: envelope({ ...tunnelView(t), token: tunnelToken(t) }) };
    }],
    ["GET", new RegExp(`^${A}/cfd_tunnel/([^/]+)$`), "tunnel", ({ a, params }) => ({ body: envelope(tunnelView(liveTunnel(a, params[1]))) })],
    ["GET", new RegExp(`^${A}/cfd_tunnel/([^/]+)/token$`), "tunnel", ({ a, params }) => ({ body: envelope(tunnelToken(liveTunnel(a, params[1]))) })],
    ["GET", new RegExp(`^${A}/cfd_tunnel/([^/]+)/connections$`), "tunnel", ({ a, params }) => {
      const t = liveTunnel(a, params[1]);
      return { body: envelope(t.connections.length ? [{ id: t.id, features: [], version: t.connections[0].client_version, arch: "linux_amd64", conns: t.connections, run_at: t.conns_active_at, config_version: 1 }] : []) };
    }],
    ["DELETE", new RegExp(`^${A}/cfd_tunnel/([^/]+)/connections$`), "tunnel", ({ a, params }) => {
      const t = liveTunnel(a, params[1]);
      t.connections = [];
      t.status = "inactive";
      t.conns_inactive_at = now();
      return { body: envelope(null) };
    }],
    ["DELETE", new RegExp(`^${A}/cfd_tunnel/([^/]+)$`), "tunnel", ({ a, params }) => {
      const t = liveTunnel(a, params[1]);
      if (t.connections.length) {
        throw new ApiError(400, 1022, "Cannot delete tunnel because it has active connections. Clean up the connections first.");
      }
      t.deleted_at = now();
      t.status = "deleted";
      return { body: envelope(tunnelView(t)) };
    }],
    // Workers VPC services
    ["GET", new RegExp(`^${A}/connectivity/directory/services$`), "vpc", ({ a, query }) =>
      paged([...services.values()].filter((s) => s.account_id === a), query)],
    ["POST", new RegExp(`^${A}/connectivity/directory/services$`), "vpc", ({ a, body }) => {
      const s = serviceBody(a, body);
      services.set(s.service_id, s);
      return { body: envelope(s) };
    }],
    ["GET", new RegExp(`^${A}/connectivity/directory/services/([^/]+)$`), "vpc", ({ a, params }) => ({ body: envelope(liveService(a, params[1])) })],
    ["PUT", new RegExp(`^${A}/connectivity/directory/services/([^/]+)$`), "vpc", async ({ a, params, body }) => {
      const s = serviceBody(a, body, liveService(a, params[1]));
      services.set(s.service_id, s);
      // Running Workers bound to it now reach the new address.
      for (const script of scripts.values()) {
        if (script.worker && script.bindings.some((b) => b.type === "vpc_service" && b.service_id === s.service_id)) {
          await stopScript(script);
          await startScript(a, script);
        }
      }
      return { body: envelope(s) };
    }],
    ["DELETE", new RegExp(`^${A}/connectivity/directory/services/([^/]+)$`), "vpc", ({ a, params }) => {
      const s = liveService(a, params[1]);
      services.delete(s.service_id);
      return { body: envelope(null) };
    }],
    // KV
    ["GET", new RegExp(`^${A}/storage/kv/namespaces$`), "kv", ({ a, query }) =>
      paged([...namespaces.values()].filter((n) => n.account_id === a), query)],
    ["POST", new RegExp(`^${A}/storage/kv/namespaces$`), "kv", ({ a, body }) => ({ body: envelope(createNamespace(a, body)) })],
    ["DELETE", new RegExp(`^${A}/storage/kv/namespaces/([^/]+)$`), "kv", ({ a, params }) => {
      namespaces.delete(liveNamespace(a, params[1]).id);
      return { body: envelope({}) };
    }],
    ["PUT", new RegExp(`^${A}/storage/kv/namespaces/([^/]+)/bulk$`), "kv", async ({ a, params, body }) => {
      const ns = liveNamespace(a, params[1]);
      if (!Array.isArray(body) || body.length > 10000) throw new ApiError(400, 10012, "the body must be an array of at most 10000 key-value pairs");
      for (const item of body) {
        if (typeof item?.key !== "string" || !item.key || Buffer.byteLength(item.key) > 512) throw new ApiError(400, 10019, "a key must be a string of 1-512 bytes");
        if (typeof item.value !== "string") throw new ApiError(400, 10012, `the value of '${item.key}' must be a string`);
      }
      for (const { key, value } of body) {
        ns.values.set(key, value);
        for (const [worker, binding] of boundTo(ns.id)) await (await worker.kv(binding)).put(key, value);
      }
      return { body: envelope({ successful_key_count: body.length, unsuccessful_keys: [] }) };
    }],
    ["GET", new RegExp(`^${A}/storage/kv/namespaces/([^/]+)/values/(.+)$`), "kv", ({ a, params }) => {
      const ns = liveNamespace(a, params[1]);
      const key = decodeURIComponent(params[2]);
      if (!ns.values.has(key)) throw new ApiError(404, 10009, "get: 'key not found'");
      return { raw: ns.values.get(key) };
    }],
    // Workers
    ["GET", new RegExp(`^${A}/workers/subdomain$`), "workers", () => ({ body: envelope({ subdomain }) })],
    // Cloudflare lists scripts as one page (no result_info).
    ["GET", new RegExp(`^${A}/workers/scripts$`), "workers", ({ a }) =>
      ({ body: envelope([...scripts.values()].filter((s) => s.account_id === a).map(scriptView)) })],
    ["PUT", new RegExp(`^${A}/workers/scripts/([^/]+)$`), "workers", async ({ a, params, req, raw }) =>
      ({ body: envelope(await uploadScript(a, decodeURIComponent(params[1]), req, raw)) })],
    ["DELETE", new RegExp(`^${A}/workers/scripts/([^/]+)$`), "workers", async ({ a, params }) => {
      const s = liveScript(a, decodeURIComponent(params[1]));
      await stopScript(s);
      scripts.delete(s.id);
      return { body: envelope(null) };
    }],
    ["GET", new RegExp(`^${A}/workers/scripts/([^/]+)/subdomain$`), "workers", ({ a, params }) =>
      ({ body: envelope(liveScript(a, decodeURIComponent(params[1])).subdomain) })],
    ["POST", new RegExp(`^${A}/workers/scripts/([^/]+)/subdomain$`), "workers", ({ a, params, body }) => {
      const s = liveScript(a, decodeURIComponent(params[1]));
      if (typeof body?.enabled !== "boolean") throw new ApiError(400, 10021, "enabled must be a boolean");
      s.subdomain = { enabled: body.enabled, previews_enabled: body.previews_enabled ?? body.enabled };
      return { body: envelope(s.subdomain) };
    }],
    // Access apps and their policies
    ["GET", new RegExp(`^${A}/access/apps$`), "accessApps", ({ a, query }) =>
      paged([...apps.values()].filter((app) => app.account_id === a).map((app) => appView(app)), query)],
    ["POST", new RegExp(`^${A}/access/apps$`), "accessApps", ({ a, body }) => {
      const app = installApp(appBody(body));
      app.account_id = a;
      return { body: envelope(appView(app, true)) };
    }],
    ["GET", new RegExp(`^${A}/access/apps/([^/]+)$`), "accessApps", ({ a, params }) => ({ body: envelope(appView(liveApp(a, params[1]))) })],
    ["PUT", new RegExp(`^${A}/access/apps/([^/]+)$`), "accessApps", ({ a, params, body }) => {
      const existing = liveApp(a, params[1]);
      installApp(appBody(body, { ...existing.record, saas_app: existing.saas_app }), existing);
      return { body: envelope(appView(existing)) };
    }],
    ["DELETE", new RegExp(`^${A}/access/apps/([^/]+)$`), "accessApps", ({ a, params }) => {
      const app = liveApp(a, params[1]);
      apps.delete(app.record.id);
      return { body: envelope({ id: app.record.id }) };
    }],
    ["GET", new RegExp(`^${A}/access/apps/([^/]+)/policies$`), "accessApps", ({ a, params, query }) =>
      paged(liveApp(a, params[1]).policies, query)],
    ["POST", new RegExp(`^${A}/access/apps/([^/]+)/policies$`), "accessApps", ({ a, params, body }) => {
      const app = liveApp(a, params[1]);
      const policy = policyBody(body);
      app.policies.push(policy);
      return { body: envelope(policy) };
    }],
    ["PUT", new RegExp(`^${A}/access/apps/([^/]+)/policies/([^/]+)$`), "accessApps", ({ a, params, body }) => {
      const app = liveApp(a, params[1]);
      const index = app.policies.findIndex((p) => p.id === params[2]);
      if (index < 0) throw new ApiError(404, 12130, "access.api.error.not_found: policy not found");
      app.policies[index] = policyBody(body, app.policies[index]);
      return { body: envelope(app.policies[index]) };
    }],
    ["DELETE", new RegExp(`^${A}/access/apps/([^/]+)/policies/([^/]+)$`), "accessApps", ({ a, params }) => {
      const app = liveApp(a, params[1]);
      const index = app.policies.findIndex((p) => p.id === params[2]);
      if (index < 0) throw new ApiError(404, 12130, "access.api.error.not_found: policy not found");
      app.policies.splice(index, 1);
      return { body: envelope({ id: params[2] }) };
    }],
  ];
  const tokenId = hex(16);

  // --- the request log -------------------------------------------------------------------------------
  function logEntry(method, apiPath, query, req, raw) {
    const entry = { method, path: apiPath, query };
    const boundary = boundaryOf(req.headers["content-type"]);
    if (boundary) {
      try {
        entry.parts = parseMultipart(raw, boundary).map((p) => {
          const part = { name: p.name, filename: p.filename, content_type: p.content_type, size: p.data.length };
          if (p.name === "metadata") {
            try {
              const json = JSON.parse(p.data.toString("utf8"));
              for (const b of json.bindings ?? []) if (b?.type === "secret_text") b.text = "<redacted>";
              part.json = json;
            } catch { /* logged without json */ }
          }
          return part;
        });
      } catch {
        entry.parts = null;
      }
    } else if (raw.length) {
      try { entry.body = JSON.parse(raw.toString("utf8")); } catch { entry.body = null; }
    }
    return entry;
  }
  function record(entry) {
    requests.push(entry);
    if (log) appendFileSync(log, `${JSON.stringify(entry)}\n`);
  }

  // --- dispatch ------------------------------------------------------------------------------------------
  async function api(req, res, raw) {
    const url = new URL(req.url, base);
    const apiPath = url.pathname.slice(API_PREFIX.length) || "/";
    const query = Object.fromEntries(url.searchParams);
    const entry = logEntry(req.method, apiPath, query, req, raw);
    const send = (status, body, headers = {}) => {
      entry.status = status;
      record(entry);
      const text = typeof body === "string" ? body : JSON.stringify(body);
      res.writeHead(status, { "content-type": typeof body === "string" ? "application/octet-stream" : "application/json", ...headers });
      res.end(text);
    };
    try {
      const fault = faults.findIndex((f) => (!f.method || f.method.toUpperCase() === req.method) && apiPath.startsWith(f.path_prefix));
      if (fault >= 0) {
        const status = faults[fault].statuses.shift();
        if (!faults[fault].statuses.length) faults.splice(fault, 1);
        if (status === 0) {
          // "Never answers": logged now with status 0; the connection is held until the client
          // gives up or the fake stops (a crash test kills the origin meanwhile).
          entry.status = 0;
          record(entry);
          return;
        }
        const [code, message] = FAULT_ERRORS[status] ?? [10000 + status, `Injected failure ${status}`];
        throw new ApiError(status, code, message, status === 429 ? { "retry-after": "1" } : {});
      }
      const auth = req.headers.authorization;
      if (!auth) throw new ApiError(400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers");
      if (auth !== `Bearer ${token}`) throw new ApiError(401, 1000, "Invalid API Token");
      const route = routes.find(([method, pattern]) => method === req.method && pattern.test(apiPath));
      if (!route) {
        const known = routes.some(([, pattern]) => pattern.test(apiPath));
        throw new ApiError(known ? 405 : 404, known ? 10405 : 7000, known ? "Method not allowed" : "No route for that URI");
      }
      const [, pattern, permission, handler] = route;
      const params = pattern.exec(apiPath).slice(1);
      if (permission && !granted.has(PERMISSIONS[permission])) throw new ApiError(403, 10000, "Authentication error");
      const a = apiPath.startsWith("/accounts/") ? account(params[0]) : null;
      let body = null;
      if (!boundaryOf(req.headers["content-type"]) && raw.length) {
        try { body = JSON.parse(raw.toString("utf8")); } catch { throw new ApiError(400, 6007, "Malformed JSON in request body"); }
      }
      const answer = await handler({ a, params, query, body, req, raw });
      if (answer.raw !== undefined) send(200, answer.raw);
      else send(200, answer.body);
    } catch (err) {
      if (err instanceof ApiError) send(err.status, failure(err.code, err.message), err.headers);
      else {
        console.error("[fake cloudflare]", err);
        send(500, failure(10013, `fake Cloudflare failed: ${err.message}`));
      }
    }
  }

  function state() {
    const liveTunnels = [...tunnels.values()].filter((t) => !t.deleted_at);
    const mark = (kind, id, view) => ({ ...view, precreated: precreated.has(`${kind}:${id}`) });
    return {
      token, permissions: [...granted], accounts, organization, workers_subdomain: subdomain,
      tunnels: liveTunnels.map((t) => mark("tunnel", t.id, { ...tunnelView(t), token: tunnelToken(t) })),
      deleted_tunnels: [...tunnels.values()].filter((t) => t.deleted_at).map((t) => t.id),
      vpc_services: [...services.values()].map((s) => mark("vpc_service", s.service_id, s)),
      kv_namespaces: [...namespaces.values()].map((n) => mark("kv_namespace", n.id, { ...n, values: Object.fromEntries(n.values) })),
      workers: [...scripts.values()].map((s) => mark("worker", s.id, {
        ...scriptView(s), url: s.worker?.url ?? null, running: Boolean(s.worker),
        workers_dev_url: `https://${s.id}.${subdomain}.workers.dev`, subdomain: s.subdomain,
        bindings: s.bindings, modules: s.module_parts, observability: s.observability,
      })),
      access_apps: [...apps.values()].map((app) => mark("access_app", app.record.id, {
        ...appView(app, true), issuer: app.provider.issuer,
      })),
      access: { identity, logins: [...logins] },
      faults: faults.map((f) => ({ ...f, statuses: [...f.statuses] })),
    };
  }

  /** Pre-create a resource, as if someone else made it (for name clash tests). */
  async function precreate(body) {
    const a = account(body?.account_id ?? accounts[0].id);
    let kind = body?.kind;
    let view;
    switch (kind) {
      case "tunnel": {
        const t = createTunnel(a, { name: body.name, config_src: "cloudflare" });
        view = { ...tunnelView(t) };
        precreated.add(`tunnel:${t.id}`);
        break;
      }
      case "vpc_service": {
        const tunnelId = body.tunnel_id ?? createTunnel(a, { name: `${body.name}-tunnel`, config_src: "cloudflare" }).id;
        if (!body.tunnel_id) precreated.add(`tunnel:${tunnelId}`);
        const s = serviceBody(a, { name: body.name, type: "http", http_port: body.http_port ?? 8080, host: { ipv4: "127.0.0.1", network: { tunnel_id: tunnelId } } });
        services.set(s.service_id, s);
        precreated.add(`vpc_service:${s.service_id}`);
        view = s;
        break;
      }
      case "kv_namespace": {
        const ns = createNamespace(a, { title: body.title ?? body.name });
        precreated.add(`kv_namespace:${ns.id}`);
        view = ns;
        break;
      }
      case "worker": {
        const name = requireString(body.name, "name");
        if (scripts.has(name)) throw new ApiError(409, 10021, `a Worker named ${name} exists`);
        const s = {
          id: name, tag: hex(16), etag: hex(32), created_on: now(), modified_on: now(), compatibility_date: "2026-04-01",
          bindings: [], observability: null, modules: null, module_parts: [], subdomain: { enabled: false, previews_enabled: false }, worker: null,
        };
        Object.defineProperty(s, "account_id", { value: a, enumerable: false });
        scripts.set(name, s);
        precreated.add(`worker:${name}`);
        view = scriptView(s);
        break;
      }
      case "access_app": {
        const app = installApp(appBody({ name: body.name, type: "saas", saas_app: { auth_type: "oidc", redirect_uris: body.redirect_uris ?? ["https://elsewhere.example/callback"] } }));
        app.account_id = a;
        precreated.add(`access_app:${app.record.id}`);
        view = appView(app, true);
        break;
      }
      default:
        throw new ApiError(400, 1001, `unknown kind ${JSON.stringify(kind)}: tunnel, vpc_service, kv_namespace, worker or access_app`);
    }
    return { kind, ...view };
  }

  async function control(req, res, raw) {
    const url = new URL(req.url, base);
    const reply = (status, body) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    let body = null;
    try { body = raw.length ? JSON.parse(raw.toString("utf8")) : null; } catch { return reply(400, { error: "not JSON" }); }
    try {
      const route = `${req.method} ${url.pathname}`;
      if (route === "GET /__fake/state") return reply(200, state());
      if (route === "POST /__fake/access/identity") {
        identity = body?.email ?? null;
        return reply(200, { identity });
      }
      if (route === "POST /__fake/faults") {
        const statuses = body?.statuses;
        if (typeof body?.path_prefix !== "string" || !Array.isArray(statuses) || !statuses.length || !statuses.every(Number.isInteger)) {
          return reply(400, { error: "want {method?, path_prefix, statuses:[…]}" });
        }
        const prefix = body.path_prefix.startsWith(API_PREFIX) ? body.path_prefix.slice(API_PREFIX.length) : body.path_prefix;
        faults.push({ method: body.method ?? null, path_prefix: prefix, statuses: [...statuses] });
        return reply(200, { faults });
      }
      if (route === "DELETE /__fake/faults") {
        faults.length = 0;
        return reply(200, { faults });
      }
      if (route === "POST /__fake/resources") return reply(200, await precreate(body));
      if (route === "POST /__fake/accounts") {
        const added = { id: hex(16), name: requireString(body?.name, "name"), type: "standard" };
        accounts.push(added);
        return reply(200, added);
      }
      if (route === "PUT /__fake/token") {
        if (!Array.isArray(body?.permissions)) return reply(400, { error: "want {permissions:[…]}" });
        granted.clear();
        for (const p of body.permissions) granted.add(p);
        return reply(200, { permissions: [...granted] });
      }
      const connect = /^\/__fake\/tunnels\/([^/]+)\/connections$/.exec(url.pathname);
      if (connect && req.method === "POST") {
        const t = tunnels.get(connect[1]);
        if (!t || t.deleted_at) return reply(404, { error: "no such tunnel" });
        t.connections.push({
          id: randomUUID(), colo_name: "fra01", origin_ip: "127.0.0.1", opened_at: now(),
          client_id: randomUUID(), client_version: "2026.4.0", is_pending_reconnect: false, uuid: randomUUID(),
        });
        t.status = "healthy";
        t.conns_active_at = t.conns_active_at ?? now();
        return reply(200, tunnelView(t));
      }
      return reply(404, { error: `no control ${route}` });
    } catch (err) {
      if (err instanceof ApiError) return reply(err.status, failure(err.code, err.message));
      return reply(500, { error: String(err) });
    }
  }

  function access(req, res) {
    const clientId = req.url.slice(ACCESS_PREFIX.length).split(/[/?]/)[0];
    const app = [...apps.values()].find((a) => a.saas_app.client_id === clientId);
    if (!app) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("no such Access application");
      return;
    }
    app.provider.handle(req, res);
  }

  const server = http.createServer((req, res) => {
    if (req.url.startsWith(ACCESS_PREFIX)) return access(req, res);
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const handled = req.url.startsWith(`${API_PREFIX}/`) ? api(req, res, raw)
        : req.url.startsWith("/__fake/") ? control(req, res, raw)
        : Promise.resolve(res.writeHead(404).end());
      handled.catch((err) => {
        console.error("[fake cloudflare]", err);
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;

  return {
    url: base,
    apiUrl: `${base}${API_PREFIX}`,
    accessUrl: base,
    token,
    accountId: accounts[0].id,
    requests,
    state,
    precreate,
    setIdentity(email) { identity = email; },
    /** Another account the token reaches. */
    addAccount(name) {
      const added = { id: hex(16), name, type: "standard" };
      accounts.push(added);
      return added;
    },
    setPermissions(list) { granted.clear(); for (const p of list) granted.add(p); },
    addFault(fault) { faults.push({ method: fault.method ?? null, path_prefix: fault.path_prefix, statuses: [...fault.statuses] }); },
    /** The Miniflare of a running script (KV inspection). */
    worker(name) { return scripts.get(name)?.worker ?? null; },
    async stop() {
      for (const script of scripts.values()) await stopScript(script).catch(() => {});
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      rmSync(persistDir, { recursive: true, force: true });
    },
  };
}
