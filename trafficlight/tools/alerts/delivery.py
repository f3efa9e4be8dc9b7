"""Delivering alerts to channels: in order, retried with exponential backoff, never blocking.

One `AlertSender` per channel: `submit` only enqueues; one task delivers. Two kinds of channel:

- `SlackWebhook` (`--webhook URL`): Slack-compatible JSON posted with aiohttp. Connection
  errors, timeouts, 5xx and 429 are retried (429's Retry-After honoured); another 4xx means
  the webhook refuses the message itself, so it is given up at once.
- `AppriseChannel` (`--notify URL`): any Apprise URL (`slack://`, `msteams://`,
  `pagerduty://`, `mailto://`, `json://`, ...). Apprise is synchronous: each notification runs
  in a thread (`asyncio.to_thread`) so the consumer loop never blocks. Apprise reports only
  success or failure, so every failure is retried with the same backoff.

Up to `max_attempts` attempts; a full queue drops its oldest alert (counted): the consumer
keeps reading rather than waiting on a dead channel. URLs are secrets (Slack's carries the key
in its path): only a redacted form is ever logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
import apprise

from trafficlight.base.errors import ConfigError
from trafficlight.base.retry import Backoff
from trafficlight.tools.alerts.plan_events import Alert, alert_notification, alert_slack_message

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_attempts: int = 8

    def delay_s(self, failed_attempts: int, retry_after_s: float | None = None) -> float:
        """Wait before the next attempt: doubling from first_delay_s, capped; Retry-After wins."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_delay_s)
        return Backoff(self.first_delay_s, self.max_delay_s).delay_s(failed_attempts)


@dataclass
class DeliveryCounters:
    delivered: int = 0
    retries: int = 0
    given_up: int = 0
    dropped: int = 0


def redact_webhook(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}/…"


class _Retry(Exception):
    """Worth another attempt: no answer, a timeout, 5xx or 429."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class _Refused(Exception):
    """The webhook rejected the message itself (4xx other than 429): retrying cannot help."""


def _retry_after_s(header: str | None) -> float | None:
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None


class Channel(Protocol):
    """Where alerts go. `post` returns once accepted, raises `_Retry` or `_Refused`."""

    @property
    def name(self) -> str:
        """The channel's URL with its secrets left out."""
        ...

    async def post(self, alert: Alert) -> None: ...


class AlertSender:
    def __init__(self, channel: Channel, policy: RetryPolicy | None = None,
                 queue_size: int = 1000) -> None:
        self.channel = channel
        self._policy = policy or RetryPolicy()
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(queue_size)
        self._in_flight = False
        self.counters = DeliveryCounters()

    @property
    def idle(self) -> bool:
        """Nothing queued or being posted: everything submitted so far is settled."""
        return self._queue.empty() and not self._in_flight

    def submit(self, alert: Alert) -> None:
        """Enqueue without waiting; a full queue loses its oldest alert."""
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
                self.counters.dropped += 1
                log.warning("alerts: %s: queue full, dropped the oldest alert",
                            self.channel.name)
        self._queue.put_nowait(alert)

    async def run(self) -> None:
        while True:
            alert = await self._queue.get()
            self._in_flight = True
            try:
                await self.deliver(alert)
            finally:
                self._in_flight = False

    async def deliver(self, alert: Alert) -> bool:
        """Post one alert until it is accepted or the policy gives up."""
        for attempt in range(1, self._policy.max_attempts + 1):
            try:
                await self.channel.post(alert)
            except _Retry as exc:
                if attempt == self._policy.max_attempts:
                    break
                self.counters.retries += 1
                delay_s = self._policy.delay_s(attempt, exc.retry_after_s)
                log.info("alerts: %s answered %s; retry %d in %.1fs",
                         self.channel.name, exc, attempt, delay_s)
                await asyncio.sleep(delay_s)
            except _Refused as exc:
                log.error("alerts: %s refused an alert: %s", self.channel.name, exc)
                self.counters.given_up += 1
                return False
            else:
                self.counters.delivered += 1
                return True
        log.error("alerts: %s: gave up on an alert after %d attempts", self.channel.name,
                  self._policy.max_attempts)
        self.counters.given_up += 1
        return False


class SlackWebhook:
    """A Slack-compatible incoming webhook (`text` + a coloured attachment), over aiohttp."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self._url = self.checked_url(url)
        self._http = http

    @staticmethod
    def checked_url(url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ConfigError("--webhook must be an http:// or https:// URL")
        return url

    @property
    def name(self) -> str:
        return redact_webhook(self._url)

    async def post(self, alert: Alert) -> None:
        message = alert_slack_message(alert)
        try:
            async with self._http.post(self._url, json=message) as response:
                body = (await response.text())[:200]
                if response.status < 300:
                    return
                if response.status == 429 or response.status >= 500:
                    raise _Retry(f"HTTP {response.status}",
                                 _retry_after_s(response.headers.get("Retry-After")))
                raise _Refused(f"HTTP {response.status}: {body}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Retry(type(exc).__name__) from None


class AppriseChannel:
    """One Apprise URL; each notification sent from a worker thread."""

    def __init__(self, url: str) -> None:
        self._apprise = apprise.Apprise()
        apprise_log = logging.getLogger("apprise")
        level = apprise_log.level
        apprise_log.setLevel(logging.CRITICAL)  # our one-line error says it (and no secret)
        try:
            added = self._apprise.add(url)
        finally:
            apprise_log.setLevel(level)
        if not added:
            scheme = url.split("://", 1)[0] if "://" in url else url[:20]
            raise ConfigError(f"--notify: not a URL Apprise can use (scheme {scheme!r}); the "
                              "forms: https://github.com/caronc/apprise/wiki")
        self._name = "".join(self._apprise.urls(privacy=True)).split("?", 1)[0]

    @property
    def name(self) -> str:
        return self._name

    async def post(self, alert: Alert) -> None:
        note = alert_notification(alert)
        ok = await asyncio.to_thread(self._apprise.notify, body=note.body, title=note.title,
                                     notify_type=apprise.NotifyType(note.level))
        if not ok:
            raise _Retry("a failure (see apprise's log line)")
