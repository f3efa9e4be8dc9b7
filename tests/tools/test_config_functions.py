"""The SQL config functions and the refusals the database itself enforces."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from trafficlight.base.db import connect


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(database_url)
    yield connection
    await connection.close()


async def _notices_of(conn: asyncpg.Connection, sql: str, *args: object) -> list[str]:
    notices: list[str] = []

    def listener(_conn: object, message: asyncpg.PostgresLogMessage) -> None:
        notices.append(message.message)

    conn.add_log_listener(listener)
    try:
        await conn.execute(sql, *args)
    finally:
        conn.remove_log_listener(listener)
    return notices


async def _current(conn: asyncpg.Connection) -> asyncpg.Record:
    return await conn.fetchrow(
        "SELECT * FROM webhook_routing_config ORDER BY created_at DESC LIMIT 1"
    )


async def test_initial_config_routes_nothing(conn: asyncpg.Connection) -> None:
    row = await _current(conn)

    assert row["percentage"] == 0
    assert row["enabled"] is False
    assert row["domains"] == ["jobs", "marketplace", "property"]
    assert row["protected_domains"] == ["mobility", "profile", "insurance"]


async def test_update_percentage_notice_matches_the_runbook(conn: asyncpg.Connection) -> None:
    notices = await _notices_of(
        conn, "SELECT update_routing_percentage(10.00, 'Starting 10% rollout')"
    )

    assert notices == ["Routing percentage updated to 10%. Enabled: true"]


async def test_update_percentage_appends_a_row_with_who_and_why(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT set_config('trafficlight.actor', 'alice', false)")
    await conn.execute("SELECT update_routing_percentage(25.00, 'Scaling to 25% after 10% test')")

    row = await _current(conn)
    assert (row["percentage"], row["enabled"]) == (25, True)
    assert row["notes"] == "Scaling to 25% after 10% test"
    assert row["created_by"] == "alice"
    assert await conn.fetchval("SELECT count(*) FROM webhook_routing_config") == 2


async def test_fractional_percentage_is_shown_without_trailing_zeros(
    conn: asyncpg.Connection,
) -> None:
    notices = await _notices_of(conn, "SELECT update_routing_percentage(12.50, 'half step')")

    assert notices == ["Routing percentage updated to 12.5%. Enabled: true"]


async def test_zero_percent_disables(conn: asyncpg.Connection) -> None:
    notices = await _notices_of(conn, "SELECT update_routing_percentage(0, 'back to legacy')")

    assert notices == ["Routing percentage updated to 0%. Enabled: false"]
    assert (await _current(conn))["enabled"] is False


async def test_set_enabled_notice_and_keeps_percentage(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT update_routing_percentage(35, 'step 3')")

    notices = await _notices_of(
        conn, "SELECT set_routing_enabled(false, 'Emergency rollback - high error rate')"
    )

    assert notices == ["Routing enabled set to: false"]
    row = await _current(conn)
    assert (row["percentage"], row["enabled"]) == (35, False)
    assert row["notes"] == "Emergency rollback - high error rate"


@pytest.mark.parametrize("pct", ["-0.01", "100.01", "-5", "1000"])
async def test_percentage_outside_0_to_100_is_refused(conn: asyncpg.Connection, pct: str) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match="between 0 and 100"):
        await conn.execute(f"SELECT update_routing_percentage({pct}, 'bad')")
    assert await conn.fetchval("SELECT count(*) FROM webhook_routing_config") == 1


async def test_null_percentage_is_refused(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match="got NULL"):
        await conn.execute("SELECT update_routing_percentage(NULL, 'bad')")


@pytest.mark.parametrize("reason", ["''", "'   '", "NULL"])
async def test_empty_reason_is_refused(conn: asyncpg.Connection, reason: str) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match="reason is required"):
        await conn.execute(f"SELECT update_routing_percentage(10, {reason})")
    with pytest.raises(asyncpg.InvalidParameterValueError, match="reason is required"):
        await conn.execute(f"SELECT set_routing_enabled(true, {reason})")
    assert await conn.fetchval("SELECT count(*) FROM webhook_routing_config") == 1


async def test_protected_domain_in_rollout_domains_is_refused(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="protected_never_rolled_out"):
        await conn.execute(
            "INSERT INTO webhook_routing_config (percentage, enabled, domains, notes) "
            "VALUES (10, true, ARRAY['jobs', 'mobility'], 'sneak mobility in')"
        )


@pytest.mark.parametrize("statement", [
    "UPDATE webhook_routing_config SET percentage = 100",
    "DELETE FROM webhook_routing_config",
])
async def test_config_history_cannot_be_rewritten(conn: asyncpg.Connection, statement: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="append-only"):
        await conn.execute(statement)


async def test_change_notifies_routers_with_the_new_config(
    conn: asyncpg.Connection, database_url: str
) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await connect(database_url)
    await listener.add_listener("webhook_routing_config", lambda *a: received.put_nowait(a[3]))
    try:
        await conn.execute("SELECT update_routing_percentage(10, 'Starting 10% rollout')")
        payload = json.loads(await asyncio.wait_for(received.get(), timeout=5))
    finally:
        await listener.close()

    row = await _current(conn)
    assert payload["version"] == row["id"]
    assert float(payload["percentage"]) == 10.0
    assert payload["enabled"] is True
    assert payload["domains"] == ["jobs", "marketplace", "property"]
    assert payload["protected_domains"] == ["mobility", "profile", "insurance"]
    assert payload["notes"] == "Starting 10% rollout"


async def test_reason_with_sql_text_is_stored_as_text(conn: asyncpg.Connection) -> None:
    reason = "x'); DROP TABLE webhook_routing_logs; --"

    await conn.execute("SELECT set_routing_enabled(true, $1)", reason)

    assert (await _current(conn))["notes"] == reason
    assert await conn.fetchval("SELECT to_regclass('webhook_routing_logs') IS NOT NULL")
