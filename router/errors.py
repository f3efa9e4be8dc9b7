"""The router's errors, and the one table that maps each to the HTTP status a sender sees."""

from __future__ import annotations

from trafficlight.base.errors import TrafficlightError


class RouterError(TrafficlightError):
    """Root of the router's own errors; :data:`HTTP_STATUS` says what the sender receives.

    ``str(error)`` is the whole story for logs and events; ``public`` is what the sender
    may read (no internal host names).
    """

    def __init__(self, message: str, public: str | None = None) -> None:
        super().__init__(message)
        self.public = public if public is not None else message


class InvalidDomain(RouterError):
    """The domain path segment is not a plain name (path tricks, encoded slashes, too long)."""


class BodyTooLarge(RouterError):
    """The webhook body is over the configured limit; nothing was forwarded."""


class BodyTimeout(RouterError):
    """The body did not arrive within the configured time (a slow or stalled sender)."""


class Overloaded(RouterError):
    """``max_in_flight`` webhooks are being handled: shed this one now (the sender retries)."""


class UpstreamUnreachable(RouterError):
    """The chosen upstream refused or dropped the connection before answering."""


class UpstreamTimeout(RouterError):
    """The chosen upstream did not answer within the configured timeout."""


#: What a sender receives for each error: the router's whole error-to-HTTP policy.
HTTP_STATUS: dict[type[RouterError], int] = {
    InvalidDomain: 400,
    BodyTimeout: 408,
    BodyTooLarge: 413,
    Overloaded: 503,
    UpstreamUnreachable: 502,
    UpstreamTimeout: 504,
}


def http_status_for(error: RouterError) -> int:
    return HTTP_STATUS.get(type(error), 500)
