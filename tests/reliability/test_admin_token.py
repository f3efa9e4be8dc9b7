"""Scenario 6, admin actions: the dashboard's controls need the token; no secret is ever shown.

The real ``trafficlight dashboard`` process, with a token in its environment and a password in
DATABASE_URL. Every control is tried with near-miss tokens (none, empty, another scheme, a
prefix, the token with a byte changed, padded, in the query string): all 401 and the config
unchanged. With the token the change goes through. Neither the token nor the password appears
in the dashboard's log or in anything it serves.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.reliability.harness import PASSWORD, REPO_ROOT, child_env, wait_http_ok, with_password
from trafficlight.base.db import connect
from trafficlight.base.local_services import free_port

pytestmark = pytest.mark.reliability

TOKEN = "dashboard-T0ken-9f8e7d6c5b4a"

NEAR_MISSES = [
    None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", f"Token {TOKEN}", f"Bearer {TOKEN[:-1]}",
    f"Bearer {TOKEN[:-1]}X", f"Bearer {TOKEN}x", f"Bearer {TOKEN.upper()}", "Bearer *",
    f"Bearer {TOKEN}\u200b",
]

ACTIONS = {"percentage": {"percentage": 100, "reason": "attempt"}, "enable": {},
           "disable": {}, "rollback": {}}


@dataclass
class Dashboard:
    base: str
    log_path: Path
    proc: subprocess.Popen[bytes]


@pytest.fixture
async def dashboard(tmp_path: Path, database_url: str) -> AsyncIterator[Dashboard]:
    port = free_port()
    log_path = tmp_path / "dashboard.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trafficlight.cli", "dashboard", "--host", "127.0.0.1",
             "--port", str(port)], cwd=REPO_ROOT, stdout=log, stderr=log,
            env=child_env({"DATABASE_URL": with_password(database_url),
                           "TRAFFICLIGHT_DASHBOARD_TOKEN": TOKEN}))
    base = f"http://127.0.0.1:{port}"
    await wait_http_ok(f"{base}/api/state")
    yield Dashboard(base, log_path, proc)
    proc.terminate()
    await asyncio.to_thread(proc.wait, 30)


async def current_config(database_url: str) -> tuple[float, bool, int]:
    conn = await connect(database_url)
    try:
        row = await conn.fetchrow("SELECT percentage, enabled, id FROM webhook_routing_config "
                                  "ORDER BY id DESC LIMIT 1")
    finally:
        await conn.close()
    return float(row["percentage"]), row["enabled"], row["id"]


async def test_every_control_refuses_near_miss_tokens_and_changes_nothing(
        dashboard: Dashboard, database_url: str) -> None:
    before = await current_config(database_url)
    statuses = set()
    async with aiohttp.ClientSession() as session:
        for action, body in ACTIONS.items():
            for authorization in NEAR_MISSES:
                headers = {} if authorization is None else {"Authorization": authorization}
                async with session.post(f"{dashboard.base}/api/{action}", headers=headers,
                                        data=orjson.dumps(body)) as response:
                    statuses.add(response.status)
            async with session.post(f"{dashboard.base}/api/{action}?token={TOKEN}",
                                    data=orjson.dumps(body)) as response:
                statuses.add(response.status)
    assert statuses == {401}
    assert await current_config(database_url) == before


async def test_the_token_lets_a_change_through_and_no_secret_is_ever_shown(
        dashboard: Dashboard, database_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{dashboard.base}/api/percentage",
                                headers={"Authorization": f"Bearer {TOKEN}"},
                                data=orjson.dumps({"percentage": 10, "reason": "token ok"})
                                ) as response:
            assert response.status == 200
        served = ""
        for path in ("/", "/api/state", "/api/knobs"):
            async with session.get(f"{dashboard.base}{path}") as response:
                served += await response.text()
    dashboard.proc.terminate()
    await asyncio.to_thread(dashboard.proc.wait, 30)
    log = dashboard.log_path.read_text(errors="replace")

    assert (await current_config(database_url))[:2] == (10.0, True)
    for secret in (TOKEN, PASSWORD):
        assert secret not in served
        assert secret not in log
