"""Base helpers: backoff delays, the retry loop, one-line errors, the retriable flag."""

from __future__ import annotations

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trafficlight.base.errors import (
    ConfigError,
    DatabaseUnavailable,
    InvalidInput,
    ServiceStartError,
    TrafficlightError,
    first_line,
)
from trafficlight.base.retry import Backoff, retry_until_done


@pytest.mark.parametrize(("failed", "delay_s"), [(1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0)])
def test_delays_double_from_the_first_up_to_the_cap(failed: int, delay_s: float) -> None:
    assert Backoff(first_s=0.5, max_s=30.0).delay_s(failed) == delay_s


@given(st.integers(min_value=1, max_value=10**6))
def test_a_delay_never_exceeds_the_cap_however_many_failures(failed: int) -> None:
    assert 0.2 <= Backoff(first_s=0.2, max_s=10.0).delay_s(failed) <= 10.0


async def test_retry_until_done_retries_every_failure_then_returns_the_result() -> None:
    outcomes: list[object] = [OSError("refused"), ValueError("bad"), "stored"]
    seen: list[tuple[str, float]] = []

    async def attempt() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)

    async def failed(exc: Exception, delay_s: float) -> None:
        seen.append((first_line(exc), delay_s))

    assert await retry_until_done(attempt, Backoff(0.001, 0.002), failed) == "stored"
    assert seen == [("refused", 0.001), ("bad", 0.002)]


@pytest.mark.parametrize(("exc", "line"), [
    (OSError("connection refused\nmore detail"), "connection refused"),
    (TimeoutError(), "TimeoutError"),
    (ValueError("   \n"), "ValueError"),
    (asyncpg.PostgresError("percentage must be between 0 and 100\nCONTEXT: ..."),
     "percentage must be between 0 and 100"),
])
def test_an_exception_in_one_line_is_its_first_line_or_its_type(exc: BaseException,
                                                                 line: str) -> None:
    assert first_line(exc) == line


def test_only_unreachable_services_are_worth_retrying() -> None:
    assert issubclass(DatabaseUnavailable, TrafficlightError)
    assert DatabaseUnavailable.retriable and ServiceStartError.retriable
    assert not ConfigError.retriable and not InvalidInput.retriable
    assert not TrafficlightError.retriable
