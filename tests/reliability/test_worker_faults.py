"""Scenario 3: kill -9 mid-stream, a second worker joining and leaving: nothing changes.

The no-fault run is the judging core itself: one ``PartitionJudge`` per source partition fed
every record in offset order, exactly what an undisturbed worker computes. The faulted run is
real ``trafficlight worker`` processes on the real broker with the Postgres sink: killed with
SIGKILL while processing, restarted, joined by a second worker (rebalance) that then leaves
(rebalance again). The verdicts published, the bucket aggregates stored and the logs stored
must equal the no-fault run exactly: re-published verdicts are allowed only as identical
copies.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.reliability.harness import Placed, no_fault_run, stored_aggregates
from tests.streams.worker_harness import WorkerProcess, WorkerTopics
from trafficlight.base.kafka import ensure_topics

pytestmark = pytest.mark.reliability

PARTITIONS = 4
DOMAINS = ("jobs", "marketplace", "property")
SPAN_S = 60
PER_TARGET_PER_S = 40
RECORD_EVENTS = 50


def scenario_events(t0: float) -> list[dict[str, Any]]:
    """60 s of traffic, both targets of three domains; jobs' unified fails 6 % from +30 s."""
    events = []
    for i in range(SPAN_S * PER_TARGET_PER_S):
        ts = t0 + i / PER_TARGET_PER_S
        for domain in DOMAINS:
            for routed_to in ("unified", "legacy"):
                failing = (domain == "jobs" and routed_to == "unified" and ts >= t0 + 30
                           and i % 17 == 0)
                events.append({
                    "event_id": f"{domain}-{routed_to}-{i}", "ts": ts, "domain": domain,
                    "routed_to": routed_to, "response_time_ms": 40.0 + (i * 7) % 300,
                    "status": "error" if failing else "success",
                    "http_status": 500 if failing else 200,
                    "error_message": "upstream 500" if failing else None,
                    "router_id": "reliability", "config_version": 1})
    return events


def records_of(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """(key, value) records as the router writes them: per domain, in time order."""
    by_domain: dict[str, list[dict[str, Any]]] = {d: [] for d in DOMAINS}
    records = []
    for event in events:
        batch = by_domain[event["domain"]]
        batch.append(event)
        if len(batch) == RECORD_EVENTS:
            records.append((event["domain"].encode(), orjson.dumps(batch)))
            batch.clear()
    records += [(d.encode(), orjson.dumps(b)) for d, b in by_domain.items() if b]
    return records


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]],
                  placed: Placed) -> None:
    """Send in order; remember each record's partition and offset for the no-fault run."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            meta = await (await producer.send(topic, value, key=key))
            placed.setdefault(meta.partition, []).append((meta.offset, value))
    finally:
        await producer.stop()


def verdict_key(v: dict[str, Any]) -> tuple[str, str, float, float]:
    return v["domain"], v["routed_to"], v["window_start"], v["window_end"]


class VerdictReader:
    """Every verdict published, read in the background from the beginning."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.values: list[dict[str, Any]] = []
        self._consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                          auto_offset_reset="earliest",
                                          enable_auto_commit=False, metadata_max_age_ms=1000)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> VerdictReader:
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        while True:
            for records in (await self._consumer.getmany(timeout_ms=200)).values():
                self.values += [orjson.loads(r.value) for r in records]

    def reached(self, event_time_s: float) -> bool:
        return any(v["window_end"] >= event_time_s for v in self.values)

    async def wait(self, done: Callable[[], bool], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):  # a safety net, not a figure
            while not done():
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._consumer.stop()


def worker_log_digest(folder: Path) -> str:
    """The lines of the workers' logs that say where each partition's state resumed and
    what it had to read again: the story of a failed run (CI keeps no tmp folders)."""
    wanted = ("restored at", "handed offset", "could not be read", "Traceback", "ERROR")
    return "\n".join(f"{log.stem}: {line}" for log in sorted(folder.glob("*.log"))
                     for line in log.read_text(errors="replace").splitlines()
                     if any(w in line for w in wanted))


