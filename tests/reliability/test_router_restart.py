"""Scenario 4: the router restarts under load, while the broker is down.

A restart is SIGTERM (the router's graceful stop) and a new process on the same port and spool.
In-flight webhooks must be answered by their upstream or fail cleanly at the connection (the
sender retries), never hang and never get an answer the upstream did not give. The broker is
down across the restart, so the stopping router must spool what it holds and the new one
replay it: after the broker is back, every answered webhook's event is on the topic.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.reliability.harness import EventCollector, Load, RouterProcess, UpstreamProcess
from trafficlight.base.local_services import LocalBroker, free_port

RATE_PER_S = 300
TOTAL_S = 30

#: Client-side failures that mean "nothing answered on this connection": the sender retries.
CLEAN_FAILURES = {"ClientConnectorError", "ServerDisconnectedError", "ClientOSError"}


@pytest.mark.reliability
async def test_a_router_restart_under_load_answers_or_cleanly_fails_and_replays_its_spool(
        own_broker: LocalBroker, upstream: UpstreamProcess,
        spooling_router: tuple[RouterProcess, str],
        events_topic_on: Callable[[str], Awaitable[str]],
        figures: Callable[[str], None]) -> None:
    router, topic = spooling_router
    load = Load(router.base, RATE_PER_S, timeout_s=30)
    traffic = asyncio.create_task(load.run(TOTAL_S))

    await asyncio.sleep(5)
    await asyncio.to_thread(own_broker.stop)
    broker_down_at = time.time()
    await asyncio.sleep(5)
    stop_began = time.time()
    exit_code = await router.stop()
    stop_s = time.time() - stop_began
    await router.start()
    restart_s = time.time() - stop_began
    # The new process counts its spool once it has opened it: ask for up to 3 s.
    replaying, asked_until = 0, time.monotonic() + 3
    while not replaying and time.monotonic() < asked_until:
        replaying = (await router.healthz())["events_spooled"]
        await asyncio.sleep(0.2)
    await asyncio.sleep(5)
    await asyncio.to_thread(own_broker.start)
    if not own_broker.keeps_data:
        await events_topic_on(own_broker.bootstrap_servers)
    collector = await EventCollector(own_broker.bootstrap_servers, topic).start()
    await traffic

    outcomes = load.outcomes
    answered = [o for o in outcomes if o.status is not None]
    failed = Counter(o.error for o in outcomes if o.status is None)
    # Apache Kafka keeps every event. On Tansu events acknowledged before the stop went down
    # with its memory; later ones must arrive.
    must_arrive = {o.event_id for o in answered if o.event_id
                   and (own_broker.keeps_data or o.sent_at >= broker_down_at)}
    missing = await collector.wait_for(must_arrive, timeout_s=90)
    await collector.stop()
    health = await router.healthz()
    await router.stop()
    seen = (await upstream.seen())["seen"]
    forwarded = Counter({seq: n for counts in seen.values() for seq, n in counts.items()})
    failed_but_forwarded = [o for o in outcomes if o.status is None and forwarded[str(o.seq)]]

    figures(f"[router restart] {len(outcomes)} webhooks at {RATE_PER_S}/s, SIGTERM to "
          f"exit {stop_s:.1f} s (exit code {exit_code}), to listening again "
          f"{restart_s:.1f} s: answered "
          f"{len(answered)} {dict(Counter(o.status for o in answered))}, failed at the "
          f"connection {dict(failed)} ({len(failed_but_forwarded)} of them forwarded all "
          f"the same); spool replayed by the new process: {replaying} events; events "
          f"that must arrive {len(must_arrive)}, missing {len(missing)}; dropped "
          f"{health['events_dropped']}")

    assert exit_code == 0
    assert {o.status for o in answered} == {200}
    assert set(failed) <= CLEAN_FAILURES
    assert all(forwarded[str(o.seq)] == 1 for o in answered)
    assert replaying > 0
    assert missing == set()
    assert health["events_dropped"] == 0


@pytest.mark.reliability
async def test_a_sigterm_while_the_router_is_still_starting_stops_it_gracefully(
        tmp_path: Path, upstream: UpstreamProcess) -> None:
    """Stop signals are taken from the start of `serve`: a SIGTERM while the router (one
    serving process, no supervisor between) still waits for its first config (Postgres and
    the broker are down here) goes through its graceful stop, exit code 0, not the default
    kill (-15) that skips closing the spool."""
    router = RouterProcess.configure(
        tmp_path, upstream, f"127.0.0.1:{free_port()}",
        f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", processes=1).launch()
    try:
        async with asyncio.timeout(60):
            while b"routing config: database unavailable" not in router.log_path.read_bytes():
                await asyncio.sleep(0.05)
        exit_code = await router.stop()
    finally:
        router.kill()
    assert exit_code == 0
