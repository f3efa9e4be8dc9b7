"""Realistic, labelled routing events for tests, benchmarks, backtesting and the scoreboard.

Pure generation: a seeded numpy generator drives everything, so the same :class:`Scenario`
always yields the same events, byte for byte. Arrivals are a Poisson process whose rate
follows the day (``diurnal_amplitude``: peak at 14:00 UTC, trough at 02:00; the mean over a
day is the preset's hourly volume), drawn by thinning, chunk by chunk of event time, so events
come out in time order and a scenario of any length streams in constant memory. The work is
vectorised: :func:`generate_batches` yields columnar :class:`EventBatch` chunks straight to a
judge (millions of events a second, so a 30-day soak is cheap), :func:`generate` the same
events as SPEC dicts for files. Latencies are lognormal per target; incidents change the
events in their scope and label them (``"label": <incident name>``), and
:func:`write_incidents` writes the sidecar ``<out>.incidents.json`` that replay and the
scoreboard read.

:class:`Incident` is the one label concept: what happens (target, error rate, latency factor,
ramped or stepped), when, and what a judge must do about it (:class:`Expect`: roll back within
``deadline_s`` of ``start_ts``, or not roll back).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from trafficlight.base.errors import InvalidInput
from trafficlight.router.decision import sticky_bucket, unified_buckets
from trafficlight.streams.events import EventBatch, Target


class IncidentKind(StrEnum):
    ERROR_SPIKE = "error_spike"
    ERROR_RATE = "error_rate"
    LATENCY_CREEP = "latency_creep"
    LATENCY_STEP = "latency_step"
    OUTAGE = "outage"
    LEGACY_TROUBLE = "legacy_trouble"
    #: The routing is not what the config says (``Scenario.routed_percentage_steps``).
    MISROUTING = "misrouting"


class IncidentTarget(StrEnum):
    UNIFIED = "unified"
    LEGACY = "legacy"
    BOTH = "both"


class Expect(StrEnum):
    """What a judge must do about an incident."""

    ROLLBACK = "rollback"
    NO_ROLLBACK = "no_rollback"
    #: Hold from ``deadline_s`` after the start to the end: never proceed, never roll back.
    HOLD = "hold"


#: Kinds `default_incident` (and `trafficlight simulate --incident`) makes.
INCIDENT_KINDS: tuple[str, ...] = ("error_spike", "latency_creep", "outage")

#: Requests per hour per rollout domain, as in the runbook.
RUNBOOK_VOLUMES_PER_H: dict[str, float] = {"jobs": 500.0, "marketplace": 300.0, "property": 200.0}

_PEAK_HOUR_UTC = 14.0
_ERROR_STATUSES: tuple[tuple[int, str], ...] = (
    (500, "upstream returned 500"),
    (502, "upstream returned 502"),
    (504, "upstream timed out"),
)
#: Events drawn per chunk of event time (on average): bounds memory, keeps numpy efficient.
_EVENTS_PER_CHUNK = 50_000
_TARGETS = (Target.UNIFIED.value, Target.LEGACY.value)


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    """Lognormal latency and background error rate of one target (P95: median e^(1.645 sigma)).

    ``error_run_mean`` > 1: background errors come in runs of consecutive failed requests of
    the target (geometric lengths of that mean, the rate still ``error_pct``), as a flaky
    connection pool or a retry storm makes them: per-second error counts then vary about
    ``2 * error_run_mean - 1`` times as much as independent failures would.
    ``latency_run_mean`` > 1: consecutive requests of the target share their latency in runs
    of that mean length (one normal draw a run: the lognormal is kept request by request), as
    a pause or a slow dependency makes them, so slow requests come in runs too."""

    median_ms: float
    sigma: float
    error_pct: float
    error_run_mean: float = 1.0
    latency_run_mean: float = 1.0

    @classmethod
    def with_p95(cls, p95_ms: float, sigma: float, error_pct: float,
                 error_run_mean: float = 1.0, latency_run_mean: float = 1.0) -> LatencyProfile:
        return cls(p95_ms / math.exp(1.6448536 * sigma), sigma, error_pct, error_run_mean,
                   latency_run_mean)

    @property
    def p95_ms(self) -> float:
        return self.median_ms * math.exp(1.6448536 * self.sigma)


@dataclass(frozen=True, slots=True)
class Incident:
    """A labelled stretch of one domain: events in scope get ``"label": name``.

    ``target`` is whose events change: ``unified``, ``legacy`` or ``both`` (a provider outage
    that legacy shares). ``error_pct`` is the error rate inside the incident (the background
    rate when lower); latencies are multiplied by ``latency_factor`` (growing linearly from 1
    at ``start_ts`` for a creep, at once otherwise). ``expect`` is the label a judge is scored
    on (by default: roll back when only unified is hit, else not), ``deadline_s`` the event
    time from ``start_ts`` by which the rollback must come.
    """

    name: str
    kind: IncidentKind
    domain: str
    target: IncidentTarget
    start_ts: float
    end_ts: float
    error_pct: float = 0.0
    latency_factor: float = 1.0
    expect: Expect | None = None
    deadline_s: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "kind", IncidentKind(self.kind))
        set_(self, "target", IncidentTarget(self.target))
        if self.expect is None:
            set_(self, "expect", Expect.ROLLBACK if self.target is IncidentTarget.UNIFIED
                 else Expect.NO_ROLLBACK)
        else:
            set_(self, "expect", Expect(self.expect))
        if self.end_ts <= self.start_ts:
            raise InvalidInput(f"incident {self.name!r}: end must be after start")

    @property
    def shared(self) -> bool:
        """Both targets regress: the right decision is hold, not rollback."""
        return self.target is IncidentTarget.BOTH

    @property
    def must_roll_back(self) -> bool:
        return self.expect is Expect.ROLLBACK

    @property
    def must_hold(self) -> bool:
        return self.expect is Expect.HOLD

    @property
    def ramps(self) -> bool:
        return self.kind is IncidentKind.LATENCY_CREEP

    def covers(self, domain: str, routed_to: str, ts: float) -> bool:
        return (self.start_ts <= ts < self.end_ts and domain == self.domain
                and (self.target is IncidentTarget.BOTH or routed_to == self.target))

    @classmethod
    def from_labels(cls, label: str, domain: str, first_ts: float, last_ts: float) -> Incident:
        """What replay knows of an incident from its labelled events alone (no sidecar):
        a name containing "shared" is one both targets have."""
        shared = "shared" in label
        return cls(label, IncidentKind.OUTAGE if shared else IncidentKind.ERROR_SPIKE, domain,
                   IncidentTarget.BOTH if shared else IncidentTarget.UNIFIED, first_ts,
                   max(last_ts, first_ts + 1e-3))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in out.items()}


def default_targets() -> dict[str, LatencyProfile]:
    """Legacy a little slower than unified; both P95 near 1 s, well under the 2 s target."""
    return {
        Target.LEGACY.value: LatencyProfile(median_ms=450.0, sigma=0.5, error_pct=0.02),
        Target.UNIFIED.value: LatencyProfile(median_ms=380.0, sigma=0.45, error_pct=0.02),
    }


@dataclass(frozen=True)
class Scenario:
    """What to generate. ``percentage_steps`` are (offset_s, pct) from ``start_ts``: the
    config, every domain at pct; the event's ``config_version`` is the step's position,
    counting from 1. ``routed_percentage_steps``: what the routing really does when it is not
    what the config says (a router on a stale config, a proxy pinning traffic); None: the
    config's."""

    start_ts: float
    duration_s: float
    volumes_per_h: dict[str, float] = field(default_factory=lambda: dict(RUNBOOK_VOLUMES_PER_H))
    percentage_steps: tuple[tuple[float, float], ...] = ((0.0, 10.0),)
    diurnal_amplitude: float = 0.5
    targets: dict[str, LatencyProfile] = field(default_factory=default_targets)
    incidents: tuple[Incident, ...] = ()
    routed_percentage_steps: tuple[tuple[float, float], ...] | None = None
    #: Distinct senders per domain: the sticky keys that the split hashes.
    senders_per_domain: int = 5_000
    routers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.duration_s <= 0:
            raise InvalidInput("duration must be positive")
        if not self.volumes_per_h or min(self.volumes_per_h.values()) < 0:
            raise InvalidInput("volumes must be given and not negative")
        if not 0 <= self.diurnal_amplitude <= 1:
            raise InvalidInput("diurnal amplitude must be between 0 and 1")
        for steps in (self.percentage_steps, self.routed_percentage_steps):
            if steps is None:
                continue
            if not steps or steps[0][0] != 0:
                raise InvalidInput("percentage steps must start at offset 0")
            for _, pct in steps:
                if not 0 <= pct <= 100:
                    raise InvalidInput(f"percentage must be between 0 and 100, got {pct}")
        for incident in self.incidents:
            if incident.domain not in self.volumes_per_h:
                raise InvalidInput(f"incident {incident.name!r}: unknown domain "
                                    f"{incident.domain!r}")

    @property
    def end_ts(self) -> float:
        return self.start_ts + self.duration_s

    def configured_shares(self) -> dict[int, dict[str, float]]:
        """The config's percentage per domain of each config version (the judge's
        `streams.sample_ratio.StaticShares`)."""
        return {version: dict.fromkeys(self.volumes_per_h, pct)
                for version, (_, pct) in enumerate(self.percentage_steps, start=1)}

    def percentage_at(self, offset_s: float) -> float:
        """The rollout percentage in force ``offset_s`` after the start."""
        pct = self.percentage_steps[0][1]
        for at_s, step_pct in self.percentage_steps:
            if at_s <= offset_s:
                pct = step_pct
        return pct


