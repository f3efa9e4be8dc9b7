"""The Faust worker against the real broker: verdicts, restart recovery, kill -9, dead letters."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.reports import has_failed
from tests.streams.worker_harness import (
    WorkerProcess,
    WorkerTopics,
    make_events,
    produce,
    produce_raw,
    read_until,
)
from trafficlight.base.kafka import ensure_topics

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(request: pytest.FixtureRequest, kafka_bootstrap: str,
                 worker_topics: WorkerTopics, tmp_path: Path) -> Iterator[StartWorker]:
    """Starts worker processes on this test's topics; stops any still running at the end.
    A failed test prints each worker's log (CI keeps no tmp folders)."""
    started: list[WorkerProcess] = []

    def start(name: str = "worker", **kwargs: Any) -> WorkerProcess:
        worker = WorkerProcess(kafka_bootstrap, worker_topics, tmp_path / f"{name}.log",
                               **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.stop()
    if has_failed(request.node):
        for log_path in dict.fromkeys(worker.log_path for worker in started):
            text = log_path.read_text(errors="replace")
            print(f"--- {log_path.name} ---\n{text[-20_000:]}")


def _epoch_start() -> float:
    """A whole 10 s a little in the past: event times the worker accepts as current."""
    return float(math.floor(time.time() / 10) * 10 - 250)


def _last_heartbeat(ts: float) -> float:
    """The last 10 s heartbeat at or before `ts`: an evaluation every target is published at
    (between heartbeats, rows are published only when a decision or verdict changes)."""
    return float(math.floor(ts / 10) * 10)


def _unified_at(verdicts: list[dict[str, Any]], window_end: float) -> dict[str, Any] | None:
    """Unified's verdict on the trailing (5 min) window evaluated at `window_end`."""
    return next((v for v in verdicts if v["routed_to"] == "unified"
                 and v["window_end"] == window_end and window_end - v["window_start"] >= 300),
                None)


def _requests_before(events: list[dict[str, Any]], t_s: float) -> int:
    return sum(e["ts"] < t_s for e in events)


async def test_restart_recovers_the_judge_state_from_the_changelog(
    kafka_bootstrap: str, worker_topics: WorkerTopics, start_worker: StartWorker
) -> None:
    t0 = _epoch_start()
    events = make_events(t0, 6000, per_s=100)
    first, second = events[:3000], events[3000:]
    worker = start_worker()
    await produce(kafka_bootstrap, worker_topics.events, first)
    await read_until(kafka_bootstrap, worker_topics.verdicts,
                     lambda vs: _unified_at(vs, t0 + 20) is not None)
    worker.stop()

    await produce(kafka_bootstrap, worker_topics.events, second)
    start_worker()
    verdicts = await read_until(kafka_bootstrap, worker_topics.verdicts,
                                lambda vs: _unified_at(vs, t0 + 50) is not None)

    # Counted across the restart: the first half came back from the changelog.
    assert _unified_at(verdicts, t0 + 50)["requests"] == _requests_before(events, t0 + 50)


async def test_kill_9_mid_stream_then_restart_counts_each_event_once(
    kafka_bootstrap: str, worker_topics: WorkerTopics, start_worker: StartWorker
) -> None:
    t0 = _epoch_start()
    events = make_events(t0, 60_000, per_s=250, error_every=40)
    last_s = _last_heartbeat(events[-1]["ts"])
    worker = start_worker()
    await produce(kafka_bootstrap, worker_topics.events, events, per_record=20)
    seen = await read_until(kafka_bootstrap, worker_topics.verdicts,
                            lambda vs: any(v["window_end"] >= t0 + 40 for v in vs))
    worker.kill()
    assert max(v["window_end"] for v in seen) < last_s, "the worker finished before the kill"

    start_worker()
    verdicts = await read_until(kafka_bootstrap, worker_topics.verdicts,
                                lambda vs: _unified_at(vs, last_s) is not None, timeout_s=90)

    final = _unified_at(verdicts, last_s)
    assert final["requests"] == _requests_before(events, last_s)
    assert final["errors"] == sum(e["ts"] < last_s and e["status"] == "error" for e in events)


async def test_bad_input_goes_to_the_dead_letter_topic_and_judging_goes_on(
    kafka_bootstrap: str, worker_topics: WorkerTopics, start_worker: StartWorker
) -> None:
    t0 = _epoch_start()
    good = make_events(t0, 1200, per_s=100)
    negative = {**make_events(t0 + 1, 1, id_prefix="neg")[0], "response_time_ms": -5}
    future = {**make_events(t0, 1, id_prefix="fut")[0], "ts": time.time() + 86_400}
    missing = {k: v for k, v in make_events(t0 + 2, 1, id_prefix="miss")[0].items()
               if k != "status"}
    start_worker()
    await produce_raw(kafka_bootstrap, worker_topics.events, [
        b"{not json",
        orjson.dumps([*good[:250], negative, future, missing]),
        orjson.dumps(good[250:]),
    ], key=b"jobs")

    letters = await read_until(kafka_bootstrap, worker_topics.dead_letters,
                               lambda ls: len(ls) >= 4)
    verdicts = await read_until(kafka_bootstrap, worker_topics.verdicts,
                                lambda vs: _unified_at(vs, t0 + 10) is not None)

    reasons = [letter["reason"] for letter in letters]
    assert reasons[0].startswith("bad JSON")
    assert letters[0]["raw_text"] == "{not json"
    assert "response_time_ms must be a finite number >= 0" in reasons[1]
    assert "in the future" in reasons[2]
    assert "status must be success or error" in reasons[3]
    assert letters[1]["raw"]["event_id"] == negative["event_id"]
    assert letters[1]["source"]["offset"] == 1
    assert _unified_at(verdicts, t0 + 10)["requests"] == 1000


async def test_two_workers_share_the_partitions_and_count_every_domain_exactly(
    kafka_bootstrap: str, worker_topics: WorkerTopics, start_worker: StartWorker
) -> None:
    await ensure_topics(kafka_bootstrap, {worker_topics.events: 4})
    t0 = _epoch_start()
    domains = ("jobs", "marketplace", "property", "mobility")
    events = {d: make_events(t0, 4000, domain=d, per_s=100) for d in domains}
    start_worker("first")
    for d in domains:
        await produce(kafka_bootstrap, worker_topics.events, events[d][:2000])
    await read_until(kafka_bootstrap, worker_topics.verdicts,
                     lambda vs: len({v["domain"] for v in vs}) == len(domains))

    # A second worker joins: partitions (and their table entries) move to it mid-stream.
    start_worker("second")
    for d in domains:
        await produce(kafka_bootstrap, worker_topics.events, events[d][2000:])
    last_s = t0 + 30

    def all_final(vs: list[dict[str, Any]]) -> bool:
        return all(_unified_at([v for v in vs if v["domain"] == d], last_s) for d in domains)

    verdicts = await read_until(kafka_bootstrap, worker_topics.verdicts, all_final,
                                timeout_s=90)

    for d in domains:
        final = _unified_at([v for v in verdicts if v["domain"] == d], last_s)
        assert final["requests"] == _requests_before(events[d], last_s), d


def _verdict_key(verdict: dict[str, Any]) -> bytes:
    return orjson.dumps(verdict, option=orjson.OPT_SORT_KEYS)


async def test_replaying_the_topic_yields_the_verdicts_the_live_worker_published(
    kafka_bootstrap: str, worker_topics: WorkerTopics, start_worker: StartWorker
) -> None:
    t0 = _epoch_start()
    # Two domains on their own partitions; unified on jobs fails 1 in 20 from the middle on.
    events = sorted(
        make_events(t0, 2000, per_s=50, domain="jobs", routed_to="legacy", error_every=500)
        + make_events(t0, 1000, per_s=50, domain="jobs")
        + make_events(t0 + 20, 1000, per_s=50, domain="jobs", error_every=20, id_prefix="bad")
        + make_events(t0, 1200, per_s=30, domain="property", routed_to="legacy")
        + make_events(t0, 1200, per_s=30, domain="property"),
        key=lambda e: e["ts"])
    last_s = _last_heartbeat(events[-1]["ts"])
    start_worker()
    for domain in ("jobs", "property"):
        await produce(kafka_bootstrap, worker_topics.events,
                      [e for e in events if e["domain"] == domain], per_record=100)

    def every_target_at_the_end(vs: list[dict[str, Any]]) -> bool:
        return {(v["domain"], v["routed_to"]) for v in vs if v["window_end"] == last_s} == {
            ("jobs", "unified"), ("jobs", "legacy"), ("property", "unified"),
            ("property", "legacy")}

    live = await read_until(kafka_bootstrap, worker_topics.verdicts, every_target_at_the_end)
    replayed = subprocess.run(
        [sys.executable, "-m", "trafficlight.cli", "replay", "--input", "kafka",
         "--topic", worker_topics.events, "--format", "jsonl"],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        capture_output=True, timeout=120)

    assert replayed.returncode == 0, replayed.stderr.decode()
    replay_verdicts = [orjson.loads(line) for line in replayed.stdout.splitlines()]
    assert any(v["decision"] == "rollback" for v in replay_verdicts)
    assert {_verdict_key(v) for v in replay_verdicts} == {_verdict_key(v) for v in live}
