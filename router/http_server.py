"""The HTTP/1.1 server protocol: bytes in, :class:`Request` out, :class:`Response` bytes back.

An ``asyncio.Protocol`` per connection with llhttp (httptools) doing all the parsing. What it
enforces before a handler sees anything:
- the request line and headers within ``max_header_bytes`` and ``max_headers`` (else 431),
  and complete within ``idle_timeout_s`` of the connection (or its previous answer) going idle
  (else the connection is closed, nothing answered: slow headers hold nothing);
- the body within ``max_body_bytes`` (else 413; a declared Content-Length over it is refused
  before any body byte is read) and complete within ``body_timeout_s`` of the headers (else
  408);
- anything llhttp refuses (Content-Length with Transfer-Encoding, duplicate lengths, bad
  chunk framing, invalid characters) gets 400.
Every such refusal closes the connection after its answer: the rest of that message is not
read. ``Expect: 100-continue`` is answered with ``100 Continue`` when the body is acceptable.
Pipelined requests are answered one at a time, in order. :meth:`HttpServer.shutdown` stops
accepting, closes idle connections and waits for the answers in flight (graceful drain).
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast

import httptools

from trafficlight.router.forwarding import RawHeader


@dataclass(slots=True)
class Request:
    method: bytes
    path: bytes  # as sent: still percent-encoded
    query: bytes
    headers: list[RawHeader]
    body: bytes
    names: list[bytes]  # the header names in lower case, in the order of ``headers``

    def header(self, lowered_name: bytes) -> bytes | None:
        """The first header of that (lower-case) name."""
        try:
            found: bytes = self.headers[self.names.index(lowered_name)][1]
        except ValueError:
            return None
        return found


@dataclass(slots=True)
class Response:
    status: int
    headers: list[RawHeader] = field(default_factory=list)
    body: bytes = b""
    close: bool = False  # close the connection after this answer


def text_response(status: int, text: str, *, close: bool = False,
                  headers: list[RawHeader] | None = None) -> Response:
    return Response(status, [(b"Content-Type", b"text/plain; charset=utf-8"), *(headers or [])],
                    (text + "\n").encode(), close)


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_body_bytes: int = 1024 * 1024
    body_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100


_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {reason}\r\n".encode()
    return line


def encode_response(response: Response, close: bool) -> bytes:
    parts = [_status_line(response.status)]
    for name, value in response.headers:
        parts += (name, b": ", value, b"\r\n")
    parts += (b"Content-Length: ", str(len(response.body)).encode(), b"\r\n")
    if close:
        parts.append(b"Connection: close\r\n")
    parts += (b"\r\n", response.body)
    return b"".join(parts)


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the answer is in ``_refusal``."""


