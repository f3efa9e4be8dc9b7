"""The judges the scoreboard compares, each a :class:`~.timeline.TimelineJudge`.

- :class:`TrafficlightJudge`: the project's own judge (``trafficlight.streams.judge.Judge``,
  the engine replay and the worker run), fed the events unchanged, with the scenario's
  configured percentages for its sample-ratio guard (as the worker reads them from Postgres);
  whatever judge that class is, the scoreboard scores it.
- :class:`RunbookJudge`: the runbook by hand. Every 15 min of event time an operator reads the
  last hour's figures per domain and target as the ``webhook_routing_stats`` view computes them
  (``count(*)``, ``percentile_cont(0.95)`` of the latencies, ``100 * errors / requests``) and
  rolls the domain back if unified's ``error_pct`` is above ``critical_error_pct`` or its
  ``p95_ms`` above ``critical_p95_ms``. No figures (no unified request in the hour): no action.
- :class:`FlaggerJudge`: Flagger's canary analysis. Every 60 s a check over the last 60 s of
  unified; it fails if the error % is above critical or the P95 above critical, or if there is
  no data (Flagger counts "no values found" as a failed check; no minimum sample by default).
  After ``threshold = 2`` failed checks in the analysis (counted over the analysis, not in a
  row: Flagger's ``failedChecks``) it rolls back. A failed check that does not yet roll back
  halts the advance: hold.

Once a baseline rolls back it stays rolled back (an operator, like Flagger, does not re-enable
a rolled-back canary within the run). The baselines judge unified only, as specified: they
know nothing of legacy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from trafficlight.streams.events import EventBatch, Target
from trafficlight.streams.judge import Judge
from trafficlight.streams.sample_ratio import ConfiguredShares
from trafficlight.streams.thresholds import ThresholdSet
from trafficlight.streams.verdicts import Decision
from trafficlight.tools.scoreboard.timeline import Timeline

RUNBOOK_EVERY_S = 900
RUNBOOK_WINDOW_S = 3_600
FLAGGER_INTERVAL_S = 60
FLAGGER_THRESHOLD = 2


class TrafficlightJudge:
    """The streams judge (one partition, as replay of a file), its decisions as a timeline."""

    name = "trafficlight"

    def __init__(self, thresholds: ThresholdSet | None = None,
                 shares: ConfiguredShares | None = None) -> None:
        self._judge = Judge(thresholds or ThresholdSet(), shares)
        self._timeline = Timeline()
        self._last_ts = -math.inf

    def feed(self, batch: EventBatch) -> None:
        if not len(batch):
            return
        self._last_ts = max(self._last_ts, float(batch.ts_s.max()))
        for verdict in self._judge.ingest(batch):
            # Both targets' verdicts carry the domain's decision: the first one is enough.
            self._timeline.record(verdict.window_end, verdict.domain, Decision(verdict.decision))

    def finish(self) -> Timeline:
        self._timeline.end_s = max(self._timeline.end_s, self._last_ts)
        return self._timeline


@dataclass(slots=True)
class _UnifiedLog:
    """Every unified event of one domain, as columns (what the baselines' queries read)."""

    ts: list[np.ndarray] = field(default_factory=list)
    latency_ms: list[np.ndarray] = field(default_factory=list)
    errors: list[np.ndarray] = field(default_factory=list)

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ts = np.concatenate(self.ts) if self.ts else np.empty(0)
        order = np.argsort(ts, kind="stable")
        latency = np.concatenate(self.latency_ms) if self.latency_ms else np.empty(0)
        errors = np.concatenate(self.errors) if self.errors else np.empty(0, bool)
        return ts[order], latency[order], errors[order]


@dataclass(frozen=True, slots=True)
class Figures:
    """What a query over one window of unified's events returns."""

    requests: int
    errors: int
    p95_ms: float | None

    @property
    def error_pct(self) -> float:
        return 100.0 * self.errors / self.requests if self.requests else 0.0


class _PeriodicBaseline:
    """Collects unified events per domain; checks every ``every_s`` over the last ``window_s``."""

    name = "baseline"
    every_s = 60
    window_s = 60

    def __init__(self, thresholds: ThresholdSet | None = None) -> None:
        self.thresholds = thresholds or ThresholdSet()
        self._logs: dict[str, _UnifiedLog] = {}
        self._first_ts = math.inf
        self._last_ts = -math.inf

    def feed(self, batch: EventBatch) -> None:
        if not len(batch):
            return
        self._first_ts = min(self._first_ts, float(batch.ts_s.min()))
        self._last_ts = max(self._last_ts, float(batch.ts_s.max()))
        domains = np.asarray(batch.domain, dtype=object)
        unified = np.asarray(batch.routed_to, dtype=object) == Target.UNIFIED.value
        for domain in dict.fromkeys(batch.domain):
            log = self._logs.setdefault(domain, _UnifiedLog())
            mask = unified & (domains == domain)
            if mask.any():
                log.ts.append(batch.ts_s[mask])
                log.latency_ms.append(batch.response_time_ms[mask])
                log.errors.append(batch.is_error[mask])

    def finish(self) -> Timeline:
        timeline = Timeline()
        if self._last_ts < self._first_ts:
            return timeline
        first_check = math.floor(self._first_ts / self.every_s) * self.every_s + self.every_s
        checks = np.arange(first_check, self._last_ts + 1e-9, self.every_s, dtype=np.float64)
        for domain, log in sorted(self._logs.items()):
            ts, latency, errors = log.columns()
            error_count = np.concatenate(([0], np.cumsum(errors)))
            starts = np.searchsorted(ts, checks - self.window_s, side="left")
            ends = np.searchsorted(ts, checks, side="left")
            self.start_domain()
            for at_s, lo, hi in zip(checks.tolist(), starts.tolist(), ends.tolist(),
                                    strict=True):
                window = latency[lo:hi]
                figures = Figures(hi - lo, int(error_count[hi] - error_count[lo]),
                                  float(np.percentile(window, 95)) if hi > lo else None)
                decision = self.check(figures, domain)
                timeline.record(at_s, domain, decision)
                if decision is Decision.ROLLBACK:
                    break
        timeline.end_s = max(timeline.end_s, self._last_ts)
        return timeline

    def breaches(self, figures: Figures, domain: str) -> bool:
        """Unified above a critical threshold (strictly, as the runbook's comparison reads)."""
        limits = self.thresholds.for_domain(domain)
        return (figures.error_pct > limits.critical_error_pct
                or (figures.p95_ms is not None and figures.p95_ms > limits.critical_p95_ms))

    def start_domain(self) -> None:
        """Reset per-domain memory before a domain's checks."""

    def check(self, figures: Figures, domain: str) -> Decision:
        raise NotImplementedError


class RunbookJudge(_PeriodicBaseline):
    """The runbook by hand: hourly figures read every 15 min (see the module docstring)."""

    name = "runbook"
    every_s = RUNBOOK_EVERY_S
    window_s = RUNBOOK_WINDOW_S

    def check(self, figures: Figures, domain: str) -> Decision:
        if figures.requests and self.breaches(figures, domain):
            return Decision.ROLLBACK
        return Decision.PROCEED


class FlaggerJudge(_PeriodicBaseline):
    """Flagger-like: 60 s checks, rollback after 2 failed (see the module docstring)."""

    name = "flagger"
    every_s = FLAGGER_INTERVAL_S
    window_s = FLAGGER_INTERVAL_S

    def __init__(self, thresholds: ThresholdSet | None = None,
                 threshold: int = FLAGGER_THRESHOLD, no_data_fails: bool = True) -> None:
        super().__init__(thresholds)
        self.threshold = threshold
        self.no_data_fails = no_data_fails
        self._failed = 0

    def start_domain(self) -> None:
        self._failed = 0

    def check(self, figures: Figures, domain: str) -> Decision:
        failed = self.breaches(figures, domain) if figures.requests else self.no_data_fails
        if not failed:
            return Decision.PROCEED
        self._failed += 1
        return Decision.ROLLBACK if self._failed >= self.threshold else Decision.HOLD
