"""The domain's ladder on evidence, stepped one evaluation at a time, and the verdict rows."""

from __future__ import annotations

import random

from tests.streams.helpers import T0, batch, interleave, records
from trafficlight.streams.judge import Judge
from trafficlight.streams.thresholds import JudgeSettings, Thresholds
from trafficlight.streams.verdicts import (
    Counts,
    Decision,
    DomainState,
    Health,
    Metric,
    Outcome,
    Rule,
    Verdict,
    decide,
    judge_target,
)

LIMITS, SETTINGS = Thresholds(), JudgeSettings()


def step(state: DomainState, unified: Counts, legacy: Counts) -> Outcome:
    """One evaluation: feed the step's counts, judge both targets, decide, remember."""
    state.update(unified, legacy)
    outcome = decide(judge_target(state.unified, LIMITS), judge_target(state.legacy, LIMITS),
                     state, LIMITS)
    state.rolled_back = state.rolled_back or outcome.rolled_back
    state.shared = outcome.shared
    return outcome


def clean(n: int = 100) -> Counts:
    return Counts(n, 0, 0, 0)


def test_no_errors_yet_is_not_health_until_shown() -> None:
    state = DomainState.new(LIMITS, SETTINGS)
    # 1 s of 100 clean requests: nothing shown yet: hold.
    assert step(state, clean(), clean()).rule is Rule.INSUFFICIENT_EVIDENCE
    # 4 errors in 199 requests (2 %): never healthy/proceed.
    assert step(state, Counts(99, 4, 0, 0), clean()).decision is not Decision.PROCEED
    # Minutes of clean traffic later the evidence is there: proceed.
    fresh = DomainState.new(LIMITS, SETTINGS)
    outcomes = [step(fresh, clean(), clean()) for _ in range(300)]
    assert outcomes[-1] == Outcome(Decision.PROCEED, Rule.POSITIVE_EVIDENCE,
                                   ("unified shown below every warning rate",), False)


def test_a_healthy_target_says_what_it_was_shown_below() -> None:
    state = DomainState.new(LIMITS, SETTINGS)
    for _ in range(300):
        step(state, clean(), Counts(100, 0, 1, 0))
    legacy = judge_target(state.legacy, LIMITS)
    assert legacy.health is Health.HEALTHY
    assert legacy.reasons[0].startswith("errors 0/30000 (0.00%) this rollout: shown below 0.1% "
                                        "(e-value ")
    assert legacy.reasons[1].startswith("slower than 2000 ms 300/30000 (1.00%) this rollout: "
                                        "shown below 5% (e-value ")


def test_a_shared_outage_on_the_same_metric_holds() -> None:
    state = DomainState.new(LIMITS, SETTINGS)
    for _ in range(120):
        step(state, clean(), clean())
    # Both targets at 30 % errors (a provider down): breach shared, unified not worse.
    rng = random.Random(5)
    outcomes = [step(state, Counts(100, sum(rng.random() < 0.3 for _ in range(100)), 0, 0),
                     Counts(100, sum(rng.random() < 0.3 for _ in range(100)), 0, 0))
                for _ in range(120)]
    assert Rule.SHARED_BREACH in {o.rule for o in outcomes}
    # The outage ends: both recover at their own pace, never blaming unified.
    outcomes += [step(state, clean(), clean()) for _ in range(600)]
    assert {o.decision for o in outcomes} <= {Decision.HOLD, Decision.PROCEED}


def test_legacy_slow_does_not_hide_unified_errors() -> None:
    state = DomainState.new(LIMITS, SETTINGS)
    # Legacy: half its requests slower than 3 s (critical latency); unified: 5 % errors.
    outcomes = [step(state, Counts(100, 5, 0, 0), Counts(100, 0, 60, 50)) for _ in range(5)]
    assert outcomes[-1].decision is Decision.ROLLBACK
    assert outcomes[-1].rule in (Rule.UNIFIED_BREACH, Rule.ROLLED_BACK)


def test_unified_significantly_worse_than_a_failing_legacy_rolls_back() -> None:
    state = DomainState.new(LIMITS, SETTINGS)
    # Both above 0.5 % errors, but unified 20 % against legacy's 2 %.
    outcomes = [step(state, Counts(100, 20, 0, 0), Counts(100, 2, 0, 0)) for _ in range(20)]
    assert Decision.ROLLBACK in {o.decision for o in outcomes}


def test_unified_worse_than_legacy_inside_the_thresholds_is_not_rolled_back() -> None:
    state = DomainState.new(LIMITS, SETTINGS)
    # Unified 0.05 % errors, legacy none: worse, but well inside 0.5 %.
    rng = random.Random(2)
    outcomes = [step(state, Counts(100, int(rng.random() < 0.05), 0, 0), clean())
                for _ in range(3000)]
    assert Decision.ROLLBACK not in {o.decision for o in outcomes}


