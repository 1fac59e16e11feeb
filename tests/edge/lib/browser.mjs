// A headless "browser" for authorization flows: follows redirects itself with a cookie jar,
// submits the first form of any HTML page it lands on (choosing the approving button), and stops
// at the first URL that starts with `stopAt` — returned without being fetched.

/** Cookies of one browser; pass one to several `authorize` calls to play the same browser. */
export function cookieJar() {
  const jar = new Map(); // host → Map(name → value); ports do not separate cookies, as in browsers
  return {
    header(url) {
      const cookies = jar.get(new URL(url).hostname);
      return cookies && cookies.size ? [...cookies].map(([k, v]) => `${k}=${v}`).join("; ") : undefined;
    },
    store(url, response) {
      const host = new URL(url).hostname;
      for (const line of response.headers.getSetCookie?.() ?? []) {
        const [pair, ...attrs] = line.split(";");
        const eq = pair.indexOf("=");
        const name = pair.slice(0, eq).trim();
        const value = pair.slice(eq + 1).trim();
        if (!jar.has(host)) jar.set(host, new Map());
        const expired = attrs.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a)) || value === "";
        if (expired) jar.get(host).delete(name);
        else jar.get(host).set(name, value);
      }
    },
  };
}

function decode(text) {
  return text
    .replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&#x27;/g, "'")
    .replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function attrs(tag) {
  const out = {};
  for (const m of tag.matchAll(/([a-zA-Z_:-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    out[m[1].toLowerCase()] = decode(m[2] ?? m[3] ?? m[4] ?? "");
  }
  return out;
}

/** The first form of a page: { action, method, fields: [[name, value]] } with the approve button. */
export function firstForm(html) {
  const form = html.match(/<form\b([^>]*)>([\s\S]*?)<\/form>/i);
  if (!form) return null;
  const formAttrs = attrs(form[1]);
  const fields = [];
  const buttons = [];
  for (const m of form[2].matchAll(/<(input|button)\b([^>]*)>/gi)) {
    const a = attrs(m[2]);
    const type = (a.type ?? (m[1].toLowerCase() === "button" ? "submit" : "text")).toLowerCase();
    if (type === "submit") buttons.push([a.name, a.value ?? ""]);
    else if (a.name && (type !== "checkbox" || "checked" in a)) fields.push([a.name, a.value ?? ""]);
  }
  const approve = buttons.find(([, v]) => /allow|approve|accept|authori[sz]e|yes/i.test(v)) ?? buttons.find(([n]) => n);
  if (approve?.[0]) fields.push(approve);
  return { action: formAttrs.action ?? "", method: (formAttrs.method ?? "get").toLowerCase(), fields };
}

/** Follow `url` until a URL starting with `stopAt`; resolves to that URL. */
export async function authorize(url, stopAt, { maxHops = 25, jar = cookieJar() } = {}) {
  let method = "GET";
  let body;
  const hops = [];
  for (let i = 0; i < maxHops; i++) {
    if (url.startsWith(stopAt)) return { url, hops };
    const headers = {};
    const cookie = jar.header(url);
    if (cookie) headers.cookie = cookie;
    if (body) headers["content-type"] = "application/x-www-form-urlencoded";
    const response = await fetch(url, { method, headers, body, redirect: "manual" });
    jar.store(url, response);
    const { host, pathname } = new URL(url);
    hops.push(`${method} ${response.status} ${host}${pathname}`);
    if ([301, 302, 303, 307, 308].includes(response.status)) {
      await response.arrayBuffer();
      url = new URL(response.headers.get("location"), url).href;
      if (response.status !== 307 && response.status !== 308) { method = "GET"; body = undefined; }
      continue;
    }
    const text = await response.text();
    if (response.status === 200 && /html/.test(response.headers.get("content-type") ?? "")) {
      const form = firstForm(text);
      if (!form) throw new Error(`a page without a form at ${url}: ${text.slice(0, 300)}`);
      const target = new URL(form.action || url, url);
      const encoded = new URLSearchParams(form.fields).toString();
      if (form.method === "post") { method = "POST"; body = encoded; url = target.href; }
      else { method = "GET"; body = undefined; target.search = encoded; url = target.href; }
      continue;
    }
    throw new Error(`unexpected ${response.status} at ${url}: ${text.slice(0, 2000)}\nhops: ${hops.join(" → ")}`);
  }
  throw new Error(`too many hops: ${hops.join(" → ")}`);
}
