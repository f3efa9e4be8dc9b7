"""Running a worker process: topics first, then the Faust app with the sink and actions beside.

Started programmatically (never the `faust worker` CLI, which opens a web server on
0.0.0.0:6066): the web server is off unless a loopback port is given, so several workers share
a host without colliding.
"""

from __future__ import annotations

from aiokafka import AIOKafkaClient

from trafficlight.base.errors import ServiceStartError
from trafficlight.base.kafka import ensure_topics
from trafficlight.streams.actions import Actions, RollbackScope
from trafficlight.streams.app import WorkerApp, WorkerOptions
from trafficlight.streams.config_shares import ShareCache
from trafficlight.streams.metrics import WorkerFigures, WorkerMetrics
from trafficlight.streams.partition import changelog_topic
from trafficlight.streams.sink import PostgresSink, SinkOptions


async def prepare_topics(bootstrap_servers: str, events_topic: str, verdicts_topic: str,
                         dead_letter_topic: str, default_partitions: int) -> int:
    """Create missing topics; the events topic's partition count (tables must match it)."""
    await ensure_topics(bootstrap_servers, {events_topic: default_partitions})
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers)
    try:
        await client.bootstrap()
        await client.force_metadata_update()
        partitions = client.cluster.partitions_for_topic(events_topic)
    finally:
        await client.close()
    if not partitions:
        raise ServiceStartError(f"topic {events_topic} has no partitions on {bootstrap_servers}")
    await ensure_topics(bootstrap_servers, {verdicts_topic: len(partitions),
                                            dead_letter_topic: len(partitions)})
    return len(partitions)


def serve_metrics(worker_app: WorkerApp, events_topic: str, actions: Actions | None,
                  port: int) -> WorkerMetrics:
    """Attach the metrics hooks to the agent and serve them on 127.0.0.1:port."""
    metrics = WorkerMetrics(WorkerFigures(
        counters=worker_app.counters,
        positions=lambda: worker_app.positions(events_topic),
        last_rollback_s=lambda: dict(actions.last_rollback_s) if actions else {}))
    worker_app.verdict_listeners.append(metrics.observe_verdicts)
    worker_app.apply_listeners.append(metrics.observe_apply)
    metrics.serve(port)
    return metrics


def run_worker(options: WorkerOptions, *, database_url: str | None = None, sink: bool = True,
               log_sample_pct: float = 100.0,
               rollback_scope: RollbackScope = RollbackScope.DOMAIN,
               loglevel: str = "info", metrics_port: int | None = None) -> None:
    """Run until SIGTERM/SIGINT; Faust flushes the producer and commits on the way out.

    With a database: the sink (its own consumer group, `<app_id>-sink`), the actions and the
    sample-ratio guard's cache of configured percentages run as tasks of the same process
    (without one the guard is off). With `metrics_port`: Prometheus `/metrics` on 127.0.0.1,
    listening before Faust starts (a taken port fails the start with the port named).
    """
    import faust

    from trafficlight.streams.app import build_app

    shares = ShareCache(database_url) if database_url is not None else None
    worker_app = build_app(options, shares)
    actions: Actions | None = None
    if shares is not None:
        worker_app.app.task(shares.run)
    if database_url is not None:
        actions = Actions(database_url, options.worker_id, rollback_scope)
        worker_app.verdict_listeners.append(actions.observe)
        worker_app.app.task(actions.run)
        if sink:
            worker_app.app.task(PostgresSink(SinkOptions(
                options.bootstrap_servers, database_url, options.events_topic,
                options.verdicts_topic, changelog_topic(options.app_id),
                f"{options.app_id}-sink", log_sample_pct=log_sample_pct)).run)
    if metrics_port is not None:
        serve_metrics(worker_app, options.events_topic, actions, metrics_port)
    worker = faust.Worker(worker_app.app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    # Faust keeps its terminal spinner at --loglevel warning and above, and for it sets the root
    # logger to DEBUG so that every debug line spins it: aiokafka's per-request debug records
    # were then built and dropped, ~4 % of the worker's CPU under load.
    worker.spinner = None
    worker.execute_from_commandline()
