"""The Postgres sink: raw events, bucket aggregates and verdicts, in batches, idempotently.

Its own aiokafka consumer group (not Faust's) reads three topics:
- the events topic -> `webhook_routing_logs` (COPY into a temp table, then INSERT ... ON
  CONFLICT (event_id) DO NOTHING), all events by default; `log_sample_pct` keeps a
  deterministic share (by hash of event_id, so a redelivered event is sampled the same way);
- the judge's table changelog -> `webhook_routing_windows`, one row per bucket, upserted only
  when it has at least the stored requests (a redelivered older value never wins);
- the verdict topic -> `webhook_routing_verdicts`, one row per target and 10 s bucket of
  window starts, upserted when at least as recent, except that a `rollback` row is kept for
  its bucket: the next step's first evaluations often land in the same 10 s, and the record
  of the rollback must not vanish under them.

One transaction per batch, and offsets are committed only after it: Postgres down means the
write is retried with backoff and nothing past the stored rows is committed, so a crash or a
long outage re-reads and re-writes, which the idempotent statements make harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import mmh3
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, KafkaError

from trafficlight.base.db import connect
from trafficlight.base.errors import first_line
from trafficlight.base.retry import Backoff, retry_until_done
from trafficlight.streams.events import decode_record
from trafficlight.streams.partition import decode_bucket, parse_key
from trafficlight.streams.verdicts import BadVerdict, Decision, Verdict, decode_verdict

log = logging.getLogger("trafficlight.sink")

_LOG_COLUMNS = ("event_id", "created_at", "domain", "routed_to", "response_time_ms", "status",
                "http_status", "error_message", "router_id", "config_version")

_UPSERT_WINDOW = """
INSERT INTO webhook_routing_windows AS w (domain, routed_to, window_start, window_end,
    requests, errors, error_pct, p50_ms, p95_ms, p99_ms, histogram, updated_at)
VALUES ($1, $2, to_timestamp($3), to_timestamp($4), $5, $6, $7, $8, $9, $10, $11, now())
ON CONFLICT (domain, routed_to, window_start) DO UPDATE SET
    window_end = excluded.window_end, requests = excluded.requests, errors = excluded.errors,
    error_pct = excluded.error_pct, p50_ms = excluded.p50_ms, p95_ms = excluded.p95_ms,
    p99_ms = excluded.p99_ms, histogram = excluded.histogram, updated_at = now()
WHERE excluded.requests >= w.requests
"""

_UPSERT_VERDICT = """
INSERT INTO webhook_routing_verdicts AS v (domain, routed_to, window_start, window_end,
    requests, errors, error_pct, p50_ms, p95_ms, p99_ms, verdict, decision, reasons,
    evaluated_at, verdict_since)
VALUES ($1, $2, to_timestamp($3), to_timestamp($4), $5, $6, $7, $8, $9, $10, $11, $12, $13,
        now(), to_timestamp($4))
ON CONFLICT (domain, routed_to, window_start) DO UPDATE SET
    window_end = excluded.window_end, requests = excluded.requests, errors = excluded.errors,
    error_pct = excluded.error_pct, p50_ms = excluded.p50_ms, p95_ms = excluded.p95_ms,
    p99_ms = excluded.p99_ms, verdict = excluded.verdict, decision = excluded.decision,
    reasons = excluded.reasons, evaluated_at = now(),
    -- the evaluation that first had this verdict and decision keeps its time
    verdict_since = CASE WHEN v.verdict = excluded.verdict AND v.decision = excluded.decision
                         THEN coalesce(v.verdict_since, v.window_end)
                         ELSE excluded.window_end END
WHERE excluded.window_end >= v.window_end
  AND (v.decision <> 'rollback' OR excluded.decision = 'rollback')
