"""The `trafficlight` command: one click group; each command's work lives in its own module."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from trafficlight import settings
from trafficlight.errors import ConfigError, TrafficlightError

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def require_database_url() -> str:
    url = settings.database_url()
    if url is None:
        raise ConfigError(
            "DATABASE_URL is not set (run `trafficlight services` and paste its export lines)"
        )
    return url


def wait_for_stop_signal() -> None:
    """Block until Ctrl-C or SIGTERM, so `finally` blocks stop what we started."""
    received: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    while not received:
        signal.pause()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trafficlight")
def cli() -> None:
    """Canary rollouts for webhook traffic: route a percentage, judge it live, roll back fast."""


@cli.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Folder of YYYYMMDDHHMMSS_name.sql files (default: packaged).")
def migrate(directory: Path | None) -> None:
    """Apply migrations/ to DATABASE_URL, each file once."""
    from trafficlight.migrate import apply_migrations

    applied = run_async(apply_migrations(require_database_url(), directory))
    for migration in applied:
        click.echo(f"applied {migration.version}_{migration.name}")
    if not applied:
        click.echo("database is up to date")


@cli.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Where Postgres keeps its data (default: .trafficlight/).")
@click.option("--migrate/--no-migrate", "run_migrations", default=True,
              help="Apply migrations once Postgres is up.")
def services(data_dir: Path | None, run_migrations: bool) -> None:
    """Start the embedded Kafka broker and Postgres; print `export` lines; Ctrl-C stops both."""
    from trafficlight.kafka import ensure_topics
    from trafficlight.migrate import apply_migrations
    from trafficlight.services import embedded_services

    with embedded_services(data_dir or settings.STATE_DIR) as running:
        run_async(ensure_topics(running.bootstrap_servers))
        if run_migrations:
            run_async(apply_migrations(running.database_url))
        for line in running.export_lines():
            click.echo(line)
        click.echo("# embedded services running; Ctrl-C to stop", err=True)
        sys.stdout.flush()
        wait_for_stop_signal()
    click.echo("stopped", err=True)


def _register_commands() -> None:
    """Commands that live in their own modules."""
    from router.command import router_command
    from trafficlight.alerts.consumer import alerts
    from trafficlight.dashboard.command import dashboard
    from trafficlight.demo import demo
    from trafficlight.demo_knob import demo_knob
    from trafficlight.ops_cli import COMMANDS
    from trafficlight.replay import replay_command
    from trafficlight.worker_command import worker_command

    cli.add_command(replay_command)
    cli.add_command(router_command)
    cli.add_command(worker_command)
    cli.add_command(alerts)
    cli.add_command(dashboard)
    cli.add_command(demo)
    cli.add_command(demo_knob)
    for command in COMMANDS:
        cli.add_command(command)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Entry point: a TrafficlightError becomes one line on stderr and its exit code."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except TrafficlightError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
