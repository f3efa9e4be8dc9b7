"""Operators' reads and changes of the routing config, always through the SQL functions.

Every change runs in one transaction that first sets ``trafficlight.actor`` (SET LOCAL) to the
operator's OS user, so the config history says who did it. The database is the only judge of
what is allowed (percentage range, empty reason, ...): its refusal becomes
:class:`RefusedByDatabase` with the database's own message.
"""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg

from trafficlight.base.db import connect
from trafficlight.base.errors import InvalidInput, RefusedByDatabase, first_line
from trafficlight.base.routing_config import RoutingConfig, fetch_current_config

R = TypeVar("R")

__all__ = ["Change", "RoutingConfig", "check_domain", "current_config", "health", "os_actor",
           "rollback", "set_enabled", "set_percentage"]

#: What ``rollback`` writes in front of the operator's reason, so the history shows it.
ROLLBACK_NOTE_PREFIX = "Rollback: "

@dataclass(frozen=True, slots=True)
class Change:
    """What a change did: the database's NOTICE (the runbook's wording) and the new config."""

    notice: str
    config: RoutingConfig

    def to_dict(self) -> dict[str, Any]:
        return {"notice": self.notice, "config": self.config.to_dict()}


def os_actor() -> str:
    """Who is typing: recorded as ``created_by`` of each change."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers) and no USER variable
        return "unknown-operator"


async def current_config(conn: asyncpg.Connection) -> RoutingConfig:
    """The config in force; a database without a config row is not migrated."""
    config = await fetch_current_config(conn)
    if config is None:
        raise InvalidInput("no routing config row: run `trafficlight migrate` first")
    return config


def check_domain(config: RoutingConfig, domain: str) -> None:
    """Refuse a domain that is not rolled out, saying why."""
    if domain in config.domains:
        return
    if domain in config.protected_domains:
        raise InvalidInput(f"domain {domain!r} is protected: it always goes to legacy")
    known = ", ".join(sorted(config.domains))
    raise InvalidInput(f"unknown domain {domain!r} (rollout domains: {known})")


async def health(conn: asyncpg.Connection, domain: str | None = None) -> list[dict[str, Any]]:
    """``check_routing_health()`` rows as dicts, optionally for one rollout domain."""
    if domain is not None:
        check_domain(await current_config(conn), domain)
    rows = await conn.fetch("SELECT * FROM check_routing_health() "
                            "WHERE $1::text IS NULL OR domain = $1", domain)
    return [dict(row) for row in rows]


async def set_percentage(database_url: str, pct: Decimal, reason: str, actor: str,
                         domain: str | None = None) -> Change:
    """Every rollout domain (clearing per-domain settings), or only ``domain``."""
    if domain is None:
        return await change(database_url, actor,
                             "SELECT update_routing_percentage($1::numeric, $2)", pct, reason)
    return await change(database_url, actor,
                         "SELECT update_routing_percentage($1::numeric, $2, $3)", pct, reason,
                         domain)


async def set_enabled(database_url: str, enabled: bool, reason: str, actor: str,
                      domain: str | None = None) -> Change:
    """Every rollout domain (clearing per-domain settings), or only ``domain``."""
    if domain is None:
        return await change(database_url, actor,
                             "SELECT set_routing_enabled($1, $2)", enabled, reason)
    return await change(database_url, actor,
                         "SELECT set_routing_enabled($1, $2, $3)", enabled, reason, domain)


async def rollback(database_url: str, reason: str, actor: str,
                   domain: str | None = None) -> Change:
    """Send all traffic back to legacy now.

    This disables routing and keeps the percentage, as the runbook's emergency rollback does:
    the history then shows at which step it failed, and ``enable`` (or ``set-percentage`` to a
    lower step) resumes deliberately. An empty reason stays empty so the database refuses it.
    """
    note = f"{ROLLBACK_NOTE_PREFIX}{reason}" if reason.strip() else reason
    return await set_enabled(database_url, False, note, actor, domain)


async def change(database_url: str, actor: str, sql: str, *args: object) -> Change:
    """Run one SQL change function as ``actor``; its NOTICEs and the config after it."""
    notice, config = await run_as_actor(database_url, actor, current_config, sql, *args)
    return Change(notice=notice, config=config)


async def run_as_actor(database_url: str, actor: str,
                       read_after: Callable[[asyncpg.Connection], Awaitable[R]],
                       sql: str, *args: object) -> tuple[str, R]:
    """One change as ``actor`` in one transaction: its NOTICEs, and ``read_after`` of the result.

    The database is the only judge: a refusal (RAISE EXCEPTION, a CHECK) becomes one line.
    """
    conn = await connect(database_url)
    notices: list[str] = []
    conn.add_log_listener(lambda _conn, message: notices.append(message.message))
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('trafficlight.actor', $1, true)", actor)
            await conn.execute(sql, *args)
            after = await read_after(conn)
    except asyncpg.PostgresError as exc:
        raise RefusedByDatabase(f"refused by the database: {first_line(exc)}") from None
    finally:
        await conn.close()
    return "; ".join(notices), after

