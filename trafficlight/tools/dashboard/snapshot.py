"""What the dashboard shows, read from Postgres in one pass: config, figures, verdict timeline.

The snapshot is a plain JSON-ready dict so the same value feeds `/api/state`, every SSE
client and the tests. Times are float epoch seconds, as in SPEC "Verdict".
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import orjson

from trafficlight.streams.plan_store import plan_status
from trafficlight.streams.thresholds import ThresholdSet

#: Config rows shown as history.
HISTORY_ROWS = 50
#: Verdict changes shown in the timeline.
TIMELINE_ROWS = 100

_CONFIG_COLUMNS = """
    id, percentage::float8 AS percentage, enabled, domains, protected_domains, notes,
    created_by, extract(epoch FROM created_at)::float8 AS created_at,
    domain_overrides::text AS domain_overrides
"""

_HISTORY = f"""
SELECT {_CONFIG_COLUMNS} FROM webhook_routing_config
ORDER BY created_at DESC, id DESC LIMIT $1
"""

# Each rollout domain's setting in force (its own, or the all-domains one).
_DOMAINS = """
SELECT domain, percentage::float8 AS percentage, enabled, overridden
FROM webhook_routing_domains ORDER BY domain
"""

# Bucket aggregates as the workers' sink upserts them; the open bucket is included, so the
# charts move while it fills.
_SERIES = """
SELECT domain, routed_to,
       extract(epoch FROM window_start)::float8 AS window_start,
       extract(epoch FROM window_end)::float8 AS window_end,
       requests, errors, error_pct::float8 AS error_pct, p95_ms
FROM webhook_routing_windows
WHERE window_end > to_timestamp($1)
ORDER BY window_start
"""

_LATEST = """
SELECT domain, routed_to,
       extract(epoch FROM window_start)::float8 AS window_start,
       extract(epoch FROM window_end)::float8 AS window_end,
       requests, errors, error_pct::float8 AS error_pct, p50_ms, p95_ms, p99_ms,
       verdict, decision, reasons
