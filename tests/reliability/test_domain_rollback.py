"""One domain rolled back while the others keep routing: a router process, Postgres, NOTIFY.

The worker's rollback (`streams.actions.roll_back`, default scope: the failing domain) writes a
per-domain config row; its NOTIFY reaches the running router, which sends that domain to legacy
and keeps the others on their percentage.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.reliability.harness import RouterProcess, whatsapp_webhook
from trafficlight.base.db import connect
from trafficlight.streams.actions import roll_back
from trafficlight.streams.verdicts import Verdict

pytestmark = pytest.mark.reliability

ROLLOUT = ["jobs", "marketplace", "property"]
JOBS_CRITICAL = Verdict("jobs", "unified", 1_800_000_000.0, 1_800_000_005.0, 500, 25, 5.0,
                        110.0, 180.0, 240.0, "critical", "rollback",
                        ("error rate 5.00% >= 0.5%",))


async def _targets(router: RouterProcess) -> dict[str, set[str]]:
    routed: dict[str, set[str]] = {}
    async with aiohttp.ClientSession() as session:
        for domain in ROLLOUT:
            for sender in range(30):
                async with session.post(f"{router.base}/webhook/{domain}",
                                        data=whatsapp_webhook(f"4915{sender:06d}")) as response:
                    assert response.status == 200
                    routed.setdefault(domain, set()).add(response.headers["X-Routed-To"])
    return routed


async def _config_version(router: RouterProcess) -> int:
    return int((await router.healthz())["config_version"])


async def test_a_rollback_of_one_domain_leaves_the_others_routing(
        router_at_100: RouterProcess, database_url: str) -> None:
    assert await _targets(router_at_100) == {d: {"unified"} for d in ROLLOUT}
    before = await _config_version(router_at_100)

    conn = await connect(database_url)
    try:
        assert await roll_back(conn, JOBS_CRITICAL, "worker-a")
        version = await conn.fetchval("SELECT max(id) FROM webhook_routing_config")
    finally:
        await conn.close()
    async with asyncio.timeout(30):  # NOTIFY brings it (a safety net, not a figure)
        while await _config_version(router_at_100) < version:
            await asyncio.sleep(0.05)

    assert version > before
    assert await _targets(router_at_100) == {
        "jobs": {"legacy"}, "marketplace": {"unified"}, "property": {"unified"}}
    metrics = await router_at_100.metrics()
    assert 'trafficlight_router_domain_routing_percentage{domain="jobs"} 0.0' in metrics
    assert 'trafficlight_router_domain_routing_percentage{domain="property"} 100.0' in metrics


async def test_re_enabling_the_domain_puts_it_back_with_the_others(
        router_at_100: RouterProcess, database_url: str) -> None:
    conn = await connect(database_url)
    try:
        await roll_back(conn, JOBS_CRITICAL, "worker-a")
        await conn.execute("SELECT set_routing_enabled(true, 'jobs fixed', 'jobs')")
        version = await conn.fetchval("SELECT max(id) FROM webhook_routing_config")
    finally:
        await conn.close()
    async with asyncio.timeout(30):
        while await _config_version(router_at_100) < version:
            await asyncio.sleep(0.05)

    assert await _targets(router_at_100) == {d: {"unified"} for d in ROLLOUT}
