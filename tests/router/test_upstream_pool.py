"""The upstream pool against raw upstreams: keep-alive reuse, close-delimited bodies, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from trafficlight.router.forwarding import parse_upstream_url, request_head
from trafficlight.router.upstream import UpstreamPool

#: What a raw upstream does with one connection: read the request, answer (or not).
Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


RawUpstream = Callable[[Serve], Awaitable[tuple[int, list[int]]]]


@pytest.fixture
async def raw_upstream() -> AsyncIterator[RawUpstream]:
    """``port, connections = await raw_upstream(serve)``: ``connections`` counts accepts."""
    servers: list[asyncio.Server] = []

    async def start(serve: Serve) -> tuple[int, list[int]]:
        accepted: list[int] = []

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(1)
            try:
                await serve(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1], accepted

    yield start
    for server in servers:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head + await reader.readexactly(length)


async def ask(pool: UpstreamPool, port: int, body: bytes = b"{}", timeout_s: float = 5) -> bytes:
    address = parse_upstream_url(f"http://127.0.0.1:{port}/webhook/jobs")
    head = request_head(b"POST", address, b"", [], [], len(body))
    reply = await pool.request(address, head, body, timeout_s)
    return reply.body


async def test_sequential_requests_reuse_one_keep_alive_connection(
        raw_upstream: RawUpstream) -> None:
    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    port, accepted = await raw_upstream(keep_alive)
    pool = UpstreamPool(connections=4, connect_timeout_s=2)
    assert [await ask(pool, port) for _ in range(5)] == [b"ok"] * 5
    assert len(accepted) == 1
    pool.close()


async def test_a_body_delimited_by_the_close_is_read_whole(
        raw_upstream: RawUpstream) -> None:
    async def close_delimited(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()

    port, accepted = await raw_upstream(close_delimited)
    pool = UpstreamPool(connections=4, connect_timeout_s=2)
    assert await ask(pool, port) == b"all of it"
    assert await ask(pool, port) == b"all of it"  # a fresh connection: that one was closed
    assert len(accepted) == 2
    pool.close()


async def test_an_upstream_that_closes_without_answering_is_a_connection_error(
        raw_upstream: RawUpstream) -> None:
    async def hang_up(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    port, _ = await raw_upstream(hang_up)
    pool = UpstreamPool(connections=4, connect_timeout_s=2)
    with pytest.raises(ConnectionError):
        await ask(pool, port)
    assert pool.open_connections == 0
    pool.close()


async def test_no_answer_within_the_timeout_is_a_timeout_and_the_connection_is_dropped(
        raw_upstream: RawUpstream) -> None:
    async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    port, _ = await raw_upstream(silent)
    pool = UpstreamPool(connections=4, connect_timeout_s=2)
    with pytest.raises(TimeoutError):
        await ask(pool, port, timeout_s=0.2)
    assert pool.open_connections == 0
    pool.close()


async def test_an_interim_100_continue_is_skipped_for_the_real_answer(
        raw_upstream: RawUpstream) -> None:
    async def interim(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                     b"Content-Length: 4\r\n\r\nmade")
        await asyncio.sleep(1)

    port, _ = await raw_upstream(interim)
    pool = UpstreamPool(connections=4, connect_timeout_s=2)
    assert await ask(pool, port) == b"made"
    pool.close()


async def test_past_the_connection_limit_a_request_waits_for_a_free_one(
        raw_upstream: RawUpstream) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            await asyncio.sleep(0.1)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    port, accepted = await raw_upstream(slow)
    pool = UpstreamPool(connections=2, connect_timeout_s=2)
    replies = await asyncio.gather(*(ask(pool, port) for _ in range(6)))
    assert replies == [b"ok"] * 6
    assert len(accepted) == 2
    pool.close()