def diurnal_factor(ts: float | np.ndarray, amplitude: float) -> Any:
    """Traffic relative to the day's mean at ``ts``: 1 + amplitude at 14:00 UTC."""
    hour = (ts % 86_400) / 3_600
    return 1.0 + amplitude * np.cos(2 * math.pi * (hour - _PEAK_HOUR_UTC) / 24)


def routed_to_for(bucket: int, pct: float) -> Target:
    """The router's split (router.decision), applied to a precomputed sticky bucket."""
    return Target.UNIFIED if bucket < unified_buckets(pct) else Target.LEGACY


def sticky_run_totals(seed: int, run_length: int, looks: int = 100,
                      runs_per_look: int = 25) -> Iterator[tuple[float, int, int]]:
    """Healthy routing by sticky sender, as the sample-ratio guard sees it: each run is
    `run_length` requests of one sender, all on one target, and runs land on unified at the
    configured share (1 %, 10 % or 50 % by `seed`). Yields (configured %, unified, legacy)
    totals after each look, `runs_per_look` runs apart."""
    rng = np.random.default_rng(seed)
    share = (0.01, 0.10, 0.50)[seed % 3]
    unified = legacy = 0
    for _ in range(looks):
        k = int((rng.random(runs_per_look) < share).sum()) * run_length
        unified, legacy = unified + k, legacy + runs_per_look * run_length - k
        yield share * 100, unified, legacy


