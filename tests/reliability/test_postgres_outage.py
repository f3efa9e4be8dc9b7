"""Scenario 2: Postgres is down for 60 s while webhooks flow through a router and a worker.

Postgres is the test's own (it is stopped and started on the same port and data directory).
While it is down the router keeps routing on the last config it read (50 %); afterwards the
worker's sink catches up: ``webhook_routing_logs`` holds every answered webhook's event exactly
once, and the stored bucket aggregates equal the no-fault run of the records on the topic.
Neither process logs the database password while it reports the outage.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import (
    PASSWORD,
    Load,
    RouterProcess,
    UpstreamProcess,
    no_fault_run,
    read_topic,
    stored_aggregates,
    with_password,
)
from tests.streams.worker_harness import WorkerProcess, WorkerTopics
from trafficlight.base.db import connect
from trafficlight.base.kafka import ensure_topics
from trafficlight.base.local_services import EmbeddedPostgres
from trafficlight.tools.migrate import apply_migrations

pytestmark = pytest.mark.reliability

RATE_PER_S = 100
BEFORE_S, OUTAGE_S, AFTER_S = 10, 60, 10
ROLLOUT = ("jobs", "marketplace", "property")


@pytest.fixture
async def own_postgres(service_dir: Path) -> AsyncIterator[EmbeddedPostgres]:
    """A Postgres this test alone may stop and start; migrated, routing at 50 %."""
    postgres = await asyncio.to_thread(EmbeddedPostgres(service_dir / "postgres").start)
    await apply_migrations(postgres.url)
    conn = await connect(postgres.url)
    try:
        await conn.execute("SELECT update_routing_percentage(50, 'postgres outage suite')")
    finally:
        await conn.close()
    yield postgres
    await asyncio.to_thread(postgres.stop)


async def test_a_60s_postgres_outage_keeps_routing_and_the_sink_catches_up_exactly(
        tmp_path: Path, kafka_bootstrap: str, own_postgres: EmbeddedPostgres,
        upstream: UpstreamProcess, reap: Callable[[Any], Any],
        figures: Callable[[str], None]) -> None:
    topics = WorkerTopics.fresh("pg-")
    await ensure_topics(kafka_bootstrap, {topics.events: 2, topics.verdicts: 2})
    # Both log their database errors during the outage: with a password in the URL to leak.
    database_url = with_password(own_postgres.url)
    router = reap(await RouterProcess.configure(
        tmp_path / "router", upstream, kafka_bootstrap, database_url,
        events_topic=topics.events).start())
    worker = reap(WorkerProcess(kafka_bootstrap, topics, tmp_path / "worker.log",
                                database_url=database_url))
    version = (await router.healthz())["config_version"]
    load = Load(router.base, RATE_PER_S, domains=ROLLOUT)

    await load.run(BEFORE_S)
    await asyncio.to_thread(own_postgres.stop)
    down_at = time.time()
    await load.run(OUTAGE_S)
    versions_during = {(await router.healthz())["config_version"]}
    up_at = time.time()
    await asyncio.to_thread(own_postgres.start)
    await load.run(AFTER_S)

    answered = {o.event_id for o in load.outcomes if o.status == 200 and o.event_id}
    during = [o for o in load.outcomes if down_at <= o.sent_at < up_at]
    split = Counter(o.routed_to for o in during)
    async with asyncio.timeout(120):  # a safety net, not a figure
        while (await stored_aggregates(own_postgres.url))[0] < len(answered):
            await asyncio.sleep(0.5)
    placed = await read_topic(kafka_bootstrap, topics.events)
    _, expected_buckets = no_fault_run(placed, time.time())
    async with asyncio.timeout(60):
        while (await stored_aggregates(own_postgres.url))[2] != expected_buckets:
            await asyncio.sleep(0.5)
    logs, distinct, buckets = await stored_aggregates(own_postgres.url)
    conn = await connect(own_postgres.url)
    try:
        stored_ids = {r[0] for r in await conn.fetch("SELECT event_id FROM webhook_routing_logs")}
    finally:
        await conn.close()
    worker.stop()
    await router.stop()
    logs_text = router.log_text() + worker.log_text()

    figures(f"[postgres outage] {len(load.outcomes)} webhooks at {RATE_PER_S}/s, Postgres "
          f"down {up_at - down_at:.0f} s: {len(answered)} answered 200; while down "
          f"routed {dict(split)} on config version {versions_during} (before: {version}); "
          f"logs stored {logs} ({distinct} distinct, {len(stored_ids ^ answered)} "
          f"differing from the answered ids); buckets {len(buckets)} equal to the "
          f"no-fault run's {len(expected_buckets)}")

    assert len(answered) == len(load.outcomes)
    assert versions_during == {version}
    assert split["unified"] > 0 and split["legacy"] > 0  # still routing at 50 %
    assert stored_ids == answered
    assert (logs, distinct) == (len(answered), len(answered))
    assert buckets == expected_buckets
    assert "unavailable" in router.log_text()  # the outage was seen and logged ...
    assert PASSWORD not in logs_text  # ... without the password
