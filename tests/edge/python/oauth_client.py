"""The official MCP Python SDK's OAuth client provider against the edge worker, headless.

Usage: oauth_client.py MCP_URL REDIRECT_URI [CIMD_URL]

Runs the whole flow twice if CIMD_URL is given, once otherwise:
  - "dcr":  discovery → dynamic client registration → authorize (the Worker's consent page, then
            the upstream Access stand-in, which signs in at once) → callback → token →
            tools/list and tools/call (protocol 2026-07-28) → refresh (forced by expiring the
            access token) → tools/list and tools/call again with the new token (2025-11-25);
  - "cimd": the same with a client ID metadata document URL as client_id (no registration).
Prints one JSON object with what happened; tests/edge/oauth.test.mjs checks it.

The redirect handler plays the browser: it follows the authorization URL's redirects with its own
cookie jar, submits the Worker's consent form (approving), and stops at REDIRECT_URI, handing the
code to the callback handler. Nothing listens on REDIRECT_URI.
"""

import asyncio
import json
import sys
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

MCP_URL, REDIRECT_URI = sys.argv[1], sys.argv[2]
TOOL = "edge__greet"  # tests/edge/lib/origin.mjs: server "edge", tool "greet"
CIMD_URL = sys.argv[3] if len(sys.argv) > 3 else None


class Memory(TokenStorage):
    def __init__(self):
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


class Forms(HTMLParser):
    """The forms of a page: action, method and the fields a browser would submit."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action") or "", "method": (attrs.get("method") or "get").lower(),
                               "fields": [], "buttons": []})
        elif self.forms and tag in ("input", "button"):
            kind = (attrs.get("type") or ("submit" if tag == "button" else "text")).lower()
            name = attrs.get("name")
            if kind == "submit":
                self.forms[-1]["buttons"].append((name, attrs.get("value") or ""))
            elif name is not None and kind != "checkbox" or (kind == "checkbox" and "checked" in attrs):
                self.forms[-1]["fields"].append((name, attrs.get("value") or ""))


def approve_button(buttons):
    """The submit button that approves (a consent page may also offer deny)."""
    for name, value in buttons:
        if any(word in (value or "").lower() for word in ("allow", "approve", "accept", "authorize", "yes")):
            return name, value
    named = [b for b in buttons if b[0]]
    return named[0] if named else None


class Jar:
    """Cookies per host name, sent over plain http too: browsers treat loopback as a secure
    context, so the Worker's `Secure` / `__Host-` cookies work there (http.cookiejar refuses them)."""

    def __init__(self):
        self.cookies = {}

    def header(self, url):
        cookies = self.cookies.get(urlparse(url).hostname, {})
        return "; ".join(f"{k}={v}" for k, v in cookies.items())

    def store(self, url, response):
        host = urlparse(url).hostname
        for line in response.headers.get_list("set-cookie"):
            pair, *attrs = line.split(";")
            name, _, value = pair.partition("=")
            name, value = name.strip(), value.strip()
            jar = self.cookies.setdefault(host, {})
            if value == "" or any(a.strip().lower() == "max-age=0" for a in attrs):
                jar.pop(name, None)
            else:
                jar[name] = value


