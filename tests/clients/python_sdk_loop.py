"""The whole loop with the official MCP Python SDK as the client, on both protocol revisions.

Usage: python_sdk_loop.py BASE_URL ADMIN_TOKEN
Prints one JSON object with what the clients saw; the Rust test (`tests/mcp_gateway.rs`) checks it.

The client plays the LLM: it creates a server and a tool and asks for review with the
`mcpbox_*` management tools; the approval and the start go over the REST API as a person's would.
"""

import asyncio
import json
import sys
import urllib.request

from mcp import Client

BASE, TOKEN = sys.argv[1], sys.argv[2]
CODE = (
    "async def main(city: str) -> dict:\n"
    '    """Say hello."""\n'
    "    return {'hello': city}\n"
)


def api(path, body):
    request = urllib.request.Request(
        BASE + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def names(listed):
    return sorted(tool.name for tool in listed.tools if not tool.name.startswith("mcpbox_"))


async def main():
    heard_legacy = asyncio.Event()

    async def on_message(message):
        if "tools/list_changed" in repr(message) or "ToolListChanged" in repr(message):
            heard_legacy.set()

    seen = {}
    async with Client(BASE + "/mcp", mode="legacy", message_handler=on_message) as legacy, Client(
        BASE + "/mcp"
    ) as modern:
        seen["versions"] = [legacy.protocol_version, modern.protocol_version]
        server = (await legacy.call_tool("mcpbox_create_server", {"name": "sdk"})).structured_content["id"]
        created = await modern.call_tool(
            "mcpbox_create_tool", {"server_id": server, "name": "greet", "python_code": CODE}
        )
        tool = created.structured_content["id"]
        published = await legacy.call_tool("mcpbox_request_publish", {"tool_id": tool, "notes": "greets"})
        seen["published"] = published.structured_content["approval_status"]
        seen["before"] = [names(await legacy.list_tools()), names(await modern.list_tools())]
        async with modern.listen(tools_list_changed=True) as subscription:
            await asyncio.to_thread(api, f"/api/approvals/tools/{tool}/action", {"action": "approve"})
            await asyncio.to_thread(api, f"/api/sandbox/servers/{server}/start", {})
            await asyncio.wait_for(heard_legacy.wait(), 10)
            event = await asyncio.wait_for(subscription.__anext__(), 10)
            seen["modern_event"] = type(event).__name__
        seen["after"] = [names(await legacy.list_tools()), names(await modern.list_tools())]
        seen["results"] = []
        for client in (legacy, modern):
            result = await client.call_tool("sdk__greet", {"city": "Oslo"})
            seen["results"].append(
                {
                    "is_error": result.is_error,
                    "structured": result.structured_content,
                    "text": result.content[0].text,
                }
            )
    print(json.dumps(seen))


asyncio.run(main())
