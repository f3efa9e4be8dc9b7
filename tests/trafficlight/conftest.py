"""Fixtures for the operators' commands: the real CLI in a subprocess, as an operator runs it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


RunCli = Callable[..., Awaitable[CliResult]]


@pytest.fixture
def run_cli() -> RunCli:
    """``await run_cli("status", env={...})``: `trafficlight` with its real exit code and streams.

    Only the given services are in the environment, so a test never reaches another's.
    """

    async def run(*args: str, env: dict[str, str], timeout_s: float = 60) -> CliResult:
        base = {k: v for k, v in os.environ.items()
                if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from trafficlight.cli import main; main()", *args,
            env={**base, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=timeout_s)
        assert process.returncode is not None
        return CliResult(process.returncode, stdout.decode(), stderr.decode())

    return run
