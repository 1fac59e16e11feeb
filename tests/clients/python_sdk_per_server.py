"""A per-server endpoint with the official MCP Python SDK as the client, on both revisions.

Usage: python_sdk_per_server.py ENDPOINT_URL
Prints one JSON object with what the clients saw; the Rust test (`tests/mcp_per_server.rs`)
checks it. The endpoint is `/servers/alpha/mcp`, whose server has the tools `echo` and `greet`.
"""

import asyncio
import json
import sys

from mcp import Client

URL = sys.argv[1]


async def main():
    seen = {"versions": [], "listed": [], "results": [], "refused": []}
    async with Client(URL, mode="legacy") as legacy, Client(URL) as modern:
        for client in (legacy, modern):
            seen["versions"].append(client.protocol_version)
            seen["listed"].append(sorted(tool.name for tool in (await client.list_tools()).tools))
            result = await client.call_tool("greet", {})
            seen["results"].append({"is_error": result.is_error, "text": result.content[0].text})
            try:
                await client.call_tool("alpha__greet", {})
                seen["refused"].append(None)
            except Exception as error:  # the SDK raises the JSON-RPC error
                seen["refused"].append(str(error))
    print(json.dumps(seen))


asyncio.run(main())
