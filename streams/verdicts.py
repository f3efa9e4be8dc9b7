"""Verdicts per target and the decision per domain, on sequential evidence: pure, no I/O.

Every threshold is a rate (`Metric`): the error rate against `warning_error_pct` /
`critical_error_pct`, and for each latency threshold X the share of requests slower than X
against 5 % ("P95 above X" is exactly "more than 5 % slower than X"), counted exactly per
request at ingest. Per target and metric, `TargetEvidence` keeps (see `streams.evidence`):

- a change detector against the critical rate (`alpha`): critical when it fires;
- a change detector against the warning rate (`alpha`): warning when it fires;
- an upper e-process against the warning rate (`healthy_alpha`): healthy only when every
  metric is SHOWN below its warning rate (no errors yet is not evidence of health);
- its burst estimate (`streams.evidence.Dispersion`), which tempers every detector.

The change detectors read run STARTS (`Counts.starts`): a request whose previous request of
the same target was a hit (within `run_gap_s`) of a run shorter than `max_run` is left out of
their sample, with the hit it may be. Under independent requests that is a random thinning
(exact, at a cost of the hit rate's share of the requests); when hits come in runs (a flaky
pool, a pause) the chance of a hit after a non-hit is at most the rate itself, so a run of ten
failures reads as one event, not ten independent ones (`streams.evidence`, "Bursts"). A run
longer than `max_run` counts every further hit: a handler failing every request is not a run
that hides itself.

A target's verdict: critical > warning > healthy > insufficient_data. The figures shown
(requests, errors, P50/P95/P99) stay those of the trailing window.

`decide` is the domain's ladder (see its guards): per metric, a unified breach legacy shares on
the SAME metric (legacy's warning-level evidence half way to its line or beyond), where unified
is not significantly worse (a sequential two-sample test of the relative risk, `RatioDetector`),
holds; any other unified breach rolls back; legacy trouble on one
metric never hides unified's breach on another; a sample-ratio mismatch
(`streams.sample_ratio`: the share on unified is not what the config says) holds, never rolls
back. A rollback stays until the domain's step changes (a higher `config_version` in the
events). The evidence runs over the rollout: a new step carries it on (`DomainState.next_step`:
config versions are global, so another domain's change is a new step too); only after a
rollback does the next step start it afresh.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

import orjson

from trafficlight.base.errors import InvalidInput
from trafficlight.streams.events import Target
from trafficlight.streams.evidence import (
    ChangeDetector,
    Dispersion,
    Mixture,
    RatioDetector,
    UpperEvidence,
    e_text,
)
from trafficlight.streams.sample_ratio import SampleRatio
from trafficlight.streams.thresholds import JudgeSettings, Thresholds


class Health(StrEnum):
    HEALTHY = "healthy"
    WARNING = "warning"
    CRITICAL = "critical"
    INSUFFICIENT_DATA = "insufficient_data"


class Decision(StrEnum):
    PROCEED = "proceed"
    HOLD = "hold"
    ROLLBACK = "rollback"


class Metric(StrEnum):
    """A Bernoulli stream per request: an error, or slower than a latency threshold."""

    ERRORS = "errors"
    SLOW_WARNING = "slow_warning"    # response_time_ms > warning_p95_ms
    SLOW_CRITICAL = "slow_critical"  # response_time_ms > critical_p95_ms


class Rule(StrEnum):
    """Which guard of `decide` fired."""

    ROLLED_BACK = "rolled_back"
    NO_UNIFIED_DATA = "no_unified_data"
    UNIFIED_BREACH = "unified_breach"
    SHARED_BREACH = "shared_breach"
    SAMPLE_RATIO_MISMATCH = "sample_ratio_mismatch"
    UNIFIED_WARNING = "unified_warning"
    POSITIVE_EVIDENCE = "positive_evidence"
    INSUFFICIENT_EVIDENCE = "insufficient_evidence"


#: Share of requests allowed above a P95 threshold.
SLOW_RATE = 0.05
CRITICAL_METRICS = (Metric.ERRORS, Metric.SLOW_CRITICAL)
#: The warning-level metric of each critical one (legacy sharing trouble, see `decide`).
_WARNING_OF = {Metric.ERRORS: Metric.ERRORS, Metric.SLOW_CRITICAL: Metric.SLOW_WARNING}
WARNING_METRICS = (Metric.ERRORS, Metric.SLOW_WARNING)


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Figures of one target over `[window_start_s, window_end_s)`; percentiles None if empty."""

    window_start_s: float
    window_end_s: float
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    latency_samples: int

    @property
    def error_pct(self) -> float:
        return 100.0 * self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class Counts:
    """Requests and hits per metric in one evaluation step (or a step's total), and per
    metric what the change detectors read of them (`starts`): ``*_runs``, the hits that
    start a run (their target's previous request was no hit, or more than `run_gap_s`
    before) or go on beyond a run's first `max_run`; -1 (not counted): every hit. The
    ``after_*`` requests followed a hit of a run shorter than that and are left out."""

    requests: int = 0
    errors: int = 0
    slow_warning: int = 0
    slow_critical: int = 0
    errors_runs: int = -1
    slow_warning_runs: int = -1
    slow_critical_runs: int = -1
    after_errors: int = 0
    after_slow_warning: int = 0
    after_slow_critical: int = 0

    def hits(self, metric: Metric) -> int:
        hits: int = getattr(self, metric)  # a StrEnum member is its field's name
        return hits

    def runs(self, metric: Metric) -> int:
        return _runs(getattr(self, _RUNS_OF[metric]), self.hits(metric))

    def starts(self, metric: Metric) -> tuple[int, int]:
        """The change detectors' sample: the requests not left out, and the hits among them."""
        return self.requests - getattr(self, _AFTER_OF[metric]), self.runs(metric)

    def to_list(self) -> list[int]:
        """The fields as they are (runs not counted stay -1): `Counts(*to_list())` is equal."""
        return [self.requests, self.errors, self.slow_warning, self.slow_critical,
                self.errors_runs, self.slow_warning_runs, self.slow_critical_runs,
                self.after_errors, self.after_slow_warning, self.after_slow_critical]

    def __add__(self, other: Counts) -> Counts:
        # Field by field: every evaluation adds its counts to the step's totals.
        return Counts(
            self.requests + other.requests, self.errors + other.errors,
            self.slow_warning + other.slow_warning, self.slow_critical + other.slow_critical,
            _runs(self.errors_runs, self.errors) + _runs(other.errors_runs, other.errors),
            _runs(self.slow_warning_runs, self.slow_warning)
            + _runs(other.slow_warning_runs, other.slow_warning),
            _runs(self.slow_critical_runs, self.slow_critical)
            + _runs(other.slow_critical_runs, other.slow_critical),
            self.after_errors + other.after_errors,
            self.after_slow_warning + other.after_slow_warning,
            self.after_slow_critical + other.after_slow_critical)


