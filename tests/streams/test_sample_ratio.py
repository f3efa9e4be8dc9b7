"""The sample-ratio guard: validity at the configured share, power against a mismatch, the
ladder's hold (never a rollback), and the judge reading the configured share as data."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.streams.helpers import T0, batch, interleave, records
from trafficlight.streams.evidence import sample_ratio_log_e
from trafficlight.streams.judge import Judge
from trafficlight.streams.sample_ratio import SampleRatio, StaticShares, sample_ratio
from trafficlight.streams.thresholds import JudgeSettings, Thresholds, parse_thresholds
from trafficlight.streams.verdicts import (
    Counts,
    Decision,
    DomainState,
    Rule,
    Verdict,
    decide,
    judge_target,
)
from trafficlight.tools.simulate import sticky_run_totals

LIMITS, SETTINGS = Thresholds(), JudgeSettings()
ODDS = SETTINGS.srm_alternatives


def _log_binomial_pmf(n: int, k: int, p: float) -> float:
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


# -- the e-value ---------------------------------------------------------------------------

@given(st.integers(1, 300), st.floats(0.01, 1.0), st.floats(0.0, 1.0),
       st.sampled_from([1.0, 2.0, 4.0]))
def test_the_e_value_has_mean_at_most_one_anywhere_in_the_tolerance_band(
        n: int, share: float, where: float, dispersion: float) -> None:
    tolerance = SETTINGS.srm_tolerance
    lo, hi = share * (1 - tolerance), min(share * (1 + tolerance), 1.0)
    p = min(max(lo + where * (hi - lo), 1e-6), 1 - 1e-6)
    mean = sum(math.exp(_log_binomial_pmf(n, k, p)
                        + sample_ratio_log_e(n, k, share, tolerance, dispersion, ODDS))
               for k in range(n + 1))
    assert mean <= 1 + 1e-9


@settings(max_examples=40, deadline=None)
@given(st.floats(1.0, 100.0), st.integers(0, 2**32 - 1),
       st.lists(st.integers(1, 2_000), min_size=1, max_size=200))
def test_traffic_at_the_configured_share_never_shows_a_mismatch_over_many_looks(
        configured_pct: float, seed: int, batches: list[int]) -> None:
    rng = np.random.default_rng(seed)
    unified = legacy = 0
    for n in batches:  # one look per evaluation
        k = int(rng.binomial(n, configured_pct / 100))
        unified, legacy = unified + k, legacy + n - k
        guard = sample_ratio(unified, legacy, configured_pct, SETTINGS)
        assert guard is not None and not guard.mismatch, guard.reason()


@given(st.floats(5.0, 95.0), st.floats(0.0, 0.4))
def test_a_share_a_third_of_the_configured_one_or_less_is_a_mismatch_within_6000_requests(
        configured_pct: float, fraction: float) -> None:
    n = 6_000
    unified = round(n * configured_pct / 100 * fraction)
    guard = sample_ratio(unified, n - unified, configured_pct, SETTINGS)
    assert guard is not None and guard.mismatch


def test_unified_taking_far_more_than_its_share_is_a_mismatch_too() -> None:
    # 10 % configured, 20 % on unified: the band ends at 12 %.
    assert sample_ratio(2_000, 8_000, 10.0, SETTINGS).mismatch  # type: ignore[union-attr]


def test_a_share_inside_the_tolerance_band_is_no_mismatch_however_many_requests() -> None:
    # 10 % configured, 8.5 % observed over a million requests: inside 8..12 %.
    assert not sample_ratio(85_000, 915_000, 10.0, SETTINGS).mismatch  # type: ignore[union-attr]


def test_a_three_percent_share_against_ten_configured_is_shown_within_2000_requests() -> None:
    assert sample_ratio(60, 1_940, 10.0, SETTINGS).mismatch  # type: ignore[union-attr]


def test_the_guard_is_off_without_a_configured_share_at_zero_or_without_requests() -> None:
    assert sample_ratio(0, 10_000, None, SETTINGS) is None
    assert sample_ratio(30, 10_000, 0.0, SETTINGS) is None
    assert sample_ratio(0, 0, 10.0, SETTINGS) is None


def test_the_reason_states_the_evidence_once() -> None:
    guard = sample_ratio(312, 10_000 - 312, 10.0, SETTINGS)
    assert guard is not None
    assert guard.reason().startswith(
        "sample ratio: unified 312/10000 (3.1%) of requests vs 10% configured (e-value ")
    assert guard.reason().endswith(" >= 1e+03)")


def test_the_guard_settings_are_read_from_the_judge_table() -> None:
    s = parse_thresholds({"judge": {"srm_alpha": 0.01, "srm_tolerance": 0.3,
                                    "srm_dispersion": 2, "srm_alternatives": [0.5]}}).settings
    assert (s.srm_alpha, s.srm_tolerance, s.srm_dispersion, s.srm_alternatives) == (
        0.01, 0.3, 2.0, (0.5,))


def _steps_with_a_false_mismatch(settings: JudgeSettings, run_length: int) -> int:
    """Healthy steps, of 60, whose requests come in sticky runs of `run_length` (one sender,
    one target; runs on unified at the configured share) and that ever show a mismatch."""
    return sum(any(guard is not None and guard.mismatch
                   for guard in (sample_ratio(unified, legacy, pct, settings)
                                 for pct, unified, legacy in sticky_run_totals(seed, run_length)))
               for seed in range(60))


def test_healthy_traffic_in_sticky_runs_of_four_never_shows_a_mismatch() -> None:
    assert _steps_with_a_false_mismatch(SETTINGS, 4) == 0


def test_an_untempered_test_would_call_the_same_sticky_runs_a_mismatch() -> None:
    # Why srm_dispersion is 4: each request counted as an independent draw.
    assert _steps_with_a_false_mismatch(replace(SETTINGS, srm_dispersion=1.0), 4) > 0


# -- the ladder ----------------------------------------------------------------------------

def _mismatch() -> SampleRatio:
    guard = sample_ratio(300, 9_700, 10.0, SETTINGS)
    assert guard is not None and guard.mismatch
    return guard


def _decide(state: DomainState, guard: SampleRatio | None
            ) -> tuple[Decision, Rule, tuple[str, ...]]:
    outcome = decide(judge_target(state.unified, LIMITS), judge_target(state.legacy, LIMITS),
                     state, LIMITS, guard)
    return outcome.decision, outcome.rule, outcome.reasons


def test_a_mismatch_holds_a_domain_that_would_proceed() -> None:
    state = DomainState.new(LIMITS, SETTINGS)
    for _ in range(300):  # minutes of clean traffic: unified shown healthy
        state.update(Counts(100), Counts(100))
    assert _decide(state, None)[0] is Decision.PROCEED
    decision, rule, reasons = _decide(state, _mismatch())
    assert (decision, rule) == (Decision.HOLD, Rule.SAMPLE_RATIO_MISMATCH)
    assert reasons == (_mismatch().reason(),)


def test_a_mismatch_never_rolls_back_but_a_unified_breach_still_does() -> None:
    state = DomainState.new(LIMITS, SETTINGS)
    state.update(Counts(100), Counts(100))
    assert _decide(state, _mismatch())[0] is Decision.HOLD
    for _ in range(5):  # unified alone at 5 % errors
        state.update(Counts(100, 5), Counts(100))
    assert _decide(state, _mismatch())[:2] == (Decision.ROLLBACK, Rule.UNIFIED_BREACH)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 30), st.integers(0, 300),
                          st.integers(0, 30)), min_size=1, max_size=40),
       st.floats(1.0, 100.0))
def test_the_guard_never_makes_a_rollback_and_never_lets_a_mismatch_proceed(
        steps: list[tuple[int, int, int, int]], configured_pct: float) -> None:
    state = DomainState.new(LIMITS, SETTINGS)
    for n_u, e_u, n_l, e_l in steps:
        state.update(Counts(n_u, min(e_u, n_u)), Counts(n_l, min(e_l, n_l)))
        guard = sample_ratio(state.unified.totals.requests, state.legacy.totals.requests,
                             configured_pct, SETTINGS)
        with_guard, without = _decide(state, guard), _decide(state, None)
        assert (with_guard[0] is Decision.ROLLBACK) == (without[0] is Decision.ROLLBACK)
        if guard is not None and guard.mismatch:
            assert with_guard[0] is not Decision.PROCEED
        else:
            assert with_guard == without


def test_no_unified_request_at_all_while_the_config_routes_some_says_mismatch() -> None:
    state = DomainState.new(LIMITS, SETTINGS)
    state.update(Counts(), Counts(10_000))
    guard = sample_ratio(0, 10_000, 10.0, SETTINGS)
    assert _decide(state, guard)[1] is Rule.SAMPLE_RATIO_MISMATCH
    assert _decide(state, None)[1] is Rule.NO_UNIFIED_DATA


def test_a_shared_breach_under_a_mismatch_holds_and_names_both() -> None:
    state = DomainState.new(LIMITS, SETTINGS)
    for _ in range(30):  # both at 30 % errors: a provider outage
        state.update(Counts(100, 30), Counts(100, 30))
    decision, rule, reasons = _decide(state, _mismatch())
    assert (decision, rule) == (Decision.HOLD, Rule.SHARED_BREACH)
    assert reasons[-1] == _mismatch().reason()


# -- the judge -----------------------------------------------------------------------------

def _unified(verdicts: list[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if v.routed_to == "unified"]


def _split(seconds: float, total_per_s: float, unified_share: float) -> list[dict[str, object]]:
    """A domain's traffic with exactly `unified_share` of it on unified (config version 1)."""
    return interleave(records(T0, seconds, total_per_s * unified_share),
                      records(T0, seconds, total_per_s * (1 - unified_share),
                              routed_to="legacy"))


