"""What verdicts do to the routing config: roll back (always), promote (opt-in rollout plan).

Each side effect is one function running in one transaction under the same advisory lock the
SQL config functions take, with `trafficlight.actor` = the worker id:

- `roll_back`: `set_routing_enabled(false, reason)` only if the current config is enabled, so
  every later rollback verdict, from this worker or another, is a no-op: the call happens once.
- `promote`: `update_routing_percentage(next step, reason)` only if routing is enabled, the
  current step has baked `bake_s`, and every rollout domain's last `healthy_evaluations`
  stored unified verdicts since the step began say proceed. Never while disabled. The sink
  keeps one verdict row per target per trailing-window start (one per 10 s bucket, the latest
  evaluation in it), so the default 30 means the last ~5 minutes, all healthy.

`Actions` receives the agent's verdicts through a queue (the agent never waits on Postgres).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import asyncpg

from trafficlight.base.db import connect
from trafficlight.streams.events import Target
from trafficlight.streams.verdicts import Decision, Health, Verdict

log = logging.getLogger("trafficlight.actions")

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('webhook_routing_config'))"
_CURRENT = ("SELECT id, percentage, enabled, domains, created_at FROM webhook_routing_config"
            " ORDER BY created_at DESC, id DESC LIMIT 1")


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    """Opt-in promotion ladder. Defaults: 10, 25, 35, 50, 100 % with 10 min bake time and
    30 stored verdict rows (~5 min, one per 10 s bucket) healthy per domain."""

    steps_pct: tuple[float, ...] = (10, 25, 35, 50, 100)
    bake_s: float = 600
    healthy_evaluations: int = 30

    def next_step(self, current_pct: float) -> float | None:
        return next((s for s in self.steps_pct if s > current_pct), None)


def rollback_reason(verdict: Verdict) -> str:
    """The evidence, in one line, for the config history."""
    p95 = "n/a" if verdict.p95_ms is None else f"{verdict.p95_ms:.0f} ms"
    why = "; ".join(verdict.reasons) or "critical"
    return (f"automatic rollback: {verdict.domain} {verdict.routed_to} critical in window "
            f"{verdict.window_start:.0f}..{verdict.window_end:.0f} (epoch s): error "
            f"{verdict.error_pct:.2f}% ({verdict.errors}/{verdict.requests} requests), "
            f"P95 {p95}; {why}")


async def roll_back(conn: asyncpg.Connection, verdict: Verdict, actor: str) -> bool:
    """Disable routing with the verdict as evidence, unless already disabled. True if done."""
    async with conn.transaction():
        await conn.execute(_LOCK)
        await conn.execute("SELECT set_config('trafficlight.actor', $1, true)", actor)
        current = await conn.fetchrow(_CURRENT)
        if current is None or not current["enabled"]:
            return False
        await conn.execute("SELECT set_routing_enabled(false, $1)", rollback_reason(verdict))
        return True


async def promote(conn: asyncpg.Connection, plan: RolloutPlan, actor: str) -> float | None:
    """Move to the plan's next step when the current one has baked healthy; the new %."""
    async with conn.transaction():
        await conn.execute(_LOCK)
        await conn.execute("SELECT set_config('trafficlight.actor', $1, true)", actor)
        current = await conn.fetchrow(_CURRENT)
        if current is None or not current["enabled"]:
            return None  # never promote while disabled (a rollback stays rolled back)
        step = plan.next_step(float(current["percentage"]))
        baked = await conn.fetchval("SELECT now() - $1::timestamptz >= make_interval(secs => $2)",
                                    current["created_at"], plan.bake_s)
        if step is None or not baked:
            return None
        healthy = await conn.fetchval(
            """
            SELECT bool_and(ok) FROM (
                SELECT d, coalesce((
                    SELECT count(*) = $3 AND bool_and(decision = 'proceed') FROM (
                        SELECT decision FROM webhook_routing_verdicts
                        WHERE domain = d AND routed_to = 'unified' AND evaluated_at >= $2
                        ORDER BY window_end DESC LIMIT $3) last), false) AS ok
                FROM unnest($1::text[]) AS d) per_domain
            """, current["domains"], current["created_at"], plan.healthy_evaluations)
        if not healthy:
            return None
        await conn.execute(
            "SELECT update_routing_percentage($1, $2)", step,
            f"rollout plan: {float(current['percentage']):g}% baked {plan.bake_s:g} s with "
            f"{plan.healthy_evaluations} healthy evaluations per domain; promoting to {step:g}%")
        return step


class Actions:
    """Rollbacks as soon as a rollback verdict arrives; promotions checked every few seconds."""

    def __init__(self, database_url: str, actor: str, plan: RolloutPlan | None = None,
                 promote_every_s: float = 5.0) -> None:
        self.database_url = database_url
        self.actor = actor
        self.plan = plan
        self.promote_every_s = promote_every_s
        self.rollbacks = 0
        self._queue: asyncio.Queue[Verdict] = asyncio.Queue()

    def observe(self, verdicts: list[Verdict]) -> None:
        """Called by the agent. Queued: rollback decisions on a critical unified verdict.

        A rollback decision that only persists (unified recovering, or without traffic
        after the rollback) is not fresh evidence: acting on it would undo an operator's
        re-enable before unified could show it is healthy again.
        """
        for verdict in verdicts:
            if (verdict.decision == Decision.ROLLBACK and verdict.routed_to == Target.UNIFIED
                    and verdict.verdict == Health.CRITICAL):
                self._queue.put_nowait(verdict)

    async def run(self) -> None:
        """Until cancelled; a Postgres error is logged and the verdict retried."""
        conn: asyncpg.Connection | None = None
        pending: Verdict | None = None
        while True:
            try:
                if pending is None:
                    pending = await self._next_verdict()
                if conn is None or conn.is_closed():
                    conn = await connect(self.database_url)
                if pending is not None:
                    if await roll_back(conn, pending, self.actor):
                        self.rollbacks += 1
                        log.warning("rolled back: %s", rollback_reason(pending))
                    pending = None
                elif self.plan is not None:
                    step = await promote(conn, self.plan, self.actor)
                    if step is not None:
                        log.warning("rollout plan: promoted to %g%%", step)
            except Exception as exc:  # keep acting: the next verdict or tick retries
                log.warning("actions: %s", str(exc).splitlines()[0] if str(exc) else exc)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                conn = None
                await asyncio.sleep(1)

    async def _next_verdict(self) -> Verdict | None:
        """The next rollback verdict (the latest queued), or None when it is time to promote."""
        timeout_s = self.promote_every_s if self.plan is not None else None
        try:
            verdict = await asyncio.wait_for(self._queue.get(), timeout_s)
        except TimeoutError:
            return None
        while not self._queue.empty():
            verdict = self._queue.get_nowait()
        return verdict
