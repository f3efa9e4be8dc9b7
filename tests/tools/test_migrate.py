from __future__ import annotations

import subprocess
import sys

from trafficlight.base.db import connect, connect_args
from trafficlight.tools.migrate import MIGRATIONS_TABLE, apply_migrations, load_migrations


async def test_first_run_applies_every_migration_in_order(empty_database_url: str) -> None:
    applied = await apply_migrations(empty_database_url)

    assert [m.version for m in applied] == sorted(m.version for m in load_migrations())
    conn = await connect(empty_database_url)
    try:
        recorded = await conn.fetch(f"SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version")
    finally:
        await conn.close()
    assert [r["version"] for r in recorded] == [m.version for m in applied]


async def test_rerun_applies_nothing_and_keeps_config_history(empty_database_url: str) -> None:
    await apply_migrations(empty_database_url)

    assert await apply_migrations(empty_database_url) == []
    conn = await connect(empty_database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM webhook_routing_config") == 1
    finally:
        await conn.close()


async def test_migrates_without_prepared_statements_as_through_a_pooler(
    empty_database_url: str,
) -> None:
    url = f"{empty_database_url}?prepared_statements=false"

    applied = await apply_migrations(url)

    assert applied
    assert await apply_migrations(url) == []


def test_pooler_port_turns_off_the_statement_cache() -> None:
    dsn, kwargs = connect_args("postgresql://u:secret@pooler.example:6543/postgres")

    assert kwargs == {"statement_cache_size": 0}
    assert dsn == "postgresql://u:secret@pooler.example:6543/postgres"


def test_our_url_parameter_is_not_passed_to_the_server() -> None:
    dsn, kwargs = connect_args("postgresql://u@db:5432/app?prepared_statements=false&sslmode=require")

    assert kwargs == {"statement_cache_size": 0}
    assert dsn == "postgresql://u@db:5432/app?sslmode=require"


def test_direct_connection_keeps_the_statement_cache() -> None:
    assert connect_args("postgresql://u@db:5432/app")[1] == {}


def _migrate_cli(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trafficlight.cli", "migrate"],
        env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )


def test_unreachable_database_is_one_line_and_exit_code_2() -> None:
    result = _migrate_cli("postgresql://postgres:hunter2@127.0.0.1:1/postgres")

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: cannot connect to postgresql://postgres:***@127.0.0.1:1")
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_url_that_is_not_postgres_is_one_line_and_exit_code_2() -> None:
    result = _migrate_cli("mysql://root@localhost/db")

    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: DATABASE_URL must be a postgresql:// URL, got 'mysql://root@localhost/db'"
    )


def test_cli_migrate_twice_on_a_fresh_database(empty_database_url: str) -> None:
    first = _migrate_cli(empty_database_url)
    second = _migrate_cli(empty_database_url)

    assert first.returncode == 0, first.stderr
    assert first.stdout.count("applied ") == len(load_migrations())
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "database is up to date"
