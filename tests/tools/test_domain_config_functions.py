"""Per-domain routing control in SQL: the three-argument forms, their refusals and payloads."""

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
    await connection.execute("SELECT update_routing_percentage(25, 'rollout at 25%')")
    yield connection
    await connection.close()


async def _notices_of(conn: asyncpg.Connection, sql: str, *args: object) -> list[str]:
    notices: list[str] = []
    conn.add_log_listener(lambda _c, message: notices.append(message.message))
    await conn.execute(sql, *args)
    return notices


async def _domains(conn: asyncpg.Connection) -> dict[str, tuple[float, bool]]:
    rows = await conn.fetch("SELECT domain, percentage, enabled FROM webhook_routing_domains")
    return {row["domain"]: (float(row["percentage"]), row["enabled"]) for row in rows}


async def test_disabling_one_domain_leaves_the_others_routing(conn: asyncpg.Connection) -> None:
    notices = await _notices_of(conn, "SELECT set_routing_enabled(false, 'jobs 5xx', 'jobs')")

    assert notices == ["Routing enabled for jobs set to: false"]
    assert await _domains(conn) == {
        "jobs": (25.0, False), "marketplace": (25.0, True), "property": (25.0, True)}


async def test_runbook_query_still_answers_the_all_domains_config(
        conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT set_routing_enabled(false, 'jobs 5xx', 'jobs')")

    row = await conn.fetchrow("SELECT percentage, enabled, domains FROM webhook_routing_config "
                              "ORDER BY created_at DESC LIMIT 1;")

    assert (float(row["percentage"]), row["enabled"]) == (25.0, True)
    assert row["domains"] == ["jobs", "marketplace", "property"]


async def test_one_domains_percentage_notice_names_it(conn: asyncpg.Connection) -> None:
    notices = await _notices_of(conn, "SELECT update_routing_percentage(10, 'hold', 'property')")

    assert notices == ["Routing percentage for property updated to 10%. Enabled: true"]
    assert (await _domains(conn))["property"] == (10.0, True)


async def test_per_domain_change_records_who_and_why(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT set_config('trafficlight.actor', 'alice', false)")
    await conn.execute("SELECT update_routing_percentage(0, 'jobs regression', 'jobs')")

    row = await conn.fetchrow("SELECT notes, created_by, domain_overrides FROM "
                              "webhook_routing_config ORDER BY created_at DESC LIMIT 1")

    assert (row["notes"], row["created_by"]) == ("jobs regression", "alice")
    assert json.loads(row["domain_overrides"]) == {"jobs": {"percentage": 0, "enabled": False}}


async def test_re_enabling_a_domain_puts_it_back_with_the_others(
        conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT set_routing_enabled(false, 'jobs 5xx', 'jobs')")
    await conn.execute("SELECT set_routing_enabled(true, 'jobs fixed', 'jobs')")

    overrides = await conn.fetchval("SELECT domain_overrides FROM webhook_routing_config "
                                    "ORDER BY created_at DESC LIMIT 1")

    assert json.loads(overrides) == {}


async def test_two_argument_forms_set_every_domain_again(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT set_routing_enabled(false, 'jobs 5xx', 'jobs')")
    notices = await _notices_of(conn, "SELECT update_routing_percentage(35, 'all to 35')")

    assert notices == ["Routing percentage updated to 35%. Enabled: true"]
    assert set((await _domains(conn)).values()) == {(35.0, True)}


@pytest.mark.parametrize(("domain", "message"), [
    ("mobility", "domain mobility is protected: it always goes to legacy"),
    ("Profile", "domain Profile is protected: it always goes to legacy"),
    ("payments", r"unknown domain payments \(rollout domains: jobs, marketplace, property\)"),
    ("", "a domain is required"),
])
async def test_a_domain_that_is_not_rolled_out_is_refused(
        conn: asyncpg.Connection, domain: str, message: str) -> None:
    for sql in ("SELECT update_routing_percentage(10, 'x', $1)",
                "SELECT set_routing_enabled(true, 'x', $1)"):
        with pytest.raises(asyncpg.InvalidParameterValueError, match=f"^{message}$"):
            await conn.execute(sql, domain)


async def test_per_domain_percentage_out_of_range_is_refused(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match="between 0 and 100"):
        await conn.execute("SELECT update_routing_percentage(101, 'x', 'jobs')")


async def test_a_direct_insert_cannot_override_a_protected_domain(
        conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="routing_domain_overrides_valid"):
        await conn.execute(
            "INSERT INTO webhook_routing_config (domain_overrides) VALUES "
            "('{\"mobility\": {\"percentage\": 100, \"enabled\": true}}')")


async def test_per_domain_change_notifies_with_the_overrides(
        conn: asyncpg.Connection, database_url: str) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await connect(database_url)
    await listener.add_listener("webhook_routing_config", lambda *a: received.put_nowait(a[3]))
    try:
        await conn.execute("SELECT set_routing_enabled(false, 'jobs 5xx', 'jobs')")
        payload = json.loads(await asyncio.wait_for(received.get(), timeout=30))
    finally:
        await listener.close()

    assert payload["enabled"] is True
    assert payload["domain_overrides"] == {"jobs": {"percentage": 25, "enabled": False}}


async def test_each_config_version_says_what_share_a_domain_got(
        conn: asyncpg.Connection) -> None:
    before = await conn.fetchval("SELECT max(id) FROM webhook_routing_config")
    await conn.execute("SELECT update_routing_percentage(10, 'hold', 'property')")
    await conn.execute("SELECT set_routing_enabled(false, 'jobs 5xx', 'jobs')")
    after = await conn.fetchval("SELECT max(id) FROM webhook_routing_config")

    share = "SELECT webhook_routing_domain_percentage($1, $2)::float8"
    assert [await conn.fetchval(share, before, d) for d in ("jobs", "property")] == [25, 25]
    assert [await conn.fetchval(share, after, d) for d in ("jobs", "property")] == [0, 10]
    assert await conn.fetchval(share, after, "mobility") == 0
