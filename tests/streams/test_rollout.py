"""The plan's tick, pure: what blocks a promotion, and only positive evidence counts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trafficlight.streams.rollout import (
    Blocker,
    BlockerKind,
    DomainEvidence,
    Plan,
    PlanState,
    assess,
    promotion_reason,
)

T0 = 1_800_000_000.0


def _plan(state: PlanState = PlanState.RUNNING, bake_s: float = 600,
          required: int = 3) -> Plan:
    return Plan(version=7, steps_pct=(10, 25, 50, 100), bake_s=bake_s, required_proceed=required,
                state=state, current_step=1, step_started_at=T0)


def _proceeding(*domains: str, count: int = 3) -> list[DomainEvidence]:
    return [DomainEvidence(d, ("proceed",) * count) for d in domains]


def _kinds(blockers: tuple[Blocker, ...]) -> list[BlockerKind]:
    return [b.kind for b in blockers]


def test_a_baked_step_with_enough_proceed_everywhere_is_ready() -> None:
    assessment = assess(_plan(), True, _proceeding("jobs", "property"), T0 + 600)

    assert assessment.ready
    assert assessment.evidence == {"jobs": 3, "property": 3}
    assert (assessment.baked_s, assessment.left_s) == (600, 0)


def test_an_unbaked_step_says_how_long_is_left() -> None:
    assessment = assess(_plan(), True, _proceeding("jobs"), T0 + 200)

    assert _kinds(assessment.blockers) == [BlockerKind.NOT_BAKED]
    assert assessment.left_s == 400
    assert assessment.blockers[0].message == "baked 200 s of 600 s"


@pytest.mark.parametrize("state", [PlanState.PAUSED, PlanState.ABORTED, PlanState.DONE])
def test_only_a_running_plan_is_promoted(state: PlanState) -> None:
    assessment = assess(_plan(state), True, _proceeding("jobs"), T0 + 600)

    assert _kinds(assessment.blockers) == [BlockerKind.NOT_RUNNING]
    assert assessment.blockers[0].message == f"plan is {state.value}"


def test_routing_disabled_blocks() -> None:
    assessment = assess(_plan(), False, [], T0 + 600)

    assert _kinds(assessment.blockers) == [BlockerKind.ROUTING_DISABLED]


def test_no_active_domain_blocks() -> None:
    assert _kinds(assess(_plan(), True, [], T0 + 600).blockers) == [BlockerKind.NO_ACTIVE_DOMAIN]


def test_a_hold_names_its_domain_and_reason_and_ends_the_run() -> None:
    held = DomainEvidence("jobs", ("hold", "proceed", "proceed", "proceed"),
                          ("sample ratio mismatch: unified 4% of requests, config 10%",))

    assessment = assess(_plan(), True, [held, *_proceeding("property")], T0 + 600)

    assert _kinds(assessment.blockers) == [BlockerKind.HOLD, BlockerKind.NOT_ENOUGH_EVIDENCE]
    assert assessment.blockers[0].message == (
        "jobs: hold (sample ratio mismatch: unified 4% of requests, config 10%)")
    assert assessment.evidence == {"jobs": 0, "property": 3}


def test_too_few_proceed_verdicts_are_counted_not_enough() -> None:
    assessment = assess(_plan(), True, _proceeding("jobs", count=2), T0 + 600)

    assert _kinds(assessment.blockers) == [BlockerKind.NOT_ENOUGH_EVIDENCE]
    assert assessment.blockers[0].message == "jobs: 2 of 3 proceed verdicts"


def test_a_rollback_decision_blocks() -> None:
    evidence = [DomainEvidence("jobs", ("rollback",) + ("proceed",) * 3)]

    kinds = _kinds(assess(_plan(), True, evidence, T0 + 600).blockers)

    assert kinds == [BlockerKind.ROLLBACK, BlockerKind.NOT_ENOUGH_EVIDENCE]


def test_blockers_come_in_a_fixed_order() -> None:
    evidence = [DomainEvidence("jobs", ("hold",))]

    kinds = _kinds(assess(_plan(PlanState.PAUSED), True, evidence, T0).blockers)

    assert kinds == [BlockerKind.NOT_RUNNING, BlockerKind.NOT_BAKED, BlockerKind.HOLD,
                     BlockerKind.NOT_ENOUGH_EVIDENCE]


def test_the_promotion_reason_carries_the_evidence() -> None:
    assessment = assess(_plan(), True, _proceeding("jobs", "property"), T0 + 601)

    assert promotion_reason(assessment) == (
        "10% baked 601 s (bake 600 s); proceed verdicts in a row: jobs 3, property 3 "
        "(needed 3)")


decisions = st.lists(st.sampled_from(["proceed", "hold", "rollback"]), max_size=8)


@given(st.dictionaries(st.sampled_from(["jobs", "marketplace", "property"]), decisions,
                       min_size=1), st.integers(min_value=1, max_value=6))
def test_ready_only_when_every_domain_has_the_required_proceed_run(
        runs: dict[str, list[str]], required: int) -> None:
    evidence = [DomainEvidence(d, tuple(ds)) for d, ds in runs.items()]

    assessment = assess(_plan(required=required), True, evidence, T0 + 600)

    expected = all(ds[:required] == ["proceed"] * required and len(ds) >= required
                   for ds in runs.values())
    assert assessment.ready is expected


@given(decisions)
def test_a_newer_non_proceed_verdict_never_makes_a_plan_ready(older: list[str]) -> None:
    for newest in ("hold", "rollback"):
        evidence = [DomainEvidence("jobs", (newest, *older))]

        assert not assess(_plan(required=1), True, evidence, T0 + 600).ready
