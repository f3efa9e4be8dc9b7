"""The sink's verdict upsert keeps when a verdict began (`verdict_since`), over real Postgres."""

from __future__ import annotations

import asyncpg

from trafficlight.base.db import connect
from trafficlight.streams.sink import _UPSERT_VERDICT

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
