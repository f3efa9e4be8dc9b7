"""Real upstreams and a topic reader for the router's HTTP tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiokafka import AIOKafkaConsumer
from yarl import URL

from trafficlight.router.decision import RoutingConfig
from trafficlight.router.emitter import EventEmitter
from trafficlight.router.http_server import HttpServer
from trafficlight.router.settings import RouterSettings
from trafficlight.router.spool import Spool

#: Headers a test sends to make the upstream misbehave; they are forwarded like any other.
REPLY_STATUS_HEADER = "X-Test-Reply-Status"
REPLY_DELAY_HEADER = "X-Test-Reply-Delay-S"


class RouterClient:
    """Requests to a router under test over real HTTP; each answer is read whole."""

    def __init__(self, base: str, server: HttpServer, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.server = server
        self.session = session

    async def request(self, method: str, path: str | URL, **kwargs: Any
                      ) -> aiohttp.ClientResponse:
        url = URL(self.base + str(path), encoded=True)
        async with self.session.request(method, url, **kwargs) as response:
            await response.read()
        return response

    async def post(self, path: str | URL, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.request("POST", path, **kwargs)

    async def get(self, path: str | URL, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.request("GET", path, **kwargs)

    async def close(self) -> None:
        await self.session.close()
        await self.server.shutdown(5)


@dataclass
class Seen:
    method: str
    path: str
    query_string: str
    headers: dict[str, list[str]]
    body: bytes


@dataclass
class Upstream:
    """A handler (legacy or unified) on a real port that records what reached it."""

    name: str
    server: TestServer
    seen: list[Seen] = field(default_factory=list)

    @property
    def url_template(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/webhook/{{domain}}"


async def start_upstream(name: str) -> Upstream:
    app = web.Application(client_max_size=8 << 20)
    upstream = Upstream(name, TestServer(app, host="127.0.0.1"))

    async def handle(request: web.Request) -> web.Response:
        headers: dict[str, list[str]] = {}
        for key, value in request.headers.items():
            headers.setdefault(key.lower(), []).append(value)
        upstream.seen.append(Seen(request.method, request.path, request.query_string, headers,
                                  await request.read()))
        await asyncio.sleep(float(request.headers.get(REPLY_DELAY_HEADER, "0")))
        if "hub.challenge" in request.query:
            return web.Response(text=request.query["hub.challenge"])
        status = int(request.headers.get(REPLY_STATUS_HEADER, "200"))
        return web.Response(status=status, body=f"{name} says {status}".encode(),
                            headers={"X-Handled-By": name, "Content-Type": "text/plain"})

    app.router.add_route("*", "/webhook/{domain}", handle)
    await upstream.server.start_server()
    return upstream


def emitter_for(settings: RouterSettings, bootstrap: str) -> EventEmitter:
    return EventEmitter(bootstrap, settings.events_topic,
                        Spool(settings.spool_dir, settings.spool_max_bytes),
                        batch_max_events=settings.batch_max_events,
                        batch_linger_s=settings.batch_linger_s,
                        buffer_max_bytes=settings.buffer_max_bytes)


async def consume_records(bootstrap: str, topic: str, count: int,
                          timeout_s: float = 30) -> list[tuple[bytes, bytes]]:
    """The first records of ``topic`` until ``count`` events are read: (key, value) each."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list[tuple[bytes, bytes]] = []
    events = 0
    try:
        async with asyncio.timeout(timeout_s):
            while events < count:
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend((m.key, m.value) for m in messages)
                    events += sum(len(orjson.loads(m.value)) for m in messages)
    finally:
        await consumer.stop()
    return records


async def consume_events(bootstrap: str, topic: str, count: int,
                         timeout_s: float = 30) -> list[tuple[bytes, list[dict[str, Any]]]]:
    """Like :func:`consume_records`, each value decoded: (key, events) each."""
    records = await consume_records(bootstrap, topic, count, timeout_s)
    return [(key, orjson.loads(value)) for key, value in records]


ROLLOUT = frozenset({"jobs", "marketplace", "property"})
PROTECTED = frozenset({"mobility", "profile", "insurance"})


def rollout_config(percentage: float, version: int = 3) -> RoutingConfig:
    return RoutingConfig(version=version, percentage=percentage, enabled=percentage > 0,
                         domains=ROLLOUT, protected_domains=PROTECTED)
