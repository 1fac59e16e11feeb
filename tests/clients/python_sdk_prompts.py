"""Prompts and resources with the official MCP Python SDK as the client, on both revisions.

Usage: python_sdk_prompts.py BASE_URL
Prints one JSON object with what the clients saw on `/mcp` and on `/servers/lib/mcp`; the Rust
test (`tests/prompts_sdk.rs`) set up the server `lib` (an approved tool `forecast`, a prompt
`review`, a static resource `guide` and a resource template `weather` backed by `forecast`)
and checks what is printed.
"""

import asyncio
import json
import sys

from mcp import Client

BASE = sys.argv[1]


async def seen_by(client, prefix):
    seen = {"version": client.protocol_version}
    prompts = (await client.list_prompts()).prompts
    seen["prompts"] = [
        {"name": p.name, "arguments": [[a.name, bool(a.required)] for a in (p.arguments or [])]}
        for p in prompts
    ]
    got = await client.get_prompt(prefix + "review", {"topic": "the release notes"})
    seen["rendered"] = [m.content.text for m in got.messages]
    try:
        await client.get_prompt(prefix + "review", {})
        seen["missing"] = None
    except Exception as error:  # the SDK raises the JSON-RPC error
        seen["missing"] = str(error)
    seen["resources"] = [[r.uri, r.mime_type] for r in (await client.list_resources()).resources]
    seen["templates"] = [
        t.uri_template for t in (await client.list_resource_templates()).resource_templates
    ]
    static = await client.read_resource("mcpbox://lib/guide")
    seen["guide"] = [c.text for c in static.contents]
    produced = await client.read_resource("mcpbox://lib/weather/Oslo")
    seen["weather"] = [c.text for c in produced.contents]
    return seen


async def main():
    seen = {}
    for endpoint, prefix in (("/mcp", "lib__"), ("/servers/lib/mcp", "")):
        url = BASE + endpoint
        async with Client(url, mode="legacy") as legacy, Client(url) as modern:
            seen[endpoint] = [await seen_by(legacy, prefix), await seen_by(modern, prefix)]
    print(json.dumps(seen))


asyncio.run(main())
