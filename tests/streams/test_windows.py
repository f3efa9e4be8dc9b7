from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trafficlight.streams.windows import bucket_start, step_boundaries, window_bucket_starts


@given(st.floats(min_value=0, max_value=4e9), st.sampled_from([1, 5, 10, 60]))
def test_a_timestamp_falls_inside_its_bucket(ts: float, bucket_s: int) -> None:
    start = bucket_start(ts, bucket_s)
    assert start <= ts < start + bucket_s and start % bucket_s == 0


def test_the_window_covers_the_open_bucket_and_reaches_back_a_whole_window() -> None:
    assert list(window_bucket_starts(105, 30, 10)) == [70, 80, 90, 100]
    assert list(window_bucket_starts(100, 30, 10)) == [70, 80, 90]


def test_step_boundaries_are_those_reached_after_the_previous_event_time() -> None:
    assert list(step_boundaries(99.5, 102.0, 1)) == [100, 101, 102]
    assert list(step_boundaries(100.0, 100.9, 1)) == []
    assert list(step_boundaries(None, 100.0, 1)) == []
