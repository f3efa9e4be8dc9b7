"""The router's HTTP app: ``/webhook/{domain}``, ``/healthz``, ``/metrics``.

``create_app`` takes everything explicitly, so a test builds a router inline. The app starts
and stops the forwarder and the event emitter it is given; the config source is the caller's
to run (a :class:`~router.config_watcher.ConfigWatcher`, or a fixed config).

A request, in order: admit it (503 + Retry-After past ``max_in_flight``), validate the domain
(400), read the body within the size limit (413) and
``body_timeout_s`` (408), pick the target (GET verification -> legacy; else the sticky
decision), forward, record one routing event (never awaited), answer with the upstream's reply
and ``X-Routed-To``. Slow headers and idle connections are bounded by ``idle_timeout_s``, the
server's keep-alive timeout (set where the server is started).
A domain the config does not know is not refused: it goes to legacy like any non-rollout
domain, its event is recorded, and /metrics counts it under ``domain="_unknown"``.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from aiohttp import web

from trafficlight.router.config_watcher import ConfigSource
from trafficlight.router.decision import Target, choose_target
from trafficlight.router.emitter import EventEmitter
from trafficlight.router.errors import (
    BodyTimeout,
    BodyTooLarge,
    InvalidDomain,
    Overloaded,
    RouterError,
    UpstreamTimeout,
    UpstreamUnreachable,
    http_status_for,
)
from trafficlight.router.forwarding import Forwarder
from trafficlight.router.metrics import UNKNOWN_DOMAIN_LABEL, RouterMetrics
from trafficlight.router.settings import RouterSettings
from trafficlight.router.sticky_key import NOT_JSON, parse_body, sticky_key
from trafficlight.streams.events import RoutingEvent

ROUTED_TO_HEADER = "X-Routed-To"
#: The routing event's id, so a sender's request can be found in the logs and on the topic.
EVENT_ID_HEADER = "X-Routing-Event-Id"

#: A plain name: no dots (no ``..``), no slashes, encoded or not, and a sane length.
DOMAIN_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class Router:
    settings: RouterSettings
    config: ConfigSource
    emitter: EventEmitter
    forwarder: Forwarder
    metrics: RouterMetrics
    in_flight: InFlight


class InFlight:
    """Counts webhooks being handled; the router's only back-pressure is refusing past a limit.

    Without it an overload queues without end (in the upstream pool, then in memory) and every
    webhook waits until the upstream timeout; with it the excess gets 503 + Retry-After at
    once and the admitted ones keep their latency.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def admit(self) -> None:
        if self.count >= self.limit:
            raise Overloaded(f"{self.count} webhooks in flight (max_in_flight {self.limit})",
                             public="router overloaded, retry later")
        self.count += 1

    def release(self) -> None:
        self.count -= 1


ROUTER = web.AppKey("router", Router)


def validate_domain(raw: str) -> str:
    if DOMAIN_PATTERN.fullmatch(raw) is None:
        shown = raw if len(raw) <= 70 else raw[:70] + "..."
        raise InvalidDomain(f"invalid domain {shown!r}: expected letters, digits, '-' or '_' "
                            "(at most 64)")
    return raw


async def read_body(request: web.Request, max_bytes: int, timeout_s: float) -> bytes:
    """The whole body, within the size limit and ``timeout_s`` (a stalled sender holds nothing)."""
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise BodyTooLarge(f"body of {declared} bytes is over the {max_bytes}-byte limit")
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge(f"body is over the {max_bytes}-byte limit") from None
    except TimeoutError:
        raise BodyTimeout(f"body not received within {timeout_s:g} s") from None


def error_response(error: RouterError) -> web.Response:
    response = web.Response(status=http_status_for(error), text=error.public + "\n")
    if isinstance(error, BodyTimeout):
        response.force_close()  # the rest of the body may still trickle in: not on this socket
    if isinstance(error, Overloaded):
        response.headers["Retry-After"] = "1"
    return response