def test_a_rollback_stays_until_the_step_changes() -> None:
    judge = Judge()
    bad = records(T0, 30, 100, error_every=10)
    verdicts = judge.ingest(batch(bad))
    assert verdicts[-1].decision == "rollback"
    # Still bad traffic, same config version: rolled back.
    later = judge.ingest(batch(records(T0 + 30, 5, 100)))
    assert {v.rule for v in later} == {"rolled_back"}
    # A new config version (the operator re-enabled): the evidence restarts.
    again = [{**e, "config_version": 2} for e in records(T0 + 35, 5, 100)]
    after = judge.ingest(batch(again))
    assert after[-1].decision == "hold" and after[-1].rule == "insufficient_evidence"


def test_a_new_config_version_without_a_rollback_keeps_the_evidence() -> None:
    judge = Judge()
    healthy = interleave(records(T0, 120, 100), records(T0, 120, 100, routed_to="legacy"))
    assert judge.ingest(batch(healthy))[-1].decision == "proceed"
    # Another domain's change bumps the (global) config version: jobs is still shown healthy.
    bumped = [{**e, "config_version": 2} for e in interleave(
        records(T0 + 120, 5, 100), records(T0 + 120, 5, 100, routed_to="legacy"))]
    after = judge.ingest(batch(bumped))
    assert {v.decision for v in after} == {"proceed"}


def test_ten_percent_errors_at_runbook_volume_roll_back_within_the_hour() -> None:
    # ~50 unified requests an hour, 10 % of them errors, from the step start (seeded).
    rng = random.Random(11)
    events, ts = [], T0
    while ts < T0 + 3600:
        ts += rng.expovariate(50 / 3600)
        event = records(ts, 1, 1)[0]
        if rng.random() < 0.1:
            event["status"] = "error"
        events.append(event)
    verdicts = Judge().ingest(batch(events))
    rollback = next(v for v in verdicts if v.decision == "rollback")
    assert rollback.window_end - T0 <= 3600 and rollback.verdict == "critical"


def test_one_error_at_runbook_volume_does_not_roll_back() -> None:
    events = records(T0, 3 * 3600, 50 / 3600)
    events[70]["status"] = "error"
    verdicts = Judge().ingest(batch(events))
    assert {v.decision for v in verdicts} == {"hold"}


def test_legacy_rows_carry_their_own_reasons_only() -> None:
    verdicts = Judge().ingest(batch(interleave(records(T0, 30, 100, error_every=10),
                                               records(T0, 30, 100, routed_to="legacy"))))
    unified = [v for v in verdicts if v.routed_to == "unified"][-1]
    legacy = [v for v in verdicts if v.routed_to == "legacy"][-1]
    assert unified.decision == legacy.decision == "rollback"
    assert unified.verdict == Health.CRITICAL and legacy.verdict != Health.CRITICAL
    assert not set(legacy.reasons) & set(unified.reasons)
    assert legacy.evidence["errors"]["hits"] == 0


def test_a_verdict_round_trips_through_its_dict() -> None:
    verdict = Judge().ingest(batch(records(T0, 12, 10)))[-1]
    assert Verdict.from_dict(verdict.to_dict()) == verdict
    assert Verdict.from_dict({**verdict.to_dict(), "unknown_field": 1}) == verdict


def test_domain_state_round_trips_through_json() -> None:
    state = DomainState.new(LIMITS, SETTINGS)
    for _ in range(4):
        step(state, Counts(100, 3, 7, 1), Counts(50, 0, 2, 0))
    assert DomainState.from_dict(state.to_dict(), LIMITS, SETTINGS) == state


def slow_evidence_after(burst: Counts) -> float:
    """Unified's critical latency evidence after 40 s at 8 req/s (3 % slow), then `burst`."""
    state = DomainState.new(LIMITS, SETTINGS)
    for second in range(40):
        slow = int(second % 4 == 0)
        step(state, Counts(8, 0, slow, slow), clean(8))
    step(state, burst, clean(8))
    return state.unified.critical[Metric.SLOW_CRITICAL].log_value


def test_a_low_volume_burst_weighs_less_than_as_many_independent_hits() -> None:
    # One second of 8 requests, 6 of them slow: in one run (a pause: 5 requests follow a
    # slow one), or each its own run.
    in_one_run = slow_evidence_after(Counts(8, 0, 6, 6, -1, 1, 1, 0, 5, 5))
    independent = slow_evidence_after(Counts(8, 0, 6, 6, -1, 6, 6))
    assert in_one_run < independent - 1.0