class Browser:
    def __init__(self):
        self.pages = []  # (status, url host+path) of every hop, for the report
        self.consents = 0
        self.result: asyncio.Future = asyncio.get_event_loop().create_future()

    async def redirect_handler(self, authorization_url: str) -> None:
        jar = Jar()
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:
            method, url, data = "GET", authorization_url, None
            for _ in range(25):
                if url.startswith(REDIRECT_URI):
                    query = parse_qs(urlparse(url).query)
                    if "error" in query:
                        raise RuntimeError(f"authorization failed: {query}")
                    self.result.set_result(AuthorizationCodeResult(
                        code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]))
                    return
                headers = {"content-type": "application/x-www-form-urlencoded"} if data is not None else {}
                if jar.header(url):
                    headers["cookie"] = jar.header(url)
                content = urlencode(data).encode() if data is not None else None
                response = await http.request(method, url, content=content, headers=headers)
                jar.store(url, response)
                parsed = urlparse(url)
                self.pages.append(f"{method} {response.status_code} {parsed.netloc}{parsed.path}")
                if response.status_code in (301, 302, 303, 307, 308):
                    url = urljoin(url, response.headers["location"])
                    method, data = ("GET", None) if response.status_code != 307 else (method, data)
                    continue
                if response.status_code == 200 and "html" in response.headers.get("content-type", ""):
                    forms = Forms()
                    forms.feed(response.text)
                    if not forms.forms:
                        raise RuntimeError(f"a page without a form at {url}: {response.text[:400]}")
                    form = forms.forms[0]
                    fields = list(form["fields"])
                    button = approve_button(form["buttons"])
                    if button and button[0]:
                        fields.append(button)
                    self.consents += 1
                    method = "POST" if form["method"] == "post" else "GET"
                    url = urljoin(url, form["action"] or url)
                    data = fields
                    if method == "GET":
                        url = url.split("?")[0] + "?" + urlencode(fields)
                        data = None
                    continue
                raise RuntimeError(f"unexpected answer {response.status_code} at {url}: {response.text[:400]}")
            raise RuntimeError("too many redirects")

    async def callback_handler(self) -> AuthorizationCodeResult:
        return await asyncio.wait_for(self.result, 60)


def text_of(result):
    return [getattr(c, "text", None) for c in result.content]


async def session(provider, record, label, mode="auto"):
    async with httpx2.AsyncClient(auth=provider, timeout=60) as http:
        async with Client(streamable_http_client(MCP_URL, http_client=http), mode=mode) as client:
            record[f"{label}_protocol"] = client.protocol_version
            listed = await client.list_tools()
            record[f"{label}_tools"] = sorted(t.name for t in listed.tools if not t.name.startswith("mcpbox_"))
            called = await client.call_tool(TOOL, {"city": label})
            record[f"{label}_call"] = called.structured_content or text_of(called)
            record[f"{label}_call_error"] = bool(called.is_error)


async def flow(cimd_url):
    record = {}
    storage = Memory()
    browser = Browser()
    metadata = OAuthClientMetadata(
        client_name="mcpbox edge e2e (python sdk)",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    provider = OAuthClientProvider(
        server_url=MCP_URL,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
        client_metadata_url=cimd_url,
    )
    started = time.monotonic()
    await session(provider, record, "first")
    record["authorize_seconds"] = round(time.monotonic() - started, 3)
    record["client_id"] = storage.client_info.client_id if storage.client_info else None
    record["hops"] = browser.pages
    record["consent_forms"] = browser.consents
    first = storage.tokens
    record["token_type"] = first.token_type
    record["has_refresh_token"] = bool(first.refresh_token)
    record["scope"] = first.scope

    # Refresh: expire the access token locally; the provider must use the refresh token. This
    # session speaks 2025-11-25 (initialize, Mcp-Session-Id) where the first one spoke 2026-07-28.
    provider.context.token_expiry_time = time.time() - 1
    await session(provider, record, "refreshed", mode="legacy")
    second = storage.tokens
    record["refreshed_access_token_changed"] = second.access_token != first.access_token
    record["refresh_token_rotated"] = bool(second.refresh_token) and second.refresh_token != first.refresh_token
    record["authorizations"] = len([p for p in browser.pages if "/authorize" in p and p.startswith("GET")])

    # The old access token is worthless after rotation? Not required; but a made-up one must fail.
    async with httpx2.AsyncClient(timeout=30) as http:
        bogus = await http.post(MCP_URL, headers={"authorization": "Bearer not-a-token",
                                                   "content-type": "application/json",
                                                   "accept": "application/json, text/event-stream"},
                                content=b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}')
        record["bogus_token_status"] = bogus.status_code
        record["bogus_token_www_authenticate"] = bogus.headers.get("www-authenticate")
    return record


async def main():
    report = {"dcr": await flow(None)}
    if CIMD_URL:
        report["cimd"] = await flow(CIMD_URL)
    print(json.dumps(report))


asyncio.run(main())
