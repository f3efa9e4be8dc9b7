"""`trafficlight worker --metrics-port`: Prometheus figures of a real worker after real events."""

from __future__ import annotations

import asyncio
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.streams.worker_harness import (
    WorkerProcess,
    WorkerTopics,
    make_events,
    produce_raw,
    read_until,
)
from trafficlight.base.local_services import free_port
from trafficlight.streams.metrics import DECISION_VALUE, HEALTH_VALUE, PartitionPosition
from trafficlight.streams.verdicts import Decision, Health

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def metrics_worker(kafka_bootstrap: str, worker_topics: WorkerTopics,
                   tmp_path: Path) -> Iterator[tuple[WorkerProcess, int]]:
    port = free_port()
    worker = WorkerProcess(kafka_bootstrap, worker_topics, tmp_path / "worker.log",
                           extra_args=("--no-sink", "--metrics-port", str(port)))
    yield worker, port
    if worker.proc.poll() is None:
        worker.stop()


async def _scrape(port: int) -> Samples:
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def _scrape_when_up(port: int, timeout_s: float = 60) -> Samples:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await _scrape(port)
        except aiohttp.ClientConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def test_verdict_and_decision_numbers_follow_severity() -> None:
    assert [HEALTH_VALUE[h] for h in (Health.INSUFFICIENT_DATA, Health.HEALTHY,
                                      Health.WARNING, Health.CRITICAL)] == [-1, 0, 1, 2]
    assert [DECISION_VALUE[d] for d in (Decision.PROCEED, Decision.HOLD,
                                        Decision.ROLLBACK)] == [0, 1, 2]


@pytest.mark.parametrize(("applied", "highwater", "lag"), [
    (-1, None, None), (-1, 0, 0), (-1, 3, 3), (9, 10, 0), (4, 10, 5)])
def test_consumer_lag_counts_records_after_the_last_applied(applied: int, highwater: int | None,
                                                            lag: int | None) -> None:
    assert PartitionPosition(0, applied, highwater).lag == lag


async def test_metrics_show_the_figures_after_real_events(
    kafka_bootstrap: str, worker_topics: WorkerTopics,
    metrics_worker: tuple[WorkerProcess, int],
) -> None:
    worker, port = metrics_worker
    t0 = float(math.floor(time.time()) - 250)
    # 30 s of unified failing every request: the judge rolls back within the first second
    # and stays there, so the last verdict is known whenever the scrape comes.
    failing = make_events(t0, 3000, per_s=100, error_every=1)
    records = [orjson.dumps(failing[i:i + 250]) for i in range(0, len(failing), 250)]
    await produce_raw(kafka_bootstrap, worker_topics.events, [b"{not json", *records],
                      key=b"jobs")
    await read_until(kafka_bootstrap, worker_topics.verdicts,
                     lambda vs: any(v["window_end"] >= t0 + 20 for v in vs))

    # The verdicts may come before the last record's counters: scrape until all are in.
    deadline = time.monotonic() + 30
    samples = await _scrape_when_up(port)
    while samples.get(("trafficlight_worker_events_judged_total", ()), 0) < 3000:
        assert time.monotonic() < deadline, worker.log_text()[-2000:]
        await asyncio.sleep(0.2)
        samples = await _scrape(port)

    jobs_unified = (("domain", "jobs"), ("routed_to", "unified"))
    assert samples[("trafficlight_worker_events_judged_total", ())] == 3000
    assert samples[("trafficlight_worker_dead_letters_total", ())] == 1
    assert samples[("trafficlight_worker_late_events_total", ())] == 0
    assert samples[("trafficlight_worker_verdict", jobs_unified)] == HEALTH_VALUE[Health.CRITICAL]
    assert samples[("trafficlight_worker_decision", jobs_unified)] == \
        DECISION_VALUE[Decision.ROLLBACK]
    def state(name: str, label: str, value: str) -> float:
        return samples[(name, tuple(sorted((*jobs_unified, (label, value)))))]
    assert state("trafficlight_worker_verdict_state", "verdict", "critical") == 1
    assert state("trafficlight_worker_verdict_state", "verdict", "healthy") == 0
    assert state("trafficlight_worker_decision_state", "decision", "rollback") == 1
    assert state("trafficlight_worker_decision_state", "decision", "proceed") == 0
    # One evaluation timing per record applied, the malformed one included.
    assert samples[("trafficlight_worker_evaluation_seconds_count", ())] == 13
    lags = {labels: value for (name, labels), value in samples.items()
            if name == "trafficlight_worker_consumer_lag"}
    assert lags and all(value == 0 for value in lags.values())


def test_a_taken_metrics_port_names_the_port_and_the_fix(
    kafka_bootstrap: str, worker_topics: WorkerTopics
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "trafficlight.cli", "worker", "--bootstrap-servers",
             kafka_bootstrap, "--events-topic", worker_topics.events, "--verdicts-topic",
             worker_topics.verdicts, "--app-id", worker_topics.app_id, "--no-sink",
             "--metrics-port", str(port)],
            capture_output=True, text=True, timeout=120,
            env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: --metrics-port ")
    assert f"127.0.0.1:{port}" in last_line and "pick a free port" in last_line

