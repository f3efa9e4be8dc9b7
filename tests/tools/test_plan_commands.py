"""`trafficlight plan ...`, `promote`/`pause`/`resume`/`abort`, `--domain`, on a real database."""

from __future__ import annotations

import getpass
import json

import pytest

from tests.tools.conftest import RunCli
from trafficlight.base.db import connect


async def _plan_rows(database_url: str) -> list[dict[str, object]]:
    conn = await connect(database_url)
    try:
        rows = await conn.fetch("SELECT * FROM webhook_rollout_plan ORDER BY id")
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def _domains(database_url: str) -> dict[str, tuple[float, bool]]:
    conn = await connect(database_url)
    try:
        rows = await conn.fetch("SELECT domain, percentage, enabled FROM webhook_routing_domains")
    finally:
        await conn.close()
    return {r["domain"]: (float(r["percentage"]), r["enabled"]) for r in rows}


async def test_plan_set_starts_the_first_step_and_records_who_and_why(
        run_cli: RunCli, database_url: str) -> None:
    result = await run_cli("plan", "set", "10,25,35,50,100", "--bake", "4h",
                           "--reason", "rollout day", env={"DATABASE_URL": database_url})

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "Rollout plan set: 10%, 25%, 35%, 50%, 100%, bake 04:00:00. Step 1: 10%")
    assert "step 1 of 5 at 10% (steps 10, 25, 35, 50, 100), next 25%" in result.stdout
    [row] = await _plan_rows(database_url)
    assert (row["created_by"], row["notes"], row["state"]) == (
        getpass.getuser(), "rollout day", "running")
    assert set((await _domains(database_url)).values()) == {(10.0, True)}


async def test_plan_show_json_gives_bake_evidence_and_blockers(
        run_cli: RunCli, database_url: str) -> None:
    env = {"DATABASE_URL": database_url}
    await run_cli("plan", "set", "10,50", "--bake", "1h", "--reason", "x", env=env)

    result = await run_cli("plan", "show", "--json", env=env)

    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)["plan"]
    assert (plan["plan"]["current_step"], plan["plan"]["step_pct"]) == (1, 10)
    assert plan["left_s"] > 3500
    assert plan["evidence"] == {"jobs": 0, "marketplace": 0, "property": 0}
    kinds = [b["kind"] for b in plan["blockers"]]
    assert kinds == ["not_baked"] + ["not_enough_evidence"] * 3


async def test_plan_show_without_a_plan_says_how_to_set_one(
        run_cli: RunCli, database_url: str) -> None:
    result = await run_cli("plan", "show", env={"DATABASE_URL": database_url})

    assert result.exit_code == 0, result.stderr
    assert "Rollout plan: none" in result.stdout


@pytest.mark.parametrize("spelling", [("promote",), ("plan", "promote")])
async def test_promote_moves_to_the_next_step_under_either_spelling(
        run_cli: RunCli, database_url: str, spelling: tuple[str, ...]) -> None:
    env = {"DATABASE_URL": database_url}
    await run_cli("plan", "set", "10,25,50", "--bake", "1h", "--reason", "x", env=env)

    result = await run_cli(*spelling, "--reason", "manual: dashboards look fine", env=env)

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "Rollout plan promoted to step 2 of 3: 25%"
    assert set((await _domains(database_url)).values()) == {(25.0, True)}


async def test_pause_resume_abort_walk_the_plan(run_cli: RunCli, database_url: str) -> None:
    env = {"DATABASE_URL": database_url}
    await run_cli("plan", "set", "10,25,50", "--bake", "1h", "--reason", "x", env=env)

    paused = await run_cli("pause", "--reason", "lunch", "--json", env=env)
    resumed = await run_cli("plan", "resume", "--reason", "back", env=env)
    aborted = await run_cli("abort", "--reason", "unified is wrong", env=env)

    assert json.loads(paused.stdout)["plan"]["plan"]["state"] == "paused"
    assert resumed.stdout.splitlines()[0] == "Rollout plan resumed at step 1 of 3"
    assert aborted.exit_code == 0, aborted.stderr
    assert [r["action"] for r in await _plan_rows(database_url)] == [
        "set", "pause", "resume", "abort"]
    assert {on for _, on in (await _domains(database_url)).values()} == {False}


