"""The rollout plan's tick: pure, like Flagger's scheduler ladder, with no I/O.

A plan (steps, bake, state, current step, when the step started) and the evidence per active
rollout domain (the latest stored unified decisions since the step started, newest first) give
an :class:`Assessment`: time baked and left, the positive evidence counted, and every blocker
in a fixed order. Only ``proceed`` counts toward promotion: a run of ``required_proceed``
proceed decisions in a row, newest first, per active domain. A ``hold`` (a warning, too little
data, a sample-ratio mismatch, a regression legacy shares) or a ``rollback`` ends the run.

The plan is stored in Postgres (``webhook_rollout_plan``); workers promote through
``promote_rollout_plan(reason, version)``, so the version assessed is the version promoted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from trafficlight.streams.verdicts import Decision


class PlanState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    ABORTED = "aborted"
    DONE = "done"


class BlockerKind(StrEnum):
    """Why a plan is not promoted now, in the order they are checked."""

    NOT_RUNNING = "not_running"
    ROUTING_DISABLED = "routing_disabled"
    NOT_BAKED = "not_baked"
    NO_ACTIVE_DOMAIN = "no_active_domain"
    ROLLBACK = "rollback"
    HOLD = "hold"
    NOT_ENOUGH_EVIDENCE = "not_enough_evidence"


@dataclass(frozen=True, slots=True)
class Plan:
    """The plan in force: one row of ``webhook_rollout_plan`` (``version`` is its id)."""

    version: int
    steps_pct: tuple[float, ...]
    bake_s: float
    required_proceed: int
    state: PlanState
    current_step: int  # 1-based
    step_started_at: float  # epoch seconds
    notes: str | None = None
    created_by: str = ""
    created_at: float = 0.0

    @property
    def step_pct(self) -> float:
        return self.steps_pct[self.current_step - 1]

    @property
    def next_pct(self) -> float | None:
        return (self.steps_pct[self.current_step]
                if self.current_step < len(self.steps_pct) else None)

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> Plan:
        """From a NOTIFY payload or a row read as epoch seconds; raises on a malformed one."""
        return cls(
            version=int(row["version"]),
            steps_pct=tuple(float(s) for s in row["steps"]),
            bake_s=float(row["bake_s"]),
            required_proceed=int(row["required_proceed"]),
            state=PlanState(row["state"]),
            current_step=int(row["current_step"]),
            step_started_at=float(row["step_started_at"]),
            notes=row.get("notes"),
            created_by=str(row.get("created_by") or ""),
            created_at=float(row.get("created_at") or 0.0),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version, "steps": list(self.steps_pct), "bake_s": self.bake_s,
            "required_proceed": self.required_proceed, "state": self.state.value,
            "current_step": self.current_step, "step_pct": self.step_pct,
            "next_pct": self.next_pct, "step_started_at": self.step_started_at,
            "notes": self.notes, "created_by": self.created_by, "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class DomainEvidence:
    """A rollout domain's latest stored unified decisions since the step began, newest first."""

    domain: str
    decisions: tuple[str, ...]
    #: Reasons of the newest decision (e.g. the sample-ratio mismatch behind a hold).
    latest_reasons: tuple[str, ...] = ()

    def proceed_run(self) -> int:
        """Proceed decisions in a row, newest first: the positive evidence."""
        run = 0
        for decision in self.decisions:
            if decision != "proceed":
                break
            run += 1
        return run


@dataclass(frozen=True, slots=True)
class Blocker:
    kind: BlockerKind
    message: str
    domain: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "message": self.message, "domain": self.domain}


@dataclass(frozen=True, slots=True)
class Assessment:
    plan: Plan
    baked_s: float
    left_s: float
    #: Proceed decisions in a row per active domain (positive evidence toward promotion).
    evidence: Mapping[str, int] = field(default_factory=dict)
    blockers: tuple[Blocker, ...] = ()

    @property
    def ready(self) -> bool:
        return not self.blockers

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(), "baked_s": round(self.baked_s, 1),
            "left_s": round(self.left_s, 1), "required_proceed": self.plan.required_proceed,
            "evidence": dict(self.evidence), "ready": self.ready,
            "blockers": [b.to_dict() for b in self.blockers],
        }


def assess(plan: Plan, routing_enabled: bool, evidence: Sequence[DomainEvidence],
           now_s: float) -> Assessment:
    """Whether ``plan`` may be promoted at ``now_s``, and if not, everything that blocks it.

    ``evidence`` holds the active domains only (enabled, above 0 %): a domain taken back on its
    own neither blocks nor counts.
    """
    baked_s = max(0.0, now_s - plan.step_started_at)
    left_s = max(0.0, plan.bake_s - baked_s)
    counts = {e.domain: e.proceed_run() for e in evidence}
    blockers: list[Blocker] = []
    # 1. Only a running plan moves (paused, aborted, done: an operator decides).
    if plan.state is not PlanState.RUNNING:
        blockers.append(Blocker(BlockerKind.NOT_RUNNING, f"plan is {plan.state.value}"))
    # 2. Routing switched off for every domain: nothing to promote (a rollback stays back).
    if not routing_enabled:
        blockers.append(Blocker(BlockerKind.ROUTING_DISABLED, "routing is disabled"))
    # 3. The step has not baked yet.
    if left_s > 0:
        blockers.append(Blocker(BlockerKind.NOT_BAKED,
                                f"baked {baked_s:.0f} s of {plan.bake_s:.0f} s"))
    # 4. No domain is routing to unified: no evidence can come.
    if routing_enabled and not evidence:
        blockers.append(Blocker(BlockerKind.NO_ACTIVE_DOMAIN, "no rollout domain is routing"))
    # 5. Per domain: the newest decision, then the run of proceed decisions.
    for domain_evidence in evidence:
        domain = domain_evidence.domain
        latest = domain_evidence.decisions[0] if domain_evidence.decisions else None
        why = "; ".join(domain_evidence.latest_reasons)
        if latest == Decision.ROLLBACK:
            blockers.append(Blocker(BlockerKind.ROLLBACK,
                                    f"{domain}: rollback" + (f" ({why})" if why else ""), domain))
        elif latest == Decision.HOLD:
            blockers.append(Blocker(BlockerKind.HOLD,
                                    f"{domain}: hold" + (f" ({why})" if why else ""), domain))
        if counts[domain] < plan.required_proceed:
            blockers.append(Blocker(
                BlockerKind.NOT_ENOUGH_EVIDENCE,
                f"{domain}: {counts[domain]} of {plan.required_proceed} proceed verdicts",
                domain))
    return Assessment(plan, baked_s, left_s, counts, tuple(blockers))


def promotion_reason(assessment: Assessment) -> str:
    """The evidence, in one line, for the plan and config history."""
    plan = assessment.plan
    evidence = ", ".join(f"{d} {n}" for d, n in sorted(assessment.evidence.items()))
    return (f"{plan.step_pct:g}% baked {assessment.baked_s:.0f} s (bake {plan.bake_s:.0f} s); "
            f"proceed verdicts in a row: {evidence} (needed {plan.required_proceed})")
