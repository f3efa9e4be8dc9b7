"""The rollout plan, followed from Postgres for the alerts: its status and each change.

One connection LISTENs on ``webhook_rollout_plan`` (a NOTIFY wakes it at once) and reads every
``poll_s`` as a backstop: the plan rows newer than the last version seen (each one an event,
:mod:`~trafficlight.tools.alerts.plan_events`) and the plan's status (``plan_status``: step,
baked / left, evidence, blockers) that verdict alerts carry. Through a transaction pooler
(Supabase's port 6543) LISTEN cannot work: it only polls.

The database is never in the alerts' way: ``status()`` answers at once from the last read, and
says None (the block is left out, with a warning) from a failed read (or connect, each bounded
by ``TIMEOUT_S``) until the next one succeeds. A lost connection is retried with the house's backoff
(:func:`~trafficlight.base.retry.retry_until_done`); the rows written meanwhile are announced
once it is back, each exactly once (the last version seen is kept across reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

from trafficlight.base.db import connect_args, listening_connection
from trafficlight.base.errors import DatabaseUnavailable, first_line
from trafficlight.base.retry import Backoff, retry_until_done
from trafficlight.streams.plan_store import PLAN_CHANNEL, plan_status, read_plan, read_plan_history
from trafficlight.tools.alerts.plan_events import PlanEvent, PlanEventDetector, plan_event

log = logging.getLogger(__name__)

#: Bound on connecting and on one read: past it the database counts as unavailable.
TIMEOUT_S = 10.0


class PlanFollower:
    """Follows ``webhook_rollout_plan``; ``on_event`` gets each change, in order, once."""

    def __init__(self, database_url: str, on_event: Callable[[PlanEvent], None],
                 poll_s: float = 5.0) -> None:
        connect_args(database_url)  # a URL that is not Postgres is a setup error, at once
        self.database_url = database_url
        self.poll_s = poll_s
        self._on_event = on_event
        self.detector = PlanEventDetector()
        self.listening = False
        self.events = 0
        self._status: Mapping[str, Any] | None = None
        #: time.monotonic() of the last successful read; None while the database is down.
        self._read_at: float | None = None
        self._wake = asyncio.Event()
        #: Set once the first read succeeded or failed: start() waits for no more.
        self._first_try = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        """The last read succeeded (none has failed since)."""
        return self._read_at is not None

    def status(self) -> Mapping[str, Any] | None:
        """The plan's status as last read, or None (no plan, or the database unavailable)."""
        return self._status if self.available else None

    async def start(self, first_read_timeout_s: float = 2.0) -> None:
        """Start following; waits for the first read (the baseline) or its failure, at most
        ``first_read_timeout_s``: a changed plan from then on is news."""
        self._task = asyncio.create_task(self._follow(), name="alerts-plan-follower")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_try.wait(), first_read_timeout_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        await retry_until_done(self._follow_connection,
                               Backoff(first_s=0.5, max_s=self.poll_s), self._failed)

    async def _failed(self, exc: Exception, delay_s: float) -> None:
        self._read_at = None
        self._first_try.set()
        log.warning("alerts: rollout plan unreadable (%s): verdict alerts go out without the "
                    "plan block; retrying in %.1fs", first_line(exc), delay_s)

    async def _follow_connection(self) -> None:
        try:
            async with listening_connection(
                    self.database_url, PLAN_CHANNEL, self._on_notify,
                    what="alerts: rollout plan", poll_s=self.poll_s,
                    timeout_s=TIMEOUT_S) as (conn, listening):
                self.listening = listening
                while True:
                    self._wake.clear()  # before the read: a NOTIFY during it wakes the next
                    await asyncio.wait_for(self._read(conn), TIMEOUT_S)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_s)
                    if conn.is_closed():
                        raise DatabaseUnavailable("connection closed")
        finally:
            self.listening = False

    async def _read(self, conn: asyncpg.Connection) -> None:
        if self.detector.last_version is None:
            current = await read_plan(conn)
            self.detector.baseline(0 if current is None else current.version)
        rows = await read_plan_history(conn, self.detector.last_version or 0)
        status = await plan_status(conn)
        self._status, self._read_at = status, time.monotonic()
        self._first_try.set()
        for action, plan in rows:
            if not self.detector.is_news(plan.version):
                continue
            try:
                event = plan_event(action, plan, status)
            except ValueError as exc:
                log.error("alerts: skipped plan version %d: %s", plan.version, exc)
                continue
            self.events += 1
            self._on_event(event)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, _payload: str) -> None:
        self._wake.set()  # the rows are read from the table: one decoder, nothing missed
