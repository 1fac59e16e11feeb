// The real origin: `mcpbox serve` with its tunnel listener, its own data directory, an admin,
// and one approved tool on a running server (made over the REST API as a person would).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { randomBytes } from "node:crypto";
import { binDir } from "./env.mjs";

export const PASSWORD = "correct horse battery";
/** The tool the origin serves: `<server>__<tool>`. */
export const TOOL = "edge__greet";
export const TOOL_CODE =
  "async def main(city: str) -> dict:\n" +
  '    """Say hello to a city."""\n' +
  "    return {'hello': city}\n";

/**
 * Start `mcpbox serve` on free ports. Resolves to
 * { url, tunnelUrl, serviceToken, adminToken, stop() }. `serviceToken: null` starts it without
 * one (the remote set-up wizard makes it); `args` are more command-line arguments.
 */
export async function startOrigin({
  allowedEmails = ["alice@example.com"], tool = true, rateLimitRpm, serviceToken = randomBytes(24).toString("hex"),
  args: extraArgs = [], dataDir: reuse, tunnelListen = "127.0.0.1:0",
} = {}) {
  // `dataDir`: start again on the data of an earlier run (its admin exists; nothing is set up).
  const dataDir = reuse ?? mkdtempSync(path.join(os.tmpdir(), "mcpbox-edge-origin-"));
  const env = { ...process.env };
  delete env.MCPBOX_SERVICE_TOKEN;
  if (serviceToken) env.MCPBOX_SERVICE_TOKEN = serviceToken;
  delete env.MCPBOX_ENCRYPTION_KEY;
  delete env.DATABASE_URL;
  for (const name of Object.keys(env)) if (name.startsWith("MCPBOX_CLOUDFLARE_")) delete env[name];
  const args = [
    "serve",
    "--data-dir", dataDir,
    "--listen", "127.0.0.1:0",
    "--tunnel-listen", tunnelListen,
  ];
  for (const email of allowedEmails) args.push("--remote-allowed-email", email);
  args.push(...extraArgs);
  const child = spawn(path.join(binDir, "mcpbox"), args, { env, stdio: ["ignore", "pipe", "pipe"] });
  const log = [];
  readline.createInterface({ input: child.stderr }).on("line", (line) => {
    log.push(line);
    if (process.env.MCPBOX_EDGE_TEST_VERBOSE) console.error(`[origin] ${line}`);
  });
  const found = {};
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mcpbox did not start:\n${log.join("\n")}`)), 30_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`mcpbox exited (${code}):\n${log.join("\n")}`));
    });
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      const local = line.match(/^MCPbox listening on (\S+)/);
      const tunnel = line.match(/^MCPbox tunnel listener on (\S+)/);
      if (local) found.url = local[1];
      if (tunnel) found.tunnelUrl = tunnel[1];
      if (found.url && found.tunnelUrl) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  child.removeAllListeners("exit");
  const origin = {
    ...found,
    dataDir,
    serviceToken,
    log,
    /** Stop it; `{ signal: "SIGKILL", keepData: true }` plays a crash whose data survives. */
    async stop({ signal = "SIGTERM", keepData = false } = {}) {
      if (child.exitCode === null) {
        child.kill(signal);
        await new Promise((resolve) => {
          const timer = setTimeout(() => { child.kill("SIGKILL"); resolve(); }, 10_000);
          child.on("exit", () => { clearTimeout(timer); resolve(); });
        });
      }
      if (!keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  try {
    if (!reuse) await api(origin.url, "/auth/setup", { username: "admin", password: PASSWORD });
    const login = await api(origin.url, "/auth/login", { username: "admin", password: PASSWORD });
    origin.adminToken = login.body.access_token;
    if (!origin.adminToken) throw new Error(`no admin token: ${JSON.stringify(login)}`);
    if (tool && !reuse) await approvedTool(origin, "edge", "greet", TOOL_CODE);
    if (rateLimitRpm) {
      const policy = await api(origin.url, "/api/settings/security-policy", { mcp_rate_limit_rpm: rateLimitRpm }, origin.adminToken, "PATCH");
      if (policy.status !== 200) throw new Error(`rate limit: ${JSON.stringify(policy)}`);
    }
  } catch (err) {
    await origin.stop();
    throw err;
  }
  return origin;
}

export async function api(base, route, body, token, method = "POST") {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(base + route, { method, headers, body: JSON.stringify(body) });
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
  return { status: response.status, body: parsed };
}

/** A server with one tool, approved and started: what a person does in the admin UI. */
export async function approvedTool(origin, serverName, toolName, code) {
  const { url, adminToken } = origin;
  const server = await api(url, "/api/servers", { name: serverName }, adminToken);
  if (server.status !== 201) throw new Error(`create server: ${JSON.stringify(server)}`);
  const tool = await api(url, `/api/servers/${server.body.id}/tools`, { name: toolName, python_code: code }, adminToken);
  if (tool.status !== 201) throw new Error(`create tool: ${JSON.stringify(tool)}`);
  // Only a version pending review can be approved: submit it first, then approve that version.
  const action = `/api/approvals/tools/${tool.body.id}/action`;
  const submitted = await api(url, action, { action: "submit_for_review" }, adminToken);
  if (submitted.status !== 200) throw new Error(`submit: ${JSON.stringify(submitted)}`);
  const approve = await api(url, action, { action: "approve", version: submitted.body.version }, adminToken);
  if (approve.status !== 200) throw new Error(`approve: ${JSON.stringify(approve)}`);
  const start = await api(url, `/api/sandbox/servers/${server.body.id}/start`, {}, adminToken);
  if (start.status !== 200) throw new Error(`start: ${JSON.stringify(start)}`);
}
