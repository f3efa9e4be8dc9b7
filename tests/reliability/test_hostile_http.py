"""Scenario 6, HTTP: hostile requests get a clear 4xx and never reach unified or crash the router.

One router process serves the whole module (routing on at 100 %, so anything that slipped past
validation would show up at unified). Requests are written as raw bytes on a socket: an HTTP
client would normalise exactly the tricks under test. After every test the router must still
answer a plain webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.reliability.harness import RouterProcess, UpstreamProcess, whatsapp_webhook
from trafficlight.base.db import connect

pytestmark = pytest.mark.reliability

#: Short on purpose: the tests wait for these to expire.
BODY_TIMEOUT_S = 1.0
IDLE_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
async def router(module_database_url: str, kafka_bootstrap: str,
                 tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[tuple[RouterProcess, UpstreamProcess]]:
    conn = await connect(module_database_url)
    try:
        await conn.execute("SELECT update_routing_percentage(100, 'hostile input suite')")
    finally:
        await conn.close()
    upstream = await UpstreamProcess.start()
    workdir: Path = tmp_path_factory.mktemp("hostile")
    process = await RouterProcess.configure(
        workdir, upstream, kafka_bootstrap, module_database_url,
        body_timeout_s=BODY_TIMEOUT_S, idle_timeout_s=IDLE_TIMEOUT_S,
        max_body_bytes=64 * 1024).start()
    yield process, upstream
    await process.stop()
    upstream.stop()


@pytest.fixture(autouse=True)
async def router_still_serves(router: tuple[RouterProcess, UpstreamProcess]
                              ) -> AsyncIterator[None]:
    """After each hostile test, a normal webhook still gets through."""
    yield
    process, _ = router
    assert process.proc is not None and process.proc.poll() is None
    async with aiohttp.ClientSession() as session, session.post(
            f"{process.base}/webhook/jobs", data=whatsapp_webhook("4915550001")) as response:
        assert response.status == 200
        assert response.headers["X-Routed-To"] == "unified"


async def exchange(port: int, request: bytes, *, safety_s: float = 30) -> bytes:
    """Write ``request`` raw, read until the server closes or ``safety_s`` passes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        chunks: list[bytes] = []
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            async with asyncio.timeout(safety_s):
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
                    if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                        break
        return b"".join(chunks)
    finally:
        writer.close()


def _complete(reply: bytes) -> bool:
    head, _, body = reply.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")) else 0


