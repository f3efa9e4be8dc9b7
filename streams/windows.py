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


def parse_duration_s(text: str | int) -> int:
    """`30s`, `5m`, `1h`, `2d` or a bare number of seconds -> whole seconds > 0."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
    raw = str(text).strip().lower()
    scale = units.get(raw[-1:])
    number = raw[:-1] if scale else raw
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h)") from None
    if value <= 0 or value != int(value):
        raise ValueError(f"duration must be a positive whole number of seconds: {text!r}")
    return int(value)
