"""Retrying with exponential backoff: the delays in one place, and the loop for "until done".

Every loop that waits and tries again (the sink's writes, the router's event sender and config
watcher, alert delivery) takes its delays from a `Backoff`, so all of them double from a first
delay up to a cap the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

#: 2 ** this is far past any cap; keeps the float from overflowing after many failures.
_MAX_DOUBLINGS = 60


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays doubling from ``first_s`` after each failure, capped at ``max_s``."""

    first_s: float = 0.5
    max_s: float = 30.0

    def delay_s(self, failed_attempts: int) -> float:
        """The wait after ``failed_attempts`` failures in a row (1: the first failure)."""
        doublings = min(max(failed_attempts - 1, 0), _MAX_DOUBLINGS)
        return min(self.first_s * 2.0**doublings, self.max_s)


async def retry_until_done(
    attempt: Callable[[], Awaitable[T]], backoff: Backoff,
    on_failure: Callable[[Exception, float], Awaitable[None]],
) -> T:
    """``attempt()`` until it returns; after each failure ``on_failure(exc, delay_s)``, then wait.

    Every `Exception` is retried: callers use it where giving up would lose data (a batch
    not yet stored). Cancellation still stops it.
    """
    failures = 0
    while True:
        try:
            return await attempt()
        except Exception as exc:
            failures += 1
            delay_s = backoff.delay_s(failures)
            await on_failure(exc, delay_s)
            await asyncio.sleep(delay_s)
