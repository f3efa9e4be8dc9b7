"""Config changes the dashboard may make, each through the runbook's SQL functions.

The database validates (range, reason) and records who: `trafficlight.actor` is set for the
transaction, so the history says "dashboard" rather than the connection's role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

#: Recorded as `created_by` for changes made from the dashboard.
DASHBOARD_ACTOR = "dashboard"


class ControlRefused(ValueError):
    """A change the request or the database refused; the message is one line for the user."""


@dataclass(frozen=True)
class Change:
    """One validated config change: the SQL to run and its arguments."""

    sql: str
    args: tuple[Any, ...]


def _reason(body: dict[str, Any], default: str) -> str:
    reason = body.get("reason", default)
    if not isinstance(reason, str) or not reason.strip():
        raise ControlRefused("a reason is required for every routing change")
    return reason.strip()


def parse_change(action: str, body: dict[str, Any]) -> Change:
    """The change a control request asks for, or ControlRefused with why not."""
    if action == "percentage":
        pct = body.get("percentage")
        if isinstance(pct, bool) or not isinstance(pct, int | float):
            raise ControlRefused("percentage must be a number between 0 and 100")
        return Change("SELECT update_routing_percentage($1::numeric, $2)",
                      (pct, _reason(body, f"Dashboard: set percentage to {pct}%")))
    if action == "enable":
        return Change("SELECT set_routing_enabled(true, $1)",
                      (_reason(body, "Dashboard: enable routing"),))
    if action == "disable":
        return Change("SELECT set_routing_enabled(false, $1)",
                      (_reason(body, "Dashboard: disable routing"),))
    if action == "rollback":
        # The runbook's emergency rollback: everything to legacy at once, percentage kept
        # so a later `enable` resumes where the rollout was.
        reason = _reason(body, "Dashboard: manual rollback")
        return Change("SELECT set_routing_enabled(false, $1)", (f"Rollback: {reason}",))
    raise ControlRefused(f"unknown action {action!r}")


async def apply_change(conn: asyncpg.Connection, change: Change,
                       actor: str = DASHBOARD_ACTOR) -> None:
    """Run one change in its own transaction, attributed to ``actor``."""
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('trafficlight.actor', $1, true)", actor)
            await conn.execute(change.sql, *change.args)
    except asyncpg.PostgresError as exc:
        raise ControlRefused(str(exc).splitlines()[0]) from None
