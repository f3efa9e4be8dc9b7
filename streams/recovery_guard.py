"""A guard on Faust's table recovery: a changelog partition it waits on in vain is fetched again.

Seen on Apache Kafka under load, rarely (2 of 11 loaded runs of the worker-faults rebalance
test at one time, none in 112 since): after a rebalance Faust's recovery seeks a changelog
partition to where it must read from and then receives none of its records ("No event received
for active tp ... since recovery start", every 5 s, for minutes); the source partitions stay
paused and the worker judges nothing. The cause is in Faust's or aiokafka's fetch bookkeeping
around that seek (the partition left out of Faust's active set, its records buffered by
aiokafka and never asked for, or dropped under a stale read offset); which one is not known. A
healthy recovery gets a record of each partition it is behind on within a fetch or two, so a
partition behind its highwater that got nothing for `stall_s` is stalled: the guard puts it
back among the fetched partitions and seeks it where recovery stands, which resets each of
those. Re-reading a record recovery has is harmless (recovery skips offsets it has seen). It
repeats every `stall_s` while the stall lasts; the worker-stalled alert covers a stall it
cannot clear. Checked by injecting either fault into the rebalance test's workers: with the
guard it passes, without it recovery never ends (docs/reliability.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, cast

from faust.tables.recovery import Recovery
from faust.types import TP, AppT

log = logging.getLogger("trafficlight.worker")

#: Seconds without a record of a changelog partition recovery is behind on.
STALL_S = 10.0


def stalled_partitions(*, started_s: float | None, remaining: Mapping[TP, int],
                       received_s: Mapping[TP, float], offsets: Mapping[TP, int | None],
                       now_s: float, stall_s: float = STALL_S) -> dict[TP, int]:
    """The changelog partitions behind their highwater that got no record for `stall_s`
    (counting from the recovery's start), each with the offset to seek it to: where recovery
    stands (its last offset seen; a partition with none seen, from its start). Keys are Faust's
    `TP` whatever the input's (Faust's consumer asserts its active set holds nothing else)."""
    if started_s is None:
        return {}
    stalled: dict[TP, int] = {}
    for tp, behind in remaining.items():
        if behind > 0 and now_s - received_s.get(tp, started_s) >= stall_s:
            stalled[TP(tp.topic, tp.partition)] = max(offsets.get(tp) or 0, 0)
    return stalled


class RecoveryGuard:
    """Checked every few seconds (a worker timer); holds when it last sought each partition,
    so that a partition is sought again only after another `stall_s` without a record."""

    def __init__(self, app: AppT, stall_s: float = STALL_S) -> None:
        self.app = app
        self.stall_s = stall_s
        self._recovery_started_s: float | None = None
        self._sought_s: dict[TP, float] = {}

    async def check(self) -> dict[TP, int]:
        """Fetch again the changelog partitions a recovery under way waits on in vain; what
        was sought where (empty when nothing is stalled)."""
        recovery = cast(Recovery, cast(Any, self.app.tables).recovery)
        started_s = recovery._recovery_started_at if recovery.in_recovery else None
        if started_s != self._recovery_started_s:
            self._recovery_started_s, self._sought_s = started_s, {}
        if started_s is None:
            return {}
        received_s = dict(self._sought_s)
        for tp, at_s in recovery._active_events_received_at.items():
            received_s[tp] = max(at_s, received_s.get(tp, at_s))
        stalled = stalled_partitions(
            started_s=started_s, remaining=recovery.active_remaining(), received_s=received_s,
            offsets=recovery.active_offsets, now_s=time.monotonic(), stall_s=self.stall_s)
        if not stalled:
            return {}
        log.warning("table recovery got no record of %s for %.0f s: fetching them again "
                    "from %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in stalled),
                    self.stall_s, {tp.partition: offset for tp, offset in stalled.items()})
        consumer = self.app.consumer
        consumer.resume_partitions(stalled)
        try:
            await cast(Any, consumer).seek_wait(stalled)
        except Exception as exc:  # a rebalance took them meanwhile: its recovery seeks anew
            log.warning("table recovery: seeking the stalled partitions failed: %r", exc)
            return {}
        now_s = time.monotonic()
        self._sought_s.update(dict.fromkeys(stalled, now_s))
        return stalled
