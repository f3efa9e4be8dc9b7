"""Worker events/s against a naive Faust agent and a raw decode-only consumer, in one run.

    python bench/worker_throughput.py [--events 2000000] [--naive-events 20000]

On the embedded broker, all measured in this run on this machine:
- worker: `trafficlight worker` (a subprocess, no database) over records of 250 events;
  timed from its first verdict to the verdict that covers the last event, so start-up and
  group join are excluded; RSS of the process at both instants;
- (a) naive: a Faust agent, one event per record, a per-event update of a Faust windowed
  table (the ~1,200 events/s path);
- (b) raw: an aiokafka consumer that only decodes the same records (orjson);
- P95 of the HDR histogram vs the exact (sorted) P95 of the same latencies.
Prints ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from trafficlight.base.kafka import ensure_topics
from trafficlight.base.local_services import EmbeddedBroker
from trafficlight.streams.histogram import LatencyHistogram

DOMAINS = ("jobs", "marketplace", "property")
EVENT_RATE_PER_S = 2_000  # event-time density of the generated traffic


def generate(start_s: float, count: int, rng: np.random.Generator) -> list[dict]:
    latencies = rng.lognormal(5.0, 0.6, count)
    out = []
    for i in range(count):
        out.append({
            "event_id": f"b{i}", "ts": start_s + i / EVENT_RATE_PER_S,
            "domain": DOMAINS[(i // 250) % 3], "routed_to": "unified" if i % 4 else "legacy",
            "response_time_ms": float(latencies[i]),
            "status": "error" if i % 500 == 0 else "success",
            "http_status": 200, "error_message": None, "router_id": "bench",
            "config_version": 1})
    return out


async def produce_records(bootstrap: str, topic: str, start_s: float, count: int,
                          per_record: int) -> float:
    """Produce `count` events in records of `per_record`; the last event's ts."""
    rng = np.random.default_rng(7)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                                max_request_size=10_000_000)
    await producer.start()
    try:
        chunk = 50_000
        last_ts = start_s
        for lo in range(0, count, chunk):
            events = generate(start_s + lo / EVENT_RATE_PER_S, min(chunk, count - lo), rng)
            for i in range(0, len(events), per_record):
                part = events[i:i + per_record]
                await producer.send(topic, orjson.dumps(part), key=part[0]["domain"].encode())
            last_ts = events[-1]["ts"]
        await producer.flush()
        return last_ts
    finally:
        await producer.stop()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


async def bench_worker(bootstrap: str, topic: str, last_ts: float,
                       log_dir: Path) -> tuple[float, float, float]:
    """events/s, RSS at the first verdict, RSS at the end (MB)."""
    suffix = uuid.uuid4().hex[:8]
    verdicts = f"bench-verdicts-{suffix}"
    log = open(log_dir / "worker.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "trafficlight.cli", "worker", "--bootstrap-servers", bootstrap,
         "--events-topic", topic, "--verdicts-topic", verdicts, "--app-id",
         f"bench-worker-{suffix}", "--loglevel", "warning"], stdout=log, stderr=log)
    consumer = AIOKafkaConsumer(verdicts, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest")
    try:
        await consumer.start()
        first_at = rss_first = None
        # The last heartbeat (every 10 s): every domain's rows are published there.
        last_evaluation = math.floor(last_ts / 10) * 10
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            values = [orjson.loads(r.value) for rs in batches.values() for r in rs]
            if values and first_at is None:
                first_at, rss_first = time.perf_counter(), rss_mb(proc.pid)
                first_end = min(v["window_end"] for v in values)
            if any(v["window_end"] >= last_evaluation for v in values):
                elapsed = time.perf_counter() - first_at
                rss_end = rss_mb(proc.pid)
                break
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited: see {log_dir / 'worker.log'}")
        judged = (last_evaluation - first_end) * EVENT_RATE_PER_S  # events in between
        return judged / elapsed, rss_first, rss_end
    finally:
        await consumer.stop()
        proc.terminate()
        proc.wait()
        log.close()


async def bench_raw(bootstrap: str, topic: str, count: int) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        seen = 0
        started = None
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            if started is None and batches:
                started = time.perf_counter()
            for records in batches.values():
                for r in records:
                    seen += len(orjson.loads(r.value))
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def bench_naive(bootstrap: str, count: int) -> float:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("naive_agent.py")), bootstrap,
         str(count)], capture_output=True, text=True, timeout=600)
    for line in out.stdout.splitlines():
        if "naive events/s" in line:
            return float(line.split()[-1])
    raise RuntimeError(f"naive agent failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")


def bench_p95(count: int = 1_000_000) -> float:
    latencies = np.random.default_rng(3).lognormal(5.0, 0.8, count)
    histogram = LatencyHistogram()
    histogram.record_many(latencies)
    (p95,) = histogram.percentiles_ms(95)
    exact = float(np.sort(latencies)[math.ceil(0.95 * count) - 1])
    return abs(p95 - exact) / exact * 100


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--naive-events", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    broker = EmbeddedBroker().start()
    try:
        bootstrap = broker.bootstrap_servers
        topic = f"bench-events-{uuid.uuid4().hex[:8]}"
        await ensure_topics(bootstrap, {topic: args.partitions})
        start_s = math.floor(time.time()) - args.events / EVENT_RATE_PER_S - 5
        t = time.perf_counter()
        last_ts = await produce_records(bootstrap, topic, start_s, args.events, 250)
        print(f"produced {args.events:,} events in records of 250 in "
              f"{time.perf_counter() - t:.1f} s")
        with tempfile.TemporaryDirectory() as tmp:
            raw = await bench_raw(bootstrap, topic, args.events)
            worker, rss_first, rss_end = await bench_worker(bootstrap, topic, last_ts,
                                                            Path(tmp))
            naive = bench_naive(bootstrap, args.naive_events)
        p95_error = bench_p95()
    finally:
        broker.stop()
    print(f"worker:              {worker:12,.0f} events/s")
    print(f"(a) naive Faust:     {naive:12,.0f} events/s  -> worker is {worker / naive:.0f}x")
    print(f"(b) raw decode-only: {raw:12,.0f} events/s  -> worker is {worker / raw:.2f}x of it")
    print(f"worker RSS: {rss_first:.0f} MB at first verdict, {rss_end:.0f} MB after "
          f"{args.events:,} events (+{rss_end - rss_first:.0f} MB)")
    print(f"P95 histogram vs exact (1 M lognormal latencies): {p95_error:.3f}% off")


if __name__ == "__main__":
    asyncio.run(main())
