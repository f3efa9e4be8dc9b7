"""Routing events (SPEC "Routing event"): decoding Kafka records and JSONL files, never raising.

A record value is a JSON array of events (the router batches them) or one JSON object. Decoded
events come back columnar, as an `EventBatch` in stream order, because the judge ingests them
with numpy; each malformed event becomes a `Rejected` with a one-line reason.

Validation: every SPEC field present with its type (`http_status`, `error_message` and the
optional replay `label` may be absent or null), `routed_to` in unified|legacy, `status` in
success|error, `response_time_ms` finite and >= 0, `ts` a plausible epoch-seconds value
(2000..2100: catches milliseconds sent as seconds) and, when a reference time `now_s` is given
(the worker passes its clock), at most `TimeBounds.max_future_s` ahead and `max_past_s` behind.

Speed: decoding is validating. A record is decoded and validated in one msgspec call into
`EventStruct`s; a file (replay) a whole chunk of lines at a time. Only a record or chunk that
fails that is parsed again with orjson and checked column by column (one `set(map(type, ...))`
per field; extra fields are allowed there), and only one that fails that too is walked event
by event to say which events are bad and why.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import msgspec
import numpy as np
import orjson


class Target(StrEnum):
    """Where a router sent a webhook (SPEC `routed_to`): the one declaration of the targets."""

    UNIFIED = "unified"
    LEGACY = "legacy"


class Status(StrEnum):
    """How the handler answered (SPEC `status`)."""

    SUCCESS = "success"
    ERROR = "error"


#: Targets in judging order (unified first), and the statuses, as plain tuples for validation.
ROUTED_TO: tuple[Target, ...] = tuple(Target)
STATUSES: tuple[Status, ...] = tuple(Status)

#: Epoch seconds outside [2000-01-01, 2100-01-01) are not event times (likely milliseconds).
MIN_PLAUSIBLE_TS_S = 946_684_800.0
MAX_PLAUSIBLE_TS_S = 4_102_444_800.0

_NUMBER = (int, float)

#: Integers orjson surely decodes as int (wider ones become floats: `validate_event` rejects them).
_JSON_INT = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_NON_EMPTY = Annotated[str, msgspec.Meta(min_length=1)]


class RoutingEvent(NamedTuple):
    """One webhook routed by a router; `label` names a scenario incident (replay files only)."""

    event_id: str
    ts: float
    domain: str
    routed_to: str
    response_time_ms: float
    status: str
    http_status: int | None
    error_message: str | None
    router_id: str
    config_version: int
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The SPEC JSON object; `label` only when set (the router's events never set it)."""
        if self.label is None:
            return dict(zip(_SPEC_FIELDS, self, strict=False))  # stops before `label`
        return self._asdict()


#: `RoutingEvent`'s fields without `label`: the SPEC event object's keys, in order.
_SPEC_FIELDS = RoutingEvent._fields[:-1]


class EventStruct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """`validate_event`'s rules as msgspec types, for the fast paths: decoding is validating.

    It accepts a subset of what `validate_event` accepts (anything else takes the slow path,
    which says why), minus the `now_s` bounds, checked on the columns. It must stay flat
    (scalars only) and closed (no unknown fields): `_decode_chunk` relies on that to prove a
    chunk decoded in one call holds exactly one event per line. Fields in `RoutingEvent` order.
    """

    event_id: _NON_EMPTY
    ts: Annotated[float, msgspec.Meta(ge=MIN_PLAUSIBLE_TS_S, lt=MAX_PLAUSIBLE_TS_S)]
    domain: _NON_EMPTY
    routed_to: Literal["unified", "legacy"]  # Target's values: a Literal keeps decoding to str
    response_time_ms: Annotated[float, msgspec.Meta(ge=0)]  # JSON has no NaN; 1e400 is refused
    status: Literal["success", "error"]
    http_status: _JSON_INT | None = None
    error_message: str | None = None
    router_id: _NON_EMPTY
    config_version: _JSON_INT
    label: str | None = None


_FILE_EVENTS = msgspec.json.Decoder(EventStruct)
_RECORD_EVENTS = msgspec.json.Decoder(list[EventStruct] | EventStruct)


