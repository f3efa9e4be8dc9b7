"""The demo's simulated handlers and traffic: knobs, answers, and webhooks the router can key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from trafficlight.base.local_services import free_port
from trafficlight.router.sticky_key import parse_body, whatsapp_sender
from trafficlight.tools.simulated_handlers import KnobBoard, create_app
from trafficlight.tools.traffic import TrafficPlan, speed_for_rate, whatsapp_webhook


@pytest.fixture
async def handlers() -> AsyncIterator[tuple[str, KnobBoard]]:
    board = KnobBoard()
    board.update({"legacy": {"latency_ms": 1}, "unified": {"latency_ms": 1}})
    runner = web.AppRunner(create_app(board, seed=7), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", board
    await runner.cleanup()


async def _statuses(url: str, n: int) -> list[int]:
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(n):
            async with http.post(url, data=b"{}") as response:
                statuses.append(response.status)
        return statuses


async def test_a_target_fails_as_often_as_its_error_knob_says(
        handlers: tuple[str, KnobBoard]) -> None:
    url, board = handlers
    assert set(await _statuses(f"{url}/unified/jobs", 5)) == {200}
    board.update({"unified": {"error_pct": 100}})
    assert set(await _statuses(f"{url}/unified/jobs", 5)) == {500}
    assert set(await _statuses(f"{url}/legacy/jobs", 5)) == {200}


async def test_verification_challenge_is_echoed(handlers: tuple[str, KnobBoard]) -> None:
    url, _ = handlers
    async with aiohttp.ClientSession() as http, http.get(
            f"{url}/legacy/jobs", params={"hub.mode": "subscribe", "hub.challenge": "42"}) as r:
        assert await r.text() == "42"


async def test_knobs_change_over_http_and_refuse_bad_values_whole(
        handlers: tuple[str, KnobBoard]) -> None:
    url, board = handlers
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/knobs", json={"unified": {"error_pct": 5}}) as r:
            assert (await r.json())["unified"]["error_pct"] == 5
        async with http.post(f"{url}/knobs", json={"legacy": {"error_pct": 7},
                                                   "unified": {"error_pct": 101}}) as r:
            assert r.status == 400
            assert "between 0 and 100" in (await r.json())["error"]
    assert (board.legacy.error_pct, board.unified.error_pct) == (0, 5)  # nothing half-applied


@pytest.mark.parametrize(("changes", "message"), [
    ({"canary": {"error_pct": 1}}, "unknown target"),
    ({"unified": {"colour": 1}}, "unknown knob"),
    ({"unified": {"latency_ms": "fast"}}, "must be a number"),
    ({"unified": {"latency_ms": -1}}, "between 0"),
    ([1], "JSON object"),
])
def test_bad_knob_changes_are_refused_with_a_reason(changes: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KnobBoard().update(changes)  # type: ignore[arg-type]


def test_generated_webhooks_carry_the_sender_the_router_keys_on() -> None:
    body = whatsapp_webhook("34670000042", "hi")
    assert whatsapp_sender(parse_body(body)) == "34670000042"


def test_speed_and_rate_describe_the_same_runbook_mix() -> None:
    plan = TrafficPlan("http://router", speed=speed_for_rate(100.0))
    assert plan.total_per_s == pytest.approx(100.0)
    assert plan.rates_per_s == pytest.approx({"jobs": 50.0, "marketplace": 30.0,
                                              "property": 20.0})
