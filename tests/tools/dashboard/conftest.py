"""A dashboard served on a loopback port over this test's own database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import web

from tests.tools.dashboard.rows import RunningDashboard
from trafficlight.base.db import connect
from trafficlight.base.local_services import free_port
from trafficlight.tools.dashboard.app import DashboardSettings, create_app

TOKEN = "test-dashboard-token"


@pytest.fixture
async def running_dashboard(database_url: str) -> AsyncIterator[RunningDashboard]:
    app = create_app(DashboardSettings(database_url=database_url, token=TOKEN, refresh_s=0.2))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield RunningDashboard(f"http://127.0.0.1:{port}", TOKEN)
    await runner.cleanup()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(database_url)
    yield conn
    await conn.close()
