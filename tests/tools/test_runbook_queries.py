"""The operators' runbook queries, verbatim, against a migrated database holding logs."""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from trafficlight.base.db import connect

# (domain, routed_to, [latencies], errors)
_TRAFFIC = [
    ("jobs", "legacy", [100.0 + i for i in range(40)], 0),
    ("jobs", "unified", [80.0 + 2 * i for i in range(20)], 2),
    ("marketplace", "legacy", [300.0, 320.0, 340.0, 360.0], 1),
]


def _percentile_cont(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@pytest.fixture
async def conn_with_logs(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(database_url)
    now = datetime.now(UTC)
    rows = []
    for domain, target, latencies, errors in _TRAFFIC:
        for i, latency in enumerate(latencies):
            failed = i < errors
            rows.append((
                f"{domain}-{target}-{i}", now - timedelta(minutes=1 + i % 50), domain, target,
                latency, "error" if failed else "success", 502 if failed else 200,
                "upstream 502" if failed else None,
            ))
    # Two hours ago: outside the view's last hour, inside a 3-hour summary.
    rows.append(("old-1", now - timedelta(hours=2), "jobs", "unified", 9000.0, "error", 500, "x"))
    await conn.executemany(
        "INSERT INTO webhook_routing_logs (event_id, created_at, domain, routed_to, "
        "response_time_ms, status, http_status, error_message) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        rows,
    )
    yield conn
    await conn.close()


async def test_stats_view_summarises_the_last_hour(conn_with_logs: asyncpg.Connection) -> None:
    rows = await conn_with_logs.fetch(
        "SELECT * FROM webhook_routing_stats ORDER BY domain, routed_to;"
    )

    assert [(r["domain"], r["routed_to"]) for r in rows] == [
        ("jobs", "legacy"), ("jobs", "unified"), ("marketplace", "legacy"),
    ]
    for row, (_, _, latencies, errors) in zip(rows, _TRAFFIC, strict=True):
        assert row["requests"] == len(latencies)
        assert float(row["avg_ms"]) == pytest.approx(statistics.fmean(latencies), abs=0.01)
        assert float(row["p95_ms"]) == pytest.approx(_percentile_cont(latencies, 0.95), abs=0.01)
        assert float(row["error_pct"]) == pytest.approx(100 * errors / len(latencies), abs=0.001)


async def test_per_target_summary_over_the_last_hours(conn_with_logs: asyncpg.Connection) -> None:
    rows = await conn_with_logs.fetch("""
        SELECT domain, routed_to,
               COUNT(*) AS requests,
               AVG(response_time_ms) AS avg_ms,
               PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY response_time_ms) AS p95_ms,
               ROUND(100.0 * SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) / COUNT(*), 2)
                   AS error_rate
        FROM webhook_routing_logs
        WHERE created_at > NOW() - INTERVAL '3 hours'
        GROUP BY domain, routed_to
        ORDER BY domain, routed_to;
    """)

    jobs_unified = rows[1]
    assert (jobs_unified["domain"], jobs_unified["routed_to"]) == ("jobs", "unified")
    assert jobs_unified["requests"] == 21
    assert float(jobs_unified["error_rate"]) == pytest.approx(100 * 3 / 21, abs=0.01)


async def test_health_has_a_row_per_rollout_domain_and_target(
    conn_with_logs: asyncpg.Connection,
) -> None:
    rows = await conn_with_logs.fetch("SELECT * FROM check_routing_health();")

    assert [(r["domain"], r["routed_to"]) for r in rows] == [
        ("jobs", "unified"), ("jobs", "legacy"),
        ("marketplace", "unified"), ("marketplace", "legacy"),
        ("property", "unified"), ("property", "legacy"),
    ]
    assert {r["verdict"] for r in rows} == {"insufficient_data"}
    assert {r["decision"] for r in rows} == {"hold"}


async def test_health_shows_the_latest_verdict(conn_with_logs: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    insert = (
        "INSERT INTO webhook_routing_verdicts (domain, routed_to, window_start, window_end, "
        "requests, errors, error_pct, p50_ms, p95_ms, p99_ms, verdict, decision, reasons) "
        "VALUES ('jobs', 'unified', $1, $2, $3, $4, $5, 90, $6, 400, $7, $8, $9)"
    )
    await conn_with_logs.execute(insert, now - timedelta(minutes=6), now - timedelta(minutes=1),
                                 1000, 0, 0, 250.0, "healthy", "proceed", [])
    await conn_with_logs.execute(insert, now - timedelta(minutes=5), now, 1000, 60, 6.0, 260.0,
                                 "critical", "rollback", ["error rate 6.00% > 0.5%"])

    rows = await conn_with_logs.fetch(
        "SELECT * FROM check_routing_health() WHERE domain = 'jobs' AND routed_to = 'unified'"
    )

    assert len(rows) == 1
    assert (rows[0]["verdict"], rows[0]["decision"]) == ("critical", "rollback")
    assert (rows[0]["requests"], rows[0]["errors"], rows[0]["p95_ms"]) == (1000, 60, 260.0)
    assert rows[0]["reasons"] == ["error rate 6.00% > 0.5%"]


async def test_runbook_changes_and_current_config_query(conn_with_logs: asyncpg.Connection) -> None:
    await conn_with_logs.execute(
        "SELECT update_routing_percentage(25.00, 'Scaling to 25% after successful 10% test');"
    )
    await conn_with_logs.execute(
        "SELECT set_routing_enabled(false, 'Emergency rollback - high error rate');"
    )

    row = await conn_with_logs.fetchrow(
        "SELECT percentage, enabled, domains FROM webhook_routing_config "
        "ORDER BY created_at DESC LIMIT 1;"
    )

    assert (row["percentage"], row["enabled"]) == (25, False)
    assert row["domains"] == ["jobs", "marketplace", "property"]


async def test_time_range_summaries_can_use_the_logs_index(
    conn_with_logs: asyncpg.Connection,
) -> None:
    await conn_with_logs.execute("SET enable_seqscan = off")

    plan = "\n".join(r[0] for r in await conn_with_logs.fetch(
        "EXPLAIN SELECT domain, routed_to, count(*) FROM webhook_routing_logs "
        "WHERE created_at > now() - interval '1 hour' GROUP BY domain, routed_to"
    ))

    assert "webhook_routing_logs_time_domain_target_idx" in plan


async def test_health_figures_are_rounded_not_float_noise(
    conn_with_logs: asyncpg.Connection,
) -> None:
    now = datetime.now(UTC)
    await conn_with_logs.execute(
        "INSERT INTO webhook_routing_verdicts (domain, routed_to, window_start, window_end, "
        "requests, errors, error_pct, p50_ms, p95_ms, p99_ms, verdict, decision, reasons) "
        "VALUES ('jobs', 'unified', $1, $2, 600, 1, 0.16666666666, 90.30000000000001, "
        "123.45600000000002, 410.04999999999995, 'healthy', 'proceed', '{}')",
        now - timedelta(minutes=5), now)

    row = await conn_with_logs.fetchrow(
        "SELECT error_pct::text, p50_ms::text, p95_ms::text, p99_ms::text "
        "FROM check_routing_health() WHERE domain = 'jobs' AND routed_to = 'unified'")
    stats = await conn_with_logs.fetch(
        "SELECT avg_ms::text, p95_ms::text, error_pct::text FROM webhook_routing_stats")

    assert tuple(row) == ("0.167", "90.3", "123.5", "410.1")
    for figures in stats:
        for text in figures:
            assert len(text.partition(".")[2]) <= 3, figures
