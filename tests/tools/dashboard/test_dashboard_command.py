"""Where the dashboard's token comes from, how it is shown, and that it is never logged."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from tests.tools.dashboard.rows import RunningDashboard
from trafficlight.tools.dashboard.address import TOKEN_ENV, dashboard_token, dashboard_url


def test_a_configured_token_is_used_and_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment")
    assert dashboard_token() == ("from-the-environment", False)


def test_without_a_token_one_is_generated_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    first, generated = dashboard_token()
    assert generated
    assert len(first) >= 32
    assert dashboard_token()[0] != first


def test_the_token_travels_in_the_url_fragment_which_browsers_never_send() -> None:
    assert dashboard_url("0.0.0.0", 8090, "abc") == "http://127.0.0.1:8090/#token=abc"
    assert dashboard_url("127.0.0.1", 8090) == "http://127.0.0.1:8090/"


async def test_the_token_never_reaches_the_logs(
        running_dashboard: RunningDashboard, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with aiohttp.ClientSession() as http:
        for token in (running_dashboard.token, "a-wrong-token"):
            async with http.post(f"{running_dashboard.url}/api/disable",
                                 json={"reason": "log check"},
                                 headers={"Authorization": f"Bearer {token}"}) as response:
                await response.read()
        async with http.get(f"{running_dashboard.url}/api/state") as response:
            state = await response.text()
    assert running_dashboard.token not in caplog.text
    assert "a-wrong-token" not in caplog.text
    assert running_dashboard.token not in state
