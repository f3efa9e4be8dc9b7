"""Event builders for the core's tests: evenly spaced traffic, exact error patterns."""

from __future__ import annotations

from typing import Any

import numpy as np

from trafficlight.streams.events import EventBatch

T0 = 1_800_000_000.0


def records(start_s: float, seconds: float, rate: float, *, domain: str = "jobs",
            routed_to: str = "unified", error_every: int = 0, latency_ms: float = 120.0,
            label: str | None = None) -> list[dict[str, Any]]:
    """`rate` events per second over `seconds`; every `error_every`-th one an error."""
    n = round(seconds * rate)
    out = []
    for i, ts in enumerate((start_s + np.arange(n) / rate).tolist()):
        bad = bool(error_every) and i % error_every == 0
        event: dict[str, Any] = {
            "event_id": f"{domain}-{routed_to}-{ts:.4f}", "ts": ts, "domain": domain,
            "routed_to": routed_to, "response_time_ms": latency_ms,
            "status": "error" if bad else "success", "http_status": 500 if bad else 200,
            "error_message": "boom" if bad else None, "router_id": "r1", "config_version": 1,
        }
        if label is not None:
            event["label"] = label
        out.append(event)
    return out


def interleave(*streams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge streams in time order, as one router partition would emit them."""
    return sorted((e for s in streams for e in s), key=lambda e: e["ts"])


def batch(events: list[dict[str, Any]]) -> EventBatch:
    return EventBatch.from_records(events)
