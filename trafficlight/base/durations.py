"""Instants and durations typed by operators: ISO 8601 or relative to now (``-24h``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from trafficlight.base.errors import InvalidInput

_UNITS_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")



def parse_duration_s(text: str) -> float:
    """``90``, ``30s``, ``15m``, ``2h``, ``1d`` -> seconds (a bare number is seconds)."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise InvalidInput(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 1d)")
    return float(match[1]) * _UNITS_S[match[2] or "s"]


def parse_instant(text: str, now: datetime | None = None) -> datetime:
    """``now``, ``-24h`` (relative to ``now``), epoch seconds or ISO 8601 (no zone: UTC)."""
    now = now or datetime.now(UTC)
    raw = text.strip()
    if raw.lower() == "now":
        return now
    if raw.startswith("-"):
        return now - timedelta(seconds=parse_duration_s(raw[1:]))
    if raw.replace(".", "", 1).isdigit():
        return datetime.fromtimestamp(float(raw), UTC)
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            f"not a time: {text!r} (use ISO 8601 like 2026-11-28T09:00Z, or -24h, or now)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
