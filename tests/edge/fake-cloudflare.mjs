#!/usr/bin/env node
// The fake Cloudflare API (lib/fake-cloudflare.mjs) as a process, for trying the wizard by hand:
//   node tests/edge/fake-cloudflare.mjs [--port P] [--token T] [--permissions "A,B"] [--accounts N]
// prints one JSON line when ready: {url, api_url, access_url, token, account_id, permissions},
// then serves until SIGINT/SIGTERM. MCPBOX_FAKE_CF_LOG=<file> logs every API request there.
// Point the origin at it: mcpbox serve --cloudflare-api-url <api_url> --cloudflare-access-url <access_url>.
import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import { ALL_PERMISSIONS, startFakeCloudflare } from "./lib/fake-cloudflare.mjs";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    token: { type: "string" },
    permissions: { type: "string" },
    accounts: { type: "string", default: "1" },
  },
});
const accounts = Array.from({ length: Math.max(1, Number(values.accounts) || 1) }, (_, i) => ({
  id: randomBytes(16).toString("hex"), name: `Fake Account ${i + 1}`, type: "standard",
}));
const fake = await startFakeCloudflare({
  port: Number(values.port),
  accounts,
  ...(values.token ? { token: values.token } : {}),
  permissions: values.permissions ? values.permissions.split(",").map((p) => p.trim()).filter(Boolean) : ALL_PERMISSIONS,
});
console.log(JSON.stringify({
  url: fake.url, api_url: fake.apiUrl, access_url: fake.accessUrl, token: fake.token,
  account_id: fake.accountId, permissions: fake.state().permissions,
}));
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    await fake.stop();
    process.exit(0);
  });
}
