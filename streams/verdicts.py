"""Verdicts per target and the decision per domain: pure functions over window figures.

Per target, two windows are judged and the worse verdict wins, reporting the figures of the
window that decided it: the trailing window (default 5 min) and a fast window (default 5 s).
The 5-min window alone would need ~20 s to see a step to 5 % errors at 100 req/s cross 0.5 %;
the fast window sees it in 2-3 s.

Sample rule (error rate): fewer than `min_requests` requests -> insufficient_data. A window is
critical (warning) on errors only with at least `min_errors` errors AND the Wilson score lower
bound of the error rate (z = `confidence_z`, 1.96 by default) at or above `critical_error_pct`
(`warning_error_pct`). At ~50 requests an hour one error is never enough (min_errors = 5), and
at 100 req/s a 5 s window needs ~6 errors in 500 (1.2 %) to be critical, so noise at a healthy
0.1 % rarely trips it (Poisson: P(>= 6 | mean 0.5) ~ 1.4e-5 per evaluation).
Latency: P95 is judged only with `min_latency_samples` latencies in the window.

Decision per domain (`decide`), a ladder of guards like Flagger's canary tick; state is a
small `DecisionState` value:
healthy -> proceed, warning -> hold, insufficient_data -> hold, critical -> rollback after
`rollback_after` consecutive critical evaluations (hold until then); a regression legacy shares
(legacy critical too, or unified's error rate not significantly above legacy's over the same
window: the provider is down) -> hold; once rolled back the decision stays
rollback until `recover_after` consecutive healthy evaluations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Any

import orjson

from trafficlight.base.errors import InvalidInput
from trafficlight.streams.events import Target
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


#: Which verdict is worse when two windows disagree (insufficient data loses to any figure).
_SEVERITY = {Health.INSUFFICIENT_DATA: 0, Health.HEALTHY: 1, Health.WARNING: 2,
             Health.CRITICAL: 3}


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
class Judgement:
    """A target's verdict, why, and the window figures that decided it.

    ``windows`` holds every window judged (trailing and fast), so `decide` can compare unified
    with legacy over the same span.
    """

    health: Health
    reasons: tuple[str, ...]
    stats: WindowStats
    windows: tuple[WindowStats, ...] = ()

    def window_like(self, other: WindowStats) -> WindowStats | None:
        """This target's figures over a window as long as ``other``'s, if judged."""
        span = other.window_end_s - other.window_start_s
        for window in self.windows or (self.stats,):
            if window.window_end_s - window.window_start_s == span:
                return window
        return None


def wilson_lower_pct(errors: int, requests: int, z: float) -> float:
    """Lower bound of the Wilson score interval of errors/requests, in percent."""
    if requests == 0:
        return 0.0
    p = errors / requests
    denom = 1 + z * z / requests
    centre = p + z * z / (2 * requests)
    margin = z * math.sqrt(p * (1 - p) / requests + z * z / (4 * requests * requests))
    return 100.0 * max(0.0, (centre - margin) / denom)


def judge_window(stats: WindowStats, limits: Thresholds) -> Judgement:
    """Verdict of one window against `limits`, applying the sample rule."""
    if stats.requests < limits.min_requests:
        reason = f"{stats.requests} requests < {limits.min_requests} needed"
        return Judgement(Health.INSUFFICIENT_DATA, (reason,), stats)
    health, reasons = Health.HEALTHY, []
    lower_pct = wilson_lower_pct(stats.errors, stats.requests, limits.confidence_z)
    enough_errors = stats.errors >= limits.min_errors
    figures = f"{stats.errors}/{stats.requests} = {stats.error_pct:.2f}% (lower {lower_pct:.2f}%)"
    if enough_errors and lower_pct >= limits.critical_error_pct:
        health = Health.CRITICAL
        reasons.append(f"error rate {figures} >= critical {limits.critical_error_pct}%")
    elif enough_errors and lower_pct >= limits.warning_error_pct:
        health = Health.WARNING
        reasons.append(f"error rate {figures} >= warning {limits.warning_error_pct}%")
    p95 = stats.p95_ms
    if p95 is not None and stats.latency_samples >= limits.min_latency_samples:
        if p95 >= limits.critical_p95_ms:
            health = Health.CRITICAL
            reasons.append(f"p95 {p95:.0f} ms >= critical {limits.critical_p95_ms:.0f} ms")
        elif p95 >= limits.warning_p95_ms:
            health = max(health, Health.WARNING, key=_SEVERITY.__getitem__)
            reasons.append(f"p95 {p95:.0f} ms >= warning {limits.warning_p95_ms:.0f} ms")
    return Judgement(health, tuple(reasons), stats)


def judge_target(slow: WindowStats, fast: WindowStats, limits: Thresholds) -> Judgement:
    """The worse of the trailing and fast windows' verdicts (the trailing one on ties)."""
    slow_j, fast_j = judge_window(slow, limits), judge_window(fast, limits)
    worse = fast_j if _SEVERITY[fast_j.health] > _SEVERITY[slow_j.health] else slow_j
    return replace(worse, windows=(slow, fast))


