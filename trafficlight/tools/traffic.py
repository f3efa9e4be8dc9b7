"""Webhook traffic for the demo: WhatsApp-shaped POSTs to the router at the runbook's volumes.

Arrivals per domain are Poisson at ``volume_per_h * speed / 3600`` per second. Each webhook
comes from one of ``senders`` WhatsApp numbers, so the router's sticky split is exercised
as in production. Requests never queue behind each other: each is its own task, capped at
``max_in_flight``; past the cap an arrival is skipped and counted, never awaited.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import orjson

from trafficlight.tools.simulate import RUNBOOK_VOLUMES_PER_H


@dataclass(frozen=True)
class TrafficPlan:
    router_url: str
    #: Multiple of the runbook's hourly volumes (500/300/200 per hour per domain).
    speed: float
    volumes_per_h: dict[str, float] = field(default_factory=lambda: dict(RUNBOOK_VOLUMES_PER_H))
    senders: int = 5000
    max_in_flight: int = 500

    @property
    def rates_per_s(self) -> dict[str, float]:
        return {d: v * self.speed / 3600 for d, v in self.volumes_per_h.items()}

    @property
    def total_per_s(self) -> float:
        return sum(self.rates_per_s.values())


def speed_for_rate(total_per_s: float,
                   volumes_per_h: dict[str, float] = RUNBOOK_VOLUMES_PER_H) -> float:
    """The speed at which the runbook's mix adds up to ``total_per_s`` webhooks a second."""
    return total_per_s * 3600 / sum(volumes_per_h.values())


def whatsapp_webhook(sender: str, text: str) -> bytes:
    """A minimal WhatsApp Cloud API message notification."""
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [{
        "id": "demo", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "contacts": [{"wa_id": sender, "profile": {"name": "Demo"}}],
            "messages": [{"from": sender, "id": f"wamid.{random.getrandbits(64):x}",
                          "type": "text", "text": {"body": text}}],
        }}],
    }]})


@dataclass
class TrafficCounters:
    sent: int = 0
    skipped: int = 0
    by_target: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    failed: int = 0


class TrafficGenerator:
    def __init__(self, plan: TrafficPlan, seed: int | None = None) -> None:
        self.plan = plan
        self.counters = TrafficCounters()
        self._rng = random.Random(seed)
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Until cancelled; requests still in flight are cancelled with it."""
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            try:
                async with asyncio.TaskGroup() as group:
                    for domain, rate in self.plan.rates_per_s.items():
                        if rate > 0:
                            group.create_task(self._arrivals(http, domain, rate))
            finally:
                for task in self._in_flight:
                    task.cancel()
                await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _arrivals(self, http: aiohttp.ClientSession, domain: str, rate_per_s: float) -> None:
        while True:
            await asyncio.sleep(self._rng.expovariate(rate_per_s))
            if len(self._in_flight) >= self.plan.max_in_flight:
                self.counters.skipped += 1
                continue
            sender = f"3467{self._rng.randrange(self.plan.senders):07d}"
            task = asyncio.create_task(self._post(http, domain, sender))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _post(self, http: aiohttp.ClientSession, domain: str, sender: str) -> None:
        self.counters.sent += 1
        body = whatsapp_webhook(sender, f"hello from {sender}")
        try:
            async with http.post(f"{self.plan.router_url}/webhook/{domain}", data=body,
                                 headers={"Content-Type": "application/json",
                                          "X-Hub-Signature-256": "sha256=demo"}) as response:
                await response.read()
                self.counters.by_status[response.status] += 1
                self.counters.by_target[response.headers.get("X-Routed-To", "none")] += 1
        except (aiohttp.ClientError, TimeoutError):
            self.counters.failed += 1
