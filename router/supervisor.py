"""Several serving processes on one port: start them, restart one that dies, stop them all.

Each child is a whole router (``serve``) listening with SO_REUSEPORT, so the kernel spreads
connections over them; each spools to a directory of its own. A child that exits while the
supervisor is not stopping is restarted (after 1 s, doubling up to 30 s while it keeps dying
within a minute of its start). SIGTERM or SIGINT to the supervisor is passed to every child,
which drains (answers its in-flight webhooks, delivers or spools its events); the supervisor
exits when they all have, with 0 when every child stopped cleanly. Children get SIGTERM if the
supervisor itself dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from trafficlight.base.local_services import die_with_parent
from trafficlight.base.signals import STOP_SIGNALS

log = logging.getLogger("router.supervisor")

_RESTART_FIRST_S = 1.0
_RESTART_MAX_S = 30.0
_HEALTHY_AFTER_S = 60.0
_POLL_S = 0.2


@dataclass
class Child:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_delay_s: float = _RESTART_FIRST_S
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    """``argv_for(i)`` is the command line of child ``i``."""

    def __init__(self, count: int, argv_for: Callable[[int], list[str]], *,
                 stop_timeout_s: float) -> None:
        self.children = [Child(i) for i in range(count)]
        self._argv_for = argv_for
        self._stop_timeout_s = stop_timeout_s
        self._stopping = asyncio.Event()

    def _spawn(self, child: Child) -> None:
        child.proc = subprocess.Popen(self._argv_for(child.index), stdin=subprocess.DEVNULL,
                                      preexec_fn=lambda: die_with_parent(signal.SIGTERM))
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("router process %d started (pid %d)", child.index, child.proc.pid)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> int:
        """Until :meth:`stop`; then every child drained. The exit code for the supervisor."""
        for child in self.children:
            self._spawn(child)
        while not self._stopping.is_set():
            self._check(time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), _POLL_S)
        return await self._stop_all()

    def _check(self, now: float) -> None:
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    self._spawn(child)
                continue
            if child.proc is None or (code := child.proc.poll()) is None:
                continue
            if now - child.started_at > _HEALTHY_AFTER_S:
                child.restart_delay_s = _RESTART_FIRST_S
            log.error("router process %d (pid %d) exited with code %s; restarting in %.0f s",
                      child.index, child.proc.pid, code, child.restart_delay_s)
            child.restart_at = now + child.restart_delay_s
            child.restart_delay_s = min(child.restart_delay_s * 2, _RESTART_MAX_S)

    async def _stop_all(self) -> int:
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(*(asyncio.to_thread(self._wait, proc) for proc in running))
        # -SIGTERM: it was still starting (no handler yet), so nothing was in flight there.
        return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1

    def _wait(self, proc: subprocess.Popen[bytes]) -> int:
        try:
            return proc.wait(self._stop_timeout_s)
        except subprocess.TimeoutExpired:
            log.error("router process pid %d did not stop in %.0f s: killed", proc.pid,
                      self._stop_timeout_s)
            proc.kill()
            proc.wait()
            return 1


async def supervise(supervisor: Supervisor) -> int:
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, supervisor.stop)
    return await supervisor.run()
