"""`trafficlight demo-knob`: turn the running demo's simulated handlers up or down."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import click

from trafficlight.errors import ConfigError, TrafficlightError


def _knobs_url() -> str:
    from trafficlight.demo import state_file

    try:
        return str(json.loads(state_file().read_text())["knobs_url"])
    except (OSError, ValueError, KeyError):
        raise ConfigError(f"no running demo found ({state_file()} is missing): "
                          "start `trafficlight demo` from this folder first") from None


def _call(url: str, changes: dict | None) -> dict:
    data = None if changes is None else json.dumps(changes).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise TrafficlightError(json.loads(exc.read() or b"{}").get("error", str(exc))) from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise TrafficlightError(f"the demo's handlers do not answer at {url}: {exc}") from None


@click.command("demo-knob")
@click.argument("target", type=click.Choice(["legacy", "unified"]), required=False)
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
    knobs = _call(_knobs_url(), {target: changes} if changes else None)
    for name, knob in knobs.items():
        click.echo(f"{name:8} latency {knob['latency_ms']:g} ms, errors {knob['error_pct']:g}%")