@dataclass(frozen=True, slots=True)
class Rejected:
    """An event (or record, or line) that was not accepted, with why and where."""

    reason: str
    raw: Any
    line: int | None = None

    def describe(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.reason}"


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """How far an event's `ts` may be from the reference clock; the far future poisons windows."""

    max_future_s: float = 300.0
    max_past_s: float = 7 * 86_400.0


def _version(config_version: int) -> int:
    """A config version as an int64 column value (JSON ints are unbounded)."""
    return max(min(config_version, 2**62), -(2**62))


def _versions(values: Iterable[int]) -> np.ndarray:
    """Config versions as an int64 column; out-of-range ones clamped (rare: one pass)."""
    listed = list(values)
    try:
        return np.array(listed, np.int64)
    except OverflowError:
        return np.array([_version(v) for v in listed], np.int64)


@dataclass(slots=True)
class EventBatch:
    """Valid events in stream order, as columns.

    `records` keeps the events as decoded: `EventStruct`s from the fast paths, dicts from the
    others; `events()` gives rows of either.
    """

    ts_s: np.ndarray
    domain: list[str]
    routed_to: list[str]
    response_time_ms: np.ndarray
    is_error: np.ndarray
    label: list[str | None]
    records: list[Any] = field(default_factory=list)
    #: Each event's `config_version` (the router's config step); zeros if not known.
    config_version: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        if len(self.config_version) != len(self.domain):
            self.config_version = np.zeros(len(self.domain), np.int64)

    def __len__(self) -> int:
        return len(self.domain)

    @classmethod
    def empty(cls) -> EventBatch:
        return cls(np.empty(0), [], [], np.empty(0), np.empty(0, dtype=bool), [], [])

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> EventBatch:
        """Columns from records already known valid (see `validate_event`)."""
        return cls(
            ts_s=np.fromiter((r["ts"] for r in records), np.float64, len(records)),
            domain=[r["domain"] for r in records],
            routed_to=[r["routed_to"] for r in records],
            response_time_ms=np.fromiter(
                (r["response_time_ms"] for r in records), np.float64, len(records)
            ),
            is_error=np.fromiter((r["status"] == "error" for r in records), bool, len(records)),
            label=[r.get("label") for r in records],
            records=records,
            config_version=_versions(r.get("config_version", 0) for r in records),
        )

    @classmethod
    def from_events(cls, events: Iterable[RoutingEvent]) -> EventBatch:
        return cls.from_records([e.to_dict() for e in events])

    @classmethod
    def concat(cls, batches: Sequence[EventBatch]) -> EventBatch:
        if not batches:
            return cls.empty()
        return cls(
            ts_s=np.concatenate([b.ts_s for b in batches]),
            domain=[d for b in batches for d in b.domain],
            routed_to=[t for b in batches for t in b.routed_to],
            response_time_ms=np.concatenate([b.response_time_ms for b in batches]),
            is_error=np.concatenate([b.is_error for b in batches]),
            label=[x for b in batches for x in b.label],
            records=[r for b in batches for r in b.records],
            config_version=np.concatenate([b.config_version for b in batches]),
        )

    def take(self, index: np.ndarray) -> EventBatch:
        """The events at `index` (an int array), in that order."""
        idx = index.tolist()
        return EventBatch(
            ts_s=self.ts_s[index],
            domain=[self.domain[i] for i in idx],
            routed_to=[self.routed_to[i] for i in idx],
            response_time_ms=self.response_time_ms[index],
            is_error=self.is_error[index],
            label=[self.label[i] for i in idx],
            records=[self.records[i] for i in idx] if self.records else [],
            config_version=self.config_version[index],
        )

    def events(self) -> list[RoutingEvent]:
        """Row objects, for code that wants them (sinks, tests); slower than the columns."""
        return [_event_from_record(r) for r in self.records]


@dataclass(slots=True)
class Decoded:
    """What one record, chunk or line range decoded to."""

    events: EventBatch
    rejects: list[Rejected]
    #: Events of a file that lacked a provenance field (`PROVENANCE_DEFAULTS`), judged anyway.
    defaulted: int = 0


#: A replay file's events may omit the router's provenance fields: the judge reads none of
#: them, so a file written by hand or by another tool loses nothing for it (the worker's
#: records, from the router, must carry them). The line number stands in for `event_id`;
#: `trafficlight export` writes the same values for log rows no router wrote.
PROVENANCE_DEFAULTS: dict[str, Any] = {"router_id": "unknown", "config_version": 0}
_PROVENANCE_FIELDS = frozenset({"event_id", *PROVENANCE_DEFAULTS})


