"""Writing JSON Lines event files (.jsonl, or .jsonl.gz by name), streamed in batches."""

from __future__ import annotations

import contextlib
import gzip
import itertools
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson


@contextlib.contextmanager
def open_jsonl_for_writing(out: Path | None) -> Iterator[IO[bytes]]:
    """A binary writer (stdout when ``out`` is None); gzip when the name ends in .gz, with no
    name or time in its header so that the same events make the same bytes."""
    if out is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with out.open("wb") as raw:
        if not out.name.endswith(".gz"):
            yield raw
            return
        with gzip.GzipFile(filename="", mode="wb", compresslevel=1, fileobj=raw,
                           mtime=0) as compressed:
            yield compressed  # type: ignore[misc]  # a GzipFile is a binary writer (IO[bytes])


def write_events(sink: IO[bytes], events: Iterable[dict[str, Any]]) -> int:
    """One batch of events as JSON Lines, in one write; returns how many."""
    lines = [orjson.dumps(event) for event in events]
    if lines:
        sink.write(b"\n".join(lines) + b"\n")
    return len(lines)


def write_jsonl(out: Path | None, events: Iterable[dict[str, Any]],
                batch_size: int = 1_000) -> int:
    """Stream events to ``out`` as JSON Lines in constant memory; returns how many."""
    iterator = iter(events)
    with open_jsonl_for_writing(out) as sink:
        written = 0
        while batch := list(itertools.islice(iterator, batch_size)):
            written += write_events(sink, batch)
        return written
