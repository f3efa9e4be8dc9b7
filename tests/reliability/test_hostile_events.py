"""Scenario 6, events: whatever bytes a record holds, decoding never raises and explains rejects.

A worker decodes records from a topic anyone with produce rights can write to; one bad record
must never stop it. Over arbitrary bytes, arbitrary JSON and valid events with one field
spoiled: every item becomes either a valid event or a Rejected with a one-line reason.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trafficlight.streams.events import EventBatch, decode_record, validate_event

pytestmark = pytest.mark.reliability

NOW_S = 1_795_000_000.0

json_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)

FIELDS = ("event_id", "ts", "domain", "routed_to", "response_time_ms", "status", "http_status",
          "error_message", "router_id", "config_version", "label")


def valid_event(i: int) -> dict[str, Any]:
    return {"event_id": f"e{i}", "ts": NOW_S - i, "domain": "jobs", "routed_to": "unified",
            "response_time_ms": 12.5, "status": "success", "http_status": 200,
            "error_message": None, "router_id": "r1", "config_version": 3}


@st.composite
def spoiled_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with one field removed or replaced by any JSON value."""
    event = valid_event(draw(st.integers(0, 1000)))
    name = draw(st.sampled_from(FIELDS))
    if draw(st.booleans()):
        event.pop(name, None)
    else:
        event[name] = draw(json_values)
    return event


def items_in(value: bytes) -> int:
    """How many events a record claims to hold; 1 for anything that is not a JSON array."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return 1
    return len(parsed) if isinstance(parsed, list) else 1


def assert_every_item_accounted_for(value: bytes) -> None:
    decoded = decode_record(value, now_s=NOW_S)
    assert len(decoded.events) + len(decoded.rejects) == items_in(value)
    for reject in decoded.rejects:
        assert reject.reason and "\n" not in reject.reason
        assert "\n" not in reject.describe()
    for event in decoded.events.events():
        assert validate_event(event.to_dict(), now_s=NOW_S) is None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_events_or_rejects_with_a_reason(value: bytes) -> None:
    assert_every_item_accounted_for(value)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_is_events_or_rejects_with_a_reason(value: Any) -> None:
    assert_every_item_accounted_for(orjson.dumps(value))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(spoiled_events(), st.builds(valid_event, st.integers(0, 1000))),
                max_size=8))
def test_a_batch_with_spoiled_events_keeps_its_valid_ones(batch: list[dict[str, Any]]) -> None:
    value = orjson.dumps(batch)
    assert_every_item_accounted_for(value)
    decoded = decode_record(value, now_s=NOW_S)
    expected_valid = [e for e in batch if validate_event(e, now_s=NOW_S) is None]
    assert decoded.events.events() == EventBatch.from_records(expected_valid).events()


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=40))
def test_invalid_utf8_inside_a_record_is_one_reject(junk: bytes) -> None:
    assert_every_item_accounted_for(orjson.dumps([valid_event(1)])[:-1] + b',"' + junk + b'"]')


def test_deeply_nested_json_is_a_reject_not_a_crash() -> None:
    decoded = decode_record(b"[" * 100_000 + b"]" * 100_000, now_s=NOW_S)
    assert len(decoded.events) == 0 and len(decoded.rejects) == 1
