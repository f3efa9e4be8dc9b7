"""The sticky key: X-Routing-Key, else the WhatsApp sender, else random."""

from __future__ import annotations

import orjson
import pytest
from multidict import CIMultiDict

from trafficlight.router.sticky_key import NOT_JSON, parse_body, sticky_key


def whatsapp(value: dict[str, object]) -> bytes:
    change = {"field": "messages", "value": value}
    return orjson.dumps({"object": "whatsapp_business_account",
                         "entry": [{"id": "1", "changes": [change]}]})


def key_of(body: bytes, headers: dict[str, str] | None = None) -> tuple[str, str]:
    return sticky_key(CIMultiDict(headers or {}), parse_body(body))


def test_the_routing_key_header_wins_over_the_body() -> None:
    body = whatsapp({"messages": [{"from": "4915550001"}]})
    assert key_of(body, {"x-routing-key": "user-42"}) == ("user-42", "header")


def test_a_message_sender_is_the_key() -> None:
    body = whatsapp({"messages": [{"from": "4915550001", "type": "text"}]})
    assert key_of(body) == ("4915550001", "whatsapp")


def test_a_status_update_uses_the_contact_wa_id() -> None:
    body = whatsapp({"contacts": [{"wa_id": "4915550002"}], "statuses": [{"id": "x"}]})
    assert key_of(body) == ("4915550002", "whatsapp")


@pytest.mark.parametrize("body", [
    b"",
    b"not json at all",
    b"{broken",
    b"[1, 2, 3]",
    orjson.dumps({"entry": "not a list"}),
    orjson.dumps({"entry": [{"changes": [{"value": {"messages": [{"from": 42}]}}]}]}),
    whatsapp({"messages": []}),
])
def test_a_body_without_a_sender_gets_a_random_key(body: bytes) -> None:
    first, source = key_of(body)
    second, _ = key_of(body)
    assert source == "random"
    assert first != second


def test_a_blank_routing_key_header_is_ignored() -> None:
    body = whatsapp({"messages": [{"from": "4915550001"}]})
    assert key_of(body, {"X-Routing-Key": "  "}) == ("4915550001", "whatsapp")


@pytest.mark.parametrize("body", [b"", b"not json", b"{broken", b"\xff\xfe"])
def test_a_body_that_is_not_json_is_marked_so(body: bytes) -> None:
    assert parse_body(body) is NOT_JSON
