"""The routing config, kept current from Postgres: LISTEN for instant changes, polling as backstop.

The newest row of ``webhook_routing_config`` is read at start and every ``poll_s``; a NOTIFY
on ``webhook_routing_config`` carries a new row's config and applies at once. A config only
replaces an older one (higher ``version``), so a slow poll never undoes a NOTIFY.
Database unreachable: the last config stays in force and the watcher reconnects. None ever
loaded: everything goes to legacy (:data:`~router.decision.NO_CONFIG`).

LISTEN needs a session connection: through a transaction pooler (Supabase's port 6543) a
NOTIFY never reaches us, so there the watcher only polls and a change takes up to ``poll_s``.
Point DATABASE_URL at the direct or session port (5432) for changes within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

import asyncpg
import orjson

from trafficlight.base.db import listening_connection
from trafficlight.base.errors import DatabaseUnavailable, first_line
from trafficlight.base.retry import Backoff
from trafficlight.base.routing_config import NO_CONFIG, RoutingConfig, fetch_current_config
from trafficlight.base.settings import CONFIG_CHANNEL

log = logging.getLogger(__name__)

class ConfigSource(Protocol):
    """What the request path needs: the config in force now."""

    @property
    def config(self) -> RoutingConfig: ...


class FixedConfig:
    """A config that never changes: a router without DATABASE_URL (all legacy), and tests."""

    def __init__(self, config: RoutingConfig = NO_CONFIG) -> None:
        self.config = config


#: A config from a NOTIFY payload or a row; raises ValueError/TypeError/KeyError if bad.
config_from_mapping = RoutingConfig.from_mapping


class ConfigWatcher:
    """Follows the config table; ``config`` is always usable, even with the database down."""

    def __init__(self, database_url: str, poll_s: float = 5.0,
                 on_change: Callable[[RoutingConfig], None] | None = None) -> None:
        self.database_url = database_url
        self.poll_s = poll_s
        self.on_change = on_change
        self.config = NO_CONFIG
        #: time.time() of the last successful read or notification; 0 before any.
        self.confirmed_at = 0.0
        self.listening = False
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self, first_load_timeout_s: float = 5.0) -> None:
        """Start following; waits briefly for a first config but starts without one too."""
        self._task = asyncio.create_task(self._follow(), name="router-config-watcher")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), first_load_timeout_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def apply(self, config: RoutingConfig) -> bool:
        """Take ``config`` if it is newer than the one in force."""
        self.confirmed_at = time.time()
        if config.version <= self.config.version:
            return False
        self.config = config
        self._changed.set()
        log.info("routing config version %d: %.2f%%, enabled=%s%s", config.version,
                 config.percentage, config.enabled, "".join(
                     f", {d}: {s.percentage:.2f}% enabled={s.enabled}"
                     for d, s in sorted(config.domain_overrides.items())))
        if self.on_change is not None:
            self.on_change(config)
        return True

    async def _follow(self) -> None:
        backoff, failures = Backoff(first_s=0.5, max_s=self.poll_s), 0
        while True:
            try:
                await self._follow_connection()
            except (DatabaseUnavailable, OSError, asyncpg.PostgresError,
                    asyncpg.InterfaceError) as exc:
                self.listening = False
                log.warning("routing config: database unavailable (%s); keeping version %d",
                            first_line(exc),
                            self.config.version)
            failures += 1
            await asyncio.sleep(backoff.delay_s(failures))

    async def _follow_connection(self) -> None:
        try:
            async with listening_connection(
                    self.database_url, CONFIG_CHANNEL, self._on_notify, what="routing config",
                    poll_s=self.poll_s, timeout_s=self.poll_s) as (conn, listening):
                self.listening = listening
                while True:
                    self._apply_row(await fetch_current_config(conn, timeout=self.poll_s))
                    await asyncio.sleep(self.poll_s)
                    if conn.is_closed():
                        raise DatabaseUnavailable("connection closed")
        finally:
            self.listening = False

    def _apply_row(self, config: RoutingConfig | None) -> None:
        if config is None:
            self.confirmed_at = time.time()
            return
        self.apply(config)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            self.apply(config_from_mapping(orjson.loads(payload)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.error("routing config: ignored a malformed notification (%s)", exc)
