"""How the false-rollback budget was chosen: the error detector alone, per judge setting.

Usage: python bench/alpha_budget.py [--runs N] [--false-runs M]

For each setting of `alpha` and `alternative_weights` (the defaults before and after the
choice, and one between; the default once more with each batch tempered by the burst
dispersion estimated so far, `Dispersion`, as the judge does), the critical error detector
(`ChangeDetector` against 0.5 %) is fed simulated per-second batches, N runs per case (seeded,
the same for every setting), and the table prints:

- caught: the share of runs whose detector fires within the deadline of a regression that
  starts after a healthy stretch (0.02 % errors), as the scoreboard's scenarios do;
- fired: the share of M healthy or borderline 6-hour steps at 100 unified req/s in which it
  EVER fires (a false rollback): errors at exactly the critical rate, at 0.6x of it, and at
  0.6x with errors clustered in time (per-second counts beta-binomial, variance 2x and 3x
  Poisson's: bursts no independent-request model covers).

Ville's inequality bounds "fired" at the critical rate by alpha; what it costs to detect is
what the table shows.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from trafficlight.streams.evidence import ChangeDetector, Dispersion, Mixture
from trafficlight.streams.thresholds import JudgeSettings

CRITICAL = 0.005
BACKGROUND = 0.0002


@dataclass(frozen=True)
class Setting:
    name: str
    alpha: float
    weights: tuple[float, ...]
    tempered: bool = False


@dataclass(frozen=True)
class Regression:
    """``healthy_s`` seconds of background, then ``rate``; caught within ``deadline_s``."""

    name: str
    per_s: float
    healthy_s: int
    rate: float
    deadline_s: int


REGRESSIONS = (
    Regression("5% spike @100/s, 10 min in (5 s)", 100, 600, 0.05, 5),
    Regression("0.8% @100/s, 10 min in (4 min)", 100, 600, 0.008, 240),
    Regression("0.8% @10/s, 15 min in (36 min)", 10, 900, 0.008, 2160),
    Regression("2% @10/s, 2 h into a step (3 min)", 10, 7200, 0.02, 180),
    Regression("10% @50/h, 1 h in (60 min)", 50 / 3600, 3600, 0.10, 3600),
)


@dataclass
class Detector:
    """The critical error detector, tempered by a `Dispersion` when the setting says so."""

    change: ChangeDetector
    dispersion: Dispersion | None

    def update(self, requests: int, errors: int) -> None:
        weight = 1.0 if self.dispersion is None else self.dispersion.weight
        self.change.update(requests, errors, weight)
        if self.dispersion is not None:
            self.dispersion.update(requests, errors)


def detector(setting: Setting) -> Detector:
    s = JudgeSettings()
    change = ChangeDetector.new(CRITICAL, Mixture.of(s.alternatives, setting.weights),
                                setting.alpha, s.max_batch_nats, s.prior_start)
    dispersion = Dispersion(s.dispersion_prior_hits, s.dispersion_min_hits)
    return Detector(change, dispersion if setting.tempered else None)


def counts(rng: np.random.Generator, per_s: float, seconds: int, rate: float,
           dispersion: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-second requests (Poisson) and errors (binomial; beta-binomial if dispersed)."""
    n = rng.poisson(per_s, seconds)
    if dispersion == 1.0:
        return n, rng.binomial(n, rate)
    size = (per_s - dispersion) / (dispersion - 1)  # a + b: variance x dispersion at per_s
    return n, rng.binomial(n, rng.beta(rate * size, (1 - rate) * size, seconds))


def first_fire(d: Detector, n: np.ndarray, k: np.ndarray) -> int | None:
    for second, (requests, errors) in enumerate(zip(n.tolist(), k.tolist(), strict=True)):
        d.update(requests, errors)
        if d.change.fired:
            return second
    return None


def caught(setting: Setting, r: Regression, runs: int) -> float:
    hits = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        d = detector(setting)
        if first_fire(d, *counts(rng, r.per_s, r.healthy_s, BACKGROUND)) is not None:
            continue  # fired before the regression: a false rollback, not a catch
        hits += first_fire(d, *counts(rng, r.per_s, r.deadline_s, r.rate)) is not None
    return hits / runs


def fired(setting: Setting, rate: float, dispersion: float, runs: int) -> float:
    hours6 = 6 * 3600
    ever = sum(
        first_fire(detector(setting),
                   *counts(np.random.default_rng(10_000 + seed), 100, hours6, rate,
                           dispersion)) is not None
        for seed in range(runs))
    return ever / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--false-runs", type=int, default=20)
    args = parser.parse_args()
    default = JudgeSettings()
    settings = (Setting("alpha 0.001, weights 1,1,1,1,3,3,1 (before)", 1e-3,
                        (1, 1, 1, 1, 3, 3, 1)),
                Setting("alpha 0.005, the default weights", 5e-3, default.alternative_weights),
                Setting(f"alpha {default.alpha:g}, weights "
                        f"{','.join(f'{w:g}' for w in default.alternative_weights)} (default)",
                        default.alpha, default.alternative_weights),
                Setting("the default, tempered by bursts (the judge)", default.alpha,
                        default.alternative_weights, tempered=True))
    false_cases = ((1.0, 1.0), (0.6, 1.0), (0.6, 2.0), (0.6, 3.0))
    print(f"alternatives {list(default.alternatives)} x {CRITICAL:.1%}; caught: share of "
          f"{args.runs} runs within the deadline; fired: share of {args.false_runs} 6-hour "
          "steps at 100 req/s that ever fire")
    for setting in settings:
        print(f"\n{setting.name}")
        for r in REGRESSIONS:
            print(f"  caught  {r.name:<40} {caught(setting, r, args.runs):5.2f}")
        for factor, dispersion in false_cases:
            label = f"{factor:g}x critical" + (f", clustered x{dispersion:g}"
                                               if dispersion > 1 else "")
            share = fired(setting, factor * CRITICAL, dispersion, args.false_runs)
            print(f"  fired   {label:<40} {share:5.2f}", flush=True)


if __name__ == "__main__":
    main()
