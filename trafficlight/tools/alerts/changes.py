"""Which verdicts are news, and the message for each (Slack JSON, or a title and a body for
any other channel). Pure: no I/O.

Workers publish a verdict per target every evaluation (a heartbeat), so almost every record
repeats the last one. An alert goes out when a (domain, routed_to)'s verdict or decision
differs from the last one seen for it. Redelivered or reordered records (window_end not
after the last one seen) are ignored, so a rebalance never repeats an alert.

After a restart nothing is known yet: the first verdict seen for a target is taken as the
baseline silently when it is healthy or insufficient_data, and alerted when it is not, so a
standing problem is reported once more rather than never.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from trafficlight.base.times import local_iso

QUIET_BASELINE = frozenset({"healthy", "insufficient_data"})
VERDICTS = frozenset({"healthy", "warning", "critical", "insufficient_data"})
DECISIONS = frozenset({"proceed", "hold", "rollback"})

#: Slack attachment colours: green / amber / red / grey.
COLORS = {"healthy": "#2eb67d", "warning": "#ecb22e", "critical": "#e01e5a",
          "insufficient_data": "#9a9a9a"}
EMOJI = {"proceed": ":large_green_circle:", "hold": ":large_yellow_circle:",
         "rollback": ":red_circle:"}


#: Shown where a verdict has no figure (no traffic, no latency sample).
NO_FIGURE = "n/a"


class BadVerdict(ValueError):
    """A record on the verdict topic that is not a SPEC verdict; the message says why."""


@dataclass(frozen=True)
class Change:
    """A target's verdict or decision changed; ``previous`` is None for a first sighting."""

    verdict: dict[str, Any]
    previous: tuple[str, str] | None

    @property
    def key(self) -> tuple[str, str]:
        return self.verdict["domain"], self.verdict["routed_to"]


def check_verdict(value: Any) -> dict[str, Any]:
    """The verdict if it has what an alert needs, else BadVerdict."""
    if not isinstance(value, dict):
        raise BadVerdict("a verdict must be a JSON object")
    for name, allowed in (("verdict", VERDICTS), ("decision", DECISIONS)):
        if value.get(name) not in allowed:
            raise BadVerdict(f"{name} must be one of {sorted(allowed)}, got {value.get(name)!r}")
    for name in ("domain", "routed_to"):
        if not isinstance(value.get(name), str) or not value[name]:
            raise BadVerdict(f"{name} must be a non-empty string")
    window_end = value.get("window_end")
    if (isinstance(window_end, bool) or not isinstance(window_end, int | float)
            or not math.isfinite(window_end)):
        raise BadVerdict("window_end must be epoch seconds")
    return value


class ChangeDetector:
    """The last (verdict, decision) and window_end per (domain, routed_to)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[str, str, float]] = {}

    def observe(self, verdict: dict[str, Any]) -> Change | None:
        """The change this verdict makes, or None when it is not news."""
        key = (verdict["domain"], verdict["routed_to"])
        state = (verdict["verdict"], verdict["decision"])
        window_end = float(verdict["window_end"])
        last = self._last.get(key)
        if last is not None and window_end <= last[2]:
            return None  # redelivered or out of order: already judged
        self._last[key] = (*state, window_end)
        if last is None:
            quiet = state[0] in QUIET_BASELINE and state[1] != "rollback"
            return None if quiet else Change(verdict, None)
        if last[:2] == state:
            return None
        return Change(verdict, (last[0], last[1]))


def _figure(value: Any, unit: str, digits: int) -> str:
    return NO_FIGURE if value is None else f"{float(value):.{digits}f}{unit}"


def slack_message(change: Change) -> dict[str, Any]:
    """Slack incoming-webhook JSON: a one-line text plus a coloured attachment of figures."""
    v = change.verdict
    domain, target = change.key
    was = "" if change.previous is None else f" (was {change.previous[0]} / {change.previous[1]})"
    text = (f"{EMOJI[v['decision']]} trafficlight {domain}/{target}: "
            f"{v['verdict']} -> {v['decision']}{was}")
    reasons = v.get("reasons") or []
    return {
        "text": text,
        "attachments": [{
            "color": COLORS[v["verdict"]],
            "fallback": text,
            "fields": [
                {"title": "requests", "value": str(v.get("requests", NO_FIGURE)), "short": True},
                {"title": "error %", "value": _figure(v.get("error_pct"), " %", 2),
                 "short": True},
                {"title": "P95", "value": _figure(v.get("p95_ms"), " ms", 0), "short": True},
                {"title": "P99", "value": _figure(v.get("p99_ms"), " ms", 0), "short": True},
                {"title": "why", "value": "; ".join(map(str, reasons)) or NO_FIGURE,
                 "short": False},
            ],
            "ts": int(v["window_end"]),
        }],
    }


class Level(StrEnum):
    """A notification's urgency; the values are Apprise's notify types."""

    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"


#: A decision's urgency: rollback is a failure, hold a warning, proceed good news.
LEVELS = {"proceed": Level.SUCCESS, "hold": Level.WARNING, "rollback": Level.FAILURE}


@dataclass(frozen=True)
class Notification:
    title: str
    body: str
    level: Level


def notification(change: Change) -> Notification:
    """A title and a plain-text body of figures, for channels that are not Slack JSON."""
    v = change.verdict
    domain, target = change.key
    was = "" if change.previous is None else f" (was {change.previous[0]} / {change.previous[1]})"
    reasons = "; ".join(map(str, v.get("reasons") or [])) or NO_FIGURE
    body = "\n".join([
        f"{domain}/{target}: {v['verdict']} -> {v['decision']}{was}",
        f"window end: {local_iso(float(v['window_end']))}",
        f"requests: {v.get('requests', NO_FIGURE)}, error %: "
        f"{_figure(v.get('error_pct'), ' %', 2)}, P95: {_figure(v.get('p95_ms'), ' ms', 0)}, "
        f"P99: {_figure(v.get('p99_ms'), ' ms', 0)}",
        f"why: {reasons}",
    ])
    title = f"trafficlight {domain}/{target}: {v['verdict']} -> {v['decision']}"
    return Notification(title, body, LEVELS[v["decision"]])
