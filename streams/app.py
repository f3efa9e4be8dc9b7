"""The Faust worker's wiring: topics, one table, one agent. The judging is `PartitionJudge`'s.

- Source: the events topic (key = domain, value = JSON array of events). One `PartitionJudge`
  per source partition; its entries live in one plain changelog-backed Table. Faust sends a
  table write to the changelog partition of the record being processed, so every entry is
  co-partitioned with its source partition and recovered with it after a rebalance or restart.
- Per record (never per event): decode, judge, publish the verdicts of each evaluation
  (every step of event time: a heartbeat that also carries every change) and dead-letter the
  rejects, then write the changed entries. Output is handed to the producer before the state
  that says the record is done (the producer appends in order; on one broker they go out in
  that order): a crash in between re-applies the record, re-publishing identical verdicts,
  and never leaves a record done whose verdicts were not sent. A record is done when its
  writes are handed to the producer, so Faust's commit (after its flush) never passes state
  the changelog lacks; re-reads after a crash are harmless (see `streams.partition`).
  (Applying units of several records, `PartitionJudge.apply_many` with Faust's
  `take_events`, judged 111.6k events/s against 79-97k one record at a time. Under stress,
  around recovery's seek Faust hands the agent records from before the seek and drops some
  re-reads: records at or below the state's offset are skipped, and a record past it closes
  the gap first by reading the missing ones from the partition (`streams.gaps`).)
- Side effects that touch Postgres (sink, actions) run as tasks beside the agent, never in it.
- `streams.recovery_guard` watches Faust's table recovery for a changelog partition it waits
  on in vain (seen rarely on Apache Kafka after a rebalance) and has it fetched again.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from faust.types import TP, Message
from mode.utils.queues import FlowControlEvent

from trafficlight.base.kafka import BrokerFlavor
from trafficlight.base.settings import EVENTS_TOPIC, STATE_DIR, VERDICTS_TOPIC
from trafficlight.streams.deadletters import dead_letter, dead_letter_topic
from trafficlight.streams.gaps import read_gap
from trafficlight.streams.metrics import PartitionPosition
from trafficlight.streams.partition import STATE_TABLE, PartitionCounters, PartitionJudge
from trafficlight.streams.recovery_guard import RecoveryGuard
from trafficlight.streams.sample_ratio import ConfiguredShares
from trafficlight.streams.thresholds import ThresholdSet
from trafficlight.streams.verdicts import Verdict

log = logging.getLogger("trafficlight.worker")

_RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
        "value_serializer": "raw"}


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Everything a worker needs; tests run isolated workers by changing names and ids."""

    bootstrap_servers: str
    partitions: int
    app_id: str = "trafficlight-worker"
    events_topic: str = EVENTS_TOPIC
    verdicts_topic: str = VERDICTS_TOPIC
    thresholds: ThresholdSet = field(default_factory=ThresholdSet)
    worker_id: str = field(default_factory=default_worker_id)
    #: Loopback port of Faust's web server; None turns it off.
    web_port: int | None = None
    stats_interval_s: float = 10.0
    #: The broker's implementation (``trafficlight.base.kafka.detect_broker``): Faust's own
    #: recovery check is turned off only where the broker cannot support it.
    broker: BrokerFlavor = BrokerFlavor.APACHE

    @property
    def dead_letter_topic(self) -> str:
        return dead_letter_topic(self.events_topic)


VerdictListener = Callable[[list[Verdict]], None]
#: Called with the seconds one record took to apply (decode, judge, evaluate).
ApplyListener = Callable[[float], None]


@dataclass(slots=True)
class WorkerApp:
    """The Faust app and the hooks other services attach to."""

    app: faust.App
    judges: dict[int, PartitionJudge]
    #: Called with each evaluation's verdicts, in the agent: must not block (queue them).
    verdict_listeners: list[VerdictListener] = field(default_factory=list)
    apply_listeners: list[ApplyListener] = field(default_factory=list)
    #: Records re-read after a restart and skipped whole (already in the state).
    replayed_records: int = 0
    #: Records Faust did not hand the agent, read from their partition (`streams.gaps`).
    gap_records: int = 0

    def counters(self) -> PartitionCounters:
        total = PartitionCounters()
        for judge in self.judges.values():
            for name in total.__slots__:
                setattr(total, name, getattr(total, name) + getattr(judge.counters, name))
        return total

    def positions(self, events_topic: str) -> list[PartitionPosition]:
        """Per assigned events partition: last applied offset and the consumer's highwater.
        Read at scrape time (from another thread): a consumer not started yet gives none."""
        try:
            assigned = [tp for tp in self.app.consumer.assignment() if tp.topic == events_topic]
        except Exception:  # not started, or mid-rebalance
            return []
        out = []
        for tp in sorted(assigned):
            judge = self.judges.get(tp.partition)
            try:
                highwater: int | None = self.app.consumer.highwater(tp)
            except Exception:
                highwater = None
            out.append(PartitionPosition(tp.partition, judge.offset if judge else -1, highwater))
        return out


