"""Local HTTP receivers standing in for the alert channels (real HTTP, no mocks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from trafficlight.base.local_services import free_port


@dataclass
class Receiver:
    """An alert channel: answers ``refusal`` to the first ``failures`` posts, then 200."""

    url: str
    failures: int = 0
    attempts: int = 0
    accepted: list[dict] = field(default_factory=list)


@asynccontextmanager
async def serving(scheme: str, path: str, refusal: int) -> AsyncIterator[Receiver]:
    """A receiver of JSON posts on ``path`` of a free loopback port, its URL in ``scheme``."""
    port = free_port()
    state = Receiver(f"{scheme}://127.0.0.1:{port}{path}")

    async def post(request: web.Request) -> web.Response:
        state.attempts += 1
        if state.attempts <= state.failures:
            return web.Response(status=refusal, text="try later")
        state.accepted.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post(path, post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A Slack stand-in (an incoming-webhook URL); refusals are 503s."""
    async with serving("http", "/services/T000/B000/secret", 503) as state:
        yield state


@pytest.fixture
async def json_receiver() -> AsyncIterator[Receiver]:
    """A generic JSON webhook (Apprise's json:// posts {title, message, type, ...});
    refusals are 500s."""
    async with serving("json", "/hooks/trafficlight", 500) as state:
        yield state
