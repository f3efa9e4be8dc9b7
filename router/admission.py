"""Admission: the router's only back-pressure is refusing webhooks past ``max_in_flight``.

Without it an overload queues without end (in the upstream pool, then in memory) and every
webhook waits until the upstream timeout; with it the excess gets 503 + Retry-After at once
and the admitted ones keep their latency.
"""

from __future__ import annotations

from trafficlight.router.errors import Overloaded


class InFlight:
    """Counts webhooks being handled; :meth:`admit` refuses past ``limit``."""

    __slots__ = ("count", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def admit(self) -> None:
        if self.count >= self.limit:
            raise Overloaded(f"{self.count} webhooks in flight (max_in_flight {self.limit})",
                             public="router overloaded, retry later")
        self.count += 1

    def release(self) -> None:
        self.count -= 1
