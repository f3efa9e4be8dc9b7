from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.streams.helpers import T0, batch, interleave, records
from trafficlight.streams.histogram import slots_of
from trafficlight.streams.judge import _HEADER, BucketAggregate, Judge
from trafficlight.streams.verdicts import Metric, Verdict


def unified_at(verdicts: list[Verdict], second: float) -> Verdict:
    return next(v for v in verdicts
                if v.routed_to == "unified" and v.window_end == T0 + second)


def first_rollback_s(verdicts: list[Verdict], since_s: float) -> float | None:
    """Seconds of event time from `since_s` to the first unified rollback verdict."""
    return next((v.window_end - since_s for v in verdicts
                 if v.routed_to == "unified" and v.decision == "rollback"), None)


def test_a_step_to_five_percent_errors_rolls_back_within_five_seconds() -> None:
    judge = Judge()
    # 180 s of clean traffic: 100 unified + 100 legacy req/s (enough to show it healthy).
    judge.ingest(batch(interleave(records(T0, 180, 100),
                                  records(T0, 180, 100, routed_to="legacy"))))
    # From T0+180, unified fails 1 in 20 (5 %); fed 0.1 s at a time.
    bad = interleave(records(T0 + 180, 10, 100, error_every=20),
                     records(T0 + 180, 10, 100, routed_to="legacy"))
    verdicts: list[Verdict] = []
    for i in range(0, len(bad), 20):
        verdicts += judge.ingest(batch(bad[i:i + 20]))
    # T+0: evaluated before the first bad event is ingested: clean, shown healthy.
    assert (unified_at(verdicts, 180).verdict, unified_at(verdicts, 180).decision) == (
        "healthy", "proceed")
    delay = first_rollback_s(verdicts, T0 + 180)
    assert delay is not None and delay <= 5
    rollback = next(v for v in verdicts if v.decision == "rollback" and v.routed_to == "unified")
    assert (rollback.verdict, rollback.rule) == ("critical", "unified_breach")


def test_five_percent_errors_two_hours_into_a_step_rolls_back_within_five_seconds() -> None:
    judge = Judge()
    healthy = interleave(records(T0, 7200, 100), records(T0, 7200, 100, routed_to="legacy"))
    for i in range(0, len(healthy), 200_000):
        judge.ingest(batch(healthy[i:i + 200_000]))
    verdicts = judge.ingest(batch(interleave(
        records(T0 + 7200, 10, 100, error_every=20),
        records(T0 + 7200, 10, 100, routed_to="legacy"))))
    delay = first_rollback_s(verdicts, T0 + 7200)
    assert delay is not None and delay <= 5


def test_a_regression_both_targets_share_holds() -> None:
    judge = Judge()
    judge.ingest(batch(interleave(records(T0, 60, 50), records(T0, 60, 50, routed_to="legacy"))))
    outage = interleave(records(T0 + 60, 30, 50, error_every=2),
                        records(T0 + 60, 30, 50, routed_to="legacy", error_every=2))
    verdicts = judge.ingest(batch(outage))
    assert {v.verdict for v in verdicts if v.window_end > T0 + 65} == {"critical"}
    assert {v.decision for v in verdicts} <= {"proceed", "hold"}


def test_one_error_at_runbook_volume_does_not_roll_back() -> None:
    # ~50 unified requests an hour for 3 hours, one of them an error.
    events = records(T0, 3 * 3600, 50 / 3600)
    events[70]["status"] = "error"
    verdicts = Judge().ingest(batch(events))
    assert {v.decision for v in verdicts} == {"hold"}
    assert "rollback" not in {v.decision for v in verdicts}


def test_late_events_beyond_grace_are_counted_not_added() -> None:
    judge = Judge()
    judge.ingest(batch(records(T0, 60, 10)))
    judge.ingest(batch(records(T0 + 20, 1, 5)))    # bucket [T0+20, T0+30) closed long ago
    judge.ingest(batch(records(T0 + 55, 1, 5)))    # still open (within grace)
    assert judge.counters.late_events == 5
    totals = {b.start_s: b.requests for _, _, b in judge.buckets()}
    assert (totals[int(T0) + 20], totals[int(T0) + 50]) == (100, 105)


