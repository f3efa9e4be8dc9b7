"""`trafficlight alerts`: follow the verdict topic in its own consumer group and post changes.

Offsets are committed only while every alert read so far is settled (posted or given up),
so a crash re-reads what was not yet delivered instead of losing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import aiohttp
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from trafficlight.base import settings
from trafficlight.base.errors import ServiceStartError, first_line
from trafficlight.streams.verdicts import BadVerdict, decode_verdicts
from trafficlight.tools.alerts.changes import ChangeDetector, slack_message
from trafficlight.tools.alerts.delivery import AlertSender, RetryPolicy

log = logging.getLogger(__name__)

DEFAULT_GROUP_ID = "trafficlight-alerts"
WEBHOOK_ENV = "TRAFFICLIGHT_ALERTS_WEBHOOK"


@dataclass(frozen=True)
class AlertSettings:
    bootstrap_servers: str
    webhook_url: str
    topic: str = settings.VERDICTS_TOPIC
    group_id: str = DEFAULT_GROUP_ID
    #: Where a new consumer group starts: "latest" alerts only on what happens from now on.
    offset_reset: str = "latest"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    commit_interval_s: float = 2.0
    #: On stop, how long queued alerts may still take to go out.
    drain_timeout_s: float = 10.0


class VerdictAlerts:
    """Verdict records in, alerts out: the detector feeding the sender."""

    def __init__(self, sender: AlertSender) -> None:
        self.detector = ChangeDetector()
        self.sender = sender
        self.bad_records = 0

    def handle(self, value: bytes | None) -> None:
        try:
            for verdict in decode_verdicts(value):
                change = self.detector.observe(verdict)
                if change is not None:
                    self.sender.submit(slack_message(change))
        except BadVerdict as exc:
            self.bad_records += 1
            log.warning("alerts: skipped a record that is not a verdict: %s",
                        first_line(exc))


async def run_alerts(config: AlertSettings, stop: asyncio.Event) -> VerdictAlerts:
    """Until ``stop`` is set; returns the counters' owner for callers that want figures."""
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
        alerts = VerdictAlerts(AlertSender(config.webhook_url, http, config.retry))
        sender_task = asyncio.create_task(alerts.sender.run())
        last_commit = time.monotonic()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        alerts.handle(record.value)
                due = time.monotonic() - last_commit >= config.commit_interval_s
                if due and alerts.sender.idle:  # commit only what is fully delivered
                    await consumer.commit()
                    last_commit = time.monotonic()
            deadline = time.monotonic() + config.drain_timeout_s
            while not alerts.sender.idle and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if alerts.sender.idle:
                await consumer.commit()
        finally:
            sender_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender_task
            await consumer.stop()
    return alerts
