"""The rollout report as Markdown: a summary table, then the runbook's template per step."""

from __future__ import annotations

from datetime import datetime, timedelta

from trafficlight.streams.events import Target
from trafficlight.tools.report import Criteria, Figures, RolloutReport, Step

_MARK = {True: "✅", False: "❌"}
_CRITERIA = {Criteria.MET: "met", Criteria.MISSED: "missed",
             Criteria.NO_TRAFFIC: "no unified traffic to judge"}


def render_markdown(report: RolloutReport, chart_path: str | None = None) -> str:
    limits = report.limits
    lines = [
        f"# Rollout report: {_utc(report.since)} to {_utc(report.until)}",
        "",
        f"Success criteria per step (unified; the warning limits of thresholds "
        f"`{report.thresholds.name}`): error rate < {limits.warning_error_pct}%, "
        f"P95 < {limits.warning_p95_ms:.0f} ms. Figures are exact, from `webhook_routing_logs` "
        "over the step's rollout domains; steps are the rows of `webhook_routing_config`.",
        "",
        "| Step | From | To | Routing | Unified req | Legacy req | Unified error % | "
        "Legacy error % | Unified P95 ms | Legacy P95 ms | Unified vs criteria | "
        "Criteria call for |",
        "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for number, step in enumerate(report.steps, start=1):
        unified, legacy = step.totals[Target.UNIFIED], step.totals[Target.LEGACY]
        lines.append(
            f"| {number} | {_utc(step.start)} | {_utc(step.end)} | {_routing(step)} | "
            f"{unified.requests} | {legacy.requests} | {_pct(unified)} | {_pct(legacy)} | "
            f"{_ms(unified)} | {_ms(legacy)} | {_CRITERIA[step.criteria]} | "
            f"**{step.decision}** |"
        )
    if chart_path is not None:
        lines += ["", f"![Error rate and P95 per target over time]({chart_path})"]
    for number, step in enumerate(report.steps, start=1):
        lines += ["", *_step_section(number, step)]
    if not report.steps:
        lines += ["", "No routing configuration was in force in this period."]
    return "\n".join(lines) + "\n"


def _step_section(number: int, step: Step) -> list[str]:
    lines = [
        f"## Step {number}: {_routing(step)} (config version {step.version})",
        "",
        f"- **Start:** {_utc(step.start)}, by {step.created_by}: {step.notes or '-'}",
        f"- **End:** {_utc(step.end)} ({_duration(step.end - step.start)})"
        + (f", next change by {step.outcome_by}: {step.outcome}" if step.outcome else
           ", still in force"),
        f"- **Domains:** {', '.join(step.domains)}",
        "",
        "| Domain | Target | Requests | Errors | Error rate | P95 ms | "
        f"Error < {step.limits.warning_error_pct}% | P95 < {step.limits.warning_p95_ms:.0f} ms |",
        "|---|---|---:|---:|---:|---:|:---:|:---:|",
    ]
    rows = [(("all", target), figures) for target, figures in step.totals.items()]
    rows += list(step.per_domain.items())
    for (domain, target), figures in rows:
        limits = step.limits if domain == "all" else step.thresholds.for_domain(domain)
        checks = (f"{_MARK[figures.error_ok(limits)]} | {_MARK[figures.p95_ok(limits)]}"
                  if figures.requests else "- | -")
        lines.append(f"| {domain} | {target} | {figures.requests} | {figures.errors} | "
                     f"{_pct(figures)} | {_ms(figures)} | {checks} |")
    why = "; ".join(step.missed) if step.missed else _CRITERIA[step.criteria]
    lines += ["", f"**Decision: {step.decision}** (criteria: {why})"]
    return lines


def _routing(step: Step) -> str:
    pct = f"{step.percentage.normalize():f}%"
    return pct if step.enabled else f"{pct}, disabled"


def _pct(figures: Figures) -> str:
    return "-" if figures.error_pct is None else f"{figures.error_pct:.3f}%"


def _ms(figures: Figures) -> str:
    return "-" if figures.p95_ms is None else f"{figures.p95_ms:.0f}"


def _utc(moment: datetime) -> str:
    """Local ISO 8601 to the minute, with the offset (`2026-11-28T09:00+01:00`)."""
    return moment.astimezone().isoformat(timespec="minutes")


def _duration(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"
