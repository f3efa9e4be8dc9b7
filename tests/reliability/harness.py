"""Real processes for the reliability suite: the router, an upstream, load and an event collector.

Everything here drives the product from outside, as an operator's traffic would: the router
is ``python -m trafficlight.cli router`` in a subprocess, the upstream another process, and
routing events are counted by ``event_id`` off the real topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
from aiokafka import AIOKafkaConsumer

from tests.reliability.upstream import SEQ_HEADER
from trafficlight.base.local_services import free_port
from trafficlight.streams.partition import PartitionJudge
from trafficlight.streams.thresholds import ThresholdSet

REPO_ROOT = Path(__file__).resolve().parents[2]

#: A password put into DATABASE_URL (the test servers trust local connections and ignore it):
#: it must never show up in a log, a metric or a page.
PASSWORD = "s3cr3t-Pa55w0rd-do-not-log"


def with_password(url: str, password: str = PASSWORD) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@", 1)


#: The upstream's own latency: what a webhook costs without any router in the way.
UPSTREAM_DELAY_MS = 5.0


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without service URLs (each child gets its own), plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra)
    return env


async def wait_http_ok(url: str, timeout_s: float = 30) -> None:
    """Until ``url`` answers 200 (a process just started); raises TimeoutError after."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout_s):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)


@dataclass
class UpstreamProcess:
    """Legacy and unified handlers on one port (``/legacy/...``, ``/unified/...``)."""

    port: int
    delay_ms: float
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    async def start(cls, delay_ms: float = 0) -> UpstreamProcess:
        upstream = cls(free_port(), delay_ms)
        upstream.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.upstream", str(upstream.port),
             str(delay_ms)], env=child_env({}), cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await wait_http_ok(f"{upstream.base}/seen")
        return upstream

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_template(self, target: str) -> str:
        return f"{self.base}/{target}/webhook/{{domain}}"

    async def seen(self) -> dict[str, Any]:
        """``{"seen": {target: {seq: count}}, "paths": {path: count}}``."""
        async with aiohttp.ClientSession() as session, session.get(f"{self.base}/seen") as r:
            return orjson.loads(await r.read())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@dataclass
class RouterProcess:
    """``trafficlight router --config FILE`` in a subprocess; its log kept in ``log_path``."""

    config_path: Path
    log_path: Path
    env: dict[str, str]
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def configure(cls, workdir: Path, upstream: UpstreamProcess, bootstrap_servers: str,
                  database_url: str | None = None, port: int | None = None,
                  **settings: Any) -> RouterProcess:
        port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        table = {"host": "127.0.0.1", "port": port,
                 "legacy_url": upstream.url_template("legacy"),
                 "unified_url": upstream.url_template("unified"),
                 "spool_dir": str(workdir / "spool"), "router_id": "router-under-test",
                 **settings}
        lines = ["[router]"] + [f"{key} = {_toml_value(value)}" for key, value in table.items()]
        config_path = workdir / "router.toml"
        config_path.write_text("\n".join(lines) + "\n")
        env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers}
        if database_url is not None:
            env["DATABASE_URL"] = database_url
        return cls(config_path, workdir / "router.log", env, port)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> RouterProcess:
        """Start the process; do not wait for it to listen."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trafficlight.cli", "router", "--config",
             str(self.config_path)], env=child_env(self.env), cwd=REPO_ROOT,
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        return self

    async def start(self) -> RouterProcess:
        self.launch()
        try:
            await wait_http_ok(f"{self.base}/healthz")
        except BaseException:
            self.kill()  # a router that never came up must not outlive the test
            raise
        return self

    async def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM and wait: the router's own graceful stop. Returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.proc.wait, timeout_s)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def _processes(self) -> list[psutil.Process]:
        """The router process and its serving processes (``processes`` > 1)."""
        assert self.proc is not None
        root = psutil.Process(self.proc.pid)
        return [root, *root.children()]

    @property
    def rss_bytes(self) -> int:
        """Resident memory of the router's processes together."""
        total = 0
        for process in self._processes():
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    @property
    def cpu_s(self) -> float:
        """User + system CPU seconds the router's processes have used so far."""
        total = 0.0
        for process in self._processes():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    async def healthz(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.get(f"{self.base}/healthz") as r:
            return orjson.loads(await r.read())

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as session, session.get(f"{self.base}/metrics") as r:
            return await r.text()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    return repr(value)


@dataclass
class Outcome:
    """What one webhook got back: a status (with its routing event id) or a transport error."""

    seq: int
    sent_at: float
    latency_s: float = 0.0
    status: int | None = None
    routed_to: str | None = None
    event_id: str | None = None
    error: str | None = None


def whatsapp_webhook(sender: str) -> bytes:
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [
        {"value": {"messages": [{"from": sender, "text": {"body": "hallo"}}]}}]}]})


