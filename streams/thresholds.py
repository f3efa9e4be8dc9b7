"""Thresholds (SPEC "Thresholds") and the judge's settings, from TOML, with documented defaults.

```toml
[thresholds]                  # SPEC keys, defaults shown
warning_error_pct  = 0.1      # percent
warning_p95_ms     = 2000
critical_error_pct = 0.5
critical_p95_ms    = 3000
[thresholds.domains.jobs]     # per-domain overrides of any key above
critical_error_pct = 1.0

[judge]                       # windows and evidence (ours), defaults shown
window         = "5m"         # trailing window of the figures shown (requests, P95, ...)
step           = "1s"         # evaluation every step of event time (of a domain with new data)
heartbeat      = "10s"        # every domain is evaluated (and published) at multiples of this
batch_requests = 100          # between heartbeats, a domain is evaluated at the next step once
                              # it has this many requests not yet evaluated
bucket         = "10s"        # tumbling bucket of the stored aggregates
grace          = "10s"        # watermark = max event time - grace
max_jump       = "5m"         # a single event further ahead needs a second one to confirm it
run_gap        = "30s"        # a request follows a hit (a run, a burst) only this close after it
max_run        = 20           # requests following a run's first hits are left out of the change
                              # detectors' sample, up to this long a run (then they count again)
alpha          = 0.01         # per detector: P(ever firing in a rollout | rate <= its threshold)
healthy_alpha  = 0.01         # per metric: P(ever "shown below warning" | rate >= warning)
compare_alpha  = 0.001        # unified-vs-legacy test: P(ever "worse" | unified <= legacy)
max_batch_nats = 12.0         # cap on one step's log likelihood ratio (bursts of errors)
prior_start    = 0.5          # change-point prior mass on the steps' starts (1/4 first, 1/12...)
alternatives        = [1.5, 2, 3, 5, 10, 20, 50]  # multiples of the null rate mixed over
alternative_weights = [4, 2, 1, 1, 2, 3, 1]       # their weights (normalised)
healthy_alternatives = [0.8, 0.6, 0.4, 0.2, 0.05] # multiples of the warning rate (below it)
relative_risks = [1.5, 2, 3, 5, 10]               # unified/legacy rate ratios mixed over
srm_alpha      = 0.001        # sample-ratio guard: P(ever "mismatch" | share within tolerance)
srm_tolerance  = 0.2          # relative: at 10 % configured, 8 %..12 % on unified is no mismatch
srm_dispersion = 4.0          # each request weighs 1/4 of an independent draw (sticky runs)
srm_alternatives = [0.8, 0.6, 0.4, 0.2, 0.05]     # odds ratios off the band's edges
```
See `streams.verdicts`, `streams.evidence`, `streams.sample_ratio` (and README
"False-rollback budget", "Sample-ratio guard") for what these mean and how the defaults were
chosen. The keys of the judge before sequential evidence (`RETIRED_KEYS`: its sample rule
and hysteresis) are accepted in old files and ignored: the evidence replaces them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from trafficlight.base.durations import parse_whole_seconds
from trafficlight.base.errors import ConfigError
from trafficlight.base.settings import read_toml


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Limits for one domain (SPEC "Thresholds"), in percent and ms."""

    warning_error_pct: float = 0.1
    warning_p95_ms: float = 2000.0
    critical_error_pct: float = 0.5
    critical_p95_ms: float = 3000.0


@dataclass(frozen=True, slots=True)
class JudgeSettings:
    """Windows and cadence in whole seconds, and the evidence's budgets and mixtures."""

    window_s: int = 300
    step_s: int = 1
    bucket_s: int = 10
    grace_s: int = 10
    max_jump_s: int = 300
    heartbeat_s: int = 10
    run_gap_s: int = 30
    max_run: int = 20
    batch_requests: int = 100
    alpha: float = 1e-2
    healthy_alpha: float = 1e-2
    compare_alpha: float = 1e-3
    max_batch_nats: float = 12.0
    prior_start: float = 0.5
    temper_bursts: bool = True
    dispersion_prior_hits: float = 20.0
    dispersion_min_hits: float = 10.0
    alternatives: tuple[float, ...] = (1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0)
    alternative_weights: tuple[float, ...] = (4.0, 2.0, 1.0, 1.0, 2.0, 3.0, 1.0)
    healthy_alternatives: tuple[float, ...] = (0.8, 0.6, 0.4, 0.2, 0.05)
    relative_risks: tuple[float, ...] = (1.5, 2.0, 3.0, 5.0, 10.0)
    srm_alpha: float = 1e-3
    srm_tolerance: float = 0.2
    srm_dispersion: float = 4.0
    srm_alternatives: tuple[float, ...] = (0.8, 0.6, 0.4, 0.2, 0.05)


@dataclass(frozen=True, slots=True)
class ThresholdSet:
    """One thresholds file: defaults, per-domain overrides and judge settings."""

    name: str = "default"
    default: Thresholds = Thresholds()
    domains: Mapping[str, Thresholds] = field(default_factory=dict)
    settings: JudgeSettings = JudgeSettings()

    def for_domain(self, domain: str) -> Thresholds:
        return self.domains.get(domain, self.default)


#: Keys of the judge before sequential evidence: accepted in old files, ignored.
RETIRED_KEYS = {
    "thresholds": frozenset({"min_requests", "min_errors", "confidence_z",
                             "min_latency_samples"}),
    "judge": frozenset({"fast_window", "rollback_after", "recover_after"}),
}

