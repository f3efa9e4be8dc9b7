"""Stop signals: recorded from the start, never lost, never a kill that skips cleanup."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from trafficlight.base.signals import STOP_SIGNALS, StopSignals


@pytest.fixture
def own_handlers() -> Iterator[None]:
    """The test process's handlers back as they were afterwards."""
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    yield
    for sig, handler in before.items():
        signal.signal(sig, handler)


@pytest.mark.usefixtures("own_handlers")
def test_a_sigterm_before_the_wait_ends_it_at_once() -> None:
    stop = StopSignals()
    os.kill(os.getpid(), signal.SIGTERM)  # while "services start": recorded, not a kill
    stop.wait()
    assert stop.received == [signal.SIGTERM]


@pytest.mark.usefixtures("own_handlers")
def test_a_ctrl_c_during_the_wait_ends_it() -> None:
    stop = StopSignals()
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    stop.wait()
    timer.join()
    assert stop.received == [signal.SIGINT]
