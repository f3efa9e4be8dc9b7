"""Baseline (a): the naive Faust path: one event per record, windowed tables per event.

The same job as the worker (requests, errors, an HDR latency histogram per target and
10-s window), done the obvious way: each event updates three Faust windowed tables, the
histogram decoded, recorded and re-encoded per event.

    python bench/naive_agent.py BOOTSTRAP COUNT   (produces COUNT events, then consumes them)
Prints `naive events/s N`, timed from the first event consumed to the last.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from datetime import timedelta

import faust
import orjson
from aiokafka import AIOKafkaProducer
from hdrh.histogram import HdrHistogram

from trafficlight.base.kafka import ensure_topics

bootstrap, count = sys.argv[1], int(sys.argv[2])
suffix = uuid.uuid4().hex[:8]
app = faust.App(f"naive-{suffix}", broker=f"kafka://{bootstrap}", web_enabled=False,
                store="memory://", topic_partitions=1, consumer_auto_offset_reset="earliest",
                broker_rebalance_timeout=3.0, broker_session_timeout=10.0)
events = app.topic(f"naive-events-{suffix}", partitions=1, value_serializer="raw")
requests = app.Table("requests", default=int, partitions=1).tumbling(
    timedelta(seconds=10), expires=timedelta(minutes=5))
errors = app.Table("errors", default=int, partitions=1).tumbling(
    timedelta(seconds=10), expires=timedelta(minutes=5))
latency = app.Table("latency", default=str, partitions=1).tumbling(
    timedelta(seconds=10), expires=timedelta(minutes=5))
state = {"seen": 0, "started": 0.0}


@app.agent(events)
async def count_events(stream: faust.StreamT[bytes]) -> None:
    async for value in stream:
        if not state["seen"]:
            state["started"] = time.perf_counter()
        event = orjson.loads(value)
        key = f"{event['domain']}/{event['routed_to']}"
        requests[key] += 1
        if event["status"] == "error":
            errors[key] += 1
        encoded = latency[key].value()
        histogram = (HdrHistogram.decode(encoded) if encoded
                     else HdrHistogram(1_000, 3_600_000_000, 2))
        histogram.record_value(int(event["response_time_ms"] * 1000))
        latency[key] = histogram.encode().decode()
        state["seen"] += 1
        if state["seen"] == count:
            elapsed = time.perf_counter() - state["started"]
            print(f"naive events/s {count / elapsed:.0f}", flush=True)
            os._exit(0)  # the measurement is printed; no need for a graceful stop


async def produce() -> None:
    await ensure_topics(bootstrap, {events.get_topic_name(): 1})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    now = time.time()
    for i in range(count):
        await producer.send(events.get_topic_name(), orjson.dumps({
            "event_id": f"n{i}", "ts": now, "domain": "jobs", "routed_to": "unified",
            "response_time_ms": 120.0, "status": "success", "http_status": 200,
            "error_message": None, "router_id": "bench", "config_version": 1}))
    await producer.flush()
    await producer.stop()


if __name__ == "__main__":
    asyncio.run(produce())
    worker = faust.Worker(app, loglevel="error", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
