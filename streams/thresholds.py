"""Thresholds (SPEC "Thresholds") and the judge's settings, from TOML, with documented defaults.

```toml
[thresholds]                  # SPEC keys, defaults shown
warning_error_pct  = 0.1      # percent
warning_p95_ms     = 2000
critical_error_pct = 0.5
critical_p95_ms    = 3000
# sample rule (ours): an error-rate verdict needs `min_errors` errors AND the Wilson lower
# bound (z = `confidence_z`) of the error rate above the threshold; below `min_requests`
# requests a window is insufficient_data; P95 is judged only on `min_latency_samples`.
min_requests        = 20
min_errors          = 5
confidence_z        = 1.96
min_latency_samples = 20
[thresholds.domains.jobs]     # per-domain overrides of any key above
critical_error_pct = 1.0

[judge]                       # windows and hysteresis (ours), defaults shown
window         = "5m"         # trailing evaluation window
fast_window    = "5s"         # short window for fast error detection (see verdicts.py)
step           = "1s"         # evaluation every step of event time
bucket         = "10s"        # tumbling bucket of the stored aggregates
grace          = "10s"        # watermark = max event time - grace
max_jump       = "5m"         # a single event further ahead needs a second one to confirm it
rollback_after = 2            # consecutive critical evaluations before rollback
recover_after  = 3            # consecutive healthy evaluations to leave rollback
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from trafficlight.base.durations import parse_whole_seconds
from trafficlight.base.errors import ConfigError
from trafficlight.base.settings import read_toml


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Limits for one domain; see the module docstring for the sample rule."""

    warning_error_pct: float = 0.1
    warning_p95_ms: float = 2000.0
    critical_error_pct: float = 0.5
    critical_p95_ms: float = 3000.0
    min_requests: int = 20
    min_errors: int = 5
    confidence_z: float = 1.96
    min_latency_samples: int = 20


@dataclass(frozen=True, slots=True)
class JudgeSettings:
    """Window sizes, cadence and hysteresis, in whole seconds / evaluation counts."""

    window_s: int = 300
    fast_window_s: int = 5
    step_s: int = 1
    bucket_s: int = 10
    grace_s: int = 10
    max_jump_s: int = 300
    rollback_after: int = 2
    recover_after: int = 3


@dataclass(frozen=True, slots=True)
class ThresholdSet:
    """One thresholds file: defaults, per-domain overrides and judge settings."""

    name: str = "default"
    default: Thresholds = Thresholds()
    domains: Mapping[str, Thresholds] = field(default_factory=dict)
    settings: JudgeSettings = JudgeSettings()

    def for_domain(self, domain: str) -> Thresholds:
        return self.domains.get(domain, self.default)


_DURATIONS = {"window": "window_s", "fast_window": "fast_window_s", "step": "step_s",
              "bucket": "bucket_s", "grace": "grace_s", "max_jump": "max_jump_s"}
_COUNTS = ("rollback_after", "recover_after")


def _thresholds(base: Thresholds, table: Mapping[str, Any], where: str) -> Thresholds:
    known = {f.name: f.type for f in fields(Thresholds)}
    changes: dict[str, Any] = {}
    for key, value in table.items():
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
    changes: dict[str, int] = {}
    for key, value in table.items():
        if key in _DURATIONS:
            try:
                changes[_DURATIONS[key]] = parse_whole_seconds(value)
            except ValueError as exc:
                raise ConfigError(f"judge.{key}: {exc}") from None
        elif key in _COUNTS:
            if type(value) is not int or value < 1:
                raise ConfigError(f"judge.{key} must be an integer >= 1, got {value!r}")
            changes[key] = value
        else:
            raise ConfigError(f"judge: unknown key {key!r}")
    settings = replace(JudgeSettings(), **changes)
    if settings.bucket_s % settings.step_s or settings.fast_window_s > settings.window_s:
        raise ConfigError("judge: bucket must be a multiple of step, fast_window <= window")
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
