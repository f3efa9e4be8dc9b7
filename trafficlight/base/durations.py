"""Instants and durations typed by operators: ISO 8601 or relative to now (``-24h``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from trafficlight.base.errors import InvalidInput

_UNITS_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")


def parse_duration_s(text: str | float) -> float:
    """``90``, ``30s``, ``0.5s``, ``15m``, ``2h``, ``1d`` -> seconds (a bare number is seconds).

    The one duration parser: every command option and settings file goes through here.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise InvalidInput(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 1d)")
        return float(text)
    match = _DURATION.match(str(text).strip().lower())
    if match is None:
        raise InvalidInput(f"not a duration: {text!r} (use e.g. 30s, 15m, 2h, 1d)")
    return float(match[1]) * _UNITS_S[match[2] or "s"]


def parse_whole_seconds(text: str | float) -> int:
    """A duration that must be a positive whole number of seconds (windows, steps, bakes)."""
    value = parse_duration_s(text)
    if value <= 0 or value != int(value):
        raise InvalidInput(f"duration must be a positive whole number of seconds: {text!r}")
    return int(value)


def parse_instant_s(text: str | None, now: datetime | None = None) -> float | None:
    """`parse_instant` as epoch seconds; None stays None (an open end)."""
    return None if text is None else parse_instant(text, now).timestamp()


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
