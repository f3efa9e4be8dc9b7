"""Actions through the real SQL functions: rollback once with evidence, the plan's promotion."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import asyncpg

from tests.streams.worker_harness import (
    WorkerProcess,
    WorkerTopics,
    make_events,
    produce,
)
from trafficlight.base.db import connect
from trafficlight.streams.actions import Actions, RollbackScope, promote, roll_back
from trafficlight.streams.verdicts import Verdict

CRITICAL = Verdict("jobs", "unified", 1_800_000_000.0, 1_800_000_005.0, 500, 25, 5.0, 110.0,
                   180.0, 240.0, "critical", "rollback", ("error rate 5.00% >= 0.5%",))


async def _config_rows(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM webhook_routing_config ORDER BY id")


async def _domains(conn: asyncpg.Connection) -> dict[str, bool]:
    rows = await conn.fetch("SELECT domain, enabled FROM webhook_routing_domains")
    return {row["domain"]: row["enabled"] for row in rows}


async def test_a_rollback_verdict_takes_back_its_domain_once_with_its_evidence(
    database_url: str
) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT update_routing_percentage(10, 'start rollout')")

        first = await roll_back(conn, CRITICAL, "worker-a")
        second = await roll_back(conn, CRITICAL, "worker-b")

        rows = await _config_rows(conn)
        domains = await _domains(conn)
    finally:
        await conn.close()
    assert (first, second) == (True, False)
    assert len(rows) == 3
    assert domains == {"jobs": False, "marketplace": True, "property": True}
    assert rows[-1]["created_by"] == "worker-a"
    assert rows[-1]["percentage"] == 10
    assert "jobs unified critical" in rows[-1]["notes"]
    assert "error 5.00% (25/500 requests), P95 180 ms" in rows[-1]["notes"]


async def test_a_rollback_scoped_to_all_disables_every_domain_once(database_url: str) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT update_routing_percentage(10, 'start rollout')")

        first = await roll_back(conn, CRITICAL, "worker-a", RollbackScope.ALL)
        second = await roll_back(conn, CRITICAL, "worker-b", RollbackScope.ALL)

        rows = await _config_rows(conn)
    finally:
        await conn.close()
    assert (first, second) == (True, False)
    assert [r["enabled"] for r in rows] == [False, True, False]


async def test_a_rollback_pauses_the_running_plan_naming_the_domain(database_url: str) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT set_rollout_plan('{10,25,50}', '0', 'rollout day')")

        await roll_back(conn, CRITICAL, "worker-a")

        plan = await conn.fetchrow("SELECT state, notes FROM webhook_rollout_plan_current")
    finally:
        await conn.close()
    assert plan["state"] == "paused"
    assert plan["notes"].startswith("paused by the rollback of jobs: automatic rollback: jobs")


def test_only_fresh_critical_evidence_is_acted_on() -> None:
    actions = Actions("postgresql://unused", "worker-a")
    recovering = Verdict(**{**CRITICAL.to_dict(), "verdict": "healthy",
                            "reasons": ["recovering: healthy 1/3"]})
    no_traffic = Verdict(**{**CRITICAL.to_dict(), "verdict": "insufficient_data",
                            "reasons": ["unified: insufficient data"]})
    legacy = Verdict(**{**CRITICAL.to_dict(), "routed_to": "legacy"})

    actions.observe([recovering, no_traffic, legacy, CRITICAL])

    assert actions._queue.qsize() == 1
    assert actions._queue.get_nowait() is CRITICAL


async def _insert_verdicts(conn: asyncpg.Connection, decision: str, count: int) -> None:
    for domain in ("jobs", "marketplace", "property"):
        for i in range(count):
            await conn.execute(
                "INSERT INTO webhook_routing_verdicts (domain, routed_to, window_start,"
                " window_end, requests, errors, error_pct, verdict, decision)"
                " VALUES ($1, 'unified', to_timestamp($2), to_timestamp($2 + 300), 100, 0, 0,"
                " 'healthy', $3)", domain, time.time() + i, decision)


async def test_the_stored_plan_promotes_after_proceed_verdicts_and_never_while_disabled(
    database_url: str
) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT set_rollout_plan('{10,25,50}', '0', 'rollout day', 3)")
        # Too few proceed verdicts since the step began: no promotion yet.
        await _insert_verdicts(conn, "proceed", 2)
        assert await promote(conn, "worker-a") is None
        # Three in a row per domain: promote to the next step.
        await _insert_verdicts(conn, "proceed", 1)
        assert await promote(conn, "worker-a") == 25
        # Disabled (a rollback of every domain): never promoted, however healthy.
        await conn.execute("SELECT set_routing_enabled(false, 'rollback')")
        await _insert_verdicts(conn, "proceed", 3)
        assert await promote(conn, "worker-a") is None
        rows = await _config_rows(conn)
        plan = await conn.fetchrow("SELECT * FROM webhook_rollout_plan_current")
    finally:
        await conn.close()
    assert [float(r["percentage"]) for r in rows] == [0, 10, 25, 25]
    assert rows[2]["created_by"] == "worker-a"
    assert (plan["current_step"], plan["created_by"]) == (2, "worker-a")
    assert "proceed verdicts in a row: jobs 3, marketplace 3, property 3" in plan["notes"]


async def test_a_held_domain_blocks_promotion(database_url: str) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT set_rollout_plan('{10,25}', '0', 'rollout day', 2)")
        await _insert_verdicts(conn, "proceed", 2)
        await conn.execute("UPDATE webhook_routing_verdicts SET decision = 'hold'"
                           " WHERE domain = 'property'")

        assert await promote(conn, "worker-a") is None
    finally:
        await conn.close()


async def test_a_domain_taken_back_alone_neither_blocks_nor_counts(database_url: str) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT set_rollout_plan('{10,25}', '0', 'rollout day', 2)")
        await conn.execute("SELECT set_routing_enabled(false, 'jobs 5xx', 'jobs')")
        await _insert_verdicts(conn, "proceed", 2)
        await conn.execute("UPDATE webhook_routing_verdicts SET decision = 'rollback'"
                           " WHERE domain = 'jobs'")

        assert await promote(conn, "worker-a") == 25
        assert await _domains(conn) == {"jobs": False, "marketplace": True, "property": True}
    finally:
        await conn.close()


async def test_two_workers_racing_promote_once(database_url: str) -> None:
    setup = await connect(database_url)
    try:
        await setup.execute("SELECT set_rollout_plan('{10,25,50}', '0', 'rollout day', 2)")
        await _insert_verdicts(setup, "proceed", 2)
    finally:
        await setup.close()

    async def worker(name: str) -> float | None:
        conn = await connect(database_url)
        try:
            return await promote(conn, name)
        finally:
            await conn.close()

    results = await asyncio.gather(worker("worker-a"), worker("worker-b"))

    assert sorted(results, key=lambda r: r is None) == [25, None]
    check = await connect(database_url)
    try:
        assert await check.fetchval("SELECT current_step FROM webhook_rollout_plan_current") == 2
    finally:
        await check.close()


async def test_worker_rolls_back_through_set_routing_enabled_end_to_end(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    topics = WorkerTopics.fresh()
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT update_routing_percentage(10, 'start rollout')")
        t0 = float(math.floor(time.time()) - 120)
        healthy = make_events(t0, 6000, per_s=100)
        legacy = make_events(t0, 6000, per_s=100, routed_to="legacy")
        failing = make_events(t0 + 60, 1000, per_s=100, error_every=20, id_prefix="bad")
        events = sorted(healthy + legacy + failing, key=lambda e: e["ts"])
        worker = WorkerProcess(kafka_bootstrap, topics, tmp_path / "worker.log",
                               database_url=database_url)
        try:
            await produce(kafka_bootstrap, topics.events, events)

            deadline = time.monotonic() + 60
            while await conn.fetchval("SELECT enabled FROM webhook_routing_domains"
                                      " WHERE domain = 'jobs'"):
                assert time.monotonic() < deadline, worker.log_text()[-2000:]
                await asyncio.sleep(0.2)
            # Rollback verdicts keep coming for a while: still exactly one disable.
            await asyncio.sleep(2)
            rows = await _config_rows(conn)
        finally:
            worker.stop()
    finally:
        await conn.close()
    assert len(rows) == 3, worker.log_text()[-2000:]
    assert json.loads(rows[-1]["domain_overrides"]) == {
        "jobs": {"enabled": False, "percentage": 10}}
    assert rows[-1]["created_by"] == "test-worker"
    assert rows[-1]["notes"].startswith("automatic rollback: jobs unified critical")


async def test_a_worker_promotes_the_stored_plan_on_healthy_traffic_end_to_end(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    topics = WorkerTopics.fresh()
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT set_rollout_plan('{10,25}', '0', 'rollout day', 3)")
        t0 = float(math.floor(time.time()) - 120)
        events = sorted(
            (event for domain in ("jobs", "marketplace", "property")
             for target in ("unified", "legacy")
             # 100 req/s for 2 min: enough clean requests to SHOW each target below the
             # warning rates (healthy needs positive evidence, not just no errors yet).
             for event in make_events(t0, 12000, domain=domain, per_s=100, routed_to=target)),
            key=lambda e: e["ts"])
        worker = WorkerProcess(kafka_bootstrap, topics, tmp_path / "worker.log",
                               database_url=database_url)
        try:
            await produce(kafka_bootstrap, topics.events, events)

            deadline = time.monotonic() + 120
            while await conn.fetchval("SELECT current_step FROM webhook_rollout_plan_current") == 1:
                assert time.monotonic() < deadline, worker.log_text()[-2000:]
                await asyncio.sleep(0.5)
            plan = await conn.fetchrow("SELECT * FROM webhook_rollout_plan_current")
            config = await conn.fetchrow("SELECT * FROM webhook_routing_config "
                                         "ORDER BY id DESC LIMIT 1")
        finally:
            worker.stop()
    finally:
        await conn.close()
    assert (plan["state"], plan["created_by"]) == ("done", "test-worker")
    assert float(config["percentage"]) == 25 and config["enabled"] is True
    assert "proceed verdicts in a row: jobs 3, marketplace 3, property 3" in plan["notes"]
