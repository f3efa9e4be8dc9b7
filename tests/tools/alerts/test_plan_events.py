"""Which plan rows are news, and what a plan event or a verdict alert with the plan says (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.tools.alerts.test_alert_changes import verdict
from trafficlight.streams.rollout import Plan, PlanState, assess
from trafficlight.tools.alerts.changes import Change, Level, notification, slack_message
from trafficlight.tools.alerts.plan_events import (
    PlanEventDetector,
    PlanEventKind,
    alert_notification,
    alert_slack_message,
    headline,
    plan_event,
    plan_notification,
)
from trafficlight.tools.display import plan_summary


def plan(version: int = 2, step: int = 2, state: PlanState = PlanState.RUNNING,
         notes: str | None = "dashboards look fine", by: str = "alice") -> Plan:
    return Plan(version=version, steps_pct=(10.0, 25.0, 50.0, 100.0), bake_s=4 * 3600,
                required_proceed=3, state=state, current_step=step, step_started_at=1000.0,
                notes=notes, created_by=by, created_at=1000.0)


def status_of(p: Plan) -> dict[str, Any]:
    """The plan's status as `plan_store.plan_status` gives it: 1h12m baked, 2 of 3 proceed."""
    from trafficlight.streams.rollout import DomainEvidence

    evidence = [DomainEvidence("jobs", ("proceed", "proceed", "hold"))]
    return assess(p, True, evidence, now_s=p.step_started_at + 72 * 60).to_dict()


# --- which rows are news ---------------------------------------------------------------------

def test_the_plan_in_force_at_the_first_read_is_not_news() -> None:
    detector = PlanEventDetector()
    detector.baseline(4)
    assert not detector.is_news(4)
    assert not detector.is_news(3)


def test_each_newer_version_is_news_once() -> None:
    detector = PlanEventDetector()
    detector.baseline(4)
    assert detector.is_news(5)
    assert not detector.is_news(5)  # the NOTIFY and the poll found the same row


def test_a_later_baseline_does_not_forget_what_was_seen() -> None:
    detector = PlanEventDetector()
    detector.baseline(1)
    detector.is_news(2)
    detector.baseline(1)  # a reconnect: the version seen is kept, nothing is repeated
    assert not detector.is_news(2)


@given(baseline=st.integers(0, 20), versions=st.lists(st.integers(0, 40), max_size=60))
def test_every_version_above_the_baseline_is_announced_at_most_once_in_rising_order(
        baseline: int, versions: list[int]) -> None:
    detector = PlanEventDetector()
    detector.baseline(baseline)
    announced = [v for v in versions if detector.is_news(v)]
    assert announced == sorted(set(announced))
    assert all(v > baseline for v in announced)


# --- what each event is ----------------------------------------------------------------------

@pytest.mark.parametrize(("action", "step", "state", "kind", "title"), [
    ("set", 1, PlanState.RUNNING, PlanEventKind.SET,
     "rollout plan set: step 1 of 4 at 10% (steps 10, 25, 50, 100)"),
    ("promote", 2, PlanState.RUNNING, PlanEventKind.PROMOTED,
     "rollout plan promoted to step 2 of 4: 10% -> 25%"),
    ("promote", 4, PlanState.DONE, PlanEventKind.DONE,
     "rollout plan promoted to step 4 of 4: 50% -> 100%, the plan is done"),
    ("pause", 2, PlanState.PAUSED, PlanEventKind.PAUSED,
     "rollout plan paused at step 2 of 4 (25%)"),
    ("resume", 2, PlanState.RUNNING, PlanEventKind.RESUMED,
     "rollout plan resumed at step 2 of 4 (25%)"),
    ("abort", 3, PlanState.ABORTED, PlanEventKind.ABORTED,
     "rollout plan aborted at step 3 of 4 (50%): every domain back to legacy"),
])
def test_each_plan_action_has_its_headline(action: str, step: int, state: PlanState,
                                           kind: PlanEventKind, title: str) -> None:
    event = plan_event(action, plan(step=step, state=state))
    assert event.kind is kind
    assert headline(event) == title


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError):
        plan_event("rewind", plan())


def test_a_plan_event_says_who_and_why() -> None:
    note = plan_notification(plan_event("promote", plan()))
    assert note.title == "trafficlight rollout plan promoted to step 2 of 4: 10% -> 25%"
    assert note.body.splitlines()[1] == "by alice: dashboards look fine"
    assert note.level is Level.SUCCESS


def test_a_pause_by_a_rollback_is_a_warning_naming_the_rollback() -> None:
    paused = plan(state=PlanState.PAUSED, by="worker-1",
                  notes="paused by the rollback of jobs: automatic rollback: ...")
    note = plan_notification(plan_event("pause", paused))
    assert note.level is Level.WARNING
    assert "by worker-1: paused by the rollback of jobs" in note.body


def test_a_plan_event_carries_the_status_read_with_it() -> None:
    promoted = plan()
    event = plan_event("promote", promoted, status_of(promoted))
    assert event.status is not None
    assert plan_summary(status_of(promoted)) in plan_notification(event).body
    fields = alert_slack_message(event)["attachments"][0]["fields"]
    assert {"title": "rollout plan", "value": plan_summary(status_of(promoted)),
            "short": False} in fields


def test_an_older_row_does_not_carry_the_newer_plans_status() -> None:
    # Two rows read at once after a reconnect: the status is the newest plan's, not this one's.
    event = plan_event("promote", plan(version=2), status_of(plan(version=3)))
    assert event.status is None
    assert len(plan_notification(event).body.splitlines()) == 2


# --- verdict alerts with the plan's status ---------------------------------------------------

def test_the_plan_block_is_the_status_commands_text() -> None:
    block = plan_summary(status_of(plan()))
    assert block.splitlines() == [
        "Rollout plan v2 RUNNING: step 2 of 4 at 25% (steps 10, 25, 50, 100), next 50%",
        "Baked 1h12m00s of 4h00m00s, left 2h48m00s; proceed verdicts in a row: jobs 2/3",
        "Blocked: baked 4320 s of 14400 s; jobs: 2 of 3 proceed verdicts",
    ]


def test_a_verdict_alert_carries_the_plan_block() -> None:
    change = Change(verdict(2, "critical", "rollback"), None, status_of(plan()))
    block = plan_summary(status_of(plan()))
    assert notification(change).body.endswith(block)
    assert slack_message(change)["attachments"][0]["fields"][-1] == {
        "title": "rollout plan", "value": block, "short": False}


def test_without_a_plan_a_verdict_alert_is_as_before() -> None:
    change = Change(verdict(2, "critical", "rollback"), None)
    assert "Rollout plan" not in alert_notification(change).body
    titles = [f["title"] for f in slack_message(change)["attachments"][0]["fields"]]
    assert titles == ["requests", "error %", "P95", "P99", "why"]