FROM check_routing_health()
"""

# Only the evaluations whose verdict or decision differs from the one before, per target:
# the heartbeat verdicts in between say nothing new. Each at the evaluation that first had it
# (`verdict_since`): a stored row keeps one 10 s bucket's latest evaluation, whose window end
# moves on with every heartbeat.
_VERDICT_CHANGES = """
SELECT domain, routed_to, window_end, requests, error_pct, p95_ms, verdict, decision, reasons
FROM (
    SELECT domain, routed_to,
           extract(epoch FROM coalesce(verdict_since, window_end))::float8 AS window_end,
           requests, error_pct::float8 AS error_pct, p95_ms, verdict, decision, reasons,
           lag(verdict) OVER w AS previous_verdict, lag(decision) OVER w AS previous_decision
    FROM webhook_routing_verdicts
    WHERE window_end > to_timestamp($1)
    WINDOW w AS (PARTITION BY domain, routed_to ORDER BY window_end)
) changes
WHERE previous_verdict IS DISTINCT FROM verdict OR previous_decision IS DISTINCT FROM decision
ORDER BY window_end DESC
LIMIT $2
"""


def config_change_kind(previous: dict[str, Any] | None, row: dict[str, Any]) -> str:
    """How a config row changed the rollout: what the timeline marks it as."""
    if previous is None:
        return "initial"
    if previous["enabled"] and not row["enabled"]:
        return "rollback"
    if row["enabled"] and not previous["enabled"]:
        return "enable"
    # One domain taken back or put back on its own (a per-domain setting).
    was, now = _domains_on(previous), _domains_on(row)
    if was - now:
        return "rollback"
    if now - was:
        return "enable"
    if row["percentage"] > previous["percentage"]:
        return "promotion"
    if row["percentage"] < previous["percentage"]:
        return "reduction"
    return "note"


def _domains_on(row: dict[str, Any]) -> set[str]:
    """The rollout domains routing in a history row, per-domain settings applied."""
    overrides = row.get("domain_overrides") or {}
    return {d for d in row.get("domains") or ()
            if overrides.get(d, {}).get("enabled", row["enabled"])}


def thresholds_by_domain(thresholds: ThresholdSet,
                         domains: list[str]) -> dict[str, dict[str, float]]:
    """The four SPEC limits per domain, overrides applied: the lines the charts draw."""
    limits = {}
    for domain in domains:
        t = thresholds.for_domain(domain)
        limits[domain] = {
            "warning_error_pct": t.warning_error_pct, "critical_error_pct": t.critical_error_pct,
            "warning_p95_ms": t.warning_p95_ms, "critical_p95_ms": t.critical_p95_ms,
        }
    return limits


def _rate(requests: int, start_s: float, end_s: float, now_s: float) -> float:
    """Requests per second of a bucket; an open bucket counts only the time elapsed so far."""
    elapsed_s = max(1.0, min(end_s, now_s) - start_s)
    return requests / elapsed_s


Series = dict[str, dict[str, dict[str, list[float | None]]]]


def _series(rows: list[asyncpg.Record], now_s: float) -> Series:
    series: Series = {}
    for row in rows:
        target = series.setdefault(row["domain"], {}).setdefault(
            row["routed_to"], {"t": [], "rps": [], "error_pct": [], "p95_ms": []}
        )
        target["t"].append(row["window_start"])
        target["rps"].append(round(_rate(row["requests"], row["window_start"],
                                         row["window_end"], now_s), 3))
        target["error_pct"].append(row["error_pct"])
        target["p95_ms"].append(row["p95_ms"])
    return series


def covered_rate(requests: int, start_s: float, end_s: float, now_s: float,
                 first_bucket_s: float | None) -> float:
    """Requests per second over the part of a window the buckets actually cover: early in a
    rollout a 5 min window holds 20 s of traffic, and requests / 300 s would read 15x low."""
    covered_from_s = start_s if first_bucket_s is None else max(start_s, first_bucket_s)
    return _rate(requests, covered_from_s, end_s, now_s)


def _latest(rows: list[asyncpg.Record], now_s: float,
            series: dict[str, dict[str, dict[str, list[Any]]]]) -> list[dict[str, Any]]:
    latest = []
    for row in rows:
        item = dict(row)
        item["reasons"] = list(row["reasons"] or [])
        start, end = row["window_start"], row["window_end"]
        buckets = series.get(row["domain"], {}).get(row["routed_to"], {}).get("t", [])
        first_bucket_s = next((t for t in buckets if start is not None and t >= start), None)
        item["rps"] = None if start is None else round(
            covered_rate(row["requests"], start, end, now_s, first_bucket_s), 3)
        latest.append(item)
    return latest


async def read_snapshot(conn: asyncpg.Connection, *, history_s: float,
                        thresholds: ThresholdSet) -> dict[str, Any]:
    """Everything the page draws, as of now: one consistent read (a repeatable-read
    transaction), so the figures, the charts and the timeline never disagree about a verdict
    the sink wrote between two of the queries."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _read_snapshot(conn, history_s=history_s, thresholds=thresholds)


async def _read_snapshot(conn: asyncpg.Connection, *, history_s: float,
                         thresholds: ThresholdSet) -> dict[str, Any]:
    now_s = time.time()
    since_s = now_s - history_s
    history = [dict(r, domain_overrides=orjson.loads(r["domain_overrides"] or "{}"))
               for r in await conn.fetch(_HISTORY, HISTORY_ROWS)]
    chronological = list(reversed(history))
    for previous, row in zip([None, *chronological], chronological, strict=False):
        row["kind"] = config_change_kind(previous, row)
    changes = await conn.fetch(_VERDICT_CHANGES, since_s, TIMELINE_ROWS)
    # The same buckets tell how much of each latest verdict's window has traffic at all.
    series = _series(await conn.fetch(_SERIES, since_s), now_s)
    return {
        "now": now_s,
        "history_s": history_s,
        "config": history[0] if history else None,
        "history": history,
        "thresholds": thresholds_by_domain(
            thresholds, history[0]["domains"] if history else []),
        "series": series,
        "latest": _latest(await conn.fetch(_LATEST), now_s, series),
        "timeline": [dict(r, reasons=list(r["reasons"] or [])) for r in changes],
        "domains": [dict(r) for r in await conn.fetch(_DOMAINS)],
        "plan": await plan_status(conn),
    }
