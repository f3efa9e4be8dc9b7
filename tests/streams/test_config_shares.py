"""Configured percentages from the real Postgres for the sample-ratio guard, and the worker
holding a domain whose routing is not what its config says, end to end (real Kafka)."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from tests.streams.worker_harness import (
    WorkerProcess,
    WorkerTopics,
    make_events,
    produce,
    read_until,
    running,
)
from trafficlight.base.db import connect
from trafficlight.streams.config_shares import ShareCache, load_shares


async def _latest_version(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT max(id) FROM webhook_routing_config"))


async def _start_rollout(conn: asyncpg.Connection) -> int:
    """10 % of every rollout domain on unified; the config version that makes."""
    await conn.execute("SELECT update_routing_percentage(10, 'start rollout')")
    return await _latest_version(conn)


async def _until(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    """Poll `condition` (a safety net for a busy machine, not a figure)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.02)


async def test_the_cache_knows_every_version_at_start_and_fetches_a_new_one_once(
        database_url: str) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT update_routing_percentage(10, 'start')")
        ten = await _latest_version(conn)
        async with running(ShareCache(database_url)) as cache:
            await _until(lambda: ten in cache.known)  # read at the start, not asked for
            assert (cache.percentage(ten, "jobs"), cache.queries) == (10.0, 1)
            await conn.execute("SELECT update_routing_percentage(25, 'jobs first', 'jobs')")
            version = await _latest_version(conn)
            assert cache.percentage(version, "jobs") is None  # asked, not waited for
            await _until(lambda: cache.percentage(version, "jobs") is not None)
            assert (cache.percentage(version, "jobs"), cache.percentage(version, "marketplace"),
                    cache.percentage(version, "mobility")) == (25.0, 10.0, None)
            for _ in range(100):
                cache.percentage(version, "jobs")
            assert cache.queries == 2
    finally:
        await conn.close()


async def test_postgres_down_leaves_the_guard_off_and_the_cache_running() -> None:
    cache = ShareCache("postgresql://trafficlight@127.0.0.1:1/none", retry_s=0.05)
    async with running(cache):
        assert cache.percentage(2, "jobs") is None
        await asyncio.sleep(0.5)
        assert cache.percentage(2, "jobs") is None
        assert cache.known == {}


async def test_a_version_postgres_does_not_have_is_given_up_after_its_tries(
        database_url: str) -> None:
    async with running(ShareCache(database_url, retry_s=0.01, tries=3)) as cache:
        assert cache.percentage(987_654, "jobs") is None
        await _until(lambda: 987_654 in cache.known)
        assert (cache.known[987_654], cache.queries) == ({}, 1 + 3)


async def test_replay_reads_every_version_s_percentages(database_url: str) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT update_routing_percentage(10, 'start')")
        ten = await _latest_version(conn)
        await conn.execute("SELECT set_routing_enabled(false, 'jobs back', 'jobs')")
        jobs_off = await _latest_version(conn)
    finally:
        await conn.close()
    shares = await load_shares(database_url)
    assert shares[1] == {"jobs": 0.0, "marketplace": 0.0, "property": 0.0}
    assert shares[ten] == {"jobs": 10.0, "marketplace": 10.0, "property": 10.0}
    assert shares[jobs_off] == {"jobs": 0.0, "marketplace": 10.0, "property": 10.0}


def _at_share(t0: float, seconds: int, unified_pct: float, version: int
              ) -> list[dict[str, Any]]:
    """100 jobs requests a second, `unified_pct` of them on unified, stamped `version`."""
    unified = make_events(t0, round(seconds * unified_pct), per_s=unified_pct)
    legacy = make_events(t0, round(seconds * (100 - unified_pct)), per_s=100 - unified_pct,
                         routed_to="legacy")
    events = sorted(unified + legacy, key=lambda e: e["ts"])
    for event in events:
        event["config_version"] = version
    return events


