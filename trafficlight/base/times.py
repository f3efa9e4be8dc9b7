"""How times read to people: local ISO 8601 with the UTC offset, to the second."""

from __future__ import annotations

from datetime import datetime


def local_iso(moment: float | datetime) -> str:
    """`2026-12-01T11:02:06+01:00` for an epoch-seconds float or an aware datetime."""
    if isinstance(moment, datetime):
        return moment.astimezone().isoformat(timespec="seconds")
    return datetime.fromtimestamp(moment).astimezone().isoformat(timespec="seconds")