@dataclass(slots=True)
class _Chunk:
    """One chunk of generated events, as columns (codes index `domains` and `_TARGETS`)."""

    ts: np.ndarray
    domain: np.ndarray
    target: np.ndarray
    latency_ms: np.ndarray
    failed: np.ndarray
    status_index: np.ndarray
    step: np.ndarray
    label: np.ndarray


class _Generator:
    """The scenario's random draws, in one fixed order, chunk after chunk of event time."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = s = scenario
        self.rng = np.random.default_rng(s.seed)
        self.domains = list(s.volumes_per_h)
        self.rates_per_s = np.array([s.volumes_per_h[d] / 3_600 for d in self.domains])
        peak_total = float(self.rates_per_s.sum()) * (1 + s.diurnal_amplitude)
        self.chunk_s = float(min(max(_EVENTS_PER_CHUNK / peak_total, 1.0), 86_400.0)
                             ) if peak_total else s.duration_s
        # Sender buckets hashed once: the split then costs a comparison per event.
        self.buckets = np.array([[sticky_bucket(d, _sender(d, i))
                                  for i in range(s.senders_per_domain)] for d in self.domains],
                                dtype=np.int64)
        self.step_ts = np.array([s.start_ts + off for off, _ in s.percentage_steps])
        routed = s.routed_percentage_steps or s.percentage_steps
        self.route_ts = np.array([s.start_ts + off for off, _ in routed])
        self.route_cut = np.array([unified_buckets(pct) for _, pct in routed])
        self.labels = np.array([None, *(i.name for i in s.incidents)], dtype=object)
        self.profiles = [s.targets[t] for t in _TARGETS]

    def chunks(self) -> Iterator[_Chunk]:
        s = self.scenario
        if not self.rates_per_s.sum():
            return
        lo = s.start_ts
        while lo < s.end_ts:
            hi = min(lo + self.chunk_s, s.end_ts)
            chunk = self._chunk(lo, hi)
            if len(chunk.ts):
                yield chunk
            lo = hi

    def _chunk(self, lo: float, hi: float) -> _Chunk:
        s, rng = self.scenario, self.rng
        amplitude = s.diurnal_amplitude
        times, codes = [], []
        for code, rate in enumerate(self.rates_per_s):
            n = int(rng.poisson(rate * (1 + amplitude) * (hi - lo)))
            ts = np.sort(rng.uniform(lo, hi, n))
            # Thinning: keep an arrival with probability rate(ts) / peak rate.
            keep = rng.random(n) * (1 + amplitude) <= diurnal_factor(ts, amplitude)
            times.append(ts[keep])
            codes.append(np.full(int(keep.sum()), code, np.int64))
        ts = np.round(np.concatenate(times), 3)
        domain = np.concatenate(codes)
        order = np.argsort(ts, kind="stable")
        ts, domain = ts[order], domain[order]
        n = len(ts)
        sender = rng.integers(0, s.senders_per_domain, n)
        step = np.searchsorted(self.step_ts, ts, side="right") - 1
        route = np.searchsorted(self.route_ts, ts, side="right") - 1
        target = (self.buckets[domain, sender] >= self.route_cut[route]).astype(np.int64)
        sigma = np.array([p.sigma for p in self.profiles])[target]
        median = np.array([p.median_ms for p in self.profiles])[target]
        latency = median * np.exp(sigma * rng.standard_normal(n))
        for code, profile in enumerate(self.profiles):
            for d in range(len(self.domains)) if profile.latency_run_mean > 1 else ():
                index = np.flatnonzero((target == code) & (domain == d))
                shared = self._run_draws(len(index), profile.latency_run_mean)
                latency[index] = profile.median_ms * np.exp(profile.sigma * shared)
        error_pct = np.array([p.error_pct for p in self.profiles])[target]
        label = np.zeros(n, np.int64)
        for number, incident in enumerate(s.incidents, start=1):
            scope = ((ts >= incident.start_ts) & (ts < incident.end_ts)
                     & (domain == self.domains.index(incident.domain)))
            if incident.target is not IncidentTarget.BOTH:
                scope &= target == _TARGETS.index(incident.target)
            scope &= label == 0  # the first incident listed labels an event in two scopes
            if not scope.any():
                continue
            label[scope] = number
            error_pct[scope] = np.maximum(error_pct[scope], incident.error_pct)
            if incident.ramps:
                progress = (ts[scope] - incident.start_ts) / (incident.end_ts - incident.start_ts)
                latency[scope] *= 1 + (incident.latency_factor - 1) * progress
            else:
                latency[scope] *= incident.latency_factor
        failed = rng.random(n) * 100 < error_pct
        for code, profile in enumerate(self.profiles):
            for d in range(len(self.domains)) if profile.error_run_mean > 1 else ():
                self._runs_of_errors(failed, (target == code) & (domain == d) & (label == 0),
                                     profile)
        status_index = rng.integers(0, len(_ERROR_STATUSES), n)
        return _Chunk(ts, domain, target, np.round(latency, 2), failed, status_index, step,
                      self.labels[label])

    def _run_draws(self, count: int, mean: float) -> np.ndarray:
        """`count` standard normal values, consecutive ones equal in runs of geometric length
        (mean `mean`): each value alone is N(0, 1)."""
        lengths = self.rng.geometric(1 / mean, max(1, int(2 * count / mean) + 10))
        while int(lengths.sum()) < count:
            lengths = np.concatenate((lengths, self.rng.geometric(1 / mean, len(lengths))))
        draws = self.rng.standard_normal(len(lengths))
        return np.repeat(draws, lengths)[:count]

    def _runs_of_errors(self, failed: np.ndarray, scope: np.ndarray,
                        profile: LatencyProfile) -> None:
        """Redraw the background errors of ``scope`` (one domain's and target's events
        outside incidents, in time order) as runs: a run starts at a request with probability
        rate / mean run length, and fails it and the next ones, geometric in number (runs are
        cut at the chunk's end)."""
        index = np.flatnonzero(scope)
        mean = profile.error_run_mean
        starts = np.flatnonzero(self.rng.random(len(index)) * 100 * mean < profile.error_pct)
        lengths = self.rng.geometric(1 / mean, len(starts))
        offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths,
                                                            lengths)
        positions = np.repeat(starts, lengths) + offsets
        failed[index] = False
        failed[index[positions[positions < len(index)]]] = True


