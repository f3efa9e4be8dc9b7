"""`trafficlight demo` and `trafficlight demo-knob`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from trafficlight.base import settings
from trafficlight.base.local_services import free_port
from trafficlight.streams.events import Target
from trafficlight.tools.demo import DemoOptions, Say, fresh_demo_folder, run_demo
from trafficlight.tools.demo_knob import call_knobs, knobs_url


@click.command()
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), default=360.0,
              show_default=True,
              help="Traffic as a multiple of the runbook's volumes (500/300/200 per hour).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Total webhooks per second instead of --speed (same domain mix).")
@click.option("--incident-at", default=None, metavar="DURATION",
              help="When unified starts failing, e.g. 60s (default: no incident).")
@click.option("--incident-error-pct", type=click.FloatRange(0, 100), default=25.0,
              show_default=True, help="Unified's error rate during the incident.")
@click.option("--start-percentage", type=click.FloatRange(0, 100), default=10.0,
              show_default=True, help="Share of rollout traffic on unified at start.")
@click.option("--rollout-plan", default="10,25,50,100", show_default=True,
              help="The rollout plan set in the database at start (its first step replaces "
                   "--start-percentage); 'off' for none.")
@click.option("--bake", default="45s", show_default=True, help="Time at each plan step.")
@click.option("--router-port", type=int, default=8080, show_default=True,
              help="0 picks a free port.")
@click.option("--dashboard-port", type=int, default=8090, show_default=True,
              help="0 picks a free port.")
@click.option("--thresholds", "thresholds_path", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Thresholds TOML for the worker and dashboard (default: the demo's, SPEC's "
                   "with errors at warning 1 % / critical 2 %: SPEC's 0.1 % needs ~6,500 clean "
                   "requests per target to be shown healthy, ~20 min of the demo's unified).")
@click.option("--duration", default=None, metavar="DURATION",
              help="Stop by itself after this long (default: run until Ctrl-C).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep services' data and logs here (default: .trafficlight/demo, "
                   "emptied when the next demo starts).")
def demo(speed: float, rate: float | None, incident_at: str | None, incident_error_pct: float,
         start_percentage: float, rollout_plan: str, bake: str, router_port: int,
         dashboard_port: int, thresholds_path: Path | None, duration: str | None,
         data_dir: Path | None) -> None:
    """The whole system on embedded services with simulated handlers and traffic."""
    from trafficlight.base.durations import parse_duration_s
    from trafficlight.base.errors import ConfigError
    from trafficlight.tools.traffic import speed_for_rate

    def seconds(name: str, value: str | None) -> float | None:
        try:
            return None if value is None else parse_duration_s(value)
        except ValueError as exc:
            raise ConfigError(f"--{name}: {exc}") from None

    options = DemoOptions(
        speed=speed_for_rate(rate) if rate is not None else speed,
        start_percentage=start_percentage,
        incident_at_s=seconds("incident-at", incident_at),
        incident_error_pct=incident_error_pct,
        rollout_plan=None if rollout_plan == "off" else rollout_plan, bake=bake,
        router_port=router_port or free_port(), dashboard_port=dashboard_port or free_port(),
        duration_s=seconds("duration", duration), thresholds=thresholds_path,
    )
    say = Say()
    # Not a temporary folder: the logs of a run that failed stay for reading, and removing
    # Postgres' files would hold Ctrl-C up for seconds. The next demo starts it afresh.
    workdir = (data_dir or settings.STATE_DIR / "demo").absolute()
    if data_dir is None:
        fresh_demo_folder(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    asyncio.run(run_demo(options, workdir, say))


@click.command("demo-knob")
@click.argument("target", type=click.Choice([Target.LEGACY.value, Target.UNIFIED.value]),
                required=False)
@click.option("--latency-ms", type=click.FloatRange(0), default=None,
              help="Median response time of TARGET.")
@click.option("--error-pct", type=click.FloatRange(0, 100), default=None,
              help="Share of TARGET's webhooks answered 500.")
def demo_knob(target: str | None, latency_ms: float | None, error_pct: float | None) -> None:
    """Show the demo's handler knobs, or change TARGET's latency and error rate."""
    changes = {k: v for k, v in (("latency_ms", latency_ms), ("error_pct", error_pct))
               if v is not None}
    if changes and target is None:
        raise click.UsageError("name the TARGET to change: legacy or unified")
    knobs = call_knobs(knobs_url(), {target: changes} if changes and target else None)
    for name, knob in knobs.items():
        click.echo(f"{name:8} latency {knob['latency_ms']:g} ms, errors {knob['error_pct']:g}%")