def _event_from_record(r: Mapping[str, Any] | EventStruct) -> RoutingEvent:
    if isinstance(r, EventStruct):
        return RoutingEvent(*msgspec.structs.astuple(r))
    return RoutingEvent(
        r["event_id"], float(r["ts"]), r["domain"], r["routed_to"],
        float(r["response_time_ms"]), r["status"], r.get("http_status"),
        r.get("error_message"), r["router_id"], r["config_version"], r.get("label"),
    )


def _is_number(x: object) -> bool:
    return type(x) in _NUMBER and math.isfinite(x)  # type: ignore[arg-type]


def validate_event(
    obj: object, *, now_s: float | None = None, bounds: TimeBounds = TimeBounds()
) -> str | None:
    """Why `obj` is not a valid routing event, or None when it is."""
    if not isinstance(obj, dict):
        return f"event is a JSON {type(obj).__name__}, not an object"
    for name in ("event_id", "domain", "router_id"):
        value = obj.get(name)
        if type(value) is not str or not value:
            return f"{name} must be a non-empty string, got {value!r:.40}"
    ts = obj.get("ts")
    if not _is_number(ts):
        return f"ts must be a finite number of epoch seconds, got {ts!r:.40}"
    if not MIN_PLAUSIBLE_TS_S <= ts < MAX_PLAUSIBLE_TS_S:  # type: ignore[operator]
        return f"ts {ts} is not epoch seconds between 2000 and 2100"
    if now_s is not None:
        if ts > now_s + bounds.max_future_s:  # type: ignore[operator]
            return f"ts {ts} is {ts - now_s:.0f} s in the future"  # type: ignore[operator]
        if ts < now_s - bounds.max_past_s:  # type: ignore[operator]
            return f"ts {ts} is {now_s - ts:.0f} s in the past"  # type: ignore[operator]
    if obj.get("routed_to") not in ROUTED_TO:
        return f"routed_to must be unified or legacy, got {obj.get('routed_to')!r:.40}"
    latency = obj.get("response_time_ms")
    if not _is_number(latency) or latency < 0:  # type: ignore[operator]
        return f"response_time_ms must be a finite number >= 0, got {latency!r:.40}"
    if obj.get("status") not in STATUSES:
        return f"status must be success or error, got {obj.get('status')!r:.40}"
    if type(obj.get("http_status")) not in (int, type(None)):
        return f"http_status must be an integer or null, got {obj.get('http_status')!r:.40}"
    for name in ("error_message", "label"):
        if type(obj.get(name)) not in (str, type(None)):
            return f"{name} must be a string or null, got {obj.get(name)!r:.40}"
    if type(obj.get("config_version")) is not int:
        return f"config_version must be an integer, got {obj.get('config_version')!r:.40}"
    return None


def _columns_fast(
    objs: list[Any], now_s: float | None, bounds: TimeBounds
) -> EventBatch | None:
    """Columns when every event in `objs` is valid, else None (the caller walks them)."""
    try:
        ts = [o["ts"] for o in objs]
        latency = [o["response_time_ms"] for o in objs]
        domain = [o["domain"] for o in objs]
        routed_to = [o["routed_to"] for o in objs]
        status = [o["status"] for o in objs]
        checks = (
            set(map(type, ts)) <= {int, float}
            and set(map(type, latency)) <= {int, float}
            and set(map(type, domain)) <= {str}
            and set(routed_to) <= set(ROUTED_TO)
            and set(status) <= set(STATUSES)
            and set(map(type, [o["event_id"] for o in objs])) <= {str}
            and set(map(type, [o["router_id"] for o in objs])) <= {str}
            and set(map(type, [o["config_version"] for o in objs])) <= {int}
            and set(map(type, [o.get("http_status") for o in objs])) <= {int, type(None)}
            and set(map(type, [o.get("error_message") for o in objs])) <= {str, type(None)}
            and "" not in set(domain)
        )
        labels = [o.get("label") for o in objs]
    except (KeyError, TypeError, AttributeError):
        return None
    if not checks or not set(map(type, labels)) <= {str, type(None)}:
        return None
    ts_s = np.array(ts, dtype=np.float64)
    latency_ms = np.array(latency, dtype=np.float64)
    lo, hi = MIN_PLAUSIBLE_TS_S, MAX_PLAUSIBLE_TS_S
    if now_s is not None:
        lo, hi = max(lo, now_s - bounds.max_past_s), min(hi, now_s + bounds.max_future_s)
    if len(objs) and not (
        ts_s.min() >= lo and ts_s.max() <= hi
        and np.isfinite(latency_ms).all() and latency_ms.min() >= 0
        and all(o["event_id"] and o["router_id"] for o in objs)
    ):
        return None
    is_error = np.fromiter((s == "error" for s in status), bool, len(status))
    versions = _versions(o["config_version"] for o in objs)
    return EventBatch(ts_s, domain, routed_to, latency_ms, is_error, labels, objs, versions)


