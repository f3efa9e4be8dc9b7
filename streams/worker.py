"""Running a worker process: topics first, then the Faust app with the sink and actions beside.

Started programmatically (never the `faust worker` CLI, which opens a web server on
0.0.0.0:6066): the web server is off unless a loopback port is given, so several workers share
a host without colliding.
"""

from __future__ import annotations

from aiokafka import AIOKafkaClient

from streams.app import WorkerOptions
from trafficlight.errors import ServiceStartError
from trafficlight.kafka import ensure_topics


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


def run_worker(options: WorkerOptions, *, loglevel: str = "info") -> None:
    """Run until SIGTERM/SIGINT; Faust flushes the producer and commits on the way out."""
    import faust

    from streams.app import build_app

    worker_app = build_app(options)
    faust.Worker(worker_app.app, loglevel=loglevel, quiet=True,
                 redirect_stdouts=False).execute_from_commandline()