_RUNS_OF = {m: f"{m.value}_runs" for m in Metric}
_AFTER_OF = {m: f"after_{m.value}" for m in Metric}


def _runs(runs: int, hits: int) -> int:
    """Runs counted, or (-1: not counted) one per hit."""
    return hits if runs < 0 else runs


def critical_rate(metric: Metric, limits: Thresholds) -> float:
    return limits.critical_error_pct / 100 if metric is Metric.ERRORS else SLOW_RATE


def warning_rate(metric: Metric, limits: Thresholds) -> float:
    return limits.warning_error_pct / 100 if metric is Metric.ERRORS else SLOW_RATE


def describe(metric: Metric, limits: Thresholds) -> str:
    if metric is Metric.ERRORS:
        return "errors"
    limit = limits.warning_p95_ms if metric is Metric.SLOW_WARNING else limits.critical_p95_ms
    return f"slower than {limit:.0f} ms"




@dataclass(slots=True)
class TargetEvidence:
    """One target's detectors and totals over the rollout (from its first step, or the step
    after its last rollback: `DomainState.next_step`)."""

    critical: dict[Metric, ChangeDetector]
    warning: dict[Metric, ChangeDetector]
    healthy: dict[Metric, UpperEvidence]
    #: Per metric, how much more its hits vary than independent requests' (bursts): every
    #: detector of the metric is tempered by it (`streams.evidence.Dispersion`).
    dispersion: dict[Metric, Dispersion]
    #: Read run starts and temper by the dispersion (bursts), or read requests as
    #: independent.
    temper_bursts: bool = True
    totals: Counts = Counts()

    @classmethod
    def new(cls, limits: Thresholds, s: JudgeSettings) -> TargetEvidence:
        up = Mixture.of(s.alternatives, s.alternative_weights)
        down = Mixture.of(s.healthy_alternatives)
        return cls(
            {m: ChangeDetector.new(critical_rate(m, limits), up, s.alpha, s.max_batch_nats,
                                   s.prior_start) for m in CRITICAL_METRICS},
            {m: ChangeDetector.new(warning_rate(m, limits), up, s.alpha, s.max_batch_nats,
                                   s.prior_start) for m in WARNING_METRICS},
            {m: UpperEvidence.new(warning_rate(m, limits), down, s.healthy_alpha)
             for m in WARNING_METRICS},
            {m: Dispersion(s.dispersion_prior_hits, s.dispersion_min_hits) for m in Metric},
            s.temper_bursts)

    def update(self, counts: Counts) -> None:
        if counts.requests <= 0:
            return
        n, temper = counts.requests, self.temper_bursts
        # Known before the batch: the dispersion so far.
        weight = {m: d.weight if temper else 1.0 for m, d in self.dispersion.items()}
        for group in (self.critical, self.warning):
            for metric, detector in group.items():
                sample = counts.starts(metric) if temper else (n, counts.hits(metric))
                detector.update(*sample, weight[metric])
        for metric, evidence in self.healthy.items():
            evidence.update(n, counts.hits(metric), weight[metric])
        for metric, dispersion in self.dispersion.items():
            dispersion.update(n, counts.hits(metric))
        self.totals = self.totals + counts

    def new_step(self) -> None:
        """The rollout moved to its next step: the change detectors' prior gets that step's
        start mass; everything else carries on."""
        for group in (self.critical, self.warning):
            for detector in group.values():
                detector.prior.new_step()

    def to_dict(self) -> dict[str, Any]:
        return {"critical": {m.value: d.to_list() for m, d in self.critical.items()},
                "warning": {m.value: d.to_list() for m, d in self.warning.items()},
                "healthy": {m.value: e.to_list() for m, e in self.healthy.items()},
                "dispersion": {m.value: d.to_list() for m, d in self.dispersion.items()},
                "totals": self.totals.to_list()}

    def load(self, data: dict[str, Any]) -> None:
        """Restore `to_dict`; state written before the dispersion estimate or the runs'
        context starts them anew."""
        for name, group in (("critical", self.critical), ("warning", self.warning),
                            ("healthy", self.healthy), ("dispersion", self.dispersion)):
            for metric, values in data.get(name, {}).items():
                group[Metric(metric)].restore(values)
        self.totals = Counts(*data["totals"])


