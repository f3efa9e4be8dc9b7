"""Reading the records the agent was not handed, straight from their partition."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer

from trafficlight.base.kafka import ensure_topics
from trafficlight.streams.gaps import GapRecord, read_gap


async def _topic_with_records(bootstrap: str, count: int) -> str:
    topic = f"gaps-{uuid.uuid4().hex[:10]}"
    await ensure_topics(bootstrap, {topic: 2})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, f"v{i}".encode(), key=b"k", partition=1)
    finally:
        await producer.stop()
    return topic


async def test_a_gap_reads_exactly_its_offsets_in_order(kafka_bootstrap: str) -> None:
    topic = await _topic_with_records(kafka_bootstrap, 10)

    records = await read_gap(kafka_bootstrap, topic, 1, 3, 7)

    assert records == [GapRecord(offset, b"k", f"v{offset}".encode()) for offset in range(3, 7)]


async def test_a_gap_past_the_partition_end_gives_what_there_is(kafka_bootstrap: str) -> None:
    topic = await _topic_with_records(kafka_bootstrap, 4)

    records = await read_gap(kafka_bootstrap, topic, 1, 2, 9, timeout_s=2.0)

    assert [record.offset for record in records] == [2, 3]
