"""The router's HTTP/1.1 handling on raw sockets: what an HTTP client library would smooth over.

Each test writes bytes exactly as a sender (or an attacker) could and reads what comes back.
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.router.conftest import StartRouter
from tests.router.support import REPLY_DELAY_HEADER, Upstream, rollout_config

WEBHOOK = b'{"entry": []}'


async def exchange(port: int, data: bytes, *, answers: int = 1, safety_s: float = 10) -> bytes:
    """Write ``data``, read until ``answers`` whole answers came or the router closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(data)
        await writer.drain()
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            async with asyncio.timeout(safety_s):
                while len(split_answers(received)) < answers:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    received += chunk
    finally:
        writer.close()
    return received


def split_answers(data: bytes) -> list[bytes]:
    """Whole answers (head and Content-Length body) in ``data``; 1xx interim answers apart."""
    answers = []
    while b"\r\n\r\n" in data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) < length:
            break
        answers.append(head + b"\r\n\r\n" + rest[:length])
        data = rest[length:]
    return answers


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def post(path: bytes = b"/webhook/jobs", body: bytes = WEBHOOK, headers: bytes = b"") -> bytes:
    return (b"POST " + path + b" HTTP/1.1\r\nHost: router\r\n" + headers
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


async def test_content_length_with_transfer_encoding_is_refused_and_nothing_is_forwarded(
        start_router: StartRouter, legacy: Upstream) -> None:
    router = await start_router(rollout_config(0))
    smuggle = (b"POST /webhook/jobs HTTP/1.1\r\nHost: router\r\nContent-Length: 4\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /webhook/mobility HTTP/1.1\r\n\r\n")
    [answer] = split_answers(await exchange(router.server.port, smuggle, answers=2))
    assert status(answer) == 400
    assert b"Connection: close" in answer
    assert legacy.seen == []


async def test_two_content_lengths_are_refused(start_router: StartRouter,
                                               legacy: Upstream) -> None:
    router = await start_router(rollout_config(0))
    request = (b"POST /webhook/jobs HTTP/1.1\r\nHost: router\r\nContent-Length: 2\r\n"
               b"Content-Length: 13\r\n\r\n" + WEBHOOK)
    assert status(await exchange(router.server.port, request)) == 400
    assert legacy.seen == []


async def test_pipelined_webhooks_are_answered_in_order(
        start_router: StartRouter, legacy: Upstream) -> None:
    router = await start_router(rollout_config(0))
    # The first is slow at the upstream: its answer must still come first.
    three = (post(body=b'{"n": 1}', headers=REPLY_DELAY_HEADER.encode() + b": 0.3\r\n")
             + post(body=b'{"n": 2}') + post(body=b'{"n": 3}'))
    answers = split_answers(await exchange(router.server.port, three, answers=3))
    assert [status(a) for a in answers] == [200, 200, 200]
    assert [s.body for s in legacy.seen] == [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']
    assert all(b"X-Routed-To: legacy" in a for a in answers)


async def test_a_chunked_body_is_forwarded_whole_with_its_length(
        start_router: StartRouter, legacy: Upstream) -> None:
    router = await start_router(rollout_config(0))
    chunked = (b"POST /webhook/jobs HTTP/1.1\r\nHost: router\r\nTransfer-Encoding: chunked\r\n"
               b"\r\n5\r\n{\"ent\r\n8\r\nry\": []}\r\n0\r\n\r\n")
    assert status(await exchange(router.server.port, chunked)) == 200
    [seen] = legacy.seen
    assert seen.body == WEBHOOK
    assert seen.headers["content-length"] == [str(len(WEBHOOK))]
    assert "transfer-encoding" not in seen.headers


async def test_expect_100_continue_gets_100_then_the_answer(
        start_router: StartRouter, legacy: Upstream) -> None:
    router = await start_router(rollout_config(0))
    reader, writer = await asyncio.open_connection("127.0.0.1", router.server.port)
    writer.write(b"POST /webhook/jobs HTTP/1.1\r\nHost: router\r\nExpect: 100-continue\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(WEBHOOK))
    async with asyncio.timeout(10):
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(WEBHOOK)
        head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    assert status(head) == 200
    assert "expect" not in legacy.seen[0].headers


async def test_expect_100_continue_over_the_body_limit_gets_413_without_100(
        start_router: StartRouter, legacy: Upstream) -> None:
    router = await start_router(rollout_config(0), max_body_bytes=1000)
    request = (b"POST /webhook/jobs HTTP/1.1\r\nHost: router\r\nExpect: 100-continue\r\n"
               b"Content-Length: 5000\r\n\r\n")
    answer = await exchange(router.server.port, request)
    assert status(answer) == 413
    assert b"100 Continue" not in answer
    assert legacy.seen == []


async def test_headers_that_never_finish_are_closed_after_the_idle_timeout(
        start_router: StartRouter, legacy: Upstream) -> None:
    router = await start_router(rollout_config(0), idle_timeout_s=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", router.server.port)
    writer.write(b"POST /webhook/jobs HTTP/1.1\r\nHost: router\r\nX-Slow: ")
    async with asyncio.timeout(10):  # a safety net, not a figure
        rest = await reader.read()
    writer.close()
    assert rest == b""
    assert legacy.seen == []


async def test_headers_over_the_size_limit_get_431(start_router: StartRouter,
                                                   legacy: Upstream) -> None:
    router = await start_router(rollout_config(0), max_header_bytes=2000)
    answer = await exchange(router.server.port, post(headers=b"X-Big: " + b"a" * 3000 + b"\r\n"))
    assert status(answer) == 431
    assert legacy.seen == []


async def test_too_many_headers_get_431(start_router: StartRouter, legacy: Upstream) -> None:
    router = await start_router(rollout_config(0), max_headers=20)
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(21))
    assert status(await exchange(router.server.port, post(headers=many))) == 431
    assert legacy.seen == []


async def test_duplicate_headers_reach_the_upstream_in_order_with_their_case(
        start_router: StartRouter, legacy: Upstream) -> None:
    router = await start_router(rollout_config(0))
    answer = await exchange(router.server.port, post(
        headers=b"x-MiXeD-Case: 1\r\nX-Dup: a\r\nX-Dup: b\r\n"))
    assert status(answer) == 200
    assert legacy.seen[0].headers["x-dup"] == ["a", "b"]
    assert legacy.seen[0].headers["x-mixed-case"] == ["1"]


async def test_an_http_1_0_request_is_answered_and_closed(start_router: StartRouter) -> None:
    router = await start_router(rollout_config(0))
    request = post().replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    answer = await exchange(router.server.port, request + post(), answers=2)
    assert [status(a) for a in split_answers(answer)] == [200]
    assert b"Connection: close" in answer


async def test_a_method_other_than_get_or_post_gets_405(start_router: StartRouter,
                                                        legacy: Upstream) -> None:
    router = await start_router(rollout_config(0))
    answer = await exchange(router.server.port, post().replace(b"POST", b"PUT", 1))
    assert status(answer) == 405
    assert legacy.seen == []


async def test_shutdown_answers_the_webhooks_in_flight_then_closes(
        start_router: StartRouter, legacy: Upstream) -> None:
    router = await start_router(rollout_config(0))
    in_flight = asyncio.create_task(exchange(
        router.server.port, post(headers=REPLY_DELAY_HEADER.encode() + b": 0.5\r\n")))
    while not legacy.seen:
        await asyncio.sleep(0.01)
    await router.server.shutdown(10)
    answer = await in_flight
    assert status(answer) == 200
    assert b"Connection: close" in answer
    assert b"legacy says 200" in answer
