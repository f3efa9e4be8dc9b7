"""The routing event as the router writes it (SPEC "Routing event"), and its one encoding.

Kept to this module so it can switch to ``streams.events`` once the judging core ships it.
"""

from __future__ import annotations

from typing import Literal, TypedDict

import orjson


class RoutingEvent(TypedDict):
    event_id: str
    ts: float
    domain: str
    routed_to: Literal["unified", "legacy"]
    response_time_ms: float
    status: Literal["success", "error"]
    http_status: int | None
    error_message: str | None
    router_id: str
    config_version: int


def encode_events(events: list[RoutingEvent]) -> bytes:
    """One Kafka record value: a JSON array of one domain's events."""
    return orjson.dumps(events)
