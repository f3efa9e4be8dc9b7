"""Follow the verdict topic: no consumer group (watching must not move anyone's offsets)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError

from trafficlight.base.errors import InvalidInput, ServiceStartError
from trafficlight.streams.verdicts import BadVerdict, Decision, Health, Verdict, decode_verdict


class ChangeFilter:
    """Which verdicts `watch` shows by default: each target's first, then only those whose
    verdict or decision differs from the target's last (heartbeat repeats are not news)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[Health, Decision]] = {}

    def is_news(self, verdict: Verdict) -> bool:
        key = (verdict.domain, verdict.routed_to)
        state = (verdict.verdict, verdict.decision)
        news = self._last.get(key) != state
        self._last[key] = state
        return news


@dataclass(frozen=True, slots=True)
class Received:
    """One record: a verdict, or why it is not one (``problem``)."""

    verdict: Verdict | None
    problem: str | None
    partition: int
    offset: int


async def follow_verdicts(
    bootstrap_servers: str, topic: str, *, from_beginning: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> AsyncIterator[Received]:
    """Every record of ``topic`` from now on (or from the start), decoded, in arrival order.

    ``on_ready`` runs once every partition's starting position is fixed: anything produced
    after it is seen.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None,
                                enable_auto_commit=False)
    try:
        await consumer.start()
    except KafkaConnectionError as exc:
        raise ServiceStartError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from None
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)
        if on_ready is not None:
            on_ready()
        async for record in consumer:
            try:
                yield Received(decode_verdict(record.value), None, record.partition,
                               record.offset)
            except BadVerdict as exc:
                yield Received(None, str(exc), record.partition, record.offset)
    except KafkaError as exc:
        raise ServiceStartError(f"lost Kafka at {bootstrap_servers}: {exc}") from None
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    if topic not in await consumer.topics():
        raise InvalidInput(f"topic {topic!r} does not exist (is a worker running?)")
    numbers = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, number) for number in sorted(numbers)]
