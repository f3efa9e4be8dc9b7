"""What verdicts do to the routing config: roll back (always), promote (the plan in Postgres).

Each side effect is one function running in one transaction under the same advisory lock the
SQL config functions take, with `trafficlight.actor` = the worker id:

- `roll_back`: by default takes back the failing domain only,
  `set_routing_enabled(false, reason, domain)`, if that domain still routes; with
  `RollbackScope.ALL`, `set_routing_enabled(false, reason)` for every domain if any still
  routes. Every later rollback verdict, from this worker or another, is then a no-op. A running
  rollout plan is paused in the same transaction, the reason naming the domain.
- `promote`: the plan stored in `webhook_rollout_plan` (set with `trafficlight plan set`),
  assessed by the pure `streams.rollout.assess` (baked, running, routing on, every active
  domain's last `required_proceed` stored unified verdicts since the step began say proceed),
  then `promote_rollout_plan(reason, version)`: the version assessed is the only one promoted,
  so several workers never promote twice. The sink keeps one verdict row per target per
  trailing-window start (one per 10 s bucket), so the default 30 means ~5 minutes.

`Actions` receives the agent's verdicts through a queue (the agent never waits on Postgres).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from enum import StrEnum

import asyncpg

from trafficlight.base.db import connect
from trafficlight.base.errors import first_line
from trafficlight.base.times import local_iso
from trafficlight.streams.events import Target
from trafficlight.streams.plan_store import assess_plan
from trafficlight.streams.rollout import promotion_reason
from trafficlight.streams.verdicts import Decision, Health, Verdict

log = logging.getLogger("trafficlight.actions")

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('webhook_routing_config'))"
_DOMAIN_ROUTES = "SELECT enabled FROM webhook_routing_domains WHERE domain = $1"
_ANY_ROUTES = "SELECT coalesce(bool_or(enabled), false) FROM webhook_routing_domains"
_PLAN_RUNNING = ("SELECT state = 'running' FROM webhook_rollout_plan "
                 "ORDER BY created_at DESC, id DESC LIMIT 1")


class RollbackScope(StrEnum):
    """What an automatic rollback takes back: the failing domain (default) or every domain."""

    DOMAIN = "domain"
    ALL = "all"


def rollback_reason(verdict: Verdict) -> str:
    """The evidence, in one line, for the config history."""
    p95 = "n/a" if verdict.p95_ms is None else f"{verdict.p95_ms:.0f} ms"
    why = "; ".join(verdict.reasons) or "critical"
    return (f"automatic rollback: {verdict.domain} {verdict.routed_to} critical in window "
            f"{local_iso(verdict.window_start)}..{local_iso(verdict.window_end)}: error "
            f"{verdict.error_pct:.2f}% ({verdict.errors}/{verdict.requests} requests), "
            f"P95 {p95}; {why}")


async def roll_back(conn: asyncpg.Connection, verdict: Verdict, actor: str,
                    scope: RollbackScope = RollbackScope.DOMAIN) -> bool:
    """Take back the verdict's domain (or all), unless already back. True if done."""
    reason = rollback_reason(verdict)
    async with conn.transaction():
        await conn.execute(_LOCK)
        await conn.execute("SELECT set_config('trafficlight.actor', $1, true)", actor)
        if scope is RollbackScope.ALL:
            if not await conn.fetchval(_ANY_ROUTES):
                return False
            await conn.execute("SELECT set_routing_enabled(false, $1)", reason)
        else:
            if not await conn.fetchval(_DOMAIN_ROUTES, verdict.domain):
                return False  # already back, or not a rollout domain
            await conn.execute("SELECT set_routing_enabled(false, $1, $2)", reason,
                               verdict.domain)
        if await conn.fetchval(_PLAN_RUNNING):
            await conn.execute("SELECT pause_rollout_plan($1)",
                               f"paused by the rollback of {verdict.domain}: {reason}")
        return True


async def promote(conn: asyncpg.Connection, actor: str) -> float | None:
    """Promote the stored plan when its assessment finds no blocker; the new % or None."""
    async with conn.transaction():
        await conn.execute(_LOCK)  # no config change between the assessment and the promotion
        await conn.execute("SELECT set_config('trafficlight.actor', $1, true)", actor)
        assessment = await assess_plan(conn)
        if assessment is None or not assessment.ready:
            return None
        promoted = await conn.fetchval("SELECT promote_rollout_plan($1, $2)",
                                       promotion_reason(assessment), assessment.plan.version)
        return assessment.plan.next_pct if promoted else None


class Actions:
    """Rollbacks as soon as a rollback verdict arrives; promotions checked every few seconds."""

    def __init__(self, database_url: str, actor: str,
                 scope: RollbackScope = RollbackScope.DOMAIN,
                 promote_every_s: float = 5.0) -> None:
        self.database_url = database_url
        self.actor = actor
        self.scope = scope
        self.promote_every_s = promote_every_s
        self.rollbacks = 0
        #: Domain -> wall-clock time (epoch s) of this worker's last rollback for it.
        self.last_rollback_s: dict[str, float] = {}
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
                    if await roll_back(conn, pending, self.actor, self.scope):
                        self.rollbacks += 1
                        self.last_rollback_s[pending.domain] = time.time()
                        log.warning("rolled back: %s", rollback_reason(pending))
                    pending = None
                else:
                    step = await promote(conn, self.actor)
                    if step is not None:
                        log.warning("rollout plan: promoted to %g%%", step)
            except Exception as exc:  # keep acting: the next verdict or tick retries
                log.warning("actions: %s", first_line(exc))
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                conn = None
                await asyncio.sleep(1)

    async def _next_verdict(self) -> Verdict | None:
        """The next rollback verdict (the latest queued), or None when it is time to promote."""
        try:
            verdict = await asyncio.wait_for(self._queue.get(), self.promote_every_s)
        except TimeoutError:
            return None
        while not self._queue.empty():
            verdict = self._queue.get_nowait()
        return verdict
