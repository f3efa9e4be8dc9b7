"""Fixtures for operators' commands: the real CLI in a subprocess; logs stored as the sink does."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from trafficlight.base.db import connect


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


StoreEvents = Callable[[str, Iterable[dict[str, Any]]], Awaitable[int]]

_LOG_COLUMNS = ("event_id", "created_at", "domain", "routed_to", "response_time_ms", "status",
                "http_status", "error_message", "router_id", "config_version")


@pytest.fixture
def store_events() -> StoreEvents:
    """``await store_events(database_url, events)``: routing events into webhook_routing_logs,
    as the worker's sink stores them (COPY)."""

    async def store(database_url: str, events: Iterable[dict[str, Any]]) -> int:
        records = [(e["event_id"], datetime.fromtimestamp(e["ts"], UTC), e["domain"],
                    e["routed_to"], e["response_time_ms"], e["status"], e["http_status"],
                    e["error_message"], e["router_id"], e["config_version"]) for e in events]
        conn = await connect(database_url)
        try:
            await conn.copy_records_to_table("webhook_routing_logs", records=records,
                                             columns=_LOG_COLUMNS)
        finally:
            await conn.close()
        return len(records)

    return store
