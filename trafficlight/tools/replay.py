"""`trafficlight replay`: what given thresholds would have decided, through the worker's judge.

Input is a JSONL(.gz) file or the events topic scanned from the beginning of every partition
(no offsets-for-times) up to the end offsets seen at start (or until `--until` is passed), with
one `Judge` per partition as the worker has. Both stream: memory stays flat however long the
input. Events outside `--since/--until` are skipped. A file is read in its line order; one that
is not in time order (events more than the grace behind those before them: targets written one
after the other, files concatenated) would have those events counted late and not judged, so
it is replayed again sorted by time, in memory (`sorted_file_batches`).
Several `--thresholds` files run side by side over the same decoded events. The sample-ratio
guard runs only with the configured percentages of each config version (`--config-db`, read
once at the start: `streams.config_shares.load_shares`); without them it is off.

Output: `jsonl` is one verdict per line per (domain, routed_to) per evaluation (with a
`thresholds` field when several sets run), a summary line per set on stderr; `table` prints the
comparison: evaluations, rollbacks, time in hold, each domain's first rollback (when, and the
rule's reason), and per labelled incident the time to detect
(first rollback; first hold for incidents that must not roll back: a sidecar's, or those
named `shared...`), plus false rollbacks.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click
import numpy as np
import orjson
from tqdm import tqdm

from trafficlight.base.errors import CorruptInput
from trafficlight.base.kafka import topic_partitions
from trafficlight.streams.events import Decoded, EventBatch, decode_record
from trafficlight.streams.judge import Judge
from trafficlight.streams.sample_ratio import ConfiguredShares
from trafficlight.streams.thresholds import ThresholdSet
from trafficlight.streams.verdicts import Decision, Verdict
from trafficlight.tools.decode_ahead import decoded_ahead
from trafficlight.tools.simulate import Incident

#: Corrupt lines reported one by one before only counting the rest.
MAX_REPORTED_REJECTS = 10


@dataclass(frozen=True, slots=True)
class Rollback:
    """A domain's decision turning to rollback, and the rule's reason as its verdict states it."""

    domain: str
    at_s: float
    reason: str


@dataclass(slots=True)
class SetSummary:
    """What one thresholds set decided over the whole input."""

    name: str
    step_s: int
    evaluations: int = 0
    rollbacks: list[Rollback] = field(default_factory=list)
    first_hold: dict[str, list[float]] = field(default_factory=dict)
    hold_s: float = 0.0
    _last: dict[str, Decision] = field(default_factory=dict)
    _last_s: dict[str, float] = field(default_factory=dict)

    def observe(self, verdicts: list[Verdict]) -> None:
        """Count per domain per evaluation (verdicts of both targets carry the same decision)."""
        seen: set[tuple[str, float]] = set()
        for v in verdicts:
            if (v.domain, v.window_end) in seen:
                continue
            seen.add((v.domain, v.window_end))
            self.evaluations += 1
            # Evaluations are sparse (new data or a heartbeat): a decision lasts until the
            # domain's next evaluation.
            if self._last.get(v.domain) == Decision.HOLD:
                self.hold_s += v.window_end - self._last_s[v.domain]
            self._last_s[v.domain] = v.window_end
            if v.decision == Decision.HOLD:
                self.first_hold.setdefault(v.domain, []).append(v.window_end)
            rolled_back = self._last.get(v.domain) == Decision.ROLLBACK
            if v.decision == Decision.ROLLBACK and not rolled_back:
                # The domain's reasons close the unified row's (its rows come first).
                self.rollbacks.append(Rollback(v.domain, v.window_end, v.reasons[-1]))
            self._last[v.domain] = v.decision

    def detection_s(self, incident: Incident) -> float | None:
        """Seconds from the incident's first event to the decision expected for it."""
        if incident.must_roll_back:
            times = [r.at_s for r in self.rollbacks if r.domain == incident.domain]
        else:
            times = self.first_hold.get(incident.domain, [])
        after = [t for t in times if t >= incident.start_ts]
        return min(after) - incident.start_ts if after else None

    def false_rollbacks(self, incidents: list[Incident], window_s: int) -> int:
        """Rollbacks outside every must-roll-back incident of their domain (plus one window)."""
        return sum(
            not any(i.domain == r.domain and i.must_roll_back
                    and i.start_ts <= r.at_s <= i.end_ts + window_s for i in incidents)
            for r in self.rollbacks
        )

    def first_rollback(self, domain: str) -> Rollback | None:
        return next((r for r in self.rollbacks if r.domain == domain), None)


@dataclass(slots=True)
class RejectLog:
    """Corrupt input: reported with line numbers, skipped and counted, or fatal with --strict."""

    strict: bool
    source: str
    count: int = 0
    #: Events judged with a default for a provenance field they lacked (`event_id`, ...).
    defaulted: int = 0
    #: Count only (a second pass over input already reported).
    quiet: bool = False

    def add(self, decoded: Decoded) -> None:
        self.defaulted += decoded.defaulted
        for reject in decoded.rejects:
            self.count += 1
            line = f"{self.source}: {reject.describe()}"
            if self.strict:
                raise CorruptInput(line)
            if self.count <= MAX_REPORTED_REJECTS and not self.quiet:
                click.echo(f"skipped {line}", err=True)


