"""The labelled scoreboard, and what each judge costs against generating the same events.

Usage: python bench/scoreboard.py [--seeds 1,2,3] [--scenarios NAMES] [--soak] [--soak-only]

Prints the scoreboard table (as `trafficlight scoreboard`), then per judge the CPU seconds it
took over all runs and its ratio to the baseline measured in the same run: generating the
scenarios' events (vectorised, columnar), which every judge is fed. Per scenario, the event
count and each judge's events/s. `--soak` adds the 30-day healthy soak per domain; `--soak-only`
runs just it (the issue's "30 simulated days give no false rollback").
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from trafficlight.tools.scenarios import select
from trafficlight.tools.scoreboard.board import Board, default_judges, table
from trafficlight.tools.scoreboard.score import score_run
from trafficlight.tools.simulate import generate_batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--scenarios", default="")
    parser.add_argument("--soak", action="store_true")
    parser.add_argument("--soak-only", action="store_true")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = ["soak-30d"] if args.soak_only else [n for n in args.scenarios.split(",") if n]
    chosen = select(names, soak=args.soak)
    judges = default_judges()
    board = Board(tuple(seeds), tuple(chosen), tuple(judges))
    cpu: dict[str, float] = defaultdict(float)
    per_scenario: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    events: dict[str, int] = defaultdict(int)
    for entry in chosen:
        for seed in seeds:
            scenario = entry.scenario(seed)
            start = time.process_time()
            batches = list(generate_batches(scenario))
            gen_s = time.process_time() - start
            cpu["generate"] += gen_s
            per_scenario[entry.name]["generate"] += gen_s
            events[entry.name] += sum(len(b) for b in batches)
            for name, make in judges.items():
                judge = make(scenario)
                start = time.process_time()
                for batch in batches:
                    judge.feed(batch)
                timeline = judge.finish()
                judge_s = time.process_time() - start
                cpu[name] += judge_s
                per_scenario[entry.name][name] += judge_s
                board.runs.append(score_run(timeline, scenario, entry.name, seed, name))
    print(table(board))
    print()
    base = cpu["generate"]
    print(f"baseline: generating the events {base:.2f} s CPU "
          f"({sum(events.values()):,} events over {len(seeds)} seed(s))")
    for name in judges:
        print(f"{name:>12}: {cpu[name]:8.2f} s CPU  {cpu[name] / base:8.1f}x generation")
    print()
    print(f"{'scenario':24} {'events':>10} " + " ".join(f"{n + ' ev/s':>18}" for n in judges))
    for entry in chosen:
        spent = per_scenario[entry.name]
        rates = " ".join(f"{events[entry.name] / max(spent[n], 1e-9):18,.0f}" for n in judges)
        print(f"{entry.name:24} {events[entry.name]:10,} {rates}")


if __name__ == "__main__":
    main()
