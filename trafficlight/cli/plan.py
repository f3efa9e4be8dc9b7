"""`trafficlight plan set|show|promote|pause|resume|abort`, and `promote` ... at the top level.

The rollout plan is stored in Postgres; the workers follow it. Exit codes: docs/operator.md.
"""

from __future__ import annotations

import asyncio

import click

from trafficlight.base import settings
from trafficlight.base.durations import parse_duration_s
from trafficlight.cli.operator import _echo_json, json_option
from trafficlight.tools import operations, plan_operations
from trafficlight.tools.display import config_summary, plan_summary
from trafficlight.tools.plan_operations import PlanAction, PlanChange

reason_option = click.option("--reason", required=True,
                             help="Why: stored in the plan history with your OS user.")


def _report(change: PlanChange, as_json: bool) -> None:
    if as_json:
        _echo_json(change.to_dict())
        return
    click.echo(change.notice)
    click.echo(plan_summary(change.status))
    click.echo(config_summary(change.config))


@click.group("plan")
def plan_group() -> None:
    """The rollout plan: steps, bake time, state; the workers promote by it."""


@plan_group.command("set")
@click.argument("steps")
@click.option("--bake", required=True, help="Time at each step before promoting, e.g. 4h.")
@click.option("--required-proceed", type=click.IntRange(min=1), default=30, show_default=True,
              help="Proceed verdicts in a row per domain needed to promote "
                   "(one per 10 s bucket: 30 is ~5 min).")
@reason_option
@json_option
def plan_set(steps: str, bake: str, required_proceed: int, reason: str, as_json: bool) -> None:
    """Set the plan STEPS (e.g. 10,25,35,50,100) and start its first step now."""
    change = asyncio.run(plan_operations.set_plan(
        settings.required_database_url(), plan_operations.parse_steps(steps),
        parse_duration_s(bake), reason, operations.os_actor(), required_proceed))
    _report(change, as_json)


@plan_group.command("show")
@json_option
def plan_show(as_json: bool) -> None:
    """The plan in force: step, time baked and left, evidence, what blocks a promotion."""
    status, config = asyncio.run(plan_operations.show(settings.required_database_url()))
    if as_json:
        _echo_json({"plan": status, "config": config.to_dict()})
        return
    click.echo(plan_summary(status))


def _action_command(action: PlanAction, help_text: str) -> click.Command:
    @click.command(action.value, help=help_text)
    @reason_option
    @json_option
    def command(reason: str, as_json: bool) -> None:
        change = asyncio.run(plan_operations.act(settings.required_database_url(), action,
                                                 reason, operations.os_actor()))
        _report(change, as_json)

    return command


_HELP = {
    PlanAction.PROMOTE: "Move the plan to its next step now (bake and evidence not awaited).",
    PlanAction.PAUSE: "Hold the plan at its step: no promotion until `resume`.",
    PlanAction.RESUME: "Resume a paused plan; the step's bake starts again.",
    PlanAction.ABORT: "End the plan and send every domain back to legacy.",
}

ACTION_COMMANDS: list[click.Command] = []
for _action, _help in _HELP.items():
    plan_group.add_command(_action_command(_action, _help))
    ACTION_COMMANDS.append(_action_command(_action, _help))

COMMANDS: list[click.Command] = [plan_group, *ACTION_COMMANDS]
