"""The Postgres sink against the real broker and Postgres: rows, redelivery, an outage."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from pathlib import Path

import orjson
import pytest

from tests.streams.worker_harness import make_events, produce_raw, running, wait_for
from trafficlight.base.db import connect
from trafficlight.base.local_services import EmbeddedPostgres
from trafficlight.streams.events import encode_events
from trafficlight.streams.partition import PartitionJudge, changelog_topic
from trafficlight.streams.sink import PostgresSink, SinkOptions, is_sampled
from trafficlight.tools.migrate import apply_migrations


def _options(bootstrap: str, database_url: str, suffix: str, group: str = "sink",
             **extra: float) -> SinkOptions:
    return SinkOptions(bootstrap, database_url, f"events-{suffix}", f"verdicts-{suffix}",
                       changelog_topic(f"worker-{suffix}"), f"{group}-{suffix}", **extra)


async def _publish_judged(bootstrap: str, options: SinkOptions, events: list[dict]) -> int:
    """What a worker would have published for `events`: the records, changelog, verdicts."""
    judge = PartitionJudge(0)
    values = [encode_events(events[i:i + 100]) for i in range(0, len(events), 100)]
    changelog: list[tuple[bytes, bytes]] = []
    verdicts: list[bytes] = []
    for offset, value in enumerate(values):
        applied = judge.apply(offset, value, time.time())
        changelog += applied.writes.items()
        verdicts += [orjson.dumps(v.to_dict()) for v in applied.verdicts]
    await produce_raw(bootstrap, options.events_topic, values, key=b"jobs")
    for key, value in changelog:
        await produce_raw(bootstrap, options.changelog_topic, [value], key=key)
    await produce_raw(bootstrap, options.verdicts_topic, verdicts, key=b"jobs")
    return len(verdicts)


async def _counts(database_url: str) -> tuple[int, int, int, int]:
    """Logs rows, bucket requests summed, bucket rows, verdict rows."""
    conn = await connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM webhook_routing_logs) AS logs,"
            " (SELECT coalesce(sum(requests), 0)::bigint FROM webhook_routing_windows) AS requests,"
            " (SELECT count(*) FROM webhook_routing_windows) AS windows,"
            " (SELECT count(*) FROM webhook_routing_verdicts) AS verdicts")
        return row["logs"], row["requests"], row["windows"], row["verdicts"]
    finally:
        await conn.close()


async def _wait_for_counts(database_url: str, logs: int, requests: int,
                           timeout_s: float = 30) -> tuple[int, int, int, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        counts = await _counts(database_url)
        if counts[:2] == (logs, requests) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.2)


def _start_s() -> float:
    """A bucket boundary (10 s) a little in the past."""
    return float(math.floor(time.time() / 10) * 10 - 100)


async def test_events_buckets_and_verdicts_land_in_their_tables(
    kafka_bootstrap: str, database_url: str
) -> None:
    options = _options(kafka_bootstrap, database_url, uuid.uuid4().hex[:10])
    events = make_events(_start_s(), 2000, per_s=100, error_every=20)
    await _publish_judged(kafka_bootstrap, options, events)

    async with running(PostgresSink(options)):
        logs, requests, windows, _ = await _wait_for_counts(database_url, 2000, 2000)

    assert (logs, requests, windows) == (2000, 2000, 2)
    conn = await connect(database_url)
    try:
        health = await conn.fetchrow(
            "SELECT * FROM check_routing_health() WHERE domain = 'jobs' AND routed_to = 'unified'")
        errors = await conn.fetchval(
            "SELECT count(*) FROM webhook_routing_logs WHERE status = 'error'")
    finally:
        await conn.close()
    assert errors == 100
    assert health["verdict"] != "insufficient_data"
    # The last heartbeat (every 10 s, when every target's row is published).
    assert health["window_end"].timestamp() == math.floor(events[-1]["ts"] / 10) * 10


async def test_redelivered_records_are_stored_once(kafka_bootstrap: str,
                                                   database_url: str) -> None:
    suffix = uuid.uuid4().hex[:10]
    first = _options(kafka_bootstrap, database_url, suffix, group="first")
    await _publish_judged(kafka_bootstrap, first, make_events(_start_s(), 1500, per_s=100))
    async with running(PostgresSink(first)):
        once = await _wait_for_counts(database_url, 1500, 1500)

    # A second group re-reads every record from the start, as after a lost commit.
    again = _options(kafka_bootstrap, database_url, suffix, group="again")
    sink = PostgresSink(again)
    async with running(sink):
        await wait_for(lambda: sink.rows_written >= once[0] + once[2] + once[3], 30,
                       "the second sink did not re-write everything")

    assert await _counts(database_url) == once


async def test_postgres_down_then_back_loses_nothing(kafka_bootstrap: str,
                                                     service_dir: Path) -> None:
    postgres = EmbeddedPostgres(service_dir / "pg").start()
    try:
        await apply_migrations(postgres.url)
        options = _options(kafka_bootstrap, postgres.url, uuid.uuid4().hex[:10],
                           retry_max_s=0.5)
        t0 = _start_s()
        async with running(PostgresSink(options)):
            await _publish_judged(kafka_bootstrap, options, make_events(t0, 500))
            assert (await _wait_for_counts(postgres.url, 500, 500))[:2] == (500, 500)
            postgres.stop()
            await _publish_judged(kafka_bootstrap, options,
                                  make_events(t0, 700, domain="marketplace"))
            await asyncio.sleep(2)  # the sink fails and retries meanwhile
            postgres.start()
            logs, requests, _, _ = await _wait_for_counts(postgres.url, 1200, 1200)
        assert (logs, requests) == (1200, 1200)
    finally:
        postgres.stop()


@pytest.mark.parametrize("pct", [0, 10, 50, 100])
def test_log_sampling_keeps_about_the_share_asked_and_is_stable(pct: float) -> None:
    ids = [f"event-{i}" for i in range(20_000)]

    kept = [i for i in ids if is_sampled(i, pct)]

    assert abs(len(kept) / len(ids) * 100 - pct) < 1.5
    assert kept == [i for i in ids if is_sampled(i, pct)]
