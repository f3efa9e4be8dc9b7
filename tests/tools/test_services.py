"""Embedded services start, answer and stop with no process left behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from trafficlight.base.db import connect
from trafficlight.base.local_services import embedded_services


def _processes_mentioning(*texts: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if any(text in cmdline for text in texts):
            found.append(cmdline)
    return found


def _wait_until_gone(*texts: str, timeout_s: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while (left := _processes_mentioning(*texts)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


async def test_embedded_services_answer_and_stop(service_dir: Path) -> None:
    with embedded_services(service_dir) as running:
        conn = await connect(running.database_url)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()

        producer = AIOKafkaProducer(bootstrap_servers=running.bootstrap_servers)
        await producer.start()
        await producer.send_and_wait("probe", b"hello")
        await producer.stop()
        consumer = AIOKafkaConsumer("probe", bootstrap_servers=running.bootstrap_servers,
                                    auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        record = await consumer.getone()
        await consumer.stop()
        assert record.value == b"hello"
        assert running.broker is not None and running.postgres is not None
        assert running.broker.running and running.postgres.running

    assert not running.broker.running
    assert not running.postgres.running
    assert _wait_until_gone(str(service_dir), f"127.0.0.1:{running.broker.port}") == []


def test_services_command_prints_exports_and_stops_on_sigterm(service_dir: Path) -> None:
    postgres_dir = str(service_dir / "postgres")
    with subprocess.Popen(
        [sys.executable, "-m", "trafficlight.cli", "services", "--data-dir", str(service_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:  # the with block closes its pipes
        try:
            lines = [proc.stdout.readline().strip() for _ in range(2)] if proc.stdout else []
            assert lines[0].startswith("export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:")
            assert lines[1].startswith("export DATABASE_URL=postgresql://postgres@127.0.0.1:")
            broker_address = lines[0].split("=", 1)[1]
            assert len(_processes_mentioning(postgres_dir, broker_address)) == 2
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)

    assert proc.returncode == 0
    assert _wait_until_gone(postgres_dir, broker_address) == []
