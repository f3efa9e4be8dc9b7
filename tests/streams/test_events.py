from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from streams.events import (
    RoutingEvent,
    decode_record,
    encode_events,
    read_jsonl,
    validate_event,
)
from tests.streams.helpers import T0, records

GOOD = records(T0, 1, 3)[0]


def test_a_json_array_record_decodes_to_events_in_order() -> None:
    decoded = decode_record(encode_events(records(T0, 1, 5)))
    assert len(decoded.events) == 5 and decoded.rejects == []
    assert list(decoded.events.ts_s) == sorted(decoded.events.ts_s)


def test_a_single_object_record_is_accepted() -> None:
    decoded = decode_record(orjson.dumps(GOOD))
    assert decoded.events.events()[0] == RoutingEvent(**GOOD)


@pytest.mark.parametrize(("change", "reason"), [
    ({"ts": "1800000000"}, "ts must be a finite number"),
    ({"ts": 1_800_000_000_000}, "not epoch seconds"),
    ({"routed_to": "canary"}, "routed_to must be unified or legacy"),
    ({"status": "ok"}, "status must be success or error"),
    ({"response_time_ms": -1}, "response_time_ms must be a finite number >= 0"),
    ({"http_status": "200"}, "http_status must be an integer or null"),
    ({"config_version": True}, "config_version must be an integer"),
    ({"domain": ""}, "domain must be a non-empty string"),
])
def test_a_malformed_event_is_rejected_with_its_reason_and_the_rest_kept(
        change: dict, reason: str) -> None:
    decoded = decode_record(encode_events([GOOD, {**GOOD, **change}]))
    assert len(decoded.events) == 1
    assert len(decoded.rejects) == 1 and reason in decoded.rejects[0].reason


def test_a_missing_field_is_rejected() -> None:
    event = {k: v for k, v in GOOD.items() if k != "router_id"}
    assert "router_id" in decode_record(encode_events([event])).rejects[0].reason


def test_non_finite_latency_is_rejected() -> None:
    assert validate_event({**GOOD, "response_time_ms": float("inf")}).startswith(
        "response_time_ms")


def test_bad_json_is_one_reject_not_an_exception() -> None:
    decoded = decode_record(b"[{not json")
    assert len(decoded.events) == 0 and decoded.rejects[0].reason.startswith("bad JSON")


def test_timestamps_far_from_the_reference_clock_are_rejected() -> None:
    future, past = {**GOOD, "ts": T0 + 3600}, {**GOOD, "ts": T0 - 30 * 86_400}
    decoded = decode_record(encode_events([GOOD, future, past]), now_s=T0)
    assert len(decoded.events) == 1
    assert [r.reason.split()[-2:] for r in decoded.rejects] == [["the", "future"],
                                                                ["the", "past"]]


def test_jsonl_gz_corrupt_lines_are_reported_with_their_line_numbers(tmp_path: Path) -> None:
    lines = [orjson.dumps(e) for e in records(T0, 1, 4)]
    lines.insert(2, b'{"event_id": "truncated", "ts": 18')
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    chunks = list(read_jsonl(path, chunk_lines=3))
    assert sum(len(c.events) for c in chunks) == 4
    assert [r.line for c in chunks for r in c.rejects] == [3]
