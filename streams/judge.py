"""The judging engine: events in, verdicts out, at every step of event time. No I/O.

One `Judge` per source partition (the worker), per replay, per test; the same ordered events
give the same verdicts. `ingest(batch)` walks the batch in stream order: when event time first
reaches a step boundary T (a multiple of `step_s`), each domain is evaluated at T with
everything ingested so far (the open bucket included), then the event that reached T is
ingested. Cost follows events, not event time x targets: at T a domain is evaluated only if it
got events since its last evaluation, or T is a multiple of `heartbeat_s` (an idle domain's
figures and expiring window, at most one heartbeat per `heartbeat_s`). Over a gap in traffic
only the first boundary and the heartbeats of the last window before the new event time are
evaluated. Live and replay run this same code, so they give the same verdicts.

Evidence (`streams.verdicts.DomainState`) is fed per evaluation with the counts each target got
since its domain's last evaluation: requests, errors, and requests slower than each latency
threshold, counted exactly per event at ingest (not from the histogram), and per metric the
requests that follow a hit (the target's previous request was a hit, within `run_gap_s`) and
the runs among the hits (hits that do not): the change detectors read run starts
(`Counts.starts`). Carried across records and restarts, so the batching does not change
them. Events of a higher `config_version` than the domain's move it to its next step
(`DomainState.next_step`). The sample-ratio guard (`streams.sample_ratio`) reads the step's
totals against the percentage `shares` gives for the domain's config version (off without
`shares`, or while unknown).

State is serialisable in pieces for Faust tables: each `BucketAggregate` (`to_bytes`), each
domain's `DomainState` and the counts not yet evaluated (`domain_states()`, JSON-ready), and
the far-future event held for confirmation (`pending_events()`); `take_dirty()` says which
buckets changed.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from trafficlight.streams.events import ROUTED_TO, EventBatch, Target
from trafficlight.streams.histogram import LatencyHistogram, slots_of
from trafficlight.streams.sample_ratio import ConfiguredShares, sample_ratio
from trafficlight.streams.thresholds import Thresholds, ThresholdSet
from trafficlight.streams.verdicts import (
    Counts,
    DomainState,
    Judgement,
    TargetEvidence,
    Verdict,
    WindowStats,
    decide,
    judge_target,
)
from trafficlight.streams.watermark import Watermark
from trafficlight.streams.windows import step_boundaries, window_bucket_starts

ROUTED_TO_ORDER = ROUTED_TO
#: Columns of the pending counts: `Counts`' fields.
_PENDING = 10
_HEADER = struct.Struct("<4sqqqdd")
_MAGIC = b"TLB2"
_MAGIC_HDR = b"TLB1"
"""The first encoding, its histogram an HDR V2 blob: still read, no longer written."""


@dataclass(slots=True)
class BucketAggregate:
    """One tumbling bucket of one target: requests and errors per second, latency histogram."""

    start_s: int
    bucket_s: int
    requests_by_s: np.ndarray
    errors_by_s: np.ndarray
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    clamped: int = 0
    min_ts_s: float = math.inf
    max_ts_s: float = -math.inf

    @classmethod
    def empty(cls, start_s: int, bucket_s: int) -> BucketAggregate:
        return cls(start_s, bucket_s, np.zeros(bucket_s, np.int64), np.zeros(bucket_s, np.int64))

    @property
    def requests(self) -> int:
        return int(self.requests_by_s.sum())

    @property
    def errors(self) -> int:
        return int(self.errors_by_s.sum())

    def add_slots(self, ts_s: np.ndarray, slots: np.ndarray, is_error: np.ndarray,
                  clamped: int) -> None:
        """Record events that fall in this bucket, their latencies as slots (`slots_of`,
        computed once per batch), and how many of those latencies were clamped."""
        offsets = (ts_s - self.start_s).astype(np.int64)
        self.requests_by_s += np.bincount(offsets, minlength=self.bucket_s)
        self.errors_by_s += np.bincount(offsets[is_error], minlength=self.bucket_s)
        self.histogram.record_slots(slots)
        self.clamped += clamped
        self.min_ts_s = min(self.min_ts_s, float(ts_s.min()))
        self.max_ts_s = max(self.max_ts_s, float(ts_s.max()))

    def merge(self, other: BucketAggregate) -> None:
        """Add another partial aggregate of the same bucket (two-stage aggregation)."""
        if (other.start_s, other.bucket_s) != (self.start_s, self.bucket_s):
            raise ValueError("cannot merge aggregates of different buckets")
        self.requests_by_s += other.requests_by_s
        self.errors_by_s += other.errors_by_s
        self.histogram.merge(other.histogram)
        self.clamped += other.clamped
        self.min_ts_s = min(self.min_ts_s, other.min_ts_s)
        self.max_ts_s = max(self.max_ts_s, other.max_ts_s)

    def to_bytes(self) -> bytes:
        """The state table's encoding (the histogram as `LatencyHistogram.to_state_bytes`)."""
        header = _HEADER.pack(_MAGIC, self.start_s, self.bucket_s, self.clamped,
                              self.min_ts_s, self.max_ts_s)
        return (header + self.requests_by_s.astype("<i8").tobytes()
                + self.errors_by_s.astype("<i8").tobytes() + self.histogram.to_state_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> BucketAggregate:
        """Decode `to_bytes`; also reads the first encoding (an HDR V2 histogram), so a
        worker recovers state written before the compact one."""
        magic, start_s, bucket_s, clamped, min_ts, max_ts = _HEADER.unpack_from(data)
        if magic not in (_MAGIC, _MAGIC_HDR):
            raise ValueError("not a bucket aggregate")
        at = _HEADER.size
        width = 8 * bucket_s
        requests = np.frombuffer(data, "<i8", bucket_s, at).astype(np.int64)
        errors = np.frombuffer(data, "<i8", bucket_s, at + width).astype(np.int64)
        histogram = (LatencyHistogram.from_state_bytes(data, at + 2 * width)
                     if magic == _MAGIC else LatencyHistogram.from_bytes(data[at + 2 * width:]))
        return cls(start_s, bucket_s, requests, errors, histogram, clamped, min_ts, max_ts)


@dataclass(slots=True)
class JudgeCounters:
    """What the judge did not count in any window, and why (for metrics and replay summaries)."""

    late_events: int = 0
    time_outliers: int = 0
    clamped_latencies: int = 0


@dataclass(slots=True)
class _Target:
    """Buckets of one (domain, routed_to) and the running sum of its trailing window.

    Its explained judgement (evidence and reasons, what its published rows carry) is kept
    while the evidence object, its totals and the window figures its reasons quote are those
    it was built from, so a heartbeat over an idle target costs little (cost follows events,
    not event time); the window's percentiles are kept by its histogram likewise."""

    buckets: dict[int, BucketAggregate] = field(default_factory=dict)
    window_first_s: int = -(2**62)
    window: BucketAggregate | None = None
    explained: tuple[TargetEvidence, Counts, tuple[int, int, float], Judgement] | None = None

    def explain(self, evidence: TargetEvidence, limits: Thresholds,
                stats: WindowStats) -> Judgement:
        """`judge_target` with reasons, rebuilt only when what it reads has changed."""
        quoted = (stats.requests, stats.errors, stats.window_end_s - stats.window_start_s)
        cached = self.explained
        if (cached is not None and cached[0] is evidence and cached[1] == evidence.totals
                and cached[2] == quoted):
            return cached[3]
        judgement = judge_target(evidence, limits, stats)
        self.explained = (evidence, evidence.totals, quoted, judgement)
        return judgement


def _runs_through(hit: np.ndarray, close: np.ndarray, first: np.ndarray, carried: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per event (grouped by target, in stream order): the length of the run of hits it is
    in (0 for no hit), and that of the run going on just before it. A hit continues a run
    when its target's previous request was a hit `close` before it; ``carried``: the run
    going on before each target's first event (at ``first``)."""
    carried_at = np.zeros(len(hit), np.int64)
    carried_at[first] = carried
    follows_hit = np.zeros(len(hit), bool)
    follows_hit[1:] = hit[:-1] & close[1:] & ~first[1:]
    follows_hit[first] = carried > 0
    continues = hit & follows_hit
    is_base = ~continues | first
    index = np.arange(len(hit))
    base_value = np.where(first & continues, carried_at + 1, hit.astype(np.int64))
    base = np.maximum.accumulate(np.where(is_base, index, 0))
    run = np.where(is_base, base_value, base_value[base] + index - base)
    before = np.zeros(len(hit), np.int64)
    before[1:] = np.where(follows_hit[1:], run[:-1], 0)
    before[first] = carried
    return run, before


class Judge:
    """Stateful engine over the pure pieces; see the module docstring for the timing rule."""

    def __init__(self, thresholds: ThresholdSet | None = None,
                 shares: ConfiguredShares | None = None) -> None:
        self.thresholds = thresholds or ThresholdSet()
        #: Each config version's unified percentage per domain, for the sample-ratio guard
        #: (`streams.sample_ratio`); None: the guard is off.
        self.shares = shares
        self.settings = self.thresholds.settings
        self.watermark = Watermark(self.settings.grace_s, self.settings.max_jump_s)
        self.counters = JudgeCounters()
        self.states: dict[str, DomainState] = {}
        #: Per target code: requests, errors, slow_warning, slow_critical since the domain's
        #: last evaluation, per metric the hits and the requests after hits the change
        #: detectors read (`Counts`, `_runs_through`), and the highest config_version seen.
        self._pending = np.zeros((0, _PENDING), np.int64)
        #: Per target code and metric: the run of hits its last requests made (0: its last
        #: request was no hit). And per target code, the event time of its last request (a
        #: run goes on only within `run_gap_s` of it).
        self._run_len = np.zeros((0, 3), np.int64)
        self._last_ts = np.zeros(0, np.float64)
        self._pending_version = np.zeros(0, np.int64)
        #: Per target code: its domain's latency thresholds (warning, critical), in ms.
        self._limits_ms = np.zeros((0, 2), np.float64)
        self._domain_of = np.zeros(0, np.int64)
        #: Each domain's `DomainState.to_dict()` since its last evaluation (state persisted
        #: with every record, changed only by evaluations).
        self._state_dicts: dict[str, dict[str, Any]] = {}
        self._targets: dict[tuple[str, str], _Target] = {}
        self._codes: dict[tuple[str, str], int] = {}
        self._keys: list[tuple[str, str]] = []
        self._held: EventBatch | None = None
        self._dirty: set[tuple[str, str, int]] = set()

    @property
    def event_time_s(self) -> float | None:
        return self.watermark.event_time_s

    # -- ingest ---------------------------------------------------------------------------

    def ingest(self, batch: EventBatch) -> list[Verdict]:
        """Ingest events in stream order; the verdicts of every evaluation they triggered."""
        if self._held is not None:
            batch, self._held = EventBatch.concat([self._held, batch]), None
        if not len(batch):
            return []
        keep, hold = self.watermark.screen_jumps(batch.ts_s)
        if hold is not None:
            self._held = batch.take(np.array([hold]))
        if not keep.all():
            self.counters.time_outliers += int(len(keep) - keep.sum()) - (hold is not None)
            batch = batch.take(np.flatnonzero(keep))
            if not len(batch):
                return []
        ts = batch.ts_s
        prev = self.event_time_s
        running = np.maximum.accumulate(ts if prev is None else np.maximum(ts, prev))
        before = np.concatenate(([-math.inf if prev is None else prev], running[:-1]))
        step_s = self.settings.step_s
        crossings = np.flatnonzero(np.floor(running / step_s) > np.floor(before / step_s))
        codes = self._codes_of(batch)
        verdicts: list[Verdict] = []
        s = self.settings
        step_s, heartbeat_s, batch_requests = s.step_s, s.heartbeat_s, s.batch_requests
        cum = self._on_time_counts_by_domain(batch, codes, before)
        pending = self._pending_by_domain(len(cum))
        before_list, running_list = before.tolist(), running.tolist()
        start = 0
        for i in crossings.tolist():
            b = before_list[i]
            if b == -math.inf:
                continue
            # Skip a crossing where `advance_to` would evaluate nothing: no heartbeat among
            # the boundaries it reaches, no domain with `batch_requests` requests pending.
            # It saves the per-step bucket work on sparse input (cost follows events).
            first = math.floor(b / step_s) * step_s + step_s
            final = math.floor(running_list[i] / step_s) * step_s
            if final // heartbeat_s * heartbeat_s < first and all(
                    pending[d] + cum[d][i] - cum[d][start] < batch_requests
                    for d in range(len(cum))):
                continue
            self._add(batch, codes, before, start, i)
            start = i
            self.watermark.event_time_s = b
            verdicts += self.advance_to(running_list[i])
            pending = self._pending_by_domain(len(cum))
        self._add(batch, codes, before, start, len(batch))
        self.watermark.event_time_s = float(running[-1])
        return verdicts

    def _on_time_counts_by_domain(self, batch: EventBatch, codes: np.ndarray,
                                  before: np.ndarray) -> list[list[int]]:
        """cum[d][i]: events of domain d among the batch's first i that `_add` counts."""
        s = self.settings
        on_time = (np.floor(batch.ts_s / s.bucket_s) + 1) * s.bucket_s > before - s.grace_s
        event_domain = self._domain_codes()[codes]
        return [np.concatenate(([0], np.cumsum((event_domain == d) & on_time))).tolist()
                for d in range(int(self._domain_codes().max()) + 1)]

    def _pending_by_domain(self, n_domains: int) -> list[int]:
        """Requests not yet evaluated, per domain code."""
        counts = np.bincount(self._domain_codes(), weights=self._pending[:, 0],
                             minlength=n_domains)
        return list(map(int, counts.tolist()))

    def _domain_codes(self) -> np.ndarray:
        """Each target code's domain as a small int (codes of one domain share it)."""
        if len(self._domain_of) != len(self._keys):
            index: dict[str, int] = {}
            self._domain_of = np.array([index.setdefault(d, len(index)) for d, _ in self._keys],
                                       np.int64)
        return self._domain_of

    def ingest_aggregate(self, domain: str, routed_to: str, agg: BucketAggregate) -> list[Verdict]:
        """Merge a pre-aggregated bucket (first stage of two). Evaluations due before its first
        event run first; those it crosses run after merging it whole, so a first stage that
        never spans a step boundary gives exactly the verdicts of `ingest`."""
        verdicts = self.advance_to(agg.min_ts_s)
        if self.watermark.is_closed(agg.start_s + agg.bucket_s):
            self.counters.late_events += agg.requests
        else:
            self._merge_bucket((domain, routed_to), agg)
        return verdicts + self.advance_to(agg.max_ts_s)

    def advance_to(self, event_time_s: float) -> list[Verdict]:
        """Move event time forward (never back), evaluating each step boundary reached."""
        prev = self.event_time_s
        if prev is None or event_time_s <= prev:
            if prev is None:
                self.watermark.event_time_s = event_time_s
            return []
        boundaries = step_boundaries(prev, event_time_s, self.settings.step_s)
        verdicts: list[Verdict] = []
        if len(boundaries):
            # The first boundary takes the counts pending since the last evaluation; after it
            # nothing changes but time: only heartbeats, of the last window at most.
            first, heartbeat_s = boundaries.start, self.settings.heartbeat_s
            verdicts += self.evaluate(first)
            keep_from = max(boundaries.stop - self.settings.window_s, first + 1)
            start = -(-keep_from // heartbeat_s) * heartbeat_s
            for at_s in range(start, boundaries.stop, heartbeat_s):
                verdicts += self.evaluate(at_s)
        self.watermark.event_time_s = event_time_s
        return verdicts

    def _codes_of(self, batch: EventBatch) -> np.ndarray:
        """Each event's target as a small int (new targets get the next codes)."""
        codes = self._codes
        try:
            pairs = zip(batch.domain, batch.routed_to, strict=True)
            return np.fromiter(map(codes.__getitem__, pairs), np.int64, len(batch))
        except KeyError:
            for p in zip(batch.domain, batch.routed_to, strict=True):
                if p not in codes:
                    self._new_target(p)
            return self._codes_of(batch)

    def _new_target(self, key: tuple[str, str]) -> _Target:
        self._codes[key] = len(self._keys)
        self._keys.append(key)
        target = self._targets[key] = _Target()
        limits = self.thresholds.for_domain(key[0])
        self._pending = np.vstack([self._pending, np.zeros((1, _PENDING), np.int64)])
        self._run_len = np.vstack([self._run_len, np.zeros((1, 3), np.int64)])
        self._last_ts = np.append(self._last_ts, -math.inf)
        self._pending_version = np.append(self._pending_version, np.int64(-1))
        self._limits_ms = np.vstack([self._limits_ms,
                                     [[limits.warning_p95_ms, limits.critical_p95_ms]]])
        return target

    def _add(self, batch: EventBatch, codes: np.ndarray, before: np.ndarray,
             lo: int, hi: int) -> None:
        """Add events lo..hi-1 to their buckets; late ones are counted instead."""
        if lo >= hi:
            return
        bucket_s = self.settings.bucket_s
        ts = batch.ts_s[lo:hi]
        starts = (np.floor(ts / bucket_s) * bucket_s).astype(np.int64)
        on_time = starts + bucket_s > before[lo:hi] - self.settings.grace_s
        if not on_time.all():
            self.counters.late_events += int(len(on_time) - on_time.sum())
        self._count(batch, codes, lo, hi, on_time)
        first = int(starts.min())
        group = codes[lo:hi] * 1_000_003 + (starts - first) // bucket_s
        group = np.where(on_time, group, -1)
        order = np.argsort(group, kind="stable")
        sorted_groups = group[order]
        cuts = np.flatnonzero(np.diff(sorted_groups)) + 1
        slots, clamped = slots_of(batch.response_time_ms[lo:hi])
        errors = batch.is_error[lo:hi]
        for part in np.split(order, cuts):
            g = int(group[part[0]])
            if g < 0:
                continue
            key = self._keys[g // 1_000_003]
            bucket_start = first + (g % 1_000_003) * bucket_s
            part_clamped = int(clamped[part].sum())
            self.counters.clamped_latencies += part_clamped
            self._add_to_bucket(key, bucket_start, ts[part], slots[part], errors[part],
                                part_clamped)

    def _count(self, batch: EventBatch, codes: np.ndarray, lo: int, hi: int,
               on_time: np.ndarray) -> None:
        """Add events lo..hi-1 (the on-time ones) to their targets' pending evidence counts."""
        code = codes[lo:hi][on_time]
        if not len(code):
            return
        size = len(self._keys)
        latency = batch.response_time_ms[lo:hi][on_time]
        ts = batch.ts_s[lo:hi][on_time]
        limits = self._limits_ms[code]
        self._pending[:, 0] += np.bincount(code, minlength=size)
        # Each target's events in stream order, and where each follows its target's previous
        # request (in this batch or before it: `_last_ts`) within `run_gap_s`.
        order = np.argsort(code, kind="stable")
        by_target = code[order]
        first = np.ones(len(code), bool)
        first[1:] = by_target[1:] != by_target[:-1]
        last = np.ones(len(code), bool)
        last[:-1] = first[1:]
        ts = ts[order]
        previous_ts = np.empty_like(ts)
        previous_ts[1:] = ts[:-1]
        previous_ts[first] = self._last_ts[by_target[first]]
        close = ts - previous_ts <= self.settings.run_gap_s
        self._last_ts[by_target[last]] = np.maximum(self._last_ts[by_target[last]], ts[last])
        metrics = (batch.is_error[lo:hi][on_time], latency > limits[:, 0],
                   latency > limits[:, 1])
        max_run = self.settings.max_run
        for m, hit in enumerate(metrics):
            # The run of hits going on before each target's first event here (`_run_len`,
            # ended by a gap over `run_gap_s`). A request that follows a hit of a run shorter
            # than `max_run` is left out of the change detectors' sample (`Counts.starts`).
            carried = np.where(close[first], self._run_len[by_target[first], m], 0)
            if not hit.any():
                out = (carried > 0) & (carried < max_run)
                self._pending[:, 7 + m] += np.bincount(by_target[first][out], minlength=size)
                self._run_len[code, m] = 0  # every run of these targets ended
                continue
            self._pending[:, 1 + m] += np.bincount(code[hit], minlength=size)
            hit = hit[order]
            run, before = _runs_through(hit, close, first, carried)
            out = (before > 0) & (before < max_run)
            self._pending[:, 4 + m] += np.bincount(by_target[hit & ~out], minlength=size)
            self._pending[:, 7 + m] += np.bincount(by_target[out], minlength=size)
            self._run_len[by_target[last], m] = run[last]
        versions = batch.config_version[lo:hi][on_time]
        np.maximum.at(self._pending_version, code, versions)

    def _add_to_bucket(self, key: tuple[str, str], start_s: int, ts: np.ndarray,
                       slots: np.ndarray, errors: np.ndarray, clamped: int) -> None:
        """Events of one target and bucket into that bucket, and into the target's trailing
        window when the bucket is in it."""
        bucket, window = self._bucket(key, start_s, self.settings.bucket_s)
        bucket.add_slots(ts, slots, errors, clamped)
        if window is not None:
            window.requests_by_s[:1] += len(ts)
            window.errors_by_s[:1] += int(errors.sum())
            window.histogram.record_slots(slots)

    def _merge_bucket(self, key: tuple[str, str], piece: BucketAggregate) -> None:
        """A whole aggregate (a first stage, or restored state) into its bucket, likewise."""
        bucket, window = self._bucket(key, piece.start_s, piece.bucket_s)
        bucket.merge(piece)
        if window is not None:
            window.requests_by_s[:1] += piece.requests
            window.errors_by_s[:1] += piece.errors
            window.histogram.merge(piece.histogram)

    def _bucket(self, key: tuple[str, str], start_s: int, bucket_s: int
                ) -> tuple[BucketAggregate, BucketAggregate | None]:
        """The target's bucket at `start_s` (made if new, marked changed), and its trailing
        window if that bucket is in it."""
        target = self._targets.get(key)
        if target is None:
            target = self._new_target(key)
        bucket = target.buckets.get(start_s)
        if bucket is None:
            bucket = target.buckets[start_s] = BucketAggregate.empty(start_s, bucket_s)
        self._dirty.add((*key, start_s))
        in_window = target.window is not None and start_s >= target.window_first_s
        return bucket, target.window if in_window else None

    # -- evaluate -------------------------------------------------------------------------

    def evaluate(self, at_s: int) -> list[Verdict]:
        """Verdicts at `at_s` of every domain with new events, or of every domain at a
        heartbeat, with each domain's decision."""
        heartbeat = at_s % self.settings.heartbeat_s == 0
        if heartbeat:
            domains = {d for d, _ in self._keys}
        else:
            pending: dict[str, int] = {}
            for code in np.flatnonzero(self._pending[:, 0]).tolist():
                domain = self._keys[code][0]
                pending[domain] = pending.get(domain, 0) + int(self._pending[code, 0])
            due = self.settings.batch_requests
            domains = {d for d, n in pending.items() if n >= due}
        verdicts: list[Verdict] = []
        for domain in sorted(domains):
            verdicts += self._evaluate_domain(domain, at_s, heartbeat)
        return verdicts

    def _take_counts(self, key: tuple[str, str]) -> tuple[Counts, int]:
        code = self._codes.get(key)
        if code is None:
            return Counts(), -1
        counts = Counts(*self._pending[code].tolist())
        version = int(self._pending_version[code])
        self._pending[code] = 0
        self._pending_version[code] = -1
        return counts, version

    def _evaluate_domain(self, domain: str, at_s: int, heartbeat: bool) -> list[Verdict]:
        """Feed the domain's pending counts to its evidence and decide. Rows are published at
        heartbeats and whenever the decision, the rule or a target's verdict changes."""
        limits = self.thresholds.for_domain(domain)
        unified, unified_version = self._take_counts((domain, Target.UNIFIED))
        legacy, legacy_version = self._take_counts((domain, Target.LEGACY))
        version = max(unified_version, legacy_version)
        state = self.states.get(domain)
        if state is None:
            state = self.states[domain] = DomainState.new(limits, self.settings, version)
        elif version > state.config_version:
            # A new step (config version): evidence restarts, a rollback is cleared.
            state = self.states[domain] = state.next_step(limits, self.settings, version)
        state.update(unified, legacy)
        self._state_dicts.pop(domain, None)
        present = [t for t in ROUTED_TO_ORDER if (domain, t) in self._targets]
        evidence = {Target.UNIFIED: state.unified, Target.LEGACY: state.legacy}
        judged = {t: judge_target(evidence[t], limits, explain=False) for t in present}
        configured_pct = (None if self.shares is None
                          else self.shares.percentage(state.config_version, domain))
        guard = sample_ratio(*state.step_requests, configured_pct, self.settings)
        outcome = decide(judged.get(Target.UNIFIED), judged.get(Target.LEGACY), state, limits,
                         guard)
        state.shared = outcome.shared
        if outcome.rolled_back and not state.rolled_back:
            state.rolled_back = True
            state.rollback_reason = "; ".join(outcome.reasons)
        signature = "|".join([outcome.decision, outcome.rule,
                              *(judged[t].health for t in present)])
        if not heartbeat and signature == state.published:
            return []
        state.published = signature
        verdicts = []
        for routed_to in present:
            target = self._targets[(domain, routed_to)]
            stats = self._trailing_stats(target, at_s)
            judgement = target.explain(evidence[routed_to], limits, stats)
            reasons = judgement.reasons
            if routed_to is Target.UNIFIED:
                reasons = (*reasons, *outcome.reasons)
                if guard is not None:
                    judgement = replace(judgement, evidence={
                        **judgement.evidence, "sample_ratio": guard.to_evidence()})
            verdicts.append(Verdict.of(domain, routed_to, stats, judgement, outcome.decision,
                                       reasons, outcome.rule))
        return verdicts

    def _trailing_stats(self, target: _Target, at_s: int) -> WindowStats:
        bucket_s, window_s = self.settings.bucket_s, self.settings.window_s
        first = window_bucket_starts(at_s, window_s, bucket_s).start
        if target.window is None or first < target.window_first_s:
            target.window = BucketAggregate.empty(first, 1)
            for start, bucket in target.buckets.items():
                if start >= first:
                    self._add_to_window(target.window, bucket)
        else:
            for start in range(target.window_first_s, first, bucket_s):
                leaving = target.buckets.pop(start, None)
                if leaving is not None:
                    target.window.requests_by_s -= leaving.requests
                    target.window.errors_by_s -= leaving.errors
                    target.window.histogram.subtract(leaving.histogram)
        target.window_first_s = first
        for start in [s for s in target.buckets if s < first]:
            del target.buckets[start]
        window = target.window
        return self._stats(first, at_s, int(window.requests_by_s[0]),
                           int(window.errors_by_s[0]), window.histogram)

    @staticmethod
    def _add_to_window(window: BucketAggregate, bucket: BucketAggregate) -> None:
        window.requests_by_s += bucket.requests
        window.errors_by_s += bucket.errors
        window.histogram.merge(bucket.histogram)

    @staticmethod
    def _stats(start_s: float, end_s: float, requests: int, errors: int,
               histogram: LatencyHistogram) -> WindowStats:
        p50, p95, p99 = histogram.percentiles_ms(50, 95, 99)
        return WindowStats(float(start_s), float(end_s), requests, errors, p50, p95, p99,
                           histogram.total_count)

    # -- state for Faust tables -----------------------------------------------------------

    def take_dirty(self) -> list[tuple[str, str, BucketAggregate]]:
        """Buckets changed since the last call (still held, not copied): persist these."""
        dirty, self._dirty = self._dirty, set()
        out = []
        for domain, routed_to, start in sorted(dirty):
            bucket = self._targets[(domain, routed_to)].buckets.get(start)
            if bucket is not None:
                out.append((domain, routed_to, bucket))
        return out

    def buckets(self) -> Iterator[tuple[str, str, BucketAggregate]]:
        for (domain, routed_to), target in self._targets.items():
            for bucket in target.buckets.values():
                yield domain, routed_to, bucket

    def domain_states(self) -> dict[str, dict[str, Any]]:
        """Each domain's evidence (None before its first evaluation) and its targets' counts
        not yet evaluated, JSON-ready."""
        out: dict[str, dict[str, Any]] = {}
        for (domain, routed_to), code in self._codes.items():
            entry = out.get(domain)
            if entry is None:
                entry = out[domain] = {"state": self._state_dict(domain), "pending": {}}
            last_ts = float(self._last_ts[code])
            entry["pending"][routed_to] = (self._pending[code].tolist(),
                                           int(self._pending_version[code]),
                                           self._run_len[code].tolist(),
                                           last_ts if last_ts > -math.inf else None)
        return out

    def _state_dict(self, domain: str) -> dict[str, Any] | None:
        state = self.states.get(domain)
        if state is None:
            return None
        cached = self._state_dicts.get(domain)
        if cached is None:
            cached = self._state_dicts[domain] = state.to_dict()
        return cached

    def pending_events(self) -> list[dict[str, Any]]:
        """The event held by the far-future guard ([] or one), as JSON-ready fields.

        Persist it with the rest of the state: the record it came in is already committed, so
        after a restart nothing else would bring it back to be confirmed or dropped.
        """
        held = self._held
        if held is None:
            return []
        return [{"ts": float(ts), "domain": domain, "routed_to": routed_to,
                 "response_time_ms": float(ms), "status": "error" if err else "success",
                 "label": label, "config_version": int(version)}
                for ts, domain, routed_to, ms, err, label, version in zip(
                    held.ts_s.tolist(), held.domain, held.routed_to,
                    held.response_time_ms.tolist(), held.is_error.tolist(), held.label,
                    held.config_version.tolist(), strict=True)]

    def restore(self, event_time_s: float | None,
                buckets: list[tuple[str, str, BucketAggregate]],
                states: dict[str, Any],
                pending: Sequence[dict[str, Any]] = ()) -> None:
        """Rebuild a fresh judge from persisted pieces (worker restart): `states` as
        `domain_states()` gave them (or `DomainState` objects, counts then taken as zero)."""
        for domain, routed_to, bucket in buckets:
            self._merge_bucket((domain, routed_to), bucket)
        self._dirty.clear()
        for domain, data in states.items():
            if isinstance(data, DomainState):
                self.states[domain] = data
                continue
            if data["state"] is not None:
                limits = self.thresholds.for_domain(domain)
                self.states[domain] = DomainState.from_dict(data["state"], limits,
                                                            self.settings)
            for routed_to, (counts, version, *runs) in data["pending"].items():
                # State written before runs were counted: 4 counts, no run flags; before the
                # run gap: no last request time.
                key = (domain, routed_to)
                if key not in self._targets:
                    self._new_target(key)
                code = self._codes[key]
                self._pending[code] = [*counts, *[0] * (_PENDING - len(counts))]
                self._pending_version[code] = version
                # Before run lengths, a flag per metric: a run of one went on (or none).
                self._run_len[code] = runs[0] if runs else 0
                last_ts = runs[1] if len(runs) > 1 else None
                self._last_ts[code] = -math.inf if last_ts is None else last_ts
        self.watermark.event_time_s = event_time_s
        self._held = EventBatch.from_records(list(pending)) if pending else None
