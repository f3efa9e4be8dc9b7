"""The labelled scoreboard: the generator keeps its labels, the baselines judge as specified,
the scorer scores a known timeline as it should, and the board runs every judge side by side.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from trafficlight.cli import cli
from trafficlight.streams.events import EventBatch
from trafficlight.streams.thresholds import ThresholdSet
from trafficlight.streams.verdicts import Decision
from trafficlight.tools.replay import Replay
from trafficlight.tools.scenarios import (
    CATALOGUE,
    deadline_for,
    fixed_sample_size,
    select,
    share_slower_pct,
)
from trafficlight.tools.scoreboard.board import (
    as_json,
    default_judges,
    run_board,
    run_default_board,
    table,
)
from trafficlight.tools.scoreboard.judges import FlaggerJudge, RunbookJudge
from trafficlight.tools.scoreboard.score import Outcome, score_incident, score_run
from trafficlight.tools.scoreboard.timeline import Timeline, run_judge
from trafficlight.tools.simulate import (
    Expect,
    Incident,
    IncidentKind,
    IncidentTarget,
    Scenario,
    generate,
    generate_batches,
)

T0 = 1_795_852_800.0  # 08:00 UTC, a multiple of 15 min


def _columns(scenario: Scenario) -> EventBatch:
    return EventBatch.concat(list(generate_batches(scenario)))


def _entry(name: str) -> Scenario:
    [entry] = select([name])
    return entry.scenario(1)


def _events(*rows: tuple[float, str, float, bool]) -> EventBatch:
    """Handmade events: (seconds after T0, routed_to, latency ms, is error), domain jobs."""
    return EventBatch.from_records([
        {"ts": T0 + at, "domain": "jobs", "routed_to": target, "response_time_ms": ms,
         "status": "error" if err else "success"} for at, target, ms, err in rows])


# -- the generator -----------------------------------------------------------------------------

def test_same_seed_gives_the_same_batches() -> None:
    first, second = _columns(_entry("mixed-slow-legacy")), _columns(_entry("mixed-slow-legacy"))

    assert np.array_equal(first.ts_s, second.ts_s)
    assert np.array_equal(first.response_time_ms, second.response_time_ms)
    assert first.label == second.label and first.routed_to == second.routed_to


def test_another_seed_gives_other_events() -> None:
    [entry] = select(["sustained-2pct"])

    assert not np.array_equal(_columns(entry.scenario(1)).ts_s[:100],
                              _columns(entry.scenario(2)).ts_s[:100])


def test_batches_and_dicts_are_the_same_events() -> None:
    scenario = _entry("latency-step")
    batch = _columns(scenario)
    dicts = list(generate(scenario))

    assert [e["ts"] for e in dicts] == batch.ts_s.tolist()
    assert [e["routed_to"] for e in dicts] == batch.routed_to
    assert [e["response_time_ms"] for e in dicts] == batch.response_time_ms.tolist()
    assert [e["status"] == "error" for e in dicts] == batch.is_error.tolist()
    assert [e.get("label") for e in dicts] == batch.label


def test_every_default_scenario_is_labelled_inside_its_own_time() -> None:
    for entry in select():
        scenario = entry.scenario(1)
        for incident in scenario.incidents:
            assert scenario.start_ts <= incident.start_ts < incident.end_ts <= scenario.end_ts
            if incident.must_roll_back:
                assert incident.deadline_s is not None and incident.deadline_s > 0, entry.name


def test_the_error_spike_is_5pct_errors_at_100_unified_requests_a_second() -> None:
    scenario = _entry("error-spike")
    events = _columns(scenario)
    [spike] = scenario.incidents
    labelled = np.array([label == spike.name for label in events.label])
    unified = np.array(events.routed_to) == "unified"
    inside = (events.ts_s >= spike.start_ts) & (events.ts_s < spike.end_ts)

    assert spike.deadline_s == 5.0 and spike.expect is Expect.ROLLBACK
    assert np.array_equal(labelled, unified & inside)
    assert unified.sum() / scenario.duration_s == pytest.approx(100, rel=0.05)
    assert events.is_error[labelled].mean() == pytest.approx(0.05, abs=0.005)
    assert events.is_error[~labelled].mean() < 0.001


def test_legacy_trouble_labels_legacy_only_and_leaves_unified_healthy() -> None:
    scenario = _entry("legacy-errors")
    events = _columns(scenario)
    [trouble] = scenario.incidents
    labelled = np.array([label == trouble.name for label in events.label])
    unified = np.array(events.routed_to) == "unified"

    assert trouble.expect is Expect.NO_ROLLBACK
    assert not (labelled & unified).any()
    assert events.is_error[labelled].mean() == pytest.approx(0.05, abs=0.01)
    assert events.is_error[unified].mean() < 0.001


def test_the_mixed_case_labels_each_target_with_its_own_trouble() -> None:
    scenario = _entry("mixed-slow-legacy")
    events = _columns(scenario)
    errors, slow = scenario.incidents
    routed = np.array(events.routed_to)
    labels = np.array(events.label, dtype=object)
    before = events.ts_s < errors.start_ts

    assert (errors.expect, slow.expect) == (Expect.ROLLBACK, Expect.NO_ROLLBACK)
    assert set(routed[labels == errors.name]) == {"unified"}
    assert set(routed[labels == slow.name]) == {"legacy"}
    assert events.is_error[labels == errors.name].mean() == pytest.approx(0.02, abs=0.004)
    legacy_before = events.response_time_ms[before & (routed == "legacy")]
    legacy_during = events.response_time_ms[labels == slow.name]
    assert np.median(legacy_during) / np.median(legacy_before) == pytest.approx(5, rel=0.1)


def test_the_runbook_volume_is_about_50_unified_requests_an_hour() -> None:
    scenario = _entry("runbook-errors")
    events = _columns(scenario)
    unified = np.array(events.routed_to) == "unified"

    assert unified.sum() / (scenario.duration_s / 3_600) == pytest.approx(50, rel=0.25)


def test_the_warning_band_sits_between_warning_and_critical_latency() -> None:
    scenario = _entry("warning-band")
    events = _columns(scenario)
    unified = np.array(events.routed_to) == "unified"
    p95 = float(np.percentile(events.response_time_ms[unified], 95))

    assert p95 == pytest.approx(2_500, rel=0.03)
    assert share_slower_pct(scenario.targets["unified"], 1.0, 3_000) < 5
    assert events.is_error[unified].mean() == pytest.approx(0.002, abs=0.0005)


def test_the_soak_is_thirty_days_of_every_rollout_domain_and_not_in_the_default_set() -> None:
    [soak] = [e for e in CATALOGUE if e.name == "soak-30d"]

    assert soak not in select() and soak in select(soak=True)
    assert soak.scenario(1).duration_s == 30 * 86_400
    assert set(soak.scenario(1).volumes_per_h) == {"jobs", "marketplace", "property"}
    assert soak.label() == "must not roll back"


def test_an_unknown_scenario_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(Exception, match=r"unknown scenario.*meteor.*known: error-spike"):
        select(["meteor"])


@given(st.floats(0.6, 20), st.floats(0.01, 100))
def test_more_volume_never_lengthens_a_deadline(true_pct: float, per_s: float) -> None:
    assert deadline_for(true_pct, 0.5, per_s * 10) <= deadline_for(true_pct, 0.5, per_s)


@given(st.floats(0.6, 5), st.floats(5.1, 20))
def test_a_larger_regression_needs_fewer_requests(smaller: float, larger: float) -> None:
    assert fixed_sample_size(larger, 0.5) < fixed_sample_size(smaller, 0.5)


def test_incidents_round_trip_through_their_dict_with_expectation_and_deadline() -> None:
    incident = Incident("x", IncidentKind.LATENCY_STEP, "jobs", IncidentTarget.UNIFIED,
                        T0, T0 + 60, latency_factor=4.5, deadline_s=120.0)

    assert Incident(**json.loads(json.dumps(incident.to_dict()))) == incident
    assert incident.expect is Expect.ROLLBACK


def test_replay_takes_the_sidecar_labels_and_falls_back_to_the_event_labels() -> None:
    scenario = _entry("legacy-slow")
    batches = list(generate_batches(scenario))
    with_sidecar = Replay([ThresholdSet()], None, list(scenario.incidents))
    from_events = Replay([ThresholdSet()], None)
    for batch in batches:
        with_sidecar.feed(0, batch)
        from_events.feed(0, batch)

    assert with_sidecar.incidents() == list(scenario.incidents)
    [seen] = from_events.incidents()
    assert (seen.name, seen.domain) == ("legacy-slow", "jobs")
    assert scenario.incidents[0].start_ts <= seen.start_ts < seen.end_ts < scenario.end_ts


def test_an_incident_known_only_by_a_shared_label_is_one_both_targets_have() -> None:
    shared = Incident.from_labels("shared-outage-jobs-1", "jobs", T0, T0 + 60)
    unified = Incident.from_labels("error-spike-jobs-1", "jobs", T0, T0 + 60)

    assert (shared.target, shared.expect) == (IncidentTarget.BOTH, Expect.NO_ROLLBACK)
    assert (unified.target, unified.expect) == (IncidentTarget.UNIFIED, Expect.ROLLBACK)


# -- the baselines, one check at a time --------------------------------------------------------

def test_runbook_rolls_back_at_the_next_quarter_hour_when_the_last_hour_errs_above_critical(
        ) -> None:
    # 100 unified requests in the first 14 min, one error (1 % > 0.5 %); a request at 15:01.
    rows = [(i * 8.0, "unified", 300.0, i == 50) for i in range(100)]
    timeline = run_judge(RunbookJudge(), [_events(*rows, (901.0, "unified", 300.0, False))])

    assert [(c.at_s - T0, c.decision) for c in timeline.changes["jobs"]] == [
        (900.0, Decision.ROLLBACK)]


def test_runbook_compares_strictly_so_exactly_critical_is_not_a_rollback() -> None:
    rows = [(i * 4.0, "unified", 300.0, i == 0) for i in range(200)]  # 1/200 = 0.5 %
    timeline = run_judge(RunbookJudge(), [_events(*rows, (901.0, "unified", 300.0, False))])

    assert timeline.rollbacks("jobs") == []


@pytest.mark.parametrize(("slowest_ms", "rolls_back"), [(40_000.0, False), (42_000.0, True)])
def test_runbook_reads_the_p95_as_percentile_cont(slowest_ms: float, rolls_back: bool) -> None:
    # 19 requests of 1 s and one slowest: percentile_cont(0.95) = 1 s + 0.05 (slowest - 1 s),
    # 2.95 s or 3.05 s (a nearest-rank P95 would read 1 s either way).
    rows = [(i * 10.0, "unified", 1_000.0, False) for i in range(19)]
    rows.append((190.0, "unified", slowest_ms, False))
    timeline = run_judge(RunbookJudge(), [_events(*rows, (901.0, "unified", 10.0, False))])

    assert timeline.rollbacks("jobs") == ([T0 + 900] if rolls_back else [])


def test_runbook_ignores_legacy_and_an_hour_without_unified_requests() -> None:
    rows = [(i * 8.0, "legacy", 9_000.0, True) for i in range(100)]
    timeline = run_judge(RunbookJudge(), [_events(*rows, (1_801.0, "legacy", 10.0, True))])

    assert timeline.rollbacks("jobs") == []
    assert {c.decision for c in timeline.changes["jobs"]} == {Decision.PROCEED}


def test_runbook_reads_only_the_last_hour() -> None:
    # 1000 healthy requests in the first quarter hour, then 1 error in 20 from 61 min on:
    # 1/1020 overall (0.1 %), but 5 % of the hour the 75-min check reads.
    early = [(i * 0.9, "unified", 300.0, False) for i in range(1_000)]
    late = [(3_660.0 + i * 30.0, "unified", 300.0, i == 3) for i in range(20)]
    timeline = run_judge(RunbookJudge(), [_events(*early, *late, (4_501.0, "legacy", 1.0, False))])

    assert timeline.rollbacks("jobs") == [T0 + 4_500]


def test_flagger_holds_on_one_failed_check_and_rolls_back_on_the_second() -> None:
    # Minute 1: 10 % errors (fail); minute 2: healthy (pass); minute 3: slow (fail).
    rows = [(i * 6.0, "unified", 300.0, i == 0) for i in range(10)]
    rows += [(60 + i * 6.0, "unified", 300.0, False) for i in range(10)]
    rows += [(120 + i * 6.0, "unified", 5_000.0, False) for i in range(10)]
    timeline = run_judge(FlaggerJudge(), [_events(*rows, (180.5, "unified", 300.0, False))])

    assert [(c.at_s - T0, c.decision) for c in timeline.changes["jobs"]] == [
        (60.0, Decision.HOLD), (120.0, Decision.PROCEED), (180.0, Decision.ROLLBACK)]


def test_flagger_counts_a_minute_without_unified_data_as_a_failed_check() -> None:
    rows = [(0.0, "unified", 300.0, False), (150.0, "unified", 300.0, False)]
    timeline = run_judge(FlaggerJudge(), [_events(*rows)])

    # Checks at 60 s (one request: pass) and 120 s (none: fail, hold); no third check yet.
    assert [(c.at_s - T0, c.decision) for c in timeline.changes["jobs"]] == [
        (60.0, Decision.PROCEED), (120.0, Decision.HOLD)]
    lenient = run_judge(FlaggerJudge(no_data_fails=False), [_events(*rows)])
    assert {c.decision for c in lenient.changes["jobs"]} == {Decision.PROCEED}


def test_flagger_looks_only_at_the_last_minute() -> None:
    rows = [(0.0, "unified", 300.0, True)] + [
        (60 + i * 3.0, "unified", 300.0, False) for i in range(40)]
    timeline = run_judge(FlaggerJudge(), [_events(*rows, (121.0, "unified", 300.0, False))])

    assert [c.decision for c in timeline.changes["jobs"]] == [Decision.HOLD, Decision.PROCEED]


# -- the scorer, on known timelines ------------------------------------------------------------

def _regression(deadline_s: float = 60.0) -> Incident:
    return Incident("bad", IncidentKind.ERROR_RATE, "jobs", IncidentTarget.UNIFIED,
                    T0 + 1_000, T0 + 2_000, error_pct=2.0, deadline_s=deadline_s)


def _timeline(*changes: tuple[float, Decision], end: float = 3_000.0) -> Timeline:
    timeline = Timeline()
    for at, decision in changes:
        timeline.record(T0 + at, "jobs", decision)
    timeline.end_s = T0 + end
    return timeline


def test_a_rollback_within_the_deadline_is_caught_with_its_delay() -> None:
    found = score_incident(_timeline((0, Decision.PROCEED), (1_030, Decision.ROLLBACK)),
                           _regression())

    assert (found.outcome, found.delay_s) == (Outcome.CAUGHT, 30.0)


def test_a_rollback_after_the_deadline_is_late() -> None:
    found = score_incident(_timeline((0, Decision.PROCEED), (1_090, Decision.ROLLBACK)),
                           _regression())

    assert (found.outcome, found.delay_s) == (Outcome.LATE, 90.0)


def test_no_rollback_is_missed() -> None:
    found = score_incident(_timeline((0, Decision.PROCEED), (1_030, Decision.HOLD)),
                           _regression())

    assert (found.outcome, found.delay_s) == (Outcome.MISSED, None)


def test_a_rollback_before_the_regression_pre_empts_it_and_is_false() -> None:
    scenario = Scenario(start_ts=T0, duration_s=3_000, volumes_per_h={"jobs": 1.0},
                        incidents=(_regression(),))
    run = score_run(_timeline((0, Decision.PROCEED), (500, Decision.ROLLBACK)), scenario,
                    "s", 1, "j")

    assert [i.outcome for i in run.incidents] == [Outcome.PRE_EMPTED]
    assert run.caught == 0
    assert run.false_rollbacks == (("jobs", T0 + 500),)


def test_rollbacks_outside_a_regression_are_false_even_during_a_shared_outage() -> None:
    outage = Incident("shared", IncidentKind.OUTAGE, "jobs", IncidentTarget.BOTH, T0 + 100,
                      T0 + 400, error_pct=30.0)
    scenario = Scenario(start_ts=T0, duration_s=3_000, volumes_per_h={"jobs": 1.0},
                        incidents=(outage, _regression()))
    timeline = _timeline((0, Decision.PROCEED), (200, Decision.ROLLBACK),
                         (300, Decision.PROCEED), (1_010, Decision.ROLLBACK))
    run = score_run(timeline, scenario, "s", 1, "j")

    assert run.false_rollbacks == (("jobs", T0 + 200),)
    assert [(i.outcome, i.delay_s) for i in run.incidents] == [(Outcome.CAUGHT, 10.0)]


def test_time_in_hold_sums_each_hold_until_the_next_change_or_the_end() -> None:
    timeline = _timeline((0, Decision.HOLD), (100, Decision.PROCEED), (2_500, Decision.HOLD))

    assert timeline.seconds_in(Decision.HOLD) == 100 + 500


def test_a_timeline_keeps_only_changes() -> None:
    timeline = _timeline((0, Decision.HOLD), (1, Decision.HOLD), (2, Decision.PROCEED))

    assert [c.at_s - T0 for c in timeline.changes["jobs"]] == [0, 2]


# -- the board ---------------------------------------------------------------------------------

def test_the_board_scores_every_judge_on_the_same_events() -> None:
    board = run_board(select(["latency-step", "legacy-slow"]), [1], default_judges())

    assert [(r.scenario, r.judge) for r in board.runs] == [
        (s, j) for s in ("latency-step", "legacy-slow")
        for j in ("trafficlight", "runbook", "flagger")]
    step = {r.judge: r for r in board.runs if r.scenario == "latency-step"}
    assert all(len(r.incidents) == 1 for r in step.values())
    # The runbook looks every 15 min: it cannot catch a 2-min deadline.
    assert step["runbook"].incidents[0].outcome is Outcome.LATE
    rendered = table(board)
    assert [c.strip() for c in rendered.splitlines()[0].split("|")[1:]] == [
        "trafficlight", "runbook", "flagger"]
    assert "regressions caught by deadline" in rendered and "time in hold" in rendered
    assert set(as_json(board)["judges"]) == {"trafficlight", "runbook", "flagger"}


def test_the_board_is_the_same_for_a_seed_in_one_process_or_several() -> None:
    chosen = select(["latency-step", "shared-outage"])

    assert (table(run_default_board(chosen, [1, 2]))
            == table(run_default_board(chosen, [1, 2], jobs=2)))


def test_scoreboard_command_prints_the_table_and_json() -> None:
    runner = CliRunner()
    shown = runner.invoke(cli, ["scoreboard", "--scenarios", "latency-step", "--seeds", "3"])
    data = runner.invoke(cli, ["scoreboard", "--scenarios", "latency-step", "--seeds", "3",
                               "--format", "json"])

    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith("seeds 3 ")
    assert json.loads(data.output)["seeds"] == [3]


def test_scoreboard_command_refuses_bad_seeds_and_names_in_one_line() -> None:
    runner = CliRunner()

    assert "comma-separated integers" in str(
        runner.invoke(cli, ["scoreboard", "--seeds", "one"]).exception)
    assert "unknown scenario" in str(
        runner.invoke(cli, ["scoreboard", "--scenarios", "meteor"]).exception)


def test_scoreboard_list_names_every_scenario_with_its_label() -> None:
    shown = CliRunner().invoke(cli, ["scoreboard", "--list"])

    assert shown.exit_code == 0
    assert [line.split()[0] for line in shown.output.splitlines()] == [e.name for e in CATALOGUE]
    assert "must roll back jobs within 5 s" in shown.output


@pytest.mark.scoreboard
@pytest.mark.timeout(3_600)
@pytest.mark.skipif(not os.environ.get("TRAFFICLIGHT_SCOREBOARD"),
                    reason="the whole default set (minutes): TRAFFICLIGHT_SCOREBOARD=1 or =strict")
def test_the_default_set_runs_through_the_real_judge() -> None:
    """Structure only, for now: every regression is scored and every scenario reported.
    With TRAFFICLIGHT_SCOREBOARD=strict it is the hard check of issue 11: every regression
    caught by its deadline and no false rollback."""
    board = run_default_board(select(), [1])
    ours = board.of("trafficlight")

    assert {r.scenario for r in ours} == {e.name for e in select()}
    assert sum(len(r.incidents) for r in ours) == sum(
        sum(i.must_roll_back for i in e.scenario(1).incidents) for e in select())
    assert sum(len(r.holds) for r in ours) == sum(
        sum(i.must_hold for i in e.scenario(1).incidents) for e in select())
    assert all(i.outcome in Outcome for r in ours for i in (*r.incidents, *r.holds))
    if os.environ["TRAFFICLIGHT_SCOREBOARD"] == "strict":
        assert [(r.scenario, i.incident, i.outcome) for r in ours for i in r.incidents
                if i.outcome is not Outcome.CAUGHT] == []
        assert [(r.scenario, i.incident) for r in ours for i in r.holds
                if i.outcome is not Outcome.CAUGHT] == []
        assert [(r.scenario, r.false_rollbacks) for r in ours if r.false_rollbacks] == []


# -- routing mismatches ------------------------------------------------------------------------

def test_a_misrouted_scenario_routes_its_own_share_and_stamps_the_config_s_version() -> None:
    scenario = _entry("misrouted")
    events = _columns(scenario)
    unified = np.array(events.routed_to) == "unified"

    assert scenario.configured_shares() == {1: {"jobs": 10.0}}
    assert 0.025 < unified.mean() < 0.035  # 3 % routed, not the 10 % configured
    assert set(events.config_version.tolist()) == {1}
    assert [e["config_version"] for e in generate(scenario)] == events.config_version.tolist()


def _mismatch(deadline_s: float = 120.0) -> Incident:
    return Incident("misrouted", IncidentKind.MISROUTING, "jobs", IncidentTarget.BOTH, T0,
                    T0 + 2_000, deadline_s=deadline_s, expect=Expect.HOLD)


def test_a_mismatch_held_from_its_deadline_to_its_end_is_caught() -> None:
    scenario = Scenario(start_ts=T0, duration_s=3_000, volumes_per_h={"jobs": 1.0},
                        incidents=(_mismatch(),))
    run = score_run(_timeline((0, Decision.HOLD)), scenario, "s", 1, "j")

    assert [(i.outcome, i.delay_s) for i in run.holds] == [(Outcome.CAUGHT, 0.0)]
    assert (run.incidents, run.held) == ((), 1)


@pytest.mark.parametrize("changes", [
    ((0, Decision.HOLD), (1_500, Decision.PROCEED)),   # promoted on biased evidence
    ((0, Decision.PROCEED), (500, Decision.HOLD), (600, Decision.ROLLBACK)),
    ((0, Decision.PROCEED),),
])
def test_a_mismatch_that_proceeds_or_rolls_back_after_its_deadline_is_missed(
        changes: tuple[tuple[float, Decision], ...]) -> None:
    scenario = Scenario(start_ts=T0, duration_s=3_000, volumes_per_h={"jobs": 1.0},
                        incidents=(_mismatch(),))
    run = score_run(_timeline(*changes), scenario, "s", 1, "j")

    assert [i.outcome for i in run.holds] == [Outcome.MISSED]


def test_trafficlight_holds_three_percent_routed_against_ten_configured() -> None:
    board = run_board(select(["misrouted"]), [1], default_judges())
    ours = board.of("trafficlight")[0]
    rendered = table(board)

    assert ours.held == 1 and ours.false_rollbacks == ()
    assert "routing mismatches held" in rendered
    assert "must hold jobs from 2 min on, never proceed" in rendered
    # Never a proceed, from the step's first evaluation on: the guard fires before unified
    # could be shown healthy.
    scenario = _entry("misrouted")
    timeline = run_judge(default_judges()["trafficlight"](scenario), generate_batches(scenario))
    assert {c.decision for c in timeline.changes["jobs"]} == {Decision.HOLD}
