"""One serving router process: config source, event emitter, app and HTTP server, until asked
to stop; then a graceful drain (in-flight webhooks answered, events delivered or spooled).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from trafficlight.router.app import RouterApp, server_limits
from trafficlight.router.config_watcher import ConfigWatcher, FixedConfig
from trafficlight.router.emitter import EventEmitter
from trafficlight.router.http_server import HttpServer
from trafficlight.router.settings import RouterSettings
from trafficlight.router.spool import Spool

log = logging.getLogger("router")


def start_server(app: RouterApp) -> HttpServer:
    """An HTTP server carrying ``app``'s requests (not yet listening)."""
    return HttpServer(app.handle, server_limits(app.settings), on_refused=app.refused,
                      on_error=app.handler_failed)


def open_spool(settings: RouterSettings, adopt: list[Path]) -> Spool:
    """This process's spool, having taken over the records of the spools in ``adopt``."""
    spool = Spool(settings.spool_dir, settings.spool_max_bytes)
    for directory in adopt:
        if (directory / "records.log").exists() and directory != settings.spool_dir:
            moved = spool.adopt(Spool(directory, settings.spool_max_bytes))
            if moved:
                log.info("router spool: took over %d events from %s", moved, directory)
    return spool


async def serve(settings: RouterSettings, bootstrap_servers: str, database_url: str | None,
                adopt_spools: list[Path] | None = None) -> None:
    watcher: ConfigWatcher | FixedConfig
    if database_url is None:
        log.warning("DATABASE_URL is not set: no routing config, everything goes to legacy")
        watcher = FixedConfig()
    else:
        watcher = ConfigWatcher(database_url, poll_s=settings.config_poll_s)
        await watcher.start()
    emitter = EventEmitter(
        bootstrap_servers, settings.events_topic, open_spool(settings, adopt_spools or []),
        batch_max_events=settings.batch_max_events, batch_linger_s=settings.batch_linger_s,
        buffer_max_bytes=settings.buffer_max_bytes,
    )
    app = RouterApp(settings, watcher, emitter)
    await app.start()
    server = start_server(app)
    try:
        await server.start(settings.host, settings.port, reuse_port=settings.reuse_port)
        log.info("router %s listening on http://%s:%d (config version %d)", settings.router_id,
                 settings.host, settings.port, watcher.config.version)
        await stop_requested()
        log.info("router %s stopping: answering %d webhooks in flight", settings.router_id,
                 app.in_flight.count)
        await server.shutdown(settings.drain_timeout_s)
    finally:
        await app.stop()
        if isinstance(watcher, ConfigWatcher):
            await watcher.stop()


async def stop_requested() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
