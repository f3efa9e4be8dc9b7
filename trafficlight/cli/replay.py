"""`trafficlight replay`: verdicts that other thresholds would have produced."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import click

from trafficlight.base import settings
from trafficlight.base.durations import parse_instant_s, parse_whole_seconds
from trafficlight.base.errors import ConfigError
from trafficlight.streams.config_shares import load_shares
from trafficlight.streams.events import EventBatch
from trafficlight.streams.sample_ratio import StaticShares
from trafficlight.streams.thresholds import ThresholdSet, load_thresholds
from trafficlight.tools.replay import (
    RejectLog,
    Replay,
    comparison_table,
    file_batches,
    progress_bar,
    replay_topic,
    sorted_file_batches,
    topic_batches,
)
from trafficlight.tools.simulate import incidents_path, read_incidents


def _replay_file(run: Replay, batches: Iterator[tuple[int, EventBatch]]) -> Replay:
    with progress_bar() as bar:
        for partition, batch in batches:
            run.feed(partition, batch)
            bar.advance(batch)
    return run


@click.command("replay")
@click.option("--input", "source", required=True, help="A .jsonl/.jsonl.gz file, or `kafka`.")
@click.option("--thresholds", "threshold_files", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Thresholds TOML; repeat to compare sets side by side (default: built-in).")
@click.option("--window", default=None, help="Trailing window, e.g. 5m (default: the set's).")
@click.option("--step", default=None, help="Evaluation step, e.g. 1s (default: the set's).")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table",
              show_default=True,
              help="table: side by side per thresholds set; jsonl: one verdict per line.")
@click.option("--since", default=None, help="Only events at or after (epoch s or ISO).")
@click.option("--until", default=None, help="Only events before (epoch s or ISO).")
@click.option("--topic", default=settings.EVENTS_TOPIC, show_default=True,
              help="Events topic for --input kafka.")
@click.option("--strict", is_flag=True, help="Stop at the first corrupt line (exit 4).")
@click.option("--config-db", "config_db", default=None, metavar="URL",
              help="Postgres URL whose webhook_routing_config gives each config version's "
                   "percentage per domain: turns the sample-ratio guard on (default: off).")
def replay_command(source: str, threshold_files: tuple[Path, ...], window: str | None,
                   step: str | None, fmt: str, since: str | None, until: str | None,
                   topic: str, strict: bool, config_db: str | None) -> None:
    """Verdicts the given thresholds would have produced over recorded events.

    A file's events may omit event_id, router_id and config_version (the judge reads none of
    them; config_version is then 0: one step); corrupt lines are skipped and reported."""
    sets = [load_thresholds(p) for p in threshold_files] or [ThresholdSet()]
    try:
        window_s = parse_whole_seconds(window) if window is not None else None
        step_s = parse_whole_seconds(step) if step is not None else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    sets = [replace(s, settings=replace(
        s.settings, window_s=window_s or s.settings.window_s,
        step_s=step_s or s.settings.step_s)) for s in sets]
    now = datetime.now(UTC)
    since_s, until_s = parse_instant_s(since, now), parse_instant_s(until, now)
    rejects = RejectLog(strict, source)
    out = sys.stdout.buffer
    sidecar = None if source == "kafka" else incidents_path(Path(source))
    labelled = read_incidents(sidecar) if sidecar is not None and sidecar.is_file() else None
    shares = StaticShares(asyncio.run(load_shares(config_db))) if config_db else None
    grace_s = max(s.settings.grace_s for s in sets)
    if source == "kafka":
        run = Replay(sets, out if fmt == "jsonl" else None, labelled, shares)
        bootstrap = settings.required_kafka_bootstrap_servers()
        settle_s = max(s.settings.grace_s + s.settings.bucket_s for s in sets)
        asyncio.run(replay_topic(run, topic_batches(
            bootstrap, topic, rejects, since_s, until_s, settle_s)))
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"{source}: no such file")
        # Verdicts go to a spool first: a file found out of time order is replayed again.
        with tempfile.TemporaryFile() as spool:
            emit = spool if fmt == "jsonl" else None
            run = _replay_file(Replay(sets, emit, labelled, shares),
                               file_batches(path, rejects, since_s, until_s))
            if run.late_events:
                click.echo(f"{source}: {run.late_events} event(s) came more than {grace_s} s "
                           "behind the events before them: the file is not in time order; "
                           "replaying it sorted by time (in memory)", err=True)
                spool.seek(0)
                spool.truncate()
                run = _replay_file(Replay(sets, emit, labelled, shares),
                                   sorted_file_batches(path, since_s, until_s))
            spool.seek(0)
            shutil.copyfileobj(spool, out)
    if run.late_events:
        click.echo(f"{run.late_events} event(s) came more than {grace_s} s behind the event "
                   "time and were counted, not judged (as the worker would)", err=True)
    summaries, incidents = run.summaries, run.incidents()
    if fmt == "table":
        click.echo(comparison_table(summaries, incidents, sets[0].settings.window_s))
    else:
        out.flush()
        for s in summaries:
            click.echo(f"{s.name}: {s.evaluations} evaluations, {len(s.rollbacks)} "
                       f"rollbacks, {s.hold_s:.0f} s in hold", err=True)
    if rejects.count:
        click.echo(f"skipped {rejects.count} corrupt event(s)", err=True)
    if rejects.defaulted:
        click.echo(f"{rejects.defaulted} event(s) without event_id, router_id or config_version "
                   "judged anyway (config_version taken as 0)", err=True)
