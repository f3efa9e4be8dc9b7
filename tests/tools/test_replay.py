from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner

from tests.streams.helpers import T0, batch, interleave, records
from tests.tools.conftest import RunCli
from trafficlight.base.db import connect
from trafficlight.base.errors import ConfigError
from trafficlight.base.local_services import BrokerKind
from trafficlight.cli import cli
from trafficlight.streams.events import encode_events
from trafficlight.streams.judge import Judge
from trafficlight.tools.replay import RejectLog, topic_batches


def write_jsonl(path: Path, events: list[dict], corrupt_at: int | None = None) -> Path:
    lines = [orjson.dumps(e) for e in events]
    if corrupt_at is not None:
        lines.insert(corrupt_at - 1, b"{corrupt")
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def scenario() -> list[dict]:
    """Clean traffic, then an error spike on unified in jobs (labelled)."""
    return interleave(records(T0, 120, 50), records(T0, 120, 50, routed_to="legacy"),
                      records(T0 + 120, 20, 50, error_every=10, label="error_spike"),
                      records(T0 + 120, 20, 50, routed_to="legacy"))


def test_replay_jsonl_is_one_verdict_per_target_per_evaluation(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "day.jsonl", scenario())
    result = CliRunner().invoke(cli, ["replay", "--input", str(path), "--format", "jsonl"])
    lines = [orjson.loads(x) for x in result.stdout.splitlines()]
    assert result.exit_code == 0
    targets_by_evaluation: dict[float, list[str]] = {}
    for line in lines:
        targets_by_evaluation.setdefault(line["window_end"], []).append(line["routed_to"])
    # Every evaluation gives one row per target; every heartbeat (10 s) is an evaluation.
    assert all(sorted(t) == ["legacy", "unified"] for t in targets_by_evaluation.values())
    assert {T0 + s for s in range(10, 140, 10)} <= set(targets_by_evaluation)
    again = CliRunner().invoke(cli, ["replay", "--input", str(path), "--format", "jsonl"])
    assert again.stdout == result.stdout


def test_since_takes_a_time_relative_to_now_as_report_does(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "day.jsonl", scenario())
    everything = CliRunner().invoke(cli, ["replay", "--input", str(path)])
    since = CliRunner().invoke(cli, ["replay", "--input", str(path), "--since", "-36500d"])
    assert since.exit_code == 0, since.output
    assert since.stdout == everything.stdout


def test_corrupt_lines_are_skipped_and_reported_with_line_numbers(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "day.jsonl", scenario(), corrupt_at=7)
    result = CliRunner().invoke(cli, ["replay", "--input", str(path), "--format", "table"])
    assert result.exit_code == 0
    assert "line 7: bad JSON" in result.stderr and "skipped 1 corrupt" in result.stderr


def test_a_file_without_provenance_fields_gives_the_same_verdicts(tmp_path: Path) -> None:
    full = write_jsonl(tmp_path / "full.jsonl", scenario())
    bare = write_jsonl(tmp_path / "bare.jsonl", [
        {k: v for k, v in e.items() if k not in ("event_id", "router_id", "config_version")}
        for e in scenario()])
    expected = CliRunner().invoke(cli, ["replay", "--input", str(full), "--format", "jsonl"])
    result = CliRunner().invoke(cli, ["replay", "--input", str(bare), "--format", "jsonl"])
    assert result.exit_code == 0 and result.stdout == expected.stdout
    assert f"{len(scenario())} event(s) without event_id" in result.stderr
    assert "skipped" not in result.stderr


def test_a_file_not_in_time_order_gives_the_verdicts_of_the_sorted_file(tmp_path: Path
                                                                       ) -> None:
    events = scenario()
    in_order = write_jsonl(tmp_path / "day.jsonl", events)
    # Each target's events one after the other, as a tool might write them.
    by_target = write_jsonl(tmp_path / "by-target.jsonl", sorted(
        events, key=lambda e: e["routed_to"]))
    expected = CliRunner().invoke(cli, ["replay", "--input", str(in_order), "--format", "jsonl"])
    result = CliRunner().invoke(cli, ["replay", "--input", str(by_target), "--format", "jsonl"])
    assert result.exit_code == 0 and result.stdout == expected.stdout
    assert "not in time order; replaying it sorted" in result.stderr
    assert "not in time order" not in expected.stderr