@dataclass(slots=True)
class DomainState:
    """Everything a domain's judging carries from one evaluation to the next (JSON-ready)."""

    config_version: int
    unified: TargetEvidence
    legacy: TargetEvidence
    ratio: dict[Metric, RatioDetector]
    rolled_back: bool = False
    rollback_reason: str = ""
    #: Metrics whose current unified breach began shared with legacy (see `decide`, guard 3).
    shared: tuple[Metric, ...] = ()
    #: What the last published rows said (decision, rule, verdicts): rows are published
    #: again only when it changes, or at a heartbeat.
    published: str = ""
    #: Unified and legacy requests in this step (config version): the sample-ratio guard's
    #: totals. The evidence's own totals run over the rollout.
    step_requests: tuple[int, int] = (0, 0)

    @classmethod
    def new(cls, limits: Thresholds, s: JudgeSettings, config_version: int = -1) -> DomainState:
        risks = Mixture.of(s.relative_risks)
        return cls(config_version, TargetEvidence.new(limits, s), TargetEvidence.new(limits, s),
                   {m: RatioDetector.new(risks, s.compare_alpha, s.max_batch_nats,
                                         s.prior_start) for m in CRITICAL_METRICS})

    def next_step(self, limits: Thresholds, s: JudgeSettings, config_version: int
                  ) -> DomainState:
        """The state of the domain's next step (a new config version).

        The evidence carries on: the handlers are the same at a new percentage (or after
        another domain's change, which bumps the version too), so a regression that began
        before the step is not forgotten, a healthy record is kept, and the false-rollback
        budget spans the rollout instead of restarting with every version. The change
        detectors' prior puts mass on the new step's start (`ChangePrior`): a handler that
        breaks under the new step's load is caught as fast as at a step's start. Only the
        sample-ratio guard's totals restart (the configured share changed).

        After a rollback everything starts afresh, the burst estimate too (the regression's
        onset would count as burstiness): what is re-enabled is judged as new."""
        if self.rolled_back:
            return DomainState.new(limits, s, config_version)
        self.config_version = config_version
        self.step_requests = (0, 0)
        self.unified.new_step()
        self.legacy.new_step()
        for detector in self.ratio.values():
            detector.prior.new_step()
        return self

    def update(self, unified: Counts, legacy: Counts) -> None:
        self.unified.update(unified)
        self.legacy.update(legacy)
        u, l_ = self.step_requests
        self.step_requests = (u + unified.requests, l_ + legacy.requests)
        for metric, detector in self.ratio.items():
            detector.update(unified.requests, unified.hits(metric), legacy.requests,
                            legacy.hits(metric))

    def to_dict(self) -> dict[str, Any]:
        return {"config_version": self.config_version, "unified": self.unified.to_dict(),
                "legacy": self.legacy.to_dict(),
                "ratio": {m.value: d.to_list() for m, d in self.ratio.items()},
                "rolled_back": self.rolled_back, "rollback_reason": self.rollback_reason,
                "shared": [m.value for m in self.shared], "published": self.published,
                "step_requests": list(self.step_requests)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], limits: Thresholds,
                  s: JudgeSettings) -> DomainState:
        state = cls.new(limits, s, data["config_version"])
        state.unified.load(data["unified"])
        state.legacy.load(data["legacy"])
        for metric, values in data["ratio"].items():
            state.ratio[Metric(metric)].restore(values)
        state.rolled_back, state.rollback_reason = data["rolled_back"], data["rollback_reason"]
        state.shared = tuple(Metric(m) for m in data.get("shared", ()))
        state.published = data.get("published", "")
        # State written before evidence carried over steps: its totals were the step's.
        u, l_ = data.get("step_requests", (state.unified.totals.requests,
                                           state.legacy.totals.requests))
        state.step_requests = (int(u), int(l_))
        return state


