"""Tool metadata with the official MCP Python SDK as the client, on both revisions.

Usage: python_sdk_metadata.py ORIGIN_URL
Prints one JSON object with what the clients saw; the Rust test (`tests/mcp_per_server.rs`)
checks it. The server `calc` has the approved tool `add(a: int, b: int) -> int` (annotated
readOnlyHint), which returns a string for a negative `a`; it is used on `/mcp` as `calc__add`
and on `/servers/calc/mcp` as `add`.
"""

import asyncio
import json
import sys

from mcp import Client

URL = sys.argv[1]


async def main():
    seen = []
    for url, name in ((URL + "/mcp", "calc__add"), (URL + "/servers/calc/mcp", "add")):
        async with Client(url, mode="legacy") as legacy, Client(url) as modern:
            for client in (legacy, modern):
                tools = (await client.list_tools()).tools
                tool = next(t for t in tools if t.name == name)
                # The SDK itself checks structured content against the listed schema.
                good = await client.call_tool(name, {"a": 2, "b": 3})
                bad = await client.call_tool(name, {"a": -1, "b": 3})
                seen.append({
                    "endpoint": url,
                    "version": client.protocol_version,
                    "output_schema": tool.output_schema,
                    "read_only": tool.annotations.read_only_hint if tool.annotations else None,
                    "structured": good.structured_content,
                    "text": good.content[0].text,
                    "is_error": good.is_error,
                    "mismatch_is_error": bad.is_error,
                    "mismatch": bad.content[0].text,
                })
    print(json.dumps(seen))


asyncio.run(main())
