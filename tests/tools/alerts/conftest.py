"""Local HTTP receivers standing in for the alert channels (real HTTP, no mocks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from trafficlight.base.local_services import free_port


@dataclass
class Receiver:
    """A Slack stand-in: answers 503 to the first ``failures`` posts, then 200."""

    url: str
    failures: int = 0
    attempts: int = 0
    accepted: list[dict] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    state = Receiver(f"http://127.0.0.1:{port}/services/T000/B000/secret")

    async def post(request: web.Request) -> web.Response:
        state.attempts += 1
        if state.attempts <= state.failures:
            return web.Response(status=503, text="try later")
        state.accepted.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/services/T000/B000/secret", post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state
    await runner.cleanup()


@pytest.fixture
async def json_receiver() -> AsyncIterator[Receiver]:
    """A generic JSON webhook (Apprise's json:// posts {title, message, type, ...})."""
    port = free_port()
    state = Receiver(f"json://127.0.0.1:{port}/hooks/trafficlight")

    async def post(request: web.Request) -> web.Response:
        state.attempts += 1
        if state.attempts <= state.failures:
            return web.Response(status=500, text="not yet")
        state.accepted.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hooks/trafficlight", post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state
    await runner.cleanup()
