"""The rollout report's chart: error rate and P95 per target over time, percentage steps marked.

matplotlib with the Agg backend (no display needed); PNG or SVG by the file's extension.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

from trafficlight.streams.events import Target
from trafficlight.tools.report import TARGETS, RolloutReport

_COLOURS: dict[str, str] = {Target.UNIFIED: "tab:blue", Target.LEGACY: "tab:gray"}


def write_chart(report: RolloutReport, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    figure, (errors_ax, p95_ax) = plt.subplots(2, 1, figsize=(12, 7), sharex=True,
                                               constrained_layout=True)
    times = _bucket_starts(report)
    for target in TARGETS:
        points = {p.bucket_start: p for p in report.timeline if p.routed_to == target}
        # A bucket without traffic is a gap in the line, not a straight bridge over it.
        errors_ax.plot(times, [points[t].error_pct if t in points else math.nan for t in times],
                       label=target, color=_COLOURS[target], linewidth=1.4)
        p95_ax.plot(times, [points[t].p95_ms if t in points else math.nan for t in times],
                    label=target, color=_COLOURS[target], linewidth=1.4)
    limits = report.limits
    errors_ax.axhline(limits.warning_error_pct, color="tab:red", linestyle="--", linewidth=1,
                      label=f"target < {limits.warning_error_pct}%")
    p95_ax.axhline(limits.warning_p95_ms, color="tab:red", linestyle="--", linewidth=1,
                   label=f"target < {limits.warning_p95_ms:.0f} ms")
    for step in report.steps:
        label = f"{step.percentage.normalize():f}%" + ("" if step.enabled else " off")
        for ax in (errors_ax, p95_ax):
            ax.axvline(step.start, color="tab:green" if step.enabled else "tab:orange",
                       linestyle=":", linewidth=1.2)
        errors_ax.annotate(label, xy=(step.start, 1.0), xycoords=("data", "axes fraction"),
                           xytext=(3, -12), textcoords="offset points", fontsize=9,
                           color="tab:green" if step.enabled else "tab:orange")
    errors_ax.set_ylabel("error rate (%)")
    p95_ax.set_ylabel("P95 latency (ms)")
    errors_ax.set_title(f"Rollout {report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M}"
                        f" UTC, {int(report.bucket.total_seconds() // 60)}-minute buckets")
    p95_ax.set_xlabel("time (UTC)")
    hours = mdates.DateFormatter("%H:%M", tz="UTC")  # type: ignore[no-untyped-call]
    p95_ax.xaxis.set_major_formatter(hours)
    for ax in (errors_ax, p95_ax):
        ax.set_ylim(bottom=0)
        ax.set_xlim(report.since, report.until)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=9)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def _bucket_starts(report: RolloutReport) -> list[datetime]:
    starts = []
    moment = report.since
    while moment < report.until:
        starts.append(moment)
        moment += report.bucket
    return starts
