"""The forwarding rules: which headers cross the router, and the request line it sends.

Method, query string, body and headers go through unchanged to the target's URL, header
names in their case and duplicates in their order, except the hop-by-hop headers
(RFC 9110 7.6.1), any header the ``Connection`` header names, and ``Host``,
``Content-Length`` and ``Expect``, which belong to each connection (the router has the whole
body before it forwards, so ``Expect: 100-continue`` was answered by the router). Signature
headers (``X-Hub-Signature-256`` ...) are kept. The upstream's status, body and end-to-end
headers come back unchanged; the body is passed on still compressed if it was. No retries: a
webhook is not idempotent, its sender retries.

What the sender receives when the upstream fails:
- connection refused/reset before an answer: 502, body ``upstream <target> unreachable``;
- no answer within ``upstream_timeout_s``: 504, body ``upstream <target> timed out``;
- an upstream 5xx: that status and body, unchanged.
All three are recorded as ``status=error`` events; ``http_status`` is the upstream's status
(null when it gave none) and ``error_message`` says what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from trafficlight.base.errors import ConfigError

#: A header as it came off the wire: name and value bytes, case kept.
RawHeader = tuple[bytes, bytes]

#: Headers that describe one connection, not the message (RFC 9110 7.6.1), lower case.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
    b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
})

#: Set by the router for each outgoing connection, never copied from the sender.
REQUEST_PER_CONNECTION = frozenset({b"host", b"content-length", b"expect"})

#: Set by the router on its own answer, never copied from the upstream.
REPLY_PER_CONNECTION = frozenset({b"content-length"})


_DROPPED: dict[frozenset[bytes], frozenset[bytes]] = {}


def end_to_end(headers: list[RawHeader], names: list[bytes],
               also_drop: frozenset[bytes]) -> list[RawHeader]:
    """``headers`` without hop-by-hop ones, nor any the Connection header names.

    ``names`` are the header names in lower case, in the order of ``headers``.
    """
    dropped = _DROPPED.get(also_drop) or _DROPPED.setdefault(also_drop, HOP_BY_HOP | also_drop)
    if b"connection" in names:
        for name, (_, value) in zip(names, headers, strict=True):
            if name == b"connection":
                dropped = dropped | {token.strip().lower() for token in value.split(b",")}
    return [header for name, header in zip(names, headers, strict=True) if name not in dropped]


@dataclass(frozen=True, slots=True)
class UpstreamAddress:
    """Where one upstream URL points: what the pool connects to and what the request says."""

    host: str
    port: int
    tls: bool
    path: bytes
    host_header: bytes

    @property
    def pool_key(self) -> tuple[str, int, bool]:
        return self.host, self.port, self.tls


def parse_upstream_url(url: str) -> UpstreamAddress:
    """An ``http(s)://host[:port]/path`` URL (a filled-in ``legacy_url``/``unified_url``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"upstream URL must be http(s)://host[:port]/path, got {url!r}")
    tls = parts.scheme == "https"
    default_port = 443 if tls else 80
    port = parts.port or default_port
    host_header = parts.hostname if port == default_port else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:  # an IPv6 literal keeps its brackets in Host
        host_header = f"[{parts.hostname}]" + ("" if port == default_port else f":{port}")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return UpstreamAddress(parts.hostname, port, tls, path.encode(), host_header.encode())


def request_head(method: bytes, address: UpstreamAddress, query: bytes,
                 headers: list[RawHeader], names: list[bytes], body_length: int) -> bytes:
    """The request line and headers the upstream receives, ending with the blank line."""
    target = address.path
    if query:
        target += (b"&" if b"?" in target else b"?") + query
    lines = [method, b" ", target, b" HTTP/1.1\r\nHost: ", address.host_header, b"\r\n"]
    for name, value in end_to_end(headers, names, REQUEST_PER_CONNECTION):
        lines += (name, b": ", value, b"\r\n")
    if body_length or method != b"GET":
        lines += (b"Content-Length: ", str(body_length).encode(), b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)
