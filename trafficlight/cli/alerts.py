"""`trafficlight alerts`: post verdict changes (and, with a database, the rollout plan's
status and changes) to every channel given."""

from __future__ import annotations

import asyncio
import logging
import os

import click

from trafficlight.base import settings
from trafficlight.base.errors import ConfigError
from trafficlight.base.signals import stop_event_on_signals
from trafficlight.tools.alerts.consumer import (
    DEFAULT_GROUP_ID,
    WEBHOOK_ENV,
    AlertSettings,
    run_alerts,
)
from trafficlight.tools.alerts.delivery import RetryPolicy

NOTIFY_ENV = "TRAFFICLIGHT_ALERTS_NOTIFY"


@click.command()
@click.option("--notify", "notify_urls", multiple=True, metavar="URL",
              help="An Apprise URL (repeatable): slack://, msteams://, pagerduty://, "
                   f"mailto://, json://HOST/PATH, ... (or env {NOTIFY_ENV}, space-separated).")
@click.option("--webhook", "webhook_url", envvar=WEBHOOK_ENV, default=None,
              help=f"A Slack-compatible incoming webhook URL (or env {WEBHOOK_ENV}).")
@click.option("--topic", default=settings.VERDICTS_TOPIC, show_default=True)
@click.option("--group-id", default=DEFAULT_GROUP_ID, show_default=True,
              help="Its own consumer group: the workers never wait for it.")
@click.option("--max-attempts", default=RetryPolicy.max_attempts, show_default=True,
              type=click.IntRange(1))
@click.option("--database-url", envvar=settings.DATABASE_URL_ENV, default=None,
              metavar="URL",
              help=f"Postgres (or env {settings.DATABASE_URL_ENV}), optional: each alert then "
                   "carries the rollout plan's status, and each plan change is an alert.")
def alerts(notify_urls: tuple[str, ...], webhook_url: str | None, topic: str, group_id: str,
           max_attempts: int, database_url: str | None) -> None:
    """Post each verdict or decision change per domain and target to every channel.

    With a database, each alert also shows the rollout plan (step, baked / left, evidence,
    blockers) and each plan change (set, promoted, paused, resumed, aborted, done) is posted.
    """
    notify = (*notify_urls, *os.environ.get(NOTIFY_ENV, "").split())
    if not notify and not webhook_url:
        raise ConfigError(f"no alert channel: give --notify URL (or {NOTIFY_ENV}) or "
                          f"--webhook URL (or {WEBHOOK_ENV})")
    bootstrap = settings.required_kafka_bootstrap_servers()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = AlertSettings(bootstrap, webhook_urls=(webhook_url,) if webhook_url else (),
                           notify_urls=notify, topic=topic, group_id=group_id,
                           retry=RetryPolicy(max_attempts=max_attempts),
                           database_url=database_url or None)

    async def main() -> None:
        stop = stop_event_on_signals()
        await run_alerts(config, stop, announce=lambda line: click.echo(line, err=True))

    asyncio.run(main())