def test_out_of_order_events_within_grace_count_in_later_evaluations() -> None:
    judge = Judge()
    judge.ingest(batch(records(T0, 30, 10)))
    verdicts = judge.ingest(batch(records(T0 + 25, 1, 10) + records(T0 + 31, 1, 10)))
    # Evaluated at T0+30 (the first boundary the T0+31 events cross), late ones included.
    assert unified_at(verdicts, 30).requests == 310


def test_a_single_far_future_event_does_not_move_event_time() -> None:
    judge = Judge()
    events = records(T0, 10, 10)
    poison = {**events[0], "event_id": "poison", "ts": T0 + 86_400}
    judge.ingest(batch([*events[:50], poison, *events[50:]]))
    assert judge.event_time_s == events[-1]["ts"]
    assert judge.counters.time_outliers == 1


def test_a_real_lull_in_traffic_is_confirmed_by_the_next_event() -> None:
    judge = Judge()
    judge.ingest(batch(records(T0, 10, 10)))
    judge.ingest(batch(records(T0 + 3600, 1, 1)))   # held: nothing confirms it yet
    judge.ingest(batch(records(T0 + 3601, 1, 1)))
    assert (judge.event_time_s, judge.counters.time_outliers) == (T0 + 3601, 0)


def ingest_in_pieces(judge: Judge, events: list[dict[str, Any]], cuts: list[int]
                     ) -> list[Verdict]:
    """The events ingested in records of the sizes `cuts` gives, in turn."""
    verdicts: list[Verdict] = []
    at = 0
    for size in itertools.cycle(cuts):
        if at >= len(events):
            return verdicts
        verdicts += judge.ingest(batch(events[at:at + size]))
        at += size
    return verdicts


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=8))
def test_verdicts_do_not_depend_on_how_the_stream_is_batched(cuts: list[int]) -> None:
    events = interleave(records(T0, 20, 30, error_every=7),
                        records(T0, 20, 30, routed_to="legacy", domain="property"))
    whole = Judge().ingest(batch(events))
    assert ingest_in_pieces(Judge(), events, cuts) == whole


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 9.999), st.floats(0, 10_000), st.booleans()),
                max_size=60), st.integers(0, 60))
def test_merging_bucket_parts_equals_aggregating_the_union(events, split) -> None:
    def aggregate(part) -> BucketAggregate:
        agg = BucketAggregate.empty(int(T0), 10)
        if part:
            ts, ms, err = (np.array(c) for c in zip(*part, strict=True))
            slots, clamped = slots_of(ms)
            agg.add_slots(T0 + ts, slots, err.astype(bool), int(clamped.sum()))
        return agg
    merged = aggregate(events[:split])
    merged.merge(aggregate(events[split:]))
    union = aggregate(events)
    assert (merged.requests, merged.errors, merged.histogram) == (
        union.requests, union.errors, union.histogram)
    assert list(merged.requests_by_s) == list(union.requests_by_s)
    restored = BucketAggregate.from_bytes(merged.to_bytes())
    assert (restored.requests, restored.errors, restored.histogram) == (
        union.requests, union.errors, union.histogram)


def test_a_bucket_in_the_first_encoding_with_an_hdr_histogram_still_decodes() -> None:
    bucket = BucketAggregate.empty(int(T0), 10)
    slots, _ = slots_of(np.array([15.0, 240.0, 4100.0]))
    bucket.add_slots(np.array([T0, T0 + 3, T0 + 9]), slots, np.array([False, True, False]), 0)
    current = bucket.to_bytes()
    counts_end = _HEADER.size + 2 * 8 * bucket.bucket_s
    first_encoding = b"TLB1" + current[4:counts_end] + bucket.histogram.to_bytes()
    restored = BucketAggregate.from_bytes(first_encoding)
    assert (restored.requests_by_s.tolist(), restored.errors, restored.histogram) == (
        bucket.requests_by_s.tolist(), 1, bucket.histogram)


