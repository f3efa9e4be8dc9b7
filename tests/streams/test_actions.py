"""Actions through the real SQL functions: rollback once with evidence, opt-in promotion."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from pathlib import Path

import asyncpg

from tests.streams.worker_harness import (
    WorkerProcess,
    WorkerTopics,
    make_events,
    produce,
)
from trafficlight.base.db import connect
from trafficlight.streams.actions import Actions, RolloutPlan, promote, roll_back
from trafficlight.streams.verdicts import Verdict

CRITICAL = Verdict("jobs", "unified", 1_800_000_000.0, 1_800_000_005.0, 500, 25, 5.0, 110.0,
                   180.0, 240.0, "critical", "rollback", ("error rate 5.00% >= 0.5%",))


async def _config_rows(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM webhook_routing_config ORDER BY id")


async def test_a_rollback_verdict_disables_routing_once_with_its_evidence(
    database_url: str
) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT update_routing_percentage(10, 'start rollout')")

        first = await roll_back(conn, CRITICAL, "worker-a")
        second = await roll_back(conn, CRITICAL, "worker-b")

        rows = await _config_rows(conn)
    finally:
        await conn.close()
    assert (first, second) == (True, False)
    assert [r["enabled"] for r in rows] == [False, True, False]
    assert rows[-1]["created_by"] == "worker-a"
    assert rows[-1]["percentage"] == 10
    assert "jobs unified critical" in rows[-1]["notes"]
    assert "error 5.00% (25/500 requests), P95 180 ms" in rows[-1]["notes"]


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


async def test_the_rollout_plan_promotes_after_healthy_evaluations_and_never_while_disabled(
    database_url: str
) -> None:
    plan = RolloutPlan(steps_pct=(10, 25, 50), bake_s=0, healthy_evaluations=3)
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT update_routing_percentage(10, 'start rollout')")
        # Too few evaluations since the step began: no promotion yet.
        await _insert_verdicts(conn, "proceed", 2)
        assert await promote(conn, plan, "worker-a") is None
        # Three in a row per domain: promote to the next step.
        await _insert_verdicts(conn, "proceed", 1)
        assert await promote(conn, plan, "worker-a") == 25
        # Disabled (a rollback): never promoted, however healthy.
        await conn.execute("SELECT set_routing_enabled(false, 'rollback')")
        await _insert_verdicts(conn, "proceed", 3)
        assert await promote(conn, plan, "worker-a") is None
        rows = await _config_rows(conn)
    finally:
        await conn.close()
    assert [float(r["percentage"]) for r in rows] == [0, 10, 25, 25]
    assert rows[2]["created_by"] == "worker-a"


async def test_a_held_domain_blocks_promotion(database_url: str) -> None:
    plan = RolloutPlan(steps_pct=(10, 25), bake_s=0, healthy_evaluations=2)
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT update_routing_percentage(10, 'start rollout')")
        await _insert_verdicts(conn, "proceed", 2)
        await conn.execute("UPDATE webhook_routing_verdicts SET decision = 'hold'"
                           " WHERE domain = 'property'")

        assert await promote(conn, plan, "worker-a") is None
    finally:
        await conn.close()


async def test_worker_rolls_back_through_set_routing_enabled_end_to_end(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:10]
    topics = WorkerTopics(f"events-{suffix}", f"verdicts-{suffix}", f"worker-{suffix}")
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
            while await conn.fetchval("SELECT enabled FROM webhook_routing_config"
                                      " ORDER BY id DESC LIMIT 1"):
                assert time.monotonic() < deadline, worker.log_text()[-2000:]
                await asyncio.sleep(0.2)
            # Rollback verdicts keep coming for a while: still exactly one disable.
            await asyncio.sleep(2)
            rows = await _config_rows(conn)
        finally:
            worker.stop()
    finally:
        await conn.close()
    assert [r["enabled"] for r in rows] == [False, True, False], worker.log_text()[-2000:]
    assert rows[-1]["created_by"] == "test-worker"
    assert rows[-1]["notes"].startswith("automatic rollback: jobs unified critical")