async def test_kill_9_and_a_rebalance_leave_verdicts_and_aggregates_as_without_faults(
        tmp_path: Path, kafka_bootstrap: str, database_url: str,
        reap: Callable[[WorkerProcess], WorkerProcess], figures: Callable[[str], None]) -> None:
    topics = WorkerTopics.fresh("faults-")
    await ensure_topics(kafka_bootstrap, {topics.events: PARTITIONS,
                                          topics.verdicts: PARTITIONS})
    t0 = float(math.floor(time.time()) - 240)
    events = scenario_events(t0)
    records = records_of(events)
    thirds = [records[i * len(records) // 3:(i + 1) * len(records) // 3] for i in range(3)]
    placed: Placed = {}
    reader = await VerdictReader(kafka_bootstrap, topics.verdicts).start()

    def worker(name: str) -> WorkerProcess:
        return reap(WorkerProcess(kafka_bootstrap, topics, tmp_path / f"{name}.log",
                                  database_url=database_url))

    # 1. One worker; kill -9 while it is working through the first third.
    first = worker("first")
    await produce(kafka_bootstrap, topics.events, thirds[0], placed)
    await reader.wait(lambda: reader.reached(t0 + 5), 90)
    first.kill()
    # 2. More records while no worker runs; it restarts; a second worker joins.
    await produce(kafka_bootstrap, topics.events, thirds[1], placed)
    restarted = worker("restarted")
    await reader.wait(lambda: reader.reached(t0 + 25), 90)
    second = worker("second")
    await produce(kafka_bootstrap, topics.events, thirds[2][:len(thirds[2]) // 2], placed)
    await asyncio.sleep(10)  # let the group settle with two members
    # 3. The second worker leaves; the rest of the records.
    second.stop()
    await produce(kafka_bootstrap, topics.events, thirds[2][len(thirds[2]) // 2:], placed)

    expected_verdicts, expected_buckets = no_fault_run(placed, time.time())
    expected_keys = {verdict_key(v) for v in expected_verdicts}
    with contextlib.suppress(TimeoutError):  # a safety net: then the asserts say what is missing
        await reader.wait(lambda: expected_keys <= {verdict_key(v) for v in reader.values}, 120)

    deadline = time.monotonic() + 90  # a safety net, not a figure: then the asserts say why
    while time.monotonic() < deadline:
        logs, distinct, buckets = await stored_aggregates(database_url)
        if logs >= len(events) and buckets == expected_buckets:
            break
        await asyncio.sleep(0.5)
    restarted.stop()
    await reader.stop()

    published = Counter(orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in reader.values)
    reference = {orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in expected_verdicts}
    republished = sum(n - 1 for n in published.values())
    decisions = Counter(str(v["decision"]) for v in expected_verdicts)
    equal_buckets = sum(buckets.get(key) == value for key, value in expected_buckets.items())
    figures(f"[worker faults] {len(events)} events in {len(records)} records on "
          f"{PARTITIONS} partitions; kill -9, restart, join, leave: {len(published)} "
          f"distinct verdicts published ({republished} identical re-publications), "
          f"no-fault run {len(reference)} ({dict(decisions)}); logs stored {logs} "
          f"({distinct} distinct); buckets {equal_buckets} of {len(expected_buckets)} equal")

    assert (logs, distinct) == (len(events), len(events))
    assert buckets == expected_buckets, worker_log_digest(tmp_path)
    missing = sorted(verdict_key(orjson.loads(v)) for v in reference - set(published))
    assert not missing, f"{len(missing)} verdicts of the no-fault run never published: {missing}"
    extra = sorted({verdict_key(orjson.loads(v)) for v in set(published) - reference})
    assert not extra, (
        f"{len(extra)} published verdicts differ from the no-fault run; at {extra[0]}: "
        f"published {[v for v in reader.values if verdict_key(v) == extra[0]]}")
