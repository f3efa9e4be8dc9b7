"""`trafficlight report` on a fixture rollout day: figures match SQL and counts done apart."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.tools.conftest import RunCli, StoreEvents
from trafficlight.base.db import connect
from trafficlight.streams.thresholds import parse_thresholds
from trafficlight.tools.report import build_report, chart_bucket
from trafficlight.tools.simulate import Incident, LatencyProfile, Scenario, generate

DAY = datetime(2026, 11, 28, tzinfo=UTC)
ROLLOUT_DOMAINS = ("jobs", "marketplace", "property")


@dataclass(frozen=True)
class ConfigRow:
    at: datetime
    percentage: float
    enabled: bool
    notes: str
    created_by: str


# The day's config history; the first row was already in force when the day began.
HISTORY = [
    ConfigRow(DAY - timedelta(hours=1), 0, False, "Initial configuration", "migration"),
    ConfigRow(DAY + timedelta(hours=8), 10, True, "Starting 10% rollout", "alice"),
    ConfigRow(DAY + timedelta(hours=12), 25, True, "Scaling to 25% after successful 10% test",
              "alice"),
    ConfigRow(DAY + timedelta(hours=16, minutes=30), 25, False,
              "Emergency rollback - high error rate", "bob"),
    ConfigRow(DAY + timedelta(hours=18), 10, True, "Resume at 10% after the fix", "bob"),
]
SPIKE = Incident("error-spike-jobs", "error_spike", "jobs", "unified",
                 (DAY + timedelta(hours=16)).timestamp(),
                 (DAY + timedelta(hours=16, minutes=30)).timestamp(), error_pct=20.0)


def _fixture_events() -> list[dict[str, object]]:
    """The runbook's volumes, split as the history says, no background errors, one spike."""
    steps = tuple(((row.at - DAY).total_seconds(), row.percentage if row.enabled else 0.0)
                  for row in HISTORY[1:])
    scenario = Scenario(
        start_ts=DAY.timestamp(), duration_s=86_400, percentage_steps=((0.0, 0.0), *steps),
        targets={"legacy": LatencyProfile(450.0, 0.5, 0.0),
                 "unified": LatencyProfile(380.0, 0.45, 0.0)},
        incidents=(SPIKE,), seed=4,
    )
    events = list(generate(scenario))
    # Protected-domain traffic is always legacy and outside the rollout's figures.
    events.append({**events[0], "event_id": "mobility-1", "domain": "mobility",
                   "response_time_ms": 99_999.0})
    return events


@pytest.fixture
async def rollout_day(database_url: str, store_events: StoreEvents) -> list[dict[str, object]]:
    events = _fixture_events()
    await store_events(database_url, events)
    conn = await connect(database_url)
    try:
        await conn.executemany(
            "INSERT INTO webhook_routing_config (created_at, percentage, enabled, notes, "
            "created_by) VALUES ($1, $2, $3, $4, $5)",
            [(r.at, r.percentage, r.enabled, r.notes, r.created_by) for r in HISTORY])
    finally:
        await conn.close()
    return events


async def _sql_p95(database_url: str, start: datetime, end: datetime, target: str) -> float:
    conn = await connect(database_url)
    try:
        return await conn.fetchval(
            "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY response_time_ms) "
            "FROM webhook_routing_logs WHERE created_at >= $1 AND created_at < $2 "
            "AND routed_to = $3 AND domain IN ('jobs', 'marketplace', 'property')",
            start, end, target)
    finally:
        await conn.close()


async def test_each_config_row_in_the_period_is_a_step(
    rollout_day: list[dict[str, object]], database_url: str
) -> None:
    report = await build_report(database_url, DAY, DAY + timedelta(days=1))

    assert [(s.start, s.end) for s in report.steps] == [
        (DAY, HISTORY[1].at), (HISTORY[1].at, HISTORY[2].at), (HISTORY[2].at, HISTORY[3].at),
        (HISTORY[3].at, HISTORY[4].at), (HISTORY[4].at, DAY + timedelta(days=1)),
    ]
    assert [(float(s.percentage), s.enabled) for s in report.steps] == [
        (0, False), (10, True), (25, True), (25, False), (10, True)]
    # The migration's own first row was written today, after the fixture day: it comes next.
    assert [s.outcome for s in report.steps] == [r.notes for r in HISTORY[1:]] + [
        "Initial configuration: all traffic to legacy"]


async def test_step_figures_match_counts_and_sql_done_apart(
    rollout_day: list[dict[str, object]], database_url: str
) -> None:
    report = await build_report(database_url, DAY, DAY + timedelta(days=1))

    for step in report.steps:
        inside = [e for e in rollout_day if e["domain"] in ROLLOUT_DOMAINS
                  and step.start.timestamp() <= e["ts"] < step.end.timestamp()]
        for target in ("unified", "legacy"):
            mine = [e for e in inside if e["routed_to"] == target]
            figures = step.totals[target]
            assert figures.requests == len(mine)
            assert figures.errors == sum(e["status"] == "error" for e in mine)
            if mine:
                expected_p95 = await _sql_p95(database_url, step.start, step.end, target)
                assert figures.p95_ms == pytest.approx(expected_p95)


