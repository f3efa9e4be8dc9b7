"""`trafficlight alerts`: follow the verdict topic in its own consumer group and post changes.

Offsets are committed only while every alert read so far is settled (posted or given up),
so a crash re-reads what was not yet delivered instead of losing it.

With a database URL the rollout plan is followed too (:class:`PlanFollower`): each verdict
alert carries the plan's status, and each plan change (set, promoted, paused, resumed, aborted,
done) is an alert of its own, through the same senders. Without one, or with the database
down, verdict alerts go out as before, without the plan block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import aiohttp
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from trafficlight.base import settings
from trafficlight.base.db import connect_args
from trafficlight.base.errors import ConfigError, ServiceStartError, first_line
from trafficlight.streams.verdicts import BadVerdict, decode_verdicts
from trafficlight.tools.alerts.changes import Change, ChangeDetector
from trafficlight.tools.alerts.delivery import (
    AlertSender,
    AppriseChannel,
    Channel,
    RetryPolicy,
    SlackWebhook,
)
from trafficlight.tools.alerts.plan_events import Alert
from trafficlight.tools.alerts.plan_follower import PlanFollower

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
    #: Postgres (`--database-url` / DATABASE_URL): the rollout plan's status and changes.
    database_url: str | None = None
    #: How often the plan is re-read besides each NOTIFY (the only way through a pooler).
    plan_poll_s: float = 5.0


class VerdictAlerts:
    """Verdict records in, alerts out: the detector feeding one sender per channel."""

    def __init__(self, senders: list[AlertSender], plan: PlanFollower | None = None) -> None:
        self.detector = ChangeDetector()
        self.senders = senders
        self.plan = plan
        self.bad_records = 0

    @property
    def idle(self) -> bool:
        """Every alert read so far is settled on every channel."""
        return all(sender.idle for sender in self.senders)

    def submit(self, alert: Alert) -> None:
        """To every channel, without waiting."""
        for sender in self.senders:
            sender.submit(alert)

    def handle(self, value: bytes | None) -> None:
        try:
            for verdict in decode_verdicts(value):
                change = self.detector.observe(verdict)
                if change is not None:
                    self.submit(self._with_plan(change))
        except BadVerdict as exc:
            self.bad_records += 1
            log.warning("alerts: skipped a record that is not a verdict: %s",
                        first_line(exc))

    def _with_plan(self, change: Change) -> Change:
        """The change with the plan's status as last read; never waits for the database."""
        if self.plan is None:
            return change
        if not self.plan.available:
            log.warning("alerts: %s/%s: sent without the rollout plan (database unavailable)",
                        *change.key)
            return change
        return replace(change, plan=self.plan.status())


async def run_alerts(config: AlertSettings, stop: asyncio.Event,
                     announce: Callable[[str], None] | None = None) -> VerdictAlerts:
    """Until ``stop`` is set; returns the counters' owner for callers that want figures."""
    if not config.webhook_urls and not config.notify_urls:
        raise ConfigError("no alert channel: give --notify URL or --webhook URL")
    for url in config.webhook_urls:
        SlackWebhook.checked_url(url)
    apprise_channels: list[Channel] = [AppriseChannel(url) for url in config.notify_urls]
    if config.database_url is not None:
        connect_args(config.database_url)  # not a Postgres URL: a one-line setup error now
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
        try:
            if config.database_url is not None:
                alerts.plan = PlanFollower(config.database_url, alerts.submit,
                                           config.plan_poll_s)
                await alerts.plan.start()  # the baseline: a plan change from now on is news
            if announce is not None:
                names = ", ".join(channel.name for channel in channels)
                plan = "" if alerts.plan is None else " + rollout plan"
                announce(f"alerts: {config.topic}{plan} -> {names} (group {config.group_id})")
            last_commit = time.monotonic()
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        alerts.handle(record.value)
                due = time.monotonic() - last_commit >= config.commit_interval_s
                if due and alerts.idle:  # commit only what is fully delivered
                    await consumer.commit()
                    last_commit = time.monotonic()
            if alerts.plan is not None:
                await alerts.plan.stop()  # no new plan alert while the queues drain
            deadline = time.monotonic() + config.drain_timeout_s
            while not alerts.idle and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if alerts.idle:
                await consumer.commit()
        finally:
            if alerts.plan is not None:
                await alerts.plan.stop()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await consumer.stop()
    return alerts
