"""The MCP Python SDK as the clients of two MCPbox replicas behind a load balancer
(`tests/tests/replicas.rs`).

Usage:
  replicas_load.py load URL TOOL FIRST COUNT CONCURRENCY MODE
      COUNT calls of TOOL with the unique arguments {"n": FIRST..FIRST+COUNT-1}, CONCURRENCY at a
      time, each worker with its own client (MODE "legacy": a 2025-11-25 session; "modern":
      2026-07-28 stateless). No call is ever sent twice: a call that fails is recorded as an error
      with its message. A legacy worker whose session is gone ("Session terminated", the SDK's
      reading of the spec's 404) or whose call failed opens a new session, possibly on the other
      replica, before its next call. Prints one JSON object: ok ids, errors by id, re-initializations, seconds.
  replicas_load.py announce URL
      A legacy session and a modern `subscriptions/listen` on URL; prints "ready", then waits
      for notifications/tools/list_changed on both and prints one JSON object.
"""

import asyncio
import json
import sys
import time

from mcp import Client

CALL_TIMEOUT = 30.0


async def load(url, tool, first, count, concurrency, mode):
    connect_mode = "legacy" if mode == "legacy" else "2026-07-28"
    ids = iter(range(first, first + count))
    ok, errors = [], {}
    reinitialized = 0

    async def worker():
        nonlocal reinitialized
        client = None
        try:
            for n in ids:
                if client is None:
                    try:
                        client = Client(url, mode=connect_mode, read_timeout_seconds=CALL_TIMEOUT)
                        await client.__aenter__()
                    except Exception as err:  # the replica may be down: this call is an error
                        errors[n] = "connect: " + repr(err)[:200]
                        client = None
                        await asyncio.sleep(0.2)
                        continue
                try:
                    result = await asyncio.wait_for(client.call_tool(tool, {"n": n}), CALL_TIMEOUT + 5)
                    if result.is_error or (result.structured_content or {}).get("n") != n:
                        errors[n] = "tool: " + repr(result.content)[:200]
                    else:
                        ok.append(n)
                except Exception as err:
                    errors[n] = repr(err)[:200]
                    if mode == "legacy":
                        reinitialized += 1
                    # A client that saw an error is not trusted with the next call: a new one
                    # (a new session for legacy) takes over, as an application would.
                    try:
                        await client.__aexit__(None, None, None)
                    except Exception:
                        pass
                    client = None
        finally:
            if client is not None:
                try:
                    await client.__aexit__(None, None, None)
                except Exception:
                    pass

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    print(
        json.dumps(
            {
                "ok": ok,
                "errors": errors,
                "reinitialized": reinitialized,
                "seconds": time.monotonic() - started,
            }
        )
    )


async def announce(url):
    heard_legacy = asyncio.Event()

    async def on_message(message):
        if "tools/list_changed" in repr(message) or "ToolListChanged" in repr(message):
            heard_legacy.set()

    seen = {}
    async with Client(url, mode="legacy", message_handler=on_message) as legacy, Client(url) as modern:
        seen["versions"] = [legacy.protocol_version, modern.protocol_version]
        async with modern.listen(tools_list_changed=True) as subscription:
            print("ready", flush=True)
            await asyncio.wait_for(heard_legacy.wait(), 20)
            event = await asyncio.wait_for(subscription.__anext__(), 20)
            seen["modern_event"] = type(event).__name__
        seen["tools"] = sorted(t.name for t in (await legacy.list_tools()).tools if not t.name.startswith("mcpbox_"))
    print(json.dumps(seen), flush=True)


if sys.argv[1] == "load":
    _, _, url, tool, first, count, concurrency, mode = sys.argv
    asyncio.run(load(url, tool, int(first), int(count), int(concurrency), mode))
else:
    asyncio.run(announce(sys.argv[2]))
