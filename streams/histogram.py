"""Latency histograms: HdrHistogram's layout and encoding, numpy for recording and merging.

Values are recorded in microseconds from 1 ms to 1 h with 2 significant digits (a recorded
value is within 1/128 of the true one), using exactly the counts layout of the `hdrhistogram`
package, so `to_bytes()` is a standard compressed HDR V2 blob any HDR tool decodes. Values
outside 1 ms .. 1 h are clamped to the edge and the number clamped is returned to the caller.

Why not `HdrHistogram` itself: its `record_value` costs ~1.3 us and `add()` walks the counts in
Python; here a batch is recorded with one `np.bincount` and histograms merge by adding count
arrays (never by averaging percentiles).
"""

from __future__ import annotations

import struct

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1_000
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 2

_LAYOUT = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
COUNTS_LEN: int = _LAYOUT.counts_len
_UNIT_MAGNITUDE: int = _LAYOUT.unit_magnitude
_HALF_MAGNITUDE: int = _LAYOUT.sub_bucket_half_count_magnitude
_HALF_COUNT: int = _LAYOUT.sub_bucket_half_count
_SUB_BUCKET_MASK: int = _LAYOUT.sub_bucket_mask
_STATE_COUNT = struct.Struct("<I")
"""`to_state_bytes`: how many nonzero slots follow."""


def _highest_equivalent_us(index: np.ndarray) -> np.ndarray:
    """The top of each counts slot's value range (what HDR reports for a percentile)."""
    bucket = (index >> _HALF_MAGNITUDE) - 1
    sub_bucket = (index & (_HALF_COUNT - 1)) + _HALF_COUNT
    low_region = bucket < 0
    sub_bucket = np.where(low_region, sub_bucket - _HALF_COUNT, sub_bucket)
    bucket = np.where(low_region, 0, bucket)
    lowest = sub_bucket << (bucket + _UNIT_MAGNITUDE)
    return lowest + (1 << (bucket + _UNIT_MAGNITUDE)) - 1


_SLOT_TOP_MS: np.ndarray = _highest_equivalent_us(np.arange(COUNTS_LEN, dtype=np.int64)) / 1000.0


def counts_index(values_us: np.ndarray) -> np.ndarray:
    """HdrHistogram's `_counts_index_for`, vectorised (values already within range)."""
    _, exponent = np.frexp((values_us | _SUB_BUCKET_MASK).astype(np.float64))
    bucket = exponent.astype(np.int64) - _UNIT_MAGNITUDE - (_HALF_MAGNITUDE + 1)
    sub_bucket = values_us >> (bucket + _UNIT_MAGNITUDE)
    return ((bucket + 1) << _HALF_MAGNITUDE) + sub_bucket - _HALF_COUNT


