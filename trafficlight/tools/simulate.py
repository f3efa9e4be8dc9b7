"""Realistic, labelled routing-event files for tests, benchmarks and backtesting.

Pure generation: a seeded :class:`random.Random` drives everything, so the same
:class:`Scenario` always yields the same events, byte for byte. Arrivals are a Poisson process
whose rate follows the day (``diurnal_amplitude``: peak at 14:00 UTC, trough at 02:00; the mean
over a day is the preset's hourly volume), drawn by thinning so events come out in time order
and a file of any length streams in constant memory. Latencies are lognormal per target;
incidents change the events in their scope and label them (``"label": <incident name>``), and
:func:`write_incidents` writes the sidecar ``<out>.incidents.json`` that replay scores against.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from trafficlight.base.errors import InvalidInput
from trafficlight.router.decision import sticky_bucket, unified_buckets
from trafficlight.streams.events import Target

IncidentKind = Literal["error_spike", "latency_creep", "outage"]
INCIDENT_KINDS: tuple[IncidentKind, ...] = ("error_spike", "latency_creep", "outage")

#: Requests per hour per rollout domain, as in the runbook.
RUNBOOK_VOLUMES_PER_H: dict[str, float] = {"jobs": 500.0, "marketplace": 300.0, "property": 200.0}


_PEAK_HOUR_UTC = 14.0
_ERROR_STATUSES: tuple[tuple[int, str], ...] = (
    (500, "upstream returned 500"),
    (502, "upstream returned 502"),
    (504, "upstream timed out"),
)



@dataclass(frozen=True, slots=True)
class LatencyProfile:
    """Lognormal latency and background error rate of one target."""

    median_ms: float
    sigma: float
    error_pct: float


@dataclass(frozen=True, slots=True)
class Incident:
    """A labelled regression: events in scope get ``"label": name``.

    ``target`` is ``unified`` or ``both`` (a provider outage that legacy shares: the right
    decision there is hold, not rollback). ``error_pct`` is the error rate inside the incident;
    ``latency_factor`` is what latencies are multiplied by at its end (a creep grows linearly
    from 1 at ``start_ts``).
    """

    name: str
    kind: IncidentKind
    domain: str
    target: Literal["unified", "both"]
    start_ts: float
    end_ts: float
    error_pct: float = 0.0
    latency_factor: float = 1.0

    def covers(self, domain: str, routed_to: str, ts: float) -> bool:
        return (self.start_ts <= ts < self.end_ts and domain == self.domain
                and (self.target == "both" or routed_to == self.target))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_targets() -> dict[str, LatencyProfile]:
    """Legacy a little slower than unified; both P95 near 1 s, well under the 2 s target."""
    return {
        Target.LEGACY.value: LatencyProfile(median_ms=450.0, sigma=0.5, error_pct=0.02),
        Target.UNIFIED.value: LatencyProfile(median_ms=380.0, sigma=0.45, error_pct=0.02),
    }


@dataclass(frozen=True)
class Scenario:
    """What to generate. ``percentage_steps`` are (offset_s, pct) from ``start_ts``; the
    event's ``config_version`` is the step's position, counting from 1."""

    start_ts: float
    duration_s: float
    volumes_per_h: dict[str, float] = field(default_factory=lambda: dict(RUNBOOK_VOLUMES_PER_H))
    percentage_steps: tuple[tuple[float, float], ...] = ((0.0, 10.0),)
    diurnal_amplitude: float = 0.5
    targets: dict[str, LatencyProfile] = field(default_factory=default_targets)
    incidents: tuple[Incident, ...] = ()
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
        if not self.percentage_steps or self.percentage_steps[0][0] != 0:
            raise InvalidInput("percentage steps must start at offset 0")
        for _, pct in self.percentage_steps:
            if not 0 <= pct <= 100:
                raise InvalidInput(f"percentage must be between 0 and 100, got {pct}")
        for incident in self.incidents:
            if incident.domain not in self.volumes_per_h:
                raise InvalidInput(f"incident {incident.name!r}: unknown domain "
                                    f"{incident.domain!r}")


def diurnal_factor(ts: float, amplitude: float) -> float:
    """Traffic relative to the day's mean at ``ts``: 1 + amplitude at 14:00 UTC."""
    hour = (ts % 86_400) / 3_600
    return 1.0 + amplitude * math.cos(2 * math.pi * (hour - _PEAK_HOUR_UTC) / 24)


