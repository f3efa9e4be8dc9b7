"""How configs, health rows and verdicts look in a terminal: one place for columns and colours."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from trafficlight.streams.verdicts import Health, Verdict
from trafficlight.tools.operations import RoutingConfig

#: Green / amber / red, as the runbook says; no data is dim, never green.
VERDICT_COLOURS: dict[str, str] = {
    Health.HEALTHY: "green", Health.WARNING: "yellow", Health.CRITICAL: "red",
    Health.INSUFFICIENT_DATA: "bright_black",
}

_HEADER = ("domain", "target", "requests", "errors", "error %", "p50 ms", "p95 ms", "p99 ms",
           "verdict", "decision", "window end (UTC)", "reasons")


def styled_verdict(verdict: str, width: int = 0) -> str:
    return click.style(verdict.ljust(width), fg=VERDICT_COLOURS.get(verdict), bold=True)


def config_summary(config: RoutingConfig) -> str:
    state = "ENABLED" if config.enabled else "DISABLED"
    pct = f"{config.percentage.normalize():f}"
    return "\n".join([
        f"Routing {state} at {pct}% of {', '.join(config.domains)} to unified "
        f"(protected, always legacy: {', '.join(config.protected_domains)})",
        f"Config version {config.id}, {_utc(config.created_at)} by {config.created_by}: "
        f"{config.notes or '-'}",
    ])


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
    end = datetime.fromtimestamp(verdict.window_end, UTC).strftime("%H:%M:%S")
    reasons = "; ".join(verdict.reasons)
    return (f"{end}  {verdict.domain:<12} {verdict.routed_to:<8} "
            f"{styled_verdict(verdict.verdict, 17)} {verdict.decision:<8} "
            f"req={verdict.requests} err={verdict.error_pct:.3f}% "
            f"p95={_ms(verdict.p95_ms)}ms" + (f"  {reasons}" if reasons else ""))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
