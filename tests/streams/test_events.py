from __future__ import annotations

import gzip
import json
from pathlib import Path
from unittest import mock

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trafficlight.streams.events as events_module
from tests.streams.helpers import T0, records
from trafficlight.streams.events import (
    RoutingEvent,
    decode_record,
    encode_events,
    read_jsonl,
    validate_event,
)

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


def _jsonl(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_events_read_from_a_file_convert_to_routing_events(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, [orjson.dumps(GOOD)])
    assert [e for c in read_jsonl(path) for e in c.events.events()] == [RoutingEvent(**GOOD)]


def test_a_file_event_may_omit_its_provenance_fields(tmp_path: Path) -> None:
    bare = {k: v for k, v in GOOD.items() if k not in ("event_id", "router_id", "config_version")}
    [chunk] = read_jsonl(_jsonl(tmp_path, [orjson.dumps(GOOD), orjson.dumps(bare)]))
    assert chunk.rejects == [] and chunk.defaulted == 1
    assert chunk.events.events()[1] == RoutingEvent(
        **{**GOOD, "event_id": "line-2", "router_id": "unknown", "config_version": 0})


def test_a_file_event_with_a_wrong_provenance_type_is_still_rejected(tmp_path: Path) -> None:
    [chunk] = read_jsonl(_jsonl(tmp_path, [orjson.dumps({**GOOD, "config_version": "3"})]))
    assert "config_version must be an integer" in chunk.rejects[0].reason


@pytest.mark.parametrize("comma", ["first line", "second line", "dropped"])
@pytest.mark.parametrize("between", [b",", b" ", b""])
def test_lines_that_parse_together_but_not_alone_are_each_reported(
        tmp_path: Path, comma: str, between: bytes) -> None:
    # One event split over lines 2-3 and two events on line 4: the chunk may parse in one call
    # with as many events as lines, yet lines 2, 3 and 4 are corrupt.
    event = orjson.dumps(GOOD)
    at = event.index(b',"domain"')
    first, second = {"first line": (event[:at + 1], event[at + 1:]),
                     "second line": (event[:at], event[at:]),
                     "dropped": (event[:at], event[at + 1:])}[comma]
    lines = [event, first, second, event + between + event, event]
    decoded = list(read_jsonl(_jsonl(tmp_path, lines)))
    assert sum(len(c.events) for c in decoded) == 2
    assert [r.line for c in decoded for r in c.rejects] == [2, 3, 4]


def _reference(lines: list[bytes]) -> tuple[list[RoutingEvent], list[int]]:
    """Each line decoded and validated on its own: what `read_jsonl` must agree with."""
    events, bad_lines = [], []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad_lines.append(n)
            continue
        if isinstance(obj, dict):  # a file's event may omit its provenance fields
            obj = {"event_id": f"line-{n}", "router_id": "unknown", "config_version": 0, **obj}
        if validate_event(obj) is None:
            events.append(decode_record(orjson.dumps(obj)).events.events()[0])
        else:
            bad_lines.append(n)
    return events, bad_lines


_ODD_VALUES = st.sampled_from(
    [None, True, 0, -1, 2**63 + 5, 2**64, 1.5, "", "x", "unified", "error", [], {}])
_FIELDS = sorted({*GOOD, "label", "extra"})


@st.composite
def _lines(draw: st.DrawFn) -> list[bytes]:
    """Valid lines mixed with odd values, missing and unknown fields, and broken framing."""
    out: list[bytes] = []
    for i in range(draw(st.integers(1, 12))):
        event = {**GOOD, "event_id": f"e{i}", "ts": T0 + i}
        kind = draw(st.sampled_from(["good", "good", "value", "missing", "frame"]))
        if kind == "value":
            event[draw(st.sampled_from(_FIELDS))] = draw(_ODD_VALUES)
        if kind == "missing":
            del event[draw(st.sampled_from(sorted(GOOD)))]
        line = json.dumps(event, separators=(",", ":")).encode()  # orjson refuses 2**64
        if kind == "frame":
            cut = draw(st.integers(0, len(line)))
            line = draw(st.sampled_from([
                line[:cut], line[:cut] + b"\n" + line[cut:], line + b"," + line,
                line + b" " + line, b" " + line, line + b"\r", b"", b"[" + line + b"]"]))
        out.extend(line.split(b"\n"))
    return out


@given(lines=_lines(), chunk_lines=st.integers(1, 5), read_bytes=st.integers(1, 400))
@settings(max_examples=300, deadline=None)
def test_reading_a_file_agrees_with_decoding_each_line_alone(
        tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], chunk_lines: int,
        read_bytes: int) -> None:
    path = tmp_path_factory.mktemp("jsonl") / "events.jsonl"
    path.write_bytes(b"\n".join(lines))
    with mock.patch.object(events_module, "_READ_BYTES", read_bytes):  # blocks cut lines
        chunks = list(read_jsonl(path, chunk_lines=chunk_lines))
    got = ([e for c in chunks for e in c.events.events()],
           [r.line for c in chunks for r in c.rejects])
    assert got == _reference(lines)