def _in_range(batch: EventBatch, since_s: float | None, until_s: float | None) -> EventBatch:
    if since_s is None and until_s is None:
        return batch
    mask = np.ones(len(batch), dtype=bool)
    if since_s is not None:
        mask &= batch.ts_s >= since_s
    if until_s is not None:
        mask &= batch.ts_s < until_s
    return batch if mask.all() else batch.take(np.flatnonzero(mask))


def _track_labels(batch: EventBatch, spans: dict[tuple[str, str], list[float]]) -> None:
    """First and last event time of each (label, domain) seen."""
    if not any(batch.label):
        return
    for i, label in enumerate(batch.label):
        if label is None:
            continue
        ts = float(batch.ts_s[i])
        span = spans.get((label, batch.domain[i]))
        if span is None:
            spans[(label, batch.domain[i])] = [ts, ts]
        else:
            span[0], span[1] = min(span[0], ts), max(span[1], ts)


class Replay:
    """Each thresholds set's judges (one per partition) fed batch by batch; jsonl to `emit`.

    Incremental, so file and topic input both stream: nothing but the judges' windows is kept.
    Incidents are the given ones (a scenario's sidecar) or, without them, what the labels of
    the events show (`Incident.from_labels`). `shares`: the configured percentages for the
    sample-ratio guard (None: off).
    """

    def __init__(self, sets: list[ThresholdSet], emit: IO[bytes] | None,
                 incidents: list[Incident] | None = None,
                 shares: ConfiguredShares | None = None) -> None:
        self.sets = sets
        self.shares = shares
        self.emit = emit
        self.summaries = [SetSummary(s.name, s.settings.step_s) for s in sets]
        self._judges: list[dict[int, Judge]] = [{} for _ in sets]
        self._known = incidents
        self._spans: dict[tuple[str, str], list[float]] = {}

    def feed(self, partition: int, batch: EventBatch) -> None:
        """The next events of `partition`, in its order."""
        if self._known is None:
            _track_labels(batch, self._spans)
        tag = len(self.sets) > 1
        for thresholds, by_partition, summary in zip(
                self.sets, self._judges, self.summaries, strict=True):
            judge = by_partition.get(partition)
            if judge is None:
                judge = by_partition[partition] = Judge(thresholds, self.shares)
            verdicts = judge.ingest(batch)
            summary.observe(verdicts)
            if self.emit is not None and verdicts:
                self.emit.write(b"".join(_verdict_line(v, thresholds.name if tag else None)
                                         for v in verdicts))

    @property
    def late_events(self) -> int:
        """Events that came more than the grace behind the event time (counted, not judged)."""
        return max(sum(j.counters.late_events for j in judges.values())
                   for judges in self._judges)

    def incidents(self) -> list[Incident]:
        found = self._known if self._known is not None else [
            Incident.from_labels(label, domain, first, last)
            for (label, domain), (first, last) in self._spans.items()]
        return sorted(found, key=lambda i: (i.start_ts, i.domain))


def replay(
    partitions: Iterable[tuple[int, EventBatch]],
    sets: list[ThresholdSet],
    emit: IO[bytes] | None,
    shares: ConfiguredShares | None = None,
) -> tuple[list[SetSummary], list[Incident]]:
    """Run each set's judges over the batches (partition, events); write jsonl to `emit`."""
    run = Replay(sets, emit, shares=shares)
    for partition, batch in partitions:
        run.feed(partition, batch)
    return run.summaries, run.incidents()


def _verdict_line(verdict: Verdict, set_name: str | None) -> bytes:
    out = verdict.to_dict()
    if set_name is not None:
        out["thresholds"] = set_name
    return orjson.dumps(out) + b"\n"


class ProgressBar:
    """Events replayed and how far in event time, on stderr (only when it is a terminal)."""

    def __init__(self, bar: tqdm[Any]) -> None:
        self._bar = bar

    def advance(self, batch: EventBatch) -> None:
        if len(batch) and not self._bar.disable:
            self._bar.update(len(batch))
            last = datetime.fromtimestamp(float(batch.ts_s.max()), UTC)
            self._bar.set_postfix_str(f"event time {last:%Y-%m-%d %H:%M}", refresh=False)


@contextmanager
def progress_bar() -> Iterator[ProgressBar]:
    """A tqdm bar on stderr, counting events (disabled when stderr is no terminal: pipes,
    CI, tests), closed on exit."""
    with tqdm(unit=" events", unit_scale=True, file=sys.stderr, disable=None,
              mininterval=0.5, desc="replay") as bar:
        yield ProgressBar(bar)


