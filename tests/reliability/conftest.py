"""Fixtures of the reliability suite: an upstream process, a broker of the test's own, a config."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from tests.reliability.harness import UPSTREAM_DELAY_MS, RouterProcess, UpstreamProcess
from trafficlight.base.db import connect
from trafficlight.base.kafka import ensure_topics
from trafficlight.base.local_services import BrokerKind, LocalBroker, local_broker

#: Where each scenario's figures go (gitignored); `pytest -s` shows them as they come too.
FIGURES_FILE = Path(__file__).parents[1] / "artifacts" / "reliability-figures.txt"


@pytest.fixture
def figures(broker_kind: BrokerKind) -> Callable[[str], None]:
    """``figures(line)``: record a scenario's measured figures for the closing report, each
    line headed by the broker it ran on."""

    def record(line: str) -> None:
        line = f"{broker_kind.value}: {line.strip()}"
        FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
        with FIGURES_FILE.open("a") as out:
            out.write(line + "\n")
        print(line)

    return record


@pytest.fixture
async def upstream() -> AsyncIterator[UpstreamProcess]:
    running = await UpstreamProcess.start(delay_ms=UPSTREAM_DELAY_MS)
    yield running
    running.stop()


@pytest.fixture
async def router_at_100(tmp_path: Path, database_url: str, kafka_bootstrap: str,
                        upstream: UpstreamProcess) -> AsyncIterator[RouterProcess]:
    """A running router with every rollout domain at 100 % unified (protected ones stay on
    legacy whatever the config says)."""
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT update_routing_percentage(100, 'reliability suite')")
    finally:
        await conn.close()
    process = await RouterProcess.configure(tmp_path, upstream, kafka_bootstrap,
                                            database_url).start()
    yield process
    await process.stop()


class Killable(Protocol):
    def kill(self) -> None: ...


K = TypeVar("K", bound=Killable)


@pytest.fixture
def reap() -> Iterator[Callable[[K], K]]:
    """``reap(process)``: killed at teardown if still running, so a failed test leaves no
    router or worker behind to load the machine for the tests after it."""
    started: list[Killable] = []

    def register(process: K) -> K:
        started.append(process)
        return process

    yield register
    for process in started:
        process.kill()


@pytest.fixture
def own_broker(broker_kind: BrokerKind, service_dir: Path) -> Iterator[LocalBroker]:
    """A broker of the session's kind this test alone may stop, kill and restart (on the
    same port). Tansu comes back empty; Apache Kafka with every topic and record."""
    broker = local_broker(broker_kind, service_dir / "kafka").start()
    yield broker
    broker.kill()


@pytest.fixture
def events_topic_on(unique_topic: Callable[[str], str]) -> Callable[[str], Awaitable[str]]:
    """``await events_topic_on(bootstrap)``: this test's events topic, created there."""
    topic = unique_topic("reliability-events")

    async def create(bootstrap_servers: str) -> str:
        await ensure_topics(bootstrap_servers, {topic: 2})
        return topic

    return create


@pytest.fixture
async def rollout_at_50(database_url: str) -> str:
    """The test's database with routing enabled at 50 % for the rollout domains."""
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT update_routing_percentage(50, 'reliability suite')")
    finally:
        await conn.close()
    return database_url


@pytest.fixture
async def spooling_router(tmp_path: Path, own_broker: LocalBroker, upstream: UpstreamProcess,
                          rollout_at_50: str,
                          events_topic_on: Callable[[str], Awaitable[str]]
                          ) -> AsyncIterator[tuple[RouterProcess, str]]:
    """A router on the test's own broker at 50 %, and its events topic. Its memory buffer is
    small (256 KiB), so a broker outage goes through the on-disk spool, not RAM."""
    topic = await events_topic_on(own_broker.bootstrap_servers)
    router = await RouterProcess.configure(
        tmp_path, upstream, own_broker.bootstrap_servers, rollout_at_50, events_topic=topic,
        buffer_max_bytes=256 * 1024).start()
    yield router, topic
    router.kill()  # only if the test left it running