def generate_batches(scenario: Scenario) -> Iterator[EventBatch]:
    """The scenario's events as columnar batches in ``ts`` order (what a judge ingests).

    The same events as :func:`generate`; no per-event Python work but the string columns.
    """
    gen = _Generator(scenario)
    domains = np.array(gen.domains, dtype=object)
    targets = np.array(_TARGETS, dtype=object)
    for chunk in gen.chunks():
        yield EventBatch(ts_s=chunk.ts, domain=domains[chunk.domain].tolist(),
                         routed_to=targets[chunk.target].tolist(),
                         response_time_ms=chunk.latency_ms, is_error=chunk.failed,
                         label=chunk.label.tolist(), records=[],
                         config_version=chunk.step.astype(np.int64) + 1)


def generate(scenario: Scenario) -> Iterator[dict[str, Any]]:
    """The scenario's events as SPEC routing-event dicts, in ``ts`` order."""
    gen = _Generator(scenario)
    count = 0
    for chunk in gen.chunks():
        columns = zip(chunk.ts.tolist(), chunk.domain.tolist(), chunk.target.tolist(),
                      chunk.latency_ms.tolist(), chunk.failed.tolist(),
                      chunk.status_index.tolist(), chunk.step.tolist(), chunk.label.tolist(),
                      strict=True)
        for ts, domain, target, latency, failed, status, step, label in columns:
            count += 1
            http_status, message = _ERROR_STATUSES[status] if failed else (200, None)
            event: dict[str, Any] = {
                "event_id": f"sim{scenario.seed}-{count}",
                "ts": ts,
                "domain": gen.domains[domain],
                "routed_to": _TARGETS[target],
                "response_time_ms": latency,
                "status": "error" if failed else "success",
                "http_status": http_status,
                "error_message": message,
                "router_id": f"sim-router-{count % scenario.routers}",
                "config_version": step + 1,
            }
            if label is not None:
                event["label"] = label
            yield event


