"""Event time and watermark of one source partition, and the far-future guard.

Event time is the largest accepted `ts`; the watermark is event time - `grace_s`. A bucket whose
end is at or before the watermark is closed: a late event for it is counted, not added.

Far-future guard: an event more than `max_jump_s` ahead of event time would close every open
bucket at once. It is accepted only when the next event confirms the jump (is also more than
`max_jump_s` ahead of the old event time, as after a real lull in traffic); otherwise it is
counted as a time outlier and dropped. When it is the last event seen, it is held (in memory)
until the next one decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class Watermark:
    """Event time so far; `None` until the first event."""

    grace_s: float
    max_jump_s: float
    event_time_s: float | None = None

    @property
    def watermark_s(self) -> float:
        return -math.inf if self.event_time_s is None else self.event_time_s - self.grace_s

    def is_closed(self, bucket_end_s: float) -> bool:
        return bucket_end_s <= self.watermark_s

    def screen_jumps(self, ts_s: np.ndarray) -> tuple[np.ndarray, int | None]:
        """Which events to keep (bool mask) and the index of an event to hold, if any.

        Events neither kept nor held are time outliers.
        """
        keep = np.ones(len(ts_s), dtype=bool)
        confirmed: set[int] = set()
        while True:
            idx = np.flatnonzero(keep)
            if not len(idx):
                return keep, None
            kept_ts = ts_s[idx]
            first = kept_ts[0] if self.event_time_s is None else self.event_time_s
            before = np.maximum.accumulate(np.concatenate(([first], kept_ts[:-1])))
            far = np.flatnonzero(kept_ts > before + self.max_jump_s)
            pending = [p for p in far.tolist() if int(idx[p]) not in confirmed]
            if not pending:
                return keep, None
            p = pending[0]
            if p == len(idx) - 1:
                keep[idx[p]] = False
                return keep, int(idx[p])
            if kept_ts[p + 1] > before[p] + self.max_jump_s:
                confirmed.add(int(idx[p]))
            else:
                keep[idx[p]] = False
