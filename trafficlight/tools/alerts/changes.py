"""Which verdicts are news, and the message for each (Slack JSON, or a title and a body for
any other channel). Pure: no I/O.

Workers publish a verdict per target every evaluation (a heartbeat), so almost every record
repeats the last one. An alert goes out when a (domain, routed_to)'s verdict or decision
differs from the last one seen for it; the decision is the domain's and rides on both rows,
so it is news on the unified row only, and a legacy (baseline) row is news when its own
verdict changes. A sample-ratio mismatch (rule `sample_ratio_mismatch`: the routing is not
what the config says) starting or ending is news on the unified row too, even when the
decision stays `hold` (a step's first minutes hold anyway, for want of evidence).
Redelivered or reordered records (window_end not after the last one seen) are ignored, so a
rebalance never repeats an alert.

After a restart nothing is known yet: the first verdict seen for a target is taken as the
baseline silently when it is healthy or insufficient_data (and no mismatch), and alerted when
it is not, so a standing problem is reported once more rather than never.

With the rollout plan's status at hand (``plan_store.plan_status``, read by the consumer), each
message carries it too: step, time baked and left, proceed verdicts toward promotion and what
blocks it, in the words of `trafficlight status` (:func:`~trafficlight.tools.display.plan_summary`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from trafficlight.base.times import local_iso
from trafficlight.streams.events import Target
from trafficlight.streams.verdicts import (
    BadVerdict,
    Decision,
    Health,
    Rule,
    Verdict,
    parse_verdict,
)
from trafficlight.tools.display import plan_summary

__all__ = ["BadVerdict", "Change", "ChangeDetector", "Notification", "check_verdict",
           "notification", "slack_message"]

QUIET_BASELINE = frozenset({Health.HEALTHY, Health.INSUFFICIENT_DATA})

#: Slack attachment colours: green / amber / red / grey.
COLORS = {Health.HEALTHY: "#2eb67d", Health.WARNING: "#ecb22e", Health.CRITICAL: "#e01e5a",
          Health.INSUFFICIENT_DATA: "#9a9a9a"}
EMOJI = {Decision.PROCEED: ":large_green_circle:", Decision.HOLD: ":large_yellow_circle:",
         Decision.ROLLBACK: ":red_circle:"}

#: What an alert needs of a record: the one verdict decoder (`BadVerdict` says what is wrong).
check_verdict = parse_verdict


#: Shown where a verdict has no figure (no traffic, no latency sample).
NO_FIGURE = "n/a"


@dataclass(frozen=True)
class Change:
    """A target's verdict or decision changed; ``previous`` is None for a first sighting.

    ``plan`` is the rollout plan's status when the alert was made (None: no plan, or no
    database to read it from)."""

    verdict: Verdict
    previous: tuple[Health, Decision] | None
    plan: Mapping[str, Any] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.verdict.domain, self.verdict.routed_to


class ChangeDetector:
    """The last (verdict, decision, sample-ratio mismatch) and window_end per (domain,
    routed_to)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[Health, Decision, bool, float]] = {}

    def observe(self, verdict: Verdict) -> Change | None:
        """The change this verdict makes, or None when it is not news."""
        key = (verdict.domain, verdict.routed_to)
        own_decision = verdict.routed_to != Target.LEGACY
        mismatch = own_decision and verdict.rule == Rule.SAMPLE_RATIO_MISMATCH
        state = (verdict.verdict, verdict.decision, mismatch)
        window_end = verdict.window_end
        last = self._last.get(key)
        if last is not None and window_end <= last[3]:
            return None  # redelivered or out of order: already judged
        self._last[key] = (*state, window_end)
        if last is None:
            quiet = state[0] in QUIET_BASELINE and not mismatch and not (
                own_decision and state[1] is Decision.ROLLBACK)
            return None if quiet else Change(verdict, None)
        # Unified: verdict, decision and mismatch; legacy: its own verdict only.
        compared = len(state) if own_decision else 1
        if last[:compared] == state[:compared]:
            return None
        return Change(verdict, (last[0], last[1]))


def _figure(value: float | None, unit: str, digits: int) -> str:
    return NO_FIGURE if value is None else f"{float(value):.{digits}f}{unit}"


def slack_message(change: Change) -> dict[str, Any]:
    """Slack incoming-webhook JSON: a one-line text plus a coloured attachment of figures."""
    v = change.verdict
    domain, target = change.key
    was = "" if change.previous is None else f" (was {change.previous[0]} / {change.previous[1]})"
    text = (f"{EMOJI[v.decision]} trafficlight {domain}/{target}: "
            f"{v.verdict} -> {v.decision}{was}")
    return {
        "text": text,
        "attachments": [{
            "color": COLORS[v.verdict],
            "fallback": text,
            "fields": [
                {"title": "requests", "value": str(v.requests), "short": True},
                {"title": "error %", "value": _figure(v.error_pct, " %", 2),
                 "short": True},
                {"title": "P95", "value": _figure(v.p95_ms, " ms", 0), "short": True},
                {"title": "P99", "value": _figure(v.p99_ms, " ms", 0), "short": True},
                {"title": "why", "value": "; ".join(v.reasons) or NO_FIGURE,
                 "short": False},
                *([] if change.plan is None else [
                    {"title": "rollout plan", "value": plan_summary(dict(change.plan)),
                     "short": False}]),
            ],
            "ts": int(v.window_end),
        }],
    }


class Level(StrEnum):
    """A notification's urgency; the values are Apprise's notify types."""

    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"


#: A decision's urgency: rollback is a failure, hold a warning, proceed good news.
LEVELS = {Decision.PROCEED: Level.SUCCESS, Decision.HOLD: Level.WARNING,
          Decision.ROLLBACK: Level.FAILURE}


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
    reasons = "; ".join(v.reasons) or NO_FIGURE
    body = "\n".join([
        f"{domain}/{target}: {v.verdict} -> {v.decision}{was}",
        f"window end: {local_iso(v.window_end)}",
        f"requests: {v.requests}, error %: {_figure(v.error_pct, ' %', 2)}, "
        f"P95: {_figure(v.p95_ms, ' ms', 0)}, P99: {_figure(v.p99_ms, ' ms', 0)}",
        f"why: {reasons}",
        *([] if change.plan is None else [plan_summary(dict(change.plan))]),
    ])
    title = f"trafficlight {domain}/{target}: {v.verdict} -> {v.decision}"
    return Notification(title, body, LEVELS[v.decision])