async def test_a_worker_stores_a_hold_for_three_percent_on_unified_against_ten_configured(
        kafka_bootstrap: str, database_url: str, tmp_path: Path) -> None:
    topics = WorkerTopics.fresh()
    conn = await connect(database_url)
    try:
        version = await _start_rollout(conn)
        t0 = float(math.floor(time.time()) - 150)
        events = _at_share(t0, 120, 3.0, version)
        first = [e for e in events if e["ts"] < t0 + 10]
        worker = WorkerProcess(kafka_bootstrap, topics, tmp_path / "worker.log",
                               database_url=database_url)
        try:
            # The worker reads every config version's percentages as it starts (the guard is
            # off until they come): the rest is judged with them.
            await produce(kafka_bootstrap, topics.events, first)
            await _until(lambda: "config version(s) known" in worker.log_text(),
                         timeout_s=120)
            await produce(kafka_bootstrap, topics.events, events[len(first):])
            query = ("SELECT decision, reasons FROM webhook_routing_verdicts WHERE domain = "
                     "'jobs' AND routed_to = 'unified' AND EXISTS (SELECT 1 FROM "
                     "unnest(reasons) r WHERE r LIKE 'sample ratio: %') LIMIT 1")
            deadline = time.monotonic() + 120
            while (row := await conn.fetchrow(query)) is None:
                assert time.monotonic() < deadline, worker.log_text()[-2000:]
                await asyncio.sleep(0.2)
            decisions = {r["decision"] for r in await conn.fetch(
                "SELECT decision FROM webhook_routing_verdicts WHERE domain = 'jobs'")}
            config_rows = await conn.fetchval("SELECT count(*) FROM webhook_routing_config")
        finally:
            worker.stop()
    finally:
        await conn.close()
    assert row["decision"] == "hold"
    assert any(r.startswith("sample ratio: unified ") and "vs 10% configured" in r
               for r in row["reasons"])
    assert decisions == {"hold"}
    assert config_rows == 2  # nothing rolled back or promoted


def _verdict_key(verdict: dict[str, Any]) -> bytes:
    return orjson.dumps(verdict, option=orjson.OPT_SORT_KEYS)


async def test_replay_with_config_db_yields_the_verdicts_the_guarded_live_worker_published(
        kafka_bootstrap: str, database_url: str, tmp_path: Path) -> None:
    topics = WorkerTopics.fresh()
    conn = await connect(database_url)
    try:
        version = await _start_rollout(conn)
    finally:
        await conn.close()
    t0 = float(math.floor(time.time() / 10) * 10 - 250)
    # jobs misrouted (3 % on unified), property as configured (10 %).
    events = _at_share(t0, 60, 3.0, version) + [
        {**e, "domain": "property", "event_id": f"p-{e['event_id']}"}
        for e in _at_share(t0, 60, 10.0, version)]
    last_s = float(math.floor(max(e["ts"] for e in events) / 10) * 10)
    worker = WorkerProcess(kafka_bootstrap, topics, tmp_path / "worker.log",
                           database_url=database_url)
    try:
        await _until(lambda: "config version(s) known" in worker.log_text(), timeout_s=120)
        # In time order, one domain per record (as the router sends them).
        await produce(kafka_bootstrap, topics.events, sorted(events, key=lambda e: e["ts"]),
                      per_record=100)

        def every_target_at_the_end(vs: list[dict[str, Any]]) -> bool:
            return {(v["domain"], v["routed_to"]) for v in vs if v["window_end"] == last_s} == {
                (d, t) for d in ("jobs", "property") for t in ("unified", "legacy")}

        live = await read_until(kafka_bootstrap, topics.verdicts, every_target_at_the_end)
    finally:
        worker.stop()
    replayed = subprocess.run(
        [sys.executable, "-m", "trafficlight.cli", "replay", "--input", "kafka", "--topic",
         topics.events, "--format", "jsonl", "--config-db", database_url],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        capture_output=True, timeout=120)

    assert replayed.returncode == 0, replayed.stderr.decode()
    replay_verdicts = [orjson.loads(line) for line in replayed.stdout.splitlines()]
    assert any(v["rule"] == "sample_ratio_mismatch" and v["domain"] == "jobs"
               for v in replay_verdicts)
    assert not any(v["rule"] == "sample_ratio_mismatch" and v["domain"] == "property"
                   for v in replay_verdicts)
    assert {_verdict_key(v) for v in replay_verdicts} == {_verdict_key(v) for v in live}


async def test_hostile_versions_never_queue_more_than_max_wanted_queries(
        database_url: str) -> None:
    async with running(ShareCache(database_url, retry_s=0.01, tries=1, max_wanted=2)) as cache:
        await _until(lambda: cache.queries >= 1)  # the start's read of every version
        for version in range(10**9, 10**9 + 50):  # events stamped with versions nobody made
            assert cache.percentage(version, "jobs") is None
        await _until(lambda: len(cache.known) >= 3)  # version 1, and the two it took
        assert sorted(v for v in cache.known if v >= 10**9) == [10**9, 10**9 + 1]
        assert cache.queries == 1 + 2
