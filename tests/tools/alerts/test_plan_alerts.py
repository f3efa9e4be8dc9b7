"""`trafficlight alerts` with a database: the plan in verdict alerts, plan changes as alerts.

A real broker, a real Postgres (a fresh migrated database per test) and local HTTP receivers;
plan changes go through the SQL plan functions, as operators and workers make them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest

from tests.tools.alerts.conftest import Receiver
from tests.tools.alerts.test_alert_changes import verdict
from tests.tools.alerts.test_alerts_consumer import FAST_RETRY, _produce
from tests.tools.conftest import RunCli
from trafficlight.base.db import connect
from trafficlight.base.kafka import ensure_topics
from trafficlight.base.local_services import free_port
from trafficlight.tools import plan_operations
from trafficlight.tools.alerts.consumer import AlertSettings, run_alerts
from trafficlight.tools.plan_operations import PlanAction

#: A liveness bound for a loaded machine, not a performance target.
WAIT_S = 60.0
#: Polled often, so a poll finding a row the NOTIFY already announced would show as a repeat.
POLL_S = 0.2


async def _until(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def alerts_running(config: AlertSettings) -> AsyncIterator[None]:
    """The alert consumer from its announce line (plan baseline read) until the block ends."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_alerts(config, stop, announce=lambda _line: ready.set()))
    await _until(lambda: ready.is_set() or task.done())
    try:
        yield
    finally:
        stop.set()
        await task


def _settings(kafka_bootstrap: str, topic: str, database_url: str | None,
              *receivers: Receiver) -> AlertSettings:
    return AlertSettings(
        kafka_bootstrap, webhook_urls=tuple(r.url for r in receivers if r.url.startswith("http")),
        notify_urls=tuple(r.url for r in receivers if r.url.startswith("json")), topic=topic,
        group_id=f"alerts-{topic}", offset_reset="earliest", retry=FAST_RETRY,
        database_url=database_url, plan_poll_s=POLL_S)


async def _set_plan(database_url: str) -> None:
    await plan_operations.set_plan(database_url, [Decimal(10), Decimal(25), Decimal(50)],
                                   3600.0, "rollout day", "carol", required_proceed=3)


def _field(message: dict, title: str) -> str | None:
    return next((f["value"] for f in message["attachments"][0]["fields"]
                 if f["title"] == title), None)


async def test_a_verdict_alert_carries_the_plan_block(
        kafka_bootstrap: str, unique_topic: Callable[[str], str], database_url: str,
        receiver: Receiver, json_receiver: Receiver) -> None:
    topic = unique_topic("verdicts")
    await ensure_topics(kafka_bootstrap, {topic: 1})
    await _set_plan(database_url)

    async with alerts_running(_settings(kafka_bootstrap, topic, database_url, receiver,
                                        json_receiver)):
        await _produce(kafka_bootstrap, topic, [verdict(1), verdict(2, "critical", "rollback")])
        await _until(lambda: bool(receiver.accepted and json_receiver.accepted))

    block = _field(receiver.accepted[0], "rollout plan")
    assert block is not None
    lines = block.splitlines()
    assert lines[0] == ("Rollout plan v1 RUNNING: step 1 of 3 at 10% (steps 10, 25, 50), "
                        "next 25%")
    assert lines[1].startswith("Baked ") and "proceed verdicts in a row: jobs 0/3" in lines[1]
    assert lines[2].startswith("Blocked: baked ")
    assert json_receiver.accepted[0]["message"].endswith(block)


