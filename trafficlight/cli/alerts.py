"""`trafficlight alerts`: post verdict changes to a webhook."""

from __future__ import annotations

import asyncio
import logging

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
from trafficlight.tools.alerts.delivery import RetryPolicy, redact_webhook


@click.command()
@click.option("--webhook", "webhook_url", envvar=WEBHOOK_ENV, required=True,
              help=f"Slack-compatible incoming webhook URL (or env {WEBHOOK_ENV}).")
@click.option("--topic", default=settings.VERDICTS_TOPIC, show_default=True)
@click.option("--group-id", default=DEFAULT_GROUP_ID, show_default=True,
              help="Its own consumer group: the workers never wait for it.")
@click.option("--max-attempts", default=RetryPolicy.max_attempts, show_default=True, type=int)
def alerts(webhook_url: str, topic: str, group_id: str, max_attempts: int) -> None:
    """Post each verdict or decision change per domain and target to a Slack webhook."""
    bootstrap = settings.required_kafka_bootstrap_servers()
    if not webhook_url.startswith(("http://", "https://")):
        raise ConfigError("--webhook must be an http:// or https:// URL")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = AlertSettings(bootstrap, webhook_url, topic=topic, group_id=group_id,
                           retry=RetryPolicy(max_attempts=max_attempts))

    async def main() -> None:
        stop = stop_event_on_signals()
        click.echo(f"alerts: {topic} -> {redact_webhook(webhook_url)} (group {group_id})",
                   err=True)
        await run_alerts(config, stop)

    asyncio.run(main())
