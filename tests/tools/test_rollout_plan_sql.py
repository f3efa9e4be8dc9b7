"""The rollout plan's SQL functions: each transition, its refusals, history and NOTIFY."""

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


async def _plan(conn: asyncpg.Connection) -> asyncpg.Record:
    return await conn.fetchrow("SELECT * FROM webhook_rollout_plan_current")


async def _config(conn: asyncpg.Connection) -> asyncpg.Record:
    return await conn.fetchrow("SELECT * FROM webhook_routing_config "
                               "ORDER BY created_at DESC LIMIT 1")


async def _set_plan(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT set_rollout_plan('{10,25,50,100}', '4 hours', 'rollout day')")


async def test_setting_a_plan_starts_its_first_step(conn: asyncpg.Connection) -> None:
    await _set_plan(conn)

    plan, config = await _plan(conn), await _config(conn)
    assert (plan["state"], plan["current_step"], plan["action"]) == ("running", 1, "set")
    assert (float(config["percentage"]), config["enabled"]) == (10.0, True)


async def test_promotion_moves_to_the_next_step(conn: asyncpg.Connection) -> None:
    await _set_plan(conn)

    assert await conn.fetchval("SELECT promote_rollout_plan('looks good')") is True

    plan, config = await _plan(conn), await _config(conn)
    assert (plan["state"], plan["current_step"]) == ("running", 2)
    assert float(config["percentage"]) == 25.0


async def test_the_last_promotion_finishes_the_plan(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT set_rollout_plan('{50,100}', '0', 'short day')")
    await conn.execute("SELECT promote_rollout_plan('go')")

    assert (await _plan(conn))["state"] == "done"
    with pytest.raises(asyncpg.InvalidParameterValueError, match="the rollout plan is done"):
        await conn.execute("SELECT promote_rollout_plan('again')")


async def test_promotion_keeps_a_domain_taken_back_on_its_own(conn: asyncpg.Connection) -> None:
    await _set_plan(conn)
    await conn.execute("SELECT set_routing_enabled(false, 'jobs 5xx', 'jobs')")
    await conn.execute("SELECT promote_rollout_plan('others fine')")

    rows = await conn.fetch("SELECT domain, percentage, enabled FROM webhook_routing_domains")

    assert {r["domain"]: r["enabled"] for r in rows} == {
        "jobs": False, "marketplace": True, "property": True}
    assert {float(r["percentage"]) for r in rows if r["domain"] != "jobs"} == {25.0}


async def test_a_stale_expected_version_promotes_nothing(conn: asyncpg.Connection) -> None:
    await _set_plan(conn)
    seen = (await _plan(conn))["id"]
    await conn.execute("SELECT promote_rollout_plan('first worker', $1)", seen)

    assert await conn.fetchval("SELECT promote_rollout_plan('second worker', $1)", seen) is False
    assert (await _plan(conn))["current_step"] == 2


async def test_two_racing_promoters_of_one_version_promote_once(database_url: str) -> None:
    setup = await connect(database_url)
    try:
        await _set_plan(setup)
        seen = (await _plan(setup))["id"]
    finally:
        await setup.close()

    async def promote(worker: str) -> bool:
        conn = await connect(database_url)
        try:
            async with conn.transaction():
                await conn.execute("SELECT set_config('trafficlight.actor', $1, true)", worker)
                return bool(await conn.fetchval("SELECT promote_rollout_plan($1, $2)",
                                                f"{worker} judged it", seen))
        finally:
            await conn.close()

    results = await asyncio.gather(*(promote(f"worker-{i}") for i in range(4)))

    assert sorted(results) == [False, False, False, True]
    check = await connect(database_url)
    try:
        assert (await _plan(check))["current_step"] == 2
        assert await check.fetchval(
            "SELECT count(*) FROM webhook_rollout_plan WHERE action = 'promote'") == 1
    finally:
        await check.close()


async def test_pause_and_resume_restart_the_bake(conn: asyncpg.Connection) -> None:
    await _set_plan(conn)
    started = (await _plan(conn))["step_started_at"]
    await conn.execute("SELECT pause_rollout_plan('investigating')")
    assert (await _plan(conn))["state"] == "paused"
    with pytest.raises(asyncpg.InvalidParameterValueError, match="only a running plan"):
        await conn.execute("SELECT promote_rollout_plan('too early')")

    await conn.execute("SELECT resume_rollout_plan('all clear')")

    plan = await _plan(conn)
    assert plan["state"] == "running"
    assert plan["step_started_at"] > started


async def test_abort_sends_every_domain_back_to_legacy(conn: asyncpg.Connection) -> None:
    await _set_plan(conn)

    await conn.execute("SELECT abort_rollout_plan('unified is wrong')")

    config = await _config(conn)
    assert (await _plan(conn))["state"] == "aborted"
    assert config["enabled"] is False
    assert config["notes"] == "rollout plan aborted: unified is wrong"
    with pytest.raises(asyncpg.InvalidParameterValueError, match="only a paused plan"):
        await conn.execute("SELECT resume_rollout_plan('oops')")


async def test_history_records_who_and_why(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT set_config('trafficlight.actor', 'alice', false)")
    await _set_plan(conn)
    await conn.execute("SELECT pause_rollout_plan('lunch')")

    rows = await conn.fetch("SELECT action, notes, created_by FROM webhook_rollout_plan "
                            "ORDER BY id")

    assert [tuple(r) for r in rows] == [("set", "rollout day", "alice"),
                                        ("pause", "lunch", "alice")]


@pytest.mark.parametrize(("steps", "bake", "message"), [
    ("{}", "1h", "at least one step"),
    ("{10,5}", "1h", "steps must rise: 5 after 10"),
    ("{0,50}", "1h", r"within \(0, 100\]"),
    ("{50,101}", "1h", r"within \(0, 100\]"),
    ("{10,50}", "-1h", "bake must be a duration"),
    ("{10.001,10.004}", "1h", "steps must rise: 10 after 10"),
])
async def test_a_malformed_plan_is_refused(conn: asyncpg.Connection, steps: str, bake: str,
                                           message: str) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match=message):
        await conn.execute(
            "SELECT set_rollout_plan($1::text::numeric[], $2::text::interval, 'x')",
            steps, bake)


@pytest.mark.parametrize("function", ["promote", "pause", "resume", "abort"])
async def test_changes_without_a_plan_are_refused(conn: asyncpg.Connection, function: str) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match="rollout plan"):
        await conn.execute(f"SELECT {function}_rollout_plan('x')")


async def test_an_empty_reason_is_refused(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match="a reason is required"):
        await conn.execute("SELECT set_rollout_plan('{10,100}', '1h', ' ')")


async def test_plan_history_cannot_be_rewritten(conn: asyncpg.Connection) -> None:
    await _set_plan(conn)
    with pytest.raises(asyncpg.CheckViolationError, match="append-only"):
        await conn.execute("UPDATE webhook_rollout_plan SET state = 'done'")


async def test_each_change_is_announced(conn: asyncpg.Connection, database_url: str) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await connect(database_url)
    await listener.add_listener("webhook_rollout_plan", lambda *a: received.put_nowait(a[3]))
    try:
        await _set_plan(conn)
        await conn.execute("SELECT promote_rollout_plan('go')")
        first = json.loads(await asyncio.wait_for(received.get(), timeout=30))
        second = json.loads(await asyncio.wait_for(received.get(), timeout=30))
    finally:
        await listener.close()

    assert (first["action"], first["current_step"], first["bake_s"]) == ("set", 1, 14400)
    assert (second["action"], second["step_pct"], second["state"]) == ("promote", 25, "running")
