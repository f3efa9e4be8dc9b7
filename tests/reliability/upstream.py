"""A stand-in for the legacy and unified handlers, in a process of its own.

Run as ``python -m tests.reliability.upstream PORT [DELAY_MS]``. It answers
``/{legacy|unified}/webhook/{domain}`` after ``DELAY_MS`` (its own latency), counts every
request by its ``X-Test-Seq`` header, and reports the counts at ``GET /seen``. Apart from the
test process so that load on the router is not load on the upstream's event loop.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter

import orjson
from aiohttp import web

SEQ_HEADER = "X-Test-Seq"


def create_app(delay_s: float) -> web.Application:
    seen: dict[str, Counter[str]] = {"legacy": Counter(), "unified": Counter()}
    paths: Counter[str] = Counter()

    async def handle(request: web.Request) -> web.Response:
        target = request.match_info["target"]
        await request.read()
        seen[target][request.headers.get(SEQ_HEADER, "")] += 1
        paths[request.path] += 1
        if delay_s:
            await asyncio.sleep(delay_s)
        return web.Response(text=f"{target} ok", headers={"X-Handled-By": target})

    async def report(_request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"seen": seen, "paths": paths}),
                            content_type="application/json")

    app = web.Application(client_max_size=8 << 20)
    app.router.add_route("*", "/{target:legacy|unified}/webhook/{domain}", handle)
    app.router.add_get("/seen", report)
    return app


def main() -> None:
    port = int(sys.argv[1])
    delay_s = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.0
    web.run_app(create_app(delay_s), host="127.0.0.1", port=port, access_log=None, print=None,
                backlog=4096)


if __name__ == "__main__":
    main()
