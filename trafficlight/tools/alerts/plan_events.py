"""Which rollout-plan rows are news, and the message for each. Pure: no I/O.

The plan is append-only (``webhook_rollout_plan``): each change (set, promote, pause, resume,
abort) is a new row with who (``created_by``) and why (``notes``). Each row newer than the last
version seen is one event; a row at or below it (a NOTIFY and a poll finding the same row, a
re-read after a reconnect) is not news, so a reconnect never repeats an alert. On the first
read nothing is known yet: the plan in force is taken as the baseline silently.

An automatic rollback pauses a running plan with a reason naming the domain: that pause is an
event like any other, so a rollback that stops the plan reaches the channels as such.

`Alert` is what the channels deliver: a verdict change or a plan event, each with its own
Slack JSON and title/body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from trafficlight.streams.rollout import Plan, PlanState
from trafficlight.tools.alerts.changes import (
    NO_FIGURE,
    Change,
    Level,
    Notification,
    notification,
    slack_message,
)
from trafficlight.tools.display import plan_summary

__all__ = ["Alert", "PlanEvent", "PlanEventDetector", "PlanEventKind", "alert_notification",
           "alert_slack_message", "headline", "plan_event", "plan_notification",
           "plan_slack_message"]


class RecordedAction(StrEnum):
    """A plan row's ``action`` (the table's CHECK constraint)."""

    SET = "set"
    PROMOTE = "promote"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"


class PlanEventKind(StrEnum):
    """What happened to the plan; a promotion onto the last step finishes it (done)."""

    SET = "set"
    PROMOTED = "promoted"
    DONE = "done"
    PAUSED = "paused"
    RESUMED = "resumed"
    ABORTED = "aborted"


_KINDS = {RecordedAction.SET: PlanEventKind.SET, RecordedAction.PROMOTE: PlanEventKind.PROMOTED,
          RecordedAction.PAUSE: PlanEventKind.PAUSED, RecordedAction.RESUME: PlanEventKind.RESUMED,
          RecordedAction.ABORT: PlanEventKind.ABORTED}

LEVELS = {PlanEventKind.SET: Level.INFO, PlanEventKind.PROMOTED: Level.SUCCESS,
          PlanEventKind.DONE: Level.SUCCESS, PlanEventKind.PAUSED: Level.WARNING,
          PlanEventKind.RESUMED: Level.INFO, PlanEventKind.ABORTED: Level.FAILURE}

#: Slack attachment colours and emoji per event: blue for news, green / amber / red.
COLORS = {Level.INFO: "#1d9bd1", Level.SUCCESS: "#2eb67d", Level.WARNING: "#ecb22e",
          Level.FAILURE: "#e01e5a"}
EMOJI = {PlanEventKind.SET: ":large_blue_circle:", PlanEventKind.PROMOTED: ":large_green_circle:",
         PlanEventKind.DONE: ":checkered_flag:", PlanEventKind.PAUSED: ":double_vertical_bar:",
         PlanEventKind.RESUMED: ":arrow_forward:", PlanEventKind.ABORTED: ":red_circle:"}


@dataclass(frozen=True)
class PlanEvent:
    """A plan row that is news; ``status`` is the plan's assessment when read with it
    (``plan_store.plan_status``), only when this row is still the plan in force."""

    kind: PlanEventKind
    plan: Plan
    status: Mapping[str, Any] | None = None


def plan_event(action: str, plan: Plan, status: Mapping[str, Any] | None = None) -> PlanEvent:
    """The event a plan row records; raises ValueError on an action it does not know."""
    kind = _KINDS[RecordedAction(action)]
    if kind is PlanEventKind.PROMOTED and plan.state is PlanState.DONE:
        kind = PlanEventKind.DONE
    own_status = status if status is not None and _status_version(status) == plan.version else None
    return PlanEvent(kind, plan, own_status)


def _status_version(status: Mapping[str, Any]) -> int | None:
    plan = status.get("plan")
    return int(plan["version"]) if isinstance(plan, Mapping) and "version" in plan else None


class PlanEventDetector:
    """The last plan version seen: only a newer row is news."""

    def __init__(self) -> None:
        #: None until the first read set the baseline.
        self.last_version: int | None = None

    def baseline(self, version: int) -> None:
        """The plan in force at the first read (0 without one): what came before is history."""
        if self.last_version is None:
            self.last_version = version

    def is_news(self, version: int) -> bool:
        """True once for each version above the last seen (and remembers it)."""
        if self.last_version is not None and version <= self.last_version:
            return False
        self.last_version = version
        return True


def _pct(value: float) -> str:
    return f"{value:g}%"


def headline(event: PlanEvent) -> str:
    """What happened, in one line: ``rollout plan promoted to step 2 of 4: 10% -> 25%``."""
    plan = event.plan
    step = f"step {plan.current_step} of {len(plan.steps_pct)}"
    match event.kind:
        case PlanEventKind.SET:
            steps = ", ".join(f"{s:g}" for s in plan.steps_pct)
            return f"rollout plan set: {step} at {_pct(plan.step_pct)} (steps {steps})"
        case PlanEventKind.PROMOTED | PlanEventKind.DONE:
            before = plan.steps_pct[plan.current_step - 2] if plan.current_step > 1 else None
            move = (f"{_pct(before)} -> {_pct(plan.step_pct)}" if before is not None
                    else _pct(plan.step_pct))
            done = ", the plan is done" if event.kind is PlanEventKind.DONE else ""
            return f"rollout plan promoted to {step}: {move}{done}"
        case PlanEventKind.ABORTED:
            return (f"rollout plan aborted at {step} ({_pct(plan.step_pct)}): "
                    "every domain back to legacy")
        case _:
            return f"rollout plan {event.kind.value} at {step} ({_pct(plan.step_pct)})"


def _who_why(plan: Plan) -> str:
    return f"by {plan.created_by or NO_FIGURE}: {plan.notes or NO_FIGURE}"


def plan_notification(event: PlanEvent) -> Notification:
    """Title: what happened; body: it again, who and why, and the plan's status block."""
    lines = [headline(event), _who_why(event.plan)]
    if event.status is not None:
        lines.append(plan_summary(dict(event.status)))
    return Notification(f"trafficlight {headline(event)}", "\n".join(lines), LEVELS[event.kind])


def plan_slack_message(event: PlanEvent) -> dict[str, Any]:
    """Slack incoming-webhook JSON: the headline, and who, why and the plan's status."""
    text = f"{EMOJI[event.kind]} trafficlight {headline(event)}"
    plan = event.plan
    fields = [
        {"title": "by", "value": plan.created_by or NO_FIGURE, "short": True},
        {"title": "state", "value": plan.state.value, "short": True},
        {"title": "why", "value": plan.notes or NO_FIGURE, "short": False},
    ]
    if event.status is not None:
        fields.append({"title": "rollout plan", "value": plan_summary(dict(event.status)),
                       "short": False})
    return {"text": text, "attachments": [{
        "color": COLORS[LEVELS[event.kind]], "fallback": text, "fields": fields,
        "ts": int(plan.created_at)}]}


#: What a channel delivers: a verdict change or a plan event.
Alert = Change | PlanEvent


def alert_slack_message(alert: Alert) -> dict[str, Any]:
    return slack_message(alert) if isinstance(alert, Change) else plan_slack_message(alert)


def alert_notification(alert: Alert) -> Notification:
    return notification(alert) if isinstance(alert, Change) else plan_notification(alert)
