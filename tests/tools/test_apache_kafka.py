"""Apache Kafka as a local service: KRaft from Maven Central's jars, its logs on disk.

A restart (clean or after a crash) keeps every topic and record, as a production broker does;
the broker dies with the process that started it; `trafficlight services --kafka apache`
runs it beside Postgres. These need Java and Maven and skip without them (CI checks both).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.tools.test_services import _processes_mentioning, _wait_until_gone
from trafficlight.base.errors import ConfigError
from trafficlight.base.kafka import BrokerFlavor, detect_broker, ensure_topics
from trafficlight.base.local_services import ApacheKafkaBroker, BrokerKind

needs_java = pytest.mark.skipif(
    shutil.which("java") is None or shutil.which("mvn") is None,
    reason="Apache Kafka needs Java 17+ and Maven on PATH")


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i, value in enumerate(values):
            await producer.send_and_wait(topic, value, partition=i % 3)
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    values: list[bytes] = []
    try:
        while len(values) < count:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                values += [r.value or b"" for r in records]
    finally:
        await consumer.stop()
    return sorted(values)


@needs_java
@pytest.mark.timeout(240)
async def test_apache_kafka_keeps_topics_and_records_across_a_stop_and_a_crash(
        service_dir: Path) -> None:
    broker = ApacheKafkaBroker(service_dir / "kafka").start()
    try:
        await ensure_topics(broker.bootstrap_servers, {"kept": 3})
        await _produce(broker.bootstrap_servers, "kept", [b"a", b"b", b"c"])
        port = broker.port

        broker.stop()
        broker.start()
        await _produce(broker.bootstrap_servers, "kept", [b"d"])
        broker.kill()
        broker.start()

        assert broker.port == port
        assert await _read_all(broker.bootstrap_servers, "kept", 4) == [b"a", b"b", b"c", b"d"]
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            assert consumer.partitions_for_topic("kept") == {0, 1, 2}
        finally:
            await consumer.stop()
        assert await detect_broker(broker.bootstrap_servers) is BrokerFlavor.APACHE
    finally:
        broker.kill()


@needs_java
@pytest.mark.timeout(180)
def test_apache_kafka_dies_with_the_process_that_started_it(service_dir: Path) -> None:
    data_dir = service_dir / "kafka"
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from trafficlight.base.local_services import ApacheKafkaBroker
            broker = ApacheKafkaBroker({str(data_dir)!r}).start()
            print(broker.bootstrap_servers, flush=True)
            time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True) as parent:  # the with block closes its pipe
        try:
            assert parent.stdout is not None
            address = parent.stdout.readline().strip()
            assert address.startswith("127.0.0.1:")
            assert len(_processes_mentioning(str(data_dir / "server.properties"))) == 1
        finally:
            parent.send_signal(signal.SIGKILL)
            parent.wait()

    assert _wait_until_gone(str(data_dir / "server.properties"), timeout_s=60) == []


@needs_java
@pytest.mark.timeout(180)
def test_services_command_runs_apache_kafka_and_stops_it_on_sigterm(service_dir: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "trafficlight.cli", "services", "--kafka", "apache",
         "--data-dir", str(service_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:  # the with block closes its pipes
        try:
            lines = [proc.stdout.readline().strip() for _ in range(2)] if proc.stdout else []
            assert lines[0].startswith("export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:")
            assert (service_dir / "kafka" / "logs" / "meta.properties").is_file()
            assert len(_processes_mentioning(str(service_dir / "kafka"))) == 1
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=90)

    assert proc.returncode == 0
    assert _wait_until_gone(str(service_dir)) == []


async def test_detect_broker_names_the_session_broker(kafka_bootstrap: str,
                                                      broker_kind: BrokerKind) -> None:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or os.environ.get("TRAFFICLIGHT_TEST_CONTAINERS"):
        pytest.skip("the session's broker is not a local one")
    expected = BrokerFlavor.TANSU if broker_kind is BrokerKind.TANSU else BrokerFlavor.APACHE
    assert await detect_broker(kafka_bootstrap) is expected


async def test_the_broker_flavor_may_be_set_and_a_wrong_one_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAFFICLIGHT_KAFKA_BROKER", "Tansu")
    assert await detect_broker("127.0.0.1:1") is BrokerFlavor.TANSU
    monkeypatch.setenv("TRAFFICLIGHT_KAFKA_BROKER", "redpanda")
    with pytest.raises(ConfigError, match="expected one of apache, tansu"):
        await detect_broker("127.0.0.1:1")
