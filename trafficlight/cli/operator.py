"""Operators' commands: simulate, export, status, config changes, watch, report.

Each command only parses its arguments and prints; the work lives in ``simulate``, ``export``,
``operator``, ``watch`` and ``report``. Exit codes are in docs/operator.md.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click
import orjson

from trafficlight.base import settings
from trafficlight.base.db import connect
from trafficlight.base.durations import parse_duration_s, parse_instant
from trafficlight.base.errors import InvalidInput
from trafficlight.tools import operations
from trafficlight.tools.display import config_summary, health_table, plan_summary, verdict_line

_INCIDENT = re.compile(r"^(?P<kind>[a-z_]+)(?::(?P<domain>[a-z_-]+))?@(?P<at>[^/]+)/(?P<for>.+)$")
_PERCENTAGE = re.compile(r"^(?P<pct>[0-9.]+)(?:@(?P<at>.+))?$")

def _check_writable(option: str, path: Path | None) -> None:
    """A path we are about to write: one line naming it and why not, before any work."""
    if path is None:
        return
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InvalidInput(f"{option} {path}: is a folder; give a file name")
    if not folder.is_dir():
        raise InvalidInput(f"{option} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InvalidInput(f"{option} {path}: not writable (permission denied)")


def _database_url() -> str:
    return settings.required_database_url()


json_option = click.option("--json", "as_json", is_flag=True,
                           help="One JSON document on stdout, for scripts.")


def _echo_json(document: Any) -> None:
    click.echo(orjson.dumps(document, default=_json_default).decode())


def _json_default(value: Any) -> Any:
    """Numbers from numeric columns stay numbers in JSON."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


# --- simulate -------------------------------------------------------------------------------

def _percentage_steps(values: tuple[str, ...]) -> tuple[tuple[float, float], ...]:
    steps = []
    for value in values or ("10",):
        match = _PERCENTAGE.match(value)
        if match is None:
            raise InvalidInput(f"--percentage {value!r}: use PCT or PCT@OFFSET (e.g. 25@2h)")
        offset_s = parse_duration_s(match["at"]) if match["at"] else 0.0
        steps.append((offset_s, float(match["pct"])))
    return tuple(sorted(steps))


def _incidents(values: tuple[str, ...], start_ts: float) -> tuple[Any, ...]:
    from trafficlight.tools.simulate import INCIDENT_KINDS, default_incident

    incidents = []
    for value in values:
        match = _INCIDENT.match(value)
        if match is None or match["kind"] not in INCIDENT_KINDS:
            kinds = ", ".join(INCIDENT_KINDS)
            raise InvalidInput(f"--incident {value!r}: use KIND[:DOMAIN]@OFFSET/DURATION with "
                                f"KIND one of {kinds} (e.g. outage:jobs@3h/20m)")
        begin = start_ts + parse_duration_s(match["at"])
        incidents.append(default_incident(match["kind"], match["domain"] or "jobs", begin,
                                          begin + parse_duration_s(match["for"])))
    return tuple(incidents)


@click.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Event file to write: .jsonl or .jsonl.gz.")
@click.option("--start", default=None,
              help="First event time: ISO 8601 or relative (-24h). Default: yesterday 00:00 UTC.")
@click.option("--duration", default="24h", show_default=True, help="How much time to cover.")
@click.option("--volume-scale", type=float, default=1.0, show_default=True,
              help="Multiply the runbook's 500/300/200 requests per hour (jobs/marketplace/"
                   "property).")
@click.option("--percentage", "percentages", multiple=True,
              help="Rollout percentage PCT or PCT@OFFSET, repeatable (default 10).")
@click.option("--incident", "incidents", multiple=True,
              help="KIND[:DOMAIN]@OFFSET/DURATION, KIND = error_spike | latency_creep | outage.")
@click.option("--diurnal", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Day/night swing of the volume (0 = flat).")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Stop after this many events (benchmarks).")
@click.option("--seed", type=int, default=0, show_default=True)
def simulate(out: Path, start: str | None, duration: str, volume_scale: float,
             percentages: tuple[str, ...], incidents: tuple[str, ...], diurnal: float,
             count: int | None, seed: int) -> None:
    """Write a realistic, labelled event file (and OUT.incidents.json) for replay and tests."""
    _check_writable("--out", out)
    from trafficlight.tools.jsonl import write_jsonl
    from trafficlight.tools.simulate import (
        RUNBOOK_VOLUMES_PER_H,
        Scenario,
        generate,
        write_incidents,
    )

    if start is None:
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start_at = midnight - timedelta(days=1)
    else:
        start_at = parse_instant(start)
    start_ts = start_at.timestamp()
    scenario = Scenario(
        start_ts=start_ts,
        duration_s=parse_duration_s(duration),
        volumes_per_h={d: v * volume_scale for d, v in RUNBOOK_VOLUMES_PER_H.items()},
        percentage_steps=_percentage_steps(percentages),
        diurnal_amplitude=diurnal,
        incidents=_incidents(incidents, start_ts),
        seed=seed,
    )
    written = write_jsonl(out, itertools.islice(generate(scenario), count))
    sidecar = write_incidents(out, scenario.incidents)
    click.echo(f"wrote {written} events to {out} ({len(scenario.incidents)} incidents in "
               f"{sidecar})")