def test_a_restored_judge_continues_with_the_same_verdicts() -> None:
    events = records(T0, 40, 20, error_every=9)
    reference = Judge()
    reference.ingest(batch(events[:400]))
    expected = reference.ingest(batch(events[400:]))
    first = Judge()
    first.ingest(batch(events[:400]))
    pieces = [(d, t, BucketAggregate.from_bytes(b.to_bytes())) for d, t, b in first.take_dirty()]
    restarted = Judge()
    states = orjson.loads(orjson.dumps(first.domain_states()))
    restarted.restore(first.event_time_s, pieces, states)
    assert restarted.ingest(batch(events[400:])) == expected


def test_an_event_held_for_confirmation_survives_a_restart() -> None:
    lull_end = records(T0 + 3600, 2, 10)
    reference = Judge()
    reference.ingest(batch(records(T0, 10, 10)))
    reference.ingest(batch(lull_end[:1]))   # held: nothing confirms it yet
    expected = reference.ingest(batch(lull_end[1:]))
    first = Judge()
    first.ingest(batch(records(T0, 10, 10)))
    first.ingest(batch(lull_end[:1]))
    pieces = [(d, t, BucketAggregate.from_bytes(b.to_bytes())) for d, t, b in first.take_dirty()]
    pending = orjson.loads(orjson.dumps(first.pending_events()))
    restarted = Judge()
    states = orjson.loads(orjson.dumps(first.domain_states()))
    restarted.restore(first.event_time_s, pieces, states, pending)
    assert restarted.ingest(batch(lull_end[1:])) == expected
    assert sum(b.requests for *_, b in restarted.buckets()) == len(lull_end)


def errors_in_runs(run: int, every: int) -> list[dict[str, Any]]:
    """20 s at 30 unified requests a second, failing `run` in a row every `every`."""
    events = records(T0, 20, 30)
    for i, event in enumerate(events):
        if i % every < run:
            event.update(status="error", http_status=500, error_message="boom")
    return events


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=8))
def test_runs_of_errors_are_counted_however_the_stream_is_batched(cuts: list[int]) -> None:
    # Runs of 4 every 50 requests: cuts fall inside runs, which must go on across records.
    events = errors_in_runs(4, 50)
    whole, judge = Judge(), Judge()
    expected = whole.ingest(batch(events))
    assert ingest_in_pieces(judge, events, cuts) == expected
    totals = judge.states["jobs"].unified.totals
    assert totals == whole.states["jobs"].unified.totals
    assert totals.errors == 4 * totals.runs(Metric.ERRORS) > 0


def test_a_run_of_errors_goes_on_across_a_restart() -> None:
    events = errors_in_runs(4, 50)
    cut = 50 * 6 + 2   # inside a run
    reference = Judge()
    reference.ingest(batch(events[:cut]))
    expected = reference.ingest(batch(events[cut:]))
    first = Judge()
    first.ingest(batch(events[:cut]))
    pieces = [(d, t, BucketAggregate.from_bytes(b.to_bytes())) for d, t, b in first.take_dirty()]
    restarted = Judge()
    restarted.restore(first.event_time_s, pieces,
                      orjson.loads(orjson.dumps(first.domain_states())))
    assert restarted.ingest(batch(events[cut:])) == expected


def slow_every(seconds_apart: float, count: int) -> list[dict[str, Any]]:
    """`count` unified requests `seconds_apart`, every one slower than 3000 ms."""
    return [{**event, "response_time_ms": 4_000.0}
            for event in records(T0, count * seconds_apart, 1 / seconds_apart)]


def test_slow_requests_close_in_time_make_one_run() -> None:
    judge = Judge()
    judge.ingest(batch(slow_every(0.5, 6)))
    judge.advance_to(T0 + 20)
    totals = judge.states["jobs"].unified.totals
    assert (totals.slow_critical, totals.runs(Metric.SLOW_CRITICAL)) == (6, 1)


def test_slow_requests_minutes_apart_are_runs_of_their_own() -> None:
    # The runbook's volume: 50 requests an hour, ~72 s apart. Two slow ones in a row are
    # not a burst (a pause slows a second's worth), so they are not weighed down as one.
    judge = Judge()
    judge.ingest(batch(slow_every(72, 6)))
    judge.advance_to(T0 + 6 * 72 + 20)
    totals = judge.states["jobs"].unified.totals
    assert (totals.slow_critical, totals.runs(Metric.SLOW_CRITICAL)) == (6, 6)


