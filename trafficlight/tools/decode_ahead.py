"""A replay file decoded one chunk ahead of the judge, in a child process.

On dense input replay spends about as long decoding JSON as judging it, each on one core, and
neither releases the GIL for long: a forked child that runs `read_jsonl` and hands each chunk's
columns through a pipe lets both run at once (1.6x on a million events, `bench/replay_file.py`).
The pipe holds about one chunk, so the child stays one chunk ahead and memory stays flat.

Only where forking is safe and pays: a platform with `fork`, no other Python thread alive to
hold a lock the child would inherit (a progress bar's monitor, a client's I/O thread), and a
file big enough to have chunks to overlap. Otherwise the file is decoded inline; either way the
chunks are exactly `read_jsonl`'s, without their decoded records (replay reads the columns).
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Generator
from multiprocessing.connection import Connection
from pathlib import Path

from trafficlight.base.errors import TrafficlightError
from trafficlight.streams.events import Decoded, read_jsonl

#: Smaller files are decoded inline: two chunks of typical events, nothing worth overlapping.
MIN_BYTES = 8 << 20


def _forkable() -> bool:
    return ("fork" in multiprocessing.get_all_start_methods()
            and threading.active_count() == 1)


def decoded_ahead(path: Path, chunk_lines: int = 20_000,
                  min_bytes: int = MIN_BYTES) -> Generator[Decoded, None, None]:
    """`read_jsonl(path)`'s chunks (records dropped), decoded in a child process when that is
    safe and the file has at least ``min_bytes``. The child starts at once (before the caller
    starts threads of its own, such as a progress bar's); an error it meets is raised here."""
    if path.stat().st_size < min_bytes or not _forkable():
        return _inline(path, chunk_lines)
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_decode_into, args=(path, chunk_lines, sender),
                            name="trafficlight-decode", daemon=True)
    child.start()
    sender.close()
    return _received(path, receiver, child)


def _inline(path: Path, chunk_lines: int) -> Generator[Decoded, None, None]:
    for decoded in read_jsonl(path, chunk_lines=chunk_lines):
        decoded.events.records = []
        yield decoded


def _decode_into(path: Path, chunk_lines: int, sender: Connection) -> None:
    """The child: every chunk, then None; or the exception that stopped it. A terminal's
    Ctrl-C is the parent's to handle: it stops the child."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for decoded in _inline(path, chunk_lines):
            sender.send(decoded)
        sender.send(None)
    except Exception as exc:  # handed to the parent, which raises it
        sender.send(exc)
    finally:
        sender.close()


def _received(path: Path, receiver: Connection, child: multiprocessing.process.BaseProcess
              ) -> Generator[Decoded, None, None]:
    try:
        while (item := _next(path, receiver, child)) is not None:
            yield item
    finally:
        receiver.close()
        if child.is_alive():
            child.terminate()  # the caller stopped early (--strict, Ctrl-C)
        child.join()


def _next(path: Path, receiver: Connection, child: multiprocessing.process.BaseProcess
          ) -> Decoded | None:
    try:
        item = receiver.recv()
    except EOFError:
        child.join()
        raise TrafficlightError(f"{path}: the process decoding it stopped "
                                f"(exit code {child.exitcode})") from None
    if isinstance(item, BaseException):
        raise item
    assert item is None or isinstance(item, Decoded)
    return item
