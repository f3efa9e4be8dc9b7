"""One source partition's judge, kept as table entries that carry the offsets they include.

Exactly-once effect without Kafka transactions: delivery is at-least-once (a restarted worker
re-reads records after its last committed offset), and every persisted piece says which
source offset it already includes, so a re-read record is applied only where it is missing:

- the partition entry (event time, decision states, counters) carries the last applied offset:
  a record at or below it is skipped whole (no counts, no dead letters, no verdicts);
- each bucket entry carries the offset of the last record that touched it: a record between
  the two (the worker died half-way through writing its entries) adds only to the buckets it
  had not reached.

Entries are written per record, never per event. No I/O here: the Faust agent writes what
`apply` returns to its table, and `restore` rebuilds the judge from the recovered table.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import orjson

from streams.events import Rejected, TimeBounds, decode_record
from streams.judge import BucketAggregate, Judge
from streams.thresholds import ThresholdSet
from streams.verdicts import DecisionState, Verdict

_OFFSET = struct.Struct("<q")

#: The Faust table holding the entries; the sink reads its changelog for bucket aggregates.
STATE_TABLE = "judge-state"


def changelog_topic(app_id: str) -> str:
    """Faust's changelog topic of the state table of app `app_id`."""
    return f"{app_id}-{STATE_TABLE}-changelog"

BucketId = tuple[str, str, int]
"""(domain, routed_to, bucket start in epoch seconds)."""


def partition_key(partition: int) -> bytes:
    return orjson.dumps(["partition", partition])


def bucket_key(partition: int, bucket: BucketId) -> bytes:
    return orjson.dumps(["bucket", partition, *bucket])


def parse_key(key: bytes) -> tuple[int, BucketId | None]:
    """The partition a key belongs to, and its bucket (None for the partition entry)."""
    kind, partition, *rest = orjson.loads(key)
    return partition, (rest[0], rest[1], rest[2]) if kind == "bucket" else None


def encode_bucket(offset: int, bucket: BucketAggregate) -> bytes:
    return _OFFSET.pack(offset) + bucket.to_bytes()


def decode_bucket(value: bytes) -> tuple[int, BucketAggregate]:
    """The source offset a bucket entry includes, and the bucket."""
    return _OFFSET.unpack_from(value)[0], BucketAggregate.from_bytes(value[_OFFSET.size:])


@dataclass(slots=True)
class Applied:
    """What one record did: table writes and deletes, verdicts to publish, dead letters."""

    verdicts: list[Verdict] = field(default_factory=list)
    rejects: list[Rejected] = field(default_factory=list)
    writes: dict[bytes, bytes] = field(default_factory=dict)
    deletes: list[bytes] = field(default_factory=list)
    events: int = 0
    replayed: bool = False


@dataclass(slots=True)
class PartitionCounters:
    """Per-partition totals kept with the state, so a restart neither loses nor repeats them."""

    events: int = 0
    dead_letters: int = 0
    late_events: int = 0
    time_outliers: int = 0
    clamped_latencies: int = 0


