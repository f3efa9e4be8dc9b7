"""Scenario 7: protected domains (mobility, profile, insurance) never reach unified.

Three layers, each tested on its own: the routing rule over random configs and keys, the
database refusing any row that would roll a protected domain out, and a running router that
keeps them on legacy even when a forged notification says otherwise.
"""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.reliability.harness import RouterProcess, whatsapp_webhook
from trafficlight.base.db import connect
from trafficlight.router.decision import BUILTIN_PROTECTED_DOMAINS, RoutingConfig, choose_target

pytestmark = pytest.mark.reliability

PROTECTED = sorted(BUILTIN_PROTECTED_DOMAINS)
NAMES = [*PROTECTED, "jobs", "marketplace", "property", "Mobility", "PROFILE", "InSuRaNcE"]

configs = st.builds(
    RoutingConfig,
    version=st.integers(1, 10**6),
    percentage=st.floats(0, 100),
    enabled=st.booleans(),
    domains=st.frozensets(st.sampled_from(NAMES)),
    protected_domains=st.frozensets(st.sampled_from(NAMES)),
)


@given(configs, st.sampled_from(NAMES), st.text(max_size=30), st.booleans())
def test_no_config_and_no_key_routes_a_protected_domain_to_unified(
        config: RoutingConfig, domain: str, key: str, body_is_json: bool) -> None:
    target = choose_target(config, domain, key, body_is_json)
    if domain.lower() in BUILTIN_PROTECTED_DOMAINS or domain in config.protected_domains:
        assert target == "legacy"


@given(st.sampled_from(PROTECTED), st.text(min_size=1, max_size=30))
def test_a_protected_domain_stays_on_legacy_at_100_percent_even_listed_as_rollout(
        domain: str, key: str) -> None:
    config = RoutingConfig(version=1, percentage=100, enabled=True,
                           domains=frozenset({domain, domain.upper()}))
    assert choose_target(config, domain, key) == "legacy"
    assert choose_target(config, domain.upper(), key) == "legacy"


INSERT = """
INSERT INTO webhook_routing_config (percentage, enabled, domains, protected_domains, notes)
VALUES (100, true, $1::text[], $2::text[], 'attempt')
"""

DEFAULT_PROTECTED = ["mobility", "profile", "insurance"]


@pytest.mark.parametrize(("domains", "protected"), [
    (["jobs", "mobility"], DEFAULT_PROTECTED),
    (["jobs", "mobility"], []),                      # drop it from protected, roll it out
    (["profile"], ["mobility", "insurance"]),
    (["jobs"], []),                                  # only drop the protection
    (["Mobility"], DEFAULT_PROTECTED),               # another letter case
    (["INSURANCE", "jobs"], ["mobility", "profile"]),
])
async def test_the_database_refuses_a_row_that_would_roll_out_a_protected_domain(
        database_url: str, domains: list[str], protected: list[str]) -> None:
    conn = await connect(database_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(INSERT, domains, protected)
        current = await conn.fetchrow("SELECT domains, protected_domains FROM "
                                      "webhook_routing_config ORDER BY id DESC LIMIT 1")
    finally:
        await conn.close()
    assert set(current["protected_domains"]) >= BUILTIN_PROTECTED_DOMAINS
    assert not set(current["domains"]) & BUILTIN_PROTECTED_DOMAINS


async def test_the_database_accepts_a_new_rollout_domain_next_to_the_protected_ones(
        database_url: str) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute(INSERT, ["jobs", "payments"], [*DEFAULT_PROTECTED, "billing"])
    finally:
        await conn.close()


async def test_a_forged_notification_cannot_send_protected_traffic_to_unified(
        router_at_100: RouterProcess, database_url: str) -> None:
    forged = {"version": 10**6, "percentage": 100, "enabled": True,
              "domains": ["jobs", *PROTECTED, "Mobility"], "protected_domains": [],
              "created_at": 0}
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT pg_notify('webhook_routing_config', $1)",
                           orjson.dumps(forged).decode())
    finally:
        await conn.close()
    async with asyncio.timeout(30):  # the router takes it (a safety net, not a figure)
        while (await router_at_100.healthz())["config_version"] != 10**6:
            await asyncio.sleep(0.05)

    routed: dict[str, set[str]] = {}
    async with aiohttp.ClientSession() as session:
        for domain in ["jobs", *PROTECTED, "Mobility"]:
            for sender in range(40):
                async with session.post(f"{router_at_100.base}/webhook/{domain}",
                                        data=whatsapp_webhook(f"4915{sender:06d}")) as response:
                    assert response.status == 200
                    routed.setdefault(domain, set()).add(response.headers["X-Routed-To"])
    assert routed["jobs"] == {"unified"}
    assert all(routed[d] == {"legacy"} for d in [*PROTECTED, "Mobility"])
