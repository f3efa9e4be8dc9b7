"""Replay throughput from a JSONL file vs a plain loop that only decodes the same file.

Usage: python bench/replay_file.py [EVENTS] [--file PATH] [--repeat N] [--sparse]
(default 1,000,000 generated events at 1000 events/s, best of 3; `--sparse`: a six-hour day at
100x the runbook's volume, ~44 events/s, 950,400 events: the judge's cost must follow events,
not event time x targets). Prints events/s of both, their ratio, the judge's core ingest rate,
and RSS at the start and end of replay and the peaks of replay and of its decoding child
(memory must stay flat: files stream). Best of N, alternating the two loops: the machine is
shared, and the fastest run is the one least disturbed. `--file` replays an existing file
instead (e.g. 10 M events).
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from trafficlight.streams.events import read_jsonl
from trafficlight.streams.judge import Judge
from trafficlight.streams.thresholds import ThresholdSet
from trafficlight.tools.replay import RejectLog, file_batches, replay

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
    """Resident memory now (not the peak)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory of this process, or (RUSAGE_CHILDREN) of its largest child:
    replay's decoding child (`decode_ahead`)."""
    return resource.getrusage(who).ru_maxrss / 1024


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def decode_loop(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if orjson.loads(line))


def replay_file(path: Path) -> None:
    with open(os.devnull, "wb") as sink:
        replay(file_batches(path, RejectLog(False, str(path)), None, None),
               [ThresholdSet()], sink)


def bench(path: Path, repeat: int) -> None:
    events = decode_loop(path)
    baseline_s = replay_s = float("inf")
    rss = []
    for _ in range(repeat):
        baseline_s = min(baseline_s, timed(lambda: decode_loop(path)))
        rss.append(rss_mb())
        replay_s = min(replay_s, timed(lambda: replay_file(path)))
        rss.append(rss_mb())
    replay_peak_mb = peak_rss_mb()
    batches = [d.events for d in itertools.islice(read_jsonl(path), 20)]
    judge = Judge()
    core_s = timed(lambda: [judge.ingest(b) for b in batches])
    core_events = sum(len(b) for b in batches)
    print(f"events: {events:,} (best of {repeat})")
    print(f"plain decode loop : {events / baseline_s:12,.0f} events/s")
    print(f"replay (jsonl out): {events / replay_s:12,.0f} events/s  "
          f"ratio to decode loop {baseline_s / replay_s:.2f}x")
    print(f"judge ingest only : {core_events / core_s:12,.0f} events/s")
    print(f"RSS before first replay {rss[0]:.0f} MB, after last {rss[-1]:.0f} MB, "
          f"peak {replay_peak_mb:.0f} MB; decoding child's peak "
          f"{peak_rss_mb(resource.RUSAGE_CHILDREN):.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("events", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--file", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sparse", action="store_true")
    args = parser.parse_args()
    if args.file is not None:
        bench(args.file, args.repeat)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        if args.sparse:
            generate(path, 6 * 3600 * 44, rate_per_s=44.0)
        else:
            generate(path, args.events)
        bench(path, args.repeat)


if __name__ == "__main__":
    main()
