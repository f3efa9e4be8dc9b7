"""`trafficlight dashboard`: serve the live dashboard for DATABASE_URL."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import click

#: Where the controls' token comes from; without it one is generated and printed once.
TOKEN_ENV = "TRAFFICLIGHT_DASHBOARD_TOKEN"


def dashboard_token() -> tuple[str, bool]:
    """The controls' token and whether it was generated here (and so must be shown once)."""
    configured = os.environ.get(TOKEN_ENV, "").strip()
    if configured:
        return configured, False
    return secrets.token_urlsafe(24), True


def dashboard_url(host: str, port: int, token: str | None = None) -> str:
    """The page's address; a token goes in the fragment, which browsers never send or log."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{shown}:{port}/" + (f"#token={token}" if token else "")


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

    from streams.thresholds import ThresholdSet, load_thresholds
    from streams.windows import parse_duration_s
    from trafficlight.cli import require_database_url
    from trafficlight.dashboard.app import DashboardSettings, create_app
    from trafficlight.errors import ConfigError

    try:
        history_s = parse_duration_s(history)
    except ValueError as exc:
        raise ConfigError(f"--history: {exc}") from None
    token, generated = dashboard_token()
    settings = DashboardSettings(
        database_url=require_database_url(), token=token, history_s=history_s,
        thresholds=load_thresholds(thresholds_path) if thresholds_path else ThresholdSet(),
    )
    click.echo(f"dashboard: {dashboard_url(host, port, token if generated else None)}")
    if generated:
        click.echo(f"(controls token generated for this run; set {TOKEN_ENV} to choose one)")
    web.run_app(create_app(settings), host=host, port=port, access_log=None, print=None)
