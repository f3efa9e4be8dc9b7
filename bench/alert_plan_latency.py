"""Alert latency with the rollout plan: does following the plan delay verdict alerts, and how
soon does a plan change reach a channel?

    python bench/alert_plan_latency.py [--runs 10]

Embedded broker and Postgres, `run_alerts` in this process, a local Slack-compatible receiver.

1. Verdict alerts: a verdict that changes is produced to the topic; the clock runs from the
   broker's ack to the receiver's answer. Three consumers, one after the other, each on its own
   topic: without a database (the baseline), with the database (each alert carries the plan
   block), and with an unreachable database (the block left out). Ratios are against the
   baseline measured in the same run.
2. Plan changes: `promote` / `pause` / `resume` through the SQL functions; the clock runs from
   the function's commit to the receiver's answer. With LISTEN (the baseline) and polling only
   (as through a transaction pooler, every 5 s).

Prints medians and ratios. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer

from trafficlight.base.kafka import ensure_topics
from trafficlight.base.local_services import embedded_services, free_port
from trafficlight.tools import plan_operations
from trafficlight.tools.alerts.consumer import AlertSettings, run_alerts
from trafficlight.tools.migrate import apply_migrations
from trafficlight.tools.plan_operations import PlanAction


class Receiver:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, dict]] = []

    async def post(self, request: web.Request) -> web.Response:
        self.arrivals.append((time.monotonic(), await request.json()))
        return web.Response(text="ok")

    async def next_after(self, count: int, timeout_s: float = 60.0) -> float:
        deadline = time.monotonic() + timeout_s
        while len(self.arrivals) <= count:
            if time.monotonic() > deadline:
                raise TimeoutError("no alert arrived")
            await asyncio.sleep(0.005)
        return self.arrivals[count][0]


def _verdict(window_end: float, critical: bool) -> dict:
    return {"domain": "jobs", "routed_to": "unified", "window_start": window_end - 300,
            "window_end": window_end, "requests": 600, "errors": 30 if critical else 0,
            "error_pct": 5.0 if critical else 0.0, "p50_ms": 80.0, "p95_ms": 240.0,
            "p99_ms": 410.0, "verdict": "critical" if critical else "healthy",
            "decision": "rollback" if critical else "proceed", "reasons": []}


async def _alerts(config: AlertSettings) -> tuple[asyncio.Event, asyncio.Task]:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_alerts(config, stop, announce=lambda _: ready.set()))
    await asyncio.wait_for(ready.wait(), 60)
    return stop, task


async def verdict_latencies_s(bootstrap: str, database_url: str | None, receiver: Receiver,
                              url: str, runs: int) -> list[float]:
    topic = f"bench-verdicts-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, {topic: 1})
    stop, task = await _alerts(AlertSettings(
        bootstrap, webhook_urls=(url,), topic=topic, group_id=topic, offset_reset="earliest",
        database_url=database_url))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    latencies: list[float] = []
    try:
        for i in range(runs + 1):  # the first one warms the consumer up
            seen = len(receiver.arrivals)
            await producer.send_and_wait(topic, orjson.dumps(_verdict(i + 1, i % 2 == 0)))
            sent = time.monotonic()
            arrived = await receiver.next_after(seen)
            if i:
                latencies.append(arrived - sent)
    finally:
        await producer.stop()
        stop.set()
        await task
    return latencies


async def plan_latencies_s(bootstrap: str, database_url: str, listen_url: str,
                           receiver: Receiver, url: str, runs: int) -> list[float]:
    topic = f"bench-verdicts-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, {topic: 1})
    await plan_operations.set_plan(database_url, [Decimal(s) for s in range(1, runs + 2)],
                                   3600.0, "bench", "bench", required_proceed=3)
    stop, task = await _alerts(AlertSettings(
        bootstrap, webhook_urls=(url,), topic=topic, group_id=topic, database_url=listen_url))
    latencies: list[float] = []
    try:
        for _ in range(runs):
            seen = len(receiver.arrivals)
            await plan_operations.act(database_url, PlanAction.PROMOTE, "bench", "bench")
            committed = time.monotonic()
            latencies.append(await receiver.next_after(seen) - committed)
    finally:
        stop.set()
        await task
    return latencies


def _line(name: str, values: list[float], baseline: list[float]) -> str:
    median = statistics.median(values)
    ratio = median / statistics.median(baseline)
    return (f"  {name:<34} median {median * 1000:7.1f} ms  max {max(values) * 1000:7.1f} ms  "
            f"x{ratio:.2f} of the baseline")


async def main(runs: int) -> None:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/hook"
    try:
        with embedded_services(Path(tempfile.mkdtemp(prefix="tl-bench-"))) as running:
            await apply_migrations(running.database_url)
            await plan_operations.set_plan(running.database_url, [Decimal(10), Decimal(50)],
                                           3600.0, "bench", "bench", required_proceed=3)
            kafka, db = running.bootstrap_servers, running.database_url
            nowhere = f"postgresql://nobody@127.0.0.1:{free_port()}/nowhere"
            base = await verdict_latencies_s(kafka, None, receiver, url, runs)
            with_db = await verdict_latencies_s(kafka, db, receiver, url, runs)
            down = await verdict_latencies_s(kafka, nowhere, receiver, url, runs)
            print(f"verdict alerts, broker ack -> receiver ({runs} runs each):")
            print(_line("no database (baseline)", base, base))
            print(_line("database: with the plan block", with_db, base))
            print(_line("database unreachable: no block", down, base))
            listen = await plan_latencies_s(kafka, db, db, receiver, url, runs)
            polled = await plan_latencies_s(kafka, db, f"{db}?prepared_statements=false",
                                            receiver, url, runs)
            print(f"plan changes, commit -> receiver ({runs} promotions each):")
            print(_line("LISTEN/NOTIFY (baseline)", listen, listen))
            print(_line("polling every 5 s (pooler)", polled, listen))
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    asyncio.run(main(parser.parse_args().runs))
