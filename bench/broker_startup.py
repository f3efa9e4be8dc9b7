"""Local broker start-up: Apache Kafka (first start, restart, restart after kill -9) vs Tansu.

    python bench/broker_startup.py [--rounds 3]

Each figure is the time from `start()` to a broker that answers a metadata request (the
test fixtures' wait), measured in this run on this machine; Tansu's is the baseline the
ratios are against. The first Apache Kafka start formats its log directory; the class path
comes from Maven's cache (fetched before timing). Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer

from trafficlight.base.local_services import (
    ApacheKafkaBroker,
    EmbeddedBroker,
    LocalBroker,
    kafka_classpath,
)


async def _answers(bootstrap_servers: str) -> None:
    while True:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
        try:
            await producer.start()
            return
        except Exception:
            await asyncio.sleep(0.05)
        finally:
            await producer.stop()


def _timed(broker: LocalBroker) -> float:
    began = time.perf_counter()
    broker.start()
    asyncio.run(_answers(broker.bootstrap_servers))
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    kafka_classpath()  # Maven's fetch is not start-up

    tansu: list[float] = []
    for _ in range(rounds):
        broker = EmbeddedBroker()
        tansu.append(_timed(broker))
        broker.stop()

    first: list[float] = []
    restart: list[float] = []
    after_kill: list[float] = []
    for _ in range(rounds):
        folder = Path(tempfile.mkdtemp(prefix="trafficlight-bench-"))
        kafka = ApacheKafkaBroker(folder)
        try:
            first.append(_timed(kafka))
            kafka.stop()
            restart.append(_timed(kafka))
            kafka.kill()
            after_kill.append(_timed(kafka))
        finally:
            kafka.kill()
            shutil.rmtree(folder, ignore_errors=True)

    base = statistics.median(tansu)
    print(f"median of {rounds} rounds, seconds to a broker that answers:")
    print(f"  tansu (baseline)              {base:6.2f} s")
    for name, times in (("apache kafka, first start", first), ("apache kafka, restart", restart),
                        ("apache kafka, after kill -9", after_kill)):
        median = statistics.median(times)
        print(f"  {name:<29} {median:6.2f} s  ({median / base:5.1f}x tansu; "
              f"min {min(times):.2f}, max {max(times):.2f})")


if __name__ == "__main__":
    main()