class PartitionJudge:
    """A `Judge` for one source partition plus the offsets that make re-reads harmless."""

    def __init__(self, partition: int, thresholds: ThresholdSet | None = None,
                 bounds: TimeBounds | None = None) -> None:
        self.partition = partition
        self.judge = Judge(thresholds)
        self.bounds = bounds or TimeBounds()
        self.offset = -1
        self.counters = PartitionCounters()
        self._bucket_offsets: dict[BucketId, int] = {}
        #: Highest offset any restored bucket includes: records above it were never applied.
        self._restored_offset = -1

    @classmethod
    def restore(cls, partition: int, entries: Iterable[tuple[bytes, bytes]],
                thresholds: ThresholdSet | None = None,
                bounds: TimeBounds | None = None) -> PartitionJudge:
        """Rebuild from table entries (all partitions' entries may be passed: others are
        ignored)."""
        self = cls(partition, thresholds, bounds)
        buckets: list[tuple[str, str, BucketAggregate]] = []
        event_time_s: float | None = None
        states: dict[str, DecisionState] = {}
        pending: list[dict[str, Any]] = []
        for key, value in entries:
            if value is None:
                continue
            owner, bucket_id = parse_key(key)
            if owner != partition:
                continue
            if bucket_id is not None:
                offset, bucket = decode_bucket(value)
                self._bucket_offsets[bucket_id] = offset
                self._restored_offset = max(self._restored_offset, offset)
                buckets.append((bucket_id[0], bucket_id[1], bucket))
            else:
                meta = orjson.loads(value)
                self.offset = meta["offset"]
                event_time_s = meta["event_time_s"]
                states = {d: DecisionState.from_dict(s) for d, s in meta["states"].items()}
                self.counters = PartitionCounters(**meta["counters"])
                pending = meta.get("pending", [])
        self.judge.restore(event_time_s, buckets, states, pending)
        self.judge.counters.late_events = self.counters.late_events
        self.judge.counters.time_outliers = self.counters.time_outliers
        self.judge.counters.clamped_latencies = self.counters.clamped_latencies
        return self

    def apply(self, offset: int, value: bytes | None, now_s: float) -> Applied:
        """Apply the record at `offset` once; `now_s` bounds how far event times may stray."""
        if offset <= self.offset:
            return Applied(replayed=True)
        decoded = decode_record(value, now_s=now_s, bounds=self.bounds)
        batch = decoded.events
        missing = self._not_yet_applied(batch.ts_s, batch.domain, batch.routed_to, offset)
        applied = Applied(
            verdicts=self.judge.ingest(batch if missing is None else batch.take(missing)),
            rejects=decoded.rejects, events=len(batch))
        for domain, routed_to, bucket in self.judge.take_dirty():
            bucket_id = (domain, routed_to, bucket.start_s)
            self._bucket_offsets[bucket_id] = offset
            applied.writes[bucket_key(self.partition, bucket_id)] = encode_bucket(offset, bucket)
        applied.deletes = self._expire()
        self.offset = offset
        self._count(applied)
        applied.writes[partition_key(self.partition)] = self._meta()
        return applied

    def _not_yet_applied(self, ts_s: np.ndarray, domains: list[str], routed_to: list[str],
                         offset: int) -> np.ndarray | None:
        """Indexes of events whose bucket does not include `offset` yet; None when all are
        missing (the usual case: the record was never applied)."""
        if offset > self._restored_offset:
            return None
        bucket_s = self.judge.settings.bucket_s
        starts = (np.floor(ts_s / bucket_s) * bucket_s).astype(np.int64).tolist()
        keep = [i for i, bucket_id in enumerate(zip(domains, routed_to, starts, strict=True))
                if self._bucket_offsets.get(bucket_id, -1) < offset]
        return np.array(keep, dtype=np.int64)

    def _expire(self) -> list[bytes]:
        """Keys of buckets no window can reach any more (they would grow the table forever)."""
        event_time_s = self.judge.event_time_s
        if event_time_s is None:
            return []
        s = self.judge.settings
        oldest_s = event_time_s - s.window_s - s.grace_s - s.bucket_s
        expired = [b for b in self._bucket_offsets if b[2] < oldest_s]
        for bucket_id in expired:
            del self._bucket_offsets[bucket_id]
        return [bucket_key(self.partition, b) for b in expired]

    def _count(self, applied: Applied) -> None:
        c, jc = self.counters, self.judge.counters
        c.events += applied.events
        c.dead_letters += len(applied.rejects)
        c.late_events, c.time_outliers = jc.late_events, jc.time_outliers
        c.clamped_latencies = jc.clamped_latencies

    def _meta(self) -> bytes:
        meta: dict[str, Any] = {
            "offset": self.offset,
            "event_time_s": self.judge.event_time_s,
            "states": {d: s.to_dict() for d, s in self.judge.states.items()},
            "counters": asdict(self.counters),
            # An event the far-future guard holds came in a record already applied: only
            # this entry brings it back after a restart.
            "pending": self.judge.pending_events(),
        }
        return orjson.dumps(meta)
