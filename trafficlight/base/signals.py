"""Stopping on Ctrl-C or SIGTERM, the same way in every long-running command."""

from __future__ import annotations

import asyncio
import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def wait_for_stop_signal() -> None:
    """Block until Ctrl-C or SIGTERM, so `finally` blocks stop what we started."""
    received: list[int] = []
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    while not received:
        signal.pause()


def stop_event_on_signals() -> asyncio.Event:
    """An event set by Ctrl-C or SIGTERM, for the running loop's main task to wait on."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    return stop
