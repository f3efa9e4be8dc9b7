"""``webhook_routing_logs`` between two instants as a replayable JSONL file.

Rows stream through a server-side cursor inside one read-only transaction (this also works
behind a transaction pooler), a batch at a time, so a day of any size takes constant memory.
Rows are written in ``created_at, id`` order with SPEC routing-event fields; a row stored
without ``router_id`` or ``config_version`` (not written by a router) gets
``PROVENANCE_DEFAULTS`` (``"unknown"``, ``0``): what replay assumes for a file's event
without them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from trafficlight.base.db import connect
from trafficlight.streams.events import PROVENANCE_DEFAULTS
from trafficlight.tools.jsonl import open_jsonl_for_writing, write_events

_EXPORT_SQL = """
    SELECT event_id,
           extract(epoch FROM created_at)::float8 AS ts,
           domain, routed_to, response_time_ms, status, http_status, error_message,
           coalesce(router_id, $3) AS router_id,
           coalesce(config_version, $4) AS config_version
    FROM webhook_routing_logs
    WHERE created_at >= $1 AND created_at < $2
    ORDER BY created_at, id
"""


async def export_logs(database_url: str, since: datetime, until: datetime, out: Path | None,
                      batch_size: int = 5_000) -> int:
    """Write the logs with ``since <= created_at < until`` to ``out`` (stdout when None)."""
    conn = await connect(database_url)
    written = 0
    try:
        async with conn.transaction(readonly=True):
            cursor = await conn.cursor(_EXPORT_SQL, since, until,
                                       PROVENANCE_DEFAULTS["router_id"],
                                       PROVENANCE_DEFAULTS["config_version"])
            with open_jsonl_for_writing(out) as sink:
                while rows := await cursor.fetch(batch_size):
                    written += write_events(sink, (dict(row) for row in rows))
    finally:
        await conn.close()
    return written
