"""The dashboard's controls: a request body turned into one operator change.

The changes themselves are the operators' (`trafficlight.tools.operations`: the runbook's SQL
functions, `trafficlight.actor` set so the history says "dashboard"); the database is the
judge of what is allowed, and its refusal comes back as one line.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from trafficlight.base.errors import RefusedByDatabase
from trafficlight.tools import operations

#: Recorded as `created_by` for changes made from the dashboard.
DASHBOARD_ACTOR = "dashboard"

ACTIONS = ("percentage", "enable", "disable", "rollback")


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


async def apply_control(database_url: str, action: str, body: dict[str, Any]) -> None:
    """Make the change ``action`` asks for, or raise ControlRefused saying why not."""
    try:
        if action == "percentage":
            pct = _percentage(body)
            await operations.set_percentage(
                database_url, pct, _reason(body, f"Dashboard: set percentage to {pct}%"),
                DASHBOARD_ACTOR)
        elif action in ("enable", "disable"):
            await operations.set_enabled(
                database_url, action == "enable", _reason(body, f"Dashboard: {action} routing"),
                DASHBOARD_ACTOR)
        elif action == "rollback":
            await operations.rollback(database_url, _reason(body, "manual rollback"),
                                      DASHBOARD_ACTOR)
        else:
            raise ControlRefused(f"unknown action {action!r}")
    except RefusedByDatabase as exc:
        raise ControlRefused(str(exc)) from None