class ClearOnlyAfterSuspend(FlowControlEvent):
    """Faust's flow control, except that `resume` clears the streams' buffers only when flow
    was suspended.

    Faust's recovery resumes the source partitions, seeks them, and then calls `resume` once
    more although flow is already on: that clear drops records the fetcher delivered in
    between, and the fetcher's read offset, already past them, then drops their re-reads.
    The judge lost one record of each restart that way (seen as offset 13 never applied
    after 12). A revocation still suspends and clears (Faust does both), so nothing from an
    old assignment survives; only the redundant clear is gone."""

    def resume(self) -> None:
        if not self.is_active():
            super().resume()


def build_app(options: WorkerOptions, shares: ConfiguredShares | None = None) -> WorkerApp:
    """The Faust app of one worker process; `shares` feeds the judges' sample-ratio guard
    (the worker's `streams.config_shares.ShareCache`; None: the guard is off)."""
    # Faust makes a folder even for memory stores: keep it out of the working directory.
    faust_dir = STATE_DIR / "faust"
    faust_dir.mkdir(parents=True, exist_ok=True)
    tansu = options.broker is BrokerFlavor.TANSU
    app = faust.App(
        options.app_id,
        broker=f"kafka://{options.bootstrap_servers}",
        store="memory://",
        datadir=str(faust_dir / "{conf.name}"),
        topic_partitions=options.partitions,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=0,
        web_enabled=options.web_port is not None,
        web_bind="127.0.0.1",
        web_port=options.web_port or 6066,
        # Faust's check compares offsets it saw written with the changelog's highwater, which
        # Tansu reports a record or two short: recovery would crash. On Apache Kafka the check
        # stays on. Either way the state checks itself (partition entry offsets, rollback of
        # later buckets on restore).
        recovery_consistency_check=not tansu,
        # Tansu completes a group join only after the rebalance timeout: keep it short there.
        # Kafka completes it when every member has rejoined; a long timeout keeps a member
        # slow to revoke (a busy machine) in the group instead of forcing another rebalance.
        broker_rebalance_timeout=3.0 if tansu else 60.0,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
    )
    app.flow_control = ClearOnlyAfterSuspend(loop=app.loop)
    events = app.topic(options.events_topic, partitions=options.partitions, **_RAW)
    verdicts = app.topic(options.verdicts_topic, partitions=options.partitions, **_RAW)
    dead_letters = app.topic(options.dead_letter_topic, partitions=options.partitions, **_RAW)
    # bytes types make Faust's table and changelog codecs "raw" (a schema would not).
    state = app.Table(STATE_TABLE, default=None, partitions=options.partitions,
                      key_type=bytes, value_type=bytes)
    worker = WorkerApp(app, judges={})

    def judge_for(partition: int) -> PartitionJudge:
        judge = worker.judges.get(partition)
        if judge is None:
            judge = PartitionJudge.restore(partition, state.items(), options.thresholds,
                                           shares=shares)
            worker.judges[partition] = judge
            log.info("partition %d: restored at offset %d, event time %s",
                     partition, judge.offset, judge.judge.event_time_s)
        return judge

    @state.on_recover
    async def resume_where_the_state_ends() -> None:
        """After table recovery, before Faust seeks to committed offsets: commit, per source
        partition, the offset after the last record the recovered state holds.

        The state, not Faust's commit, says where to resume. On Tansu Faust may have committed
        past records whose table writes recovery did not bring back (it reports a changelog
        end offset short of its last records), which would lose them. On Apache Kafka the
        commit follows the producer flush, so it is at or short of the state: re-reading from
        it is harmless (per-record offsets) but slow, and this skips the re-read. Correct on
        both; the worker-faults test runs it on both.
        """
        resume: dict[TP, int] = {}
        assignment = app.consumer.assignment()
        # Restored afresh, never a judge cached before: when a recovery is slow enough to
        # overlap the next rebalance, Faust can complete it after the new assignment (and its
        # `forget`), and the judges it restores then hold a state short of the one this
        # recovery brought back (seen as buckets of 40 requests for 400).
        forget(assignment)
        for tp in assignment:
            if tp.topic == options.events_topic:
                judge = judge_for(tp.partition)
                if judge.offset >= 0:
                    resume[tp] = judge.offset + 1
        if resume:
            # seek_to_committed() follows and reads it; faust has no public call for this.
            await app.consumer._commit(resume)  # type: ignore[attr-defined]

    @app.agent(events, name="judge")
    async def judge_records(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await apply_record(event.message)

    async def apply_record(message: Message) -> None:
        judge = judge_for(message.partition)
        if judge.offset >= 0 and message.offset > judge.offset + 1:
            await close_gap(judge, message)
        await apply(judge, message.topic, message.offset, message.key, message.value)

    async def close_gap(judge: PartitionJudge, message: Message) -> None:
        """Apply the records between the state's end and `message` that Faust did not hand
        over (`streams.gaps`), unless the partition moved away meanwhile."""
        start, stop = judge.offset + 1, message.offset
        log.warning("partition %d: handed offset %d while the state ends at %d: reading "
                    "offsets %d-%d from the partition", message.partition, stop, start - 1,
                    start, stop - 1)
        records = await read_gap(options.bootstrap_servers, message.topic, message.partition,
                                 start, stop)
        if worker.judges.get(message.partition) is not judge:
            return  # revoked while reading: its next owner restores from the table
        for record in records:
            await apply(judge, message.topic, record.offset, record.key, record.value)
        worker.gap_records += len(records)
        if len(records) < stop - start:
            log.error("partition %d: %d records between offsets %d and %d could not be read "
                      "(past the topic's retention?) and are not judged", message.partition,
                      stop - start - len(records), start, stop - 1)

    async def apply(judge: PartitionJudge, topic: str, offset: int, key: bytes | None,
                    value: bytes | None) -> None:
        started_s = time.perf_counter()
        applied = judge.apply(offset, value, time.time())
        for on_apply in worker.apply_listeners:
            on_apply(time.perf_counter() - started_s)
        worker.replayed_records += applied.replayed
        # Output before the state that says the record is done: a crash in between re-applies
        # the record and re-publishes identical verdicts; the other order lost them (a kill -9
        # after the changelog writes, before the verdict sends).
        for _, reject in applied.rejects:
            log.warning("dead letter %s[%d]@%d: %s", topic, judge.partition, offset,
                        reject.reason)
            await dead_letters.send(key=key, value=dead_letter(
                reject, topic=topic, partition=judge.partition, offset=offset,
                worker_id=options.worker_id))
        for verdict in applied.verdicts:
            await verdicts.send(key=verdict.domain.encode(),
                                value=orjson.dumps(verdict.to_dict()))
        for state_key, state_value in applied.writes.items():
            state[state_key] = state_value
        for state_key in applied.deletes:
            state.pop(state_key, None)
        await changelog_handed_over()
        if applied.verdicts:
            for listener in worker.verdict_listeners:
                listener(applied.verdicts)

    async def changelog_handed_over() -> None:
        """Wait until the record's table writes have left Faust's producer buffer.

        Faust commits an offset after `producer.flush()`, but its buffer's flush gives up after
        0.1 s without progress (a busy machine, a changelog partition's metadata still coming)
        and the commit goes ahead: the committed offset could pass records whose state never
        reached the changelog, and a restart or rebalance would lose them. Handed over, the
        writes are in aiokafka's queue ahead of the commit's flush, in order."""
        buffer = app.producer.buffer
        while buffer.size:
            await buffer.flush_atmost(buffer.size)

    def forget(tps: Iterable[TP]) -> None:
        """A partition that moved (or may have moved) is restored from the table on next use."""
        for tp in tps:
            if tp.topic == options.events_topic:
                worker.judges.pop(tp.partition, None)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust types a `signal` kwarg
    async def on_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        forget(revoked)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: set[TP], **_: Any) -> None:
        forget(assigned)

    recovery_guard = RecoveryGuard(app)

    @app.timer(2.0)  # type: ignore[untyped-decorator]  # mode untyped
    async def guard_recovery() -> None:
        """A changelog partition table recovery waits on in vain is fetched again."""
        await recovery_guard.check()

    @app.timer(options.stats_interval_s)  # type: ignore[untyped-decorator]  # mode untyped
    async def log_stats() -> None:
        c = worker.counters()
        log.info("stats events=%d dead_letters=%d late=%d time_outliers=%d clamped=%d "
                 "replayed_records=%d gap_records=%d partitions=%s", c.events, c.dead_letters,
                 c.late_events, c.time_outliers, c.clamped_latencies, worker.replayed_records,
                 worker.gap_records,
                 sorted(worker.judges))

    return worker