async def test_decisions_follow_the_runbook_targets(
    rollout_day: list[dict[str, object]], database_url: str
) -> None:
    report = await build_report(database_url, DAY, DAY + timedelta(days=1))

    # 0%: nothing on unified to judge; 10%: clean; 25%: the spike breaks 0.1% errors;
    # disabled: nothing on unified; 10% again: clean.
    assert [s.decision for s in report.steps] == [
        "hold", "proceed", "rollback", "hold", "proceed"]
    [missed] = report.steps[2].missed
    assert missed.startswith("error rate ") and missed.endswith("% >= 0.1%")


async def test_the_success_criteria_are_the_thresholds_files_warning_limits(
    rollout_day: list[dict[str, object]], database_url: str
) -> None:
    lenient = parse_thresholds({"thresholds": {"warning_error_pct": 50.0,
                                               "critical_error_pct": 60.0}}, name="lenient")
    report = await build_report(database_url, DAY, DAY + timedelta(days=1), thresholds=lenient)

    # The 25% step's spike is far under a 50% error criterion: criteria met, proceed.
    assert [s.criteria for s in report.steps] == [
        "no_traffic", "met", "met", "no_traffic", "met"]
    assert report.steps[2].decision == "proceed"
    assert report.to_dict()["targets"]["error_pct"] == 50.0


async def test_a_period_inside_one_step_is_one_clipped_step(
    rollout_day: list[dict[str, object]], database_url: str
) -> None:
    since, until = DAY + timedelta(hours=9), DAY + timedelta(hours=10)

    report = await build_report(database_url, since, until)

    [step] = report.steps
    assert (step.start, step.end, step.version) == (since, until, report.steps[0].version)
    assert step.totals["unified"].requests == sum(
        1 for e in rollout_day if e["routed_to"] == "unified"
        and since.timestamp() <= e["ts"] < until.timestamp())


def test_chart_bucket_keeps_lines_readable() -> None:
    assert chart_bucket(DAY, DAY + timedelta(days=1)) == timedelta(minutes=10)
    assert chart_bucket(DAY, DAY + timedelta(hours=1)) == timedelta(minutes=1)


async def test_report_command_writes_markdown_and_a_png_chart(
    rollout_day: list[dict[str, object]], database_url: str, run_cli: RunCli, tmp_path: Path
) -> None:
    out, chart = tmp_path / "rollout.md", tmp_path / "rollout.png"

    result = await run_cli("report", "--since", "2026-11-28T00:00:00Z", "--until",
                           "2026-11-29T00:00:00Z", "--out", str(out), "--chart", str(chart),
                           env={"DATABASE_URL": database_url, "TZ": "Europe/Berlin"})

    assert result.exit_code == 0, result.stderr
    markdown = out.read_text()
    # Times in the reader's zone, as ISO 8601 with the offset.
    assert markdown.startswith(
        "# Rollout report: 2026-11-28T01:00+01:00 to 2026-11-29T01:00+01:00")
    assert "![Error rate and P95 per target over time](rollout.png)" in markdown
    assert "## Step 3: 25% (config version" in markdown
    assert ("- **End:** 2026-11-28T17:30+01:00 (4 h 30 min), next change by bob: "
            "Emergency rollback - high error rate") in markdown
    summary_rows = [line for line in markdown.splitlines() if line.startswith("| 3 |")]
    assert len(summary_rows) == 1 and summary_rows[0].endswith("| **rollback** |")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_report_command_writes_an_svg_chart_and_json(
    rollout_day: list[dict[str, object]], database_url: str, run_cli: RunCli, tmp_path: Path
) -> None:
    chart = tmp_path / "rollout.svg"

    result = await run_cli("report", "--since", "2026-11-28T08:00Z", "--until",
                           "2026-11-28T12:00Z", "--chart", str(chart), "--json",
                           env={"DATABASE_URL": database_url})

    assert result.exit_code == 0, result.stderr
    [step] = json.loads(result.stdout)["steps"]
    assert (step["percentage"], step["decision"], step["created_by"]) == (10.0, "proceed",
                                                                          "alice")
    assert "<svg" in chart.read_text()[:500]


async def test_report_refuses_another_chart_format(
    database_url: str, run_cli: RunCli, tmp_path: Path
) -> None:
    result = await run_cli("report", "--since", "-24h", "--chart", str(tmp_path / "c.gif"),
                           env={"DATABASE_URL": database_url})

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: --chart {tmp_path / 'c.gif'}: the chart is written as .png or .svg"]
