"""`trafficlight demo`: the whole system on embedded services, with simulated traffic.

What runs: the embedded broker and Postgres (children that die with us), the simulated
legacy and unified handlers, the dashboard and the traffic generator in this process, and
the router and one worker as child processes, exactly as they run in production. Ctrl-C
(or SIGTERM, or `--duration`) stops them in reverse order; every child also gets a
parent-death signal, so even a killed demo leaves no process behind.

`--incident-at 60s` turns unified's error rate up at that moment: the worker judges it
critical, rolls back through `set_routing_enabled(false, ...)`, the routers send everything
to legacy, and the dashboard and this terminal show each step.

The alert consumer runs against a local JSON receiver that prints what it would post: each
verdict change with the rollout plan's status, and each plan change (promoted, paused by the
rollback, ...) with who and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import aiohttp
import asyncpg
import click
import orjson
from aiohttp import web

from trafficlight.base import settings
from trafficlight.base.errors import ServiceStartError
from trafficlight.base.local_services import (
    die_with_parent,
    embedded_services,
    free_port,
    stop_process,
)
from trafficlight.base.signals import stop_event_on_signals
from trafficlight.streams.events import Target
from trafficlight.tools import operations
from trafficlight.tools.simulated_handlers import KnobBoard
from trafficlight.tools.simulated_handlers import create_app as create_handlers_app
from trafficlight.tools.traffic import TrafficGenerator, TrafficPlan

#: Where `trafficlight demo-knob` finds the running demo.
STATE_FILE_NAME = "demo.json"
DEMO_ACTOR = "demo"


def state_file() -> Path:
    return settings.STATE_DIR / STATE_FILE_NAME


@dataclass(frozen=True)
class DemoOptions:
    speed: float
    start_percentage: float = 10.0
    incident_at_s: float | None = None
    incident_error_pct: float = 25.0
    rollout_plan: str | None = "10,25,50,100"
    bake: str = "45s"
    #: Stored verdict rows in a row, and the verdicts table keeps one row per target per
    #: 10 s bucket of window start: 3 is about 30 s of proceed.
    healthy_evaluations: int = 3
    router_port: int = 8080
    dashboard_port: int = 8090
    duration_s: float | None = None
    host: str = "127.0.0.1"
    #: The worker's and dashboard's thresholds TOML; None: the demo's (`DEMO_THRESHOLDS`).
    thresholds: Path | None = None


class Say:
    """Progress lines with the time since the demo began."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        click.echo(f"[{time.monotonic() - self.t0:6.1f}s] {message}")


#: What stopping each child waits for, and how long at most before it is killed: together
#: with the embedded services, Ctrl-C finishes within about 5 s.
STOP_WAITS = {"router": ("flush its events to Kafka", 1.5),
              "worker": ("commit its offsets", 2.0)}


def stop_children(children: dict[str, subprocess.Popen[bytes]], say: Say) -> None:
    """SIGTERM every child at once, then wait for each (killed past its STOP_WAITS bound):
    stopping takes the longest bound, not their sum."""
    running = {name: proc for name, proc in children.items() if proc.poll() is None}
    for name, proc in running.items():
        what, timeout_s = STOP_WAITS.get(name, ("exit", 2.0))
        say(f"stopping {name}: waiting up to {timeout_s:g}s for it to {what}")
        proc.send_signal(signal.SIGTERM)
    started_s = time.monotonic()
    for name, proc in running.items():
        timeout_s = STOP_WAITS.get(name, ("exit", 2.0))[1]
        stop_process(proc, signal.SIGTERM,
                     timeout_s=max(0.0, timeout_s - (time.monotonic() - started_s)))


@contextlib.contextmanager
def child_process(name: str, argv: list[str], env: dict[str, str], workdir: Path,
                  say: Say) -> Iterator[subprocess.Popen[bytes]]:
    """A trafficlight subcommand as a child: output to `<workdir>/<name>.log`, dies with us."""
    what, timeout_s = STOP_WAITS.get(name, ("exit", 2.0))
    log_path = workdir / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trafficlight.cli", *argv],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **env}, cwd=workdir,
            # Stopped in order by us (the router flushes while the broker is up), not by the
            # terminal's Ctrl-C reaching the whole process group at once.
            start_new_session=True,
            preexec_fn=lambda: die_with_parent(signal.SIGTERM),
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            say(f"stopping {name}: waiting up to {timeout_s:g}s for it to {what}")
        stop_process(proc, signal.SIGTERM, timeout_s=timeout_s)
        if proc.returncode == -signal.SIGKILL:
            say(f"{name} stopped (killed after {timeout_s:g}s; log: {log_path})")
        elif proc.returncode not in (0, -signal.SIGTERM):
            say(f"{name} exited with code {proc.returncode} (log: {log_path})")
        else:
            say(f"{name} stopped")