def file_batches(path: Path, rejects: RejectLog, since_s: float | None,
                 until_s: float | None) -> Iterator[tuple[int, EventBatch]]:
    """A replay file as one partition of batches, decoded ahead in a child process started
    now, before the caller's progress bar starts its thread (`decode_ahead`)."""
    return _checked(decoded_ahead(path), rejects, since_s, until_s)


def _checked(chunks: Iterator[Decoded], rejects: RejectLog, since_s: float | None,
             until_s: float | None) -> Iterator[tuple[int, EventBatch]]:
    for decoded in chunks:
        rejects.add(decoded)
        yield 0, _in_range(decoded.events, since_s, until_s)


def sorted_file_batches(path: Path, since_s: float | None, until_s: float | None,
                        batch_events: int = 20_000) -> Iterator[tuple[int, EventBatch]]:
    """A replay file as one partition, sorted by time (stable: ties keep their line order).

    In memory: the events' columns, about 100 bytes an event. Corrupt lines are skipped
    silently (the first, streamed pass reported them)."""
    quiet = RejectLog(False, str(path), quiet=True)
    events = EventBatch.concat([batch for _, batch in file_batches(path, quiet, since_s, until_s)])
    events.records = []  # the judge reads the columns only
    order = np.argsort(events.ts_s, kind="stable")
    for start in range(0, len(order), batch_events):
        yield 0, events.take(order[start:start + batch_events])


async def topic_batches(bootstrap: str, topic: str, rejects: RejectLog,
                        since_s: float | None, until_s: float | None, settle_s: float = 0.0,
                        ) -> AsyncIterator[tuple[int, EventBatch]]:
    """The topic's records decoded, per partition in offset order, streamed (not held).

    Every partition is read from its beginning (no offsets-for-times) to the end offset seen
    at start. With `until_s`, a partition also stops once two records in a row hold only
    events at or after `until_s + settle_s` (grace plus a bucket): an event before `until_s`
    read after that would be too late for any window, and two, not one, so that a single
    far-future record (a time outlier to the judge) does not end the scan early.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    partitions = [TopicPartition(topic, p) for p in await topic_partitions(bootstrap, topic)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp: end for tp, end in (await consumer.end_offsets(partitions)).items()
                     if await consumer.position(tp) < end}
        beyond_until = dict.fromkeys(remaining, 0)
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            for tp, records in fetched.items():
                for record in records:
                    if tp not in remaining or record.offset >= remaining[tp]:
                        break
                    decoded = decode_record(record.value)
                    rejects.add(decoded)
                    yield tp.partition, _in_range(decoded.events, since_s, until_s)
                    ts_s = decoded.events.ts_s
                    if until_s is not None and len(ts_s):
                        late = ts_s.min() >= until_s + settle_s
                        beyond_until[tp] = beyond_until[tp] + 1 if late else 0
                        if beyond_until[tp] >= 2:
                            del remaining[tp]
                if tp in remaining and await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
    finally:
        await consumer.stop()


async def replay_topic(run: Replay, batches: AsyncIterator[tuple[int, EventBatch]]) -> None:
    async for partition, batch in batches:
        run.feed(partition, batch)


def _utc(at_s: float) -> str:
    return f"{datetime.fromtimestamp(at_s, UTC):%Y-%m-%d %H:%M:%S} UTC"


def comparison_table(summaries: list[SetSummary], incidents: list[Incident],
                     window_s: int) -> str:
    """Side by side: one column per thresholds set."""
    rows: list[tuple[str, list[str]]] = [
        ("evaluations (per domain)", [str(s.evaluations) for s in summaries]),
        ("rollbacks", [str(len(s.rollbacks)) for s in summaries]),
        ("time in hold", [f"{s.hold_s:.0f} s" for s in summaries]),
    ]
    for domain in sorted({r.domain for s in summaries for r in s.rollbacks}):
        first = [s.first_rollback(domain) for s in summaries]
        rows.append((f"first rollback of {domain}",
                     ["-" if r is None else _utc(r.at_s) for r in first]))
        rows.append(("  because", ["" if r is None else r.reason for r in first]))
    for incident in incidents:
        expected = Decision.ROLLBACK if incident.must_roll_back else Decision.HOLD
        cells = []
        for s in summaries:
            found = s.detection_s(incident)
            cells.append("missed" if found is None else f"{found:.1f} s")
        rows.append((f"{incident.name} ({incident.domain}) -> {expected}", cells))
    if incidents:
        rows.append(("false rollbacks",
                     [str(s.false_rollbacks(incidents, window_s)) for s in summaries]))
    header = ["", *(s.name for s in summaries)]
    widths = [max(len(r[0]) for r in rows), *(
        max(len(header[i + 1]), *(len(r[1][i]) for r in rows)) for i in range(len(summaries)))]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    for name, cells in rows:
        lines.append(" | ".join(c.ljust(w) for c, w in zip([name, *cells], widths, strict=True)))
    return "\n".join(lines)
