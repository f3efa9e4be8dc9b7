"""Every error trafficlight reports to a user; the CLI turns them into one line and an exit code."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """An exception in one line for a log or an error message: its first line, else its type.

    asyncpg's errors carry the server's text in ``message``; others their ``str``.
    """
    message = getattr(exc, "message", None) or str(exc)
    lines = str(message).splitlines()
    return lines[0] if lines and lines[0].strip() else type(exc).__name__


class TrafficlightError(Exception):
    """Root of trafficlight's own errors.

    ``exit_code`` is what the CLI exits with; ``retriable`` says whether trying the same thing
    again later may succeed (a service down) or never will (bad input, bad config).
    """

    exit_code = 1
    retriable = False


class ConfigError(TrafficlightError):
    """A settings file or environment variable is missing or malformed."""

    exit_code = 2


class InvalidInput(TrafficlightError, ValueError):
    """An argument a user typed is malformed, out of range or names something unknown."""

    exit_code = 2


class DatabaseUnavailable(TrafficlightError):
    """DATABASE_URL is unreachable, refused us, or is not a Postgres URL."""

    exit_code = 2
    retriable = True


class RefusedByDatabase(TrafficlightError):
    """The database refused a change (out-of-range percentage, empty reason, ...)."""

    exit_code = 3


class ServiceStartError(TrafficlightError):
    """An embedded broker or Postgres did not come up."""

    exit_code = 2
    retriable = True


class CorruptInput(TrafficlightError):
    """An input file or topic holds a record that is not a valid event (`--strict`)."""

    exit_code = 4
