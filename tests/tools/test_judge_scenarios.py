"""The judge on generated, labelled days: no false rollback on healthy heavy-tailed or bursty
traffic."""

from __future__ import annotations

from dataclasses import replace

import pytest

from trafficlight.streams.events import EventBatch
from trafficlight.streams.judge import Judge
from trafficlight.streams.thresholds import JudgeSettings, ThresholdSet
from trafficlight.tools.scenarios import select
from trafficlight.tools.simulate import LatencyProfile, Scenario, generate

#: A unified whose P95 sits near 1.9 s with a heavy tail (0.7 % slower than 3 s, 4 % slower
#: than 2 s), errors at 0.05 %: inside every threshold, and noisy.
HEAVY_TAILED = {"legacy": LatencyProfile(median_ms=450.0, sigma=0.5, error_pct=0.02),
                "unified": LatencyProfile(median_ms=700.0, sigma=0.6, error_pct=0.05)}


def judge_day(scenario: Scenario, thresholds: ThresholdSet | None = None) -> list[str]:
    judge, chunk, decisions = Judge(thresholds), [], []
    for event in generate(scenario):
        chunk.append(event)
        if len(chunk) == 20_000:
            decisions += [v.decision for v in judge.ingest(EventBatch.from_records(chunk))]
            chunk = []
    decisions += [v.decision for v in judge.ingest(EventBatch.from_records(chunk))]
    return decisions


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_six_healthy_heavy_tailed_hours_never_roll_back(seed: int) -> None:
    # Six hours at 10x the runbook's jobs volume, half of it on unified.
    day = Scenario(start_ts=1_795_824_000.0, duration_s=6 * 3600.0, targets=HEAVY_TAILED,
                   volumes_per_h={"jobs": 5000.0}, seed=seed, percentage_steps=((0.0, 50.0),))
    decisions = judge_day(day)
    assert decisions and "rollback" not in decisions


def bursty_first_hour(seed: int) -> Scenario:
    """The first hour of the scoreboard's bursty-healthy day (0.3 % errors in runs)."""
    return replace(select(["bursty-healthy"])[0].scenario(seed), duration_s=3600.0)


def test_errors_in_runs_at_a_healthy_rate_do_not_roll_back() -> None:
    # Seed 3 rolled back 6 min in when bursts were read as independent errors.
    assert "rollback" not in judge_day(bursty_first_hour(3))


def test_without_tempering_the_same_bursts_roll_back() -> None:
    # The control: the same hour judged as if requests were independent.
    untempered = ThresholdSet(settings=replace(JudgeSettings(), temper_bursts=False))
    assert "rollback" in judge_day(bursty_first_hour(3), untempered)


def test_slow_requests_in_runs_at_low_volume_do_not_roll_back() -> None:
    # Seed 3 rolled back 72 s in, 5 slow of unified's first 21 requests (one run), when runs
    # were forgiven only as far as chance goes at the batch's own rate of hits.
    quiet = replace(select(["bursty-low-volume"])[0].scenario(3), duration_s=1800.0)
    assert "rollback" not in judge_day(quiet)
