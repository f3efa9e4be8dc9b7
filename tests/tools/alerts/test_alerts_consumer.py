"""`trafficlight alerts` against a real broker and a local HTTP receiver that fails at first."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.tools.alerts.conftest import Receiver
from tests.tools.alerts.test_alert_changes import verdict
from trafficlight.base.errors import ConfigError
from trafficlight.base.kafka import ensure_topics
from trafficlight.tools.alerts.consumer import AlertSettings, run_alerts
from trafficlight.tools.alerts.delivery import RetryPolicy

FAST_RETRY = RetryPolicy(first_delay_s=0.05, max_delay_s=0.2, max_attempts=5)


async def _produce(bootstrap: str, topic: str, values: list[dict | bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            body = value if isinstance(value, bytes) else orjson.dumps(value)
            await producer.send_and_wait(topic, body, key=b"jobs")
    finally:
        await producer.stop()


async def _alerts_until(bootstrap: str, topic: str, receiver: Receiver,
                        done: Callable[[], bool]) -> None:
    stop = asyncio.Event()
    config = AlertSettings(bootstrap, webhook_urls=(receiver.url,), topic=topic,
                           group_id=f"alerts-{topic}", offset_reset="earliest",
                           retry=FAST_RETRY)
    task = asyncio.create_task(run_alerts(config, stop))
    for _ in range(300):
        if done() or task.done():
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # anything extra would have arrived by now
    stop.set()
    await task


async def test_posts_once_per_change_in_order(
        kafka_bootstrap: str, unique_topic: Callable[[str], str], receiver: Receiver) -> None:
    topic = unique_topic("verdicts")
    await ensure_topics(kafka_bootstrap, {topic: 1})
    states = ([("healthy", "proceed")] * 3 + [("critical", "hold")] * 2
              + [("critical", "rollback")] * 3 + [("healthy", "rollback")] * 2)
    await _produce(kafka_bootstrap, topic,
                   [verdict(i + 1, s, d) for i, (s, d) in enumerate(states)])
    await _alerts_until(kafka_bootstrap, topic, receiver, lambda: len(receiver.accepted) >= 3)
    assert [m["text"].split("unified: ", 1)[1] for m in receiver.accepted] == [
        "critical -> hold (was healthy / proceed)",
        "critical -> rollback (was critical / hold)",
        "healthy -> rollback (was critical / rollback)",
    ]


async def test_retries_a_failing_webhook_until_it_accepts(
        kafka_bootstrap: str, unique_topic: Callable[[str], str], receiver: Receiver) -> None:
    topic = unique_topic("verdicts")
    await ensure_topics(kafka_bootstrap, {topic: 1})
    receiver.failures = 2
    await _produce(kafka_bootstrap, topic, [verdict(1), verdict(2, "critical", "rollback")])
    await _alerts_until(kafka_bootstrap, topic, receiver, lambda: len(receiver.accepted) >= 1)
    assert receiver.attempts == 3
    assert len(receiver.accepted) == 1
    assert "critical -> rollback" in receiver.accepted[0]["text"]


async def test_a_malformed_record_is_skipped_and_the_next_still_alerts(
        kafka_bootstrap: str, unique_topic: Callable[[str], str], receiver: Receiver) -> None:
    topic = unique_topic("verdicts")
    await ensure_topics(kafka_bootstrap, {topic: 1})
    await _produce(kafka_bootstrap, topic, [b"{not json", {"verdict": "purple"},
                                            verdict(1, "critical", "rollback")])
    await _alerts_until(kafka_bootstrap, topic, receiver, lambda: len(receiver.accepted) >= 1)
    assert len(receiver.accepted) == 1


async def test_every_channel_gets_each_change_in_order(
        kafka_bootstrap: str, unique_topic: Callable[[str], str], receiver: Receiver,
        json_receiver: Receiver) -> None:
    topic = unique_topic("verdicts")
    await ensure_topics(kafka_bootstrap, {topic: 1})
    json_receiver.failures = 1  # the generic webhook fails once: retried, still in order
    states = [("healthy", "proceed")] * 2 + [("critical", "rollback")] * 2 + [("healthy", "hold")]
    await _produce(kafka_bootstrap, topic,
                   [verdict(i + 1, s, d) for i, (s, d) in enumerate(states)])
    stop = asyncio.Event()
    config = AlertSettings(kafka_bootstrap, webhook_urls=(receiver.url,),
                           notify_urls=(json_receiver.url,), topic=topic,
                           group_id=f"alerts-{topic}", offset_reset="earliest",
                           retry=FAST_RETRY)
    task = asyncio.create_task(run_alerts(config, stop))
    for _ in range(300):
        if (len(receiver.accepted) >= 2 and len(json_receiver.accepted) >= 2) or task.done():
            break
        await asyncio.sleep(0.1)
    stop.set()
    await task

    assert [m["text"].split("unified: ", 1)[1] for m in receiver.accepted] == [
        "critical -> rollback (was healthy / proceed)",
        "healthy -> hold (was critical / rollback)",
    ]
    assert [(m["title"], m["type"]) for m in json_receiver.accepted] == [
        ("trafficlight jobs/unified: critical -> rollback", "failure"),
        ("trafficlight jobs/unified: healthy -> hold", "warning"),
    ]
    assert "error %: 5.00 %" in json_receiver.accepted[0]["message"]
    assert json_receiver.attempts == 3


async def test_an_unknown_notify_url_is_a_one_line_setup_error(kafka_bootstrap: str) -> None:
    config = AlertSettings(kafka_bootstrap, notify_urls=("nosuchservice://x",))
    with pytest.raises(ConfigError, match="--notify: not a URL Apprise can use"):
        await run_alerts(config, asyncio.Event())
