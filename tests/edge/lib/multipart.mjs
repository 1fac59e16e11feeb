// A multipart/form-data body split into its parts, headers kept: the fake Cloudflare API logs each
// part's content type, which the WHATWG FormData parser drops for parts without a filename.

/** The boundary of a `multipart/form-data; boundary=…` content type, or null. */
export function boundaryOf(contentType) {
  const match = /^multipart\/form-data\s*;.*\bboundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? "");
  return match ? match[1] ?? match[2] : null;
}

function disposition(value) {
  const out = {};
  for (const m of value.matchAll(/;\s*([a-zA-Z*]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/g)) {
    out[m[1].toLowerCase()] = (m[2] ?? m[3]).replace(/\\(.)/g, "$1");
  }
  return out;
}

/**
 * Parts of `body` (a Buffer): [{ name, filename, content_type, data: Buffer }]. Throws on a body
 * that is not well-formed multipart, or a part without a name.
 */
export function parseMultipart(body, boundary) {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts = [];
  let at = body.indexOf(delimiter);
  if (at < 0) throw new Error("no multipart boundary in the body");
  for (;;) {
    at += delimiter.length;
    if (body.subarray(at, at + 2).toString() === "--") return parts;
    if (body.subarray(at, at + 2).toString() !== "\r\n") throw new Error("a multipart boundary not followed by CRLF");
    at += 2;
    const headersEnd = body.indexOf("\r\n\r\n", at);
    if (headersEnd < 0) throw new Error("a multipart part without a header end");
    const headers = {};
    for (const line of body.subarray(at, headersEnd).toString("utf8").split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const next = body.indexOf(Buffer.concat([Buffer.from("\r\n"), delimiter]), headersEnd + 4);
    if (next < 0) throw new Error("a multipart part without a closing boundary");
    const params = disposition(headers["content-disposition"] ?? "");
    if (!params.name) throw new Error("a multipart part without a name");
    parts.push({
      name: params.name,
      filename: params.filename ?? null,
      content_type: headers["content-type"] ?? null,
      data: body.subarray(headersEnd + 4, next),
    });
    at = next + 2;
  }
}
