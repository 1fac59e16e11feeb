"""The LLM's side of the browser test, with the official MCP Python SDK (2025-11-25 sessions).

Usage: python_sdk_publish.py BASE_URL STEP [TOOL_ID]
  publish        creates the server `weather` and the tool `forecast` (version 1) and asks for
                 review; prints {"server": id, "tool": id}
  update SERVER TOOL
                 starts the server (version 1 is approved by then), writes version 2 and asks
                 for review; prints {"started": bool, "updated": bool}
  call           lists the tools and calls weather__forecast; prints what it saw
Everything goes over MCP with the `mcpbox_*` tools, as an LLM would; the approvals happen in the
browser (tests/tests/ui_browser.rs).
"""

import asyncio
import json
import sys

from mcp import Client

BASE, STEP = sys.argv[1], sys.argv[2]
V1 = (
    "async def main(city: str) -> dict:\n"
    '    """Tomorrow\'s forecast for a city."""\n'
    "    return {'city': city, 'sky': 'sunny'}\n"
)
V2 = (
    "async def main(city: str, days: int = 1) -> dict:\n"
    '    """The forecast for a city, for some days."""\n'
    "    return {'city': city, 'sky': 'sunny', 'days': days}\n"
)


async def main():
    async with Client(BASE + "/mcp", mode="legacy") as llm:
        if STEP == "publish":
            server = (await llm.call_tool("mcpbox_create_server", {"name": "weather"})).structured_content["id"]
            created = await llm.call_tool(
                "mcpbox_create_tool", {"server_id": server, "name": "forecast", "python_code": V1}
            )
            tool = created.structured_content["id"]
            await llm.call_tool("mcpbox_request_publish", {"tool_id": tool, "notes": "first version"})
            print(json.dumps({"server": server, "tool": tool}))
        elif STEP == "update":
            server, tool = sys.argv[3], sys.argv[4]
            # Version 1 is approved by now, so the server can start.
            started = await llm.call_tool("mcpbox_start_server", {"server_id": server})
            updated = await llm.call_tool(
                "mcpbox_update_tool",
                {"tool_id": tool, "python_code": V2, "change_summary": "add days"},
            )
            published = await llm.call_tool("mcpbox_request_publish", {"tool_id": tool, "notes": "adds days"})
            print(json.dumps({"started": not started.is_error, "updated": not updated.is_error}))
        elif STEP == "call":
            listed = sorted(t.name for t in (await llm.list_tools()).tools if not t.name.startswith("mcpbox_"))
            result = await llm.call_tool("weather__forecast", {"city": "Oslo", "days": 3})
            print(json.dumps({"tools": listed, "is_error": result.is_error, "structured": result.structured_content}))


asyncio.run(main())
