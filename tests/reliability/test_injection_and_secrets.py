"""Scenario 6, database and secrets: injection strings stay data; passwords stay out of sight.

Reasons, actors and domains reach the SQL functions as bound parameters and are stored and
notified verbatim; a domain that is not a plain name is refused by the database. A router
whose DATABASE_URL carries a password never shows it: not in its log (also while the database
is unreachable), not in /metrics, not in /healthz.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import asyncpg
import orjson
import pytest

from tests.reliability.harness import PASSWORD, RouterProcess, UpstreamProcess, with_password
from trafficlight.base.db import connect
from trafficlight.base.local_services import free_port

pytestmark = pytest.mark.reliability

INJECTIONS = [
    "'); DROP TABLE webhook_routing_logs; --",
    "x' OR '1'='1",
    "$$; DROP TABLE webhook_routing_config; $$",
    "%s%s%s%n %I %L",
    "\\'; SELECT pg_sleep(0); --",
    "Robert'); DELETE FROM webhook_routing_config;--",
    "\"}, \"percentage\": 100, \"enabled\": true, \"x\": {\"",
    "ünïcödé 🚦 \u202e reversed",
]

TABLES = ("webhook_routing_config", "webhook_routing_logs", "webhook_routing_windows",
          "webhook_routing_verdicts")


async def table_counts(conn: asyncpg.Connection) -> dict[str, int]:
    return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}


@pytest.mark.parametrize("text", INJECTIONS)
async def test_an_injection_string_as_reason_and_actor_is_stored_verbatim(
        database_url: str, text: str) -> None:
    conn = await connect(database_url)
    try:
        counts = await table_counts(conn)
        notified: list[str] = []
        await conn.add_listener("webhook_routing_config", lambda *args: notified.append(args[3]))
        async with conn.transaction():
            await conn.execute("SELECT set_config('trafficlight.actor', $1, true)", text)
            await conn.execute("SELECT update_routing_percentage(12.5, $1)", text)
            await conn.execute("SELECT set_routing_enabled(false, $1)", text)
        rows = await conn.fetch("SELECT percentage, enabled, notes, created_by "
                                "FROM webhook_routing_config ORDER BY id DESC LIMIT 2")
        async with asyncio.timeout(10):
            while len(notified) < 2:
                await asyncio.sleep(0.02)
        after = await table_counts(conn)
    finally:
        await conn.close()
    assert [(float(r["percentage"]), r["enabled"], r["notes"], r["created_by"]) for r in rows] \
        == [(12.5, False, text, text), (12.5, True, text, text)]
    assert after == {**counts, "webhook_routing_config": counts["webhook_routing_config"] + 2}
    payload = orjson.loads(notified[-1])
    assert (payload["notes"], payload["percentage"], payload["enabled"]) == (text, 12.5, False)


@pytest.mark.parametrize("domain", [*INJECTIONS, "jobs/../mobility", "jobs\n", "", "a" * 65])
async def test_a_domain_that_is_not_a_plain_name_is_refused_by_the_database(
        database_url: str, domain: str) -> None:
    conn = await connect(database_url)
    try:
        counts = await table_counts(conn)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO webhook_routing_config (percentage, enabled, domains, notes) "
                "VALUES (10, true, $1::text[], 'attempt')", ["jobs", domain])
        health = await conn.fetch("SELECT domain FROM check_routing_health()")
        assert await table_counts(conn) == counts
    finally:
        await conn.close()
    assert {r["domain"] for r in health} == {"jobs", "marketplace", "property"}


async def test_a_reason_with_a_nul_byte_is_a_clean_error(database_url: str) -> None:
    conn = await connect(database_url)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute("SELECT update_routing_percentage(10, $1)", "a\x00b")
        assert await conn.fetchval("SELECT count(*) FROM webhook_routing_config") == 1
    finally:
        await conn.close()


async def test_the_database_password_never_appears_in_logs_metrics_or_health(
        tmp_path: Path, database_url: str, kafka_bootstrap: str,
        upstream: UpstreamProcess, reap: Callable[[RouterProcess], RouterProcess]) -> None:
    # The test server trusts local connections, so the password is accepted and unused.
    good = reap(await RouterProcess.configure(tmp_path / "good", upstream, kafka_bootstrap,
                                              with_password(database_url)).start())
    # And one whose database is unreachable: it logs its retries.
    unreachable_url = with_password(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    bad = reap(await RouterProcess.configure(tmp_path / "bad", upstream, kafka_bootstrap,
                                             unreachable_url).start())
    await asyncio.sleep(3)  # a few reconnect attempts
    exposed = [await p.metrics() + orjson.dumps(await p.healthz()).decode()
               for p in (good, bad)]
    for process in (good, bad):
        await process.stop()
    logs = good.log_text() + bad.log_text()

    assert "database unavailable" in bad.log_text()  # the retries were logged ...
    assert PASSWORD not in logs  # ... without the password
    assert all(PASSWORD not in text for text in exposed)
