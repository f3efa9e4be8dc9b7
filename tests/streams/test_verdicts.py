from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trafficlight.streams.thresholds import JudgeSettings, Thresholds
from trafficlight.streams.verdicts import (
    Decision,
    DecisionState,
    Health,
    Judgement,
    WindowStats,
    decide,
    error_rate_excess_z,
    judge_window,
    wilson_lower_pct,
)

LIMITS = Thresholds()
SETTINGS = JudgeSettings()


def stats(requests: int, errors: int = 0, p95_ms: float | None = 100.0) -> WindowStats:
    return WindowStats(0.0, 300.0, requests, errors, p95_ms, p95_ms, p95_ms, requests)


@pytest.mark.parametrize(("requests", "errors", "expected"), [
    (19, 19, Health.INSUFFICIENT_DATA),   # below min_requests, whatever the errors
    (20, 0, Health.HEALTHY),
    (20, 4, Health.HEALTHY),              # 20 % but 4 errors < min_errors
    (10_000, 16, Health.HEALTHY),         # 0.16 %: Wilson lower 0.0985 % < 0.1 %
    (10_000, 17, Health.WARNING),         # Wilson lower 0.106 % >= 0.1 %
    (10_000, 63, Health.WARNING),         # Wilson lower 0.493 % < 0.5 %
    (10_000, 64, Health.CRITICAL),        # Wilson lower 0.502 % >= 0.5 %
])
def test_error_rate_edges(requests: int, errors: int, expected: Health) -> None:
    assert judge_window(stats(requests, errors), LIMITS).health is expected


@pytest.mark.parametrize(("p95_ms", "samples", "expected"), [
    (1999.0, 100, Health.HEALTHY),
    (2000.0, 100, Health.WARNING),
    (2999.0, 100, Health.WARNING),
    (3000.0, 100, Health.CRITICAL),
    (9000.0, 19, Health.HEALTHY),   # too few latencies to judge P95
])
def test_p95_edges(p95_ms: float, samples: int, expected: Health) -> None:
    window = WindowStats(0.0, 300.0, 100, 0, 50.0, p95_ms, p95_ms, samples)
    assert judge_window(window, LIMITS).health is expected


@given(st.integers(min_value=1, max_value=100_000), st.data())
def test_wilson_lower_bound_never_exceeds_the_observed_rate(requests: int, data) -> None:
    errors = data.draw(st.integers(min_value=0, max_value=requests))
    assert wilson_lower_pct(errors, requests, 1.96) <= 100.0 * errors / requests + 1e-9


def test_one_error_at_runbook_volume_never_rolls_back() -> None:
    # ~50 unified requests an hour: a 5-min window holds ~4; even a whole hour is 50.
    for requests in (4, 20, 50):
        assert judge_window(stats(requests, 1), LIMITS).health in (
            Health.HEALTHY, Health.INSUFFICIENT_DATA)


#: Window figures that fit each verdict, so comparisons between targets see real rates.
_ERRORS_FOR = {Health.HEALTHY: 0, Health.WARNING: 4, Health.CRITICAL: 60,
               Health.INSUFFICIENT_DATA: 0}


def judged(health: Health, requests: int = 1000, errors: int | None = None) -> Judgement:
    figures = stats(requests, _ERRORS_FOR[health] if errors is None else errors)
    return Judgement(health, (health.value,), figures, (figures,))


@pytest.mark.parametrize(("unified", "expected"), [
    (Health.HEALTHY, Decision.PROCEED),
    (Health.WARNING, Decision.HOLD),
    (Health.INSUFFICIENT_DATA, Decision.HOLD),
    (Health.CRITICAL, Decision.HOLD),  # first critical: hysteresis holds
])
def test_verdict_to_decision(unified: Health, expected: Decision) -> None:
    decision, _, _ = decide(
        judged(unified), judged(Health.HEALTHY), DecisionState(), SETTINGS, LIMITS)
    assert decision is expected


def test_consecutive_criticals_roll_back_and_healthy_streak_recovers() -> None:
    state = DecisionState()
    steps = [Health.CRITICAL, Health.CRITICAL, Health.HEALTHY, Health.HEALTHY, Health.HEALTHY]
    decisions = []
    for health in steps:
        decision, state, _ = decide(judged(health), judged(Health.HEALTHY), state, SETTINGS, LIMITS)
        decisions.append(decision)
    assert decisions == [Decision.HOLD, Decision.ROLLBACK, Decision.ROLLBACK,
                         Decision.ROLLBACK, Decision.PROCEED]


def test_a_warning_between_criticals_restarts_the_count() -> None:
    state = DecisionState()
    for health in (Health.CRITICAL, Health.WARNING, Health.CRITICAL):
        decision, state, _ = decide(judged(health), judged(Health.HEALTHY), state, SETTINGS, LIMITS)
    assert decision is Decision.HOLD


def test_a_regression_legacy_shares_is_held_not_rolled_back() -> None:
    state = DecisionState()
    for _ in range(5):
        decision, state, reasons = decide(
            judged(Health.CRITICAL), judged(Health.CRITICAL), state, SETTINGS, LIMITS)
    assert decision is Decision.HOLD
    assert reasons[0].startswith("shared regression")


def test_an_outage_legacy_shares_at_a_similar_rate_is_held_while_legacy_dips() -> None:
    # Both targets fail ~30 %; this evaluation legacy's noisy window is only a warning.
    state = DecisionState()
    for _ in range(5):
        decision, state, _ = decide(judged(Health.CRITICAL, 25, 8),
                                    judged(Health.WARNING, 23, 5), state, SETTINGS, LIMITS)
    assert decision is Decision.HOLD


def test_unified_significantly_worse_than_a_failing_legacy_is_rolled_back() -> None:
    # Legacy has a few errors of its own; unified is far worse over the same window.
    state = DecisionState()
    for _ in range(2):
        decision, state, _ = decide(judged(Health.CRITICAL, 1000, 60),
                                    judged(Health.WARNING, 1000, 6), state, SETTINGS, LIMITS)
    assert decision is Decision.ROLLBACK


def test_legacy_without_errors_does_not_excuse_unified() -> None:
    state = DecisionState()
    for _ in range(2):
        decision, state, _ = decide(judged(Health.CRITICAL, 20, 6),
                                    judged(Health.HEALTHY, 25, 0), state, SETTINGS, LIMITS)
    assert decision is Decision.ROLLBACK


@given(st.integers(20, 2000), st.integers(0, 2000), st.integers(20, 2000), st.integers(0, 2000))
def test_equal_error_rates_are_never_significantly_worse(
    unified_requests: int, unified_errors: int, legacy_requests: int, legacy_errors: int
) -> None:
    unified = stats(unified_requests, min(unified_errors, unified_requests))
    assert error_rate_excess_z(unified, unified) == 0.0
    legacy = stats(legacy_requests, min(legacy_errors, legacy_requests))
    assert error_rate_excess_z(unified, legacy) == pytest.approx(
        -error_rate_excess_z(legacy, unified))


def test_decision_state_round_trips() -> None:
    state = DecisionState(1, 0, True)
    assert DecisionState.from_dict(state.to_dict()) == state