def test_strict_stops_at_the_first_corrupt_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "day.jsonl", scenario(), corrupt_at=7)
    result = CliRunner().invoke(cli, ["replay", "--input", str(path), "--strict"])
    assert result.exit_code != 0
    assert "line 7" in str(result.exception)


def test_threshold_sets_compare_side_by_side_with_detection_times(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "day.jsonl", scenario())
    lax = tmp_path / "lax.toml"
    lax.write_text("[thresholds]\nwarning_error_pct = 20\ncritical_error_pct = 50\n")
    strict = tmp_path / "strict.toml"
    strict.write_text("[thresholds]\ncritical_error_pct = 0.5\n")
    result = CliRunner().invoke(cli, ["replay", "--input", str(path), "--format", "table",
                                      "--thresholds", str(lax), "--thresholds", str(strict)])
    assert result.exit_code == 0
    row = next(x for x in result.stdout.splitlines() if x.startswith("error_spike"))
    assert [c.strip() for c in row.split("|")[1:]] == ["missed", "2.0 s"]


def test_the_table_says_when_each_domain_first_rolls_back_and_why(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "day.jsonl", scenario())
    jsonl = CliRunner().invoke(cli, ["replay", "--input", str(path), "--format", "jsonl"])
    first = next(orjson.loads(x) for x in jsonl.stdout.splitlines()
                 if orjson.loads(x)["decision"] == "rollback")
    result = CliRunner().invoke(cli, ["replay", "--input", str(path), "--format", "table"])
    cells = {row.split("|")[0].strip(): row.split("|")[1].strip()
             for row in result.stdout.splitlines() if "|" in row}
    when = datetime.fromtimestamp(first["window_end"], UTC)
    assert cells["first rollback of jobs"] == f"{when:%Y-%m-%d %H:%M:%S} UTC"
    assert cells["because"] == "errors: unified breaches critical, legacy does not"


async def test_replaying_a_topic_gives_the_verdicts_of_a_judge_on_the_stream(
        kafka_bootstrap: str, unique_topic) -> None:
    topic = unique_topic("events")
    events = scenario()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(0, len(events), 250):
            await producer.send_and_wait(topic, encode_events(events[i:i + 250]), partition=0)
    finally:
        await producer.stop()
    live = Judge()
    expected = [v for i in range(0, len(events), 250)
                for v in live.ingest(batch(events[i:i + 250]))]
    from trafficlight.tools.replay import replay

    batches = [b async for b in topic_batches(
        kafka_bootstrap, topic, RejectLog(False, "kafka"), None, None)]
    assert [len(b) for _, b in batches][:2] == [250, 250]
    summaries, _ = replay(batches, [Judge().thresholds], None)
    judge = Judge()
    assert [v for _, b in batches for v in judge.ingest(b)] == expected
    assert summaries[0].evaluations == len({(v.domain, v.window_end) for v in expected})


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


async def test_a_topic_scan_ends_at_the_offsets_seen_when_it_started(
        kafka_bootstrap: str, unique_topic) -> None:
    topic = unique_topic("events")
    await _produce(kafka_bootstrap, topic, [encode_events(records(T0 + i, 1, 10))
                                            for i in range(3)])
    scan = topic_batches(kafka_bootstrap, topic, RejectLog(False, "kafka"), None, None)
    seen = [await anext(scan)]
    # Written after the scan started: not part of this replay.
    await _produce(kafka_bootstrap, topic, [encode_events(records(T0 + 3, 1, 10))])
    seen += [b async for b in scan]
    assert [len(b) for _, b in seen] == [10, 10, 10]