def error_rate_excess_z(unified: WindowStats, legacy: WindowStats) -> float:
    """One-sided two-proportion z statistic: how surely unified's error rate exceeds legacy's."""
    if unified.requests == 0 or legacy.requests == 0:
        return 0.0
    pooled = (unified.errors + legacy.errors) / (unified.requests + legacy.requests)
    variance = pooled * (1 - pooled) * (1 / unified.requests + 1 / legacy.requests)
    if variance == 0:
        return 0.0
    return (unified.error_pct - legacy.error_pct) / 100.0 / math.sqrt(variance)


def shares_regression(unified: Judgement, legacy: Judgement | None, limits: Thresholds) -> bool:
    """Legacy shows the regression too, so its cause lies upstream of both targets.

    Legacy critical is enough. Otherwise, over the window that made unified critical: legacy
    has enough traffic and errors of its own, and unified's error rate is not significantly
    above legacy's (two-proportion z-test at ``confidence_z``). Comparing verdicts alone is
    not enough: during a shared outage both are noisy, and the moment one dips below the line
    would blame unified.
    """
    if legacy is None:
        return False
    if legacy.health is Health.CRITICAL:
        return True
    peer = legacy.window_like(unified.stats)
    if peer is None or peer.requests < limits.min_requests or peer.errors < limits.min_errors:
        return False
    return error_rate_excess_z(unified.stats, peer) < limits.confidence_z


@dataclass(frozen=True, slots=True)
class DecisionState:
    """Hysteresis memory of one domain, carried from evaluation to evaluation."""

    critical_streak: int = 0
    healthy_streak: int = 0
    rolled_back: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecisionState:
        return cls(**data)


def decide(
    unified: Judgement | None,
    legacy: Judgement | None,
    state: DecisionState,
    settings: JudgeSettings,
    limits: Thresholds,
) -> tuple[Decision, DecisionState, tuple[str, ...]]:
    """One domain's decision at one evaluation, the next state, and why."""
    rolled_back = state.rolled_back
    # 1. Nothing to judge on unified (no traffic, too few requests): hold; a rollback stays.
    if unified is None or unified.health is Health.INSUFFICIENT_DATA:
        decision = Decision.ROLLBACK if rolled_back else Decision.HOLD
        return decision, DecisionState(0, 0, rolled_back), ("unified: insufficient data",)
    # 2. Legacy has it too: a shared regression (provider down) is not unified's fault.
    if unified.health is Health.CRITICAL and shares_regression(unified, legacy, limits):
        decision = Decision.ROLLBACK if rolled_back else Decision.HOLD
        return decision, DecisionState(0, 0, rolled_back), (
            "shared regression: legacy shows it too", *unified.reasons)
    # 3. Unified critical: rollback after `rollback_after` consecutive evaluations.
    if unified.health is Health.CRITICAL:
        streak = state.critical_streak + 1
        if rolled_back or streak >= settings.rollback_after:
            return Decision.ROLLBACK, DecisionState(streak, 0, True), (
                f"critical {streak} evaluation(s) in a row", *unified.reasons)
        return Decision.HOLD, DecisionState(streak, 0, False), (
            f"critical {streak}/{settings.rollback_after}", *unified.reasons)
    # 4. Unified warning: hold.
    if unified.health is Health.WARNING:
        decision = Decision.ROLLBACK if rolled_back else Decision.HOLD
        return decision, DecisionState(0, 0, rolled_back), unified.reasons
    # 5. Healthy after a rollback: stay rolled back until `recover_after` in a row.
    healthy = state.healthy_streak + 1
    if rolled_back and healthy < settings.recover_after:
        return Decision.ROLLBACK, DecisionState(0, healthy, True), (
            f"recovering: healthy {healthy}/{settings.recover_after}",)
    # 6. Healthy: proceed.
    return Decision.PROCEED, DecisionState(0, healthy, False), ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """SPEC "Verdict": one target's figures, verdict and its domain's decision at one instant."""

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

    @classmethod
    def of(cls, domain: str, routed_to: Target, judgement: Judgement, decision: Decision,
           reasons: tuple[str, ...]) -> Verdict:
        s = judgement.stats
        return cls(domain, routed_to, float(s.window_start_s), float(s.window_end_s),
                   s.requests, s.errors, round(s.error_pct, 6), s.p50_ms, s.p95_ms, s.p99_ms,
                   judgement.health, decision, reasons)

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
    missing = [f.name for f in fields(Verdict) if f.name not in value]
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
    known = {f.name: value[f.name] for f in fields(Verdict)}
    return Verdict(**{
        **known, "routed_to": Target(known["routed_to"]), "verdict": Health(known["verdict"]),
        "decision": Decision(known["decision"]), "window_start": float(known["window_start"]),
        "window_end": float(known["window_end"]), "error_pct": float(known["error_pct"]),
        "reasons": tuple(reasons)})


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
