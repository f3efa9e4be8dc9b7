"""Scenario 1: the broker stops for 60 s under 500 webhooks/s, then comes back.

The router must answer every webhook from its upstream as if nothing happened and, once the
broker is back, deliver every routing event it could not deliver before. The embedded broker
keeps nothing across a restart, so the count is honest about what that loses: events the old
broker had acknowledged but the collector had not read yet go down with the broker. Every
event of a webhook received after the broker was down must arrive after it is back.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.reliability.harness import (
    UPSTREAM_DELAY_MS,
    EventCollector,
    Load,
    RouterProcess,
    UpstreamProcess,
    percentile,
)
from trafficlight.services import EmbeddedBroker

RATE_PER_S = 500
BEFORE_S, OUTAGE_S, AFTER_S = 10, 60, 15


@pytest.mark.reliability
async def test_a_60s_broker_outage_drops_no_webhook_and_loses_no_event(
        tmp_path: Path, own_broker: EmbeddedBroker, upstream: UpstreamProcess,
        rollout_at_50: str, events_topic_on: Callable[[str], Awaitable[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    topic = await events_topic_on(own_broker.bootstrap_servers)
    # A small memory buffer, so the outage is carried by the on-disk spool, not by RAM.
    router = await RouterProcess.configure(
        tmp_path, upstream, own_broker.bootstrap_servers, rollout_at_50, events_topic=topic,
        buffer_max_bytes=1 << 20).start()
    before = await EventCollector(own_broker.bootstrap_servers, topic).start()
    load = Load(router.base, RATE_PER_S)
    traffic = asyncio.create_task(load.run(BEFORE_S + OUTAGE_S + AFTER_S))

    started = time.monotonic()
    await asyncio.sleep(BEFORE_S)
    await asyncio.to_thread(own_broker.stop)
    broker_down_at = time.time()
    await before.stop()
    peak_spooled = peak_rss = 0
    while time.monotonic() < started + BEFORE_S + OUTAGE_S:
        await asyncio.sleep(1)
        health = await router.healthz()
        peak_spooled = max(peak_spooled, health["events_spooled"])
        peak_rss = max(peak_rss, router.rss_bytes)
    await asyncio.to_thread(own_broker.start)
    broker_up_at = time.time()
    await events_topic_on(own_broker.bootstrap_servers)  # the restarted broker starts empty
    after = await EventCollector(own_broker.bootstrap_servers, topic).start()
    await traffic

    outcomes = load.outcomes
    answered = [o for o in outcomes if o.status == 200 and o.event_id and o.routed_to]
    seen = (await upstream.seen())["seen"]
    forwarded = sum(len(counts) for counts in seen.values())
    duplicates_forwarded = sum(1 for counts in seen.values() for n in counts.values() if n > 1)

    # Every event of a webhook received while the broker was down comes from the spool.
    during = {o.event_id for o in answered if o.sent_at >= broker_down_at and o.event_id}
    missing_during = await after.wait_for(during, timeout_s=90)
    all_ids = {o.event_id for o in answered if o.event_id}
    missing_overall = all_ids - before.counts.keys() - after.counts.keys()
    lost_with_broker = {i for i in missing_overall if i not in during}
    duplicated = sum(1 for c in (before.counts + after.counts).values() if c > 1)
    health = await router.healthz()
    await after.stop()
    await router.stop()

    def latency_ms(lo: float, hi: float) -> str:
        phase = [o.latency_s for o in outcomes if lo <= o.sent_at < hi]
        return f"{1000 * percentile(phase, 50):.1f}/{1000 * percentile(phase, 99):.0f}"

    failures = Counter(o.error or o.status for o in outcomes if o not in answered)
    with capsys.disabled():
        print(f"\n[broker outage] {len(outcomes)} webhooks at {RATE_PER_S}/s, broker down "
              f"{broker_up_at - broker_down_at:.0f} s: {len(answered)} answered 200 by upstream "
              f"(failures {dict(failures)}), {forwarded} forwarded ({duplicates_forwarded} "
              f"twice); events of webhooks received while down: {len(during)}, missing after "
              f"restart: {len(missing_during)}; acknowledged by the old broker, lost with its "
              f"memory: {len(lost_with_broker)}; duplicates {duplicated}; peak spooled "
              f"{peak_spooled}; dropped {health['events_dropped']}; peak RSS "
              f"{peak_rss / 2**20:.0f} MiB; latency p50/p99 ms before "
              f"{latency_ms(0, broker_down_at)}, during {latency_ms(broker_down_at, broker_up_at)}"
              f", after {latency_ms(broker_up_at, float('inf'))} (upstream's own "
              f"{UPSTREAM_DELAY_MS})")

    assert len(answered) == len(outcomes) == RATE_PER_S * (BEFORE_S + OUTAGE_S + AFTER_S)
    assert forwarded == len(outcomes)
    assert duplicates_forwarded == 0
    assert peak_spooled > 0  # the outage really went through the disk spool
    assert missing_during == set()
    assert health["events_dropped"] == 0
