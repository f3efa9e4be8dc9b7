"""One parser for durations and instants: every command and settings file agrees."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trafficlight.base.durations import (
    parse_duration_s,
    parse_instant,
    parse_instant_s,
    parse_whole_seconds,
)
from trafficlight.base.errors import InvalidInput

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90.0), ("30s", 30.0), ("0.5s", 0.5), ("15m", 900.0), ("2h", 7200.0), ("1d", 86400.0),
    (45, 45.0),
])
def test_durations_parse_to_seconds(text: str | int, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), (45, 45)])
def test_whole_durations_parse_to_whole_seconds(text: str | int, seconds: int) -> None:
    assert parse_whole_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "-3s", "0.5s", "0s"])
def test_windows_refuse_what_is_not_a_positive_whole_number_of_seconds(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_whole_seconds(text)


def test_a_bad_duration_is_a_value_error_with_a_one_line_reason() -> None:
    with pytest.raises(ValueError, match=r"^not a duration: '5x' \(use e.g. 30s"):
        parse_duration_s("5x")


@pytest.mark.parametrize(("text", "expected"), [
    ("now", NOW),
    ("-24h", datetime(2026, 11, 27, 12, 0, tzinfo=UTC)),
    ("-0.5s", datetime(2026, 11, 28, 11, 59, 59, 500_000, tzinfo=UTC)),
    ("2026-11-28T09:00Z", datetime(2026, 11, 28, 9, 0, tzinfo=UTC)),
    ("2026-11-28T09:00", datetime(2026, 11, 28, 9, 0, tzinfo=UTC)),
    ("1795867200", datetime.fromtimestamp(1795867200, UTC)),
])
def test_instants_are_iso_epoch_or_relative_to_now(text: str, expected: datetime) -> None:
    assert parse_instant(text, NOW) == expected


def test_an_open_end_stays_open_and_instants_convert_to_epoch_seconds() -> None:
    assert parse_instant_s(None, NOW) is None
    assert parse_instant_s("-24h", NOW) == NOW.timestamp() - 86_400