@dataclass(frozen=True, slots=True)
class Judgement:
    """A target's verdict on its evidence, why, and the evidence itself (JSON-ready)."""

    health: Health
    reasons: tuple[str, ...]
    critical: tuple[Metric, ...] = ()
    warning: tuple[Metric, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)


def judge_target(ev: TargetEvidence, limits: Thresholds,
                 window: WindowStats | None = None, explain: bool = True) -> Judgement:
    """critical > warning > healthy (every metric shown below warning) > insufficient_data.

    Reasons quote the step's counts, and the error figures of `window` when given. Without
    `explain`, only the verdict and the metrics (what `decide` reads): no text, no evidence."""
    critical = tuple(m for m in CRITICAL_METRICS if ev.critical[m].fired)
    warning = tuple(m for m in WARNING_METRICS if ev.warning[m].fired)
    if not explain:
        if critical:
            health = Health.CRITICAL
        elif warning:
            health = Health.WARNING
        elif all(ev.healthy[m].shown for m in WARNING_METRICS):
            health = Health.HEALTHY
        else:
            health = Health.INSUFFICIENT_DATA
        return Judgement(health, (), critical, warning)
    t = ev.totals
    n = t.requests
    evidence: dict[str, Any] = {"requests": n}
    for m in Metric:
        evidence[m.value] = {"hits": t.hits(m), "dispersion": round(ev.dispersion[m].factor, 3)}
    for m, d in ev.critical.items():
        evidence[m.value]["critical"] = {"rate": d.p0, "e_value": float(e_text(d.log_value)),
                                         "threshold": float(e_text(d.log_threshold))}
    for m, d in ev.warning.items():
        evidence[m.value]["warning"] = {"rate": d.p0, "e_value": float(e_text(d.log_value)),
                                        "threshold": float(e_text(d.log_threshold))}
    for m, e in ev.healthy.items():
        evidence[m.value]["below_warning"] = {"rate": e.p_max,
                                              "e_value": float(e_text(e.log_value)),
                                              "threshold": float(e_text(e.log_threshold))}

    def figure(m: Metric) -> str:
        share = 100 * t.hits(m) / n if n else 0.0
        text = f"{describe(m, limits)} {t.hits(m)}/{n} ({share:.2f}%) this rollout"
        if m is Metric.ERRORS and window is not None:
            span = window.window_end_s - window.window_start_s
            text += (f", {window.errors}/{window.requests} ({window.error_pct:.2f}%) "
                     f"in the last {span:.0f} s")
        factor = ev.dispersion[m].factor
        if factor > 1:
            text += (f"; in bursts: hits vary {factor:.1f}x as much as independent requests', "
                     f"evidence weighed 1/{factor:.1f}")
        return text

    if critical:
        reasons = tuple(
            f"{figure(m)}: above critical {100 * ev.critical[m].p0:g}% "
            f"(e-value {e_text(ev.critical[m].log_value)} >= "
            f"{e_text(ev.critical[m].log_threshold)})"
            for m in critical)
        return Judgement(Health.CRITICAL, reasons, critical, warning, evidence)
    if warning:
        reasons = tuple(
            f"{figure(m)}: above warning {100 * ev.warning[m].p0:g}% "
            f"(e-value {e_text(ev.warning[m].log_value)} >= {e_text(ev.warning[m].log_threshold)})"
            for m in warning)
        return Judgement(Health.WARNING, reasons, critical, warning, evidence)
    def below(m: Metric) -> str:
        e = ev.healthy[m]
        shown, against = ("shown", ">=") if e.shown else ("not yet shown", "<")
        return (f"{figure(m)}: {shown} below {100 * e.p_max:g}% "
                f"(e-value {e_text(e.log_value)} {against} {e_text(e.log_threshold)})")

    unshown = [m for m in WARNING_METRICS if not ev.healthy[m].shown]
    if not unshown:
        return Judgement(Health.HEALTHY, tuple(map(below, WARNING_METRICS)), (), (), evidence)
    return Judgement(Health.INSUFFICIENT_DATA, tuple(map(below, unshown)), (), (), evidence)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A domain's decision at one evaluation: the guard that fired and its evidence."""

    decision: Decision
    rule: Rule
    reasons: tuple[str, ...]
    rolled_back: bool
    #: Unified breaches judged shared with legacy at this evaluation (`DomainState.shared`).
    shared: tuple[Metric, ...] = ()


