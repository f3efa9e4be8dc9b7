"""The sink's verdict upsert keeps when a verdict began (`verdict_since`), over real Postgres."""

from __future__ import annotations

import asyncpg
import orjson

from trafficlight.base.db import connect
from trafficlight.streams.sink import _UPSERT_VERDICT, SinkBatch

START_S = 1_795_867_200.0


def _row(end_s: float, verdict: str, decision: str) -> tuple[object, ...]:
    return ("jobs", "unified", START_S, end_s, 100, 0, 0.0, 90.0, 200.0, 300.0, verdict,
            decision, [])


async def _since(conn: asyncpg.Connection) -> float:
    return float(await conn.fetchval(
        "SELECT extract(epoch FROM verdict_since) FROM webhook_routing_verdicts"))


async def test_a_verdict_keeps_the_time_it_began_while_heartbeats_repeat_it(
        database_url: str) -> None:
    conn = await connect(database_url)
    try:
        # 1. First evaluation in the bucket: healthy since its own window end.
        await conn.execute(_UPSERT_VERDICT, *_row(START_S + 301, "healthy", "proceed"))
        assert await _since(conn) == START_S + 301
        # 2. Heartbeats repeat it: the row's window end moves on, the start stays.
        await conn.execute(_UPSERT_VERDICT, *_row(START_S + 305, "healthy", "proceed"))
        assert await _since(conn) == START_S + 301
        # 3. A change: critical since the evaluation that first said so.
        await conn.execute(_UPSERT_VERDICT, *_row(START_S + 307, "critical", "hold"))
        await conn.execute(_UPSERT_VERDICT, *_row(START_S + 309, "critical", "hold"))
        assert await _since(conn) == START_S + 307
    finally:
        await conn.close()


async def test_a_rollback_keeps_its_buckets_row_when_the_next_step_is_judged_in_it(
        database_url: str) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute(_UPSERT_VERDICT, *_row(START_S + 301, "critical", "rollback"))
        # The rollback starts a new step: its first evaluations hold, in the same bucket.
        await conn.execute(_UPSERT_VERDICT, *_row(START_S + 303, "insufficient_data", "hold"))
        row = await conn.fetchrow("SELECT verdict, decision, extract(epoch FROM window_end)"
                                  " AS end_s FROM webhook_routing_verdicts")
        assert (row["verdict"], row["decision"], row["end_s"]) == (
            "critical", "rollback", START_S + 301)
    finally:
        await conn.close()


def test_a_batch_keeps_a_rollback_over_a_later_verdict_of_its_bucket() -> None:
    batch = SinkBatch()
    for end_s, verdict, decision in ((START_S + 301, "critical", "rollback"),
                                     (START_S + 303, "insufficient_data", "hold")):
        row = _row(end_s, verdict, decision)
        batch.add_verdict(orjson.dumps(dict(zip(
            ("domain", "routed_to", "window_start", "window_end", "requests", "errors",
             "error_pct", "p50_ms", "p95_ms", "p99_ms", "verdict", "decision", "reasons"),
            row, strict=True))))

    [kept] = batch.verdicts.values()
    assert (kept.window_end, kept.decision) == (START_S + 301, "rollback")
