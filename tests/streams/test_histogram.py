from __future__ import annotations

import numpy as np
from hdrh.histogram import HdrHistogram
from hypothesis import given
from hypothesis import strategies as st

from trafficlight.streams.histogram import (
    HIGHEST_US,
    LOWEST_US,
    SIGNIFICANT_DIGITS,
    LatencyHistogram,
    slots_of,
)

latencies = st.lists(st.floats(min_value=0, max_value=5_000_000, allow_nan=False), max_size=200)


@given(latencies)
def test_counts_match_hdrhistogram_record_value(values: list[float]) -> None:
    ours = LatencyHistogram()
    ours.record_many(np.array(values))
    reference = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
    for v in values:
        reference.record_value(min(max(int(v * 1000), LOWEST_US), HIGHEST_US))
    assert np.array_equal(ours.counts, np.ctypeslib.as_array(reference.counts))


@given(st.lists(st.floats(min_value=0, max_value=5_000_000, allow_nan=False), max_size=600))
def test_recording_slots_equals_recording_the_latencies(values: list[float]) -> None:
    """Few values take `np.add.at`, many a bincount: both give `record_many`'s counts."""
    direct, by_slot = LatencyHistogram(), LatencyHistogram()
    clamped_direct = direct.record_many(np.array(values))
    slots, clamped = slots_of(np.array(values))
    by_slot.record_slots(slots)
    assert by_slot == direct
    assert int(clamped.sum()) == clamped_direct
    assert by_slot.percentiles_ms(50, 95) == direct.percentiles_ms(50, 95)


@given(latencies, latencies)
def test_merging_then_querying_equals_querying_the_union(a: list[float], b: list[float]) -> None:
    left, right, union = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    left.record_many(np.array(a))
    right.record_many(np.array(b))
    union.record_many(np.array(a + b))
    left.merge(right)
    assert left == union
    assert left.percentiles_ms(50, 95, 99) == union.percentiles_ms(50, 95, 99)


def test_out_of_range_values_are_clamped_and_counted() -> None:
    histogram = LatencyHistogram()
    assert histogram.record_many(np.array([0.2, 50.0, 4_000_000.0])) == 2
    assert histogram.total_count == 3


def test_p95_is_within_one_percent_of_the_exact_sorted_p95() -> None:
    values = np.random.default_rng(3).lognormal(5.5, 0.8, 200_000)
    histogram = LatencyHistogram()
    histogram.record_many(values)
    (p95,) = histogram.percentiles_ms(95)
    exact = float(np.sort(values)[int(np.ceil(0.95 * len(values))) - 1])
    assert abs(p95 - exact) / exact < 0.01


def test_bytes_round_trip_as_a_standard_hdr_blob() -> None:
    histogram = LatencyHistogram()
    histogram.record_many(np.array([12.5, 180.0, 2500.0]))
    blob = histogram.to_bytes()
    assert LatencyHistogram.from_bytes(blob) == histogram
    assert HdrHistogram.decode(blob, b64_wrap=False).get_total_count() == 3


@given(latencies)
def test_state_bytes_round_trip_every_histogram(values: list[float]) -> None:
    histogram = LatencyHistogram()
    histogram.record_many(np.array(values, np.float64))
    blob = b"prefix" + histogram.to_state_bytes()
    assert LatencyHistogram.from_state_bytes(blob, at=6) == histogram


def test_empty_histogram_has_no_percentiles() -> None:
    assert LatencyHistogram().percentiles_ms(50, 95) == (None, None)


def test_percentiles_follow_every_change_after_being_read() -> None:
    histogram, other = LatencyHistogram(), LatencyHistogram()
    other.record_many(np.full(10, 900.0))
    histogram.record_many(np.full(10, 100.0))
    steps = [lambda: histogram.merge(other), lambda: histogram.record_many(np.full(30, 5.0)),
             lambda: histogram.subtract(other)]
    for change in steps:
        histogram.percentiles_ms(50, 95)
        change()
        fresh = LatencyHistogram(histogram.counts.copy())
        assert histogram.percentiles_ms(50, 95) == fresh.percentiles_ms(50, 95)
        assert histogram.total_count == fresh.total_count
