"""One source partition's judge, kept as table entries that carry the offsets they include.

Exactly-once effect without Kafka transactions: delivery is at-least-once (a restarted worker
re-reads records after its last committed offset), and the state says which records it holds:

- the partition entry (event time, evidence and decision states, counters) carries the last
  applied offset: a record at or below it is skipped whole (no counts, dead letters, verdicts);
- records are applied in units (one record, or the consecutive records of this partition the
  agent took together), and a unit's entries go out in order, its changed buckets first and
  the partition entry last. Each bucket entry carries the last offset of the unit that wrote
  it, the bucket after that unit AND the bucket as it was before it (none if the unit created
  it). A worker that died half-way through unit k's entries left buckets at k beside a
  partition entry at the end of k-1: `restore` rolls them back to their previous version, so
  the state is exactly the state after k-1 and unit k's records are applied again whole (in
  whatever units they come next: the judge gives the same evaluations and verdicts for the
  same events however they are grouped). (Patching the missing part instead would evaluate
  the step boundaries inside unit k with buckets already holding its later events.)

The rollback relies on the recovered changelog being a prefix of the writes in write order:
one changelog partition per source partition, written in order by one producer (aiokafka sends
one batch per partition at a time, so retries keep the order). Only the unit after the
partition entry's offset can then be partly written, and a bucket's previous version is its
state after a unit at or below that offset.

Entries are written per unit, never per event. No I/O here: the Faust agent writes what
`apply` returns to its table, and `restore` rebuilds the judge from the recovered table.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

from trafficlight.streams.events import EventBatch, Rejected, TimeBounds, decode_record
from trafficlight.streams.judge import BucketAggregate, Judge
from trafficlight.streams.sample_ratio import ConfiguredShares
from trafficlight.streams.thresholds import ThresholdSet
from trafficlight.streams.verdicts import Verdict

_ENTRY_HEADER = struct.Struct("<qqi")
"""Bucket entry header: source offset, offset of the record that created the bucket, length
of the previous version (0: none)."""

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


def encode_bucket(offset: int, created_offset: int, previous: bytes | None,
                  current: bytes) -> bytes:
    """A bucket entry from encoded buckets (`BucketAggregate.to_bytes`): the one after record
    `offset` and the one before it (None if that record created the bucket, at
    `created_offset`)."""
    previous = previous or b""
    return _ENTRY_HEADER.pack(offset, created_offset, len(previous)) + previous + current


def split_bucket(value: bytes) -> tuple[int, int, bytes | None, bytes]:
    """(offset, created offset, previous version or None, current version) of an entry."""
    offset, created_offset, previous_len = _ENTRY_HEADER.unpack_from(value)
    at = _ENTRY_HEADER.size + previous_len
    return offset, created_offset, value[_ENTRY_HEADER.size:at] or None, value[at:]


def decode_bucket(value: bytes) -> tuple[int, BucketAggregate]:
    """The source offset a bucket entry includes, and the bucket after it."""
    offset, _, _, current = split_bucket(value)
    return offset, BucketAggregate.from_bytes(current)


@dataclass(slots=True)
class Applied:
    """What one unit of records did: table writes and deletes, verdicts to publish, dead
    letters (each with the offset of its record), and how many records were skipped as
    already applied."""

    verdicts: list[Verdict] = field(default_factory=list)
    rejects: list[tuple[int, Rejected]] = field(default_factory=list)
    writes: dict[bytes, bytes] = field(default_factory=dict)
    deletes: list[bytes] = field(default_factory=list)
    events: int = 0
    replayed: int = 0


@dataclass(slots=True)
class PartitionCounters:
    """Per-partition totals kept with the state, so a restart neither loses nor repeats them."""

    events: int = 0
    dead_letters: int = 0
    late_events: int = 0
    time_outliers: int = 0
    clamped_latencies: int = 0


_COUNTER_FIELDS = tuple(f.name for f in fields(PartitionCounters))
"""`dataclasses.asdict` deep-copies: ~60 us a record, where this is ~1 us."""


class PartitionJudge:
    """A `Judge` for one source partition plus the offsets that make re-reads harmless."""

    def __init__(self, partition: int, thresholds: ThresholdSet | None = None,
                 bounds: TimeBounds | None = None,
                 shares: ConfiguredShares | None = None) -> None:
        self.partition = partition
        self.judge = Judge(thresholds, shares)
        self.bounds = bounds or TimeBounds()
        self.offset = -1
        self.counters = PartitionCounters()
        #: Each live bucket as last written: the next write's previous version, no re-encode.
        self._encoded: dict[BucketId, bytes] = {}
        #: The offset of the record that created each live bucket.
        self._created: dict[BucketId, int] = {}
        #: Buckets `restore` rolled back (to None: dropped), rewritten with the next record so
        #: the table matches the state even if re-applying it no longer touches them.
        self._rolled_back: dict[BucketId, bytes | None] = {}

    @classmethod
    def restore(cls, partition: int, entries: Iterable[tuple[bytes, bytes | None]],
                thresholds: ThresholdSet | None = None,
                bounds: TimeBounds | None = None,
                shares: ConfiguredShares | None = None) -> PartitionJudge:
        """Rebuild from table entries (all partitions' entries may be passed: others are
        ignored): the state after the partition entry's offset, buckets of a partly written
        record after it rolled back."""
        self = cls(partition, thresholds, bounds, shares)
        entries_by_bucket: dict[BucketId, tuple[int, int, bytes | None, bytes | None]] = {}
        event_time_s: float | None = None
        states: dict[str, Any] = {}
        pending: list[dict[str, Any]] = []
        for key, value in entries:
            if value is None:
                continue
            owner, bucket_id = parse_key(key)
            if owner != partition:
                continue
            if bucket_id is not None:
                entries_by_bucket[bucket_id] = split_bucket(value)
            else:
                meta = orjson.loads(value)
                self.offset = meta["offset"]
                event_time_s = meta["event_time_s"]
                states = meta["states"]
                self.counters = PartitionCounters(**meta["counters"])
                pending = meta.get("pending", [])
        buckets: list[tuple[str, str, BucketAggregate]] = []
        for bucket_id, (offset, created_offset, previous, current) in entries_by_bucket.items():
            if created_offset > self.offset:
                # Created after the partition entry: every event in it comes from records
                # that will be read again. (A table recovered over a live local store keeps
                # keys the recovered changelog prefix does not have: they land here.)
                self._rolled_back[bucket_id] = current = None
            elif offset > self.offset:
                self._rolled_back[bucket_id] = current = previous
            if current is not None:
                self._encoded[bucket_id] = current
                self._created[bucket_id] = created_offset
                buckets.append((bucket_id[0], bucket_id[1], BucketAggregate.from_bytes(current)))
        self.judge.restore(event_time_s, buckets, states, pending)
        self.judge.counters.late_events = self.counters.late_events
        self.judge.counters.time_outliers = self.counters.time_outliers
        self.judge.counters.clamped_latencies = self.counters.clamped_latencies
        return self

    def apply(self, offset: int, value: bytes | None, now_s: float) -> Applied:
        """Apply the record at `offset` once; `now_s` bounds how far event times may stray."""
        return self.apply_many([(offset, value)], now_s)

    def apply_many(self, records: Sequence[tuple[int, bytes | None]], now_s: float) -> Applied:
        """Apply records of this partition (offsets ascending) as one unit: the judge ingests
        each in turn, exactly as one at a time, but the changed buckets and the partition
        entry are written once, carrying the last offset. Records at or below the state's
        offset are skipped (counted as replayed)."""
        fresh = [(offset, value) for offset, value in records if offset > self.offset]
        applied = Applied(replayed=len(records) - len(fresh))
        if not fresh:
            return applied
        batches = []
        for offset, value in fresh:
            decoded = decode_record(value, now_s=now_s, bounds=self.bounds)
            batches.append(decoded.events)
            applied.rejects += [(offset, reject) for reject in decoded.rejects]
        # One ingest for the unit: the judge's verdicts do not depend on how the stream is
        # cut, and numpy's per-call cost is paid once.
        events = batches[0] if len(batches) == 1 else EventBatch.concat(batches)
        applied.verdicts = self.judge.ingest(events)
        applied.events = len(events)
        # A bucket the unit created carries the unit's first offset: if the unit is only
        # partly written when a worker dies, the partition entry is below it and restore
        # drops the bucket; the unit is then applied again whole.
        first, last = fresh[0][0], fresh[-1][0]
        for domain, routed_to, bucket in self.judge.take_dirty():
            bucket_id = (domain, routed_to, bucket.start_s)
            current = bucket.to_bytes()
            created_offset = self._created.setdefault(bucket_id, first)
            applied.writes[bucket_key(self.partition, bucket_id)] = encode_bucket(
                last, created_offset, self._encoded.get(bucket_id), current)
            self._encoded[bucket_id] = current
        self._rewrite_rolled_back(last, applied)
        applied.deletes += self._expire()
        self.offset = last
        self._count(applied)
        applied.writes[partition_key(self.partition)] = self._meta()
        return applied

    def _rewrite_rolled_back(self, offset: int, applied: Applied) -> None:
        """Put rolled-back buckets the first record after a restore did not write back into
        the table as restored: re-applying a record normally rewrites them all, but one whose
        events were near the wall-clock bounds may decode differently the second time."""
        for bucket_id, restored in self._rolled_back.items():
            key = bucket_key(self.partition, bucket_id)
            if key in applied.writes:
                continue
            if restored is None:
                applied.deletes.append(key)
            else:
                applied.writes[key] = encode_bucket(
                    offset, self._created[bucket_id], restored, restored)
        self._rolled_back.clear()

    def _expire(self) -> list[bytes]:
        """Keys of buckets no window can reach any more (they would grow the table forever)."""
        event_time_s = self.judge.event_time_s
        if event_time_s is None:
            return []
        s = self.judge.settings
        oldest_s = event_time_s - s.window_s - s.grace_s - s.bucket_s
        expired = [b for b in self._encoded if b[2] < oldest_s]
        for bucket_id in expired:
            del self._encoded[bucket_id]
            self._created.pop(bucket_id, None)
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
            # Evidence and counts not yet evaluated: the same entry as the offset, so a
            # record's effect on them is applied exactly once.
            "states": self.judge.domain_states(),
            "counters": {name: getattr(self.counters, name) for name in _COUNTER_FIELDS},
            # An event the far-future guard holds came in a record already applied: only
            # this entry brings it back after a restart.
            "pending": self.judge.pending_events(),
        }
        return orjson.dumps(meta)
