"""Progress and cancellation with the official MCP Python SDK, on both protocol revisions.

Usage: python_sdk_progress.py BASE_URL PROGRESS_TOOL BUSY_TOOL
Prints one JSON object with what the clients saw; the Rust test (`tests/tool_calls.rs`) checks
it and the execution log.

For each revision: one call with a progress callback (the SDK sends a progressToken), then a
call of a tool that never ends, abandoned after 1.5 s (the SDK cancels the request).
"""

import asyncio
import json
import sys
import time

from mcp import Client

BASE, PROGRESS_TOOL, BUSY_TOOL = sys.argv[1], sys.argv[2], sys.argv[3]


async def main():
    seen = {}
    for mode in ("legacy", "modern"):
        kwargs = {"mode": "legacy"} if mode == "legacy" else {}
        async with Client(BASE + "/mcp", **kwargs) as client:
            reports = []

            async def on_progress(progress, total, message):
                reports.append([progress, total, message])

            result = await client.call_tool(PROGRESS_TOOL, {}, progress_callback=on_progress)
            started = time.monotonic()
            try:
                await asyncio.wait_for(client.call_tool(BUSY_TOOL, {}), 1.5)
                abandoned = "finished"
            except (asyncio.TimeoutError, TimeoutError):
                abandoned = "cancelled"
            seen[mode] = {
                "reports": reports,
                "is_error": result.is_error,
                "text": result.content[0].text,
                "abandoned": abandoned,
                "abandoned_after_s": round(time.monotonic() - started, 2),
            }
            # Let the courtesy cancellation reach the server before the session closes.
            await asyncio.sleep(0.5)
    print(json.dumps(seen))


asyncio.run(main())
