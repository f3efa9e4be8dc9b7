"""Fixtures of the router's tests: real upstreams, a topic of their own, routers built inline."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.router.support import RouterClient, Upstream, emitter_for, start_upstream
from trafficlight.base.kafka import ensure_topics
from trafficlight.router.app import RouterApp
from trafficlight.router.config_watcher import ConfigSource, FixedConfig
from trafficlight.router.decision import RoutingConfig
from trafficlight.router.service import start_server
from trafficlight.router.settings import RouterSettings


@pytest.fixture
async def legacy() -> AsyncIterator[Upstream]:
    upstream = await start_upstream("legacy")
    yield upstream
    await upstream.server.close()


@pytest.fixture
async def unified() -> AsyncIterator[Upstream]:
    upstream = await start_upstream("unified")
    yield upstream
    await upstream.server.close()


@pytest.fixture
async def events_topic(kafka_bootstrap: str, unique_topic: Callable[[str], str]) -> str:
    topic = unique_topic("router-events")
    await ensure_topics(kafka_bootstrap, {topic: 2})
    return topic


@pytest.fixture
def router_settings(legacy: Upstream, unified: Upstream, events_topic: str,
                    tmp_path: Path) -> RouterSettings:
    return RouterSettings(legacy_url=legacy.url_template, unified_url=unified.url_template,
                          events_topic=events_topic, router_id="router-under-test",
                          spool_dir=tmp_path / "spool")


StartRouter = Callable[..., Awaitable[RouterClient]]


@pytest.fixture
async def start_router(router_settings: RouterSettings,
                       kafka_bootstrap: str) -> AsyncIterator[StartRouter]:
    """Builds routers inline on real ports: ``await start_router(config, **overrides)``."""
    clients: list[RouterClient] = []
    apps: list[RouterApp] = []

    async def start(config: RoutingConfig | ConfigSource, **overrides: Any) -> RouterClient:
        settings = dataclasses.replace(router_settings, **overrides)
        source = FixedConfig(config) if isinstance(config, RoutingConfig) else config
        app = RouterApp(settings, source, emitter_for(settings, kafka_bootstrap))
        await app.start()
        apps.append(app)
        server = start_server(app)
        await server.start("127.0.0.1", 0)
        client = RouterClient(f"http://127.0.0.1:{server.port}", server, aiohttp.ClientSession())
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
    for app in apps:
        await app.stop()


