"""Routing events to Kafka without ever making a webhook wait.

``emit()`` is synchronous: it appends to the domain's open batch. A batch becomes one record
(key = domain, value = JSON array) at ``batch_max_events`` events or ``batch_linger_s`` after
its first event. Records wait in a bounded memory buffer; a background sender delivers them
in order. While Kafka is down or slow the buffer fills, then records go to the on-disk
:class:`~router.spool.Spool`, and once anything is spooled every newer record is spooled
too, so the order is kept: memory first (older), then the spool. Overflow policy: when the
spool is full as well, the newest records are dropped and counted (``dropped_events``); the
webhooks themselves are still forwarded and answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, UnknownTopicOrPartitionError

from trafficlight.base.retry import Backoff
from trafficlight.router.spool import Record, Spool
from trafficlight.streams.events import RoutingEvent, encode_events

log = logging.getLogger(__name__)

#: Records sent before waiting for their acknowledgements.
_CHUNK_RECORDS = 64
_RETRY_FIRST_S = 0.2
_RETRY_MAX_S = 2.0


class EventEmitter:
    """Batches events per domain and delivers them at least once, in order, to ``topic``."""

    def __init__(self, bootstrap_servers: str, topic: str, spool: Spool, *,
                 batch_max_events: int = 250, batch_linger_s: float = 0.05,
                 buffer_max_bytes: int = 64 * 1024 * 1024,
                 request_timeout_s: float = 5.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.spool = spool
        self.batch_max_events = batch_max_events
        self.batch_linger_s = batch_linger_s
        self.buffer_max_bytes = buffer_max_bytes
        self.request_timeout_s = request_timeout_s
        self._batches: dict[str, list[RoutingEvent]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._memory: deque[Record] = deque()
        self._memory_bytes = 0
        self._memory_events = 0
        self._open_events = 0
        self._wake = asyncio.Event()
        self._spool_flush: asyncio.TimerHandle | None = None
        self._sender: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None
        #: After a failed send the broker may have restarted: its topic's partitions are
        #: looked up again before the next send (see ``_send``).
        self._recheck_partitions = False
        self.sent_events = 0
        self.dropped_events = 0
        self.send_failures = 0

    # --- what the request path calls -------------------------------------------------------

    def emit(self, event: RoutingEvent) -> None:
        """Queue one event; returns at once whatever Kafka is doing."""
        domain = event.domain
        batch = self._batches.setdefault(domain, [])
        batch.append(event)
        self._open_events += 1
        if len(batch) >= self.batch_max_events:
            self._close_batch(domain)
        elif len(batch) == 1:
            loop = asyncio.get_running_loop()
            self._timers[domain] = loop.call_later(self.batch_linger_s, self._close_batch, domain)

    # --- figures for /metrics ----------------------------------------------------------------

    @property
    def buffered_events(self) -> int:
        """Events in memory: open batches and records not yet acknowledged by Kafka."""
        return self._open_events + self._memory_events

    @property
    def spooled_events(self) -> int:
        return int(self.spool.events)

    # --- batching and buffering ----------------------------------------------------------------

    def _close_batch(self, domain: str) -> None:
        timer = self._timers.pop(domain, None)
        if timer is not None:
            timer.cancel()
        batch = self._batches.pop(domain, None)
        if not batch:
            return
        self._open_events -= len(batch)
        self._enqueue(Record(domain.encode(), encode_events(batch), len(batch)))

    def _enqueue(self, record: Record) -> None:
        # Once anything is spooled, newer records queue behind it on disk to keep the order.
        if self.spool.empty and self._memory_bytes + record.size <= self.buffer_max_bytes:
            self._memory.append(record)
            self._memory_bytes += record.size
            self._memory_events += record.events
        elif not self.spool.append(record):
            self.dropped_events += record.events
            log.error("router event spool full: dropped %d routing events", record.events)
        elif self._spool_flush is None:
            self._spool_flush = asyncio.get_running_loop().call_later(
                self.batch_linger_s, self._flush_spool)
        self._wake.set()

    def _flush_spool(self) -> None:
        """Spooled records go to the file in one write per ``batch_linger_s``, not one each."""
        self._spool_flush = None
        self.dropped_events += self.spool.flush()

    def _next_chunk(self) -> tuple[list[Record], bool]:
        """The oldest undelivered records and whether they come from memory."""
        if self._memory:
            return [self._memory[i] for i in range(min(_CHUNK_RECORDS, len(self._memory)))], True
        return self.spool.peek(_CHUNK_RECORDS), False

    def _delivered(self, chunk: list[Record], from_memory: bool) -> None:
        if from_memory:
            for _ in chunk:
                record = self._memory.popleft()
                self._memory_bytes -= record.size
                self._memory_events -= record.events
        else:
            self.spool.consume(chunk)
        self.sent_events += sum(record.events for record in chunk)

    # --- delivery -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the sender; Kafka need not be up (the router must serve webhooks anyway)."""
        self._sender = asyncio.create_task(self._send_forever(), name="router-event-sender")
        if not self.spool.empty:
            log.info("router event spool holds %d events from before; replaying",
                     self.spool.events)
            self._wake.set()

    async def _send_forever(self) -> None:
        backoff, failures = Backoff(_RETRY_FIRST_S, _RETRY_MAX_S), 0
        while True:
            if await self._send_next():
                failures = 0
                continue
            self.send_failures += 1
            failures += 1
            await asyncio.sleep(backoff.delay_s(failures))

    async def _send_next(self) -> bool:
        """Deliver the oldest chunk, or wait for one; False when it must be retried."""
        try:
            chunk, from_memory = self._next_chunk()
            if not chunk:
                self._wake.clear()
                await self._wake.wait()
                return True
            await self._send(chunk)
            self._delivered(chunk, from_memory)
        except (KafkaError, OSError) as exc:
            log.warning("routing events not delivered yet (%s); retrying", type(exc).__name__)
            self._recheck_partitions = True
            return False
        except Exception:
            # A bug, but the sender must outlive it or events pile up unsent.
            log.exception("routing events: unexpected error while sending; retrying")
            self._recheck_partitions = True
            return False
        return True

    async def _send(self, chunk: list[Record]) -> None:
        """Send a chunk and wait for every acknowledgement; on any failure all are resent."""
        producer = await self._ready_producer()
        if self._recheck_partitions:
            await self._require_partitions(producer)
        acks = [await producer.send(self.topic, record.value, key=record.key) for record in chunk]
        await asyncio.gather(*acks)

    async def _require_partitions(self, producer: AIOKafkaProducer) -> None:
        """Fresh metadata, and the topic in it, before sending again after a failure.

        A producer keeps the partitions it last saw. A broker that came back without the
        topic (one with memory storage, e.g. the embedded Tansu) may acknowledge records sent
        to a partition it has not got and never serve them: never send on stale metadata.
        A lookup that failed (the broker still down) counts as a failed send: a chunk sent on
        the old metadata would wait in the producer and go out the moment the broker is back,
        before its topic is.
        """
        if not await producer.client.force_metadata_update():
            raise KafkaConnectionError("no fresh metadata from the broker")
        if not producer.client.cluster.partitions_for_topic(self.topic):
            raise UnknownTopicOrPartitionError(f"topic {self.topic} not in the broker's metadata")
        self._recheck_partitions = False

    async def _ready_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                acks="all",
                linger_ms=5,
                max_batch_size=1024 * 1024,
                request_timeout_ms=int(self.request_timeout_s * 1000),
                retry_backoff_ms=100,
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Close open batches, deliver what can be in ``drain_timeout_s``, spool the rest."""
        for domain in list(self._batches):
            self._close_batch(domain)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained(), drain_timeout_s)
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        self._spool_memory()
        if self._spool_flush is not None:
            self._spool_flush.cancel()
            self._spool_flush = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        self.dropped_events += self.spool.close()

    async def _drained(self) -> None:
        while self._memory or not self.spool.empty:
            await asyncio.sleep(0.02)

    def _spool_memory(self) -> None:
        """Persist what memory still holds, ahead of nothing newer: the spool is read after it."""
        pending = list(self._memory)
        self._memory.clear()
        self._memory_bytes = self._memory_events = 0
        if pending and not self.spool.empty:
            # Spooled records are newer than memory's; rare (stop during an outage): accept
            # the reordering rather than lose events.
            log.warning("router stopping during an outage: %d records spooled out of order",
                        len(pending))
        for record in pending:
            if not self.spool.append(record):
                self.dropped_events += record.events
                log.error("router event spool full at stop: dropped %d events", record.events)
