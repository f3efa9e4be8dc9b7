"""Prometheus figures of one router, on a registry of its own (several routers per process in
tests). Labels carry no secrets and a bounded set of values: a domain the config does not know
is counted under ``domain="_unknown"``, so junk paths cannot grow the series without end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from trafficlight.router.config_watcher import ConfigSource
from trafficlight.router.emitter import EventEmitter

UNKNOWN_DOMAIN_LABEL = "_unknown"

#: Seconds: spans a fast local upstream (ms) to the default upstream timeout (10 s).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _StateCollector(Collector):
    """Reads the emitter's and the config's figures at scrape time."""

    def __init__(self, emitter: EventEmitter, config: ConfigSource) -> None:
        self._emitter = emitter
        self._config = config

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        emitter, config = self._emitter, self._config.config
        age_s = time.time() - config.created_at if config.version else float("nan")
        figures: list[tuple[type[GaugeMetricFamily | CounterMetricFamily], str, str, float]] = [
            (GaugeMetricFamily, "events_buffered",
             "Routing events held in memory, not yet acknowledged by Kafka.",
             emitter.buffered_events),
            (GaugeMetricFamily, "events_spooled",
             "Routing events in the on-disk spool, waiting for Kafka.", emitter.spooled_events),
            (CounterMetricFamily, "events_dropped",
             "Routing events dropped because memory and spool were full.",
             emitter.dropped_events),
            (CounterMetricFamily, "events_sent", "Routing events acknowledged by Kafka.",
             emitter.sent_events),
            (CounterMetricFamily, "kafka_send_failures",
             "Failed attempts to deliver a chunk of records (retried).", emitter.send_failures),
            (GaugeMetricFamily, "config_version",
             "Id of the webhook_routing_config row in force (0: none).", config.version),
            (GaugeMetricFamily, "config_age_seconds",
             "Seconds since the config in force was created.", age_s),
            (GaugeMetricFamily, "routing_percentage",
             "Percentage of rollout traffic routed to unified.",
             config.percentage if config.enabled else 0.0),
        ]
        for family, name, documentation, value in figures:
            yield family(f"trafficlight_router_{name}", documentation, value=value)
        per_domain = GaugeMetricFamily(
            "trafficlight_router_domain_routing_percentage",
            "Percentage of a rollout domain's traffic routed to unified (its own setting or "
            "the all-domains one).", labels=["domain"])
        for domain in sorted(config.domains):
            setting = config.setting_for(domain)
            per_domain.add_metric([domain], setting.percentage if setting.enabled else 0.0)
        yield per_domain


class RouterMetrics:
    def __init__(self, emitter: EventEmitter, config: ConfigSource) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "trafficlight_router_requests", "Webhooks answered, by domain, target and outcome.",
            ["domain", "routed_to", "status"], registry=self.registry)
        self.latency = Histogram(
            "trafficlight_router_upstream_seconds", "Upstream response time as events record it.",
            ["domain", "routed_to"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.rejected = Counter(
            "trafficlight_router_rejected", "Requests refused before forwarding, by HTTP status.",
            ["http_status"], registry=self.registry)
        self.registry.register(_StateCollector(emitter, config))
        # Children by label values: ``labels()`` takes a lock and builds a tuple per call.
        self._requests: dict[tuple[str, str, str], Any] = {}
        self._latency: dict[tuple[str, str], Any] = {}

    def observe(self, domain_label: str, routed_to: str, status: str, seconds: float) -> None:
        counter = self._requests.get((domain_label, routed_to, status))
        if counter is None:
            counter = self._requests[(domain_label, routed_to, status)] = self.requests.labels(
                domain_label, routed_to, status)
        counter.inc()
        histogram = self._latency.get((domain_label, routed_to))
        if histogram is None:
            histogram = self._latency[(domain_label, routed_to)] = self.latency.labels(
                domain_label, routed_to)
        histogram.observe(seconds)

    def rejected_with(self, http_status: int) -> None:
        self.rejected.labels(str(http_status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
