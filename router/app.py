"""The router's request handling: ``/webhook/{domain}``, ``/healthz``, ``/metrics``.

:class:`RouterApp` takes everything explicitly, so a test builds a router inline; it starts
and stops the upstream pool and the event emitter it is given; the config source is the
caller's to run (a :class:`~router.config_watcher.ConfigWatcher`, or a fixed config). The
bytes are carried by :mod:`router.http_server`, which has already enforced the header and body
limits and timeouts (431/413/408/400) before :meth:`RouterApp.handle` sees a request.

A webhook, in order: admit it (503 + Retry-After past ``max_in_flight``), validate the domain
(400), pick the target (GET verification -> legacy; else the sticky decision), forward
(:mod:`router.forwarding` rules, :mod:`router.upstream` pool), record one routing event (never
awaited), answer with the upstream's reply and ``X-Routed-To``. A domain the config does not
know is not refused: it goes to legacy like any non-rollout domain, its event is recorded, and
/metrics counts it under ``domain="_unknown"``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from urllib.parse import unquote_to_bytes

import orjson

from trafficlight.router.admission import InFlight
from trafficlight.router.config_watcher import ConfigSource
from trafficlight.router.decision import Target, choose_target
from trafficlight.router.emitter import EventEmitter
from trafficlight.router.errors import (
    InvalidDomain,
    Overloaded,
    RouterError,
    UpstreamTimeout,
    UpstreamUnreachable,
    http_status_for,
)
from trafficlight.router.forwarding import (
    REPLY_PER_CONNECTION,
    UpstreamAddress,
    end_to_end,
    parse_upstream_url,
    request_head,
)
from trafficlight.router.http_server import Request, Response, ServerLimits, text_response
from trafficlight.router.metrics import UNKNOWN_DOMAIN_LABEL, RouterMetrics
from trafficlight.router.settings import RouterSettings
from trafficlight.router.sticky_key import NOT_JSON, ROUTING_KEY_HEADER, parse_body, sticky_key
from trafficlight.router.upstream import UpstreamPool
from trafficlight.streams.events import RoutingEvent

log = logging.getLogger(__name__)

ROUTED_TO_HEADER = "X-Routed-To"
#: The routing event's id, so a sender's request can be found in the logs and on the topic.
EVENT_ID_HEADER = "X-Routing-Event-Id"

#: A plain name: no dots (no ``..``), no slashes, encoded or not, and a sane length.
DOMAIN_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

_WEBHOOK_PREFIX = b"/webhook/"
_ROUTING_KEY = ROUTING_KEY_HEADER.lower().encode()
_ROUTED_TO = ROUTED_TO_HEADER.encode()
_EVENT_ID = EVENT_ID_HEADER.encode()
_TARGET_VALUE: dict[Target, bytes] = {target: target.value.encode() for target in Target}
#: Upstream addresses by (target, domain), bounded: junk domains cannot grow it without end.
_ADDRESS_CACHE_MAX = 4096


def new_event_id() -> str:
    """A random UUID (version 4) as 32 hex digits, like ``uuid.uuid4().hex`` at a fifth of
    its cost (no UUID object)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def validate_domain(raw: str) -> str:
    if DOMAIN_PATTERN.fullmatch(raw) is None:
        shown = raw if len(raw) <= 70 else raw[:70] + "..."
        raise InvalidDomain(f"invalid domain {shown!r}: expected letters, digits, '-' or '_' "
                            "(at most 64)")
    return raw


def decode_segment(raw: bytes) -> str:
    """The path segment percent-decoded, as text (undecodable bytes kept as escapes)."""
    decoded = unquote_to_bytes(raw) if b"%" in raw else raw
    return decoded.decode("utf-8", "surrogateescape")


def error_response(error: RouterError) -> Response:
    headers = [(b"Retry-After", b"1")] if isinstance(error, Overloaded) else []
    return text_response(http_status_for(error), error.public, headers=headers)


def server_limits(settings: RouterSettings) -> ServerLimits:
    return ServerLimits(max_body_bytes=settings.max_body_bytes,
                        body_timeout_s=settings.body_timeout_s,
                        idle_timeout_s=settings.idle_timeout_s,
                        max_header_bytes=settings.max_header_bytes,
                        max_headers=settings.max_headers)


