"""Event-time range math: tumbling buckets, trailing windows, step boundaries. Free functions.

Times are epoch seconds. Buckets are `[start, start + bucket_s)` with `start` a multiple of
`bucket_s` (default 10 s); evaluation instants are multiples of `step_s` (default 1 s). A
trailing window ending at T covers the buckets that overlap `[T - window_s, T)`, the open bucket
included, so its data reaches back up to one bucket further than `window_s`.
"""

from __future__ import annotations

import math


def bucket_start(ts_s: float, bucket_s: int) -> int:
    """Start of the bucket holding `ts_s`."""
    return math.floor(ts_s / bucket_s) * bucket_s


def window_bucket_starts(end_s: float, window_s: int, bucket_s: int) -> range:
    """Starts of the buckets overlapping `[end_s - window_s, end_s)`, oldest first."""
    first = bucket_start(end_s - window_s, bucket_s)
    return range(first, math.ceil(end_s / bucket_s) * bucket_s, bucket_s)


def step_boundaries(after_s: float | None, upto_s: float, step_s: int) -> range:
    """Evaluation instants T with `after_s < T <= upto_s` (none before the first event)."""
    last = math.floor(upto_s / step_s) * step_s
    if after_s is None:
        return range(last, last)
    first = math.floor(after_s / step_s) * step_s + step_s
    return range(first, last + step_s, step_s)
