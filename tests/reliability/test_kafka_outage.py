"""Scenario 1: the broker stops for 60 s under 500 webhooks/s, then comes back.

The router must answer every webhook from its upstream as if nothing happened and, once the
broker is back, deliver every routing event it could not deliver before. Traffic pauses for
the instant of the stop until the collector has read every event acknowledged so far; then
the broker stops and 500 webhooks/s run for the whole outage. After it, every event is on the
topic exactly once.

Apache Kafka stops (controlled shutdown) and starts again with its logs: the topic is never
re-created and the whole topic is read again at the end. The embedded Tansu keeps nothing
across a restart: the test creates the topic again at once, but the router may reach the
broker first, and Tansu then auto-creates it with its own partition count (4); the router
sends only on fresh metadata that shows the topic (nothing while the broker is down: a batch
sent then on the old metadata went out the moment Tansu was back, before its topic, and was
lost: 630 and 1,331 of 40,000 in two runs), so its records land on partitions that exist
either way. Events read before the stop count as delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from tests.reliability.harness import (
    UPSTREAM_DELAY_MS,
    EventCollector,
    Load,
    RouterProcess,
    UpstreamProcess,
    partitions_of,
    percentile,
)
from trafficlight.base.local_services import LocalBroker

RATE_PER_S = 500
BEFORE_S, OUTAGE_S, AFTER_S = 10, 60, 10


@pytest.mark.reliability
async def test_a_60s_broker_outage_drops_no_webhook_and_loses_no_event(
        own_broker: LocalBroker, upstream: UpstreamProcess,
        spooling_router: tuple[RouterProcess, str],
        events_topic_on: Callable[[str], Awaitable[str]],
        figures: Callable[[str], None]) -> None:
    router, topic = spooling_router
    load = Load(router.base, RATE_PER_S)

    # 1. Normal traffic; then everything the broker acknowledged is read before it stops.
    before = await EventCollector(own_broker.bootstrap_servers, topic).start()
    await load.run(BEFORE_S)
    assert await before.wait_for(load.event_ids()) == set()
    await before.stop()

    # 2. The broker is down for OUTAGE_S while webhooks keep coming.
    await asyncio.to_thread(own_broker.stop)
    down_at = time.time()
    peak = Counter[str]()

    async def watch_router() -> None:
        while True:
            await asyncio.sleep(1)
            health = await router.healthz()
            peak["spooled"] = max(peak["spooled"], health["events_spooled"])
            peak["rss"] = max(peak["rss"], router.rss_bytes)

    watcher = asyncio.create_task(watch_router())
    await load.run(OUTAGE_S)
    watcher.cancel()

    # 3. The broker again on the same port: Kafka with its logs, Tansu empty (topic again).
    await asyncio.to_thread(own_broker.start)
    up_at = time.time()
    if not own_broker.keeps_data:
        await events_topic_on(own_broker.bootstrap_servers)
    after = await EventCollector(own_broker.bootstrap_servers, topic).start()
    await load.run(AFTER_S)
    read_before = set() if own_broker.keeps_data else set(before.counts)
    missing = await after.wait_for(load.event_ids() - read_before, timeout_s=120)
    health = await router.healthz()
    partitions = len(await partitions_of(own_broker.bootstrap_servers, topic))
    await after.stop()
    await router.stop()

    outcomes = load.outcomes
    failures = Counter(o.error or o.status for o in outcomes if o.status != 200)
    seen = (await upstream.seen())["seen"]
    forwarded = sum(len(counts) for counts in seen.values())
    forwarded_twice = sum(1 for counts in seen.values() for n in counts.values() if n > 1)
    # Kafka: the collector after the outage read the whole topic; Tansu: only what is new.
    read = after.counts if own_broker.keeps_data else before.counts + after.counts
    duplicated = sum(1 for n in read.values() if n > 1)

    def latency_ms(lo: float, hi: float) -> str:
        phase = [o.latency_s for o in outcomes if lo <= o.sent_at < hi]
        return f"{1000 * percentile(phase, 50):.1f}/{1000 * percentile(phase, 99):.0f}"

    figures(f"[broker outage] {len(outcomes)} webhooks at {RATE_PER_S}/s, broker down "
          f"{up_at - down_at:.0f} s: failures {dict(failures)}; {forwarded} forwarded "
          f"({forwarded_twice} twice); events missing {len(missing)}, duplicated "
          f"{duplicated}, read after the outage {len(after.counts)} ({partitions} "
          f"partitions); peak spooled {peak['spooled']}; dropped "
          f"{health['events_dropped']}; peak RSS "
          f"{peak['rss'] / 2**20:.0f} MiB; latency p50/p99 ms before "
          f"{latency_ms(0, down_at)}, during {latency_ms(down_at, up_at)}, after "
          f"{latency_ms(up_at, float('inf'))} (upstream's own {UPSTREAM_DELAY_MS:.0f})")

    assert failures == Counter()
    assert len(outcomes) == RATE_PER_S * (BEFORE_S + OUTAGE_S + AFTER_S)
    assert (forwarded, forwarded_twice) == (len(outcomes), 0)
    assert peak["spooled"] > 0  # the outage really went through the disk spool
    assert health["events_dropped"] == 0
    assert missing == set()
