"""Reading the rollout plan and its evidence from Postgres, for workers, CLI and dashboard.

One query per concern; the judging of it is :func:`trafficlight.streams.rollout.assess`.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from trafficlight.streams.rollout import Assessment, DomainEvidence, Plan, assess

PLAN_CHANNEL = "webhook_rollout_plan"

_PLAN_COLUMNS = """
SELECT id AS version, steps::float8[] AS steps, extract(epoch FROM bake)::float8 AS bake_s,
       required_proceed, state, current_step,
       extract(epoch FROM step_started_at)::float8 AS step_started_at, notes, created_by,
       extract(epoch FROM created_at)::float8 AS created_at, action
FROM webhook_rollout_plan"""

_PLAN = f"{_PLAN_COLUMNS} ORDER BY created_at DESC, id DESC LIMIT 1"

# Every plan row after a version, oldest first: plan changes take the routing lock, so ids
# rise in commit order.
_PLAN_HISTORY = f"{_PLAN_COLUMNS} WHERE id > $1 ORDER BY id"

# The active domains (enabled, above 0 %) and their latest unified decisions since the step
# began, newest first: at most `required_proceed` of them.
_EVIDENCE = """
SELECT d.domain,
       coalesce((SELECT array_agg(x.decision ORDER BY x.window_end DESC) FROM (
           SELECT v.decision, v.window_end FROM webhook_routing_verdicts v
           WHERE v.domain = d.domain AND v.routed_to = 'unified'
             AND v.evaluated_at >= to_timestamp($1)
           ORDER BY v.window_end DESC LIMIT $2) x), '{}') AS decisions,
       coalesce((SELECT v.reasons FROM webhook_routing_verdicts v
                 WHERE v.domain = d.domain AND v.routed_to = 'unified'
                   AND v.evaluated_at >= to_timestamp($1)
                 ORDER BY v.window_end DESC LIMIT 1), '{}') AS latest_reasons
FROM webhook_routing_domains d
WHERE d.enabled AND d.percentage > 0
ORDER BY d.domain
"""

_ROUTING_ENABLED = ("SELECT enabled FROM webhook_routing_config "
                    "ORDER BY created_at DESC, id DESC LIMIT 1")


async def read_plan(conn: asyncpg.Connection) -> Plan | None:
    row = await conn.fetchrow(_PLAN)
    return None if row is None else Plan.from_mapping(dict(row))


async def read_plan_history(conn: asyncpg.Connection,
                            after_version: int) -> list[tuple[str, Plan]]:
    """Each plan row newer than ``after_version``, oldest first, with its ``action``."""
    rows = await conn.fetch(_PLAN_HISTORY, after_version)
    return [(row["action"], Plan.from_mapping(dict(row))) for row in rows]


async def read_evidence(conn: asyncpg.Connection, plan: Plan) -> list[DomainEvidence]:
    rows = await conn.fetch(_EVIDENCE, plan.step_started_at, plan.required_proceed)
    return [DomainEvidence(row["domain"], tuple(row["decisions"]), tuple(row["latest_reasons"]))
            for row in rows]


async def assess_plan(conn: asyncpg.Connection) -> Assessment | None:
    """The plan in force judged now (the database's clock), or None without a plan."""
    plan = await read_plan(conn)
    if plan is None:
        return None
    enabled = bool(await conn.fetchval(_ROUTING_ENABLED))
    now_s = float(await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8"))
    return assess(plan, enabled, await read_evidence(conn, plan), now_s)


async def plan_status(conn: asyncpg.Connection) -> dict[str, Any] | None:
    """The assessment as a JSON-ready dict (status, dashboard, alerts)."""
    assessment = await assess_plan(conn)
    return None if assessment is None else assessment.to_dict()
