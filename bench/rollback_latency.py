"""End to end, first bad event -> routing disabled: router + broker + worker + Postgres.

    python bench/rollback_latency.py [--runs 10] [--warmup-s 20]

Embedded broker and Postgres, `trafficlight router` and `trafficlight worker` as processes, an
aiohttp upstream in this process. Routing at 50 % with 200 req/s to /webhook/jobs (random
routing keys), so ~100 unified req/s. Each run: healthy traffic, then unified starts failing
every 20th request (5 %); the clock starts when the upstream sends the first failure and stops
when this process receives the NOTIFY of `set_routing_enabled(false, ...)`. Between runs,
routing is re-enabled (after 10 s, once the failing run's events have reached the worker:
re-enabling starts a new step, whose evidence must not take them in) and
traffic is healthy again for `--warmup-s`.
Prints the distribution; the issue's target is <= 5 s. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web

from trafficlight.base.db import connect
from trafficlight.base.kafka import ensure_topics
from trafficlight.base.local_services import embedded_services, free_port
from trafficlight.tools.migrate import apply_migrations

RATE_PER_S = 200


class Upstream:
    """Legacy always 200; unified 500 on every 20th request while `failing`."""

    def __init__(self) -> None:
        self.failing = False
        self.first_failure_at: float | None = None
        self._unified = 0

    async def legacy(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    async def unified(self, request: web.Request) -> web.Response:
        await request.read()
        self._unified += 1
        if self.failing and self._unified % 20 == 0:
            if self.first_failure_at is None:
                self.first_failure_at = time.monotonic()
            return web.Response(status=500, text="unified failure")
        return web.Response(text="ok")


async def traffic(url: str, stop: asyncio.Event) -> None:
    """Open loop at RATE_PER_S; errors and timeouts are ignored (the router reports them)."""
    async with aiohttp.ClientSession() as session:
        async def one() -> None:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.post(url, data=b'{"ping":1}', headers={
                        "X-Routing-Key": uuid.uuid4().hex,
                        "Content-Type": "application/json"}) as reply:
                    await reply.read()

        start = time.monotonic()
        sent = 0
        tasks: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            due = start + sent / RATE_PER_S
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.gather(*tasks, return_exceptions=True)


async def run(runs: int, warmup_s: float, workdir: Path) -> list[float]:
    with embedded_services(workdir / "services") as services:
        bootstrap, db_url = services.bootstrap_servers, services.database_url
        await apply_migrations(db_url)
        topic = f"e2e-events-{uuid.uuid4().hex[:8]}"
        await ensure_topics(bootstrap, {topic: 4})
        upstream = Upstream()
        app = web.Application()
        app.router.add_post("/legacy/{domain}", upstream.legacy)
        app.router.add_post("/unified/{domain}", upstream.unified)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        upstream_port, router_port = free_port(), free_port()
        await web.TCPSite(runner, "127.0.0.1", upstream_port).start()
        config = workdir / "router.toml"
        config.write_text(
            f'[router]\nhost = "127.0.0.1"\nport = {router_port}\n'
            f'legacy_url = "http://127.0.0.1:{upstream_port}/legacy/{{domain}}"\n'
            f'unified_url = "http://127.0.0.1:{upstream_port}/unified/{{domain}}"\n'
            f'events_topic = "{topic}"\nspool_dir = "{workdir / "spool"}"\n'
            f'config_poll_s = 1.0\n')
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DATABASE_URL": db_url}
        logs = [open(workdir / name, "wb") for name in ("router.log", "worker.log")]  # noqa: SIM115
        procs = [
            subprocess.Popen([sys.executable, "-m", "trafficlight.cli", "router", "--config",
                              str(config)], env=env, stdout=logs[0], stderr=logs[0]),
            subprocess.Popen([sys.executable, "-m", "trafficlight.cli", "worker",
                              "--events-topic", topic, "--verdicts-topic", f"{topic}-verdicts",
                              "--app-id", f"e2e-{topic}", "--worker-id", "e2e-worker",
                              "--loglevel", "warning"], env=env, stdout=logs[1], stderr=logs[1]),
        ]
        listener = await connect(db_url)
        disabled_at: list[float] = []

        def on_config(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            if '"enabled" : false' in payload or '"enabled": false' in payload:
                disabled_at.append(time.monotonic())

        await listener.add_listener("webhook_routing_config", on_config)
        stop = asyncio.Event()
        load = asyncio.create_task(
            traffic(f"http://127.0.0.1:{router_port}/webhook/jobs", stop))
        latencies: list[float] = []
        try:
            for n in range(runs):
                if n:  # the failing run's events reach the worker before the new step begins
                    await asyncio.sleep(10)
                await listener.execute("SELECT update_routing_percentage(50, 'e2e bench run')")
                upstream.failing, upstream.first_failure_at = False, None
                disabled_at.clear()
                await asyncio.sleep(warmup_s if n else warmup_s + 15)  # + worker start-up
                upstream.failing = True
                deadline = time.monotonic() + 60
                while not disabled_at and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                upstream.failing = False
                if not disabled_at or upstream.first_failure_at is None:
                    print(f"run {n + 1}: no rollback within 60 s (see {workdir})")
                    continue
                latencies.append(disabled_at[0] - upstream.first_failure_at)
                print(f"run {n + 1}: first bad event -> routing disabled in "
                      f"{latencies[-1]:.2f} s", flush=True)
        finally:
            stop.set()
            await load
            await listener.close()
            for proc in procs:
                proc.terminate()
                proc.wait(30)
            for log in logs:
                log.close()
            await runner.cleanup()
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup-s", type=float, default=20.0)
    parser.add_argument("--keep", type=Path, default=None, help="keep logs in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        latencies = asyncio.run(run(args.runs, args.warmup_s, workdir))
    if latencies:
        ordered = sorted(latencies)
        print(f"{len(latencies)} runs: min {ordered[0]:.2f} s, median "
              f"{statistics.median(ordered):.2f} s, max {ordered[-1]:.2f} s; "
              f"within 5 s: {sum(x <= 5 for x in ordered)}/{len(ordered)}")


if __name__ == "__main__":
    main()
