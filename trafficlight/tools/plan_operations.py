"""Operators' changes of the rollout plan, through the SQL plan functions.

Like the config changes (:mod:`trafficlight.tools.operations`): one transaction as the
operator (``trafficlight.actor``), the database the only judge, its refusal one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import asyncpg

from trafficlight.base.db import connect
from trafficlight.base.errors import InvalidInput
from trafficlight.streams.plan_store import plan_status
from trafficlight.tools import operations


class PlanAction(StrEnum):
    PROMOTE = "promote"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"


_SQL = {
    PlanAction.PROMOTE: "SELECT promote_rollout_plan($1)",
    PlanAction.PAUSE: "SELECT pause_rollout_plan($1)",
    PlanAction.RESUME: "SELECT resume_rollout_plan($1)",
    PlanAction.ABORT: "SELECT abort_rollout_plan($1)",
}


@dataclass(frozen=True, slots=True)
class PlanChange:
    """What a plan change did: the database's NOTICEs, the plan status and config after it."""

    notice: str
    status: dict[str, Any] | None
    config: operations.RoutingConfig

    def to_dict(self) -> dict[str, Any]:
        return {"notice": self.notice, "plan": self.status, "config": self.config.to_dict()}


def parse_steps(text: str) -> list[Decimal]:
    """``10,25,35,50,100`` -> the steps; a malformed list is a one-line error."""
    try:
        steps = [Decimal(part.strip()) for part in text.split(",")]
    except InvalidOperation:
        raise InvalidInput(f"STEPS {text!r}: use rising percentages, e.g. 10,25,50,100") from None
    if any(not step.is_finite() for step in steps):
        raise InvalidInput(f"STEPS {text!r}: use rising percentages, e.g. 10,25,50,100")
    return steps


async def set_plan(database_url: str, steps: list[Decimal], bake_s: float, reason: str,
                   actor: str, required_proceed: int = 30) -> PlanChange:
    return await _plan_change(
        database_url, actor,
        "SELECT set_rollout_plan($1::numeric[], make_interval(secs => $2), $3, $4)",
        steps, bake_s, reason, required_proceed)


async def act(database_url: str, action: PlanAction, reason: str, actor: str) -> PlanChange:
    return await _plan_change(database_url, actor, _SQL[action], reason)


async def show(database_url: str) -> tuple[dict[str, Any] | None, operations.RoutingConfig]:
    conn = await connect(database_url)
    try:
        return await _plan_and_config(conn)
    finally:
        await conn.close()


async def _plan_change(database_url: str, actor: str, sql: str, *args: object) -> PlanChange:
    notice, (status, config) = await operations.run_as_actor(
        database_url, actor, _plan_and_config, sql, *args)
    return PlanChange(notice=notice, status=status, config=config)


async def _plan_and_config(
    conn: asyncpg.Connection,
) -> tuple[dict[str, Any] | None, operations.RoutingConfig]:
    return await plan_status(conn), await operations.current_config(conn)
