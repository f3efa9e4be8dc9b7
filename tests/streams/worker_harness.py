"""Real worker processes for the tests, and the records they read and write.

A worker runs as `trafficlight worker` in a subprocess so a test can SIGKILL it mid-stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from trafficlight.streams.events import encode_events


@dataclass(frozen=True)
class WorkerTopics:
    """One test's topics and app id, so tests never share state."""

    events: str
    verdicts: str
    app_id: str

    @classmethod
    def fresh(cls, prefix: str = "") -> WorkerTopics:
        """Topic names and an app id no other test uses (`prefix` names the suite)."""
        suffix = uuid.uuid4().hex[:10]
        return cls(f"{prefix}events-{suffix}", f"{prefix}verdicts-{suffix}",
                   f"{prefix}worker-{suffix}")

    @property
    def dead_letters(self) -> str:
        return f"{self.events}-dlq"


class WorkerProcess:
    """`trafficlight worker` as a child process with its log in a file."""

    def __init__(self, bootstrap: str, topics: WorkerTopics, log_path: Path,
                 database_url: str | None = None, extra_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        args = [sys.executable, "-m", "trafficlight.cli", "worker",
                "--bootstrap-servers", bootstrap, "--events-topic", topics.events,
                "--verdicts-topic", topics.verdicts, "--app-id", topics.app_id,
                "--worker-id", "test-worker", *extra_args]
        child_env = {**os.environ, "TRAFFICLIGHT_EVENT_PARTITIONS": "2", **(env or {})}
        child_env.pop("DATABASE_URL", None)
        if database_url is not None:
            child_env["DATABASE_URL"] = database_url
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=child_env)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9: no flush, no commit, no goodbye."""
        self.proc.send_signal(signal.SIGKILL)
        self.wait()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.wait()

    def wait(self, timeout_s: float = 30) -> None:
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class Service(Protocol):
    """A service of the worker's process that runs until cancelled (the sink, the share cache)."""

    async def run(self) -> None: ...


ServiceT = TypeVar("ServiceT", bound=Service)


@contextlib.asynccontextmanager
async def running(service: ServiceT) -> AsyncIterator[ServiceT]:
    """`service.run()` as a task for the block, cancelled after it (a crash in it is raised)."""
    task = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def make_events(start_s: float, count: int, *, domain: str = "jobs", per_s: float = 100,
                error_every: int = 0, routed_to: str = "unified",
                id_prefix: str = "e") -> list[dict[str, Any]]:
    """`count` SPEC events `per_s` apart in event time; every `error_every`-th an error."""
    out = []
    for i in range(count):
        bad = bool(error_every) and i % error_every == 0
        out.append({
            "event_id": f"{id_prefix}-{domain}-{routed_to}-{i}", "ts": start_s + i / per_s,
            "domain": domain, "routed_to": routed_to, "response_time_ms": 100.0 + i % 50,
            "status": "error" if bad else "success", "http_status": 500 if bad else 200,
            "error_message": "upstream 500" if bad else None, "router_id": "r-test",
            "config_version": 1,
        })
    return out


async def produce(bootstrap: str, topic: str, events: list[dict[str, Any]],
                  per_record: int = 250, key: bytes | None = None) -> int:
    """Records of up to `per_record` events of one domain keyed by it, as the router sends
    them (a domain's events in their order; the worker judges a domain on its key's partition).
    With `key`, every record is sent with that key instead."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        records = 0
        pending: dict[str, list[dict[str, Any]]] = {}

        async def send(domain: str) -> None:
            nonlocal records
            chunk = pending.pop(domain)
            await producer.send(topic, encode_events(chunk), key=key or domain.encode())
            records += 1

        for event in events:
            pending.setdefault(event["domain"], []).append(event)
            if len(pending[event["domain"]]) == per_record:
                await send(event["domain"])
        for domain in list(pending):
            await send(domain)
        await producer.flush()
        return records
    finally:
        await producer.stop()


async def produce_raw(bootstrap: str, topic: str, values: list[bytes], key: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def read_until(bootstrap: str, topic: str, done: Callable[[list[dict[str, Any]]], bool],
                     timeout_s: float = 180) -> list[dict[str, Any]]:
    """JSON values of `topic` from the beginning until `done(values)` (or a timeout error: a
    safety net for a busy machine, not a figure)."""
    # The topic may not exist yet (a worker on a busy machine creates it late): refresh
    # metadata every second, not aiokafka's default 5 minutes, so it is seen when it appears.
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                metadata_max_age_ms=1000)
    await consumer.start()
    values: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not done(values):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: condition not met; {len(values)} values read, "
                                   f"last {values[-1:]!r:.300}")
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                values += [orjson.loads(r.value) for r in records]
        return values
    finally:
        await consumer.stop()


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)
