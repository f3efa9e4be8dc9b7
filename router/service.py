"""One serving router process: config source, event emitter, app and HTTP server, until asked
to stop; then a graceful drain (in-flight webhooks answered, events delivered or spooled).

``python -m trafficlight.router.service CONFIG INDEX`` is how the supervisor starts serving
process ``INDEX`` (lighter than the whole CLI: it imports only the router).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from trafficlight.base import settings as env
from trafficlight.base.errors import TrafficlightError
from trafficlight.base.signals import stop_event_on_signals
from trafficlight.router.app import RouterApp, server_limits
from trafficlight.router.config_watcher import ConfigWatcher, FixedConfig
from trafficlight.router.emitter import EventEmitter
from trafficlight.router.http_server import HttpServer
from trafficlight.router.settings import RouterSettings, load_settings
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
    # From the start: a SIGTERM while the config or the spool is still opening stops the
    # router through the `finally` below, not by the default kill.
    stop = stop_event_on_signals()
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
        await stop.wait()
        log.info("router %s stopping: answering %d webhooks in flight", settings.router_id,
                 app.in_flight.count)
        await server.shutdown(settings.drain_timeout_s)
    finally:
        await app.stop()
        if isinstance(watcher, ConfigWatcher):
            await watcher.stop()


def process_settings(settings: RouterSettings, index: int, count: int
                     ) -> tuple[RouterSettings, list[Path]]:
    """Serving process ``index`` of ``count``: its own spool folder, the shared port; and the
    spools it takes over (process 0: a single-process spool and those of processes no longer
    run, so changing ``processes`` loses no event)."""
    base = settings.spool_dir
    own = dataclasses.replace(settings, spool_dir=base / f"process-{index}", reuse_port=True,
                              processes=1)
    adopt: list[Path] = []
    if index == 0:
        retired = [p for p in base.glob("process-*")
                   if p.is_dir() and not (p.name[8:].isdigit() and int(p.name[8:]) < count)]
        adopt = [base, *sorted(retired)]
    return own, adopt


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where it is installed: about a third more webhooks per second than asyncio's."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def serve_process(config_path: Path, index: int) -> None:
    """What the supervisor runs in serving process ``index``."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings(config_path)
    bootstrap = env.required_kafka_bootstrap_servers()
    own, adopt = process_settings(settings, index, settings.process_count)
    run_event_loop(serve(own, bootstrap, env.database_url(), adopt))


if __name__ == "__main__":
    try:
        serve_process(Path(sys.argv[1]), int(sys.argv[2]))
    except TrafficlightError as exc:
        sys.exit(f"router process: {exc}")