def decide(unified: Judgement | None, legacy: Judgement | None, state: DomainState,
           limits: Thresholds, ratio_guard: SampleRatio | None = None) -> Outcome:
    """One domain's decision at one evaluation (pure: reads `state`, changes nothing).

    `ratio_guard`: the sample-ratio guard's reading of the step (`streams.sample_ratio`),
    None when it is off."""
    mismatch = ratio_guard if ratio_guard is not None and ratio_guard.mismatch else None
    # 1. Rolled back: stays so until the step changes (config version).
    if state.rolled_back:
        return Outcome(Decision.ROLLBACK, Rule.ROLLED_BACK,
                       (f"rolled back in this step: {state.rollback_reason}",), True)
    # 2. Nothing from unified since the step began: hold (a mismatch when the config says
    #    unified should have had some: the reason says so).
    if unified is None or state.step_requests[0] == 0:
        if mismatch is not None:
            return Outcome(Decision.HOLD, Rule.SAMPLE_RATIO_MISMATCH, (mismatch.reason(),),
                           False)
        return Outcome(Decision.HOLD, Rule.NO_UNIFIED_DATA,
                       ("no unified requests in this step",), False)
    # 3. Per metric: a unified breach legacy does not share on that metric, or where unified
    #    is significantly worse than legacy, rolls back. (Legacy trouble on another metric
    #    does not count.) A breach that began shared stays shared while it lasts: after an
    #    outage both detectors come back below the line at their own pace, and the one
    #    falling first must not blame the other; the two-sample test still rolls back.
    #    Legacy shares a breach from half its warning-level evidence on the same metric on
    #    (`_legacy_shares`): at an outage's onset both see it, and whichever detector crosses
    #    a line first must not decide; whether unified is worse is the two-sample test's.
    shared: list[str] = []
    for metric in unified.critical:
        ratio = state.ratio[metric]
        legacy_breach = metric in state.shared or (legacy is not None and (
            metric in legacy.critical or _legacy_shares(state, metric)))
        worse = f"unified vs legacy e-value {e_text(ratio.log_value)}"
        if not legacy_breach:
            why = f"{describe(metric, limits)}: unified breaches critical, legacy does not"
            return Outcome(Decision.ROLLBACK, Rule.UNIFIED_BREACH, (why,), True)
        if ratio.fired:
            why = (f"{describe(metric, limits)}: both breach critical but unified is "
                   f"significantly worse ({worse} >= {e_text(ratio.log_threshold)})")
            return Outcome(Decision.ROLLBACK, Rule.UNIFIED_BREACH, (why,), True)
        shared.append(f"{describe(metric, limits)}: legacy breaches too and unified is not "
                      f"significantly worse ({worse} < {e_text(ratio.log_threshold)})")
    # 4. Every unified breach is shared with legacy (provider trouble): hold (a sample-ratio
    #    mismatch is named too: the comparison with legacy is biased).
    if shared:
        if mismatch is not None:
            shared.append(mismatch.reason())
        return Outcome(Decision.HOLD, Rule.SHARED_BREACH, tuple(shared), False,
                       unified.critical)
    # 5. The routing is not what the config says (sample-ratio mismatch): hold, never roll
    #    back (a routing problem, not a handler regression; a breach of unified's own rates
    #    still rolls back, guard 3), never proceed (the comparisons are biased).
    if mismatch is not None:
        return Outcome(Decision.HOLD, Rule.SAMPLE_RATIO_MISMATCH, (mismatch.reason(),),
                       False)
    # 6. Unified above a warning rate: hold.
    if unified.health is Health.WARNING:
        return Outcome(Decision.HOLD, Rule.UNIFIED_WARNING, ("unified above a warning rate",),
                       False)
    # 7. Unified shown below every warning rate: proceed (the only evidence promotion counts).
    if unified.health is Health.HEALTHY:
        return Outcome(Decision.PROCEED, Rule.POSITIVE_EVIDENCE,
                       ("unified shown below every warning rate",), False)
    # 8. Not enough evidence either way: hold.
    return Outcome(Decision.HOLD, Rule.INSUFFICIENT_EVIDENCE,
                   ("unified not yet shown below the warning rates",), False)


