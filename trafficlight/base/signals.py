"""Stopping on Ctrl-C or SIGTERM, the same way in every long-running command."""

from __future__ import annotations

import asyncio
import signal
import time

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Ctrl-C and SIGTERM, recorded from the moment this is made: one that comes while a
    command is still starting services is neither lost nor a default kill that skips the
    `finally` blocks stopping them (the process would leave Postgres running)."""

    def __init__(self) -> None:
        self.received: list[int] = []
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._record)

    def _record(self, signum: int, _frame: object) -> None:
        self.received.append(signum)

    def wait(self) -> None:
        """Block until one has come (at once if one already has)."""
        while not self.received:
            # Not signal.pause(): a signal landing between the check and the pause would
            # leave it waiting for a second one.
            time.sleep(0.1)


def stop_event_on_signals() -> asyncio.Event:
    """An event set by Ctrl-C or SIGTERM, for the running loop's main task to wait on."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    return stop
