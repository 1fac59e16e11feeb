"""Tools that ask back, with the official MCP Python SDK answering, on both protocol revisions.

Usage: python_sdk_ask.py BASE_URL TOOL
Prints one JSON object: for each revision, what the tool answered and which questions reached
the callbacks. On 2025-11-25 ("legacy") the server asks over the session; on 2026-07-28
("modern") the SDK gets an InputRequiredResult and retries with the answers itself. The Rust
test (`tests/ask_back.rs`) checks it and the execution log.
"""

import asyncio
import json
import sys

from mcp import Client, types

BASE, TOOL = sys.argv[1], sys.argv[2]


async def main():
    seen = {}
    for mode in ("legacy", "modern"):
        questions = []

        async def on_elicit(context, params):
            questions.append(["elicitation", params.message])
            return types.ElicitResult(action="accept", content={"name": "Ada"})

        async def on_sample(context, params):
            questions.append(["sampling", params.messages[0].content.text])
            return types.CreateMessageResult(
                role="assistant",
                content=types.TextContent(type="text", text="Bonjour"),
                model="test-model",
            )

        async def on_roots(context):
            questions.append(["roots", None])
            return types.ListRootsResult(roots=[types.Root(uri="file:///home/ada/project", name="project")])

        kwargs = {"mode": "legacy"} if mode == "legacy" else {}
        async with Client(
            BASE + "/mcp",
            elicitation_callback=on_elicit,
            sampling_callback=on_sample,
            list_roots_callback=on_roots,
            **kwargs,
        ) as client:
            result = await client.call_tool(TOOL, {"punctuation": "!"})
            seen[mode] = {
                "is_error": result.is_error,
                "text": result.content[0].text,
                "questions": questions,
            }
    print(json.dumps(seen))


asyncio.run(main())