# --- export ---------------------------------------------------------------------------------

@click.command()
@click.option("--since", required=True, help="From (inclusive): ISO 8601 or relative (-24h).")
@click.option("--until", default="now", show_default=True, help="To (exclusive).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (.jsonl or .jsonl.gz); stdout by default.")
def export(since: str, until: str, out: Path | None) -> None:
    """Write webhook_routing_logs between two times as a replayable JSONL file."""
    from trafficlight.tools.export import export_logs

    _check_writable("--out", out)

    since_at, until_at = _time_range(since, until)
    written = asyncio.run(export_logs(_database_url(), since_at, until_at, out))
    click.echo(f"exported {written} events", err=True)


def _time_range(since: str, until: str) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    since_at, until_at = parse_instant(since, now), parse_instant(until, now)
    if since_at >= until_at:
        raise InvalidInput(f"--since ({since_at.isoformat()}) must be before --until "
                           f"({until_at.isoformat()})")
    return since_at, until_at


# --- report ---------------------------------------------------------------------------------

@click.command()
@click.option("--since", required=True, help="From (inclusive): ISO 8601 or relative (-24h).")
@click.option("--until", default="now", show_default=True, help="To (exclusive).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Markdown file to write; stdout by default.")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Chart image to write: .png or .svg.")
@click.option("--bucket", default=None,
              help="Chart time bucket, e.g. 5m (default: at most 150 points per line).")
@click.option("--thresholds", "thresholds_path", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Thresholds TOML: its warning limits are the success criteria "
                   "(default: SPEC's, unified error < 0.1%, P95 < 2000 ms).")
@json_option
def report(since: str, until: str, out: Path | None, chart: Path | None, bucket: str | None,
           thresholds_path: Path | None, as_json: bool) -> None:
    """The rollout's results per config step as Markdown, against the runbook's targets."""
    from trafficlight.streams.thresholds import load_thresholds
    from trafficlight.tools.report import build_report
    from trafficlight.tools.report_markdown import render_markdown

    if chart is not None and chart.suffix.lower() not in (".png", ".svg"):
        raise InvalidInput(f"--chart {chart}: the chart is written as .png or .svg")
    _check_writable("--out", out)
    _check_writable("--chart", chart)
    since_at, until_at = _time_range(since, until)
    bucket_span = timedelta(seconds=parse_duration_s(bucket)) if bucket else None
    thresholds = load_thresholds(thresholds_path) if thresholds_path else None
    built = asyncio.run(build_report(_database_url(), since_at, until_at, bucket_span,
                                     thresholds))
    if chart is not None:
        from trafficlight.tools.report_chart import write_chart

        write_chart(built, chart)
    if as_json:
        _echo_json(built.to_dict())
        return
    chart_link = None
    if chart is not None:
        chart_link = chart.name if out is not None and chart.parent == out.parent else str(chart)
    markdown = render_markdown(built, chart_link)
    if out is None:
        click.echo(markdown, nl=False)
    else:
        out.write_text(markdown)
        click.echo(f"wrote {out}" + (f" and {chart}" if chart else ""), err=True)


# --- status and config changes -----------------------------------------------------------

class _PercentageType(click.ParamType):
    """A decimal number, kept exact; the database decides whether it is in range."""

    name = "PCT"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Decimal:
        try:
            return Decimal(str(value))
        except InvalidOperation:
            self.fail(f"{value!r} is not a number", param, ctx)


reason_option = click.option("--reason", required=True,
                             help="Why: stored in the config history with your OS user.")
domain_option = click.option("--domain", default=None,
                             help="Only this rollout domain (default: every rollout domain, "
                                  "clearing per-domain settings).")


