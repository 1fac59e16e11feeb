// Paths and settings shared by the edge tests; scripts/test-edge sets the variables.
import { fileURLToPath } from "node:url";
import path from "node:path";
import os from "node:os";
import { readFileSync } from "node:fs";

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const cache = process.env.MCPBOX_CACHE ?? path.join(os.homedir(), ".cache/mcpbox");
/** The bundle edge-worker/build.sh produced. */
export const bundleDir = process.env.MCPBOX_EDGE_BUNDLE_DIR ?? path.join(repo, "edge-worker/build");
/** Where `mcpbox` and `mcpbox-sandbox` are. */
export const binDir = process.env.MCPBOX_BIN_DIR ?? path.join(cache, "target-edge/debug");
export const python = process.env.MCPBOX_PYTHON ?? "/root/.pyenv/versions/3.11.7/bin/python3.11";
/** The official MCP Python SDK (mcp==2.3.0), installed with pip --target. */
export const pySdk = process.env.MCPBOX_TEST_MCP_SDK ?? path.join(cache, "py-mcp");
/** Node >= 22 with @modelcontextprotocol/conformance. */
export const nodeDir = process.env.MCPBOX_TEST_NODE_DIR ?? path.join(cache, "node");

/** The compatibility date the tests run the Worker with: wrangler.toml's. */
export const compatibilityDate = readFileSync(path.join(repo, "wrangler.toml"), "utf8")
  .match(/^compatibility_date\s*=\s*"([0-9-]+)"/m)[1];