def test_the_change_detectors_read_run_starts_the_healthy_evidence_every_request() -> None:
    in_runs, starts = DomainState.new(LIMITS, SETTINGS), DomainState.new(LIMITS, SETTINGS)
    step(in_runs, Counts(100, 6, 0, 0, 2, -1, -1, 4), clean())
    step(starts, Counts(96, 2), clean())
    detector = in_runs.unified.critical[Metric.ERRORS]
    assert detector.log_d == starts.unified.critical[Metric.ERRORS].log_d
    assert in_runs.unified.healthy[Metric.ERRORS].requests == 100


def legacy_warning_at(share_of_line: float) -> Outcome:
    """Unified's critical error detector fired; legacy's warning one at `share_of_line` of
    its threshold (in nats)."""
    state = DomainState.new(LIMITS, SETTINGS)
    step(state, clean(), clean())
    fired, legacy = state.unified.critical[Metric.ERRORS], state.legacy.warning[Metric.ERRORS]
    fired.restore([100.0] + [fired.log_threshold + 1.0] * len(fired.log_d))
    legacy.restore([100.0] + [legacy.log_threshold * share_of_line] * len(legacy.log_d))
    return decide(judge_target(state.unified, LIMITS), judge_target(state.legacy, LIMITS),
                  state, LIMITS)


def test_legacy_half_way_to_its_warning_line_shares_the_breach() -> None:
    assert legacy_warning_at(0.6).rule is Rule.SHARED_BREACH
    assert legacy_warning_at(0.4).rule is Rule.UNIFIED_BREACH


def test_state_saved_before_the_dispersion_estimate_restores_with_it_fresh() -> None:
    state = DomainState.new(LIMITS, SETTINGS)
    step(state, Counts(100, 3, 7, 1), Counts(50, 0, 2, 0))
    saved = state.to_dict()
    for target in ("unified", "legacy"):
        del saved[target]["dispersion"]
    restored = DomainState.from_dict(saved, LIMITS, SETTINGS)
    assert restored.unified.critical == state.unified.critical
    assert restored.unified.dispersion == DomainState.new(LIMITS, SETTINGS).unified.dispersion


def bursty_state() -> DomainState:
    """A step whose unified errors came in runs: its burst estimate stands above 1."""
    state = DomainState.new(LIMITS, SETTINGS, config_version=1)
    for k in [0, 6, 0, 0, 5, 0, 7, 0, 0, 6] * 10:
        step(state, Counts(1_000, k), Counts(1_000))
    assert state.unified.dispersion[Metric.ERRORS].factor > 1
    return state


def test_a_new_step_carries_the_evidence_and_restarts_the_guards_totals() -> None:
    old = bursty_state()
    totals, dispersion = old.unified.totals, old.unified.dispersion
    new = old.next_step(LIMITS, SETTINGS, config_version=2)
    assert new.config_version == 2 and new.step_requests == (0, 0)
    assert new.unified.totals == totals and new.unified.dispersion == dispersion


def test_a_regression_begun_before_a_step_change_is_not_forgotten() -> None:
    state = DomainState.new(LIMITS, SETTINGS, config_version=1)
    for _ in range(600):
        step(state, clean(), clean())
    # 2 % errors for 12 s: evidence builds, not yet enough to roll back.
    for _ in range(12):
        assert not step(state, Counts(100, 2), clean()).rolled_back
    before = state.unified.critical[Metric.ERRORS].log_value
    state = state.next_step(LIMITS, SETTINGS, config_version=2)
    assert state.unified.critical[Metric.ERRORS].log_value == before > 0
    # Three more seconds of it roll back (evidence restarted at the step would need 6).
    outcomes = [step(state, Counts(100, 2), clean()) for _ in range(3)]
    assert outcomes[-1].rolled_back


def test_a_handler_breaking_at_a_new_steps_start_costs_little_prior() -> None:
    def seconds_to_roll_back(new_step: bool) -> int:
        state = DomainState.new(LIMITS, SETTINGS, config_version=1)
        for _ in range(7200):  # two clean hours at 100 req/s
            step(state, clean(), clean())
        if new_step:
            state = state.next_step(LIMITS, SETTINGS, config_version=2)
        return next(i for i in range(600) if step(state, Counts(100, 2), clean()).rolled_back)

    assert seconds_to_roll_back(new_step=True) < seconds_to_roll_back(new_step=False) / 2


def test_another_domains_change_keeps_a_healthy_record() -> None:
    state = DomainState.new(LIMITS, SETTINGS, config_version=1)
    outcomes = [step(state, clean(), clean()) for _ in range(300)]
    assert outcomes[-1].decision is Decision.PROCEED
    state = state.next_step(LIMITS, SETTINGS, config_version=2)
    assert step(state, clean(), clean()).decision is Decision.PROCEED


def test_a_step_after_a_rollback_starts_its_burst_estimate_afresh() -> None:
    old = bursty_state()
    old.rolled_back = True
    new = old.next_step(LIMITS, SETTINGS, config_version=2)
    assert new.unified.dispersion == DomainState.new(LIMITS, SETTINGS).unified.dispersion
