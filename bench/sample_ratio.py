"""What the sample-ratio guard costs the judge: the same events with the guard off and on.

Usage: python bench/sample_ratio.py [--hours H] [--repeat N] [--runs]

Generates a simulated day (three rollout domains at 100x the runbook's volume, 10 %; default
6 h) once, then feeds it to a fresh `Judge` without configured shares (the baseline, the guard
off) and with them (on), alternating, best of N in CPU seconds (the machine is shared).
Prints events/s of both, the ratio on/off, the evaluations run and how many said "mismatch"
(none: the routing is what the config says).

`--runs` prints instead how often the guard says "mismatch" on HEALTHY traffic that arrives in
sticky runs (each run: `length` requests of one sender, all on one target; the share of runs
on unified is the configured one), per `srm_dispersion` and run length: 200 steps each, 100
looks of 25 runs, a third of them at 1 %, 10 % and 50 %. The baseline is independent
requests (run length 1) at the same dispersion.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from trafficlight.streams.judge import Judge
from trafficlight.streams.sample_ratio import StaticShares, sample_ratio
from trafficlight.streams.thresholds import JudgeSettings
from trafficlight.tools.simulate import (
    RUNBOOK_VOLUMES_PER_H,
    Scenario,
    generate_batches,
    sticky_run_totals,
)

START_TS = 1_795_852_800.0


def run(batches: list, shares: StaticShares | None) -> tuple[float, int, int]:
    judge = Judge(shares=shares)
    evaluations = mismatches = 0
    start = time.process_time()
    for batch in batches:
        for verdict in judge.ingest(batch):
            if verdict.routed_to == "unified":
                evaluations += 1
                mismatches += verdict.rule == "sample_ratio_mismatch"
    return time.process_time() - start, evaluations, mismatches


def false_mismatch_steps(settings: JudgeSettings, run_length: int, steps: int = 200) -> int:
    """Healthy steps (share as configured) in which the guard ever says mismatch."""
    return sum(any(guard is not None and guard.mismatch
                   for guard in (sample_ratio(unified, legacy, pct, settings)
                                 for pct, unified, legacy in sticky_run_totals(seed, run_length)))
               for seed in range(steps))


def runs_table() -> None:
    lengths = (1, 4, 10, 20)
    print("healthy steps with a false mismatch, of 200 (runs of one sender's requests)")
    print("dispersion | " + " | ".join(f"runs of {n:>2}" for n in lengths))
    for dispersion in (1.0, 2.0, 4.0, 8.0):
        settings = replace(JudgeSettings(), srm_dispersion=dispersion)
        cells = [f"{false_mismatch_steps(settings, n):>10}" for n in lengths]
        print(f"{dispersion:>10g} | " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runs", action="store_true",
                        help="false mismatches on healthy traffic in sticky runs, instead")
    args = parser.parse_args()
    if args.runs:
        runs_table()
        return
    scenario = Scenario(start_ts=START_TS, duration_s=args.hours * 3600,
                        volumes_per_h={d: v * 100 for d, v in RUNBOOK_VOLUMES_PER_H.items()},
                        percentage_steps=((0.0, 10.0),), seed=1)
    batches = list(generate_batches(scenario))
    events = sum(len(b) for b in batches)
    shares = StaticShares(scenario.configured_shares())
    best = {"off": float("inf"), "on": float("inf")}
    counts = {}
    for _ in range(args.repeat):
        for name, source in (("off", None), ("on", shares)):
            seconds, evaluations, mismatches = run(batches, source)
            best[name] = min(best[name], seconds)
            counts[name] = (evaluations, mismatches)
    print(f"{events} events, {args.hours:g} h of event time, best of {args.repeat}")
    for name in ("off", "on"):
        evaluations, mismatches = counts[name]
        print(f"guard {name:3}: {events / best[name]:12,.0f} events/s  "
              f"({evaluations} unified rows, {mismatches} mismatch)")
    print(f"ratio on/off (time): {best['on'] / best['off']:.3f}")


if __name__ == "__main__":
    main()
