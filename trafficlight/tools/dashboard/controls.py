"""The dashboard's controls: a request body turned into one operator change.

The changes themselves are the operators' (`trafficlight.tools.operations`: the runbook's SQL
functions, `trafficlight.actor` set so the history says "dashboard"); the database is the
judge of what is allowed, and its refusal comes back as one line.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from trafficlight.base.durations import parse_duration_s
from trafficlight.base.errors import InvalidInput, RefusedByDatabase
from trafficlight.tools import operations, plan_operations
from trafficlight.tools.plan_operations import PlanAction

#: Recorded as `created_by` for changes made from the dashboard.
DASHBOARD_ACTOR = "dashboard"

ACTIONS = ("percentage", "enable", "disable", "rollback")
#: The rollout plan's controls, under /api/plan/ACTION.
PLAN_ACTIONS = ("set", *(action.value for action in PlanAction))


class ControlRefused(ValueError):
    """A change the request or the database refused; the message is one line for the user."""


def _reason(body: dict[str, Any], default: str) -> str:
    reason = body.get("reason") or default
    if not isinstance(reason, str):
        raise ControlRefused("reason must be text")
    return reason


def _percentage(body: dict[str, Any]) -> Decimal:
    pct = body.get("percentage")
    if isinstance(pct, bool) or not isinstance(pct, int | float) or not math.isfinite(pct):
        raise ControlRefused("percentage must be a number between 0 and 100")
    return Decimal(str(pct))


def _domain(body: dict[str, Any]) -> str | None:
    domain = body.get("domain")
    if domain is not None and not isinstance(domain, str):
        raise ControlRefused("domain must be text")
    return domain or None


async def apply_plan_control(database_url: str, action: str, body: dict[str, Any]) -> None:
    """Set the plan or promote/pause/resume/abort it, or raise ControlRefused saying why not."""
    try:
        if action == "set":
            steps, bake = body.get("steps"), body.get("bake")
            if not isinstance(steps, str) or not isinstance(bake, str):
                raise ControlRefused("steps (e.g. 10,25,50,100) and bake (e.g. 4h) are required")
            await plan_operations.set_plan(
                database_url, plan_operations.parse_steps(steps), parse_duration_s(bake),
                _reason(body, f"Dashboard: plan {steps}, bake {bake}"), DASHBOARD_ACTOR)
        elif action in {a.value for a in PlanAction}:
            await plan_operations.act(database_url, PlanAction(action),
                                      _reason(body, f"Dashboard: {action} the plan"),
                                      DASHBOARD_ACTOR)
        else:
            raise ControlRefused(f"unknown plan action {action!r}")
    except (RefusedByDatabase, InvalidInput) as exc:
        raise ControlRefused(str(exc)) from None


async def apply_control(database_url: str, action: str, body: dict[str, Any]) -> None:
    """Make the change ``action`` asks for, or raise ControlRefused saying why not."""
    try:
        if action == "percentage":
            pct = _percentage(body)
            await operations.set_percentage(
                database_url, pct, _reason(body, f"Dashboard: set percentage to {pct}%"),
                DASHBOARD_ACTOR, _domain(body))
        elif action in ("enable", "disable"):
            await operations.set_enabled(
                database_url, action == "enable", _reason(body, f"Dashboard: {action} routing"),
                DASHBOARD_ACTOR, _domain(body))
        elif action == "rollback":
            await operations.rollback(database_url, _reason(body, "manual rollback"),
                                      DASHBOARD_ACTOR, _domain(body))
        else:
            raise ControlRefused(f"unknown action {action!r}")
    except RefusedByDatabase as exc:
        raise ControlRefused(str(exc)) from None
