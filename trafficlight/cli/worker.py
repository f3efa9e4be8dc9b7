"""`trafficlight worker`: one Faust worker judging the events topic (see streams/app.py)."""

from __future__ import annotations

from pathlib import Path

import click

from trafficlight.base import settings
from trafficlight.base.errors import ConfigError


@click.command("worker")
@click.option("--bootstrap-servers", envvar=settings.KAFKA_BOOTSTRAP_ENV, required=True,
              help="Kafka brokers (env KAFKA_BOOTSTRAP_SERVERS).")
@click.option("--events-topic", default=settings.EVENTS_TOPIC, show_default=True)
@click.option("--verdicts-topic", default=settings.VERDICTS_TOPIC, show_default=True)
@click.option("--app-id", envvar="TRAFFICLIGHT_WORKER_APP_ID", default="trafficlight-worker",
              show_default=True, help="Faust app id: the consumer group and table topic prefix.")
@click.option("--worker-id", envvar="TRAFFICLIGHT_WORKER_ID", default=None,
              help="Recorded as created_by on config changes (default: host-pid).")
@click.option("--thresholds", "thresholds_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Thresholds TOML (default: SPEC defaults).")
@click.option("--web-port", type=int, default=None,
              help="Serve Faust's web endpoints on 127.0.0.1:PORT (default: off).")
@click.option("--sink/--no-sink", default=True, show_default=True,
              help="Write events, buckets and verdicts to DATABASE_URL.")
@click.option("--log-sample-pct", type=click.FloatRange(0, 100), default=100.0,
              show_default=True, help="Share of raw events kept in webhook_routing_logs.")
@click.option("--rollout-plan", default=None, metavar="PCT,PCT,...",
              help="Opt-in promotion ladder, e.g. 10,25,35,50,100 (default: off).")
@click.option("--bake", default="10m", show_default=True,
              help="Time at each plan step before promoting.")
@click.option("--healthy-evaluations", type=click.IntRange(1), default=30, show_default=True,
              help="Stored proceed verdicts in a row per domain needed to promote "
                   "(one row per 10 s bucket: 30 is ~5 min).")
@click.option("--loglevel", default="info", show_default=True)
def worker_command(bootstrap_servers: str, events_topic: str, verdicts_topic: str, app_id: str,
                   worker_id: str | None, thresholds_path: Path | None, web_port: int | None,
                   sink: bool, log_sample_pct: float, rollout_plan: str | None, bake: str,
                   healthy_evaluations: int, loglevel: str) -> None:
    """Judge routing events: verdicts to the verdict topic, state in Faust tables."""
    import asyncio

    from trafficlight.base.kafka import EVENT_PARTITIONS, detect_broker
    from trafficlight.streams.actions import RolloutPlan
    from trafficlight.streams.app import WorkerOptions, default_worker_id
    from trafficlight.streams.deadletters import dead_letter_topic
    from trafficlight.streams.thresholds import ThresholdSet, load_thresholds
    from trafficlight.streams.windows import parse_duration_s
    from trafficlight.streams.worker import prepare_topics, run_worker

    if not bootstrap_servers:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set")
    plan = None
    if rollout_plan:
        try:
            steps = tuple(float(p) for p in rollout_plan.split(","))
            plan = RolloutPlan(steps, parse_duration_s(bake), healthy_evaluations)
        except ValueError:
            raise ConfigError(f"--rollout-plan/--bake: expected e.g. 10,25,50,100 and 10m, "
                              f"got {rollout_plan!r} and {bake!r}") from None
        if any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(steps):
            raise ConfigError(f"--rollout-plan steps must rise within (0, 100]: {rollout_plan}")
    thresholds = load_thresholds(thresholds_path) if thresholds_path else ThresholdSet()
    partitions = asyncio.run(prepare_topics(bootstrap_servers, events_topic, verdicts_topic,
                                            dead_letter_topic(events_topic), EVENT_PARTITIONS))
    broker = asyncio.run(detect_broker(bootstrap_servers))
    options = WorkerOptions(
        bootstrap_servers=bootstrap_servers, partitions=partitions, app_id=app_id,
        events_topic=events_topic, verdicts_topic=verdicts_topic, thresholds=thresholds,
        worker_id=worker_id or default_worker_id(), web_port=web_port, broker=broker)
    run_worker(options, database_url=settings.database_url(), sink=sink,
               log_sample_pct=log_sample_pct, plan=plan, loglevel=loglevel)