def test_a_run_goes_on_across_a_restart_only_within_the_run_gap() -> None:
    close, apart = slow_every(0.5, 2), slow_every(72, 2)
    runs = []
    for events in (close, apart):
        first = Judge()
        first.ingest(batch(events[:1]))
        restarted = Judge()
        restarted.restore(first.event_time_s, [],
                          orjson.loads(orjson.dumps(first.domain_states())))
        restarted.ingest(batch(events[1:]))
        restarted.advance_to(events[-1]["ts"] + 20)
        runs.append(restarted.states["jobs"].unified.totals.runs(Metric.SLOW_CRITICAL))
    assert runs == [1, 2]


def test_pending_counts_saved_before_runs_were_counted_still_restore() -> None:
    first = Judge()
    first.ingest(batch(records(T0, 5, 10, error_every=9)))
    states = orjson.loads(orjson.dumps(first.domain_states()))
    for entry in states.values():
        entry["pending"] = {t: [counts[:4], version]
                            for t, (counts, version, *_) in entry["pending"].items()}
    restarted = Judge()
    restarted.restore(first.event_time_s, [], states)
    counts, _, run_lengths, _ = restarted.domain_states()["jobs"]["pending"]["unified"]
    before, *_ = first.domain_states()["jobs"]["pending"]["unified"]
    assert (counts[:4], run_lengths) == (before[:4], [0, 0, 0])


def walked_run_starts(events: list[dict[str, Any]], gap_s: float, max_run: int
                      ) -> tuple[int, int]:
    """Request by request: slow requests the change detectors count, and requests left out
    (they follow a slow one of a run shorter than `max_run`, within `gap_s`)."""
    run, last_ts, counted, left_out = 0, -np.inf, 0, 0
    for event in events:
        slow = event["response_time_ms"] > 3_000
        before = run if event["ts"] - last_ts <= gap_s else 0
        out = 0 < before < max_run
        counted += slow and not out
        left_out += out
        run, last_ts = (before + 1 if slow else 0), event["ts"]
    return counted, left_out


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.1, 1.0, 45.0]),
                          st.sampled_from([True, True, True, False])),  # runs past max_run
                min_size=1, max_size=120),
       st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=4))
def test_the_run_starts_counted_are_a_request_by_request_walk_however_batched(
        steps: list[tuple[float, bool]], cuts: list[int]) -> None:
    ts, events = T0, []
    for gap, slow in steps:
        ts += gap
        events.append({**records(ts, 1, 1)[0], "response_time_ms": 4_000.0 if slow else 100.0})
    judge = Judge()
    ingest_in_pieces(judge, events, cuts)
    judge.advance_to(ts + 60)
    totals = judge.states["jobs"].unified.totals
    settings_ = judge.settings
    assert (totals.slow_critical_runs, totals.after_slow_critical) == walked_run_starts(
        events, settings_.run_gap_s, settings_.max_run)


def first_twenty_seconds(slow_at: list[int], *, per_s: float = 1.0) -> set[str]:
    """The decisions over a rollout's first 20 s: unified at `per_s` requests a second (1 s
    apart at 1/s), slower than 3 s at the indices `slow_at`; legacy at 10/s, fast."""
    unified = records(T0, 20, per_s)
    for i in slow_at:
        unified[i] = {**unified[i], "response_time_ms": 4_000.0}
    judge = Judge()
    verdicts = judge.ingest(batch(interleave(unified, records(T0, 20, 10, routed_to="legacy"))))
    verdicts += judge.advance_to(T0 + 30)
    return {v.decision for v in verdicts}


def test_nine_slow_requests_in_a_row_in_a_rollouts_first_seconds_are_one_pause() -> None:
    # 9 of the first 20: in a row they are one run (a pause), not nine independent requests.
    assert "rollback" not in first_twenty_seconds(list(range(11, 20)))


def test_nine_slow_requests_spread_over_a_rollouts_first_seconds_roll_it_back() -> None:
    assert "rollback" in first_twenty_seconds(list(range(0, 18, 2)))


def test_a_handler_slow_on_every_request_is_rolled_back_past_its_first_run() -> None:
    # Only a run's first `max_run` hits are thinned: past them every slow request counts.
    assert "rollback" in first_twenty_seconds(list(range(0, 60)), per_s=3.0)
