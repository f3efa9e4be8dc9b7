"""``trafficlight router --config FILE``: serve webhooks until SIGTERM or Ctrl-C.

DATABASE_URL unset: the router runs on no config (everything to legacy) and says so.
KAFKA_BOOTSTRAP_SERVERS is required. On stop, in-flight requests finish, then routing events
are delivered for up to 5 s and whatever is left is spooled for the next start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click
from aiohttp import web

from trafficlight.base import settings as env
from trafficlight.base.signals import stop_event_on_signals
from trafficlight.router.app import create_app
from trafficlight.router.config_watcher import ConfigWatcher, FixedConfig
from trafficlight.router.emitter import EventEmitter
from trafficlight.router.settings import RouterSettings, load_settings
from trafficlight.router.spool import Spool

log = logging.getLogger("router")


async def serve(settings: RouterSettings, bootstrap_servers: str,
                database_url: str | None) -> None:
    watcher: ConfigWatcher | FixedConfig
    if database_url is None:
        log.warning("DATABASE_URL is not set: no routing config, everything goes to legacy")
        watcher = FixedConfig()
    else:
        watcher = ConfigWatcher(database_url, poll_s=settings.config_poll_s)
        await watcher.start()
    emitter = EventEmitter(
        bootstrap_servers, settings.events_topic,
        Spool(settings.spool_dir, settings.spool_max_bytes),
        batch_max_events=settings.batch_max_events, batch_linger_s=settings.batch_linger_s,
        buffer_max_bytes=settings.buffer_max_bytes,
    )
    # keepalive_timeout also closes a connection whose request headers never finish (slowloris).
    runner = web.AppRunner(create_app(settings, watcher, emitter), access_log=None,
                           keepalive_timeout=settings.idle_timeout_s)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port,
                          reuse_port=settings.reuse_port).start()
        log.info("router %s listening on http://%s:%d (config version %d)", settings.router_id,
                 settings.host, settings.port, watcher.config.version)
        await _stop_requested()
    finally:
        await runner.cleanup()
        if isinstance(watcher, ConfigWatcher):
            await watcher.stop()


async def _stop_requested() -> None:
    await stop_event_on_signals().wait()


@click.command("router")
@click.option("--config", "config_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="TOML file with a [router] table (see router/settings.py).")
def router_command(config_path: Path) -> None:
    """Route webhooks between legacy and unified; emit one routing event per webhook."""
    settings = load_settings(config_path)
    bootstrap = env.required_kafka_bootstrap_servers()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run_event_loop(serve(settings, bootstrap, env.database_url()))


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where it is installed: about a third more webhooks per second than asyncio's."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
