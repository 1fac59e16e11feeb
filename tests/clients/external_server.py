"""An external MCP server for MCPbox's tests and benchmark: the official MCP Python SDK's
MCPServer over Streamable HTTP on 127.0.0.1, on a free port it prints as `listening <port>`.

Tools: echo(text), add(a, b), headers() (the auth headers it was sent), trace_context() (the
`traceparent`/`tracestate` of the request's `_meta`), fail() (a tool error).
--require-header NAME=VALUE answers 401 to every request without that exact header.
--legacy answers `server/discover` the way a server that predates 2026-07-28 does (-32601), so
clients must fall back to a 2025-11-25 `initialize` session.
--sse serves the legacy HTTP+SSE transport instead (the SDK's `sse_app`: GET /sse, POST
/messages/), for sources that never moved to Streamable HTTP.
"""

import argparse
import asyncio
import json
import socket
import sys

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("external-test")


@server.tool()
def echo(text: str) -> str:
    """Returns the text it was given."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool()
async def headers(ctx: Context) -> dict:
    """The authentication headers of the request that called it."""
    sent = ctx.headers or {}
    return {
        name: sent.get(name)
        for name in ("authorization", "x-api-key", "user-agent")
    }


@server.tool()
async def trace_context(ctx: Context) -> dict:
    """The W3C trace context the request's `_meta` carried (SEP-414)."""
    meta = ctx.request_context.meta or {}
    return {name: meta.get(name) for name in ("traceparent", "tracestate")}


@server.tool()
def fail() -> str:
    """Always fails."""
    raise ToolError("this tool always fails")


def guarded(app, name, value):
    name = name.lower().encode()
    value = value.encode()

    async def wrapped(scope, receive, send):
        if scope["type"] == "http" and dict(scope["headers"]).get(name) != value:
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"missing credentials"})
            return
        await app(scope, receive, send)

    return wrapped


def legacy_only(app):
    async def wrapped(scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        if isinstance(request, dict) and request.get("method") == "server/discover":
            error = {"jsonrpc": "2.0", "id": request.get("id"),
                     "error": {"code": -32601, "message": "Method not found"}}
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": json.dumps(error).encode()})
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app(scope, replay, send)

    return wrapped


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--require-header")
    parser.add_argument("--legacy", action="store_true")
    parser.add_argument("--sse", action="store_true")
    args = parser.parse_args()
    app = server.sse_app() if args.sse else server.streamable_http_app()
    if args.legacy:
        app = legacy_only(app)
    if args.require_header:
        name, _, value = args.require_header.partition("=")
        app = guarded(app, name, value)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # Listening before the port is announced: early connections wait in the backlog.
    sock.listen(128)
    print(f"listening {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve(sockets=[sock])


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
