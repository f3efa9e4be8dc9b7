"""The `trafficlight` command: one click group; the commands live in this package's modules."""

from __future__ import annotations

import sys

import click

from trafficlight.base.errors import TrafficlightError
from trafficlight.cli.alerts import alerts
from trafficlight.cli.dashboard import dashboard
from trafficlight.cli.demo import demo, demo_knob
from trafficlight.cli.operator import COMMANDS as OPERATOR_COMMANDS
from trafficlight.cli.plan import COMMANDS as PLAN_COMMANDS
from trafficlight.cli.replay import replay_command
from trafficlight.cli.router import router_command
from trafficlight.cli.scoreboard import scoreboard_command
from trafficlight.cli.services import migrate, services
from trafficlight.cli.worker import worker_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trafficlight")
def cli() -> None:
    """Canary rollouts for webhook traffic: route a percentage, judge it live, roll back fast."""


for _command in (migrate, services, router_command, worker_command, replay_command, alerts,
                 scoreboard_command, dashboard, demo, demo_knob, *OPERATOR_COMMANDS,
                 *PLAN_COMMANDS):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: a TrafficlightError becomes one line on stderr and its exit code."""
    try:
        cli.main(args=argv, prog_name="trafficlight", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # one line, as docs/operator.md says; exit code 2
        command = exc.ctx.command_path if exc.ctx is not None else "trafficlight"
        click.echo(f"error: {exc.format_message()} (`{command} -h` for usage)", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except TrafficlightError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