@click.command()
@click.option("--domain", default=None, help="Only this rollout domain.")
@json_option
def status(domain: str | None, as_json: bool) -> None:
    """Current routing config and check_routing_health(), as in the runbook."""

    from trafficlight.streams.plan_store import plan_status

    async def read() -> tuple[operations.RoutingConfig, list[dict[str, Any]],
                              dict[str, Any] | None]:
        conn = await connect(_database_url())
        try:
            return (await operations.current_config(conn),
                    await operations.health(conn, domain), await plan_status(conn))
        finally:
            await conn.close()

    config, rows, plan = asyncio.run(read())
    if as_json:
        _echo_json({"config": config.to_dict(), "health": rows, "plan": plan})
        return
    click.echo(config_summary(config))
    click.echo()
    click.echo(health_table(rows))
    click.echo()
    click.echo(plan_summary(plan))


def _report_change(change: operations.Change, as_json: bool) -> None:
    if as_json:
        _echo_json(change.to_dict())
    else:
        click.echo(change.notice)
        click.echo(config_summary(change.config))


@click.command("set-percentage")
@click.argument("pct", type=_PercentageType())
@reason_option
@domain_option
@json_option
def set_percentage(pct: Decimal, reason: str, domain: str | None, as_json: bool) -> None:
    """Route PCT percent of each rollout domain to unified (above 0 also enables routing)."""
    actor = operations.os_actor()
    change = asyncio.run(operations.set_percentage(_database_url(), pct, reason, actor, domain))
    _report_change(change, as_json)


@click.command()
@reason_option
@domain_option
@json_option
def enable(reason: str, domain: str | None, as_json: bool) -> None:
    """Resume routing at the current percentage."""
    actor = operations.os_actor()
    change = asyncio.run(operations.set_enabled(_database_url(), True, reason, actor, domain))
    _report_change(change, as_json)


@click.command()
@reason_option
@domain_option
@json_option
def disable(reason: str, domain: str | None, as_json: bool) -> None:
    """Send all traffic to legacy; the percentage is kept for a later `enable`."""
    actor = operations.os_actor()
    change = asyncio.run(operations.set_enabled(_database_url(), False, reason, actor, domain))
    _report_change(change, as_json)


@click.command()
@reason_option
@domain_option
@json_option
def rollback(reason: str, domain: str | None, as_json: bool) -> None:
    """Emergency rollback: disable routing, noted as "Rollback: REASON" in the history."""
    change = asyncio.run(operations.rollback(_database_url(), reason, operations.os_actor(),
                                             domain))
    _report_change(change, as_json)


# --- watch ------------------------------------------------------------------------------------

@click.command()
@click.option("--domain", default=None, help="Only verdicts of this domain.")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest verdict kept.")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Stop after this many verdicts.")
@click.option("--topic", default=None, help="Verdict topic (default webhook-routing-verdicts).")
@click.option("--all", "every_heartbeat", is_flag=True,
              help="Every verdict (one per target per second), not only changes.")
@json_option
def watch(domain: str | None, from_beginning: bool, count: int | None, topic: str | None,
          every_heartbeat: bool, as_json: bool) -> None:
    """Follow the verdicts as the workers publish them, coloured by verdict: by default each
    target's first and then only changes of verdict or decision (--all for every one)."""
    from trafficlight.tools.watch import ChangeFilter, follow_verdicts

    bootstrap = settings.required_kafka_bootstrap_servers()
    name = topic or settings.VERDICTS_TOPIC
    if domain is not None and settings.database_url() is not None:
        _check_domain(domain)

    def ready() -> None:
        where = "the beginning" if from_beginning else "now"
        which = "every verdict" if every_heartbeat else "changes (--all: every verdict)"
        click.echo(f"watching {name} from {where}, {which}; Ctrl-C to stop", err=True)

    changes = ChangeFilter()

    async def follow() -> None:
        shown = 0
        async for received in follow_verdicts(bootstrap, name, from_beginning=from_beginning,
                                              on_ready=ready):
            if received.verdict is None:
                click.echo(f"skipped record {received.partition}/{received.offset}: "
                           f"{received.problem}", err=True)
                continue
            if domain is not None and received.verdict.domain != domain:
                continue
            if not every_heartbeat and not changes.is_news(received.verdict):
                continue
            click.echo(orjson.dumps(received.verdict.to_dict()).decode() if as_json
                       else verdict_line(received.verdict))
            shown += 1
            if count is not None and shown >= count:
                return

    asyncio.run(follow())


def _check_domain(domain: str) -> None:
    async def check() -> None:
        conn = await connect(_database_url())
        try:
            operations.check_domain(await operations.current_config(conn), domain)
        finally:
            await conn.close()

    asyncio.run(check())


COMMANDS: list[click.Command] = [
    simulate, export, report, status, set_percentage, enable, disable, rollback, watch,
]