#: Pipelined requests held before the connection stops reading.
_MAX_PIPELINED = 16

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HttpConnection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._handler = server.handler
        self._limits = server.limits
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._pipeline: collections.deque[tuple[Request, bool] | Response] = collections.deque()
        self._busy = False  # a handler is running, or a reply is being written
        # One timer per connection, re-armed only when it fires: per request the connection
        # just notes since when it waits for headers (idle) or for the rest of a body.
        self._watchdog: asyncio.TimerHandle | None = None
        self._watch_at = 0.0
        self._idle_since: float | None = None
        self._body_since = 0.0
        self._refusal: Response | None = None
        self._stopped_reading = False  # refused, upgraded or draining: no more requests
        self._reading_paused = False
        self._write_paused = False
        self._drained: asyncio.Future[None] | None = None
        # the message being received
        self._url = b""
        self._headers: list[RawHeader] = []
        self._names: list[bytes] = []
        self._declared: int | None = None
        self._expect = False
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._in_body = False

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._server.connections.add(self)
        with_nodelay(self._transport)
        self._idle_since = self._loop.time()
        self._watch(self._idle_since + self._limits.idle_timeout_s)

    def data_received(self, data: bytes) -> None:
        if self._stopped_reading:
            return
        try:
            self._parser.feed_data(data)
            if self._in_body and self._watch_at > self._body_since + self._limits.body_timeout_s:
                self._watch(self._body_since + self._limits.body_timeout_s)
        except httptools.HttpParserUpgrade:
            # Nothing is upgraded through the router: answer what came, then close.
            self._stop_reading()
        except httptools.HttpParserError as exc:
            refusal = self._refusal or text_response(400, f"bad request: {exc}", close=True)
            self._refuse(refusal)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._cancel_timers()
        self._pipeline.clear()
        self._stopped_reading = True
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._server.connection_closed()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # --- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._names = []
        self._declared = None
        self._expect = False
        self._header_bytes = 0
        self._body = []
        self._body_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        lowered = name.lower()
        self._names.append(lowered)
        if lowered == b"content-length":
            self._declared = int(value) if value.strip().isdigit() else None
        elif lowered == b"expect":
            self._expect = value.strip().lower() == b"100-continue"
        self._count_header_bytes(len(name) + len(value) + 4)
        if len(self._headers) > self._limits.max_headers:
            self._refusal = text_response(
                431, f"more than {self._limits.max_headers} headers", close=True)
            raise _Refused

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self._limits.max_header_bytes:
            self._refusal = text_response(
                431, f"request line and headers over {self._limits.max_header_bytes} bytes",
                close=True)
            raise _Refused

    def on_headers_complete(self) -> None:
        self._idle_since = None
        limit = self._limits.max_body_bytes
        declared = self._declared
        if declared is not None and declared > limit:
            self._refusal = text_response(
                413, f"body of {declared} bytes is over the {limit}-byte limit", close=True)
            raise _Refused
        self._in_body = True
        self._body_since = self._loop.time()
        if self._expect and not self._busy and not self._pipeline and self._transport is not None:
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._limits.max_body_bytes:
            self._refusal = text_response(
                413, f"body is over the {self._limits.max_body_bytes}-byte limit", close=True)
            raise _Refused
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        url = self._url
        mark = url.find(b"?")
        path, query = (url, b"") if mark < 0 else (url[:mark], url[mark + 1:])
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        request = Request(self._parser.get_method(), path, query, self._headers, body,
                          self._names)
        self._pipeline.append((request, self._parser.should_keep_alive()))
        if len(self._pipeline) >= _MAX_PIPELINED and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True
        if not self._busy:
            self._next()

    # --- answering ----------------------------------------------------------------------------

    def _next(self) -> None:
        """Answer the oldest waiting request, or go idle."""
        if self._reading_paused and len(self._pipeline) < _MAX_PIPELINED // 2:
            self._reading_paused = False
            if self._transport is not None and not self._stopped_reading:
                self._transport.resume_reading()
        if not self._pipeline:
            self._busy = False
            if self._stopped_reading or self._server.draining:
                self._close()
            elif not self._in_body:
                self._idle_since = self._loop.time()
            return
        self._busy = True
        item = self._pipeline.popleft()
        if isinstance(item, Response):
            self._server.refused(item.status)
            self._write(item, close=True)
            return
        self._loop.create_task(self._answer(*item))

    async def _answer(self, request: Request, keep_alive: bool) -> None:
        try:
            response = await self._handler(request)
        except Exception:
            self._server.log_error(request)
            response = text_response(500, "internal error", close=True)
        close = (response.close or not keep_alive
                 or ((self._server.draining or self._stopped_reading) and not self._pipeline))
        self._write(response, close)
        if self._write_paused and not close:
            self._drained = self._loop.create_future()
            await self._drained
        if not close:
            self._next()

    def _write(self, response: Response, close: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(encode_response(response, close))
        if close:
            self._close()

    def _refuse(self, refusal: Response) -> None:
        """Answer ``refusal`` after what is already queued, then close: read nothing more."""
        self._refusal = None
        self._in_body = False
        self._cancel_timers()
        self._stop_reading()
        self._pipeline.append(refusal)
        if not self._busy:
            self._next()


    def _stop_reading(self) -> None:
        self._stopped_reading = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def _watch(self, at: float) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watch_at = at
        self._watchdog = self._loop.call_at(at, self._check_timeouts)

    def _check_timeouts(self) -> None:
        """The watchdog: refuse a late body (408), close a connection idle too long."""
        self._watchdog = None
        now = self._loop.time()
        limits = self._limits
        if self._in_body:
            if now >= self._body_since + limits.body_timeout_s:
                self._refuse(text_response(
                    408, f"body not received within {limits.body_timeout_s:g} s", close=True))
                return
            self._watch(self._body_since + limits.body_timeout_s)
        elif not self._busy and not self._pipeline and self._idle_since is not None:
            if now >= self._idle_since + limits.idle_timeout_s:
                self._close()
                return
            self._watch(self._idle_since + limits.idle_timeout_s)
        else:
            self._watch(now + limits.idle_timeout_s)

    def _cancel_timers(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _close(self) -> None:
        self._cancel_timers()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    # --- what the server calls ----------------------------------------------------------------

    def drain(self) -> None:
        """Stop taking requests; close now if nothing is in flight, else after the answers."""
        if not self._busy and not self._pipeline:
            self._close()
        else:
            self._stop_reading()


def with_nodelay(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class HttpServer:
    """Listens, hands each complete request to ``handler``, drains on :meth:`shutdown`."""

    def __init__(self, handler: Handler, limits: ServerLimits, *,
                 on_refused: Callable[[int], None] = lambda _status: None,
                 on_error: Callable[[Request], None] = lambda _request: None) -> None:
        self.handler = handler
        self.limits = limits
        self.refused = on_refused
        self.log_error = on_error
        self.connections: set[HttpConnection] = set()
        self.draining = False
        self._server: asyncio.Server | None = None
        self._all_closed: asyncio.Event | None = None

    async def start(self, host: str, port: int, *, reuse_port: bool = False,
                    backlog: int = 4096) -> None:
        self._server = await asyncio.get_running_loop().create_server(
            lambda: HttpConnection(self), host, port, reuse_port=reuse_port or None,
            backlog=backlog)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def connection_closed(self) -> None:
        if self._all_closed is not None and not self.connections:
            self._all_closed.set()

    async def shutdown(self, timeout_s: float) -> None:
        """Stop listening, answer what is in flight (up to ``timeout_s``), close the rest."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        self._all_closed = asyncio.Event()
        for connection in list(self.connections):
            connection.drain()
        if self.connections:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._all_closed.wait()
            except TimeoutError:
                for connection in list(self.connections):
                    connection._close()
        if self._server is not None:
            await self._server.wait_closed()
