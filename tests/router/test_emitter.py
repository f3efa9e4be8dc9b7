"""Routing events to Kafka: batched per domain, buffered then spooled while Kafka is away."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.router.support import consume_events
from trafficlight.base.kafka import ensure_topics
from trafficlight.base.local_services import (
    BrokerKind,
    EmbeddedBroker,
    free_port,
    local_broker,
)
from trafficlight.router.emitter import EventEmitter
from trafficlight.router.spool import Spool
from trafficlight.streams.events import RoutingEvent


def event(domain: str, n: int) -> RoutingEvent:
    return RoutingEvent(event_id=f"{domain}-{n}", ts=1_764_400_000.0 + n, domain=domain,
                        routed_to="legacy", response_time_ms=12.5, status="success",
                        http_status=200, error_message=None, router_id="r1", config_version=1)


@pytest.fixture
def unreachable_port() -> Iterator[int]:
    """A port with no broker yet; a test may start one there later."""
    yield free_port()


async def test_events_are_batched_per_domain_up_to_the_batch_size(
        kafka_bootstrap: str, events_topic: str, tmp_path: Path) -> None:
    emitter = EventEmitter(kafka_bootstrap, events_topic, Spool(tmp_path, 1 << 20),
                           batch_max_events=10, batch_linger_s=0.05)
    await emitter.start()
    for n in range(25):
        emitter.emit(event("jobs", n))
    for n in range(3):
        emitter.emit(event("property", n))
    records = await consume_events(kafka_bootstrap, events_topic, 28)
    await emitter.stop()

    sizes = sorted((key.decode(), len(events)) for key, events in records)
    assert sizes == [("jobs", 5), ("jobs", 10), ("jobs", 10), ("property", 3)]
    assert all(e["domain"] == key.decode() for key, events in records for e in events)
    assert emitter.sent_events == 28


async def test_while_kafka_is_away_events_wait_in_memory_then_on_disk_and_arrive_in_order(
        unreachable_port: int, tmp_path: Path, unique_topic: Callable[[str], str],
        broker_kind: BrokerKind) -> None:
    topic = unique_topic("outage")
    bootstrap = f"127.0.0.1:{unreachable_port}"
    emitter = EventEmitter(bootstrap, topic, Spool(tmp_path, 1 << 20), batch_max_events=5,
                           batch_linger_s=0.01, buffer_max_bytes=2_000, request_timeout_s=1)
    await emitter.start()
    for n in range(200):
        emitter.emit(event("jobs" if n % 3 else "marketplace", n))
        await asyncio.sleep(0.002)
    assert emitter.spooled_events > 0  # memory (2 kB) overflowed to the spool

    broker = local_broker(broker_kind, tmp_path / "kafka", unreachable_port).start()
    try:
        await ensure_topics(bootstrap, {topic: 1})
        records = await consume_events(bootstrap, topic, 200, timeout_s=60)
        await emitter.stop()
    finally:
        broker.stop()

    delivered = [e["event_id"] for _, events in records for e in events]
    assert len(delivered) == len(set(delivered)) == 200
    for domain in ("jobs", "marketplace"):  # one partition: the topic order is the send order
        numbers = [int(i.split("-")[1]) for i in delivered if i.startswith(domain)]
        assert numbers == sorted(numbers)
    assert (emitter.dropped_events, emitter.spooled_events, emitter.buffered_events) == (0, 0, 0)


async def test_what_is_undelivered_at_stop_is_spooled_and_sent_by_the_next_router(
        unreachable_port: int, kafka_bootstrap: str, events_topic: str, tmp_path: Path) -> None:
    first = EventEmitter(f"127.0.0.1:{unreachable_port}", events_topic, Spool(tmp_path, 1 << 20),
                         request_timeout_s=0.5)
    await first.start()
    for n in range(7):
        first.emit(event("jobs", n))
    await first.stop(drain_timeout_s=0.2)
    assert first.spooled_events == 7

    second = EventEmitter(kafka_bootstrap, events_topic, Spool(tmp_path, 1 << 20))
    await second.start()
    records = await consume_events(kafka_bootstrap, events_topic, 7)
    await second.stop()
    assert [e["event_id"] for _, events in records for e in events] == [
        f"jobs-{n}" for n in range(7)]


async def test_when_memory_and_spool_are_full_new_events_are_dropped_and_counted(
        unreachable_port: int, tmp_path: Path) -> None:
    emitter = EventEmitter(f"127.0.0.1:{unreachable_port}", "nowhere",
                           Spool(tmp_path, max_bytes=600), batch_max_events=1,
                           buffer_max_bytes=600, request_timeout_s=0.5)
    await emitter.start()
    for n in range(10):
        emitter.emit(event("jobs", n))  # never raises, never waits
    kept = emitter.buffered_events + emitter.spooled_events
    assert emitter.dropped_events == 10 - kept > 0
    await emitter.stop(drain_timeout_s=0)


async def test_a_spool_folder_removed_under_a_running_router_does_not_stop_delivery(
        unreachable_port: int, tmp_path: Path, unique_topic: Callable[[str], str],
        broker_kind: BrokerKind) -> None:
    topic = unique_topic("spool-removed")
    bootstrap = f"127.0.0.1:{unreachable_port}"
    emitter = EventEmitter(bootstrap, topic, Spool(tmp_path / "spool", 1 << 20),
                           batch_max_events=5, batch_linger_s=0.01, buffer_max_bytes=1_000,
                           request_timeout_s=0.5)
    await emitter.start()
    for n in range(20):
        emitter.emit(event("jobs", n))
    shutil.rmtree(tmp_path / "spool")  # e.g. a cleanup job; the open files live on
    for n in range(20, 40):
        emitter.emit(event("jobs", n))
        await asyncio.sleep(0.002)

    broker = local_broker(broker_kind, tmp_path / "kafka", unreachable_port).start()
    try:
        await ensure_topics(bootstrap, {topic: 1})
        records = await consume_events(bootstrap, topic, 40, timeout_s=60)
        await emitter.stop()
    finally:
        broker.stop()
    assert sorted(e["event_id"] for _, events in records for e in events) == sorted(
        f"jobs-{n}" for n in range(40))


AFTER_THE_OUTAGE = sorted(f"{domain}-{n}" for domain in ("jobs", "marketplace")
                          for n in range(1, 11))
"""The events the restart tests emit while the broker is down."""


async def emit_while_the_broker_is_down(broker: EmbeddedBroker, topic: str, spool: Path,
                                        request_timeout_s: float,
                                        failures: int) -> EventEmitter:
    """A started emitter that delivered jobs-0 and marketplace-0 to ``topic`` (2 partitions),
    then saw ``broker`` stop, was given `AFTER_THE_OUTAGE` and failed ``failures`` sends."""
    bootstrap = broker.bootstrap_servers
    await ensure_topics(bootstrap, {topic: 2})
    emitter = EventEmitter(bootstrap, topic, Spool(spool, 1 << 20), batch_max_events=1,
                           batch_linger_s=0.01, request_timeout_s=request_timeout_s)
    await emitter.start()
    emitter.emit(event("jobs", 0))
    emitter.emit(event("marketplace", 0))
    assert len(await consume_events(bootstrap, topic, 2)) == 2
    broker.stop()
    for n in range(1, 11):
        emitter.emit(event("jobs", n))
        emitter.emit(event("marketplace", n))
    async with asyncio.timeout(60):
        while emitter.send_failures < failures:
            await asyncio.sleep(0.05)
    return emitter


async def test_after_a_broker_restart_events_go_only_to_partitions_the_broker_has(
        tmp_path: Path, unique_topic: Callable[[str], str]) -> None:
    """Tansu comes back empty; here its topic comes back with one partition of two. Sent on
    the producer's old metadata, marketplace's records would go to partition 1, which Tansu
    acknowledges and never serves; the emitter looks the partitions up again first."""
    topic = unique_topic("repartitioned")
    broker = EmbeddedBroker().start()
    try:
        emitter = await emit_while_the_broker_is_down(broker, topic, tmp_path, 1, failures=1)
        broker.start()
        await ensure_topics(broker.bootstrap_servers, {topic: 1})
        records = await consume_events(broker.bootstrap_servers, topic, 20, timeout_s=60)
        await emitter.stop()
    finally:
        broker.stop()
    assert sorted(e["event_id"] for _, events in records for e in events) == AFTER_THE_OUTAGE


async def test_nothing_is_sent_while_the_broker_is_down_to_land_when_it_comes_back_empty(
        tmp_path: Path, unique_topic: Callable[[str], str]) -> None:
    """While the broker is down, the metadata lookup after a failure fails too; sending on the
    producer's old metadata then would leave a batch waiting in the producer, delivered the
    moment the broker is back, before its topic is: Tansu, restarted empty, acknowledges such
    records and never serves them. So nothing goes out until fresh metadata shows the topic."""
    topic = unique_topic("back-empty")
    broker = EmbeddedBroker().start()
    try:
        emitter = await emit_while_the_broker_is_down(broker, topic, tmp_path, 2, failures=3)
        await asyncio.sleep(1.2)  # a retry sent on the old metadata would be in flight now
        broker.start()
        await asyncio.sleep(3)  # the broker is back without the topic
        await ensure_topics(broker.bootstrap_servers, {topic: 2})
        try:
            records = await consume_events(broker.bootstrap_servers, topic, 20, timeout_s=30)
        except TimeoutError:
            records = []
        await emitter.stop()
    finally:
        broker.stop()
    assert sorted(e["event_id"] for _, events in records for e in events) == AFTER_THE_OUTAGE
