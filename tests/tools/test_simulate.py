"""The scenario generator: deterministic, runbook-sized, split like the router, labelled."""

from __future__ import annotations

import gzip
import json
import statistics
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from trafficlight.base.errors import InvalidInput
from trafficlight.cli import cli
from trafficlight.tools.jsonl import write_jsonl
from trafficlight.tools.simulate import (
    Incident,
    LatencyProfile,
    Scenario,
    default_incident,
    default_targets,
    generate,
    generate_batches,
    read_incidents,
    routed_to_for,
    write_incidents,
)

DAY_START_TS = 1_795_824_000.0  # 2026-11-28T00:00:00Z
HOUR_S = 3_600.0


def _day(**overrides: object) -> Scenario:
    return Scenario(start_ts=DAY_START_TS, duration_s=24 * HOUR_S, **overrides)  # type: ignore[arg-type]


def _busy(incident: Incident, pct: float = 50.0) -> list[dict[str, object]]:
    """Two hours at 100x the runbook volume, flat, so incident statistics are tight."""
    scenario = Scenario(start_ts=DAY_START_TS, duration_s=2 * HOUR_S, diurnal_amplitude=0.0,
                        volumes_per_h={"jobs": 50_000.0, "property": 20_000.0},
                        percentage_steps=((0.0, pct),), incidents=(incident,), seed=3)
    return list(generate(scenario))


def test_same_seed_gives_the_same_events() -> None:
    assert list(generate(_day(seed=7))) == list(generate(_day(seed=7)))


def test_another_seed_gives_other_events() -> None:
    assert list(generate(_day(seed=7)))[:100] != list(generate(_day(seed=8)))[:100]


def test_same_seed_gives_the_same_gzip_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"

    write_jsonl(first, generate(_day(seed=7)))
    write_jsonl(second, generate(_day(seed=7)))

    assert first.read_bytes() == second.read_bytes()


def test_events_come_out_in_time_order_within_the_scenario() -> None:
    timestamps = [e["ts"] for e in generate(_day())]

    assert timestamps == sorted(timestamps)
    assert timestamps[0] >= DAY_START_TS and timestamps[-1] < DAY_START_TS + 24 * HOUR_S


def test_runbook_preset_volumes_per_domain_over_a_day() -> None:
    per_domain = Counter(e["domain"] for e in generate(_day()))

    assert per_domain["jobs"] / 24 == pytest.approx(500, rel=0.05)
    assert per_domain["marketplace"] / 24 == pytest.approx(300, rel=0.05)
    assert per_domain["property"] / 24 == pytest.approx(200, rel=0.05)