def decode_events(
    objs: list[Any],
    *,
    now_s: float | None = None,
    bounds: TimeBounds = TimeBounds(),
    lines: Sequence[int] | None = None,
) -> Decoded:
    """Validate already-parsed JSON values; `lines` (same length) numbers them for reports."""
    fast = _columns_fast(objs, now_s, bounds)
    if fast is not None:
        return Decoded(fast, [])
    good: list[dict[str, Any]] = []
    rejects: list[Rejected] = []
    for i, obj in enumerate(objs):
        reason = validate_event(obj, now_s=now_s, bounds=bounds)
        if reason is None:
            good.append(obj)
        else:
            rejects.append(Rejected(reason, obj, lines[i] if lines is not None else None))
    return Decoded(EventBatch.from_records(good), rejects)


def decode_record(
    value: bytes | None, *, now_s: float | None = None, bounds: TimeBounds = TimeBounds()
) -> Decoded:
    """One Kafka record value: a JSON array of events or one event object. Never raises."""
    if value is not None:
        try:
            structs = _RECORD_EVENTS.decode(value)
        except msgspec.MsgspecError:
            pass  # the slow path says what is wrong
        else:
            listed = structs if isinstance(structs, list) else [structs]
            fast = _struct_columns(listed, now_s, bounds)
            if fast is not None:
                return Decoded(fast, [])
    try:
        parsed = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError as exc:
        return Decoded(EventBatch.empty(), [Rejected(f"bad JSON: {exc}", value)])
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list):
        kind = "empty record" if value is None else f"a JSON {type(parsed).__name__}"
        return Decoded(EventBatch.empty(), [Rejected(f"record is {kind}, not events", value)])
    return decode_events(parsed, now_s=now_s, bounds=bounds)


def encode_events(events: Iterable[RoutingEvent | Mapping[str, Any]]) -> bytes:
    """A record value (JSON array) for the router and tests."""
    return orjson.dumps([e.to_dict() if isinstance(e, RoutingEvent) else e for e in events])


#: Bytes read from a file at a time; chunks are cut from them at line ends.
_READ_BYTES = 1 << 22
_NEWLINE, _OPEN_BRACE, _CLOSE_BRACE = b"\n"[0], b"{"[0], b"}"[0]


