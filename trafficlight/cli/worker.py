"""`trafficlight worker`: one Faust worker judging the events topic (see streams/app.py)."""

from __future__ import annotations

from pathlib import Path

import click

from trafficlight.base import settings


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
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Serve Prometheus /metrics on 127.0.0.1:PORT (default: off).")
@click.option("--sink/--no-sink", default=True, show_default=True,
              help="Write events, buckets and verdicts to DATABASE_URL.")
@click.option("--log-sample-pct", type=click.FloatRange(0, 100), default=100.0,
              show_default=True, help="Share of raw events kept in webhook_routing_logs.")
@click.option("--rollback-scope", type=click.Choice(["domain", "all"]),
              envvar="TRAFFICLIGHT_ROLLBACK_SCOPE", default="domain", show_default=True,
              help="What a critical verdict takes back: its domain, or every rollout domain.")
@click.option("--loglevel", default="info", show_default=True)
def worker_command(bootstrap_servers: str, events_topic: str, verdicts_topic: str, app_id: str,
                   worker_id: str | None, thresholds_path: Path | None, web_port: int | None,
                   metrics_port: int | None, sink: bool, log_sample_pct: float,
                   rollback_scope: str, loglevel: str) -> None:
    """Judge routing events: verdicts to the verdict topic, state in Faust tables.

    The workers follow the rollout plan stored in Postgres (`trafficlight plan set`).
    """
    import asyncio

    from trafficlight.base.kafka import EVENT_PARTITIONS, detect_broker
    from trafficlight.streams.actions import RollbackScope
    from trafficlight.streams.app import WorkerOptions, default_worker_id
    from trafficlight.streams.deadletters import dead_letter_topic
    from trafficlight.streams.thresholds import ThresholdSet, load_thresholds
    from trafficlight.streams.worker import prepare_topics, run_worker

    bootstrap_servers = bootstrap_servers or settings.required_kafka_bootstrap_servers()
    thresholds = load_thresholds(thresholds_path) if thresholds_path else ThresholdSet()
    partitions = asyncio.run(prepare_topics(bootstrap_servers, events_topic, verdicts_topic,
                                            dead_letter_topic(events_topic), EVENT_PARTITIONS))
    broker = asyncio.run(detect_broker(bootstrap_servers))
    options = WorkerOptions(
        bootstrap_servers=bootstrap_servers, partitions=partitions, app_id=app_id,
        events_topic=events_topic, verdicts_topic=verdicts_topic, thresholds=thresholds,
        worker_id=worker_id or default_worker_id(), web_port=web_port, broker=broker)
    run_worker(options, database_url=settings.database_url(), sink=sink,
               log_sample_pct=log_sample_pct,
               rollback_scope=RollbackScope(rollback_scope), loglevel=loglevel,
               metrics_port=metrics_port)
