"""Scoring a timeline against a scenario's labels. Pure.

For each incident that must roll back (domain d, start S, deadline D): the first rollback
onset of d in ``[S, end + SETTLE_S]`` gives the delay. Within D it is ``caught``, later
``late``, none ``missed``; a domain already rolled back at S (by an earlier, false, rollback)
is ``pre_empted``: the rollout was protected, but the judge did not detect the regression, so
it does not count as caught (and the earlier rollback counts as false).
Every rollback onset not inside such an incident's ``[S, end + SETTLE_S]`` is a false
rollback, whatever else is going on (a shared outage, legacy trouble, noise).

An incident that must hold (a routing mismatch: the config says one share, the routing sends
another) is ``caught`` when the decision is hold all the way from ``S + D`` to its end (never
proceed: a biased comparison must not promote; never roll back: a rollback there is false
too), ``missed`` otherwise; its delay is when the hold in force at ``S + D`` began.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from trafficlight.streams.verdicts import Decision
from trafficlight.tools.scoreboard.timeline import Timeline
from trafficlight.tools.simulate import Incident, Scenario

#: After a regression ends, a judge with an hour's memory may still act on it.
SETTLE_S = 3_600.0


class Outcome(StrEnum):
    CAUGHT = "caught"
    LATE = "late"
    MISSED = "missed"
    PRE_EMPTED = "pre_empted"

    @property
    def in_time(self) -> bool:
        return self is Outcome.CAUGHT


@dataclass(frozen=True, slots=True)
class IncidentScore:
    incident: str
    domain: str
    outcome: Outcome
    delay_s: float | None
    deadline_s: float | None


@dataclass(frozen=True, slots=True)
class RunScore:
    """One judge on one scenario and seed."""

    scenario: str
    seed: int
    judge: str
    incidents: tuple[IncidentScore, ...]
    false_rollbacks: tuple[tuple[str, float], ...]
    hold_s: float
    duration_s: float
    #: Incidents that must hold (routing mismatches), scored apart from the regressions.
    holds: tuple[IncidentScore, ...] = ()

    @property
    def caught(self) -> int:
        return sum(i.outcome.in_time for i in self.incidents)

    @property
    def held(self) -> int:
        return sum(i.outcome.in_time for i in self.holds)


def _covers(incident: Incident, domain: str, at_s: float) -> bool:
    return (incident.must_roll_back and incident.domain == domain
            and incident.start_ts <= at_s <= incident.end_ts + SETTLE_S)


def score_incident(timeline: Timeline, incident: Incident) -> IncidentScore:
    """How the judge did on one incident that must roll back."""
    deadline = incident.deadline_s
    if timeline.decision_at(incident.domain, incident.start_ts) is Decision.ROLLBACK:
        return IncidentScore(incident.name, incident.domain, Outcome.PRE_EMPTED, 0.0, deadline)
    onsets = [t for t in timeline.rollbacks(incident.domain)
              if incident.start_ts <= t <= incident.end_ts + SETTLE_S]
    if not onsets:
        return IncidentScore(incident.name, incident.domain, Outcome.MISSED, None, deadline)
    delay = onsets[0] - incident.start_ts
    in_time = deadline is None or delay <= deadline
    return IncidentScore(incident.name, incident.domain,
                         Outcome.CAUGHT if in_time else Outcome.LATE, delay, deadline)


def score_hold(timeline: Timeline, incident: Incident) -> IncidentScore:
    """How the judge did on an incident that must hold from its deadline to its end."""
    from_s = incident.start_ts + (incident.deadline_s or 0.0)
    changes = timeline.changes.get(incident.domain, [])
    in_force = [c for c in changes if c.at_s <= from_s]
    later = [c for c in changes if from_s < c.at_s <= incident.end_ts]
    held = (bool(in_force) and in_force[-1].decision is Decision.HOLD
            and all(c.decision is Decision.HOLD for c in later))
    if not held:
        return IncidentScore(incident.name, incident.domain, Outcome.MISSED, None,
                             incident.deadline_s)
    onset = in_force[-1].at_s
    return IncidentScore(incident.name, incident.domain, Outcome.CAUGHT,
                         max(0.0, onset - incident.start_ts), incident.deadline_s)


def false_rollbacks(timeline: Timeline, incidents: tuple[Incident, ...]
                    ) -> list[tuple[str, float]]:
    """(domain, event time) of every rollback onset no must-roll-back incident explains."""
    return [(domain, at_s) for domain in timeline.domains()
            for at_s in timeline.rollbacks(domain)
            if not any(_covers(i, domain, at_s) for i in incidents)]


def score_run(timeline: Timeline, scenario: Scenario, name: str, seed: int,
              judge: str) -> RunScore:
    regressions = [i for i in scenario.incidents if i.must_roll_back]
    return RunScore(
        scenario=name, seed=seed, judge=judge,
        incidents=tuple(score_incident(timeline, i) for i in regressions),
        false_rollbacks=tuple(false_rollbacks(timeline, scenario.incidents)),
        hold_s=timeline.seconds_in(Decision.HOLD),
        # Hold is summed over domains: so is the time it is a share of.
        duration_s=scenario.duration_s * len(scenario.volumes_per_h),
        holds=tuple(score_hold(timeline, i) for i in scenario.incidents if i.must_hold),
    )
