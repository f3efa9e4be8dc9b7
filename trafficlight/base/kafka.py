"""Topics trafficlight needs, created up front so partition counts are ours, not the broker's."""

from __future__ import annotations

import contextlib
import os

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from trafficlight.base.errors import ServiceStartError
from trafficlight.base.settings import EVENTS_TOPIC, VERDICTS_TOPIC

#: Partitions of the events topic: the ceiling on how many workers share the judging.
EVENT_PARTITIONS = int(os.environ.get("TRAFFICLIGHT_EVENT_PARTITIONS", "8"))


def default_topics() -> dict[str, int]:
    return {EVENTS_TOPIC: EVENT_PARTITIONS, VERDICTS_TOPIC: EVENT_PARTITIONS}


async def ensure_topics(bootstrap_servers: str, topics: dict[str, int] | None = None,
                        replication_factor: int = 1) -> None:
    """Create missing topics; existing ones are left as they are."""
    wanted = topics if topics is not None else default_topics()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise ServiceStartError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from None
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, partitions, replication_factor)
                   for name, partitions in wanted.items() if name not in existing]
        if missing:
            # Another process may have created them since list_topics: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    except KafkaError as exc:
        raise ServiceStartError(f"cannot create topics on {bootstrap_servers}: {exc}") from None
    finally:
        await admin.close()
