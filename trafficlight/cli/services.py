"""`trafficlight migrate` and `trafficlight services`: the database schema and local services."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from trafficlight.base import settings
from trafficlight.base.kafka import ensure_topics
from trafficlight.base.local_services import BrokerKind, embedded_services
from trafficlight.base.signals import StopSignals
from trafficlight.tools.migrate import apply_migrations


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Folder of YYYYMMDDHHMMSS_name.sql files (default: packaged).")
def migrate(directory: Path | None) -> None:
    """Apply migrations/ to DATABASE_URL, each file once."""

    applied = asyncio.run(apply_migrations(settings.required_database_url(), directory))
    for migration in applied:
        click.echo(f"applied {migration.version}_{migration.name}")
    if not applied:
        click.echo("database is up to date")


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=None,
              help="Where Postgres and Apache Kafka keep their data (default: .trafficlight/).")
@click.option("--migrate/--no-migrate", "run_migrations", default=True,
              help="Apply migrations once Postgres is up.")
@click.option("--kafka", type=click.Choice([kind.value for kind in BrokerKind]),
              default=BrokerKind.TANSU.value, show_default=True,
              help="tansu: embedded, memory only, no Java needed. apache: Apache Kafka (KRaft) "
                   "with its logs on disk, needs Java 17+ and Maven.")
def services(data_dir: Path | None, run_migrations: bool, kafka: str) -> None:
    """Start a local Kafka broker and Postgres; print `export` lines; Ctrl-C stops both."""

    stop = StopSignals()  # before anything starts: a signal meanwhile still stops it all
    with embedded_services(data_dir or settings.STATE_DIR, BrokerKind(kafka)) as running:
        asyncio.run(ensure_topics(running.bootstrap_servers))
        if run_migrations:
            asyncio.run(apply_migrations(running.database_url))
        for line in running.export_lines():
            click.echo(line)
        click.echo("# embedded services running; Ctrl-C to stop", err=True)
        sys.stdout.flush()
        stop.wait()
    click.echo("stopped", err=True)