"""


@dataclass(frozen=True, slots=True)
class SinkOptions:
    bootstrap_servers: str
    database_url: str
    events_topic: str
    verdicts_topic: str
    changelog_topic: str
    group_id: str
    #: Share of raw events kept in webhook_routing_logs, in percent (100 = all).
    log_sample_pct: float = 100.0
    max_batch_records: int = 2_000
    retry_initial_s: float = 0.2
    retry_max_s: float = 10.0


def is_sampled(event_id: str, sample_pct: float) -> bool:
    """Deterministic: the same event is always in or out, whoever writes it and how often."""
    if sample_pct >= 100:
        return True
    return mmh3.hash(event_id, signed=False) % 10_000 < sample_pct * 100


@dataclass(slots=True)
class SinkBatch:
    """Rows of one batch of records, deduplicated within the batch (the last value wins)."""

    logs: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    windows: dict[tuple[str, str, int], tuple[Any, ...]] = field(default_factory=dict)
    verdicts: dict[tuple[str, str, float], Verdict] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.logs) + len(self.windows) + len(self.verdicts)

    def add_events(self, value: bytes | None, sample_pct: float, now_s: float) -> None:
        for e in decode_record(value, now_s=now_s).events.events():
            if is_sampled(e.event_id, sample_pct):
                self.logs[e.event_id] = (
                    e.event_id, datetime.fromtimestamp(e.ts, UTC), e.domain, e.routed_to,
                    e.response_time_ms, e.status, e.http_status, e.error_message, e.router_id,
                    e.config_version)

    def add_changelog(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None:
            return  # a deleted (expired) bucket: the row stays as the record of that bucket
        _, bucket_id = parse_key(key)
        if bucket_id is None:
            return
        _, bucket = decode_bucket(value)
        requests, errors = bucket.requests, bucket.errors
        p50, p95, p99 = bucket.histogram.percentiles_ms(50, 95, 99)
        self.windows[bucket_id] = (
            bucket_id[0], bucket_id[1], bucket.start_s, bucket.start_s + bucket.bucket_s,
            requests, errors, round(100.0 * errors / requests, 6) if requests else 0.0,
            p50, p95, p99, bucket.histogram.to_bytes())

    def add_verdict(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            v = decode_verdict(value)
        except BadVerdict as exc:  # never the worker's own output; set aside, not fatal
            log.warning("sink: skipped a record that is not a verdict: %s", exc)
            return
        key = (v.domain, v.routed_to, v.window_start)
        held = self.verdicts.get(key)
        if held is not None and held.decision == Decision.ROLLBACK != v.decision:
            return  # as the upsert does: a rollback keeps its bucket's row
        self.verdicts[key] = v


def _verdict_row(v: Verdict) -> tuple[Any, ...]:
    """`_UPSERT_VERDICT`'s parameters."""
    return (v.domain, v.routed_to, v.window_start, v.window_end, v.requests, v.errors,
            v.error_pct, v.p50_ms, v.p95_ms, v.p99_ms, v.verdict, v.decision, list(v.reasons))


async def write_batch(conn: asyncpg.Connection, batch: SinkBatch) -> None:
    """One transaction; every statement is idempotent, so a batch may be written again."""
    async with conn.transaction():
        if batch.logs:
            await conn.execute(
                "CREATE TEMP TABLE sink_logs (LIKE webhook_routing_logs INCLUDING DEFAULTS)"
                " ON COMMIT DROP")
            await conn.copy_records_to_table("sink_logs", records=list(batch.logs.values()),
                                             columns=_LOG_COLUMNS)
            columns = ", ".join(_LOG_COLUMNS)
            await conn.execute(
                f"INSERT INTO webhook_routing_logs ({columns}) SELECT {columns} FROM sink_logs"
                " ON CONFLICT (event_id) DO NOTHING")
        if batch.windows:
            await conn.executemany(_UPSERT_WINDOW, list(batch.windows.values()))
        if batch.verdicts:
            await conn.executemany(_UPSERT_VERDICT,
                                   [_verdict_row(v) for v in batch.verdicts.values()])


class PostgresSink:
    """Consume, write a batch (retrying until Postgres takes it), then commit; until stopped."""

    def __init__(self, options: SinkOptions) -> None:
        self.options = options
        self.rows_written = 0
        self._conn: asyncpg.Connection | None = None

    def _batch(self, fetched: dict[Any, Sequence[Any]]) -> SinkBatch:
        o = self.options
        batch = SinkBatch()
        now_s = time.time()
        for tp, records in fetched.items():
            for record in records:
                if tp.topic == o.events_topic:
                    batch.add_events(record.value, o.log_sample_pct, now_s)
                elif tp.topic == o.changelog_topic:
                    batch.add_changelog(record.key, record.value)
                else:
                    batch.add_verdict(record.value)
        return batch

    async def _write(self, batch: SinkBatch) -> None:
        """Until Postgres takes the batch: any failure keeps it and retries, never skips it."""

        async def attempt() -> None:
            if self._conn is None or self._conn.is_closed():
                self._conn = await connect(self.options.database_url)
            await write_batch(self._conn, batch)
            self.rows_written += len(batch)

        async def failed(exc: Exception, delay_s: float) -> None:
            log.warning("sink: write of %d rows failed (%s); retrying in %.1f s",
                        len(batch), first_line(exc), delay_s)
            await self._close_connection()

        backoff = Backoff(self.options.retry_initial_s, self.options.retry_max_s)
        await retry_until_done(attempt, backoff, failed)

    async def _close_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), 2)
            self._conn = None

    async def run(self) -> None:
        """Until cancelled. Offsets are committed only after their rows are in Postgres."""
        o = self.options
        consumer = AIOKafkaConsumer(
            o.events_topic, o.changelog_topic, o.verdicts_topic,
            bootstrap_servers=o.bootstrap_servers, group_id=o.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_interval_ms=600_000)
        await consumer.start()
        try:
            while True:
                fetched = await consumer.getmany(timeout_ms=200,
                                                 max_records=o.max_batch_records)
                if not fetched:
                    continue
                batch = self._batch(fetched)
                if len(batch):
                    await self._write(batch)
                try:
                    await consumer.commit()
                except (CommitFailedError, KafkaError) as exc:
                    # A rebalance moved the partitions: their new owner re-reads and
                    # re-writes them, which is harmless.
                    log.warning("sink: offset commit failed (%s); records will be re-read", exc)
        finally:
            await consumer.stop()
            await self._close_connection()