def _sender(domain: str, index: int) -> str:
    return f"{domain}-sender-{index}"


def default_incident(kind: str, domain: str, start_ts: float, end_ts: float) -> Incident:
    """An incident of ``kind`` with magnitudes that the default thresholds must catch."""
    # Without a sidecar, replay reads a name containing "shared" as one both targets have.
    prefix = "shared-outage" if kind == "outage" else kind.replace("_", "-")
    name = f"{prefix}-{domain}-{int(start_ts)}"
    unified, both = IncidentTarget.UNIFIED, IncidentTarget.BOTH
    if kind == IncidentKind.ERROR_SPIKE:
        return Incident(name, IncidentKind.ERROR_SPIKE, domain, unified, start_ts, end_ts,
                        error_pct=5.0)
    if kind == IncidentKind.LATENCY_CREEP:
        return Incident(name, IncidentKind.LATENCY_CREEP, domain, unified, start_ts, end_ts,
                        latency_factor=6.0)  # P95 above critical for its second half
    if kind == IncidentKind.OUTAGE:
        return Incident(name, IncidentKind.OUTAGE, domain, both, start_ts, end_ts,
                        error_pct=30.0)
    raise InvalidInput(f"unknown incident kind {kind!r}; expected one of {INCIDENT_KINDS}")


def incidents_path(out: Path) -> Path:
    """Where the incident sidecar of an event file lives."""
    return out.with_name(out.name + ".incidents.json")


def write_incidents(out: Path, incidents: Sequence[Incident]) -> Path:
    path = incidents_path(out)
    ordered = sorted(incidents, key=lambda i: (i.start_ts, i.name))
    path.write_text(json.dumps([i.to_dict() for i in ordered], indent=2) + "\n")
    return path


def read_incidents(path: Path) -> list[Incident]:
    """The incidents of a sidecar file (the event file's own path is accepted too)."""
    if not path.name.endswith(".incidents.json"):
        path = incidents_path(path)
    try:
        return [Incident(**item) for item in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidInput(f"cannot read incidents from {path}: {exc}") from None
