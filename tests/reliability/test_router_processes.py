"""``processes = N``: one supervisor, N serving processes on one port, each restarted if it dies.

The router is ``trafficlight router`` in a subprocess, as operators run it. A serving process
killed with SIGKILL is replaced and the port keeps answering; SIGTERM to the supervisor drains
every process: webhooks in flight at the upstream are answered by it, and the exit code is 0.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import aiohttp
import psutil
import pytest

from tests.reliability.harness import RouterProcess, UpstreamProcess, whatsapp_webhook

pytestmark = pytest.mark.reliability


def serving_pids(router: RouterProcess) -> set[int]:
    assert router.proc is not None
    return {child.pid for child in psutil.Process(router.proc.pid).children()}


def listening(router: RouterProcess) -> int:
    """How many serving processes have started listening so far (restarts included)."""
    return router.log_text().count(" listening on http://")


async def wait_for(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    async with asyncio.timeout(timeout_s):  # a safety net, not a figure
        while not condition():
            await asyncio.sleep(0.1)


async def post_webhook(base: str) -> int:
    async with aiohttp.ClientSession() as session, session.post(
            f"{base}/webhook/jobs", data=whatsapp_webhook("4915550001")) as response:
        await response.read()
        return response.status


async def test_a_killed_serving_process_is_restarted_and_the_port_keeps_answering(
        tmp_path: Path, kafka_bootstrap: str, upstream: UpstreamProcess,
        reap: Callable[[RouterProcess], RouterProcess]) -> None:
    router = reap(await RouterProcess.configure(tmp_path, upstream, kafka_bootstrap,
                                                processes=2).start())
    await wait_for(lambda: listening(router) == 2)
    victim = min(serving_pids(router))
    psutil.Process(victim).send_signal(signal.SIGKILL)

    await wait_for(lambda: listening(router) == 3)
    assert len(serving_pids(router)) == 2
    assert victim not in serving_pids(router)
    assert [await post_webhook(router.base) for _ in range(20)] == [200] * 20
    assert (tmp_path / "spool" / "process-0").is_dir()
    assert (tmp_path / "spool" / "process-1").is_dir()
    assert await router.stop() == 0


async def test_sigterm_to_the_supervisor_answers_every_webhook_in_flight(
        tmp_path: Path, kafka_bootstrap: str,
        reap: Callable[[RouterProcess], RouterProcess]) -> None:
    slow = await UpstreamProcess.start(delay_ms=1500)
    try:
        router = reap(await RouterProcess.configure(tmp_path, slow, kafka_bootstrap,
                                                    processes=2).start())
        await wait_for(lambda: listening(router) == 2)
        in_flight = [asyncio.create_task(post_webhook(router.base)) for _ in range(20)]
        await asyncio.sleep(0.5)  # every webhook is at the upstream, waiting for its answer
        exit_code = await router.stop()
        assert [await task for task in in_flight] == [200] * 20
        assert exit_code == 0
    finally:
        slow.stop()