def _legacy_shares(state: DomainState, metric: Metric) -> bool:
    """Legacy shows the trouble on `metric` too: its warning-level evidence has half the nats
    it needs to fire. At an outage's onset both targets gather evidence at once, bursts weigh
    it down on both, and which crosses its line first is a race: unified must not be rolled
    back for winning it. (A legacy that merely looks bad still leaves the two-sample test to
    roll back a unified significantly worse than it.)"""
    detector = state.legacy.warning[_WARNING_OF[metric]]
    return detector.log_value >= detector.log_threshold / 2


@dataclass(frozen=True, slots=True)
class Verdict:
    """SPEC "Verdict": one target's figures, verdict and its domain's decision at one instant.

    Added fields: `rule` (the `Rule` of the domain's decision, the same on every row of an
    evaluation) and `evidence` (this target's counts over the rollout and, per metric, its
    e-values against their thresholds). `reasons` are this target's own; the unified row adds
    the decision's explanation, the legacy row never carries unified's reasons.
    """

    domain: str
    routed_to: Target
    window_start: float
    window_end: float
    requests: int
    errors: int
    error_pct: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    verdict: Health
    decision: Decision
    reasons: tuple[str, ...]
    rule: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, domain: str, routed_to: Target, stats: WindowStats, judgement: Judgement,
           decision: Decision, reasons: tuple[str, ...], rule: Rule) -> Verdict:
        s = stats
        return cls(domain, routed_to, float(s.window_start_s), float(s.window_end_s),
                   s.requests, s.errors, round(s.error_pct, 6), s.p50_ms, s.p95_ms, s.p99_ms,
                   judgement.health, decision, reasons, rule.value, judgement.evidence)

    def to_dict(self) -> dict[str, Any]:
        """The SPEC JSON object (times as float epoch seconds, reasons as a list).

        Field by field, not `asdict`: its deep copies made up most of replay's output time.
        """
        out = {name: getattr(self, name) for name in self.__slots__}
        out["reasons"] = list(self.reasons)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """A verdict from its SPEC object, checked (`BadVerdict` says what is wrong)."""
        return parse_verdict(data)