class RouterApp:
    def __init__(self, settings: RouterSettings, config: ConfigSource,
                 emitter: EventEmitter) -> None:
        self.settings = settings
        self.config = config
        self.emitter = emitter
        self.metrics = RouterMetrics(emitter, config)
        self.in_flight = InFlight(settings.max_in_flight)
        self.pool = UpstreamPool(connections=settings.upstream_connections,
                                 connect_timeout_s=settings.connect_timeout_s)
        self._addresses: dict[tuple[str, str], UpstreamAddress] = {}
        self._router_id = settings.router_id
        self._timeout_s = settings.upstream_timeout_s

    async def start(self) -> None:
        await self.emitter.start()

    async def stop(self) -> None:
        self.pool.close()
        await self.emitter.stop()

    def refused(self, status: int) -> None:
        """The server refused a request before it was handled (400/408/413/431)."""
        self.metrics.rejected_with(status)

    def handler_failed(self, request: Request) -> None:
        log.exception("router: unexpected error handling %s %r", request.method.decode(),
                      request.path[:100])

    async def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith(_WEBHOOK_PREFIX):
            segment = path[len(_WEBHOOK_PREFIX):]
            if not segment or b"/" in segment:
                return text_response(404, "not found")
            if request.method != b"POST" and request.method != b"GET":
                return text_response(405, "method not allowed",
                                     headers=[(b"Allow", b"GET, POST")])
            try:
                self.in_flight.admit()
            except Overloaded as exc:
                self.metrics.rejected_with(http_status_for(exc))
                return error_response(exc)
            try:
                return await self._route(request, segment)
            finally:
                self.in_flight.release()
        if request.method == b"GET" and path == b"/healthz":
            return self._healthz()
        if request.method == b"GET" and path == b"/metrics":
            return Response(200, [(b"Content-Type", b"text/plain; version=0.0.4")],
                            self.metrics.render())
        return text_response(404, "not found")

    async def _route(self, request: Request, segment: bytes) -> Response:
        received_at = time.time()
        try:
            domain = validate_domain(decode_segment(segment))
        except InvalidDomain as exc:
            self.metrics.rejected_with(400)
            return error_response(exc)

        config = self.config.config
        target: Target
        if request.method == b"GET":
            target = Target.LEGACY  # verification (hub.challenge) is the legacy handler's job
        else:
            payload = parse_body(request.body)
            raw_key = request.header(_ROUTING_KEY)
            headers = ({ROUTING_KEY_HEADER: raw_key.decode("utf-8", "surrogateescape")}
                       if raw_key is not None else {})
            key, _source = sticky_key(headers, payload)
            target = choose_target(config, domain, key, body_is_json=payload is not NOT_JSON)

        started = time.perf_counter()
        http_status: int | None = None
        error_message: str | None = None
        response: Response
        address = self._address(target, domain)
        try:
            try:
                reply = await self.pool.request(
                    address, request_head(request.method, address, request.query,
                                          request.headers, request.names, len(request.body)),
                    request.body, self._timeout_s)
            except TimeoutError:
                raise UpstreamTimeout(f"upstream {target} timed out") from None
            except OSError as exc:
                reason = str(exc) or type(exc).__name__
                raise UpstreamUnreachable(f"upstream {target} unreachable: {reason}",
                                          public=f"upstream {target} unreachable") from None
            response = Response(reply.status,
                                end_to_end(reply.headers, reply.names, REPLY_PER_CONNECTION),
                                reply.body)
            http_status = response.status
            if http_status >= 500:
                error_message = f"upstream {target} answered {http_status}"
        except (UpstreamUnreachable, UpstreamTimeout) as exc:
            response = error_response(exc)
            error_message = str(exc)
        elapsed_s = time.perf_counter() - started
        event_id = new_event_id()
        response.headers.append((_ROUTED_TO, _TARGET_VALUE[target]))
        response.headers.append((_EVENT_ID, event_id.encode()))

        status = "error" if error_message is not None else "success"
        self.emitter.emit(RoutingEvent(
            event_id=event_id, ts=received_at, domain=domain, routed_to=target,
            response_time_ms=round(elapsed_s * 1000, 3), status=status, http_status=http_status,
            error_message=error_message, router_id=self._router_id,
            config_version=config.version,
        ))
        label = domain if config.knows(domain) else UNKNOWN_DOMAIN_LABEL
        self.metrics.observe(label, target, status, elapsed_s)
        return response

    def _address(self, target: Target, domain: str) -> UpstreamAddress:
        cache_key = (target, domain)
        address = self._addresses.get(cache_key)
        if address is None:
            if len(self._addresses) >= _ADDRESS_CACHE_MAX:
                self._addresses.clear()
            address = parse_upstream_url(self.settings.upstream_url(target, domain))
            self._addresses[cache_key] = address
        return address

    def _healthz(self) -> Response:
        """200 while the router can route; Kafka or the database being down is reported."""
        return Response(200, [(b"Content-Type", b"application/json")], orjson.dumps({
            "status": "ok",
            "config_version": self.config.config.version,
            "events_buffered": self.emitter.buffered_events,
            "events_spooled": self.emitter.spooled_events,
            "events_dropped": self.emitter.dropped_events,
        }))