@dataclass
class Load:
    """Open-loop traffic: requests start on schedule whatever the router is doing."""

    base_url: str
    rate_per_s: float
    domains: tuple[str, ...] = ("jobs", "marketplace", "property", "mobility")
    outcomes: list[Outcome] = field(default_factory=list)
    timeout_s: float = 60
    max_connections: int = 4000
    _seq: int = 0

    async def run(self, duration_s: float) -> None:
        """Send ``rate_per_s * duration_s`` webhooks, then wait for every answer."""
        connector = aiohttp.TCPConnector(limit=self.max_connections, force_close=False)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            tasks: list[asyncio.Task[None]] = []
            start = time.monotonic()
            total = int(self.rate_per_s * duration_s)
            for i in range(total):
                delay_s = start + i / self.rate_per_s - time.monotonic()
                if delay_s > 0.002:
                    await asyncio.sleep(delay_s)
                tasks.append(asyncio.create_task(self._one(session)))
            await asyncio.gather(*tasks)

    def event_ids(self) -> set[str]:
        """The routing event ids of every webhook answered so far."""
        return {o.event_id for o in self.outcomes if o.event_id}

    async def _one(self, session: aiohttp.ClientSession) -> None:
        seq = self._seq
        self._seq += 1
        domain = self.domains[seq % len(self.domains)]
        outcome = Outcome(seq, time.time())
        self.outcomes.append(outcome)
        started = time.perf_counter()
        try:
            async with session.post(f"{self.base_url}/webhook/{domain}",
                                    data=whatsapp_webhook(f"49155{seq % 5000:05d}"),
                                    headers={SEQ_HEADER: str(seq),
                                             "Content-Type": "application/json"}) as response:
                await response.read()
                outcome.status = response.status
                outcome.routed_to = response.headers.get("X-Routed-To")
                outcome.event_id = response.headers.get("X-Routing-Event-Id")
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome.error = type(exc).__name__
        outcome.latency_s = time.perf_counter() - started


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


class EventCollector:
    """Reads a topic from the start in the background; counts events by ``event_id``."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.counts: Counter[str] = Counter()
        self.events: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> EventCollector:
        consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bootstrap_servers,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    metadata_max_age_ms=1000)
        await consumer.start()
        self._task = asyncio.create_task(self._collect(consumer))
        return self

    async def _collect(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    for message in messages:
                        self._count(message.value)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    def _count(self, value: bytes | None) -> None:
        decoded = orjson.loads(value or b"[]")
        for event in decoded if isinstance(decoded, list) else [decoded]:
            self.counts[event["event_id"]] += 1
            self.events[event["event_id"]] = event

    async def wait_for(self, event_ids: set[str], timeout_s: float = 60) -> set[str]:
        """Until every id is seen or ``timeout_s`` passes; returns the ids still missing."""
        deadline = time.monotonic() + timeout_s
        while (missing := event_ids - self.counts.keys()) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return missing

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


#: Records of a topic by partition: (offset, value) in offset order.
Placed = dict[int, list[tuple[int, bytes]]]

#: Bucket aggregates as (domain, routed_to, bucket start epoch s) -> (requests, errors).
Buckets = dict[tuple[str, str, float], tuple[int, int]]


def no_fault_run(placed: Placed, now_s: float) -> tuple[list[dict[str, Any]], Buckets]:
    """Verdicts and buckets of an undisturbed worker: one PartitionJudge per partition, every
    record once in offset order (the worker's own judging code, without any process)."""
    verdicts: list[dict[str, Any]] = []
    buckets: Buckets = {}
    for partition, records in placed.items():
        judge = PartitionJudge(partition, ThresholdSet())
        for offset, value in sorted(records):
            verdicts += [v.to_dict() for v in judge.apply(offset, value, now_s).verdicts]
        for domain, routed_to, bucket in judge.judge.buckets():
            buckets[(domain, routed_to, float(bucket.start_s))] = (bucket.requests,
                                                                   bucket.errors)
    return verdicts, buckets


async def partitions_of(bootstrap_servers: str, topic: str) -> set[int]:
    """The partitions the broker has of ``topic`` now (fresh metadata)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        return consumer.partitions_for_topic(topic) or set()
    finally:
        await consumer.stop()


async def read_topic(bootstrap_servers: str, topic: str) -> Placed:
    """Every record of ``topic`` now, by partition (reads up to the end offsets at the start)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    placed: Placed = {}
    try:
        partitions = consumer.assignment() or set()
        while not partitions:
            await asyncio.sleep(0.1)
            partitions = consumer.assignment()
        ends = await consumer.end_offsets(list(partitions))
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for tp, messages in (await consumer.getmany(timeout_ms=200)).items():
                placed.setdefault(tp.partition, []).extend(
                    (m.offset, m.value or b"") for m in messages)
    finally:
        await consumer.stop()
    return placed


async def stored_aggregates(database_url: str) -> tuple[int, int, Buckets]:
    """What the sink stored: log rows, distinct event ids, and the bucket aggregates."""
    from trafficlight.base.db import connect

    conn = await connect(database_url)
    try:
        logs, distinct = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT event_id) FROM webhook_routing_logs")
        rows = await conn.fetch("SELECT domain, routed_to, extract(epoch FROM window_start) "
                                "AS start_s, requests, errors FROM webhook_routing_windows")
    finally:
        await conn.close()
    return logs, distinct, {(r["domain"], r["routed_to"], float(r["start_s"])):
                            (r["requests"], r["errors"]) for r in rows}