def post(path: bytes, body: bytes = b"{}", extra_headers: bytes = b"") -> bytes:
    return (b"POST " + path + b" HTTP/1.1\r\nHost: router\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\n" + extra_headers
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


PLAIN_UPSTREAM_PATH = re.compile(r"/(legacy|unified)/webhook/[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


async def assert_upstream_saw_only_plain_domains(upstream: UpstreamProcess) -> None:
    """Nothing but a plain domain name ever reached an upstream, and unified only rollouts."""
    paths = (await upstream.seen())["paths"]
    assert all(PLAIN_UPSTREAM_PATH.fullmatch(path) for path in paths), paths
    assert {p for p in paths if p.startswith("/unified/")} <= {
        f"/unified/webhook/{d}" for d in ("jobs", "marketplace", "property")}


PATH_TRICKS = [
    b"/webhook/..%2Fadmin", b"/webhook/%2e%2e", b"/webhook/jobs%2F..%2F..%2Fadmin",
    b"/webhook/jobs%2Funified", b"/webhook/jobs%00", b"/webhook/jobs%0d%0aX-Routed-To:%20unified",
    b"/webhook/jobs%20", b"/webhook/.jobs", b"/webhook/jobs.", b"/webhook/%6aobs%2e",
    b"/webhook/%EF%BD%8A%EF%BD%8F%EF%BD%82%EF%BD%93",  # fullwidth "jobs"
    b"/webhook/jobs%E2%80%8B",  # zero-width space
    b"/webhook/jo%FFbs", b"/webhook/" + b"a" * 65, b"/webhook/" + b"j" * 8000,
]


@pytest.mark.parametrize("path", PATH_TRICKS, ids=lambda p: p.decode()[:40])
async def test_a_path_trick_in_the_domain_segment_is_refused_before_forwarding(
        router: tuple[RouterProcess, UpstreamProcess], path: bytes) -> None:
    process, upstream = router
    reply = await exchange(process.port, post(path))
    assert status_of(reply) in (400, 404, 414, 431)
    await assert_upstream_saw_only_plain_domains(upstream)


@pytest.mark.parametrize("path", [b"/webhook/jobs/../mobility", b"/webhook/../webhook/jobs",
                                  b"/webhook//jobs", b"/webhook/jobs/extra"])
async def test_dot_segments_and_extra_segments_never_reach_another_upstream_path(
        router: tuple[RouterProcess, UpstreamProcess], path: bytes) -> None:
    process, upstream = router
    reply = await exchange(process.port, post(path))
    status = status_of(reply)
    # aiohttp may resolve dot segments (RFC 3986): then it is a plain, valid webhook.
    assert status in (200, 400, 404)
    await assert_upstream_saw_only_plain_domains(upstream)


async def test_a_protected_domain_reached_through_dot_segments_still_goes_to_legacy(
        router: tuple[RouterProcess, UpstreamProcess]) -> None:
    process, _ = router
    reply = await exchange(process.port, post(b"/webhook/jobs/../mobility"))
    if status_of(reply) == 200:
        assert b"X-Routed-To: legacy" in reply


async def test_a_header_over_the_limit_gets_431_and_nothing_is_forwarded(
        router: tuple[RouterProcess, UpstreamProcess]) -> None:
    process, upstream = router
    before = (await upstream.seen())["seen"]
    reply = await exchange(process.port, post(b"/webhook/jobs",
                                              extra_headers=b"X-Huge: " + b"a" * 100_000 + b"\r\n"))
    assert status_of(reply) in (400, 431)
    assert (await upstream.seen())["seen"] == before


async def test_too_many_headers_get_a_4xx(router: tuple[RouterProcess, UpstreamProcess]) -> None:
    process, _ = router
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(500))
    reply = await exchange(process.port, post(b"/webhook/jobs", extra_headers=many))
    assert status_of(reply) in (400, 431)


async def test_a_stalled_body_gets_408_and_its_connection_closed(
        router: tuple[RouterProcess, UpstreamProcess]) -> None:
    process, _ = router
    head = (b"POST /webhook/jobs HTTP/1.1\r\nHost: router\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{\"entry\":")
    reply = await exchange(process.port, head)  # the other 991 bytes never come
    assert status_of(reply) == 408
    assert b"body not received" in reply


async def test_headers_that_never_finish_get_the_connection_closed(
        router: tuple[RouterProcess, UpstreamProcess]) -> None:
    process, _ = router
    reader, writer = await asyncio.open_connection("127.0.0.1", process.port)
    writer.write(b"POST /webhook/jobs HTTP/1.1\r\nHost: router\r\nX-Slow: ")
    await writer.drain()
    async with asyncio.timeout(30):  # a safety net, not a figure: idle_timeout_s is 2 s
        rest = await reader.read()
    writer.close()
    assert rest == b""  # closed by the router, nothing answered


async def test_a_body_of_invalid_utf8_is_forwarded_verbatim_to_legacy(
        router: tuple[RouterProcess, UpstreamProcess]) -> None:
    process, upstream = router
    body = b"\xff\xfe{\"a\":\"\xc3\x28\"}"
    reply = await exchange(process.port, post(b"/webhook/jobs", body=body,
                                              extra_headers=b"X-Test-Seq: utf8-body\r\n"))
    assert status_of(reply) == 200
    assert b"X-Routed-To: legacy" in reply  # not JSON: unified knows no such webhook
    assert (await upstream.seen())["seen"]["legacy"]["utf8-body"] == 1


async def test_a_header_of_invalid_utf8_does_not_crash_the_router(
        router: tuple[RouterProcess, UpstreamProcess]) -> None:
    process, _ = router
    reply = await exchange(process.port, post(b"/webhook/jobs",
                                              extra_headers=b"X-Bad: \xff\xfe\xc3\x28\r\n"))
    assert status_of(reply) in (200, 400)


async def test_a_body_over_the_limit_gets_413_even_when_it_lies_about_its_length(
        router: tuple[RouterProcess, UpstreamProcess]) -> None:
    process, _ = router
    chunked = (b"POST /webhook/jobs HTTP/1.1\r\nHost: router\r\nConnection: close\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"4000\r\n" + b"a" * 0x4000 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n")
    assert status_of(await exchange(process.port, chunked)) == 413


async def test_content_length_with_transfer_encoding_is_refused(
        router: tuple[RouterProcess, UpstreamProcess]) -> None:
    process, _ = router
    smuggle = (b"POST /webhook/jobs HTTP/1.1\r\nHost: router\r\nContent-Length: 4\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /webhook/mobility HTTP/1.1\r\n\r\n")
    assert status_of(await exchange(process.port, smuggle)) == 400


async def test_junk_domains_do_not_grow_the_metrics(
        router: tuple[RouterProcess, UpstreamProcess]) -> None:
    process, _ = router
    for i in range(50):
        await exchange(process.port, post(b"/webhook/junk%d" % i))
    metrics = await process.metrics()
    assert "junk" not in metrics
    assert 'domain="_unknown"' in metrics
