"""Topics trafficlight needs, created up front so partition counts are ours, not the broker's."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from enum import StrEnum

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from trafficlight.base.errors import ConfigError, ServiceStartError
from trafficlight.base.settings import EVENTS_TOPIC, VERDICTS_TOPIC

#: Partitions of the events topic: the ceiling on how many workers share the judging.
EVENT_PARTITIONS = int(os.environ.get("TRAFFICLIGHT_EVENT_PARTITIONS", "8"))


def default_topics() -> dict[str, int]:
    return {EVENTS_TOPIC: EVENT_PARTITIONS, VERDICTS_TOPIC: EVENT_PARTITIONS}


@contextlib.asynccontextmanager
async def admin_client(bootstrap_servers: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed after use; an unreachable broker is one line."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise ServiceStartError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from None
    try:
        yield admin
    finally:
        await admin.close()


async def ensure_topics(bootstrap_servers: str, topics: dict[str, int] | None = None,
                        replication_factor: int = 1) -> None:
    """Create missing topics; existing ones are left as they are."""
    wanted = topics if topics is not None else default_topics()
    async with admin_client(bootstrap_servers) as admin:
        try:
            existing = set(await admin.list_topics())
            missing = [NewTopic(name, partitions, replication_factor)
                       for name, partitions in wanted.items() if name not in existing]
            if missing:
                # Another process may have created them since list_topics: that is fine.
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(missing)
        except KafkaError as exc:
            raise ServiceStartError(
                f"cannot create topics on {bootstrap_servers}: {exc}") from None


async def topic_partitions(bootstrap_servers: str, topic: str) -> list[int]:
    """The topic's partition ids, asked of the broker (a consumer's own metadata covers only
    what it subscribed to, so a manual assignment must ask); a missing topic is one line."""
    async with admin_client(bootstrap_servers) as admin:
        try:
            described = await admin.describe_topics([topic])
        except KafkaError as exc:
            raise ServiceStartError(f"cannot describe {topic} on {bootstrap_servers}: {exc}"
                                    ) from None
    partitions = sorted(p["partition"] for t in described if t["topic"] == topic
                        and t["error_code"] == 0 for p in t["partitions"])
    if not partitions:
        raise ConfigError(f"topic {topic} does not exist on {bootstrap_servers}")
    return partitions


class BrokerFlavor(StrEnum):
    """Which broker implementation serves the cluster: what the worker may rely on."""

    APACHE = "apache"
    #: The embedded broker: it reports a changelog's end offset short of its last records
    #: and completes a group join only after the rebalance timeout.
    TANSU = "tansu"


#: The cluster id Tansu reports unless started with another (the embedded broker never is).
TANSU_CLUSTER_ID = "tansu_cluster"


async def detect_broker(bootstrap_servers: str) -> BrokerFlavor:
    """``TRAFFICLIGHT_KAFKA_BROKER`` when set, else Tansu by its cluster id, else Apache Kafka
    (anything else speaks the protocol as Apache Kafka does)."""
    configured = os.environ.get("TRAFFICLIGHT_KAFKA_BROKER")
    if configured:
        try:
            return BrokerFlavor(configured.strip().lower())
        except ValueError:
            choices = ", ".join(flavor.value for flavor in BrokerFlavor)
            raise ConfigError(f"TRAFFICLIGHT_KAFKA_BROKER: expected one of {choices}, "
                              f"got {configured!r}") from None
    async with admin_client(bootstrap_servers) as admin:
        try:
            cluster = await admin.describe_cluster()
        except KafkaError as exc:
            raise ServiceStartError(f"cannot describe the cluster at {bootstrap_servers}: "
                                    f"{exc}") from None
    return BrokerFlavor.TANSU if cluster["cluster_id"] == TANSU_CLUSTER_ID else BrokerFlavor.APACHE
