"""How fast `trafficlight simulate` writes events, against writing the same events pre-built.

Prints events/s for generate+write (.jsonl and .jsonl.gz) and the ratio to a baseline measured
in the same run: the same events, already in memory, only encoded and written. Also the peak
RSS growth, to show that generation streams (flat memory whatever the count).

    python bench/simulate_bench.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import itertools
import resource
import tempfile
import time
from pathlib import Path

from trafficlight.tools.jsonl import write_jsonl
from trafficlight.tools.simulate import RUNBOOK_VOLUMES_PER_H, Scenario, default_incident, generate

START_TS = 1_795_824_000.0


def _busy_scenario() -> Scenario:
    """The runbook's mix at 1,000x its volume, with one of each incident, for a long time."""
    day = 86_400.0
    return Scenario(
        start_ts=START_TS, duration_s=365 * day,
        volumes_per_h={d: v * 1_000 for d, v in RUNBOOK_VOLUMES_PER_H.items()},
        percentage_steps=((0.0, 25.0),),
        incidents=(default_incident("error_spike", "jobs", START_TS + 600, START_TS + 900),
                   default_incident("latency_creep", "jobs", START_TS + 1200, START_TS + 1800),
                   default_incident("outage", "property", START_TS + 2400, START_TS + 2700)),
    )


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>10,.0f} events/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    count = parser.parse_args().events
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        results = {}
        for suffix in (".jsonl", ".jsonl.gz"):
            started = time.perf_counter()
            write_jsonl(out / f"sim{suffix}", itertools.islice(generate(_busy_scenario()), count))
            results[suffix] = time.perf_counter() - started
        rss_after_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_growth_mib = (rss_after_kib - rss_before_kib) / 1024

        sample = min(count, 200_000)
        prebuilt = list(itertools.islice(generate(_busy_scenario()), sample))
        started = time.perf_counter()
        write_jsonl(out / "baseline.jsonl", prebuilt)
        baseline_s = (time.perf_counter() - started) * count / sample

    print(f"events: {count:,}")
    print(f"baseline (pre-built events, encode + write .jsonl): {_rate(count, baseline_s)}")
    for suffix, seconds in results.items():
        print(f"simulate -> {suffix:<10} {_rate(count, seconds)}  "
              f"ratio to baseline {baseline_s / seconds:.2f}  "
              f"(10 M events: ~{seconds * 10_000_000 / count:.0f} s)")
    print(f"peak RSS growth while generating: {rss_growth_mib:.1f} MiB")


if __name__ == "__main__":
    main()
