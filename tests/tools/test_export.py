"""`trafficlight export`: webhook_routing_logs -> JSONL that replays as the events it came from."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

from tests.tools.conftest import RunCli, StoreEvents
from trafficlight.tools.simulate import Scenario, default_incident, generate

START_TS = 1_795_910_400.0  # 2026-11-29T00:00:00Z


def _events() -> list[dict[str, object]]:
    spike = default_incident("error_spike", "jobs", START_TS + 1800, START_TS + 2400)
    scenario = Scenario(start_ts=START_TS, duration_s=3600, volumes_per_h={"jobs": 2000.0,
                        "property": 500.0}, percentage_steps=((0.0, 50.0),), incidents=(spike,),
                        seed=11)
    return list(generate(scenario))


def _without_label(event: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in event.items() if k != "label"}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


async def test_export_round_trips_the_stored_events(
    run_cli: RunCli, store_events: StoreEvents, database_url: str, tmp_path: Path
) -> None:
    events = _events()
    await store_events(database_url, events)
    out = tmp_path / "day.jsonl.gz"

    result = await run_cli("export", "--since", _iso(START_TS), "--until", _iso(START_TS + 3600),
                           "--out", str(out), env={"DATABASE_URL": database_url})

    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == f"exported {len(events)} events"
    exported = [json.loads(line) for line in gzip.decompress(out.read_bytes()).splitlines()]
    assert exported == [_without_label(e) for e in events]


async def test_export_takes_since_inclusive_and_until_exclusive(
    run_cli: RunCli, store_events: StoreEvents, database_url: str
) -> None:
    events = _events()
    await store_events(database_url, events)
    since_ts, until_ts = events[100]["ts"], events[200]["ts"]

    result = await run_cli("export", "--since", _iso(since_ts), "--until", _iso(until_ts),
                           env={"DATABASE_URL": database_url})

    exported = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event_id"] for e in exported] == [e["event_id"] for e in events[100:200]]


async def test_rows_without_router_fields_export_as_replayable_events(
    run_cli: RunCli, store_events: StoreEvents, database_url: str
) -> None:
    event = {**_events()[0], "router_id": None, "config_version": None}
    await store_events(database_url, [event])

    result = await run_cli("export", "--since", "2026-11-29", "--until", "2026-11-30",
                           env={"DATABASE_URL": database_url})

    [exported] = [json.loads(line) for line in result.stdout.splitlines()]
    assert (exported["router_id"], exported["config_version"]) == ("unknown", 0)


async def test_export_refuses_an_empty_time_range(run_cli: RunCli, database_url: str) -> None:
    result = await run_cli("export", "--since", "2026-11-29T10:00Z", "--until", "2026-11-29T09:00Z",
                           env={"DATABASE_URL": database_url})

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: --since (2026-11-29T10:00:00+00:00) must be before --until "
        "(2026-11-29T09:00:00+00:00)"]


async def test_export_refuses_a_time_it_cannot_read(run_cli: RunCli, database_url: str) -> None:
    result = await run_cli("export", "--since", "yesterday", env={"DATABASE_URL": database_url})

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: not a time: 'yesterday' (use ISO 8601 like 2026-11-28T09:00Z, or -24h, or now)"]