async def handle_webhook(request: web.Request) -> web.StreamResponse:
    router = request.app[ROUTER]
    try:
        router.in_flight.admit()
    except Overloaded as exc:
        router.metrics.rejected.labels(str(http_status_for(exc))).inc()
        return error_response(exc)
    try:
        return await _route(request, router)
    finally:
        router.in_flight.release()


async def _route(request: web.Request, router: Router) -> web.StreamResponse:
    received_at = time.time()
    try:
        domain = validate_domain(request.match_info["domain"])
        body = await read_body(request, router.settings.max_body_bytes,
                               router.settings.body_timeout_s)
    except RouterError as exc:
        router.metrics.rejected.labels(str(http_status_for(exc))).inc()
        return error_response(exc)

    config = router.config.config
    target: Target
    if request.method == "GET":
        target = Target.LEGACY  # verification (hub.challenge) is the legacy handler's job
    else:
        payload = parse_body(body)
        key, _source = sticky_key(request.headers, payload)
        target = choose_target(config, domain, key, body_is_json=payload is not NOT_JSON)

    started = time.perf_counter()
    http_status: int | None = None
    error_message: str | None = None
    try:
        reply = await router.forwarder.forward(
            request.method, router.settings.upstream_url(target, domain),
            request.query_string, request.headers, body, target)
        response = web.Response(status=reply.status, body=reply.body, headers=reply.headers)
        http_status = reply.status
        if reply.status >= 500:
            error_message = f"upstream {target} answered {reply.status}"
    except (UpstreamUnreachable, UpstreamTimeout) as exc:
        response = error_response(exc)
        error_message = str(exc)
    elapsed_s = time.perf_counter() - started
    event_id = uuid.uuid4().hex
    response.headers[ROUTED_TO_HEADER] = target
    response.headers[EVENT_ID_HEADER] = event_id

    status = "error" if error_message is not None else "success"
    router.emitter.emit(RoutingEvent(
        event_id=event_id, ts=received_at, domain=domain, routed_to=target,
        response_time_ms=round(elapsed_s * 1000, 3), status=status, http_status=http_status,
        error_message=error_message, router_id=router.settings.router_id,
        config_version=config.version,
    ))
    label = domain if config.knows(domain) else UNKNOWN_DOMAIN_LABEL
    router.metrics.observe(label, target, status, elapsed_s)

    return response


async def handle_healthz(request: web.Request) -> web.Response:
    """200 while the router can route; Kafka or the database being down is reported, not fatal."""
    router = request.app[ROUTER]
    return web.Response(content_type="application/json", body=orjson.dumps({
        "status": "ok",
        "config_version": router.config.config.version,
        "events_buffered": router.emitter.buffered_events,
        "events_spooled": router.emitter.spooled_events,
        "events_dropped": router.emitter.dropped_events,
    }))


async def handle_metrics(request: web.Request) -> web.Response:
    body = request.app[ROUTER].metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


def create_app(settings: RouterSettings, config: ConfigSource,
               emitter: EventEmitter) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)
    forwarder = Forwarder(connections=settings.upstream_connections,
                          connect_timeout_s=settings.connect_timeout_s,
                          upstream_timeout_s=settings.upstream_timeout_s)
    app[ROUTER] = Router(settings, config, emitter, forwarder, RouterMetrics(emitter, config),
                         InFlight(settings.max_in_flight))

    async def run_clients(_app: web.Application) -> AsyncIterator[None]:
        await forwarder.start()
        await emitter.start()
        yield
        await forwarder.close()
        await emitter.stop()

    app.cleanup_ctx.append(run_clients)
    app.router.add_route("POST", "/webhook/{domain}", handle_webhook)
    app.router.add_route("GET", "/webhook/{domain}", handle_webhook)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/metrics", handle_metrics)
    return app
