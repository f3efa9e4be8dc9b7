"""How configs, health rows and verdicts look in a terminal: one place for columns and colours."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from trafficlight.base.routing_config import RoutingConfig
from trafficlight.base.times import local_iso
from trafficlight.streams.verdicts import Health, Verdict

#: Green / amber / red, as the runbook says; no data is dim, never green.
VERDICT_COLOURS: dict[str, str] = {
    Health.HEALTHY: "green", Health.WARNING: "yellow", Health.CRITICAL: "red",
    Health.INSUFFICIENT_DATA: "bright_black",
}

_HEADER = ("domain", "target", "requests", "errors", "error %", "p50 ms", "p95 ms", "p99 ms",
           "verdict", "decision", "window end", "reasons")


def styled_verdict(verdict: str, width: int = 0) -> str:
    return click.style(verdict.ljust(width), fg=VERDICT_COLOURS.get(verdict), bold=True)


def config_summary(config: RoutingConfig) -> str:
    state = "ENABLED" if config.enabled else "DISABLED"
    pct = f"{config.percentage:g}"
    return "\n".join([
        f"Routing {state} at {pct}% of {', '.join(sorted(config.domains))} to unified "
        f"(protected, always legacy: {', '.join(sorted(config.protected_domains))})",
        *(f"  {domain}: {'enabled' if own.enabled else 'DISABLED'} at {own.percentage:g}% "
          "(own setting)"
          for domain, own in sorted(config.domain_overrides.items())),
        f"Config version {config.version}, {_utc(config.created_at_utc)} by {config.created_by}: "
        f"{config.notes or '-'}",
    ])


def plan_summary(status: dict[str, Any] | None) -> str:
    """The rollout plan in force: step, bake, evidence, blockers (from plan_store.plan_status)."""
    if status is None:
        return "Rollout plan: none (set one with `trafficlight plan set 10,25,50,100 --bake 4h`)"
    plan = status["plan"]
    steps = ", ".join(f"{s:g}" for s in plan["steps"])
    nxt = f"{plan['next_pct']:g}%" if plan["next_pct"] is not None else "none (last step)"
    evidence = ", ".join(f"{d} {n}/{status['required_proceed']}"
                         for d, n in sorted(status["evidence"].items())) or "-"
    lines = [
        f"Rollout plan v{plan['version']} {plan['state'].upper()}: step {plan['current_step']} "
        f"of {len(plan['steps'])} at {plan['step_pct']:g}% (steps {steps}), next {nxt}",
        f"Baked {_span(status['baked_s'])} of {_span(plan['bake_s'])}, "
        f"left {_span(status['left_s'])}; proceed verdicts in a row: {evidence}",
    ]
    if status["ready"]:
        lines.append("Ready to promote")
    else:
        lines.append("Blocked: " + "; ".join(b["message"] for b in status["blockers"]))
    return "\n".join(lines)


def _span(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def health_table(rows: list[dict[str, Any]]) -> str:
    """The runbook's health table; the verdict column coloured."""
    cells = [[
        row["domain"], row["routed_to"], str(row["requests"]), str(row["errors"]),
        f"{float(row['error_pct']):.3f}", _ms(row["p50_ms"]), _ms(row["p95_ms"]),
        _ms(row["p99_ms"]), row["verdict"], row["decision"],
        _utc(row["window_end"]) if row["window_end"] else "-", "; ".join(row["reasons"] or []),
    ] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(_HEADER)]
    numeric = {2, 3, 4, 5, 6, 7}

    def line(values: list[str], colour: bool) -> str:
        out = []
        for i, value in enumerate(values):
            if colour and i == 8:
                out.append(styled_verdict(value, widths[i]))
            else:
                out.append(value.rjust(widths[i]) if i in numeric else value.ljust(widths[i]))
        return "  ".join(out).rstrip()

    return "\n".join([line(list(_HEADER), False), *(line(c, True) for c in cells)])


def verdict_line(verdict: Verdict) -> str:
    """One verdict from the topic as one line: when, which target, figures, verdict, why."""
    end = local_iso(verdict.window_end)
    reasons = "; ".join(verdict.reasons)
    return (f"{end}  {verdict.domain:<12} {verdict.routed_to:<8} "
            f"{styled_verdict(verdict.verdict, 17)} {verdict.decision:<8} "
            f"req={verdict.requests} err={verdict.error_pct:.3f}% "
            f"p95={_ms(verdict.p95_ms)}ms" + (f"  {reasons}" if reasons else ""))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _utc(moment: datetime) -> str:
    """Local ISO 8601 with the offset (the name stays for callers)."""
    return local_iso(moment)