def _line_chunks(path: Path, chunk_lines: int) -> Iterator[tuple[bytes, np.ndarray]]:
    """The file as chunks of whole lines, at most `chunk_lines` each, with the offsets of their
    newlines (found once per byte: the file is read in big blocks, scanned with numpy)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        rest, rest_ends = b"", np.empty(0, np.int64)
        while block := fh.read(_READ_BYTES):
            buf = rest + block
            found = np.flatnonzero(np.frombuffer(block, np.uint8) == _NEWLINE) + len(rest)
            ends = np.concatenate((rest_ends, found))
            start = 0
            for stop in range(chunk_lines, len(ends) + 1, chunk_lines):
                chunk_ends = ends[stop - chunk_lines:stop]
                yield buf[start:int(chunk_ends[-1]) + 1], chunk_ends - start
                start = int(chunk_ends[-1]) + 1
            rest, rest_ends = buf[start:], ends[len(ends) - len(ends) % chunk_lines:] - start
        if rest:
            yield rest, rest_ends


def read_jsonl(
    path: str | Path, *, chunk_lines: int = 20_000, now_s: float | None = None
) -> Iterator[Decoded]:
    """Stream a `.jsonl` / `.jsonl.gz` file as decoded chunks; memory stays flat.

    Rejects carry 1-based line numbers; blank lines are skipped. Events may omit `event_id`,
    `router_id` and `config_version` (`PROVENANCE_DEFAULTS`; `Decoded.defaulted` counts them).
    """
    first_line = 1
    for chunk, newlines in _line_chunks(Path(path), chunk_lines):
        decoded, lines = _decode_chunk(chunk, newlines, first_line, now_s)
        first_line += lines
        yield decoded


def _decode_chunk(chunk: bytes, newlines: np.ndarray, first_line: int,
                  now_s: float | None) -> tuple[Decoded, int]:
    """One chunk of whole lines (`newlines`: their offsets) decoded, and how many lines it had.

    Fast path: one `decode_lines` call. It is lax (values may span lines or share one), so its
    result counts only when every line starts with `{` and ends with `}` and there are as many
    events as lines. Then each line is exactly one event: strings cannot cross a raw newline,
    and a `EventStruct` is flat, so the `}` ending a line closes the event its `{` opened; no
    event spans lines, none is missing, so none shares a line. Otherwise, line by line.
    """
    data = np.frombuffer(chunk, np.uint8)
    ends = newlines
    if not len(ends) or ends[-1] != len(chunk) - 1:
        ends = np.append(ends, len(chunk))
    starts = np.concatenate(([0], ends[:-1] + 1))
    if (data[starts] == _OPEN_BRACE).all() and (data[ends - 1] == _CLOSE_BRACE).all():
        fast = _file_columns(chunk, len(ends), now_s)
        if fast is not None:
            return Decoded(fast, []), len(ends)
    lines = chunk.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return _decode_lines(lines, first_line, now_s), len(ends)


def _file_columns(chunk: bytes, lines: int, now_s: float | None) -> EventBatch | None:
    """The chunk's events as columns when all are valid (and one per line), else None."""
    try:
        events = _FILE_EVENTS.decode_lines(chunk)
    except msgspec.MsgspecError:
        return None
    if len(events) != lines:
        return None
    return _struct_columns(events, now_s, TimeBounds())


def _struct_columns(events: list[EventStruct], now_s: float | None,
                    bounds: TimeBounds) -> EventBatch | None:
    """Columns of decoded structs, or None when one is outside the `now_s` bounds."""
    count = len(events)
    ts_s = np.fromiter(map(attrgetter("ts"), events), np.float64, count)
    if now_s is not None and count and not (
        ts_s.min() >= now_s - bounds.max_past_s and ts_s.max() <= now_s + bounds.max_future_s
    ):
        return None
    return EventBatch(
        ts_s=ts_s,
        domain=list(map(attrgetter("domain"), events)),
        routed_to=list(map(attrgetter("routed_to"), events)),
        response_time_ms=np.fromiter(
            map(attrgetter("response_time_ms"), events), np.float64, count),
        is_error=np.fromiter(map("error".__eq__, map(attrgetter("status"), events)), bool, count),
        label=list(map(attrgetter("label"), events)),
        records=events,
        config_version=_versions(map(attrgetter("config_version"), events)),
    )


def _decode_lines(lines: list[bytes], first_line: int, now_s: float | None) -> Decoded:
    """Each line on its own: bad JSON and invalid events are rejects with their line number;
    missing provenance fields are filled in (`PROVENANCE_DEFAULTS`) and counted."""
    parsed: list[Any] = []
    numbers: list[int] = []
    rejects: list[Rejected] = []
    defaulted = 0
    for n, ln in enumerate(lines, start=first_line):
        if not ln.strip():
            continue
        try:
            obj = orjson.loads(ln)
        except orjson.JSONDecodeError as exc:
            rejects.append(Rejected(f"bad JSON: {exc}", ln, n))
            continue
        if isinstance(obj, dict) and not obj.keys() >= _PROVENANCE_FIELDS:
            obj = {"event_id": f"line-{n}", **PROVENANCE_DEFAULTS, **obj}
            defaulted += 1
        parsed.append(obj)
        numbers.append(n)
    decoded = decode_events(parsed, now_s=now_s, lines=numbers)
    decoded.rejects = sorted(rejects + decoded.rejects, key=lambda r: r.line or 0)
    decoded.defaulted = defaulted
    return decoded
