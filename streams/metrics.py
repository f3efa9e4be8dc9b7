"""The worker's Prometheus figures, read at scrape time from what the worker already keeps.

Hooks stay thin: the judge's own counters (`PartitionCounters`), the latest verdict of each
(domain, target) as the agent hands them to listeners, the time each record took to apply,
the actions' rollbacks, and the consumer's highwater per partition. Served by prometheus_client
on 127.0.0.1 only (`trafficlight worker --metrics-port PORT`).

Closed sets become numbers so alerts can compare them (and a label form for tables):

| gauge | value |
|---|---|
| `trafficlight_worker_verdict` | -1 insufficient_data, 0 healthy, 1 warning, 2 critical |
| `trafficlight_worker_decision` | 0 proceed, 1 hold, 2 rollback |
| `trafficlight_worker_verdict_state{verdict=...}` | 1 for the current verdict, else 0 |
| `trafficlight_worker_decision_state{decision=...}` | 1 for the current decision, else 0 |
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from trafficlight.base.errors import ServiceStartError
from trafficlight.streams.partition import PartitionCounters
from trafficlight.streams.verdicts import Decision, Health, Verdict

#: The numbers the verdict and decision gauges carry (documented above and in README).
HEALTH_VALUE: dict[Health, int] = {Health.INSUFFICIENT_DATA: -1, Health.HEALTHY: 0,
                                   Health.WARNING: 1, Health.CRITICAL: 2}
DECISION_VALUE: dict[Decision, int] = {Decision.PROCEED: 0, Decision.HOLD: 1,
                                       Decision.ROLLBACK: 2}

#: Seconds to apply one record (decode, ingest, evaluate): sub-ms up to a slow second.
_APPLY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                  0.25, 0.5, 1.0)


@dataclass(frozen=True, slots=True)
class PartitionPosition:
    """Where the worker stands in one source partition: the last applied offset (-1: none)
    and the partition's highwater (next offset to be written; None: not fetched yet)."""

    partition: int
    applied_offset: int
    highwater: int | None

    @property
    def lag(self) -> int | None:
        if self.highwater is None:
            return None
        return max(0, self.highwater - (self.applied_offset + 1))


@dataclass(frozen=True, slots=True)
class WorkerFigures:
    """Callables the collector reads at scrape time (each cheap, none blocking)."""

    counters: Callable[[], PartitionCounters]
    positions: Callable[[], list[PartitionPosition]]
    last_rollback_s: Callable[[], dict[str, float]]


class _WorkerCollector(Collector):
    def __init__(self, figures: WorkerFigures, latest: dict[tuple[str, str], Verdict]) -> None:
        self._figures = figures
        self._latest = latest

    def collect(self) -> Iterator[Metric]:
        counters = self._figures.counters()
        for name, doc, value in (
            ("events_judged", "Routing events decoded and judged.", counters.events),
            ("dead_letters", "Events set aside to the dead-letter topic.", counters.dead_letters),
            ("late_events", "Events older than the bucket grace (counted, not judged).",
             counters.late_events),
            ("time_outliers", "Events held because their time jumped far ahead.",
             counters.time_outliers),
            ("clamped_latencies", "Latencies clamped into the histogram's range.",
             counters.clamped_latencies),
        ):
            yield CounterMetricFamily(f"trafficlight_worker_{name}", doc, value=value)

        lag = GaugeMetricFamily("trafficlight_worker_consumer_lag",
                                "Records of the events topic not yet applied, per partition.",
                                labels=["partition"])
        for position in self._figures.positions():
            if position.lag is not None:
                lag.add_metric([str(position.partition)], position.lag)
        yield lag

        verdict = GaugeMetricFamily(
            "trafficlight_worker_verdict",
            "Latest verdict: -1 insufficient_data, 0 healthy, 1 warning, 2 critical.",
            labels=["domain", "routed_to"])
        decision = GaugeMetricFamily(
            "trafficlight_worker_decision", "Latest decision: 0 proceed, 1 hold, 2 rollback.",
            labels=["domain", "routed_to"])
        verdict_state = GaugeMetricFamily(
            "trafficlight_worker_verdict_state", "1 for the latest verdict, 0 for the others.",
            labels=["domain", "routed_to", "verdict"])
        decision_state = GaugeMetricFamily(
            "trafficlight_worker_decision_state", "1 for the latest decision, 0 for the others.",
            labels=["domain", "routed_to", "decision"])
        window_end = GaugeMetricFamily(
            "trafficlight_worker_verdict_window_end_seconds",
            "Event time (epoch s) of the latest evaluation.", labels=["domain", "routed_to"])
        for (domain, routed_to), v in sorted(dict(self._latest).items()):
            health, choice = Health(v.verdict), Decision(v.decision)
            verdict.add_metric([domain, routed_to], HEALTH_VALUE[health])
            decision.add_metric([domain, routed_to], DECISION_VALUE[choice])
            for h in Health:
                verdict_state.add_metric([domain, routed_to, h.value], float(h == health))
            for d in Decision:
                decision_state.add_metric([domain, routed_to, d.value], float(d == choice))
            window_end.add_metric([domain, routed_to], v.window_end)
        yield from (verdict, decision, verdict_state, decision_state, window_end)

        rollback = GaugeMetricFamily(
            "trafficlight_worker_last_rollback_timestamp_seconds",
            "When this worker last rolled a domain back (epoch s).", labels=["domain"])
        for domain, at_s in sorted(self._figures.last_rollback_s().items()):
            rollback.add_metric([domain], at_s)
        yield rollback


class WorkerMetrics:
    """One worker's registry; `observe_verdicts` and `observe_apply` are the agent's hooks."""

    def __init__(self, figures: WorkerFigures) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._latest: dict[tuple[str, str], Verdict] = {}
        self.apply_seconds = Histogram(
            "trafficlight_worker_evaluation_seconds",
            "Time to apply one events record: decode, bucket, evaluate, verdicts.",
            buckets=_APPLY_BUCKETS, registry=self.registry)
        self.registry.register(_WorkerCollector(figures, self._latest))

    def observe_verdicts(self, verdicts: list[Verdict]) -> None:
        for verdict in verdicts:
            self._latest[(verdict.domain, verdict.routed_to)] = verdict

    def observe_apply(self, seconds: float) -> None:
        self.apply_seconds.observe(seconds)

    def serve(self, port: int, host: str = "127.0.0.1") -> threading.Thread:
        """Serve `/metrics` on host:port in a daemon thread; a taken port is a clear error."""
        try:
            _, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ServiceStartError(
                f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror}); "
                f"another process holds it (another worker?): pick a free port or stop it"
            ) from None
        return thread
