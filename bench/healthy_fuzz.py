"""False rollbacks of trafficlight's judge on random healthy days: the labelled scenarios'
"must not roll back" beyond the shapes someone thought of.

Usage: python bench/healthy_fuzz.py [--cases 20:300] [--jobs 2]

Case i (its own seed) draws one domain's day: unified from 50 an hour to 150 a second
(log-uniform), at 1-100 %, up to 6 h (or 1.2 M events); both targets' error rates below
0.4 % and P95s below 2.8 s (every rate under its critical threshold: SPEC's defaults), with
lognormal sigma 0.3-1.0; errors and latencies independent or in runs of consecutive requests
(mean 2-3); flat or diurnal. Prints each case that rolled back (its draw and when), then the
count. Measured (stop 27): 0 of 280 (cases 20:300); with the run weight the thinning replaced,
15 of 280, every one with runs, 14 under 1 unified request a second.
"""

from __future__ import annotations

import argparse
import math
import random
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from trafficlight.tools.scenarios import HOUR_S, START_TS, LabelledScenario
from trafficlight.tools.scoreboard.board import default_judges, run_scenario
from trafficlight.tools.simulate import LatencyProfile, Scenario


def case(i: int) -> tuple[LabelledScenario, dict[str, Any]]:
    """Case `i`'s day and what was drawn for it."""
    r = random.Random(i)
    pct = r.choice([1, 5, 10, 25, 50, 100])
    unified_per_s = math.exp(r.uniform(math.log(50 / HOUR_S), math.log(150)))
    total_per_s = unified_per_s * 100 / pct
    duration_s = min(6 * HOUR_S, 1.2e6 / total_per_s)
    drawn = {"pct": pct, "unified_per_s": round(unified_per_s, 4),
             "hours": round(duration_s / HOUR_S, 2),
             "unified_error_pct": round(r.uniform(0, 0.4), 3),
             "legacy_error_pct": round(r.uniform(0, 0.4), 3),
             "unified_p95_ms": round(r.uniform(300, 2800)),
             "legacy_p95_ms": round(r.uniform(300, 2800)),
             "unified_sigma": round(r.uniform(0.3, 1.0), 2),
             "legacy_sigma": round(r.uniform(0.3, 1.0), 2),
             "error_run_mean": r.choice([1, 1, 2, 3]),
             "latency_run_mean": r.choice([1, 1, 2, 3]),
             "legacy_error_run_mean": r.choice([1, 2]),
             "diurnal": r.choice([0.0, 0.0, 0.5, 0.8])}
    targets = {
        "unified": LatencyProfile.with_p95(
            drawn["unified_p95_ms"], drawn["unified_sigma"], drawn["unified_error_pct"],
            drawn["error_run_mean"], drawn["latency_run_mean"]),
        "legacy": LatencyProfile.with_p95(
            drawn["legacy_p95_ms"], drawn["legacy_sigma"], drawn["legacy_error_pct"],
            drawn["legacy_error_run_mean"])}

    def build(seed: int) -> Scenario:
        return Scenario(start_ts=START_TS, duration_s=duration_s,
                        volumes_per_h={"jobs": total_per_s * HOUR_S},
                        percentage_steps=((0.0, float(pct)),),
                        diurnal_amplitude=drawn["diurnal"], targets=targets, seed=seed)
    return LabelledScenario(f"healthy-fuzz-{i}", "a random healthy day", build), drawn


def false_rollbacks(i: int) -> tuple[int, dict[str, Any], tuple[tuple[str, float], ...]]:
    entry, drawn = case(i)
    judges = {"trafficlight": default_judges()["trafficlight"]}
    [run] = run_scenario(entry, i, judges)
    return i, drawn, run.false_rollbacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="20:300", help="first:last (last excluded)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    first, last = (int(x) for x in args.cases.split(":"))
    rolled_back = 0
    with ProcessPoolExecutor(args.jobs) as pool:
        for i, drawn, false in pool.map(false_rollbacks, range(first, last)):
            if false:
                rolled_back += 1
                at = ", ".join(f"{d} {(ts - START_TS) / 60:.1f} min in" for d, ts in false)
                print(f"case {i}: rolled back ({at}); drawn {drawn}", flush=True)
    print(f"healthy days that rolled back: {rolled_back} of {last - first}")


if __name__ == "__main__":
    main()
