"""`trafficlight dashboard`: serve the live dashboard for DATABASE_URL."""

from __future__ import annotations

from pathlib import Path

import click

from trafficlight.base import settings as env
from trafficlight.tools.dashboard.address import TOKEN_ENV, dashboard_token, dashboard_url


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=int)
@click.option("--thresholds", "thresholds_path", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The workers' thresholds TOML, to draw the lines (default: SPEC defaults).")
@click.option("--history", default="15m", show_default=True,
              help="How far back the charts and timeline reach.")
def dashboard(host: str, port: int, thresholds_path: Path | None, history: str) -> None:
    """Serve the live dashboard; controls need the token (env TRAFFICLIGHT_DASHBOARD_TOKEN)."""
    from aiohttp import web

    from trafficlight.base.durations import parse_whole_seconds
    from trafficlight.base.errors import ConfigError
    from trafficlight.streams.thresholds import ThresholdSet, load_thresholds
    from trafficlight.tools.dashboard.app import DashboardSettings, create_app

    try:
        history_s = parse_whole_seconds(history)
    except ValueError as exc:
        raise ConfigError(f"--history: {exc}") from None
    token, generated = dashboard_token()
    settings = DashboardSettings(
        database_url=env.required_database_url(), token=token, history_s=history_s,
        thresholds=load_thresholds(thresholds_path) if thresholds_path else ThresholdSet(),
    )
    click.echo(f"dashboard: {dashboard_url(host, port, token if generated else None)}")
    if generated:
        click.echo(f"(controls token generated for this run; set {TOKEN_ENV} to choose one)")
    web.run_app(create_app(settings), host=host, port=port, access_log=None, print=None)
