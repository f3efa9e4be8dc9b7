"""Forward one webhook verbatim to its upstream over pooled keep-alive connections.

Method, query string, body and headers go through unchanged to the target's URL,
except the hop-by-hop headers (RFC 9110 7.6.1), ``Host`` and ``Content-Length``, which
belong to each connection. Signature headers (``X-Hub-Signature-256`` ...) are kept. The
upstream's status, body and end-to-end headers come back unchanged; the body is passed on
still compressed if it was. No retries: a webhook is not idempotent, its sender retries.

What the sender receives when the upstream fails:
- connection refused/reset before an answer: 502, body ``upstream <target> unreachable``;
- no answer within ``upstream_timeout_s``: 504, body ``upstream <target> timed out``;
- an upstream 5xx: that status and body, unchanged.
All three are recorded as ``status=error`` events; ``http_status`` is the upstream's status
(null when it gave none) and ``error_message`` says what happened.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from trafficlight.router.errors import UpstreamTimeout, UpstreamUnreachable

#: Headers that describe one connection, not the message (RFC 9110 7.6.1).
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade",
})

#: Set by the client for the outgoing connection, never copied.
_PER_CONNECTION = frozenset({"host", "content-length"})

#: Headers aiohttp would add on its own; skipped so only the sender's headers go upstream.
_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


def end_to_end_headers(headers: CIMultiDictProxy[str] | CIMultiDict[str],
                       also_drop: frozenset[str] = frozenset()) -> CIMultiDict[str]:
    """``headers`` without hop-by-hop ones, nor any the Connection header names."""
    named = {token.strip().lower() for value in headers.getall("Connection", [])
             for token in value.split(",")}
    dropped = HOP_BY_HOP | named | also_drop
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in dropped)


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    status: int
    headers: CIMultiDict[str]
    body: bytes


class Forwarder:
    """One pooled client session for all upstreams."""

    def __init__(self, *, connections: int, connect_timeout_s: float,
                 upstream_timeout_s: float) -> None:
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=upstream_timeout_s, connect=connect_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._connections, limit_per_host=0,
                                         keepalive_timeout=30, ttl_dns_cache=60)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, auto_decompress=False,
            skip_auto_headers=_AUTO_HEADERS, cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def forward(self, method: str, url: str, query_string: str,
                      headers: CIMultiDictProxy[str], body: bytes, target: str) -> UpstreamReply:
        """The upstream's reply, or UpstreamUnreachable / UpstreamTimeout."""
        if self._session is None:
            raise RuntimeError("Forwarder.start() was not awaited")
        full_url = f"{url}?{query_string}" if query_string else url
        outgoing = end_to_end_headers(headers, also_drop=_PER_CONNECTION)
        try:
            async with self._session.request(method, URL(full_url, encoded=True),
                                             headers=outgoing, data=body or None,
                                             allow_redirects=False) as response:
                reply_body = await response.read()
                return UpstreamReply(
                    response.status,
                    end_to_end_headers(response.headers, also_drop=frozenset({"content-length"})),
                    reply_body,
                )
        except TimeoutError:
            raise UpstreamTimeout(f"upstream {target} timed out") from None
        except aiohttp.ClientError as exc:
            reason = str(exc) or type(exc).__name__
            raise UpstreamUnreachable(f"upstream {target} unreachable: {reason}",
                                      public=f"upstream {target} unreachable") from None