async def test_a_topic_scan_with_until_stops_two_records_past_it(
        kafka_bootstrap: str, unique_topic) -> None:
    topic = unique_topic("events")
    seconds = [0, 1, 2, 40, 41, 42, 43]  # until T0 + 10, settling 20 s: 40 and 41 end it
    await _produce(kafka_bootstrap, topic, [encode_events(records(T0 + s, 1, 10))
                                            for s in seconds])
    scan = topic_batches(kafka_bootstrap, topic, RejectLog(False, "kafka"), None,
                         until_s=T0 + 10, settle_s=20)
    assert [len(b) async for _, b in scan] == [10, 10, 10, 0, 0]


async def test_a_far_future_record_alone_does_not_end_a_topic_scan(
        kafka_bootstrap: str, unique_topic) -> None:
    topic = unique_topic("events")
    seconds = [0, 3600, 1, 2]  # one record an hour ahead: a time outlier, not the end
    await _produce(kafka_bootstrap, topic, [encode_events(records(T0 + s, 1, 10))
                                            for s in seconds])
    scan = topic_batches(kafka_bootstrap, topic, RejectLog(False, "kafka"), None,
                         until_s=T0 + 10, settle_s=20)
    assert [len(b) async for _, b in scan] == [10, 0, 10, 10]


async def test_a_topic_scan_of_a_missing_topic_is_a_one_line_error(
        kafka_bootstrap: str, unique_topic, broker_kind: BrokerKind) -> None:
    if broker_kind is BrokerKind.TANSU:
        pytest.skip("Tansu creates a topic when asked about it: the scan finds it empty")
    topic = unique_topic("never-written")
    scan = topic_batches(kafka_bootstrap, topic, RejectLog(False, "kafka"), None, None)
    with pytest.raises(ConfigError, match=f"topic {topic} does not exist"):
        await anext(scan)


def _misrouted(version: int) -> list[dict]:
    """4 min of jobs at 200 req/s, 3 % of it on unified, stamped config `version`."""
    events = interleave(records(T0, 240, 6), records(T0, 240, 194, routed_to="legacy"))
    for event in events:
        event["config_version"] = version
    return events


def _ten_percent_version(database_url: str) -> int:
    async def configure() -> int:
        conn = await connect(database_url)
        try:
            await conn.execute("SELECT update_routing_percentage(10, 'start rollout')")
            return int(await conn.fetchval("SELECT max(id) FROM webhook_routing_config"))
        finally:
            await conn.close()
    return asyncio.run(configure())


def test_config_db_turns_the_sample_ratio_guard_on(tmp_path: Path, database_url: str) -> None:
    path = write_jsonl(tmp_path / "day.jsonl", _misrouted(_ten_percent_version(database_url)))
    guarded = CliRunner().invoke(cli, ["replay", "--input", str(path), "--format", "jsonl",
                                       "--config-db", database_url])
    plain = CliRunner().invoke(cli, ["replay", "--input", str(path), "--format", "jsonl"])
    assert (guarded.exit_code, plain.exit_code) == (0, 0)
    last = [orjson.loads(x) for x in guarded.stdout.splitlines()][-2:]
    unified = next(v for v in last if v["routed_to"] == "unified")
    assert (unified["decision"], unified["rule"]) == ("hold", "sample_ratio_mismatch")
    assert unified["reasons"][-1].startswith("sample ratio: unified ")
    assert "sample ratio" not in plain.stdout


async def test_an_unreachable_config_db_is_a_one_line_error(tmp_path: Path,
                                                            run_cli: RunCli) -> None:
    path = write_jsonl(tmp_path / "day.jsonl", _misrouted(2))
    result = await run_cli("replay", "--input", str(path), "--config-db",
                           "postgresql://trafficlight@127.0.0.1:1/none", env={})
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: ") and "127.0.0.1:1" in result.stderr
    assert result.stdout == ""
