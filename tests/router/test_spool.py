"""The on-disk spool: first in first out, bounded, and resumed after a restart."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from trafficlight.router.spool import Record, Spool

OpenSpool = Callable[..., Spool]


@pytest.fixture
def open_spool(tmp_path: Path) -> Iterator[OpenSpool]:
    """Spools in the test's folder, every one closed at the end (closing twice is harmless)."""
    opened: list[Spool] = []

    def open_(max_bytes: int) -> Spool:
        opened.append(Spool(tmp_path, max_bytes=max_bytes))
        return opened[-1]

    yield open_
    for spool in opened:
        spool.close()


def records(count: int, domain: bytes = b"jobs") -> list[Record]:
    return [Record(domain, f'[{{"n": {i}}}]'.encode(), 1) for i in range(count)]


def test_records_come_back_in_the_order_they_were_written(
        tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(max_bytes=1 << 20)
    for record in records(5):
        assert spool.append(record)
    first = spool.peek(3)
    spool.consume(first)
    assert first + spool.peek(10) == records(5)


def test_peeking_does_not_consume(
        tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(max_bytes=1 << 20)
    spool.append(records(1)[0])
    assert spool.peek(5) == spool.peek(5) == records(1)
    assert spool.events == 1


def test_a_full_spool_refuses_a_record_and_keeps_the_others(
        tmp_path: Path, open_spool: OpenSpool) -> None:
    two = records(2)
    spool = open_spool(max_bytes=two[0].size)
    assert spool.append(two[0])
    assert not spool.append(two[1])
    assert spool.peek(5) == two[:1]


def test_a_drained_spool_starts_its_file_over(
        tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(max_bytes=1 << 20)
    for record in records(3):
        spool.append(record)
    spool.consume(spool.peek(3))
    assert spool.empty
    assert (tmp_path / "records.log").stat().st_size == 0
    spool.append(records(1, b"property")[0])
    assert spool.peek(5) == records(1, b"property")


def test_a_reopened_spool_resumes_after_what_was_delivered(
        tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(max_bytes=1 << 20)
    for record in records(4):
        spool.append(record)
    spool.consume(spool.peek(1))
    spool.close()
    reopened = open_spool(max_bytes=1 << 20)
    assert reopened.events == 3
    assert reopened.peek(10) == records(4)[1:]


def test_a_torn_last_frame_is_cut_off_on_open(
        tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(max_bytes=1 << 20)
    for record in records(2):
        spool.append(record)
    spool.close()
    log = tmp_path / "records.log"
    log.write_bytes(log.read_bytes()[:-3])  # a crash in the middle of the second write
    reopened = open_spool(max_bytes=1 << 20)
    assert reopened.peek(10) == records(1)
    reopened.append(records(3)[2])
    assert reopened.peek(10) == [records(1)[0], records(3)[2]]


def test_appends_are_written_together_at_the_next_flush(
        tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(max_bytes=1 << 20)
    for record in records(3):
        spool.append(record)
    log = tmp_path / "records.log"
    assert log.stat().st_size == 0
    assert spool.events == 3
    assert spool.flush() == 0
    assert log.stat().st_size == sum(record.size for record in records(3))


def test_a_record_not_yet_written_is_still_read_back_in_order(open_spool: OpenSpool) -> None:
    spool = open_spool(max_bytes=1 << 20)
    spool.append(records(1)[0])
    spool.flush()
    spool.append(records(2)[1])
    assert spool.peek(10) == records(2)


def test_a_closed_spool_keeps_its_unwritten_records(open_spool: OpenSpool) -> None:
    spool = open_spool(max_bytes=1 << 20)
    for record in records(2):
        spool.append(record)
    assert spool.close() == 0
    assert open_spool(max_bytes=1 << 20).peek(10) == records(2)


def test_adopted_records_are_on_disk_before_they_leave_the_old_spool(tmp_path: Path) -> None:
    old = Spool(tmp_path / "old", max_bytes=1 << 20)
    for record in records(5):
        assert old.append(record)
    old.flush()
    new = Spool(tmp_path / "new", max_bytes=1 << 20)
    assert new.adopt(old) == 5  # closes `old`

    crashed_here = Spool(tmp_path / "new", max_bytes=1 << 20)  # `new` never closed
    old_again = Spool(tmp_path / "old", max_bytes=1 << 20)
    try:
        assert crashed_here.peek(10) == records(5)
        assert old_again.empty
    finally:
        for spool in (crashed_here, old_again, new):
            spool.close()
