"""The dashboard's aiohttp app: a page, a JSON snapshot, an SSE feed and token-guarded controls.

Request flow: `GET /` serves the page; the page reads `GET /api/state` once and then
`GET /api/stream` (Server-Sent Events), which pushes a new snapshot whenever one is read
(every `refresh_s`, and at once after a control). One background task reads the database
for all viewers. `POST /api/{percentage,enable,disable,rollback}` need
`Authorization: Bearer <token>`; without it the dashboard is read-only. In the demo,
`/api/knobs` relays to the simulated handlers' knobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from trafficlight.base.db import create_pool, redact
from trafficlight.base.errors import TrafficlightError, first_line
from trafficlight.streams.thresholds import ThresholdSet
from trafficlight.tools.dashboard.controls import (
    ControlRefused,
    apply_control,
    apply_plan_control,
)
from trafficlight.tools.dashboard.snapshot import read_snapshot

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"

_READ_ERRORS = (OSError, TimeoutError, TrafficlightError, asyncpg.PostgresError,
                asyncpg.InterfaceError)


@dataclass(frozen=True)
class DashboardSettings:
    database_url: str
    #: The bearer token for controls; never logged, never sent to a viewer.
    token: str
    #: The workers' thresholds: drawn on the charts.
    thresholds: ThresholdSet = field(default_factory=ThresholdSet)
    history_s: float = 900.0
    refresh_s: float = 1.0
    #: The simulated handlers' knobs endpoint (demo only).
    knobs_url: str | None = None


class SnapshotFeed:
    """The latest snapshot as JSON bytes, re-read in the background, with waiters for news."""

    def __init__(self, settings: DashboardSettings) -> None:
        self._settings = settings
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self.version = 0
        self.body = b"{}"
        self.error: str | None = None
        self.closed = False

    async def run(self, pool: asyncpg.Pool) -> None:
        """Re-read every `refresh_s`, or at once when poked; the first read is the caller's."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.refresh_s)
            # Cleared before reading, so a poke during the read is answered by the next one.
            self._wake.clear()
            await self.refresh(pool)

    async def refresh(self, pool: asyncpg.Pool) -> None:
        try:
            async with pool.acquire() as conn:
                snapshot = await read_snapshot(conn, history_s=self._settings.history_s,
                                               thresholds=self._settings.thresholds)
            self.error = None
        except _READ_ERRORS as exc:  # keep serving the last snapshot; say why once
            reason = first_line(exc)
            if self.error != reason:
                log.warning("dashboard: cannot read %s: %s",
                            redact(self._settings.database_url), reason)
            self.error = reason
            return
        snapshot["knobs_enabled"] = self._settings.knobs_url is not None
        async with self._changed:
            self.body = orjson.dumps(snapshot)
            self.version += 1
            self._changed.notify_all()

    def poke(self) -> None:
        """Read again now (after a control changed something)."""
        self._wake.set()

    async def wait_newer(self, version: int, timeout_s: float) -> int:
        """The version after ``version`` once there is one, or the same after the timeout."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(
                    lambda: self.version > version or self.closed), timeout_s)
            return self.version

    async def close(self) -> None:
        """End every open stream, so a shutdown does not wait on viewers' connections."""
        async with self._changed:
            self.closed = True
            self._changed.notify_all()


SETTINGS = web.AppKey("settings", DashboardSettings)
FEED = web.AppKey("feed", SnapshotFeed)
POOL = web.AppKey("pool", asyncpg.Pool)
HTTP = web.AppKey("http", aiohttp.ClientSession)


def is_authorized(request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    expected = request.app[SETTINGS].token
    return (scheme.lower() == "bearer" and bool(presented)
            and hmac.compare_digest(presented.strip().encode(), expected.encode()))


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status,
                        content_type="application/json")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError:
        raise ControlRefused("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ControlRefused("the request body must be a JSON object")
    return body


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def state(request: web.Request) -> web.Response:
    return web.Response(body=request.app[FEED].body, content_type="application/json")


async def stream(request: web.Request) -> web.StreamResponse:
    """SSE: one `data:` line of snapshot JSON per new snapshot, comments as keep-alives."""
    feed = request.app[FEED]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    version = 0
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        while not feed.closed:
            newer = await feed.wait_newer(version, timeout_s=15)
            if newer == version:
                await response.write(b": keep-alive\n\n")
                continue
            version = newer
            await response.write(b"data: " + feed.body + b"\n\n")
    return response


async def control(request: web.Request) -> web.Response:
    if not is_authorized(request):
        return _json({"error": "a valid dashboard token is required for controls"}, 401)
    try:
        await apply_control(request.app[SETTINGS].database_url, request.match_info["action"],
                            await _body(request))
    except ControlRefused as exc:
        return _json({"error": str(exc)}, 400)
    request.app[FEED].poke()
    return _json({"ok": True})


async def plan_control(request: web.Request) -> web.Response:
    if not is_authorized(request):
        return _json({"error": "a valid dashboard token is required for controls"}, 401)
    try:
        await apply_plan_control(request.app[SETTINGS].database_url,
                                 request.match_info["action"], await _body(request))
    except ControlRefused as exc:
        return _json({"error": str(exc)}, 400)
    request.app[FEED].poke()
    return _json({"ok": True})


async def knobs(request: web.Request) -> web.Response:
    """Relay to the simulated handlers' knobs; reading is open, changing needs the token."""
    settings = request.app[SETTINGS]
    if settings.knobs_url is None:
        return _json({"error": "no simulated handlers here"}, 404)
    if request.method == "POST" and not is_authorized(request):
        return _json({"error": "a valid dashboard token is required for controls"}, 401)
    data = await request.read() if request.method == "POST" else None
    try:
        async with request.app[HTTP].request(
            request.method, settings.knobs_url, data=data,
            headers={"Content-Type": "application/json"},
        ) as upstream:
            return web.Response(body=await upstream.read(), status=upstream.status,
                                content_type="application/json")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return _json({"error": f"simulated handlers unreachable: {exc}"}, 502)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[POOL] = await create_pool(settings.database_url, min_size=1, max_size=3)
    app[HTTP] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
    await app[FEED].refresh(app[POOL])
    poller = asyncio.create_task(app[FEED].run(app[POOL]))
    yield
    poller.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await poller
    await app[HTTP].close()
    await app[POOL].close()


def create_app(settings: DashboardSettings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[FEED] = SnapshotFeed(settings)
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(lambda app: app[FEED].close())
    app.router.add_get("/", index)
    app.router.add_get("/api/state", state)
    app.router.add_get("/api/stream", stream)
    app.router.add_post("/api/{action:percentage|enable|disable|rollback}", control)
    app.router.add_post("/api/plan/{action:set|promote|pause|resume|abort}", plan_control)
    app.router.add_route("*", "/api/knobs", knobs)
    app.router.add_static("/static", STATIC_DIR)
    return app
