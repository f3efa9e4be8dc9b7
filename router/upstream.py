"""The upstream pool: keep-alive HTTP/1.1 connections to the legacy and unified handlers.

One request at a time per connection; an idle connection goes back to its upstream's pool
(newest first, so a few stay warm) unless the upstream said ``Connection: close``. At most
``connections`` are open over all upstreams together; past that a request waits for one to
come free (inside its ``upstream_timeout_s``). Responses are parsed by llhttp (httptools).
A connection whose request timed out is closed, never reused: its answer may still come.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from dataclasses import dataclass
from typing import cast

import httptools

from trafficlight.router.forwarding import RawHeader, UpstreamAddress

PoolKey = tuple[str, int, bool]


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    status: int
    headers: list[RawHeader]
    names: list[bytes]  # the header names in lower case
    body: bytes


class UpstreamClosed(ConnectionError):
    """The upstream closed the connection before its answer was complete."""


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection; :meth:`send` one request, get its reply."""

    def __init__(self, pool: UpstreamPool, key: PoolKey) -> None:
        self._pool = pool
        self.key = key
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._reply: asyncio.Future[UpstreamReply] | None = None
        self._status = 0
        self._headers: list[RawHeader] = []
        self._names: list[bytes] = []
        self._body: list[bytes] = []
        self._headers_done = False
        self._length_known = False
        self.reusable = False
        self.closed = False
        self.counted_out = False

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamClosed(f"bad response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        if self._reply is not None and not self._reply.done():
            if self._headers_done and not self._length_known:  # a body delimited by the close
                self._reply.set_result(UpstreamReply(self._status, self._headers, self._names,
                                                     b"".join(self._body)))
            else:
                self._fail(UpstreamClosed("connection closed before the answer"
                                          if exc is None else str(exc) or type(exc).__name__))

    # --- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = []
        self._names = []
        self._body = []
        self._headers_done = False
        self._length_known = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        lowered = name.lower()
        self._names.append(lowered)
        if lowered == b"content-length" or lowered == b"transfer-encoding":
            self._length_known = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # an interim answer (100 Continue): the real one follows
            return
        reply = self._reply
        self._reply = None
        self.reusable = self._parser.should_keep_alive()
        if reply is not None and not reply.done():
            reply.set_result(UpstreamReply(self._status, self._headers, self._names,
                                           b"".join(self._body)))

    # --- what the pool calls --------------------------------------------------------------------

    def send(self, head: bytes, body: bytes) -> asyncio.Future[UpstreamReply]:
        assert self._transport is not None
        self.reusable = False
        self._reply = asyncio.get_running_loop().create_future()
        self._transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self._transport.write(body)
        return self._reply

    def _fail(self, exc: Exception) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(exc)
        self._reply = None

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


def _expire(pending: asyncio.Future[UpstreamReply]) -> None:
    if not pending.done():
        pending.set_exception(TimeoutError())


class UpstreamPool:
    """Pooled connections for all upstreams; ``request`` raises TimeoutError or OSError."""

    def __init__(self, *, connections: int, connect_timeout_s: float) -> None:
        self.limit = connections
        self.connect_timeout_s = connect_timeout_s
        self._idle: dict[PoolKey, collections.deque[UpstreamConnection]] = {}
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._ssl: ssl.SSLContext | None = None
        self._closing = False

    async def request(self, address: UpstreamAddress, head: bytes, body: bytes,
                      timeout_s: float) -> UpstreamReply:
        """The reply within ``timeout_s`` (waiting for a connection included), or TimeoutError;
        OSError when the upstream refused or dropped the connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        connection = self._idle_connection(address.pool_key)
        if connection is None:
            async with asyncio.timeout_at(deadline):
                connection = await self._acquire(address)
        pending = connection.send(head, body)
        timer = loop.call_at(deadline, _expire, pending)
        try:
            reply = await pending
        except BaseException:
            connection.close()  # timed out, cancelled or broken: never reused
            self._release(connection)
            raise
        finally:
            timer.cancel()
        self._release(connection)
        return reply

    def _idle_connection(self, key: PoolKey) -> UpstreamConnection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _acquire(self, address: UpstreamAddress) -> UpstreamConnection:
        while True:
            connection = self._idle_connection(address.pool_key)
            if connection is not None:
                return connection
            if self._open < self.limit:
                return await self._connect(address)
            if not self._evict_idle():
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                finally:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)

    def _evict_idle(self) -> bool:
        """Close one idle connection of another upstream to make room; False if none."""
        for idle in self._idle.values():
            if idle:
                connection = idle.popleft()
                connection.close()
                self.forget(connection)
                return True
        return False

    async def _connect(self, address: UpstreamAddress) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        self._open += 1
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, connection = await loop.create_connection(
                    lambda: UpstreamConnection(self, address.pool_key), address.host,
                    address.port, ssl=self._ssl_context() if address.tls else None)
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise
        return connection

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _release(self, connection: UpstreamConnection) -> None:
        if connection.closed or not connection.reusable or self._closing:
            connection.close()
            self.forget(connection)
        else:
            self._idle.setdefault(connection.key, collections.deque()).append(connection)
        self._wake_one()

    def forget(self, connection: UpstreamConnection) -> None:
        """A connection closed: it no longer counts against the limit (once)."""
        if connection.counted_out:
            return
        connection.counted_out = True
        self._open -= 1
        idle = self._idle.get(connection.key)
        if idle is not None:
            with contextlib.suppress(ValueError):
                idle.remove(connection)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    @property
    def open_connections(self) -> int:
        return self._open

    def close(self) -> None:
        self._closing = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
