"""status, set-percentage, enable, disable, rollback against a real database, refusals included."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.tools.conftest import RunCli
from trafficlight.base.db import connect


async def _config_rows(database_url: str) -> list[dict[str, object]]:
    conn = await connect(database_url)
    try:
        rows = await conn.fetch("SELECT * FROM webhook_routing_config ORDER BY created_at, id")
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def test_status_shows_the_config_and_a_health_row_per_rollout_target(
    run_cli: RunCli, database_url: str
) -> None:
    result = await run_cli("status", env={"DATABASE_URL": database_url})

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Routing DISABLED at 0% of jobs, marketplace, property")
    assert "by migration: Initial configuration" in lines[1]
    rows = [line.split()[:2] for line in lines[4:10]]
    assert rows == [["jobs", "unified"], ["jobs", "legacy"], ["marketplace", "unified"],
                    ["marketplace", "legacy"], ["property", "unified"], ["property", "legacy"]]
    assert lines[10:] == ["", "Rollout plan: none (set one with `trafficlight plan set "
                              "10,25,50,100 --bake 4h`)"]


async def test_status_json_carries_the_latest_verdict(run_cli: RunCli, database_url: str) -> None:
    now = datetime.now(UTC)
    conn = await connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO webhook_routing_verdicts (domain, routed_to, window_start, window_end, "
            "requests, errors, error_pct, p50_ms, p95_ms, p99_ms, verdict, decision, reasons) "
            "VALUES ('jobs', 'unified', $1, $2, 1000, 60, 6.0, 90, 260, 400, 'critical', "
            "'rollback', ARRAY['error rate 6.00% > 0.5%'])", now - timedelta(minutes=5), now)
    finally:
        await conn.close()

    result = await run_cli("status", "--domain", "jobs", "--json",
                           env={"DATABASE_URL": database_url})

    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["config"]["version"] == 1
    unified, legacy = document["health"]
    assert (unified["verdict"], unified["decision"], unified["error_pct"]) == (
        "critical", "rollback", 6.0)
    assert unified["reasons"] == ["error rate 6.00% > 0.5%"]
    assert (legacy["routed_to"], legacy["verdict"]) == ("legacy", "insufficient_data")


async def test_set_percentage_prints_the_runbook_notice_and_records_who_and_why(
    run_cli: RunCli, database_url: str
) -> None:
    result = await run_cli("set-percentage", "10", "--reason", "Starting 10% rollout",
                           env={"DATABASE_URL": database_url})

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "Routing percentage updated to 10%. Enabled: true"
    newest = (await _config_rows(database_url))[-1]
    assert (newest["percentage"], newest["enabled"]) == (10, True)
    assert newest["notes"] == "Starting 10% rollout"
    assert newest["created_by"] == getpass.getuser()


async def test_set_percentage_json_gives_the_new_config(run_cli: RunCli, database_url: str) -> None:
    result = await run_cli("set-percentage", "12.5", "--reason", "half step", "--json",
                           env={"DATABASE_URL": database_url})

    document = json.loads(result.stdout)
    assert document["notice"] == "Routing percentage updated to 12.5%. Enabled: true"
    assert (document["config"]["version"], document["config"]["percentage"]) == (2, 12.5)


@pytest.mark.parametrize("pct", [["150"], ["--", "-0.5"], ["100.01"]])
async def test_out_of_range_percentage_is_refused_in_one_line(
    run_cli: RunCli, database_url: str, pct: list[str]
) -> None:
    result = await run_cli("set-percentage", "--reason", "too far", *pct,
                           env={"DATABASE_URL": database_url})

    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"error: refused by the database: routing percentage must be between 0 and 100, "
        f"got {pct[-1]}"]
    assert len(await _config_rows(database_url)) == 1


@pytest.mark.parametrize("command", [["set-percentage", "10"], ["enable"], ["disable"],
                                     ["rollback"]])
async def test_blank_reason_is_refused_by_the_database(
    run_cli: RunCli, database_url: str, command: list[str]
) -> None:
    result = await run_cli(*command, "--reason", "  ", env={"DATABASE_URL": database_url})

    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "error: refused by the database: a reason is required for every routing change"]
    assert len(await _config_rows(database_url)) == 1


async def test_missing_reason_is_a_usage_error(run_cli: RunCli, database_url: str) -> None:
    result = await run_cli("disable", env={"DATABASE_URL": database_url})

    assert result.exit_code == 2
    assert "Missing option '--reason'" in result.stderr


async def test_not_a_number_is_a_usage_error(run_cli: RunCli, database_url: str) -> None:
    result = await run_cli("set-percentage", "ten", "--reason", "x",
                           env={"DATABASE_URL": database_url})

    assert result.exit_code == 2
    assert "'ten' is not a number" in result.stderr


async def test_disable_then_enable_keeps_the_percentage(
    run_cli: RunCli, database_url: str
) -> None:
    env = {"DATABASE_URL": database_url}
    await run_cli("set-percentage", "25", "--reason", "Scaling to 25%", env=env)

    disabled = await run_cli("disable", "--reason", "pause for the provider", env=env)
    enabled = await run_cli("enable", "--reason", "provider is back", env=env)

    assert disabled.stdout.splitlines()[0] == "Routing enabled set to: false"
    assert enabled.stdout.splitlines()[0] == "Routing enabled set to: true"
    history = [(r["percentage"], r["enabled"]) for r in await _config_rows(database_url)]
    assert history == [(0, False), (25, True), (25, False), (25, True)]


async def test_rollback_disables_and_says_so_in_the_history(
    run_cli: RunCli, database_url: str
) -> None:
    env = {"DATABASE_URL": database_url}
    await run_cli("set-percentage", "35", "--reason", "step 3", env=env)

    result = await run_cli("rollback", "--reason", "high error rate", "--json", env=env)

    assert result.exit_code == 0, result.stderr
    config = json.loads(result.stdout)["config"]
    assert (config["enabled"], config["percentage"]) == (False, 35.0)
    assert config["notes"] == "Rollback: high error rate"


@pytest.mark.parametrize(("domain", "message"), [
    ("payments", "error: unknown domain 'payments' (rollout domains: jobs, marketplace, property)"),
    ("mobility", "error: domain 'mobility' is protected: it always goes to legacy"),
])
async def test_status_of_a_domain_outside_the_rollout_is_refused(
    run_cli: RunCli, database_url: str, domain: str, message: str
) -> None:
    result = await run_cli("status", "--domain", domain, env={"DATABASE_URL": database_url})

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [message]


async def test_commands_without_database_url_say_how_to_get_one(run_cli: RunCli) -> None:
    result = await run_cli("status", env={})

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: DATABASE_URL is not set (run `trafficlight services` and paste its export lines)"]


async def test_unreachable_database_is_one_line(run_cli: RunCli) -> None:
    result = await run_cli("enable", "--reason", "x",
                           env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"})

    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: cannot connect to postgresql://nobody@127.0.0.1:9")