def routed_to_for(bucket: int, pct: float) -> Target:
    """The router's split (router.decision), applied to a precomputed sticky bucket."""
    return Target.UNIFIED if bucket < unified_buckets(pct) else Target.LEGACY


def generate(scenario: Scenario) -> Iterator[dict[str, Any]]:
    """The scenario's events as SPEC routing-event dicts, in ``ts`` order."""
    rng = random.Random(scenario.seed)
    domains = list(scenario.volumes_per_h)
    cumulative = _cumulative(scenario.volumes_per_h.values())
    total_per_s = sum(scenario.volumes_per_h.values()) / 3_600
    if total_per_s == 0:
        return
    peak_per_s = total_per_s * (1 + scenario.diurnal_amplitude)
    # Sender buckets hashed once: the split then costs a comparison per event.
    buckets = {d: [sticky_bucket(d, _sender(d, i)) for i in range(scenario.senders_per_domain)]
               for d in domains}
    steps = [(scenario.start_ts + offset, pct) for offset, pct in scenario.percentage_steps]
    end_ts = scenario.start_ts + scenario.duration_s
    step_index = 0
    ts = scenario.start_ts
    count = 0
    while True:
        ts += rng.expovariate(peak_per_s)
        if ts >= end_ts:
            return
        # Thinning: keep an arrival with probability rate(ts) / peak rate.
        if rng.random() * (1 + scenario.diurnal_amplitude) > diurnal_factor(
                ts, scenario.diurnal_amplitude):
            continue
        while step_index + 1 < len(steps) and steps[step_index + 1][0] <= ts:
            step_index += 1
        domain = domains[_pick(cumulative, rng.random())]
        sender = rng.randrange(scenario.senders_per_domain)
        routed_to = routed_to_for(buckets[domain][sender], steps[step_index][1])
        count += 1
        yield _event(scenario, rng, count, round(ts, 3), domain, routed_to, step_index + 1)


def _event(scenario: Scenario, rng: random.Random, number: int, ts: float, domain: str,
           routed_to: str, config_version: int) -> dict[str, Any]:
    profile = scenario.targets[routed_to]
    latency_ms = profile.median_ms * math.exp(profile.sigma * rng.gauss(0.0, 1.0))
    error_pct = profile.error_pct
    label = None
    for incident in scenario.incidents:
        if incident.covers(domain, routed_to, ts):
            label = incident.name
            error_pct = max(error_pct, incident.error_pct)
            progress = (ts - incident.start_ts) / (incident.end_ts - incident.start_ts)
            latency_ms *= 1 + (incident.latency_factor - 1) * progress
    failed = rng.random() * 100 < error_pct
    http_status, error_message = (_ERROR_STATUSES[rng.randrange(len(_ERROR_STATUSES))]
                                  if failed else (200, None))
    event: dict[str, Any] = {
        "event_id": f"sim{scenario.seed}-{number}",
        "ts": ts,
        "domain": domain,
        "routed_to": routed_to,
        "response_time_ms": round(latency_ms, 2),
        "status": "error" if failed else "success",
        "http_status": http_status,
        "error_message": error_message,
        "router_id": f"sim-router-{number % scenario.routers}",
        "config_version": config_version,
    }
    if label is not None:
        event["label"] = label
    return event


def _sender(domain: str, index: int) -> str:
    return f"{domain}-sender-{index}"


def _cumulative(weights: Iterable[float]) -> list[float]:
    values = list(weights)
    total = sum(values)
    running = 0.0
    out = []
    for value in values:
        running += value / total
        out.append(running)
    out[-1] = 1.0
    return out


def _pick(cumulative: list[float], u: float) -> int:
    for index, bound in enumerate(cumulative):
        if u < bound:
            return index
    return len(cumulative) - 1


def default_incident(kind: IncidentKind, domain: str, start_ts: float, end_ts: float) -> Incident:
    """An incident of ``kind`` with magnitudes that the default thresholds must catch."""
    # core's replay reads a name containing "shared" as a regression both targets have.
    prefix = "shared-outage" if kind == "outage" else kind.replace("_", "-")
    name = f"{prefix}-{domain}-{int(start_ts)}"
    if kind == "error_spike":
        return Incident(name, kind, domain, "unified", start_ts, end_ts, error_pct=5.0)
    if kind == "latency_creep":
        return Incident(name, kind, domain, "unified", start_ts, end_ts, latency_factor=4.0)
    if kind == "outage":
        return Incident(name, kind, domain, "both", start_ts, end_ts, error_pct=30.0)
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
