"""``trafficlight router --config FILE``: serve webhooks until SIGTERM or Ctrl-C.

DATABASE_URL unset: the router runs on no config (everything to legacy) and says so.
KAFKA_BOOTSTRAP_SERVERS is required. ``processes`` (default "auto": one per core) > 1: this
process supervises that many serving processes on the same port (SO_REUSEPORT), each with
``spool_dir/process-<i>``. On stop, in-flight requests are answered, then routing events are
delivered for up to 5 s and whatever is left is spooled for the next start.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from trafficlight.base import settings as env
from trafficlight.router.service import run_event_loop, serve
from trafficlight.router.settings import load_settings
from trafficlight.router.supervisor import Supervisor, supervise


@click.command("router")
@click.option("--config", "config_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="TOML file with a [router] table (see router/settings.py).")
def router_command(config_path: Path) -> None:
    """Route webhooks between legacy and unified; emit one routing event per webhook."""
    settings = load_settings(config_path)
    bootstrap = env.required_kafka_bootstrap_servers()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    count = settings.process_count
    if count == 1:
        run_event_loop(serve(settings, bootstrap, env.database_url(),
                             sorted(settings.spool_dir.glob("process-*"))))
    else:
        argv = [sys.executable, "-m", "trafficlight.router.service", str(config_path)]
        supervisor = Supervisor(count, lambda i: [*argv, str(i)],
                                stop_timeout_s=settings.drain_timeout_s + 15)
        logging.getLogger("router").info("router: %d processes on port %d", count, settings.port)
        sys.exit(asyncio.run(supervise(supervisor)))
