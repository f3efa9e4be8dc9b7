"""The labelled scenario catalogue the scoreboard scores judges on.

Each entry builds a :class:`~trafficlight.tools.simulate.Scenario` for a seed; its labels are
the scenario's own incidents (:class:`~trafficlight.tools.simulate.Incident`): an incident with
``expect = rollback`` must be rolled back within its ``deadline_s`` of its start; nothing else
in the scenario may be rolled back (hold is fine). One with ``expect = hold`` (a routing
mismatch) must be held from ``deadline_s`` after its start to its end: never proceed, never
roll back. A scenario without either is labelled "must not roll back" as a whole. Thresholds
are SPEC's defaults (warning 0.1 % / 2000 ms, critical 0.5 % / 3000 ms).

Deadlines of sustained rates follow the volume (:func:`deadline_for`): three times the time
unified needs to serve the sample a fixed-size one-sided test (alpha 2.5 %, power 90 %) needs to
tell the true rate from the critical one. The factor three pays for looking at every second
(anytime-valid bounds are wider) and for a step's healthy past. The brief's fixed deadlines
(5 % at 100 unified req/s: 5 s; 10 % at 50 unified req/h: 60 min) are kept as given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from trafficlight.base.errors import InvalidInput
from trafficlight.tools.simulate import (
    Expect,
    Incident,
    IncidentKind,
    IncidentTarget,
    LatencyProfile,
    Scenario,
    default_targets,
)

#: 2026-11-28T08:00:00Z: a working morning, so the diurnal curve is rising.
START_TS = 1_795_852_800.0
MINUTE_S = 60.0
HOUR_S = 3_600.0
DAY_S = 86_400.0

CRITICAL_ERROR_PCT = 0.5
CRITICAL_P95_MS = 3_000.0
#: "P95 above X" is "more than 5 % of requests slower than X".
P95_SHARE_PCT = 5.0

_Z_ALPHA = 1.959964  # one-sided 2.5 %
_Z_POWER = 1.281552  # power 90 %


def fixed_sample_size(true_pct: float, limit_pct: float) -> float:
    """Requests a one-sided fixed-size test needs to tell ``true_pct`` from ``limit_pct``."""
    p0, p1 = limit_pct / 100, true_pct / 100
    if p1 <= p0:
        raise InvalidInput("a regression's rate must be above the limit")
    spread = _Z_ALPHA * math.sqrt(p0 * (1 - p0)) + _Z_POWER * math.sqrt(p1 * (1 - p1))
    return (spread / (p1 - p0)) ** 2


def deadline_for(true_pct: float, limit_pct: float, unified_per_s: float,
                 floor_s: float = 5.0) -> float:
    """Event-time seconds a judge gets to catch a rate ``true_pct`` over ``limit_pct``."""
    needed_s = 3 * fixed_sample_size(true_pct, limit_pct) / unified_per_s
    rounded = math.ceil(needed_s) if needed_s < MINUTE_S else math.ceil(needed_s / 60) * 60
    return float(max(floor_s, rounded))


def share_slower_pct(profile: LatencyProfile, factor: float, limit_ms: float) -> float:
    """Percent of a lognormal target's requests slower than ``limit_ms`` (latencies x factor)."""
    z = math.log(limit_ms / (profile.median_ms * factor)) / profile.sigma
    return 50.0 * math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class LabelledScenario:
    """A named entry of the catalogue: a seeded scenario whose incidents are its labels."""

    name: str
    summary: str
    build: Callable[[int], Scenario]
    #: Part of the default set (the 30-day soak is not: run it with --soak or in the bench).
    default: bool = True

    def scenario(self, seed: int) -> Scenario:
        return self.build(seed)

    def label(self, seed: int = 0) -> str:
        """The label a person reads: what must happen, by when."""
        incidents = self.scenario(seed).incidents
        must = [f"must roll back {i.domain} within {_duration(i.deadline_s)}"
                for i in incidents if i.must_roll_back]
        must += [f"must hold {i.domain} from {_duration(i.deadline_s)} on, never proceed"
                 for i in incidents if i.must_hold]
        return "; ".join(must) or "must not roll back"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "the scenario"
    if seconds < MINUTE_S:
        return f"{seconds:.0f} s"
    if seconds < HOUR_S:
        return f"{seconds / MINUTE_S:.0f} min"
    hours, rest = divmod(round(seconds / MINUTE_S), 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


# -- building blocks -------------------------------------------------------------------------

def _one_domain(seed: int, unified_per_s: float, duration_s: float, pct: float = 50.0,
                incidents: Sequence[Incident] = (), diurnal: float = 0.0,
                targets: dict[str, LatencyProfile] | None = None,
                steps: tuple[tuple[float, float], ...] | None = None,
                routed_pct: float | None = None) -> Scenario:
    """Domain ``jobs`` with ``unified_per_s`` unified requests a second at ``pct`` percent
    (the config's; ``routed_pct``: what the routing really sends, when it is not that)."""
    return Scenario(
        start_ts=START_TS, duration_s=duration_s,
        volumes_per_h={"jobs": unified_per_s * HOUR_S * 100 / pct},
        percentage_steps=steps or ((0.0, pct),), diurnal_amplitude=diurnal,
        targets=targets or default_targets(), incidents=tuple(incidents), seed=seed,
        routed_percentage_steps=None if routed_pct is None else ((0.0, routed_pct),))


def _incident(name: str, kind: IncidentKind, target: IncidentTarget, start_s: float,
              end_s: float, *, error_pct: float = 0.0, latency_factor: float = 1.0,
              deadline_s: float | None = None, expect: Expect | None = None,
              domain: str = "jobs") -> Incident:
    return Incident(name, kind, domain, target, START_TS + start_s, START_TS + end_s,
                    error_pct=error_pct, latency_factor=latency_factor, expect=expect,
                    deadline_s=deadline_s)


def _noisy_targets(unified_p95_ms: float, unified_error_pct: float) -> dict[str, LatencyProfile]:
    """Heavy-tailed latencies (lognormal sigma 0.8: P99 is 2.1x P95) on both targets."""
    return {"unified": LatencyProfile.with_p95(unified_p95_ms, 0.8, unified_error_pct),
            "legacy": LatencyProfile.with_p95(1_600.0, 0.8, 0.05)}


_UNIFIED = IncidentTarget.UNIFIED
_LEGACY = IncidentTarget.LEGACY
_BOTH = IncidentTarget.BOTH
_BUSY_PER_S = 100.0  # "100 unified req/s"
_MODERATE_PER_S = 10.0


def _error_spike(seed: int) -> Scenario:
    duration = 20 * MINUTE_S
    return _one_domain(seed, _BUSY_PER_S, duration, incidents=[_incident(
        "error-spike", IncidentKind.ERROR_SPIKE, _UNIFIED, 10 * MINUTE_S, duration,
        error_pct=5.0, deadline_s=5.0)])


def _sustained(true_pct: float, unified_per_s: float, start_s: float,
               duration_s: float) -> Callable[[int], Scenario]:
    def build(seed: int) -> Scenario:
        return _one_domain(seed, unified_per_s, duration_s, incidents=[_incident(
            f"errors-{true_pct:g}pct", IncidentKind.ERROR_RATE, _UNIFIED, start_s, duration_s,
            error_pct=true_pct,
            deadline_s=deadline_for(true_pct, CRITICAL_ERROR_PCT, unified_per_s))])
    return build


def _late_regression(seed: int) -> Scenario:
    """Step 25 % for 30 min, then 50 %; 2 % errors from 2 h into the 50 % step."""
    start, duration = 2.5 * HOUR_S, 3 * HOUR_S
    per_s = _MODERATE_PER_S
    return _one_domain(seed, per_s, duration, steps=((0.0, 25.0), (30 * MINUTE_S, 50.0)),
                       incidents=[_incident(
                           "late-errors-2pct", IncidentKind.ERROR_RATE, _UNIFIED, start,
                           duration, error_pct=2.0,
                           deadline_s=deadline_for(2.0, CRITICAL_ERROR_PCT, per_s))])


def _step_regression(seed: int) -> Scenario:
    """2 % errors from 25 min in; the step goes 25 % -> 50 % at 30 min: a regression that
    began before a step change (a new config version) must not be forgotten by it."""
    start, duration = 25 * MINUTE_S, 2 * HOUR_S
    return _one_domain(seed, _MODERATE_PER_S, duration, steps=((0.0, 25.0), (30 * MINUTE_S, 50.0)),
                       incidents=[_incident(
                           "errors-across-a-step", IncidentKind.ERROR_RATE, _UNIFIED, start,
                           duration, error_pct=2.0,
                           deadline_s=deadline_for(2.0, CRITICAL_ERROR_PCT,
                                                   _MODERATE_PER_S / 2))])


def _load_regression(seed: int) -> Scenario:
    """2 % errors from the moment the step goes 25 % -> 50 %, two hours in: a handler that
    breaks under the new step's load."""
    start, duration = 2 * HOUR_S, 3 * HOUR_S
    return _one_domain(seed, _MODERATE_PER_S, duration, steps=((0.0, 25.0), (start, 50.0)),
                       incidents=[_incident(
                           "errors-from-a-new-step", IncidentKind.ERROR_RATE, _UNIFIED, start,
                           duration, error_pct=2.0,
                           deadline_s=deadline_for(2.0, CRITICAL_ERROR_PCT, _MODERATE_PER_S))])


def _latency_creep(seed: int) -> Scenario:
    """Unified latencies grow linearly to 6x over 70 min from 10 min in: P95 800 ms ->
    4.8 s, crossing 3000 ms about 39 min into the creep. Deadline: the crossing, plus the
    time to tell 10 % slow requests from 5 % at 10 req/s, plus 10 min of drift."""
    start, duration, factor = 10 * MINUTE_S, 80 * MINUTE_S, 6.0
    unified = default_targets()["unified"]
    ramp = duration - start
    crossing = (CRITICAL_P95_MS / unified.p95_ms - 1) / (factor - 1) * ramp
    deadline = crossing + deadline_for(10.0, P95_SHARE_PCT, _MODERATE_PER_S) + 10 * MINUTE_S
    return _one_domain(seed, _MODERATE_PER_S, duration, incidents=[_incident(
        "latency-creep", IncidentKind.LATENCY_CREEP, _UNIFIED, start, duration,
        latency_factor=factor, deadline_s=math.ceil(deadline / 60) * 60)])


def _latency_step(seed: int) -> Scenario:
    """Unified latencies x4.5 at once (P95 800 ms -> 3.6 s: ~10.6 % of requests over 3 s)."""
    start, duration, factor = 10 * MINUTE_S, 40 * MINUTE_S, 4.5
    slow = share_slower_pct(default_targets()["unified"], factor, CRITICAL_P95_MS)
    return _one_domain(seed, _MODERATE_PER_S, duration, incidents=[_incident(
        "latency-step", IncidentKind.LATENCY_STEP, _UNIFIED, start, duration,
        latency_factor=factor,
        deadline_s=deadline_for(slow, P95_SHARE_PCT, _MODERATE_PER_S))])


def _shared_outage(seed: int) -> Scenario:
    """The provider fails for both: 30 % errors on legacy and unified for 10 min."""
    return _one_domain(seed, _MODERATE_PER_S, HOUR_S, incidents=[_incident(
        "shared-outage", IncidentKind.OUTAGE, _BOTH, 20 * MINUTE_S, 30 * MINUTE_S,
        error_pct=30.0)])


def _shared_slowdown(seed: int) -> Scenario:
    """The provider is slow for both: latencies x4.5 on legacy and unified for 15 min."""
    return _one_domain(seed, _MODERATE_PER_S, HOUR_S, incidents=[_incident(
        "shared-slowdown", IncidentKind.OUTAGE, _BOTH, 20 * MINUTE_S, 35 * MINUTE_S,
        latency_factor=4.5)])


def _legacy_trouble(name: str, error_pct: float, latency_factor: float
                    ) -> Callable[[int], Scenario]:
    def build(seed: int) -> Scenario:
        return _one_domain(seed, _MODERATE_PER_S, HOUR_S, incidents=[_incident(
            name, IncidentKind.LEGACY_TROUBLE, _LEGACY, 15 * MINUTE_S, 45 * MINUTE_S,
            error_pct=error_pct, latency_factor=latency_factor)])
    return build


def _mixed_slow_legacy(seed: int) -> Scenario:
    """Legacy slow (x5) while unified errs at 2 %: the errors are unified's own."""
    start, duration = 15 * MINUTE_S, HOUR_S
    return _one_domain(seed, _MODERATE_PER_S, duration, incidents=[
        _incident("unified-errors-2pct", IncidentKind.ERROR_RATE, _UNIFIED, start, duration,
                  error_pct=2.0,
                  deadline_s=deadline_for(2.0, CRITICAL_ERROR_PCT, _MODERATE_PER_S)),
        _incident("legacy-slow", IncidentKind.LEGACY_TROUBLE, _LEGACY, start, duration,
                  latency_factor=5.0),
    ])


def _mixed_erroring_legacy(seed: int) -> Scenario:
    """Legacy errs at 2 % while unified is slow (x4.5): the latency is unified's own."""
    start, duration, factor = 15 * MINUTE_S, HOUR_S, 4.5
    slow = share_slower_pct(default_targets()["unified"], factor, CRITICAL_P95_MS)
    return _one_domain(seed, _MODERATE_PER_S, duration, incidents=[
        _incident("unified-slow", IncidentKind.LATENCY_STEP, _UNIFIED, start, duration,
                  latency_factor=factor,
                  deadline_s=deadline_for(slow, P95_SHARE_PCT, _MODERATE_PER_S)),
        _incident("legacy-errors-2pct", IncidentKind.LEGACY_TROUBLE, _LEGACY, start, duration,
                  error_pct=2.0),
    ])


_RUNBOOK_UNIFIED_PER_S = 50.0 / HOUR_S  # the runbook's ~50 unified requests an hour


def _runbook_errors(seed: int) -> Scenario:
    """10 % errors at 50 unified requests an hour (jobs at 500/h, 10 %), from 1 h in."""
    duration = 4 * HOUR_S
    return _one_domain(seed, _RUNBOOK_UNIFIED_PER_S, duration, pct=10.0, incidents=[_incident(
        "runbook-errors-10pct", IncidentKind.ERROR_RATE, _UNIFIED, HOUR_S, duration,
        error_pct=10.0, deadline_s=HOUR_S)])


def _runbook_slow(seed: int) -> Scenario:
    """Unified latencies x6 (P95 0.8 s -> 4.8 s: 27 % of requests slower than 3 s) at 50
    unified requests an hour, from 1 h in."""
    duration, factor = 4 * HOUR_S, 6.0
    slow = share_slower_pct(default_targets()["unified"], factor, CRITICAL_P95_MS)
    return _one_domain(seed, _RUNBOOK_UNIFIED_PER_S, duration, pct=10.0, incidents=[_incident(
        "runbook-slow", IncidentKind.LATENCY_STEP, _UNIFIED, HOUR_S, duration,
        latency_factor=factor,
        deadline_s=deadline_for(slow, P95_SHARE_PCT, _RUNBOOK_UNIFIED_PER_S))])


def _runbook_healthy(seed: int) -> Scenario:
    return _one_domain(seed, _RUNBOOK_UNIFIED_PER_S, 12 * HOUR_S, pct=10.0, diurnal=0.5)


def _diurnal(seed: int) -> Scenario:
    """A whole day at 20x the runbook's jobs volume, night 10 % of the afternoon peak."""
    return _one_domain(seed, 1.0, DAY_S, pct=25.0, diurnal=0.82)


def _noisy_healthy(seed: int) -> Scenario:
    """Unified P95 1.8 s with a heavy tail and 0.3 % errors (under 0.5 %), 8 req/s, 6 h."""
    return _one_domain(seed, 8.0, 6 * HOUR_S, targets=_noisy_targets(1_800.0, 0.3))


def _bursty_healthy(unified_per_s: float) -> Callable[[int], Scenario]:
    """0.3 % errors (0.6x critical) on unified that come in runs of consecutive failures
    (mean 2: per-second counts vary ~3x as much as independent ones), legacy likewise at
    0.05 %, 6 h: no regression, only clustering a model of independent requests misreads."""
    def build(seed: int) -> Scenario:
        defaults = default_targets()
        targets = {t: LatencyProfile(p.median_ms, p.sigma, pct, error_run_mean=2.0)
                   for (t, p), pct in zip(defaults.items(), (0.05, 0.3), strict=True)}
        return _one_domain(seed, unified_per_s, 6 * HOUR_S, targets=targets)
    return build


def _bursty_latency(unified_per_s: float) -> Callable[[int], Scenario]:
    """Unified in the warning band (P95 2.5 s: 3 % slower than 3 s, 0.6x the critical
    share) with latency in runs of consecutive requests (mean 3: slow requests per second
    vary ~5x as much as independent ones), 0.2 % errors, 6 h: pauses, not a regression."""
    def build(seed: int) -> Scenario:
        targets = _noisy_targets(2_500.0, 0.2)
        targets["unified"] = replace(targets["unified"], latency_run_mean=3.0)
        return _one_domain(seed, unified_per_s, 6 * HOUR_S, targets=targets)
    return build


def _bursty_low_volume(seed: int) -> Scenario:
    """Unified at 0.3 req/s in the warning band (P95 2.6 s: 3.4 % slower than 3 s, 0.25 %
    errors), its latency and errors in runs of consecutive requests (mean 3), 6 h: at this
    volume a run spans seconds to minutes, and the burst estimate has no data for hours."""
    targets = _noisy_targets(2_600.0, 0.25)
    targets["unified"] = replace(targets["unified"], error_run_mean=3.0, latency_run_mean=3.0)
    return _one_domain(seed, 0.3, 6 * HOUR_S, targets=targets)


def _bursty_regression(seed: int) -> Scenario:
    """2 % errors from 15 min in on a unified whose background 0.3 % comes in runs (mean 2,
    ~3x Poisson's variance): bursts must not hide a real regression. Clustered counts carry
    1/3 of independent ones' information, so the deadline is three times the independent
    one's."""
    start, duration = 15 * MINUTE_S, HOUR_S
    targets = {"legacy": LatencyProfile(450.0, 0.5, 0.05, error_run_mean=2.0),
               "unified": LatencyProfile(380.0, 0.45, 0.3, error_run_mean=2.0)}
    return _one_domain(seed, _MODERATE_PER_S, duration, targets=targets, incidents=[_incident(
        "bursty-errors-2pct", IncidentKind.ERROR_RATE, _UNIFIED, start, duration,
        error_pct=2.0, deadline_s=3 * deadline_for(2.0, CRITICAL_ERROR_PCT, _MODERATE_PER_S))])


def _warning_band(seed: int) -> Scenario:
    """Unified in the warning band all along: P95 2.5 s (3 % over 3 s), 0.2 % errors."""
    return _one_domain(seed, 8.0, 6 * HOUR_S, targets=_noisy_targets(2_500.0, 0.2))


def _misrouted(unified_per_s: float, duration_s: float, deadline_s: float
               ) -> Callable[[int], Scenario]:
    """The config says 10 %, the routing sends 3 % (a router on a stale config, a proxy
    pinning senders to legacy); ``unified_per_s`` is what 10 % would have sent. Unified and
    legacy are healthy: only the share is wrong, so the comparison is biased and the rollout
    must hold (the sample-ratio guard), never proceed and never roll back."""
    def build(seed: int) -> Scenario:
        return _one_domain(seed, unified_per_s, duration_s, pct=10.0, routed_pct=3.0,
                           incidents=[_incident(
                               "misrouted-3pct-of-10", IncidentKind.MISROUTING, _BOTH, 0.0,
                               duration_s, deadline_s=deadline_s, expect=Expect.HOLD)])
    return build


def _soak(seed: int) -> Scenario:
    """30 days of the three rollout domains at the runbook's volumes, 50 %, noisy and
    heavy-tailed (unified P95 1.8 s, 0.25 % errors), diurnal."""
    return Scenario(start_ts=START_TS, duration_s=30 * DAY_S,
                    volumes_per_h={"jobs": 500.0, "marketplace": 300.0, "property": 200.0},
                    percentage_steps=((0.0, 50.0),), diurnal_amplitude=0.5,
                    targets=_noisy_targets(1_800.0, 0.25), seed=seed)


CATALOGUE: tuple[LabelledScenario, ...] = (
    LabelledScenario("error-spike", "5 % errors at 100 unified req/s", _error_spike),
    LabelledScenario("sustained-0.8pct", "0.8 % errors at 10 unified req/s",
                     _sustained(0.8, _MODERATE_PER_S, 15 * MINUTE_S, 2 * HOUR_S)),
    LabelledScenario("sustained-0.8pct-busy", "0.8 % errors at 100 unified req/s",
                     _sustained(0.8, _BUSY_PER_S, 10 * MINUTE_S, 40 * MINUTE_S)),
    LabelledScenario("sustained-2pct", "2 % errors at 10 unified req/s",
                     _sustained(2.0, _MODERATE_PER_S, 15 * MINUTE_S, HOUR_S)),
    LabelledScenario("late-regression", "2 % errors from 2 h into a 50 % step",
                     _late_regression),
    LabelledScenario("step-regression", "2 % errors from 5 min before a 25 -> 50 % step",
                     _step_regression),
    LabelledScenario("load-regression", "2 % errors from a 25 -> 50 % step's start",
                     _load_regression),
    LabelledScenario("latency-creep", "unified P95 drifting from 0.8 s over 3 s", _latency_creep),
    LabelledScenario("latency-step", "unified P95 0.8 s -> 3.6 s at once", _latency_step),
    LabelledScenario("shared-outage", "30 % errors on both targets for 10 min", _shared_outage),
    LabelledScenario("shared-slowdown", "both targets x4.5 slower for 15 min", _shared_slowdown),
    LabelledScenario("legacy-slow", "legacy x5 slower for 30 min, unified fine",
                     _legacy_trouble("legacy-slow", 0.0, 5.0)),
    LabelledScenario("legacy-errors", "legacy 5 % errors for 30 min, unified fine",
                     _legacy_trouble("legacy-errors", 5.0, 1.0)),
    LabelledScenario("mixed-slow-legacy", "legacy slow while unified errs at 2 %",
                     _mixed_slow_legacy),
    LabelledScenario("mixed-erroring-legacy", "legacy errs at 2 % while unified is slow",
                     _mixed_erroring_legacy),
    LabelledScenario("runbook-errors", "10 % errors at 50 unified requests an hour",
                     _runbook_errors),
    LabelledScenario("runbook-slow", "unified P95 0.8 s -> 4.8 s at 50 requests an hour",
                     _runbook_slow),
    LabelledScenario("runbook-healthy", "healthy at 50 unified requests an hour, 12 h",
                     _runbook_healthy),
    LabelledScenario("diurnal", "a healthy day with a deep day/night swing", _diurnal),
    LabelledScenario("noisy-healthy", "P95 1.8 s heavy tail, 0.3 % errors, 6 h", _noisy_healthy),
    LabelledScenario("bursty-healthy", "0.3 % errors in runs (3x Poisson's variance), "
                     "10 unified req/s, 6 h", _bursty_healthy(_MODERATE_PER_S)),
    LabelledScenario("bursty-healthy-busy", "the same at 100 unified req/s",
                     _bursty_healthy(_BUSY_PER_S)),
    LabelledScenario("bursty-latency", "P95 2.5 s with latency in runs (pauses), 8 unified "
                     "req/s, 6 h", _bursty_latency(8.0)),
    LabelledScenario("bursty-latency-busy", "the same at 100 unified req/s",
                     _bursty_latency(_BUSY_PER_S)),
    LabelledScenario("bursty-low-volume", "P95 2.6 s and 0.25 % errors, both in runs, 0.3 "
                     "unified req/s, 6 h", _bursty_low_volume),
    LabelledScenario("bursty-regression", "2 % errors on a unified whose 0.3 % come in runs",
                     _bursty_regression),
    LabelledScenario("warning-band", "P95 2.5 s and 0.2 % errors (warning band), 6 h",
                     _warning_band),
    LabelledScenario("misrouted", "routing sends 3 % while the config says 10 %, 1 h",
                     _misrouted(_MODERATE_PER_S, HOUR_S, 2 * MINUTE_S)),
    LabelledScenario("misrouted-runbook", "3 % routed of 10 % configured at the runbook's "
                     "volume, 12 h", _misrouted(_RUNBOOK_UNIFIED_PER_S, 12 * HOUR_S, 6 * HOUR_S)),
    LabelledScenario("soak-30d", "30 healthy noisy days per domain", _soak, default=False),
)


def catalogue_names() -> list[str]:
    return [entry.name for entry in CATALOGUE]


def select(names: Sequence[str] | None = None, soak: bool = False) -> list[LabelledScenario]:
    """Entries by name (in catalogue order), or the default set (plus the soak if asked)."""
    if not names:
        return [e for e in CATALOGUE if e.default or soak]
    by_name = {e.name: e for e in CATALOGUE}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise InvalidInput(f"unknown scenario(s) {', '.join(unknown)}; known: "
                           f"{', '.join(by_name)}")
    wanted = set(names)
    return [e for e in CATALOGUE if e.name in wanted]
