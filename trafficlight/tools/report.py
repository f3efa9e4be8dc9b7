"""The rollout day's results, step by step, computed in SQL from the logs and config history.

Each ``webhook_routing_config`` row in force during ``[since, until)`` is a step, from its
``created_at`` (or ``since``) to the next row's (or ``until``). Per step and target, over the
step's rollout domains: requests, errors, error rate and exact P95 (``percentile_cont``), checked
against the runbook's success criteria, which are the thresholds file's warning limits (by
default unified error rate < 0.1 %, P95 < 2000 ms; a domain's overrides apply to its rows):

- no unified requests in the step: criteria ``no_traffic``, decision ``hold`` (nothing to judge);
- unified meets both criteria: ``met``, ``proceed``;
- otherwise: ``missed``, ``rollback``.

This is the report's own rule over a whole step, not the workers' windowed verdicts: `Criteria`
names what it checks; the decision is what those criteria call for.

The step's ``outcome`` says what the operators actually did next (the next row's notes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import asyncpg

from trafficlight.base.db import connect
from trafficlight.streams.events import ROUTED_TO, Target
from trafficlight.streams.thresholds import Thresholds, ThresholdSet
from trafficlight.streams.verdicts import Decision

#: Plain str keys (JSON objects need them), unified first.
TARGETS: tuple[str, ...] = tuple(t.value for t in ROUTED_TO)

#: Chart buckets tried in order: the first giving at most this many points per line is used.
MAX_CHART_POINTS = 150
_CHART_BUCKETS = [timedelta(minutes=m) for m in (1, 5, 10, 15, 30, 60, 120, 360, 1440)]

_STEPS_CTE = """
    WITH history AS (
        SELECT id, percentage, enabled, domains, notes, created_by, created_at,
               lead(created_at) OVER w AS next_at,
               lead(notes) OVER w AS next_notes,
               lead(created_by) OVER w AS next_by
        FROM webhook_routing_config
        WINDOW w AS (ORDER BY created_at, id)
    ), steps AS (
        SELECT id, percentage, enabled, domains, notes, created_by, next_notes, next_by,
               greatest(created_at, $1) AS step_start,
               least(coalesce(next_at, 'infinity'), $2) AS step_end
        FROM history
        WHERE created_at < $2 AND coalesce(next_at, 'infinity') > $1
    )
"""

_STEPS_SQL = _STEPS_CTE + "SELECT * FROM steps ORDER BY step_start, id"

_FIGURES_SQL = _STEPS_CTE + """
    SELECT s.id, l.domain, l.routed_to, GROUPING(l.domain) = 1 AS all_domains,
           count(*) AS requests,
           count(*) FILTER (WHERE l.status = 'error') AS errors,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY l.response_time_ms) AS p95_ms
    FROM steps s
    JOIN webhook_routing_logs l
      ON l.created_at >= s.step_start AND l.created_at < s.step_end
     AND l.domain = ANY (s.domains)
    GROUP BY GROUPING SETS ((s.id, l.routed_to), (s.id, l.domain, l.routed_to))
"""

_TIMELINE_SQL = _STEPS_CTE + """
    SELECT date_bin($3::interval, l.created_at, $1) AS bucket_start, l.routed_to,
           count(*) AS requests,
           100.0 * count(*) FILTER (WHERE l.status = 'error') / count(*) AS error_pct,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY l.response_time_ms) AS p95_ms
    FROM steps s
    JOIN webhook_routing_logs l
      ON l.created_at >= s.step_start AND l.created_at < s.step_end
     AND l.domain = ANY (s.domains)
    GROUP BY 1, 2
    ORDER BY 1, 2
"""


class Criteria(StrEnum):
    """How unified's traffic in a step measured against the success criteria."""

    MET = "met"
    MISSED = "missed"
    NO_TRAFFIC = "no_traffic"


#: What each outcome of the criteria calls for.
CRITERIA_DECISION = {Criteria.MET: Decision.PROCEED, Criteria.MISSED: Decision.ROLLBACK,
                     Criteria.NO_TRAFFIC: Decision.HOLD}


@dataclass(frozen=True, slots=True)
class Figures:
    """One target's traffic in a step (all of the step's domains, or one)."""

    requests: int = 0
    errors: int = 0
    p95_ms: float | None = None

    @property
    def error_pct(self) -> float | None:
        return 100.0 * self.errors / self.requests if self.requests else None

    def error_ok(self, limits: Thresholds) -> bool:
        """Error rate under the success criterion (the warning limit)."""
        return self.error_pct is not None and self.error_pct < limits.warning_error_pct

    def p95_ok(self, limits: Thresholds) -> bool:
        """P95 under the success criterion (the warning limit)."""
        return self.p95_ms is not None and self.p95_ms < limits.warning_p95_ms

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "error_pct": self.error_pct,
                "p95_ms": self.p95_ms}