#: Verdict fields beyond SPEC's (README "Verdict fields"): absent in older records.
_OPTIONAL = ("rule", "evidence")


class BadVerdict(InvalidInput, ValueError):
    """A record that is not a SPEC verdict; the one-line message says why."""


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise BadVerdict(message)


def _is_number(value: object) -> bool:
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and math.isfinite(value))


def parse_verdict(value: object) -> Verdict:
    """The one decoder of the verdict record (SPEC "Verdict"), from its decoded JSON value.

    Every reader of verdicts (watch, alerts, the sink, replay files) goes through here, so
    they agree on what a verdict is. Unknown fields are ignored (a newer worker may add some).
    """
    if not isinstance(value, Mapping):
        raise BadVerdict("a verdict must be a JSON object")
    for name, closed in (("verdict", Health), ("decision", Decision), ("routed_to", Target)):
        allowed = [member.value for member in closed]
        _need(value.get(name) in allowed,
              f"{name} must be one of {sorted(allowed)}, got {value.get(name)!r:.40}")
    domain = value.get("domain")
    _need(isinstance(domain, str) and bool(domain), "domain must be a non-empty string")
    for name in ("window_start", "window_end"):
        _need(_is_number(value.get(name)), f"{name} must be epoch seconds")
    missing = [f.name for f in fields(Verdict)
               if f.name not in value and f.name not in _OPTIONAL]
    _need(not missing, f"verdict without {', '.join(missing)}")
    for name in ("requests", "errors"):
        count = value[name]
        _need(isinstance(count, int) and not isinstance(count, bool) and count >= 0,
              f"{name} must be a count, got {count!r:.40}")
    _need(_is_number(value["error_pct"]), "error_pct must be a number")
    for name in ("p50_ms", "p95_ms", "p99_ms"):
        _need(value[name] is None or _is_number(value[name]), f"{name} must be a number or null")
    reasons = value["reasons"]
    _need(isinstance(reasons, list | tuple) and all(isinstance(r, str) for r in reasons),
          "reasons must be a list of strings")
    rule, evidence = value.get("rule", ""), value.get("evidence", {})
    _need(isinstance(rule, str), "rule must be a string")
    _need(isinstance(evidence, Mapping), "evidence must be an object")
    known = {f.name: value[f.name] for f in fields(Verdict) if f.name not in _OPTIONAL}
    return Verdict(**{
        **known, "routed_to": Target(known["routed_to"]), "verdict": Health(known["verdict"]),
        "decision": Decision(known["decision"]), "window_start": float(known["window_start"]),
        "window_end": float(known["window_end"]), "error_pct": float(known["error_pct"]),
        "reasons": tuple(reasons), "rule": rule, "evidence": dict(evidence)})


def decode_verdicts(value: bytes | None) -> list[Verdict]:
    """The verdicts of one record value: a verdict object or an array of them."""
    try:
        decoded = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise BadVerdict(f"not JSON: {exc}") from None
    return [parse_verdict(item) for item in (decoded if isinstance(decoded, list) else [decoded])]


def decode_verdict(value: bytes | None) -> Verdict:
    """The verdict of one record value (one JSON object); `BadVerdict` otherwise."""
    try:
        decoded = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise BadVerdict(f"not JSON: {exc}") from None
    _need(isinstance(decoded, dict),
          f"a JSON {type(decoded).__name__}, not a verdict object")
    return parse_verdict(decoded)
