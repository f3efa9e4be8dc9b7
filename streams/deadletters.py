"""Dead letters: a rejected event (or record) with its reason and where it came from.

The dead-letter topic keeps everything the worker could not judge, so nothing is lost: the
original value (parsed JSON when it parsed, else the raw text) and the source position.
"""

from __future__ import annotations

from typing import Any

import orjson

from trafficlight.streams.events import Rejected


def dead_letter_topic(events_topic: str) -> str:
    return f"{events_topic}-dlq"


def dead_letter(reject: Rejected, *, topic: str, partition: int, offset: int,
                worker_id: str) -> bytes:
    """The dead-letter record value (JSON): reason, original value, source position."""
    letter: dict[str, Any] = {
        "reason": reject.reason,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "worker_id": worker_id,
    }
    if isinstance(reject.raw, bytes | bytearray):
        letter["raw_text"] = bytes(reject.raw).decode("utf-8", errors="backslashreplace")
    else:
        letter["raw"] = reject.raw
    return orjson.dumps(letter, option=orjson.OPT_NON_STR_KEYS)
