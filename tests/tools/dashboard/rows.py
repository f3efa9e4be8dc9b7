"""Rows to show on the dashboard, written as the workers' sink writes them."""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class RunningDashboard:
    url: str
    token: str

async def insert_bucket(db: asyncpg.Connection, domain: str, routed_to: str, *,
                        start_s: float, requests: int, errors: int, p95_ms: float,
                        bucket_s: float = 10) -> None:
    """One bucket aggregate, as the workers' sink writes it."""
    await db.execute(
        """INSERT INTO webhook_routing_windows (domain, routed_to, window_start, window_end,
               requests, errors, error_pct, p50_ms, p95_ms, p99_ms)
           VALUES ($1, $2, to_timestamp($3), to_timestamp($4), $5, $6, $7, $8, $9, $10)""",
        domain, routed_to, start_s, start_s + bucket_s, requests, errors,
        100.0 * errors / requests, p95_ms / 2, p95_ms, p95_ms * 1.5,
    )


async def insert_verdict(db: asyncpg.Connection, domain: str, routed_to: str, *,
                         end_s: float, requests: int, errors: int, p95_ms: float,
                         verdict: str, decision: str, window_s: float = 300) -> None:
    """One evaluation, as the workers' sink writes it."""
    await db.execute(
        """INSERT INTO webhook_routing_verdicts (domain, routed_to, window_start, window_end,
               requests, errors, error_pct, p50_ms, p95_ms, p99_ms, verdict, decision, reasons)
           VALUES ($1, $2, to_timestamp($3), to_timestamp($4), $5, $6, $7, $8, $9, $10,
                   $11, $12, $13)""",
        domain, routed_to, end_s - window_s, end_s, requests, errors,
        100.0 * errors / requests, p95_ms / 2, p95_ms, p95_ms * 1.5, verdict, decision,
        [f"error {100.0 * errors / requests:.2f}%"],
    )


def now_s() -> float:
    return time.time()
