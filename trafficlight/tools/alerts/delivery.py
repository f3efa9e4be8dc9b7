"""Posting alerts to a webhook: in order, retried with exponential backoff, never blocking.

`submit` only enqueues; one task posts. Connection errors, timeouts, 5xx and 429 are retried
(429's Retry-After honoured) up to `max_attempts`; another 4xx means the webhook refuses the
message itself, so it is given up at once. A full queue drops its oldest alert (counted):
the consumer keeps reading rather than waiting on a dead webhook. The webhook URL is a
secret (Slack's carries the key in its path): only its scheme and host are ever logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from trafficlight.base.retry import Backoff

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


class AlertSender:
    def __init__(self, webhook_url: str, http: aiohttp.ClientSession,
                 policy: RetryPolicy | None = None, queue_size: int = 1000) -> None:
        self._url = webhook_url
        self._http = http
        self._policy = policy or RetryPolicy()
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        self._in_flight = False
        self.counters = DeliveryCounters()

    @property
    def idle(self) -> bool:
        """Nothing queued or being posted: everything submitted so far is settled."""
        return self._queue.empty() and not self._in_flight

    def submit(self, message: dict[str, Any]) -> None:
        """Enqueue without waiting; a full queue loses its oldest alert."""
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
                self.counters.dropped += 1
                log.warning("alerts: queue full, dropped the oldest alert")
        self._queue.put_nowait(message)

    async def run(self) -> None:
        while True:
            message = await self._queue.get()
            self._in_flight = True
            try:
                await self.deliver(message)
            finally:
                self._in_flight = False

    async def deliver(self, message: dict[str, Any]) -> bool:
        """Post one message until it is accepted or the policy gives up."""
        for attempt in range(1, self._policy.max_attempts + 1):
            try:
                await self._post(message)
            except _Retry as exc:
                if attempt == self._policy.max_attempts:
                    break
                self.counters.retries += 1
                delay_s = self._policy.delay_s(attempt, exc.retry_after_s)
                log.info("alerts: %s answered %s; retry %d in %.1fs",
                         redact_webhook(self._url), exc, attempt, delay_s)
                await asyncio.sleep(delay_s)
            except _Refused as exc:
                log.error("alerts: %s refused an alert: %s", redact_webhook(self._url), exc)
                self.counters.given_up += 1
                return False
            else:
                self.counters.delivered += 1
                return True
        log.error("alerts: gave up on an alert after %d attempts", self._policy.max_attempts)
        self.counters.given_up += 1
        return False

    async def _post(self, message: dict[str, Any]) -> None:
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