async def test_a_promote_and_a_pause_are_one_alert_each_on_every_channel(
        kafka_bootstrap: str, unique_topic: Callable[[str], str], database_url: str,
        receiver: Receiver, json_receiver: Receiver) -> None:
    topic = unique_topic("verdicts")
    await ensure_topics(kafka_bootstrap, {topic: 1})
    await _set_plan(database_url)  # before the consumer starts: the baseline, not news

    async with alerts_running(_settings(kafka_bootstrap, topic, database_url, receiver,
                                        json_receiver)):
        await plan_operations.act(database_url, PlanAction.PROMOTE, "dashboards look fine",
                                  "alice")
        await plan_operations.act(database_url, PlanAction.PAUSE, "lunch", "bob")
        await _until(lambda: len(receiver.accepted) >= 2 and len(json_receiver.accepted) >= 2)
        await asyncio.sleep(10 * POLL_S)  # polls that would repeat an alert have run by now

    assert [m["text"] for m in receiver.accepted] == [
        ":large_green_circle: trafficlight rollout plan promoted to step 2 of 3: 10% -> 25%",
        ":double_vertical_bar: trafficlight rollout plan paused at step 2 of 3 (25%)",
    ]
    assert [(_field(m, "by"), _field(m, "why")) for m in receiver.accepted] == [
        ("alice", "dashboards look fine"), ("bob", "lunch")]
    assert [(m["title"], m["type"]) for m in json_receiver.accepted] == [
        ("trafficlight rollout plan promoted to step 2 of 3: 10% -> 25%", "success"),
        ("trafficlight rollout plan paused at step 2 of 3 (25%)", "warning"),
    ]
    assert "by bob: lunch" in json_receiver.accepted[1]["message"]
    assert "Rollout plan v3 PAUSED: step 2 of 3" in json_receiver.accepted[1]["message"]


async def test_a_change_during_a_lost_connection_is_announced_once_after_the_reconnect(
        kafka_bootstrap: str, unique_topic: Callable[[str], str], database_url: str,
        receiver: Receiver) -> None:
    topic = unique_topic("verdicts")
    await ensure_topics(kafka_bootstrap, {topic: 1})
    await _set_plan(database_url)

    async with alerts_running(_settings(kafka_bootstrap, topic, database_url, receiver)):
        await plan_operations.act(database_url, PlanAction.PROMOTE, "step up", "alice")
        await _until(lambda: len(receiver.accepted) >= 1)
        admin = await connect(database_url)
        try:  # the follower's connection is the only other one on this test's database
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        finally:
            await admin.close()
        await plan_operations.act(database_url, PlanAction.PAUSE, "while it was away", "bob")
        await _until(lambda: len(receiver.accepted) >= 2)
        await asyncio.sleep(10 * POLL_S)

    assert killed >= 1
    assert [m["text"].split("trafficlight ", 1)[1] for m in receiver.accepted] == [
        "rollout plan promoted to step 2 of 3: 10% -> 25%",
        "rollout plan paused at step 2 of 3 (25%)",
    ]


async def test_alerts_still_flow_with_the_database_unreachable(
        kafka_bootstrap: str, unique_topic: Callable[[str], str], receiver: Receiver,
        caplog: pytest.LogCaptureFixture) -> None:
    topic = unique_topic("verdicts")
    await ensure_topics(kafka_bootstrap, {topic: 1})
    nowhere = f"postgresql://trafficlight@127.0.0.1:{free_port()}/nowhere"
    caplog.set_level(logging.WARNING, logger="trafficlight")

    async with alerts_running(_settings(kafka_bootstrap, topic, nowhere, receiver)):
        await _produce(kafka_bootstrap, topic, [verdict(1), verdict(2, "critical", "rollback")])
        await _until(lambda: len(receiver.accepted) >= 1)

    [alert] = receiver.accepted
    assert "critical -> rollback" in alert["text"]
    assert _field(alert, "rollout plan") is None
    assert "sent without the rollout plan (database unavailable)" in caplog.text


async def test_through_a_transaction_pooler_the_plan_is_polled(
        kafka_bootstrap: str, unique_topic: Callable[[str], str], database_url: str,
        receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    topic = unique_topic("verdicts")
    await ensure_topics(kafka_bootstrap, {topic: 1})
    await _set_plan(database_url)
    pooled = f"{database_url}?prepared_statements=false"  # treated as a transaction pooler
    caplog.set_level(logging.WARNING, logger="trafficlight")

    async with alerts_running(_settings(kafka_bootstrap, topic, pooled, receiver)):
        await plan_operations.act(database_url, PlanAction.ABORT, "not today", "alice")
        await _until(lambda: len(receiver.accepted) >= 1)

    assert "LISTEN cannot work there; polling" in caplog.text
    assert [m["text"] for m in receiver.accepted] == [
        ":red_circle: trafficlight rollout plan aborted at step 1 of 3 (10%): "
        "every domain back to legacy"]


async def test_a_database_url_that_is_not_postgres_is_a_one_line_error(run_cli: RunCli) -> None:
    result = await run_cli("alerts", "--webhook", "http://127.0.0.1:9/hook",
                           "--database-url", "mysql://db/x",
                           env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})

    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: DATABASE_URL must be a postgresql:// URL, got 'mysql://db/x'"]
