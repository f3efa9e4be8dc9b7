"""The dashboard's HTTP API: snapshot contents and token-guarded controls, over real Postgres."""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from tests.tools.dashboard.rows import (
    RunningDashboard,
    insert_bucket,
    insert_verdict,
    now_s,
)
from trafficlight.base.local_services import free_port
from trafficlight.tools.dashboard.app import FEED, DashboardSettings, create_app
from trafficlight.tools.dashboard.snapshot import config_change_kind, covered_rate


async def _current_config(db: asyncpg.Connection) -> asyncpg.Record:
    return await db.fetchrow("SELECT percentage::float8 AS percentage, enabled, created_by, notes "
                             "FROM webhook_routing_config ORDER BY created_at DESC LIMIT 1")


async def _post(url: str, body: dict, token: str | None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as http, http.post(url, json=body,
                                                          headers=headers) as response:
        return response.status, await response.json()


async def _state_when(url: str, ready: object, timeout_s: float = 10) -> dict:
    """The snapshot once ``ready(snapshot)`` holds (the feed re-reads every 0.2 s)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(int(timeout_s / 0.1)):
            async with http.get(f"{url}/api/state") as response:
                snapshot = await response.json()
            if ready(snapshot):  # type: ignore[operator]
                return snapshot
            await asyncio.sleep(0.1)
    raise AssertionError(f"snapshot never became ready: {snapshot}")


async def test_snapshot_carries_rates_error_pct_and_p95_per_domain_and_target(
        running_dashboard: RunningDashboard, db: asyncpg.Connection) -> None:
    start = now_s() - 30
    await insert_bucket(db, "jobs", "unified", start_s=start, requests=50, errors=1, p95_ms=240)
    snapshot = await _state_when(running_dashboard.url, lambda s: "jobs" in s["series"])
    series = snapshot["series"]["jobs"]["unified"]
    assert series["rps"] == [5.0]  # 50 requests in a closed 10 s bucket
    assert series["error_pct"] == [2.0]
    assert series["p95_ms"] == [240]


async def test_snapshot_shows_latest_verdict_and_only_verdict_changes_in_timeline(
        running_dashboard: RunningDashboard, db: asyncpg.Connection) -> None:
    end = now_s()
    for offset, verdict, decision in [(-3, "healthy", "proceed"), (-2, "healthy", "proceed"),
                                      (-1, "critical", "rollback")]:
        await insert_verdict(db, "jobs", "unified", end_s=end + offset, requests=600,
                             errors=30 if verdict == "critical" else 0, p95_ms=300,
                             verdict=verdict, decision=decision)
    snapshot = await _state_when(running_dashboard.url, lambda s: len(s["timeline"]) == 2)
    latest = {(r["domain"], r["routed_to"]): r for r in snapshot["latest"]}
    assert latest["jobs", "unified"]["verdict"] == "critical"
    assert latest["jobs", "unified"]["error_pct"] == 5.0
    assert [(t["verdict"], t["decision"]) for t in snapshot["timeline"]] == [
        ("critical", "rollback"), ("healthy", "proceed")]


async def test_snapshot_draws_the_default_thresholds_per_rollout_domain(
        running_dashboard: RunningDashboard) -> None:
    snapshot = await _state_when(running_dashboard.url, lambda s: bool(s.get("thresholds")))
    assert set(snapshot["thresholds"]) == {"jobs", "marketplace", "property"}
    assert snapshot["thresholds"]["jobs"] == {
        "warning_error_pct": 0.1, "critical_error_pct": 0.5,
        "warning_p95_ms": 2000.0, "critical_p95_ms": 3000.0}


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
async def test_controls_refuse_without_the_right_token(
        running_dashboard: RunningDashboard, db: asyncpg.Connection, token: str | None) -> None:
    status, body = await _post(f"{running_dashboard.url}/api/percentage",
                               {"percentage": 50, "reason": "no token"}, token)
    assert status == 401
    assert "token" in body["error"]
    assert (await _current_config(db))["percentage"] == 0


async def test_set_percentage_with_the_token_records_a_change_by_the_dashboard(
        running_dashboard: RunningDashboard, db: asyncpg.Connection) -> None:
    status, _ = await _post(f"{running_dashboard.url}/api/percentage",
                            {"percentage": 25, "reason": "Scaling to 25%"},
                            running_dashboard.token)
    assert status == 200
    config = await _current_config(db)
    assert (config["percentage"], config["enabled"]) == (25, True)
    assert (config["created_by"], config["notes"]) == ("dashboard", "Scaling to 25%")


async def test_rollback_disables_routing_and_keeps_the_percentage(
        running_dashboard: RunningDashboard, db: asyncpg.Connection) -> None:
    await db.execute("SELECT update_routing_percentage(10, 'start')")
    status, _ = await _post(f"{running_dashboard.url}/api/rollback",
                            {"reason": "errors on unified"}, running_dashboard.token)
    assert status == 200
    config = await _current_config(db)
    assert (config["percentage"], config["enabled"]) == (10, False)
    assert config["notes"] == "Rollback: errors on unified"


@pytest.mark.parametrize(("body", "message"), [
    ({"percentage": 150, "reason": "too much"}, "between 0 and 100"),
    ({"percentage": "ten", "reason": "not a number"}, "must be a number"),
    ({"percentage": 10, "reason": "  "}, "reason is required"),
    ({"percentage": 10, "reason": ["a", "list"]}, "reason must be text"),
])
async def test_refused_changes_answer_400_with_one_line_and_change_nothing(
        running_dashboard: RunningDashboard, db: asyncpg.Connection,
        body: dict, message: str) -> None:
    status, answer = await _post(f"{running_dashboard.url}/api/percentage", body,
                                 running_dashboard.token)
    assert status == 400
    assert message in answer["error"]
    assert "\n" not in answer["error"]
    assert (await _current_config(db))["percentage"] == 0


async def test_live_stream_sends_snapshots_and_ends_when_the_dashboard_shuts_down(
        database_url: str) -> None:
    # No periodic re-read during the test: the only snapshot is the first one.
    app = create_app(DashboardSettings(database_url=database_url, token="t", refresh_s=600))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{port}/api/stream") as response:
        first = await response.content.readline()
        assert first.startswith(b"data: {")
        await app[FEED].close()  # what the app's on_shutdown does
        rest = await asyncio.wait_for(response.content.read(), 30)  # a deadline, not a bound
    await runner.cleanup()
    assert response.content.at_eof()
    assert b"data: " not in rest


@pytest.mark.parametrize(("before", "after", "kind"), [
    (None, {"enabled": False, "percentage": 0}, "initial"),
    ({"enabled": True, "percentage": 10}, {"enabled": False, "percentage": 10}, "rollback"),
    ({"enabled": False, "percentage": 10}, {"enabled": True, "percentage": 10}, "enable"),
    ({"enabled": True, "percentage": 10}, {"enabled": True, "percentage": 25}, "promotion"),
    ({"enabled": True, "percentage": 25}, {"enabled": True, "percentage": 10}, "reduction"),
    ({"enabled": True, "percentage": 25}, {"enabled": True, "percentage": 25}, "note"),
    ({"enabled": True, "percentage": 25, "domains": ["jobs", "property"]},
     {"enabled": True, "percentage": 25, "domains": ["jobs", "property"],
      "domain_overrides": {"jobs": {"percentage": 25, "enabled": False}}}, "rollback"),
    ({"enabled": True, "percentage": 25, "domains": ["jobs"],
      "domain_overrides": {"jobs": {"percentage": 25, "enabled": False}}},
     {"enabled": True, "percentage": 25, "domains": ["jobs"]}, "enable"),
])
def test_config_changes_are_marked_by_what_they_did(
        before: dict | None, after: dict, kind: str) -> None:
    assert config_change_kind(before, after) == kind


async def test_latest_requests_per_second_count_only_the_buckets_covered(
        running_dashboard: RunningDashboard, db: asyncpg.Connection) -> None:
    # Twenty seconds into a rollout: two closed 10 s buckets of 40 requests, and a 5 min
    # verdict holding those 80. 80 / 20 s = 4/s, not 80 / 300 s.
    end = float(int(now_s()))
    for start in (end - 20, end - 10):
        await insert_bucket(db, "jobs", "unified", start_s=start, requests=40, errors=0,
                            p95_ms=200)
    await insert_verdict(db, "jobs", "unified", end_s=end, requests=80, errors=0, p95_ms=200,
                         verdict="healthy", decision="proceed")

    snapshot = await _state_when(running_dashboard.url, lambda s: any(
        r["domain"] == "jobs" and r["routed_to"] == "unified" and r["requests"] == 80
        for r in s["latest"]))

    [row] = [r for r in snapshot["latest"] if (r["domain"], r["routed_to"]) == ("jobs", "unified")]
    assert row["rps"] == 4.0


def test_covered_rate_uses_the_whole_window_once_it_is_full() -> None:
    assert covered_rate(600, 0.0, 300.0, 1000.0, first_bucket_s=0.0) == 2.0
    assert covered_rate(600, 0.0, 300.0, 1000.0, first_bucket_s=None) == 2.0
    assert covered_rate(60, 0.0, 300.0, 1000.0, first_bucket_s=270.0) == 2.0


async def test_rollback_of_one_domain_leaves_the_others_routing(
        running_dashboard: RunningDashboard, db: asyncpg.Connection) -> None:
    await db.execute("SELECT update_routing_percentage(10, 'start')")
    status, _ = await _post(f"{running_dashboard.url}/api/rollback",
                            {"reason": "jobs errors", "domain": "jobs"}, running_dashboard.token)
    assert status == 200
    rows = await db.fetch("SELECT domain, enabled FROM webhook_routing_domains")
    assert {r["domain"]: r["enabled"] for r in rows} == {
        "jobs": False, "marketplace": True, "property": True}


@pytest.mark.parametrize(("action", "body", "message"), [
    ("promote", {"reason": "go"}, "no rollout plan: set one first"),
    ("set", {"steps": "50,10", "bake": "1h"}, "steps must rise: 10 after 50"),
    ("set", {"steps": "10,50", "bake": "soon"}, "not a duration: 'soon'"),
    ("set", {"bake": "1h"}, "steps (e.g. 10,25,50,100) and bake (e.g. 4h) are required"),
])
async def test_refused_plan_changes_answer_400_with_one_line(
        running_dashboard: RunningDashboard, db: asyncpg.Connection,
        action: str, body: dict, message: str) -> None:
    status, answer = await _post(f"{running_dashboard.url}/api/plan/{action}", body,
                                 running_dashboard.token)
    assert status == 400
    assert message in answer["error"]
    assert "\n" not in answer["error"]
    assert await db.fetchval("SELECT count(*) FROM webhook_rollout_plan") == 0


async def test_the_snapshot_carries_the_plan_and_each_domains_setting(
        running_dashboard: RunningDashboard, db: asyncpg.Connection) -> None:
    await db.execute("SELECT set_rollout_plan('{10,25}', '1 hour', 'rollout day')")
    await db.execute("SELECT set_routing_enabled(false, 'jobs errors', 'jobs')")

    state = await _state_when(running_dashboard.url,
                              lambda s: s["plan"] is not None and not s["domains"][0]["enabled"])

    assert state["plan"]["plan"]["step_pct"] == 10
    assert [b["kind"] for b in state["plan"]["blockers"]] == [
        "not_baked", "not_enough_evidence", "not_enough_evidence"]
    assert state["domains"][0] == {"domain": "jobs", "percentage": 10.0, "enabled": False,
                                   "overridden": True}
