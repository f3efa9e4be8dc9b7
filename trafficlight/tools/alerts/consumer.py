"""`trafficlight alerts`: follow the verdict topic in its own consumer group and post changes.

Offsets are committed only while every alert read so far is settled (posted or given up),
so a crash re-reads what was not yet delivered instead of losing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from trafficlight.base import settings
from trafficlight.base.errors import ConfigError, ServiceStartError, first_line
from trafficlight.streams.verdicts import BadVerdict, decode_verdicts
from trafficlight.tools.alerts.changes import ChangeDetector
from trafficlight.tools.alerts.delivery import (
    AlertSender,
    AppriseChannel,
    Channel,
    RetryPolicy,
    SlackWebhook,
)

log = logging.getLogger(__name__)

DEFAULT_GROUP_ID = "trafficlight-alerts"
WEBHOOK_ENV = "TRAFFICLIGHT_ALERTS_WEBHOOK"


@dataclass(frozen=True)
class AlertSettings:
    bootstrap_servers: str
    #: Slack-compatible incoming webhooks (`--webhook`), posted natively.
    webhook_urls: tuple[str, ...] = ()
    #: Apprise URLs (`--notify`): slack://, msteams://, pagerduty://, mailto://, json://, ...
    notify_urls: tuple[str, ...] = ()
    topic: str = settings.VERDICTS_TOPIC
    group_id: str = DEFAULT_GROUP_ID
    #: Where a new consumer group starts: "latest" alerts only on what happens from now on.
    offset_reset: str = "latest"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    commit_interval_s: float = 2.0
    #: On stop, how long queued alerts may still take to go out.
    drain_timeout_s: float = 10.0


class VerdictAlerts:
    """Verdict records in, alerts out: the detector feeding one sender per channel."""

    def __init__(self, senders: list[AlertSender]) -> None:
        self.detector = ChangeDetector()
        self.senders = senders
        self.bad_records = 0

    @property
    def idle(self) -> bool:
        """Every alert read so far is settled on every channel."""
        return all(sender.idle for sender in self.senders)

    def handle(self, value: bytes | None) -> None:
        try:
            for verdict in decode_verdicts(value):
                change = self.detector.observe(verdict)
                if change is not None:
                    for sender in self.senders:
                        sender.submit(change)
        except BadVerdict as exc:
            self.bad_records += 1
            log.warning("alerts: skipped a record that is not a verdict: %s",
                        first_line(exc))


async def run_alerts(config: AlertSettings, stop: asyncio.Event,
                     announce: Callable[[str], None] | None = None) -> VerdictAlerts:
    """Until ``stop`` is set; returns the counters' owner for callers that want figures."""
    if not config.webhook_urls and not config.notify_urls:
        raise ConfigError("no alert channel: give --notify URL or --webhook URL")
    for url in config.webhook_urls:
        SlackWebhook.checked_url(url)
    apprise_channels: list[Channel] = [AppriseChannel(url) for url in config.notify_urls]
    consumer = AIOKafkaConsumer(
        config.topic, bootstrap_servers=config.bootstrap_servers, group_id=config.group_id,
        enable_auto_commit=False, auto_offset_reset=config.offset_reset,
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        raise ServiceStartError(
            f"cannot reach Kafka at {config.bootstrap_servers}: {exc}") from None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        channels = [*(SlackWebhook(url, http) for url in config.webhook_urls),
                    *apprise_channels]
        alerts = VerdictAlerts([AlertSender(channel, config.retry) for channel in channels])
        tasks = [asyncio.create_task(sender.run()) for sender in alerts.senders]
        if announce is not None:
            names = ", ".join(channel.name for channel in channels)
            announce(f"alerts: {config.topic} -> {names} (group {config.group_id})")
        last_commit = time.monotonic()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        alerts.handle(record.value)
                due = time.monotonic() - last_commit >= config.commit_interval_s
                if due and alerts.idle:  # commit only what is fully delivered
                    await consumer.commit()
                    last_commit = time.monotonic()
            deadline = time.monotonic() + config.drain_timeout_s
            while not alerts.idle and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if alerts.idle:
                await consumer.commit()
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await consumer.stop()
    return alerts
