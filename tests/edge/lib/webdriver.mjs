// Headless Chromium over W3C WebDriver (Debian's chromium and chromedriver, which scripts/test
// installs), with fetch: just the calls the remote set-up test needs. The same binaries and
// capabilities as the Rust UI tests (tests/src/browser.rs); MCPBOX_TEST_CHROMIUM and
// MCPBOX_TEST_CHROMEDRIVER override the paths.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { freePort } from "./worker.mjs";

const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startBrowser({ width = 1280, height = 900 } = {}) {
  const chromedriver = process.env.MCPBOX_TEST_CHROMEDRIVER ?? "/usr/bin/chromedriver";
  const chromium = process.env.MCPBOX_TEST_CHROMIUM ?? "/usr/bin/chromium";
  if (!existsSync(chromedriver) || !existsSync(chromium)) {
    throw new Error(`Chromium and chromedriver are needed (${chromium}, ${chromedriver}): scripts/test installs Debian's chromium and chromium-driver`);
  }
  const port = await freePort();
  const driver = spawn(chromedriver, [`--port=${port}`], { stdio: "ignore" });
  const root = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(`${root}/status`)).ok) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) {
      driver.kill();
      throw new Error("chromedriver did not start");
    }
    await sleep(100);
  }

  async function raw(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return (await response.json()).value;
  }
  const created = await raw("POST", `${root}/session`, {
    capabilities: { alwaysMatch: {
      browserName: "chrome",
      "goog:chromeOptions": {
        binary: chromium,
        args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--lang=en-US", `--window-size=${width},${height}`],
      },
    } },
  });
  if (!created?.sessionId) {
    driver.kill();
    throw new Error(`no WebDriver session: ${JSON.stringify(created)}`);
  }
  const base = `${root}/session/${created.sessionId}`;
  async function call(method, route, body) {
    const value = await raw(method, base + route, method === "GET" || method === "DELETE" ? undefined : body ?? {});
    if (value && typeof value === "object" && value.error) throw new Error(`WebDriver ${method} ${route}: ${value.error}: ${value.message}`);
    return value;
  }
  async function findNow(css) {
    const value = await raw("POST", `${base}/element`, { using: "css selector", value: css });
    return value?.[ELEMENT] ?? null;
  }

  const browser = {
    goto: (url) => call("POST", "/url", { url }),
    url: () => call("GET", "/url"),
    script: (source, args = []) => call("POST", "/execute/sync", { script: source, args }),
    exists: async (css) => (await findNow(css)) !== null,
    /** The element matching `css`, waiting up to `seconds` for it. */
    async find(css, seconds = 10) {
      const until = Date.now() + seconds * 1000;
      for (;;) {
        const id = await findNow(css);
        if (id) return id;
        if (Date.now() > until) throw new Error(`no element ${css} on ${await browser.url()}: ${(await browser.pageText()).slice(0, 2000)}`);
        await sleep(100);
      }
    },
    async type(css, text) {
      const id = await browser.find(css);
      await call("POST", `/element/${id}/clear`);
      await call("POST", `/element/${id}/value`, { text });
    },
    async click(css) {
      const id = await browser.find(css);
      await call("POST", `/element/${id}/click`);
    },
    async text(css) {
      const id = await browser.find(css);
      return call("GET", `/element/${id}/text`);
    },
    /** The text of `css`, or null when there is no such element. */
    async textIfAny(css) {
      const id = await findNow(css);
      return id ? call("GET", `/element/${id}/text`) : null;
    },
    /** The page's visible text, or "" while it is being replaced. */
    async pageText() {
      const value = await raw("POST", `${base}/execute/sync`, { script: "return document.body ? document.body.innerText : ''", args: [] });
      return typeof value === "string" ? value : "";
    },
    async waitForText(needle, seconds = 10) {
      const until = Date.now() + seconds * 1000;
      for (;;) {
        const text = await browser.pageText();
        if (text.includes(needle)) return text;
        if (Date.now() > until) throw new Error(`${JSON.stringify(needle)} did not appear on ${await browser.url()}: ${text.slice(0, 2000)}`);
        await sleep(150);
      }
    },
    async quit() {
      await raw("DELETE", base).catch(() => {});
      driver.kill();
    },
  };
  return browser;
}