async def test_promoting_a_paused_plan_is_refused_in_one_line(
        run_cli: RunCli, database_url: str) -> None:
    env = {"DATABASE_URL": database_url}
    await run_cli("plan", "set", "10,25", "--bake", "1h", "--reason", "x", env=env)
    await run_cli("pause", "--reason", "hold", env=env)

    result = await run_cli("promote", "--reason", "go", env=env)

    assert result.exit_code == 3
    assert result.stderr.strip() == ("error: refused by the database: the rollout plan is "
                                     "paused: only a running plan can be promoted")


@pytest.mark.parametrize("steps", ["10,abc", "50,10", "0,50"])
async def test_malformed_steps_are_one_line_errors(run_cli: RunCli, database_url: str,
                                                   steps: str) -> None:
    result = await run_cli("plan", "set", steps, "--bake", "1h", "--reason", "x",
                           env={"DATABASE_URL": database_url})

    assert result.exit_code in (2, 3)
    assert len(result.stderr.strip().splitlines()) == 1
    assert await _plan_rows(database_url) == []


async def test_a_malformed_bake_is_a_usage_error(run_cli: RunCli, database_url: str) -> None:
    result = await run_cli("plan", "set", "10,50", "--bake", "soon", "--reason", "x",
                           env={"DATABASE_URL": database_url})

    assert result.exit_code == 2
    assert "not a duration: 'soon'" in result.stderr


async def test_disable_one_domain_leaves_the_others_routing(
        run_cli: RunCli, database_url: str) -> None:
    env = {"DATABASE_URL": database_url}
    await run_cli("set-percentage", "25", "--reason", "x", env=env)

    result = await run_cli("disable", "--domain", "jobs", "--reason", "jobs 5xx", env=env)

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "Routing enabled for jobs set to: false"
    assert "  jobs: DISABLED at 25% (own setting)" in result.stdout.splitlines()
    assert await _domains(database_url) == {
        "jobs": (25.0, False), "marketplace": (25.0, True), "property": (25.0, True)}


async def test_set_percentage_and_rollback_of_one_domain(
        run_cli: RunCli, database_url: str) -> None:
    env = {"DATABASE_URL": database_url}
    await run_cli("set-percentage", "25", "--reason", "x", env=env)

    held = await run_cli("set-percentage", "10", "--domain", "property", "--reason", "slow",
                         "--json", env=env)
    rolled = await run_cli("rollback", "--domain", "marketplace", "--reason", "bad", env=env)
    enabled = await run_cli("enable", "--domain", "marketplace", "--reason", "fixed", env=env)

    assert json.loads(held.stdout)["config"]["per_domain"]["property"] == {
        "percentage": 10.0, "enabled": True}
    assert rolled.exit_code == 0 and enabled.exit_code == 0, rolled.stderr + enabled.stderr
    assert await _domains(database_url) == {
        "jobs": (25.0, True), "marketplace": (25.0, True), "property": (10.0, True)}


@pytest.mark.parametrize(("domain", "message"), [
    ("mobility", "domain mobility is protected: it always goes to legacy"),
    ("payments", "unknown domain payments (rollout domains: jobs, marketplace, property)"),
])
async def test_a_domain_outside_the_rollout_is_refused_in_one_line(
        run_cli: RunCli, database_url: str, domain: str, message: str) -> None:
    result = await run_cli("disable", "--domain", domain, "--reason", "x",
                           env={"DATABASE_URL": database_url})

    assert result.exit_code == 3
    assert result.stderr.strip() == f"error: refused by the database: {message}"