@dataclass(frozen=True, slots=True)
class Step:
    """One config row while it was in force, and what the traffic did meanwhile."""

    version: int
    percentage: Decimal
    enabled: bool
    domains: list[str]
    notes: str | None
    created_by: str
    start: datetime
    end: datetime
    #: What came next: the next config row's notes and author, None if still in force.
    outcome: str | None
    outcome_by: str | None
    #: target -> figures over all the step's domains.
    totals: dict[str, Figures]
    #: (domain, target) -> figures.
    per_domain: dict[tuple[str, str], Figures]
    #: The thresholds file the criteria come from (its default limits judge the totals).
    thresholds: ThresholdSet = field(default_factory=ThresholdSet)

    @property
    def limits(self) -> Thresholds:
        return self.thresholds.default

    @property
    def criteria(self) -> Criteria:
        unified = self.totals[Target.UNIFIED]
        if unified.requests == 0:
            return Criteria.NO_TRAFFIC
        if unified.error_ok(self.limits) and unified.p95_ok(self.limits):
            return Criteria.MET
        return Criteria.MISSED

    @property
    def decision(self) -> Decision:
        """What the criteria call for (SPEC: the report's decision per step)."""
        return CRITERIA_DECISION[self.criteria]

    @property
    def missed(self) -> list[str]:
        """Which success criteria unified missed, in words."""
        unified, limits = self.totals[Target.UNIFIED], self.limits
        out = []
        if unified.requests and not unified.error_ok(limits):
            out.append(f"error rate {unified.error_pct:.3f}% >= {limits.warning_error_pct}%")
        if unified.requests and not unified.p95_ok(limits):
            out.append(f"P95 {unified.p95_ms:.0f} ms >= {limits.warning_p95_ms:.0f} ms")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version, "percentage": float(self.percentage),
            "enabled": self.enabled, "domains": self.domains, "notes": self.notes,
            "created_by": self.created_by, "start": self.start.isoformat(),
            "end": self.end.isoformat(), "outcome": self.outcome, "outcome_by": self.outcome_by,
            "criteria": self.criteria, "decision": self.decision, "missed": self.missed,
            "totals": {target: f.to_dict() for target, f in self.totals.items()},
            "per_domain": [{"domain": d, "routed_to": t, **f.to_dict()}
                           for (d, t), f in self.per_domain.items()],
        }


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    bucket_start: datetime
    routed_to: str
    requests: int
    error_pct: float
    p95_ms: float


@dataclass(frozen=True, slots=True)
class RolloutReport:
    since: datetime
    until: datetime
    steps: list[Step]
    timeline: list[TimelinePoint]
    bucket: timedelta
    thresholds: ThresholdSet = field(default_factory=ThresholdSet)

    @property
    def limits(self) -> Thresholds:
        return self.thresholds.default

    def to_dict(self) -> dict[str, Any]:
        """The steps, for scripts (the chart's series stay out: they are for the image)."""
        return {"since": self.since.isoformat(), "until": self.until.isoformat(),
                "targets": {"error_pct": self.limits.warning_error_pct,
                            "p95_ms": self.limits.warning_p95_ms},
                "steps": [step.to_dict() for step in self.steps]}


def chart_bucket(since: datetime, until: datetime) -> timedelta:
    """The finest bucket that keeps a chart line to at most MAX_CHART_POINTS points."""
    span = until - since
    for bucket in _CHART_BUCKETS:
        if span / bucket <= MAX_CHART_POINTS:
            return bucket
    return _CHART_BUCKETS[-1]


async def build_report(database_url: str, since: datetime, until: datetime,
                       bucket: timedelta | None = None,
                       thresholds: ThresholdSet | None = None) -> RolloutReport:
    """Every step in ``[since, until)`` with its figures, and the chart's time series.

    The success criteria are ``thresholds``' warning limits (the SPEC defaults when None).
    """
    thresholds = thresholds or ThresholdSet()
    bucket = bucket or chart_bucket(since, until)
    conn = await connect(database_url)
    try:
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            step_rows = await conn.fetch(_STEPS_SQL, since, until)
            figure_rows = await conn.fetch(_FIGURES_SQL, since, until)
            timeline_rows = await conn.fetch(_TIMELINE_SQL, since, until, bucket)
    finally:
        await conn.close()
    return RolloutReport(
        since=since, until=until, bucket=bucket, thresholds=thresholds,
        steps=[_step(row, figure_rows, thresholds) for row in step_rows],
        timeline=[TimelinePoint(r["bucket_start"], r["routed_to"], r["requests"],
                                float(r["error_pct"]), r["p95_ms"]) for r in timeline_rows],
    )


def _step(row: asyncpg.Record, figure_rows: list[asyncpg.Record],
          thresholds: ThresholdSet) -> Step:
    totals = {target: Figures() for target in TARGETS}
    per_domain: dict[tuple[str, str], Figures] = {}
    for figure in figure_rows:
        if figure["id"] != row["id"]:
            continue
        figures = Figures(figure["requests"], figure["errors"], figure["p95_ms"])
        if figure["all_domains"]:
            totals[figure["routed_to"]] = figures
        else:
            per_domain[(figure["domain"], figure["routed_to"])] = figures
    return Step(
        version=row["id"], percentage=row["percentage"], enabled=row["enabled"],
        domains=list(row["domains"]), notes=row["notes"], created_by=row["created_by"],
        start=row["step_start"], end=row["step_end"], outcome=row["next_notes"],
        outcome_by=row["next_by"], totals=totals, thresholds=thresholds,
        per_domain=dict(sorted(per_domain.items(), key=_unified_first)),
    )


def _unified_first(item: tuple[tuple[str, str], Figures]) -> tuple[str, bool]:
    (domain, target), _ = item
    return domain, target != Target.UNIFIED