@contextlib.asynccontextmanager
async def serve(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ServiceStartError(port_taken(host, port, exc.strerror or str(exc))) from None
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


#: The flag that moves each of the demo's fixed ports.
PORT_FLAGS = {"router": "--router-port", "dashboard": "--dashboard-port"}


def port_taken(host: str, port: int, why: str, flag: str | None = None) -> str:
    fix = f"pass {flag} 0 for a free port" if flag else "pick another port"
    return (f"cannot listen on {host}:{port} ({why}): another demo or service holds it; "
            f"stop it (`ss -ltnp 'sport = :{port}'` names it) or {fix}")


def check_ports_free(options: DemoOptions) -> None:
    """Fail before anything starts if a fixed port is taken, naming the port and the fix."""
    for name, port in (("router", options.router_port), ("dashboard", options.dashboard_port)):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((options.host, port))
            except OSError as exc:
                raise ServiceStartError(port_taken(options.host, port,
                                                   exc.strerror or str(exc),
                                                   PORT_FLAGS[name])) from None


async def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServiceStartError(f"the process behind {url} exited with code "
                                        f"{proc.returncode} before it answered")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise ServiceStartError(f"{url} did not answer within {timeout_s:.0f}s")


def router_toml(options: DemoOptions, handlers_url: str, workdir: Path) -> Path:
    path = workdir / "router.toml"
    path.write_text(
        "[router]\n"
        f'host = "{options.host}"\nport = {options.router_port}\n'
        f'legacy_url = "{handlers_url}/legacy/{{domain}}"\n'
        f'unified_url = "{handlers_url}/unified/{{domain}}"\n'
        'router_id = "demo-router"\n'
        f'spool_dir = "{workdir / "router-spool"}"\n'
    )
    return path


#: The demo's thresholds: SPEC's, but errors warning 1 % / critical 2 %. `healthy` needs the
#: error rate SHOWN below warning: ~650 clean requests per target at 1 %, ~6,500 at SPEC's
#: 0.1 % (about 20 min for jobs' unified at the demo's 10 %, an hour for property's), so with
#: SPEC's the plan would not promote within a demo.
DEMO_THRESHOLDS = """\
# trafficlight demo: SPEC's thresholds with errors at warning 1 % / critical 2 %, so that a
# healthy unified is shown healthy (and the plan promotes) within minutes at demo volumes.
[thresholds]
warning_error_pct  = 1.0
warning_p95_ms     = 2000
critical_error_pct = 2.0
critical_p95_ms    = 3000
"""


def thresholds_file(options: DemoOptions, workdir: Path) -> Path:
    """The thresholds the worker and dashboard get: the user's, or the demo's written out."""
    if options.thresholds is not None:
        return options.thresholds
    path = workdir / "demo-thresholds.toml"
    path.write_text(DEMO_THRESHOLDS)
    return path


def worker_argv(options: DemoOptions, metrics_port: int, thresholds: Path) -> list[str]:
    return ["worker", "--worker-id", "demo-worker", "--loglevel", "warning",
            "--metrics-port", str(metrics_port), "--thresholds", str(thresholds)]


async def start_rollout(database_url: str, options: DemoOptions) -> None:
    """The demo's rollout in the database: the plan (its first step) or a fixed percentage."""
    from trafficlight.base.durations import parse_duration_s
    from trafficlight.tools import plan_operations

    if options.rollout_plan:
        await plan_operations.set_plan(
            database_url, plan_operations.parse_steps(options.rollout_plan),
            parse_duration_s(options.bake), "Demo: the rollout plan", DEMO_ACTOR,
            options.healthy_evaluations)
        return
    await operations.set_percentage(
        database_url, Decimal(str(options.start_percentage)),
        f"Demo: start the rollout at {options.start_percentage:g}%", DEMO_ACTOR)


class Narrator:
    """Tells in the terminal what the dashboard shows: verdicts, config changes, traffic."""

    def __init__(self, database_url: str, traffic: TrafficGenerator, say: Say) -> None:
        self._url = database_url
        self._traffic = traffic
        self._say = say
        self._last_config_id = 0
        self._seen_verdict = False
        #: (answered, unified, errors) at the last summary: each line shows the interval since.
        self._last_totals = (0, 0, 0)
        self._last_summary_s = time.monotonic()

    async def run(self, every_s: float = 1.0, summary_every_s: float = 15.0) -> None:
        from trafficlight.base.db import connect

        conn = await connect(self._url)
        last_summary = time.monotonic()
        try:
            while True:
                await self._tell(conn)
                if time.monotonic() - last_summary >= summary_every_s:
                    self._summary()
                    last_summary = time.monotonic()
                await asyncio.sleep(every_s)
        finally:
            await conn.close()

    async def _tell(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            "SELECT id, percentage::float8 AS pct, enabled, domain_overrides::text AS own, "
            "created_by, notes FROM webhook_routing_config WHERE id > $1 ORDER BY id",
            self._last_config_id)
        for row in rows:
            if self._last_config_id:
                state = "enabled" if row["enabled"] else "DISABLED"
                own = "".join(
                    f", {domain} {float(s['percentage']):g}% "
                    f"{'enabled' if s['enabled'] else 'DISABLED'}"
                    for domain, s in sorted(orjson.loads(row["own"]).items()))
                self._say(f"config v{row['id']}: {row['pct']:g}% {state}{own} "
                          f"by {row['created_by']}: {row['notes']}")
            self._last_config_id = row["id"]
        if not self._seen_verdict:
            first = await conn.fetchrow(
                "SELECT domain, routed_to, verdict, decision FROM webhook_routing_verdicts "
                "WHERE verdict <> 'insufficient_data' ORDER BY evaluated_at LIMIT 1")
            if first is not None:
                self._seen_verdict = True
                self._say(f"first verdict: {first['domain']}/{first['routed_to']} "
                          f"{first['verdict']} -> {first['decision']}")

    def _summary(self) -> None:
        c = self._traffic.counters
        totals = (sum(c.by_status.values()), c.by_target.get(Target.UNIFIED, 0),
                  sum(n for status, n in c.by_status.items() if status >= 500))
        self._say(traffic_line(totals, self._last_totals, time.monotonic() -
                               self._last_summary_s))
        self._last_totals, self._last_summary_s = totals, time.monotonic()


def traffic_line(totals: tuple[int, int, int], previous: tuple[int, int, int],
                 interval_s: float) -> str:
    """The last interval's traffic: (answered, to unified, errors) now and at its start."""
    answered, unified, errors = (now - then for now, then in zip(totals, previous, strict=True))
    return (f"traffic, last {interval_s:.0f}s: {answered} answered "
            f"({answered / max(interval_s, 1e-9):.0f}/s), "
            f"{100 * unified / max(answered, 1):.1f}% to unified, "
            f"{100 * errors / max(answered, 1):.2f}% errors")


async def _incident(board: KnobBoard, at_s: float, error_pct: float, say: Say) -> None:
    await asyncio.sleep(at_s)
    board.update({Target.UNIFIED.value: {"error_pct": error_pct}})
    say(f"INCIDENT: unified now fails {error_pct:g}% of webhooks; watch the rollback")


def alert_receiver(say: Say) -> web.Application:
    """A generic JSON webhook that prints what the alert consumer would have posted."""
    async def post(request: web.Request) -> web.Response:
        alert = await request.json()
        say(f"alert (would post): {alert.get('title', '')}")
        for line in str(alert.get("message", "")).splitlines()[1:]:
            click.echo(f"           {line}")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/alerts", post)
    return app


def fresh_demo_folder(workdir: Path) -> None:
    """Empty the default demo folder of the previous run: its services' data and its logs
    (kept until now so a failed run can be read)."""
    shutil.rmtree(workdir / "services", ignore_errors=True)
    shutil.rmtree(workdir / "router-spool", ignore_errors=True)
    for stale in (*workdir.glob("*.log"), workdir / "router.toml",
                  workdir / "demo-thresholds.toml"):
        stale.unlink(missing_ok=True)


_stop_event = stop_event_on_signals


async def run_demo(options: DemoOptions, workdir: Path, say: Say) -> None:
    from trafficlight.base.kafka import ensure_topics
    from trafficlight.streams.thresholds import load_thresholds
    from trafficlight.tools.alerts.consumer import AlertSettings, run_alerts
    from trafficlight.tools.dashboard.address import dashboard_token, dashboard_url
    from trafficlight.tools.dashboard.app import DashboardSettings
    from trafficlight.tools.dashboard.app import create_app as create_dashboard_app
    from trafficlight.tools.migrate import apply_migrations

    check_ports_free(options)
    thresholds_path = thresholds_file(options, workdir)
    thresholds = load_thresholds(thresholds_path)
    stop = _stop_event()
    with embedded_services(workdir / "services") as running:
        say(f"embedded Kafka at {running.bootstrap_servers}, Postgres at {running.database_url}")
        await ensure_topics(running.bootstrap_servers)
        await apply_migrations(running.database_url)
        await start_rollout(running.database_url, options)
        env = {settings.KAFKA_BOOTSTRAP_ENV: running.bootstrap_servers,
               settings.DATABASE_URL_ENV: running.database_url,
               "TRAFFICLIGHT_HOME": str(workdir)}
        board = KnobBoard()
        metrics_port = free_port()
        token, _ = dashboard_token()
        async with (
            serve(create_handlers_app(board), options.host, free_port()) as handlers_url,
            serve(alert_receiver(say), options.host, free_port()) as receiver_url,
            serve(create_dashboard_app(DashboardSettings(
                database_url=running.database_url, token=token,
                knobs_url=f"{handlers_url}/knobs", thresholds=thresholds)),
                options.host, options.dashboard_port),
        ):
            with (
                child_process("worker", worker_argv(options, metrics_port, thresholds_path),
                              env, workdir, say) as worker,
                child_process("router", ["router", "--config",
                                         str(router_toml(options, handlers_url, workdir))],
                              env, workdir, say) as router,
            ):
                router_url = f"http://{options.host}:{options.router_port}"
                await wait_healthy(f"{router_url}/healthz", router)
                traffic = TrafficGenerator(TrafficPlan(router_url, options.speed))
                state = {"knobs_url": f"{handlers_url}/knobs", "router_url": router_url,
                         "dashboard_url": dashboard_url(options.host, options.dashboard_port),
                         **env}
                state_file().parent.mkdir(parents=True, exist_ok=True)
                state_file().write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))
                page = dashboard_url(options.host, options.dashboard_port, token)
                click.echo(f"\n  dashboard  {page}")
                click.echo(f"  router     {router_url}/webhook/{{domain}}")
                click.echo(f"  handlers   {handlers_url} (knobs: trafficlight demo-knob)")
                click.echo(f"  traffic    {traffic.plan.total_per_s:.0f} webhooks/s "
                           f"({options.speed:g}x the runbook's volumes)")
                limits = thresholds.default
                click.echo(f"  thresholds {thresholds_path} (errors: warning "
                           f"{limits.warning_error_pct:g} %, critical "
                           f"{limits.critical_error_pct:g} %; P95: warning "
                           f"{limits.warning_p95_ms:g} ms, critical {limits.critical_p95_ms:g} ms)")
                click.echo(f"  alerts     {receiver_url}/alerts (a local JSON webhook; "
                           "what it receives is printed here)")
                click.echo(f"  metrics    http://{options.host}:{metrics_port}/metrics "
                           "(the worker's, for Prometheus)")
                click.echo(f"  logs       {workdir}/router.log, {workdir}/worker.log")
                click.echo("  operator commands from another terminal: paste")
                click.echo(f"    export {settings.KAFKA_BOOTSTRAP_ENV}={running.bootstrap_servers}"
                           f" {settings.DATABASE_URL_ENV}='{running.database_url}'")
                click.echo("    then e.g. `trafficlight status`, `trafficlight watch`")
                click.echo("  Ctrl-C stops everything\n")
                alerts_stop = asyncio.Event()
                alerts_url = receiver_url.replace("http://", "json://", 1) + "/alerts"
                alerts = asyncio.create_task(run_alerts(AlertSettings(
                    running.bootstrap_servers, notify_urls=(alerts_url,),
                    group_id="demo-alerts", offset_reset="earliest", drain_timeout_s=1.0,
                    database_url=running.database_url, plan_poll_s=1.0),
                    alerts_stop))
                tasks = [asyncio.create_task(traffic.run()),
                         asyncio.create_task(Narrator(running.database_url, traffic, say).run())]
                if options.incident_at_s is not None:
                    tasks.append(asyncio.create_task(_incident(
                        board, options.incident_at_s, options.incident_error_pct, say)))
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), options.duration_s)
                    say("stopping: traffic and alerts first")
                finally:
                    for task in tasks:
                        task.cancel()
                    alerts_stop.set()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(alerts, 1.5)
                    state_file().unlink(missing_ok=True)
                    stop_children({"router": router, "worker": worker}, say)
        say("stopping the embedded broker and Postgres")
    say("stopped")
