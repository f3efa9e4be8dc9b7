"""The broker stops for 60 s under 500 webhooks/s: every webhook answered, every event delivered.

The router runs as its own process (``trafficlight router``) against its own embedded broker.
Tansu keeps records in memory, so what the old broker held is gone once it stops: the test
stops it at a moment when everything it acknowledged has been read (the load pauses for that
instant), then counts what was read before the stop plus what reaches the new broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from tests.router.support import Upstream
from trafficlight.kafka import ensure_topics
from trafficlight.services import EmbeddedBroker, free_port

pytestmark = pytest.mark.reliability

RATE_PER_S = 500
OUTAGE_S = 60
TOPIC = "webhook-routing-events"


class Load:
    """Open-loop webhooks at a fixed rate; remembers each answer's status and event id."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.statuses: list[int] = []
        self.event_ids: set[str] = set()
        self.in_flight: set[asyncio.Task[None]] = set()

    async def one(self, n: int) -> None:
        body = orjson.dumps({"entry": [{"changes": [{"value": {"messages": [{"from": str(n)}]}}]}]})
        async with self.session.post(self.url, data=body) as response:
            await response.read()
            self.statuses.append(response.status)
            self.event_ids.add(response.headers["X-Routing-Event-Id"])

    async def run(self, duration_s: float) -> None:
        started = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - started) < duration_s:
            while sent < elapsed * RATE_PER_S:
                task = asyncio.create_task(self.one(sent))
                self.in_flight.add(task)
                task.add_done_callback(self.in_flight.discard)
                sent += 1
            await asyncio.sleep(0.01)

    async def settle(self) -> None:
        await asyncio.gather(*self.in_flight)


async def read_ids(bootstrap: str, into: set[str], stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        while not stop.is_set():
            for messages in (await consumer.getmany(timeout_ms=100)).values():
                into.update(e["event_id"] for m in messages for e in orjson.loads(m.value))
    finally:
        await consumer.stop()


async def until(condition: Callable[[], bool], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    running = EmbeddedBroker().start()
    yield running
    running.stop()


@pytest.fixture
async def router_url(broker: EmbeddedBroker, legacy: Upstream,
                     tmp_path: Path) -> AsyncIterator[str]:
    await ensure_topics(broker.bootstrap_servers, {TOPIC: 2})
    port = free_port()
    config = tmp_path / "router.toml"
    config.write_text(f"""[router]
host = "127.0.0.1"
port = {port}
legacy_url = "{legacy.url_template}"
unified_url = "{legacy.url_template}"
buffer_max_bytes = 262144
spool_dir = "{tmp_path / 'spool'}"
""")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
    with open(tmp_path / "router.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", "from trafficlight.cli import main; main()",
             "router", "--config", str(config)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            async def up() -> bool:
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{url}/healthz") as response:
                        return response.status == 200
                return False

            async with asyncio.timeout(30):
                while not await up():
                    await asyncio.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(30)


async def metric(session: aiohttp.ClientSession, url: str, name: str) -> float:
    async with session.get(f"{url}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_a_60_s_broker_outage_under_500_webhooks_per_s_loses_nothing(
        broker: EmbeddedBroker, router_url: str) -> None:
    before_stop: set[str] = set()
    after_restart: set[str] = set()
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        load = Load(session, f"{router_url}/webhook/jobs")
        stop_reading = asyncio.Event()
        reader = asyncio.create_task(read_ids(broker.bootstrap_servers, before_stop, stop_reading))

        # 1. Traffic flows, events reach Kafka and are read.
        await load.run(5)
        await load.settle()
        await until(lambda: load.event_ids <= before_stop, timeout_s=30)
        stop_reading.set()
        await reader

        # 2. The broker stops; webhooks keep coming for 60 s.
        broker.stop()
        await load.run(OUTAGE_S)
        spooled_during_outage = await metric(session, router_url,
                                             "trafficlight_router_events_spooled")

        # 3. A new broker on the same port (memory storage: the topic is created again).
        broker.start()
        await ensure_topics(broker.bootstrap_servers, {TOPIC: 2})
        await load.run(5)
        await load.settle()

        # 4. Every event arrives: read before the stop, or from the new broker.
        stop_reading.clear()
        reader = asyncio.create_task(read_ids(broker.bootstrap_servers, after_restart,
                                              stop_reading))
        await until(lambda: load.event_ids <= before_stop | after_restart, timeout_s=120)
        stop_reading.set()
        await reader
        dropped = await metric(session, router_url, "trafficlight_router_events_dropped_total")

    answered = len(load.statuses)
    print(f"\n{answered} webhooks answered, {len(after_restart)} events from the new broker, "
          f"{spooled_during_outage:.0f} events were spooled at the end of the outage")
    assert set(load.statuses) == {200}
    assert answered >= RATE_PER_S * (OUTAGE_S + 10) * 0.9
    assert len(load.event_ids) == answered
    assert spooled_during_outage > 0
    assert dropped == 0
