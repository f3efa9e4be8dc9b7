"""The sample-ratio guard: is a domain's share on unified what its config says? Pure, no I/O.

If the routing is not what the config says (a router on a stale config, a sticky key that is
not spread, a proxy in front that pins traffic), every comparison of unified with legacy is
biased and promotion is unsafe. Per domain and step (config version), the guard compares the
step's unified requests among all the domain's requests with the configured percentage of
that version (`streams.evidence.sample_ratio_log_e`: anytime-valid at `srm_alpha`, with a
relative `srm_tolerance` band and a `srm_dispersion` factor for sticky senders). A mismatch
makes the domain's decision `hold`, never `rollback` (a routing problem, not a handler
regression; `streams.verdicts.decide`), with one reason stating the evidence.

The configured share is data, from a `ConfiguredShares`: `StaticShares` (replay
`--config-db`, tests, the scoreboard's scenarios) or the worker's cache of Postgres
(`streams.config_shares`). Unknown (no source, a version not known yet, a domain the version
does not roll out) or 0 % (disabled, protected: requests still in flight at a rollback are no
mismatch): the guard is off and says nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from trafficlight.streams.evidence import e_text, sample_ratio_log_e
from trafficlight.streams.thresholds import JudgeSettings


class ConfiguredShares(Protocol):
    """Where the judge reads each config version's unified percentage per domain.

    Called in the judge's evaluation (the worker's event loop): it must answer at once from
    what it holds, never wait for I/O. None: not known (the guard is off)."""

    def percentage(self, config_version: int, domain: str) -> float | None: ...


@dataclass(frozen=True, slots=True)
class StaticShares:
    """A fixed mapping config_version -> {domain: percentage (0..100)}."""

    by_version: Mapping[int, Mapping[str, float]] = field(default_factory=dict)

    def percentage(self, config_version: int, domain: str) -> float | None:
        shares = self.by_version.get(config_version)
        return None if shares is None else shares.get(domain)


@dataclass(frozen=True, slots=True)
class SampleRatio:
    """The guard's reading of one domain at one evaluation (the step's totals)."""

    unified: int
    requests: int
    configured_pct: float
    log_e: float
    log_threshold: float

    @property
    def mismatch(self) -> bool:
        return self.log_e >= self.log_threshold

    @property
    def observed_pct(self) -> float:
        return 100.0 * self.unified / self.requests if self.requests else 0.0

    def reason(self) -> str:
        """The evidence, once, e.g. `sample ratio: unified 312/10000 (3.1%) of requests vs
        10% configured (e-value 2.1e+03 >= 1e+03)`."""
        sign = ">=" if self.mismatch else "<"
        return (f"sample ratio: unified {self.unified}/{self.requests} "
                f"({self.observed_pct:.1f}%) of requests vs {self.configured_pct:g}% configured "
                f"(e-value {e_text(self.log_e)} {sign} {e_text(self.log_threshold)})")

    def to_evidence(self) -> dict[str, Any]:
        """JSON-ready, for the unified verdict's `evidence`."""
        return {"unified": self.unified, "requests": self.requests,
                "configured_pct": self.configured_pct, "e_value": float(e_text(self.log_e)),
                "threshold": float(e_text(self.log_threshold))}


def sample_ratio(unified: int, legacy: int, configured_pct: float | None,
                 s: JudgeSettings) -> SampleRatio | None:
    """The guard on a step's totals, or None when it is off (share unknown, 0 %, no request)."""
    requests = unified + legacy
    if configured_pct is None or not 0 < configured_pct <= 100 or requests <= 0:
        return None
    log_e = sample_ratio_log_e(requests, unified, configured_pct / 100, s.srm_tolerance,
                               s.srm_dispersion, s.srm_alternatives)
    return SampleRatio(unified, requests, float(configured_pct), log_e,
                       math.log(1 / s.srm_alpha))
