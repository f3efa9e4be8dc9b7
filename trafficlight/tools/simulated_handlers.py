"""Simulated legacy and unified webhook handlers for the demo, with knobs turned while running.

One aiohttp app serves both targets (`/legacy/{domain}`, `/unified/{domain}`) and the knobs
(`GET /knobs`, `POST /knobs`). A handler waits a lognormal time around its target's median
latency, then answers 200, or 500 with the target's error probability. A GET with
`hub.challenge` is answered as WhatsApp's verification expects.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from aiohttp import web

from trafficlight.base.errors import first_line
from trafficlight.streams.events import Target

TARGETS = (Target.LEGACY.value, Target.UNIFIED.value)

#: Spread of the lognormal latency: P95 is about 2.3 x the median.
LATENCY_SIGMA = 0.5


@dataclass
class Knob:
    """One target's behaviour: median latency and share of requests answered 500."""

    latency_ms: float
    error_pct: float


@dataclass
class KnobBoard:
    legacy: Knob = field(default_factory=lambda: Knob(latency_ms=120.0, error_pct=0.0))
    unified: Knob = field(default_factory=lambda: Knob(latency_ms=80.0, error_pct=0.0))

    def to_dict(self) -> dict[str, dict[str, float]]:
        return asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply ``{"unified": {"error_pct": 5}}``-shaped changes; ValueError names a bad one."""
        if not isinstance(changes, dict):
            raise ValueError("knobs must be a JSON object like {\"unified\": {\"error_pct\": 5}}")
        validated: list[tuple[Knob, str, float]] = []
        for target, values in changes.items():
            if target not in TARGETS or not isinstance(values, dict):
                raise ValueError(f"unknown target {target!r}: expected legacy or unified")
            for name, value in values.items():
                validated.append((getattr(self, target), name, _knob_value(target, name, value)))
        for knob, name, value in validated:  # all or nothing
            setattr(knob, name, value)


def _knob_value(target: str, name: str, value: Any) -> float:
    if name not in ("latency_ms", "error_pct"):
        raise ValueError(f"unknown knob {target}.{name}: expected latency_ms or error_pct")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{target}.{name} must be a number, got {value!r}")
    upper = 100.0 if name == "error_pct" else 600_000.0
    if not 0 <= value <= upper:
        raise ValueError(f"{target}.{name} must be between 0 and {upper:g}, got {value}")
    return float(value)


def sample_latency_s(knob: Knob, rng: random.Random) -> float:
    return knob.latency_ms * math.exp(rng.gauss(0.0, LATENCY_SIGMA)) / 1000.0


BOARD = web.AppKey("board", KnobBoard)
RNG = web.AppKey("rng", random.Random)


async def handle_webhook(request: web.Request) -> web.Response:
    target = request.match_info["target"]
    if request.method == "GET" and "hub.challenge" in request.query:
        return web.Response(text=request.query["hub.challenge"])
    await request.read()
    knob: Knob = getattr(request.app[BOARD], target)
    rng = request.app[RNG]
    await asyncio.sleep(sample_latency_s(knob, rng))
    if rng.random() * 100 < knob.error_pct:
        return web.json_response({"ok": False, "error": f"simulated {target} failure"},
                                 status=500)
    return web.json_response({"ok": True, "handled_by": target})


async def get_knobs(request: web.Request) -> web.Response:
    return web.json_response(request.app[BOARD].to_dict())


async def set_knobs(request: web.Request) -> web.Response:
    board = request.app[BOARD]
    try:
        board.update(orjson.loads(await request.read()))
    except (orjson.JSONDecodeError, ValueError) as exc:
        return web.json_response({"error": first_line(exc)}, status=400)
    return web.json_response(board.to_dict())


def create_app(board: KnobBoard | None = None, seed: int | None = None) -> web.Application:
    app = web.Application()
    app[BOARD] = board or KnobBoard()
    app[RNG] = random.Random(seed)
    app.router.add_route("*", "/{target:legacy|unified}/{domain}", handle_webhook)
    app.router.add_get("/knobs", get_knobs)
    app.router.add_post("/knobs", set_knobs)
    return app
