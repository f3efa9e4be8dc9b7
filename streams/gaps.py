"""Records the agent was not handed, read straight from their partition.

The judge must apply every record of its partition in offset order, and the state says where
it ends. Two things can hand the agent record k+n while the state ends at k-1:
- Faust's fetcher around a recovery's seek: its read offset, already past re-read records,
  drops them (seen under load as a bucket one record short of the no-fault run);
- a member fenced out of the group that still commits offsets past the state (Tansu accepts
  offset commits from any member and generation), read back by the next seek.

The events topic is neither compacted nor transactional, so its offsets are contiguous: a
gap is exactly the records the judge lacks, and reading them with a plain group-less consumer
(no commits, no effect on Faust's offsets) closes it. Records the broker no longer has
(retention) cannot be read: the caller is told how many are missing.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass(frozen=True, slots=True)
class GapRecord:
    offset: int
    key: bytes | None
    value: bytes | None


async def read_gap(bootstrap_servers: str, topic: str, partition: int, start: int, stop: int,
                   timeout_s: float = 30.0) -> list[GapRecord]:
    """The records at offsets [start, stop) of one partition, in order; fewer if the broker
    no longer has some or they do not arrive within `timeout_s` (a safety net)."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    records: list[GapRecord] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while await consumer.position(tp) < stop:
                    fetched = await consumer.getmany(tp, timeout_ms=500)
                    records += [GapRecord(r.offset, r.key, r.value)
                                for r in fetched.get(tp, []) if start <= r.offset < stop]
    finally:
        await consumer.stop()
    return records
