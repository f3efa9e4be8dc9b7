"""Replay throughput from a JSONL file vs a plain loop that only decodes the same file.

Usage: python bench/replay_file.py [EVENTS] (default 1,000,000). Prints events/s of both, their
ratio, the judge's core ingest rate, and the RSS growth (memory must stay flat: files stream).
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from streams.events import read_jsonl
from streams.judge import Judge
from streams.thresholds import ThresholdSet
from trafficlight.replay import RejectLog, file_batches, replay

T0 = 1_800_000_000.0


def generate(path: Path, n: int, rate_per_s: float = 1000.0) -> None:
    rng = np.random.default_rng(7)
    with path.open("wb") as fh:
        for lo in range(0, n, 100_000):
            m = min(100_000, n - lo)
            ts = T0 + (lo + np.arange(m)) / rate_per_s
            domain = rng.choice(["jobs", "marketplace", "property"], m)
            target = rng.choice(["unified", "legacy"], m)
            latency = rng.lognormal(5, 0.6, m).round(2)
            error = rng.random(m) < 0.001
            fh.write(b"".join(orjson.dumps({
                "event_id": f"e{lo + i}", "ts": float(ts[i]), "domain": str(domain[i]),
                "routed_to": str(target[i]), "response_time_ms": float(latency[i]),
                "status": "error" if error[i] else "success",
                "http_status": 500 if error[i] else 200, "error_message": None,
                "router_id": "r1", "config_version": 3}) + b"\n" for i in range(m)))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        generate(path, n)
        start = time.perf_counter()
        with path.open("rb") as fh:
            decoded = sum(1 for line in fh if orjson.loads(line))
        baseline_s = time.perf_counter() - start
        rss_before = rss_mb()
        start = time.perf_counter()
        with open(os.devnull, "wb") as sink:
            replay(file_batches(path, RejectLog(False, str(path)), None, None),
                   [ThresholdSet()], sink)
        replay_s = time.perf_counter() - start
        rss_growth = rss_mb() - rss_before
        batches = [d.events for d in read_jsonl(path)][:20]
        judge = Judge()
        start = time.perf_counter()
        for b in batches:
            judge.ingest(b)
        core_s = time.perf_counter() - start
        core_events = sum(len(b) for b in batches)
    print(f"events: {decoded:,}")
    print(f"plain decode loop : {decoded / baseline_s:12,.0f} events/s")
    print(f"replay (jsonl out): {n / replay_s:12,.0f} events/s  "
          f"ratio to decode loop {baseline_s / replay_s:.2f}x")
    print(f"judge ingest only : {core_events / core_s:12,.0f} events/s")
    print(f"max RSS growth during replay: {rss_growth:.0f} MB")


if __name__ == "__main__":
    main()
