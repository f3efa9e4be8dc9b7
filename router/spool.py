"""An append-only file of Kafka records, written when memory is full and read back in order.

Frame: ``>III`` (key length, value length, event count), then key, then value. The read
position lives in ``records.offset`` beside ``records.log``, rewritten after each delivered
chunk, so a restarted router resumes where the last one stopped (a chunk delivered but not
yet committed is sent again: delivery is at least once, consumers deduplicate by event_id).
A torn last frame (crash mid-write) is cut off on open. Appends are batched: frames collect in
memory and go to the file in one write when :meth:`Spool.flush` is called (the emitter does so
every ``batch_linger_s``), at 256 KiB, and before any read; a crash loses what was not yet
written, as it loses the memory buffer. Writes go to the OS page cache: they survive a router
crash, not a host crash.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">III")

#: Unwritten frames past this size are written at once.
_FLUSH_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record: key = the domain, value = a JSON array of ``events`` events."""

    key: bytes
    value: bytes
    events: int

    @property
    def size(self) -> int:
        return _HEADER.size + len(self.key) + len(self.value)


class Spool:
    """Records on disk, first in first out, bounded by ``max_bytes`` of unread records."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._log_path = directory / "records.log"
        self._offset_path = directory / "records.offset"
        self._writer: BinaryIO = open(self._log_path, "ab")  # noqa: SIM115 - kept open
        # Unbuffered: a buffer could hold bytes from before the file was started over.
        self._reader: BinaryIO = open(self._log_path, "rb", buffering=0)  # noqa: SIM115
        self._read_offset = self._load_offset()
        self._unread_bytes = 0
        self.events = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pending_events = 0
        self._recover()

    def _load_offset(self) -> int:
        try:
            return int(self._offset_path.read_text() or 0)
        except (OSError, ValueError):
            return 0

    def _recover(self) -> None:
        """Count what is unread and cut a torn last frame."""
        end = self._read_offset
        self._reader.seek(end)
        while (record := self._read_one()) is not None:
            end += record.size
            self.events += record.events
        self._writer.truncate(end)
        self._unread_bytes = end - self._read_offset
        if self._unread_bytes == 0:
            self._reset()

    def _read_one(self) -> Record | None:
        header = self._reader.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        key_len, value_len, events = _HEADER.unpack(header)
        body = self._reader.read(key_len + value_len)
        if len(body) < key_len + value_len:
            return None
        return Record(body[:key_len], body[key_len:], events)

    @property
    def empty(self) -> bool:
        return self._unread_bytes == 0

    @property
    def unread_bytes(self) -> int:
        return self._unread_bytes

    def append(self, record: Record) -> bool:
        """Queue one record for the next write; False when it would pass ``max_bytes``."""
        if self._unread_bytes + record.size > self.max_bytes:
            return False
        self._pending += (_HEADER.pack(len(record.key), len(record.value), record.events),
                          record.key, record.value)
        self._pending_bytes += record.size
        self._pending_events += record.events
        self._unread_bytes += record.size
        self.events += record.events
        if self._pending_bytes >= _FLUSH_BYTES:
            self.flush()
        return True

    @property
    def unwritten(self) -> bool:
        return bool(self._pending)

    def flush(self) -> int:
        """Write the queued records in one go; returns the events lost if that failed."""
        if not self._pending:
            return 0
        data, events = b"".join(self._pending), self._pending_events
        self._pending.clear()
        self._pending_bytes = self._pending_events = 0
        try:
            self._writer.write(data)
            self._writer.flush()
        except OSError as exc:  # disk full, folder removed: the caller counts them as dropped
            log.error("router event spool %s: cannot write (%s)", self._log_path, exc.strerror)
            self._unread_bytes -= len(data)
            self.events -= events
            return events
        return 0

    def peek(self, limit: int) -> list[Record]:
        """Up to ``limit`` oldest unread records, left unread until :meth:`consume`."""
        self.flush()
        self._reader.seek(self._read_offset)
        found: list[Record] = []
        while len(found) < limit and (record := self._read_one()) is not None:
            found.append(record)
        return found

    def consume(self, records: list[Record]) -> None:
        """Mark records returned by :meth:`peek` as delivered."""
        size = sum(record.size for record in records)
        self._read_offset += size
        self._unread_bytes -= size
        self.events -= sum(record.events for record in records)
        if self._unread_bytes == 0:
            self._reset()
        else:
            self._save_offset()

    def _reset(self) -> None:
        """All read: start the file over so it never grows past one outage's worth."""
        self._writer.truncate(0)
        self._read_offset = 0
        self._save_offset()

    def _save_offset(self) -> None:
        """Best effort: if it fails, a restart sends some delivered records again."""
        tmp = self._offset_path.with_suffix(".tmp")
        try:
            tmp.write_text(str(self._read_offset))
            os.replace(tmp, self._offset_path)
        except OSError as exc:
            log.warning("router event spool: cannot save the read position (%s)", exc.strerror)

    def close(self) -> int:
        """Write what is queued and close; returns the events lost if that write failed."""
        lost = self.flush()
        self._writer.close()
        self._reader.close()
        return lost

    def adopt(self, other: Spool) -> int:
        """Move ``other``'s unread records behind this spool's (a spool left by a process that
        no longer runs); returns the events moved. What does not fit stays in ``other``."""
        moved = 0
        try:
            while chunk := other.peek(64):
                taken = []
                for record in chunk:
                    if not self.append(record):
                        break
                    taken.append(record)
                # On disk here before they leave `other`: a crash between the two then
                # repeats them (at least once) instead of losing them; unwritable: they stay.
                if self.flush():
                    break
                other.consume(taken)
                moved += sum(record.events for record in taken)
                if len(taken) < len(chunk):
                    break
        finally:
            other.close()
        return moved