def test_afternoon_is_busier_than_night() -> None:
    hours = Counter(int((e["ts"] - DAY_START_TS) // HOUR_S) for e in generate(_day()))

    # Amplitude 0.5: 14:00 UTC carries 1.5x the mean, 02:00 UTC 0.5x.
    assert hours[14] / hours[2] > 2


def test_split_follows_the_percentage_steps() -> None:
    scenario = _day(percentage_steps=((0.0, 10.0), (12 * HOUR_S, 50.0)))
    events = list(generate(scenario))
    morning = [e for e in events if e["config_version"] == 1]
    afternoon = [e for e in events if e["config_version"] == 2]

    def unified_share(sample: list[dict[str, object]]) -> float:
        return sum(e["routed_to"] == "unified" for e in sample) / len(sample)

    assert unified_share(morning) == pytest.approx(0.10, abs=0.02)
    assert unified_share(afternoon) == pytest.approx(0.50, abs=0.03)
    assert all(e["ts"] >= DAY_START_TS + 12 * HOUR_S for e in afternoon)


def test_zero_and_hundred_percent_send_everything_one_way() -> None:
    assert routed_to_for(0, 0.0) == "legacy"
    assert routed_to_for(9_999, 100.0) == "unified"


def test_error_spike_labels_and_fails_unified_only() -> None:
    spike = default_incident("error_spike", "jobs", DAY_START_TS + HOUR_S,
                             DAY_START_TS + 1.5 * HOUR_S)
    events = _busy(spike)
    labelled = [e for e in events if e.get("label") == spike.name]
    inside_legacy = [e for e in events if e["domain"] == "jobs" and e["routed_to"] == "legacy"
                     and spike.start_ts <= e["ts"] < spike.end_ts]
    error_pct = 100 * sum(e["status"] == "error" for e in labelled) / len(labelled)

    assert {(e["domain"], e["routed_to"]) for e in labelled} == {("jobs", "unified")}
    assert all(spike.start_ts <= e["ts"] < spike.end_ts for e in labelled)
    assert error_pct == pytest.approx(5.0, abs=1.0)
    assert inside_legacy and not any("label" in e for e in inside_legacy)
    assert sum(e["status"] == "error" for e in inside_legacy) / len(inside_legacy) < 0.005


def test_latency_creep_grows_unified_latency_to_its_factor() -> None:
    creep = default_incident("latency_creep", "jobs", DAY_START_TS + HOUR_S,
                             DAY_START_TS + 2 * HOUR_S)
    events = _busy(creep)
    labelled = [e for e in events if e.get("label") == creep.name]
    before = [e["response_time_ms"] for e in events if e["domain"] == "jobs"
              and e["routed_to"] == "unified" and e["ts"] < creep.start_ts]
    last = [e["response_time_ms"] for e in labelled if e["ts"] >= creep.end_ts - 300]

    assert {e["routed_to"] for e in labelled} == {"unified"}
    # The last five minutes sit at 95.8% of the way to the factor 6: 1 + 5 * 0.958 = 5.79.
    assert statistics.median(last) / statistics.median(before) == pytest.approx(5.79, rel=0.1)


def test_outage_is_shared_by_both_targets_of_its_domain() -> None:
    outage = default_incident("outage", "property", DAY_START_TS + HOUR_S,
                              DAY_START_TS + 1.25 * HOUR_S)
    labelled = [e for e in _busy(outage) if e.get("label") == outage.name]
    by_target = {t: [e for e in labelled if e["routed_to"] == t] for t in ("unified", "legacy")}

    assert {e["domain"] for e in labelled} == {"property"}
    for target_events in by_target.values():
        error_share = sum(e["status"] == "error" for e in target_events) / len(target_events)
        assert error_share == pytest.approx(0.30, abs=0.05)


def test_errors_carry_an_http_status_and_message() -> None:
    spike = default_incident("error_spike", "jobs", DAY_START_TS, DAY_START_TS + 2 * HOUR_S)
    errors = [e for e in _busy(spike) if e["status"] == "error"]

    assert errors and all(e["http_status"] >= 500 and e["error_message"] for e in errors)


def test_incident_sidecar_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "day.jsonl.gz"
    incidents = [default_incident("outage", "property", DAY_START_TS + 7200, DAY_START_TS + 9000),
                 default_incident("error_spike", "jobs", DAY_START_TS + 60, DAY_START_TS + 600)]

    sidecar = write_incidents(out, incidents)

    assert sidecar.name == "day.jsonl.gz.incidents.json"
    assert read_incidents(out) == sorted(incidents, key=lambda i: i.start_ts)


def test_incident_in_an_unknown_domain_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown domain 'mobility'"):
        _day(incidents=(default_incident("outage", "mobility", DAY_START_TS, DAY_START_TS + 60),))


def test_simulate_command_writes_events_and_sidecar(tmp_path: Path) -> None:
    out = tmp_path / "day.jsonl.gz"

    result = CliRunner().invoke(cli, [
        "simulate", "--out", str(out), "--start", "2026-11-28T00:00:00Z", "--duration", "6h",
        "--percentage", "10", "--percentage", "25@2h", "--incident", "error_spike:jobs@3h/30m",
        "--seed", "5",
    ])

    assert result.exit_code == 0, result.output
    lines = gzip.decompress(out.read_bytes()).splitlines()
    events = [json.loads(line) for line in lines]
    assert result.output.startswith(f"wrote {len(events)} events")
    assert {e["config_version"] for e in events} == {1, 2}
    [incident] = read_incidents(out)
    assert (incident.kind, incident.domain, incident.start_ts) == (
        "error_spike", "jobs", DAY_START_TS + 3 * HOUR_S)
    assert any(e.get("label") == incident.name for e in events)


def test_simulate_command_rejects_an_unknown_incident_kind(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["simulate", "--out", str(tmp_path / "x.jsonl"),
                                      "--incident", "meteor@1h/5m"])

    assert result.exit_code != 0
    assert "KIND[:DOMAIN]@OFFSET/DURATION" in str(result.exception)


def test_errors_in_runs_keep_their_rate_and_triple_the_variance_per_second() -> None:
    # Runs of mean 2 (geometric): per-second counts vary 2 * 2 - 1 = 3 times Poisson's.
    bursty = LatencyProfile(380.0, 0.45, 0.5, error_run_mean=2.0)
    scenario = Scenario(start_ts=DAY_START_TS, duration_s=2 * HOUR_S, diurnal_amplitude=0.0,
                        volumes_per_h={"jobs": 360_000.0}, percentage_steps=((0.0, 100.0),),
                        targets={**default_targets(), "unified": bursty}, seed=4)
    ts = np.concatenate([b.ts_s[b.is_error] for b in generate_batches(scenario)])
    requests = sum(len(b) for b in generate_batches(scenario))
    per_s = np.bincount((ts - DAY_START_TS).astype(np.int64), minlength=int(2 * HOUR_S))
    assert 0.45 < 100 * len(ts) / requests < 0.55
    assert 2.4 < per_s.var() / per_s.mean() < 3.6
