"""``trafficlight router --config FILE``: serve webhooks until SIGTERM or Ctrl-C.

DATABASE_URL unset: the router runs on no config (everything to legacy) and says so.
KAFKA_BOOTSTRAP_SERVERS is required. ``processes`` (default "auto": one per core) > 1: this
process supervises that many serving processes on the same port (SO_REUSEPORT), each with
``spool_dir/process-<i>``. On stop, in-flight requests are answered, then routing events are
delivered for up to 5 s and whatever is left is spooled for the next start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click

from trafficlight.base import settings as env
from trafficlight.base.errors import ConfigError
from trafficlight.router.service import serve
from trafficlight.router.settings import RouterSettings, load_settings
from trafficlight.router.supervisor import Supervisor, supervise


def process_settings(settings: RouterSettings, index: int, count: int
                     ) -> tuple[RouterSettings, list[Path]]:
    """Child ``index`` of ``count``: its own spool folder, the shared port; and the spools it
    takes over (process 0: the single-process spool and those of processes no longer run)."""
    base = settings.spool_dir
    own = dataclasses.replace(settings, spool_dir=base / f"process-{index}", reuse_port=True,
                              processes=1)
    adopt: list[Path] = []
    if index == 0:
        retired = [p for p in base.glob("process-*")
                   if p.is_dir() and not (p.name[8:].isdigit() and int(p.name[8:]) < count)]
        adopt = [base, *sorted(retired)]
    return own, adopt


@click.command("router")
@click.option("--config", "config_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="TOML file with a [router] table (see router/settings.py).")
@click.option("--process-index", type=int, default=None, hidden=True,
              help="Set by the supervisor: serve as its child number N.")
def router_command(config_path: Path, process_index: int | None) -> None:
    """Route webhooks between legacy and unified; emit one routing event per webhook."""
    settings = load_settings(config_path)
    bootstrap = env.kafka_bootstrap_servers()
    if bootstrap is None:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set (run `trafficlight services`)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    count = settings.process_count
    if process_index is not None:
        own, adopt = process_settings(settings, process_index, count)
        run_event_loop(serve(own, bootstrap, env.database_url(), adopt))
    elif count == 1:
        run_event_loop(serve(settings, bootstrap, env.database_url(),
                             sorted(settings.spool_dir.glob("process-*"))))
    else:
        argv = [sys.executable, "-m", "trafficlight.cli", "router", "--config", str(config_path)]
        supervisor = Supervisor(count, lambda i: [*argv, "--process-index", str(i)],
                                stop_timeout_s=settings.drain_timeout_s + 15)
        logging.getLogger("router").info("router: %d processes on port %d", count, settings.port)
        sys.exit(asyncio.run(supervise(supervisor)))


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where it is installed: about a third more webhooks per second than asyncio's."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
