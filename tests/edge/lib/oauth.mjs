// A minimal OAuth 2.1 client for tests and the benchmark: DCR, PKCE S256, the authorize chain
// through the Worker and Access (headless), code exchange, refresh.
import { createHash, randomBytes } from "node:crypto";
import { authorize } from "./browser.mjs";

export async function register(workerUrl, redirectUri, extra = {}) {
  const response = await fetch(`${workerUrl}/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      client_name: "mcpbox edge node client",
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
      ...extra,
    }),
  });
  const body = await response.json();
  if (response.status !== 201) throw new Error(`register: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

/** A token pair for a fresh DCR client: { access_token, refresh_token, clientId, ... }. */
export async function tokens(workerUrl, { redirectUri = "http://127.0.0.1:53683/callback", resource = `${workerUrl}/mcp` } = {}) {
  const client = await register(workerUrl, redirectUri);
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const state = randomBytes(16).toString("base64url");
  const url = new URL(`${workerUrl}/authorize`);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: client.client_id,
    redirect_uri: redirectUri,
    code_challenge: challenge,
    code_challenge_method: "S256",
    state,
    resource,
  }).toString();
  const { url: back } = await authorize(url.href, redirectUri);
  const query = new URL(back).searchParams;
  if (query.get("state") !== state) throw new Error(`state mismatch in ${back}`);
  if (!query.get("code")) throw new Error(`no code in ${back}`);
  const response = await fetch(`${workerUrl}/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: query.get("code"),
      redirect_uri: redirectUri,
      client_id: client.client_id,
      code_verifier: verifier,
      resource,
    }).toString(),
  });
  const body = await response.json();
  if (response.status !== 200) throw new Error(`token: ${response.status} ${JSON.stringify(body)}`);
  return { ...body, clientId: client.client_id };
}

/** A 2026-07-28 stateless MCP request (no session needed). */
export function mcpRequest(method, params = {}, id = 1) {
  const body = {
    jsonrpc: "2.0",
    id,
    method,
    params: {
      ...params,
      _meta: {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
      },
    },
  };
  const headers = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": method,
  };
  if (params.name) headers["mcp-name"] = params.name;
  return { headers, body: JSON.stringify(body) };
}

/** The JSON-RPC message with `id` out of a JSON or SSE body. */
export function answer(text, id = 1) {
  try { return JSON.parse(text); } catch { /* SSE */ }
  for (const line of text.split("\n")) {
    if (!line.startsWith("data:")) continue;
    try {
      const message = JSON.parse(line.slice(5).trim());
      if (message.id === id) return message;
    } catch { /* not JSON */ }
  }
  return undefined;
}
