"""Each config version's unified percentage per domain, from Postgres, for the sample-ratio guard.

`ShareCache` is the worker's `ConfiguredShares` (`streams.sample_ratio`): the judge asks it in
the agent, and it answers at once from what it holds (None for a version not fetched yet:
the guard is off for it until then). `run`, a task beside the agent, first reads every version
Postgres has (one query: a restarted worker knows the versions its events carry), then
fetches each version asked for that it does not know, one query per new version
(`webhook_routing_domain_percentage` over the version's rollout domains), kept for good (a
config row never changes). Postgres down: logged, retried every `retry_s`, never a crash,
never a wait in the agent. A version Postgres does not have (a hostile or corrupt event's) is
asked again `tries` times, then taken as rolling nothing out (guard off for it); at most
`max_wanted` versions wait at once.

`load_shares` reads every version at once, for replay (`--config-db`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from trafficlight.base.db import connect
from trafficlight.base.errors import DatabaseUnavailable, first_line

log = logging.getLogger("trafficlight.config_shares")

_ONE_VERSION = """
SELECT d AS domain, webhook_routing_domain_percentage(c.id, d)::float8 AS pct
FROM webhook_routing_config c, unnest(c.domains) AS d
WHERE c.id = $1
"""
_EVERY_VERSION = """
SELECT c.id AS version, d AS domain, webhook_routing_domain_percentage(c.id, d)::float8 AS pct
FROM webhook_routing_config c, unnest(c.domains) AS d
"""

Shares = dict[int, dict[str, float]]


async def fetch_version(conn: asyncpg.Connection, version: int) -> dict[str, float] | None:
    """{domain: percentage} of one config version; None if Postgres has no such version."""
    rows = await conn.fetch(_ONE_VERSION, version)
    if not rows:
        exists = await conn.fetchval("SELECT true FROM webhook_routing_config WHERE id = $1",
                                     version)
        return {} if exists else None
    return {row["domain"]: float(row["pct"]) for row in rows}


async def fetch_every_version(conn: asyncpg.Connection) -> Shares:
    """{version: {domain: percentage}} of every config version Postgres has."""
    shares: Shares = {}
    for row in await conn.fetch(_EVERY_VERSION):
        shares.setdefault(int(row["version"]), {})[row["domain"]] = float(row["pct"])
    return shares


async def load_shares(database_url: str) -> Shares:
    """Every config version's {domain: percentage} (the table is one row per change);
    `DatabaseUnavailable` in one line when Postgres cannot say."""
    conn = await connect(database_url)
    try:
        return await fetch_every_version(conn)
    except asyncpg.PostgresError as exc:
        raise DatabaseUnavailable(f"cannot read the routing config: {first_line(exc)}"
                                  ) from None
    finally:
        await conn.close()


class ShareCache:
    """Percentages per config version, fetched in the background (see the module docstring)."""

    def __init__(self, database_url: str, retry_s: float = 5.0, tries: int = 12,
                 max_wanted: int = 64) -> None:
        self.database_url = database_url
        self.retry_s = retry_s
        self.tries = tries
        self.max_wanted = max_wanted
        self.known: Shares = {}
        self._wanted: set[int] = set()
        self._misses: dict[int, int] = {}
        self._wake = asyncio.Event()
        #: Queries run, for tests and logs.
        self.queries = 0

    def percentage(self, config_version: int, domain: str) -> float | None:
        """The judge's question, answered from the cache; an unknown version is queued."""
        shares = self.known.get(config_version)
        if shares is None:
            if (config_version > 0 and config_version not in self._wanted
                    and len(self._wanted) < self.max_wanted):
                self._wanted.add(config_version)
                self._wake.set()
            return None
        return shares.get(domain)

    async def run(self) -> None:
        """Until cancelled: every version at the start, then the versions asked for."""
        conn: asyncpg.Connection | None = None
        loaded = False
        self._wake.set()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                try:
                    if conn is None or conn.is_closed():
                        conn = await connect(self.database_url)
                    if not loaded:
                        self.queries += 1
                        every = await fetch_every_version(conn)
                        for version, shares in every.items():
                            self.known.setdefault(version, shares)
                            self._wanted.discard(version)
                        log.info("config shares: %d config version(s) known", len(every))
                        loaded = True
                    missing = await self._fetch_wanted(conn)
                except Exception as exc:  # Postgres down: the guard stays off, retried
                    log.warning("config shares: %s; sample-ratio guard off until it answers",
                                first_line(exc))
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            await conn.close()
                    conn = None
                    missing = True
                if missing:
                    await asyncio.sleep(self.retry_s)
                    self._wake.set()
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _fetch_wanted(self, conn: asyncpg.Connection) -> bool:
        """Fetch every wanted version; True if some are not in Postgres (yet)."""
        missing = False
        for version in sorted(self._wanted):
            self.queries += 1
            shares = await fetch_version(conn, version)
            if shares is None:
                self._misses[version] = misses = self._misses.get(version, 0) + 1
                if misses < self.tries:
                    missing = True
                    continue
                log.warning("config version %d is not in Postgres: no sample-ratio guard "
                            "for it", version)
                shares = {}
            self.known[version] = shares
            self._wanted.discard(version)
            self._misses.pop(version, None)
            log.info("config version %d: unified %s", version,
                     ", ".join(f"{d} {p:g}%" for d, p in sorted(shares.items())) or "none")
        return missing
