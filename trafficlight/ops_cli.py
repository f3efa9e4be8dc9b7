"""Operators' commands: simulate, export, status, config changes, watch, report.

Each command only parses its arguments and prints; the work lives in ``simulate``, ``export``,
``operator``, ``watch`` and ``report``. Exit codes are in docs/operator.md.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import orjson

from trafficlight.timeparse import TimeFormatError, parse_duration_s, parse_instant

_INCIDENT = re.compile(r"^(?P<kind>[a-z_]+)(?::(?P<domain>[a-z_-]+))?@(?P<at>[^/]+)/(?P<for>.+)$")
_PERCENTAGE = re.compile(r"^(?P<pct>[0-9.]+)(?:@(?P<at>.+))?$")

json_option = click.option("--json", "as_json", is_flag=True,
                           help="One JSON document on stdout, for scripts.")


def _echo_json(document: Any) -> None:
    click.echo(orjson.dumps(document, default=str).decode())


def _database_url() -> str:
    # Imported here: cli.py imports this module to register its commands.
    from trafficlight.cli import require_database_url

    return require_database_url()


# --- simulate -------------------------------------------------------------------------------

def _percentage_steps(values: tuple[str, ...]) -> tuple[tuple[float, float], ...]:
    steps = []
    for value in values or ("10",):
        match = _PERCENTAGE.match(value)
        if match is None:
            raise TimeFormatError(f"--percentage {value!r}: use PCT or PCT@OFFSET (e.g. 25@2h)")
        offset_s = parse_duration_s(match["at"]) if match["at"] else 0.0
        steps.append((offset_s, float(match["pct"])))
    return tuple(sorted(steps))


def _incidents(values: tuple[str, ...], start_ts: float) -> tuple[Any, ...]:
    from trafficlight.simulate import INCIDENT_KINDS, ScenarioError, default_incident

    incidents = []
    for value in values:
        match = _INCIDENT.match(value)
        if match is None or match["kind"] not in INCIDENT_KINDS:
            kinds = ", ".join(INCIDENT_KINDS)
            raise ScenarioError(f"--incident {value!r}: use KIND[:DOMAIN]@OFFSET/DURATION with "
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
    from trafficlight.simulate import (
        RUNBOOK_VOLUMES_PER_H,
        Scenario,
        generate,
        write_incidents,
        write_jsonl,
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


COMMANDS: list[click.Command] = [simulate]
