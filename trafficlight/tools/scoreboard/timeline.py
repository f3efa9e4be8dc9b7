"""What the scoreboard asks of a judge: events in stream order in, a decision timeline out.

A :class:`TimelineJudge` is fed :class:`EventBatch` chunks in stream order and, at the end,
gives a :class:`Timeline`: per domain, the event times at which its decision changed. Only
changes are kept, so a 30-day timeline stays small; the first entry of a domain is its first
evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from trafficlight.streams.events import EventBatch
from trafficlight.streams.verdicts import Decision


@dataclass(frozen=True, slots=True)
class Change:
    """From ``at_s`` (event time) on, ``domain``'s decision is ``decision``."""

    at_s: float
    domain: str
    decision: Decision


@dataclass(slots=True)
class Timeline:
    """Decision changes per domain, in time order, and the event time the input ended at."""

    changes: dict[str, list[Change]] = field(default_factory=dict)
    end_s: float = 0.0

    def record(self, at_s: float, domain: str, decision: Decision) -> None:
        """The decision of ``domain`` at an evaluation at ``at_s``; kept only if it changed."""
        seen = self.changes.setdefault(domain, [])
        if not seen or seen[-1].decision is not decision:
            seen.append(Change(at_s, domain, decision))
        self.end_s = max(self.end_s, at_s)

    def domains(self) -> list[str]:
        return sorted(self.changes)

    def rollbacks(self, domain: str) -> list[float]:
        """Event times at which ``domain`` went into rollback (each onset once)."""
        return [c.at_s for c in self.changes.get(domain, []) if c.decision is Decision.ROLLBACK]

    def decision_at(self, domain: str, at_s: float) -> Decision | None:
        """The decision in force at ``at_s`` (None before the domain's first evaluation)."""
        current = None
        for change in self.changes.get(domain, []):
            if change.at_s > at_s:
                break
            current = change.decision
        return current

    def seconds_in(self, decision: Decision) -> float:
        """Event time spent in ``decision``, summed over domains (up to ``end_s``)."""
        total = 0.0
        for changes in self.changes.values():
            for change, after in zip(changes, [*changes[1:], None], strict=True):
                if change.decision is decision:
                    total += (after.at_s if after else self.end_s) - change.at_s
        return total


class TimelineJudge(Protocol):
    """A judge the scoreboard drives; one instance per scenario run."""

    def feed(self, batch: EventBatch) -> None:
        """The next events, in stream order."""

    def finish(self) -> Timeline:
        """The timeline of every decision taken over what was fed."""


def run_judge(judge: TimelineJudge, batches: Iterable[EventBatch]) -> Timeline:
    for batch in batches:
        judge.feed(batch)
    return judge.finish()
