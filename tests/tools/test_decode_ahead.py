from __future__ import annotations

import gzip
import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.streams.helpers import T0, records
from trafficlight.base.errors import TrafficlightError
from trafficlight.streams.events import Decoded, read_jsonl
from trafficlight.tools import decode_ahead
from trafficlight.tools.decode_ahead import decoded_ahead


def _file(tmp_path: Path, lines: list[bytes], name: str = "events.jsonl") -> Path:
    path = tmp_path / name
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def _events(n: int) -> list[bytes]:
    return [orjson.dumps(r) for r in records(T0, 1, n)]


def _columns(decoded: Decoded) -> tuple[object, ...]:
    e = decoded.events
    return (e.ts_s.tolist(), e.domain, e.routed_to, e.response_time_ms.tolist(),
            e.is_error.tolist(), e.label, e.config_version.tolist(),
            [(r.reason, r.line) for r in decoded.rejects], decoded.defaulted)


@pytest.fixture
def forked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A child is forked whatever threads other tests left behind (idle: no lock of theirs is
    held), and none is left behind."""
    monkeypatch.setattr(decode_ahead, "_forkable", lambda: True)
    yield
    assert multiprocessing.active_children() == []


@pytest.mark.usefixtures("forked")
def test_a_child_decodes_exactly_the_chunks_read_jsonl_gives_without_their_records(
        tmp_path: Path) -> None:
    lines = _events(20_000)
    lines[7] = b'{"ts": "not json'
    path = _file(tmp_path, lines)
    # Chunks bigger than the pipe's buffer: the child is blocked sending the second.
    ahead = decoded_ahead(path, chunk_lines=2_000, min_bytes=0)
    first = next(ahead)
    assert len(multiprocessing.active_children()) == 1
    got = [first, *ahead]
    want = list(read_jsonl(path, chunk_lines=2_000))
    assert [_columns(d) for d in got] == [_columns(d) for d in want]
    assert all(d.events.records == [] for d in got)
    assert np.concatenate([d.events.ts_s for d in got]).size == 19_999


@pytest.mark.usefixtures("forked")
def test_an_error_the_child_meets_is_raised_as_the_inline_read_raises_it(
        tmp_path: Path) -> None:
    path = _file(tmp_path, _events(50), "events.jsonl.gz")
    path.write_bytes(path.read_bytes()[:-20])  # a truncated download
    with pytest.raises(EOFError) as inline:
        list(read_jsonl(path))
    with pytest.raises(EOFError) as ahead:
        list(decoded_ahead(path, min_bytes=0))
    assert str(ahead.value) == str(inline.value)


@pytest.mark.usefixtures("forked")
def test_stopping_early_stops_the_child(tmp_path: Path) -> None:
    chunks = decoded_ahead(_file(tmp_path, _events(20_000)), chunk_lines=2_000, min_bytes=0)
    assert len(next(chunks).events) == 2_000
    assert len(multiprocessing.active_children()) == 1
    chunks.close()
    assert multiprocessing.active_children() == []


def test_with_another_thread_alive_the_file_is_decoded_inline(tmp_path: Path) -> None:
    path = _file(tmp_path, _events(30))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        chunks = decoded_ahead(path, chunk_lines=10, min_bytes=0)
        assert multiprocessing.active_children() == []
        assert [len(d.events) for d in chunks] == [10, 10, 10]
    finally:
        stop.set()
        other.join()


def test_a_small_file_is_decoded_inline(tmp_path: Path) -> None:
    chunks = decoded_ahead(_file(tmp_path, _events(30)))
    assert multiprocessing.active_children() == []
    assert sum(len(d.events) for d in chunks) == 30


@pytest.mark.usefixtures("forked")
def test_a_child_that_dies_is_a_clear_error_not_a_short_file(tmp_path: Path) -> None:
    path = _file(tmp_path, _events(20_000))
    chunks = decoded_ahead(path, chunk_lines=2_000, min_bytes=0)
    next(chunks)
    [child] = multiprocessing.active_children()
    child.kill()
    stopped = r"the process decoding it stopped \(exit code -9\)"
    with pytest.raises(TrafficlightError, match=stopped):
        list(chunks)
