"""Scenario 5: the router at twice its measured sustainable rate for 60 s.

Load comes from ``wrk`` (C, far cheaper per request than the router, so on two shared cores the
router, not the load generator, is what saturates). First the sustainable rate is measured in
this run: a closed loop of 32 connections. Then 2,000 connections each send a webhook every
2000/(2 x rate) seconds: about twice that rate, like many independent senders. The router must
not crash, its memory must stay bounded and no routing event may be dropped. Back-pressure:
past ``max_in_flight`` concurrent webhooks the router answers 503 with Retry-After at once
(webhook senders retry), so admitted webhooks keep a bounded latency. The figures go to
tests/artifacts/reliability-figures.txt.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.reliability.harness import RouterProcess, UpstreamProcess

OVERLOAD_S = 60
OVERLOAD_CONNECTIONS = 2000
SCRIPT = Path(__file__).with_name("wrk_webhooks.lua")

#: Generous: a router that queued the whole overload in memory would pass several hundred MiB.
RSS_LIMIT_BYTES = 400 * 2**20

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt install wrk)"),
]


async def wrk(url: str, connections: int, duration_s: int, delay_ms: float = 0) -> dict[str, Any]:
    """Run wrk with the webhook script; its summary (statuses, errors, latency) as a dict."""
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t2", f"-c{connections}", f"-d{duration_s}s", "--timeout", "30s",
        "-s", str(SCRIPT), url, env={**os.environ, "WRK_DELAY_MS": f"{delay_ms:.0f}"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    [line] = [line for line in out.decode().splitlines() if line.startswith("WRK_JSON ")]
    return dict(orjson.loads(line.removeprefix("WRK_JSON ")))


@pytest.mark.reliability
async def test_twice_the_sustainable_rate_for_60s_leaves_the_router_up_and_bounded(
        tmp_path: Path, kafka_bootstrap: str, rollout_at_50: str, upstream: UpstreamProcess,
        reap: Callable[[RouterProcess], RouterProcess],
        figures: Callable[[str], None]) -> None:
    router = reap(await RouterProcess.configure(tmp_path, upstream, kafka_bootstrap,
                                                rollout_at_50).start())
    measured = await wrk(router.base, connections=32, duration_s=8)
    rate = measured["statuses"].get("200", 0) / measured["duration_s"]
    idle_rss = router.rss_bytes
    peak_rss = 0

    async def watch_memory() -> None:
        nonlocal peak_rss
        while True:
            peak_rss = max(peak_rss, router.rss_bytes)
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch_memory())
    cpu_before_s = router.cpu_s
    overload = await wrk(router.base, OVERLOAD_CONNECTIONS, OVERLOAD_S,
                         delay_ms=1000 * OVERLOAD_CONNECTIONS / (2 * rate))
    router_cpu_pct = 100 * (router.cpu_s - cpu_before_s) / overload["duration_s"]
    watcher.cancel()
    alive = router.proc is not None and router.proc.poll() is None
    health = await router.healthz()
    await router.stop()

    statuses = overload["statuses"]
    offered = overload["requests"] / overload["duration_s"]
    served = statuses.get("200", 0) / overload["duration_s"]
    figures(f"[overload] sustainable {rate:.0f}/s (32 connections, p99 "
          f"{measured['p99_ms']:.0f} ms); at {OVERLOAD_CONNECTIONS} connections pacing "
          f"2x: answered {offered:.0f}/s for {overload['duration_s']:.0f} s, 200s "
          f"{served:.0f}/s, statuses {statuses}, socket errors connect/read/write/timeout "
          f"{overload['connect_errors']}/{overload['read_errors']}/"
          f"{overload['write_errors']}/{overload['timeouts']}; latency p50/p99 "
          f"{overload['p50_ms']:.0f}/{overload['p99_ms']:.0f} ms; router CPU "
          f"{router_cpu_pct:.0f}% of a core; RSS idle {idle_rss / 2**20:.0f} MiB, peak "
          f"{peak_rss / 2**20:.0f} MiB; events dropped {health['events_dropped']}")

    assert alive
    assert peak_rss < RSS_LIMIT_BYTES
    assert health["events_dropped"] == 0
    # Every answer came from the upstream (200), or is the router shedding (503) or timing out
    # an upstream that could not keep up (504).
    assert set(statuses) <= {"200", "503", "504"}
    assert statuses.get("200", 0) > 0