def slots_of(response_time_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each latency's counts slot (ms, clamped into 1 ms .. 1 h) and whether it was clamped:
    one vectorised pass over a whole batch, whichever histograms its values go to."""
    values_us = (np.asarray(response_time_ms, np.float64) * 1000.0).astype(np.int64)
    clamped = np.clip(values_us, LOWEST_US, HIGHEST_US)
    return counts_index(clamped), clamped != values_us


class LatencyHistogram:
    """Counts of response times; `counts[i]` is HDR slot i. Mutable, merge in place.

    Cumulative counts and percentiles are kept until the next change through these methods: a
    window is judged every step but changes far less often (sparse traffic, long replays).
    """

    __slots__ = ("_cumulative", "_percentiles", "counts")

    def __init__(self, counts: np.ndarray | None = None) -> None:
        self.counts = np.zeros(COUNTS_LEN, np.int64) if counts is None else counts
        self._changed()

    def _changed(self) -> None:
        self._cumulative: np.ndarray | None = None
        self._percentiles: dict[tuple[float, ...], tuple[float | None, ...]] = {}

    @property
    def total_count(self) -> int:
        return int(self._cumulative_counts()[-1])

    def _cumulative_counts(self) -> np.ndarray:
        if self._cumulative is None:
            self._cumulative = np.cumsum(self.counts)
        return self._cumulative

    def record_many(self, response_time_ms: np.ndarray) -> int:
        """Record a batch of latencies in ms; returns how many were clamped into range."""
        if not len(response_time_ms):
            return 0
        slots, clamped = slots_of(response_time_ms)
        self.record_slots(slots)
        return int(clamped.sum())

    def record_slots(self, slots: np.ndarray) -> None:
        """Record latencies given as their slots (`slots_of`): a few values (a sparse
        bucket's share of a batch) cost no full-size temporary."""
        if len(slots) > COUNTS_LEN // 8:
            self.counts += np.bincount(slots, minlength=COUNTS_LEN)
        else:
            np.add.at(self.counts, slots, 1)
        self._changed()

    def merge(self, other: LatencyHistogram) -> None:
        """Add `other`'s counts: the histogram of the union of both samples."""
        self.counts += other.counts
        self._changed()

    def subtract(self, other: LatencyHistogram) -> None:
        """Remove a sample merged earlier (sliding sums); counts stay exact integers."""
        self.counts -= other.counts
        self._changed()

    def copy(self) -> LatencyHistogram:
        return LatencyHistogram(self.counts.copy())

    @classmethod
    def merged(cls, histograms: list[LatencyHistogram]) -> LatencyHistogram:
        if not histograms:
            return cls()
        return cls(np.sum([h.counts for h in histograms], axis=0))

    def percentiles_ms(self, *percentiles: float) -> tuple[float | None, ...]:
        """HDR `get_value_at_percentile` for each, in ms; None for an empty histogram."""
        found = self._percentiles.get(percentiles)
        if found is None:
            found = self._percentiles[percentiles] = self._compute_percentiles_ms(percentiles)
        return found

    def _compute_percentiles_ms(self, percentiles: tuple[float, ...]) -> tuple[float | None, ...]:
        cumulative = self._cumulative_counts()
        total = int(cumulative[-1])
        if total == 0:
            return tuple(None for _ in percentiles)
        targets = [max(int(p * total / 100 + 0.5), 1) for p in percentiles]
        slots = np.searchsorted(cumulative, targets, side="left")
        return tuple(float(_SLOT_TOP_MS[s]) for s in slots)

    def to_bytes(self) -> bytes:
        """A standard compressed HdrHistogram V2 blob (no base64)."""
        hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS, b64_wrap=False)
        np.ctypeslib.as_array(hdr.counts)[:] = self.counts
        nonzero = np.flatnonzero(self.counts)
        if len(nonzero):
            hdr.set_internal_tacking_values(int(nonzero[0]), int(nonzero[-1]), self.total_count)
        return bytes(hdr.encode())

    @classmethod
    def from_bytes(cls, data: bytes) -> LatencyHistogram:
        hdr = HdrHistogram.decode(data, b64_wrap=False)
        if hdr.counts_len != COUNTS_LEN:
            raise ValueError("histogram was encoded with another range or precision")
        return cls(np.ctypeslib.as_array(hdr.counts).astype(np.int64))

    def to_state_bytes(self) -> bytes:
        """Our compact encoding for the worker's state table, written with every record: the
        nonzero slots (uint16) and their counts (int64), raw. ~5 us where the HDR blob costs
        ~170 us (a fresh `HdrHistogram`, its encoder, zlib); it is bigger, and only
        `from_state_bytes` reads it. Outside tools get `to_bytes`."""
        slots = np.flatnonzero(self.counts)
        return (_STATE_COUNT.pack(len(slots)) + slots.astype("<u2").tobytes()
                + self.counts[slots].astype("<i8").tobytes())

    @classmethod
    def from_state_bytes(cls, data: bytes, at: int = 0) -> LatencyHistogram:
        """The histogram `to_state_bytes` wrote at offset `at` of `data`."""
        (count,) = _STATE_COUNT.unpack_from(data, at)
        at += _STATE_COUNT.size
        slots = np.frombuffer(data, "<u2", count, at).astype(np.intp)
        counts = np.zeros(COUNTS_LEN, np.int64)
        counts[slots] = np.frombuffer(data, "<i8", count, at + 2 * count)
        return cls(counts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LatencyHistogram) and np.array_equal(self.counts, other.counts)

    __hash__ = None  # type: ignore[assignment]