def test_the_judge_holds_on_a_three_percent_share_against_ten_configured() -> None:
    judge = Judge(shares=StaticShares({1: {"jobs": 10.0}}))
    verdicts = judge.ingest(batch(_split(300, 200, 0.03)))
    last = _unified(verdicts)[-1]
    assert (last.decision, last.rule) == ("hold", "sample_ratio_mismatch")
    assert last.reasons[-1].startswith("sample ratio: unified ")
    assert last.evidence["sample_ratio"]["configured_pct"] == 10.0
    assert {v.decision for v in verdicts} <= {"hold"}
    legacy = [v for v in verdicts if v.routed_to == "legacy"]
    assert not any("sample ratio" in r for v in legacy for r in v.reasons)


def test_the_judge_proceeds_on_the_configured_share() -> None:
    judge = Judge(shares=StaticShares({1: {"jobs": 10.0}}))
    verdicts = _unified(judge.ingest(batch(_split(600, 1_000, 0.10))))
    assert verdicts[-1].decision == "proceed"
    assert not any(v.rule == "sample_ratio_mismatch" for v in verdicts)


def test_without_a_configured_share_the_guard_says_nothing() -> None:
    for shares in (None, StaticShares({2: {"jobs": 10.0}}), StaticShares({1: {"jobs": 0.0}})):
        verdicts = _unified(Judge(shares=shares).ingest(batch(_split(300, 200, 0.03))))
        assert not any(v.rule == "sample_ratio_mismatch" for v in verdicts)
        assert "sample_ratio" not in verdicts[-1].evidence


class _Switch:
    """A share the worker's cache does not know yet, then knows (`known` flipped)."""

    def __init__(self) -> None:
        self.known = False

    def percentage(self, config_version: int, domain: str) -> float | None:
        return 10.0 if self.known else None


def test_a_share_learnt_mid_step_reads_the_step_as_if_known_from_its_start() -> None:
    events = _split(120, 200, 0.03)
    first, second = events[:len(events) // 2], events[len(events) // 2:]
    known, learnt = Judge(shares=StaticShares({1: {"jobs": 10.0}})), _Switch()
    late = Judge(shares=learnt)
    known.ingest(batch(first))
    assert not any(v.rule == "sample_ratio_mismatch" for v in late.ingest(batch(first)))
    learnt.known = True
    expected, got = _unified(known.ingest(batch(second)))[-1], _unified(
        late.ingest(batch(second)))[-1]
    assert got.window_end == expected.window_end
    assert (got.decision, got.rule, got.reasons, got.evidence) == (
        expected.decision, expected.rule, expected.reasons, expected.evidence)
