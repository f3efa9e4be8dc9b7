"""The config from Postgres: loaded at start, changed live by NOTIFY, kept when the DB goes away."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from tests.router.conftest import StartRouter
from trafficlight.base.db import connect
from trafficlight.base.local_services import free_port
from trafficlight.router.config_watcher import ConfigWatcher
from trafficlight.router.decision import NO_CONFIG, RoutingConfig


async def run_sql(database_url: str, sql: str) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def wait_for(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def test_the_newest_row_is_in_force_after_start(database_url: str) -> None:
    await run_sql(database_url, "SELECT update_routing_percentage(10, 'start the rollout')")
    watcher = ConfigWatcher(database_url, poll_s=30)
    await watcher.start()
    try:
        config = watcher.config
        assert (config.percentage, config.enabled) == (10.0, True)
        assert config.domains == {"jobs", "marketplace", "property"}
        assert config.protected_domains == {"mobility", "profile", "insurance"}
        assert config.version > 1
    finally:
        await watcher.stop()


async def test_a_percentage_change_reaches_a_running_router_without_waiting_for_a_poll(
        database_url: str, start_router: StartRouter) -> None:
    watcher = ConfigWatcher(database_url, poll_s=30)  # a poll cannot be what delivers it
    await watcher.start()
    try:
        router = await start_router(watcher)
        await wait_for(lambda: watcher.listening)
        assert (await router.post("/webhook/jobs", data=b"{}")).headers["X-Routed-To"] == "legacy"

        changed_at = time.perf_counter()
        await run_sql(database_url, "SELECT update_routing_percentage(100, 'all in')")
        await wait_for(lambda: watcher.config.percentage == 100)
        latency_ms = (time.perf_counter() - changed_at) * 1000
        print(f"\nconfig change to running router: {latency_ms:.1f} ms")

        response = await router.post("/webhook/jobs", data=b"{}")
        assert response.headers["X-Routed-To"] == "unified"
    finally:
        await watcher.stop()


async def test_the_last_config_stays_in_force_when_the_database_goes_away(
        database_url: str, empty_database_url: str) -> None:
    await run_sql(database_url, "SELECT update_routing_percentage(30, 'canary')")
    watcher = ConfigWatcher(database_url, poll_s=0.2)
    await watcher.start()
    try:
        loaded = watcher.config
        await wait_for(lambda: watcher.listening)
        # The database goes away under the router: no new connections, its own one killed.
        name = database_name(database_url)
        await run_sql(empty_database_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await run_sql(empty_database_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                          f" WHERE datname = '{name}'")
        await wait_for(lambda: not watcher.listening)
        await asyncio.sleep(0.5)  # a few failed reconnects later
        assert watcher.config == loaded
    finally:
        await watcher.stop()
        await run_sql(empty_database_url,
                      f'ALTER DATABASE "{database_name(database_url)}" ALLOW_CONNECTIONS true')


async def test_without_a_reachable_database_everything_goes_to_legacy(
        start_router: StartRouter) -> None:
    watcher = ConfigWatcher(f"postgresql://postgres@127.0.0.1:{free_port()}/none", poll_s=0.2)
    await watcher.start(first_load_timeout_s=0.3)
    try:
        assert watcher.config == NO_CONFIG
        router = await start_router(watcher)
        response = await router.post("/webhook/jobs", data=b"{}")
        assert (response.status, response.headers["X-Routed-To"]) == (200, "legacy")
    finally:
        await watcher.stop()


def test_an_older_config_never_replaces_a_newer_one() -> None:
    watcher = ConfigWatcher("postgresql://unused/none")
    newer = RoutingConfig(version=8, percentage=20, enabled=True)
    older = RoutingConfig(version=7, percentage=10, enabled=True)
    assert watcher.apply(newer)
    assert not watcher.apply(older)  # a poll that read the table before the change landed
    assert watcher.config == newer


async def test_a_malformed_notification_is_ignored(database_url: str) -> None:
    watcher = ConfigWatcher(database_url, poll_s=30)
    await watcher.start()
    try:
        before = watcher.config
        await wait_for(lambda: watcher.listening)
        for payload in ('{"version": 99', '{"version": 98}'):  # not JSON; no config fields
            await run_sql(database_url, f"SELECT pg_notify('webhook_routing_config', '{payload}')")
        await asyncio.sleep(0.2)
        assert watcher.config == before
    finally:
        await watcher.stop()


async def test_the_database_password_never_reaches_the_logs(
        caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql://router:s3cret-pw@127.0.0.1:{free_port()}/routing"
    watcher = ConfigWatcher(url, poll_s=0.2)
    with caplog.at_level(logging.INFO):
        await watcher.start(first_load_timeout_s=0.5)
        await watcher.stop()
    assert "database unavailable" in caplog.text
    assert "s3cret-pw" not in caplog.text


async def test_one_domain_taken_back_over_notify_while_the_others_keep_routing(
        database_url: str, start_router: StartRouter) -> None:
    await run_sql(database_url, "SELECT update_routing_percentage(100, 'all in')")
    watcher = ConfigWatcher(database_url, poll_s=30)  # a poll cannot be what delivers it
    await watcher.start()
    try:
        router = await start_router(watcher)
        await wait_for(lambda: watcher.listening)
        before = watcher.config.version

        await run_sql(database_url, "SELECT set_routing_enabled(false, 'jobs 5xx', 'jobs')")
        await wait_for(lambda: watcher.config.version > before)

        routed = {domain: (await router.post(f"/webhook/{domain}", data=b"{}"))
                  .headers["X-Routed-To"] for domain in ("jobs", "marketplace", "property")}
        assert routed == {"jobs": "legacy", "marketplace": "unified", "property": "unified"}
        assert watcher.config.setting_for("jobs").enabled is False
    finally:
        await watcher.stop()


async def test_a_malformed_override_in_a_notification_is_ignored(database_url: str) -> None:
    watcher = ConfigWatcher(database_url, poll_s=30)
    await watcher.start()
    try:
        loaded = watcher.config
        watcher._on_notify(None, 0, "webhook_routing_config",
                           '{"version": 999, "percentage": 10, "enabled": true, "domains": '
                           '["jobs"], "protected_domains": [], "domain_overrides": '
                           '{"jobs": {"percentage": 10, "enabled": "yes"}}}')
        assert watcher.config == loaded
    finally:
        await watcher.stop()


async def test_through_a_transaction_pooler_the_config_is_polled(
        database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    pooled = f"{database_url}?prepared_statements=false"  # treated as a transaction pooler
    caplog.set_level(logging.WARNING, logger="trafficlight")
    watcher = ConfigWatcher(pooled, poll_s=0.2)
    await watcher.start()
    try:
        await run_sql(database_url, "SELECT update_routing_percentage(35, 'polled, not heard')")
        await wait_for(lambda: watcher.config.percentage == 35.0)
        assert not watcher.listening
    finally:
        await watcher.stop()
    assert "routing config: " in caplog.text and "LISTEN cannot work there; polling" in caplog.text
