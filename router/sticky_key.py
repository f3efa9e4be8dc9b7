"""The key that keeps one sender on one target: header, else WhatsApp sender, else random."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Literal

import orjson

ROUTING_KEY_HEADER = "X-Routing-Key"

KeySource = Literal["header", "whatsapp", "random"]


def whatsapp_sender(payload: Any) -> str | None:
    """The first ``messages[].from`` or ``contacts[].wa_id`` in ``entry[].changes[].value``."""
    if not isinstance(payload, dict):
        return None
    for entry in _dicts(payload.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            for message in _dicts(value.get("messages")):
                sender = message.get("from")
                if isinstance(sender, str) and sender:
                    return sender
            for contact in _dicts(value.get("contacts")):
                wa_id = contact.get("wa_id")
                if isinstance(wa_id, str) and wa_id:
                    return wa_id
    return None


def _dicts(items: Any) -> list[dict[str, Any]]:
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


#: What :func:`parse_body` returns for a body that is not JSON.
NOT_JSON = object()


def parse_body(body: bytes) -> Any:
    """The body as JSON, or :data:`NOT_JSON`."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return NOT_JSON


def sticky_key(headers: Mapping[str, str], payload: Any) -> tuple[str, KeySource]:
    """The key and where it came from; ``payload`` is the parsed body (or NOT_JSON)."""
    header = headers.get(ROUTING_KEY_HEADER, "").strip()
    if header:
        return header, "header"
    sender = whatsapp_sender(payload)
    if sender is not None:
        return sender, "whatsapp"
    return uuid.uuid4().hex, "random"
