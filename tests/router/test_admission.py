"""Back-pressure: past max_in_flight the router sheds webhooks at once with 503 + Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tests.router.conftest import StartRouter
from tests.router.support import REPLY_DELAY_HEADER, Upstream, rollout_config

WEBHOOK = b'{"entry": []}'


async def test_a_webhook_past_max_in_flight_gets_503_with_retry_after_and_is_not_forwarded(
        start_router: StartRouter, legacy: Upstream) -> None:
    router = await start_router(rollout_config(0), max_in_flight=2)
    slow = [asyncio.create_task(router.post("/webhook/jobs", data=WEBHOOK,
                                            headers={REPLY_DELAY_HEADER: "1"}))
            for _ in range(2)]
    while len(legacy.seen) < 2:  # both admitted and at the upstream
        await asyncio.sleep(0.01)

    shed = await router.post("/webhook/jobs", data=WEBHOOK)

    assert shed.status == 503
    assert shed.headers["Retry-After"] == "1"
    assert [(await r).status for r in slow] == [200, 200]
    assert len(legacy.seen) == 2
    assert (await router.post("/webhook/jobs", data=WEBHOOK)).status == 200  # room again


async def test_a_body_that_stops_arriving_gets_408(start_router: StartRouter,
                                                   legacy: Upstream) -> None:
    router = await start_router(rollout_config(0), body_timeout_s=0.2)

    async def stalled_body() -> AsyncIterator[bytes]:
        yield b'{"entry": '
        await asyncio.sleep(1)
        yield b"[]}"

    response = await router.post("/webhook/jobs", data=stalled_body())

    assert response.status == 408
    assert legacy.seen == []