_DURATIONS = {"window": "window_s", "step": "step_s",
              "bucket": "bucket_s", "grace": "grace_s", "max_jump": "max_jump_s",
              "heartbeat": "heartbeat_s", "run_gap": "run_gap_s"}
_COUNTS = ("batch_requests", "max_run")
#: Probabilities in (0, 1): key -> (low, high) open bounds.
_PROBABILITIES = ("alpha", "healthy_alpha", "compare_alpha", "prior_start", "srm_alpha",
                  "srm_tolerance")
#: Pseudo-counts of hits (`streams.evidence.Dispersion`): numbers >= 0.
_HIT_COUNTS = ("dispersion_prior_hits", "dispersion_min_hits")
#: Lists of numbers: key -> (low, high) open bounds of each element.
_LISTS = {"alternatives": (1.0, math.inf), "alternative_weights": (0.0, math.inf),
          "healthy_alternatives": (0.0, 1.0), "relative_risks": (1.0, math.inf),
          "srm_alternatives": (0.0, 1.0)}


def _number(value: Any) -> bool:
    return type(value) in (int, float)


def _evidence_key(key: str, value: Any) -> Any:
    """A checked [judge] evidence value, or `ConfigError` in one line."""
    if key in _PROBABILITIES:
        if not _number(value) or not 0 < value < 1:
            raise ConfigError(f"judge.{key} must be a number in (0, 1), got {value!r}")
        return float(value)
    if key == "max_batch_nats":
        if not _number(value) or value <= 0:
            raise ConfigError(f"judge.{key} must be a number > 0, got {value!r}")
        return float(value)
    if key in _HIT_COUNTS:
        if not _number(value) or not 0 <= value < math.inf:
            raise ConfigError(f"judge.{key} must be a number >= 0, got {value!r}")
        return float(value)
    if key == "srm_dispersion":
        if not _number(value) or not 1 <= value < math.inf:
            raise ConfigError(f"judge.{key} must be a number >= 1, got {value!r}")
        return float(value)
    low, high = _LISTS[key]
    if (not isinstance(value, list) or not value
            or not all(_number(v) and low < v < high for v in value)):
        raise ConfigError(f"judge.{key} must be a non-empty list of numbers in "
                          f"({low:g}, {high:g}), got {value!r}")
    return tuple(float(v) for v in value)


def _thresholds(base: Thresholds, table: Mapping[str, Any], where: str) -> Thresholds:
    known = {f.name: f.type for f in fields(Thresholds)}
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key in RETIRED_KEYS["thresholds"]:
            continue
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
        if type(value) not in (int, float) or value < 0:
            raise ConfigError(f"{where}.{key} must be a number >= 0, got {value!r}")
        changes[key] = int(value) if known[key] == "int" else float(value)
    result = replace(base, **changes)
    if result.warning_error_pct > result.critical_error_pct:
        raise ConfigError(f"{where}: warning_error_pct is above critical_error_pct")
    if result.warning_p95_ms > result.critical_p95_ms:
        raise ConfigError(f"{where}: warning_p95_ms is above critical_p95_ms")
    return result


def _settings(table: Mapping[str, Any]) -> JudgeSettings:
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key in RETIRED_KEYS["judge"]:
            continue
        if (key in _PROBABILITIES or key in _LISTS or key in _HIT_COUNTS
                or key in ("max_batch_nats", "srm_dispersion")):
            changes[key] = _evidence_key(key, value)
        elif key in _DURATIONS:
            try:
                changes[_DURATIONS[key]] = parse_whole_seconds(value)
            except ValueError as exc:
                raise ConfigError(f"judge.{key}: {exc}") from None
        elif key == "temper_bursts":
            if type(value) is not bool:
                raise ConfigError(f"judge.{key} must be true or false, got {value!r}")
            changes[key] = value
        elif key in _COUNTS:
            if type(value) is not int or value < 1:
                raise ConfigError(f"judge.{key} must be an integer >= 1, got {value!r}")
            changes[key] = value
        else:
            raise ConfigError(f"judge: unknown key {key!r}")
    if "alternatives" in changes and "alternative_weights" not in changes:
        changes["alternative_weights"] = (1.0,) * len(changes["alternatives"])
    settings = replace(JudgeSettings(), **changes)
    if settings.bucket_s % settings.step_s:
        raise ConfigError("judge: bucket must be a multiple of step")
    if settings.heartbeat_s % settings.step_s:
        raise ConfigError("judge: heartbeat must be a multiple of step")
    if len(settings.alternative_weights) != len(settings.alternatives):
        raise ConfigError("judge: alternative_weights needs one weight per alternative")
    return settings


def parse_thresholds(doc: Mapping[str, Any], name: str = "default") -> ThresholdSet:
    """A `ThresholdSet` from a parsed TOML document; `ConfigError` names the bad key."""
    unknown = set(doc) - {"thresholds", "judge"}
    if unknown:
        raise ConfigError(f"{name}: unknown table(s) {', '.join(sorted(unknown))}")
    table = dict(doc.get("thresholds", {}))
    domain_tables = table.pop("domains", {})
    default = _thresholds(Thresholds(), table, "thresholds")
    domains = {d: _thresholds(default, t, f"thresholds.domains.{d}")
               for d, t in domain_tables.items()}
    return ThresholdSet(name, default, domains, _settings(doc.get("judge", {})))


def load_thresholds(path: str | Path) -> ThresholdSet:
    """Read a thresholds TOML file; any problem is one `ConfigError` line naming the file."""
    path = Path(path)
    doc = read_toml(path, "thresholds")
    try:
        return parse_thresholds(doc, name=path.stem)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
