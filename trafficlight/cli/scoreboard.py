"""`trafficlight scoreboard`: the labelled scenarios through each judge, side by side."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from trafficlight.base.errors import InvalidInput
from trafficlight.streams.thresholds import load_thresholds


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidInput(f"--seeds {text!r}: use comma-separated integers, e.g. 1,2,3") from None
    if not seeds:
        raise InvalidInput("--seeds needs at least one seed")
    return seeds


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


@click.command("scoreboard")
@click.option("--seeds", default="1", show_default=True, help="Comma-separated seeds.")
@click.option("--scenarios", "names", default=None,
              help="Comma-separated scenario names (default: the default set; see --list).")
@click.option("--soak", is_flag=True, help="Add the 30-day soak to the default set (slow).")
@click.option("--thresholds", "threshold_file", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Thresholds TOML for every judge (default: SPEC's defaults).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes to spread the scenario runs over (same output).")
@click.option("--progress/--no-progress", default=False,
              help="Name each scenario and seed on stderr as it runs.")
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and their labels.")
def scoreboard_command(seeds: str, names: str | None, soak: bool, threshold_file: Path | None,
                       fmt: str, jobs: int, progress: bool,
                       list_only: bool) -> None:
    """Regressions caught by their deadline, detection delay, false rollbacks, time in hold:
    trafficlight's judge against the runbook by hand and a Flagger-like analysis."""
    from trafficlight.tools.scenarios import CATALOGUE, select
    from trafficlight.tools.scoreboard.board import as_json, run_default_board, table

    if list_only:
        for entry in CATALOGUE:
            extra = "" if entry.default else "  (not in the default set: --soak)"
            click.echo(f"{entry.name:24} {entry.summary}: {entry.label()}{extra}")
        return
    chosen = select(_names(names), soak=soak)
    thresholds = load_thresholds(threshold_file) if threshold_file is not None else None

    def say(line: str) -> None:
        click.echo(line, err=True)

    board = run_default_board(chosen, _seeds(seeds), thresholds, jobs,
                              progress=say if progress else None)
    if fmt == "json":
        sys.stdout.buffer.write(orjson.dumps(as_json(board), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        click.echo(table(board))
