"""`trafficlight watch` follows a real verdict topic; lines are coloured by verdict."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable

import click
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.tools.conftest import RunCli
from trafficlight.base.kafka import ensure_topics
from trafficlight.streams.verdicts import Verdict
from trafficlight.tools.display import verdict_line


def _verdict(domain: str = "jobs", verdict: str = "critical", **extra: object) -> dict[str, object]:
    return {
        "domain": domain, "routed_to": "unified", "window_start": 1_795_867_200.0,
        "window_end": 1_795_867_500.0, "requests": 1000, "errors": 60, "error_pct": 6.0,
        "p50_ms": 90.0, "p95_ms": 260.0, "p99_ms": 400.0, "verdict": verdict,
        "decision": "rollback", "reasons": ["error rate 6.00% > 0.5%"], **extra,
    }


@pytest.fixture
async def verdict_topic(kafka_bootstrap: str, unique_topic: Callable[[str], str]) -> str:
    topic = unique_topic("verdicts")
    await ensure_topics(kafka_bootstrap, {topic: 2})
    return topic


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


async def test_watch_prints_a_verdict_produced_to_the_topic(
    run_cli: RunCli, kafka_bootstrap: str, verdict_topic: str, producer: AIOKafkaProducer
) -> None:
    await producer.send_and_wait(verdict_topic, orjson.dumps(_verdict()), key=b"jobs")

    result = await run_cli("watch", "--topic", verdict_topic, "--from-beginning", "--count", "1",
                           env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})

    assert result.exit_code == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert line.split()[1:5] == ["jobs", "unified", "critical", "rollback"]
    assert "err=6.000%" in line and "p95=260ms" in line and "error rate 6.00% > 0.5%" in line


async def test_watch_starts_from_now_by_default(
    kafka_bootstrap: str, verdict_topic: str, producer: AIOKafkaProducer
) -> None:
    await producer.send_and_wait(verdict_topic, orjson.dumps(_verdict("property")), key=b"p")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from trafficlight.cli import main; main()", "watch", "--topic",
        verdict_topic, "--count", "1", "--json",
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None and process.stdout is not None
    # The first stderr line comes once every partition's start position is fixed.
    ready = await asyncio.wait_for(process.stderr.readline(), timeout=30)
    assert ready.decode().startswith(f"watching {verdict_topic} from now")

    await producer.send_and_wait(verdict_topic, orjson.dumps(_verdict("marketplace")), key=b"m")
    stdout = await asyncio.wait_for(process.stdout.read(), timeout=30)
    await process.wait()

    assert process.returncode == 0
    assert [json.loads(line)["domain"] for line in stdout.splitlines()] == ["marketplace"]


async def test_watch_skips_a_malformed_record_with_one_line_and_goes_on(
    run_cli: RunCli, kafka_bootstrap: str, verdict_topic: str, producer: AIOKafkaProducer
) -> None:
    await producer.send_and_wait(verdict_topic, b"{not json", key=b"jobs", partition=0)
    await producer.send_and_wait(verdict_topic, orjson.dumps(_verdict()), key=b"jobs",
                                 partition=0)

    result = await run_cli("watch", "--topic", verdict_topic, "--from-beginning", "--count", "1",
                           "--json", env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})

    assert result.exit_code == 0
    assert json.loads(result.stdout)["verdict"] == "critical"
    [skipped] = [line for line in result.stderr.splitlines() if line.startswith("skipped")]
    assert skipped.startswith("skipped record 0/0: not JSON")


async def test_watch_filters_by_domain(
    run_cli: RunCli, kafka_bootstrap: str, verdict_topic: str, producer: AIOKafkaProducer
) -> None:
    for domain in ("jobs", "property", "jobs"):
        await producer.send_and_wait(verdict_topic, orjson.dumps(_verdict(domain)), partition=0)

    result = await run_cli("watch", "--topic", verdict_topic, "--from-beginning", "--count", "1",
                           "--domain", "property", "--json",
                           env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})

    assert [json.loads(line)["domain"] for line in result.stdout.splitlines()] == ["property"]


async def test_watch_of_a_missing_topic_is_one_line(
    run_cli: RunCli, kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("nothing-here")

    result = await run_cli("watch", "--topic", topic,
                           env={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: topic '{topic}' does not exist (is a worker running?)"]


@pytest.mark.parametrize(("verdict", "colour"), [
    ("healthy", "green"), ("warning", "yellow"), ("critical", "red"),
    ("insufficient_data", "bright_black"),
])
def test_verdict_lines_are_coloured_by_verdict(verdict: str, colour: str) -> None:
    line = verdict_line(Verdict.from_dict(_verdict(verdict=verdict)))

    assert click.style(verdict.ljust(17), fg=colour, bold=True) in line


async def test_watch_shows_changes_by_default_and_every_verdict_with_all(
    run_cli: RunCli, kafka_bootstrap: str, verdict_topic: str, producer: AIOKafkaProducer
) -> None:
    states = ["healthy", "healthy", "critical", "critical", "healthy"]
    for i, state in enumerate(states):
        await producer.send_and_wait(verdict_topic, orjson.dumps(_verdict(
            verdict=state, window_end=1_795_867_500.0 + i)), key=b"jobs", partition=0)
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}

    changes = await run_cli("watch", "--topic", verdict_topic, "--from-beginning", "--count",
                            "3", "--json", env=env)
    every = await run_cli("watch", "--topic", verdict_topic, "--from-beginning", "--count",
                          "5", "--json", "--all", env=env)

    assert [json.loads(line)["verdict"] for line in changes.stdout.splitlines()] == [
        "healthy", "critical", "healthy"]
    assert [json.loads(line)["verdict"] for line in every.stdout.splitlines()] == states
