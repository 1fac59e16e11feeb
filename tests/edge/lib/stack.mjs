// The whole remote path on one machine: the Access stand-in (oidc-provider), the real origin
// (`mcpbox serve` with its tunnel listener) and the Worker under Miniflare in front of both.
import { startAccess } from "./access.mjs";
import { startOrigin } from "./origin.mjs";
import { freePort, startWorker } from "./worker.mjs";

export async function startStack({ email = "alice@example.com", viaBinding = true, outbound, vars, rateLimitRpm } = {}) {
  const port = await freePort();
  const stopping = [];
  try {
    const access = await startAccess({ redirectUri: `http://127.0.0.1:${port}/callback`, email });
    stopping.push(access);
    const origin = await startOrigin({ allowedEmails: ["alice@example.com"], rateLimitRpm });
    stopping.push(origin);
    const worker = await startWorker({ port, origin, access: access.vars, viaBinding, outbound, vars });
    stopping.push(worker);
    return {
      access,
      origin,
      worker,
      mcpUrl: `${worker.url}/mcp`,
      async stop() {
        for (const part of stopping.reverse()) await part.stop();
      },
    };
  } catch (err) {
    for (const part of stopping.reverse()) await part.stop().catch(() => {});
    throw err;
  }
}
