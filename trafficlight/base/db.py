"""Postgres connections that work directly and through transaction poolers (Supabase :6543)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from trafficlight.base.errors import DatabaseUnavailable, first_line

log = logging.getLogger(__name__)

#: Supabase's pooler port: transaction pooling, where prepared statements do not survive.
TRANSACTION_POOLER_PORT = 6543

#: Our own URL parameter; asyncpg would pass unknown parameters on as server settings.
_NO_PREPARE_PARAM = "prepared_statements"


def redact(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def connect_args(url: str) -> tuple[str, dict[str, Any]]:
    """The asyncpg DSN and keyword arguments for ``url``.

    Prepared statements are off when the port is 6543 or the URL says
    ``prepared_statements=false``: transaction pooling hands each transaction to any backend.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise DatabaseUnavailable(f"DATABASE_URL must be a postgresql:// URL, got {redact(url)!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    wants_no_prepare = any(k == _NO_PREPARE_PARAM and v.lower() in ("false", "0", "off")
                           for k, v in query)
    query = [(k, v) for k, v in query if k != _NO_PREPARE_PARAM]
    try:
        port = parts.port
    except ValueError:
        raise DatabaseUnavailable(f"DATABASE_URL has an invalid port: {redact(url)!r}") from None
    kwargs: dict[str, Any] = {}
    if wants_no_prepare or port == TRANSACTION_POOLER_PORT:
        kwargs["statement_cache_size"] = 0
    return urlunsplit(parts._replace(query=urlencode(query))), kwargs


def uses_transaction_pooler(url: str) -> bool:
    return "statement_cache_size" in connect_args(url)[1]


_CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _unavailable(url: str, exc: BaseException) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"cannot connect to {redact(url)}: {first_line(exc)}")


async def connect(url: str, *, timeout_s: float = 10, **extra: Any) -> asyncpg.Connection:
    """One connection, or :class:`DatabaseUnavailable` with a one-line reason."""
    dsn, kwargs = connect_args(url)
    try:
        return await asyncpg.connect(dsn, timeout=timeout_s, **kwargs, **extra)
    except _CONNECT_ERRORS as exc:
        raise _unavailable(url, exc) from None


async def create_pool(
    url: str, *, min_size: int = 1, max_size: int = 4, **extra: Any
) -> asyncpg.Pool:
    """A pool with the same pooler rules as :func:`connect`."""
    dsn, kwargs = connect_args(url)
    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, **kwargs, **extra
        )
    except _CONNECT_ERRORS as exc:
        raise _unavailable(url, exc) from None
    if pool is None:  # asyncpg types it Optional; it is only None when awaited twice
        raise DatabaseUnavailable(f"cannot create a pool for {redact(url)}")
    return pool


@contextlib.asynccontextmanager
async def listening_connection(
    url: str, channel: str, on_notify: Callable[..., object], *, what: str, poll_s: float,
    timeout_s: float = 10,
) -> AsyncIterator[tuple[asyncpg.Connection, bool]]:
    """A connection LISTENing on ``channel`` (each NOTIFY calls ``on_notify``) and whether it
    does: through a transaction pooler, or a proxy that refuses LISTEN, the follower can only
    poll (every ``poll_s``, said once per connection in a warning naming ``what``). Closed
    on the way out, whatever happened."""
    conn = await connect(url, timeout_s=timeout_s)
    try:
        listening = False
        if uses_transaction_pooler(url):
            log.warning("%s: %s is a transaction pooler, LISTEN cannot work there; polling "
                        "every %.0fs", what, redact(url), poll_s)
        else:
            try:
                await conn.add_listener(channel, on_notify)
                listening = True
            except asyncpg.PostgresError as exc:
                log.warning("%s: LISTEN %s refused (%s); polling every %.0fs", what, channel,
                            first_line(exc), poll_s)
        yield conn, listening
    finally:
        with contextlib.suppress(Exception):
            await conn.close(timeout=1)
