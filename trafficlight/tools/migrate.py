"""Apply `migrations/*.sql` once each, in name order, each in its own transaction."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from trafficlight.base.db import connect
from trafficlight.base.errors import ConfigError

MIGRATIONS_TABLE = "trafficlight_migrations"

_CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def default_directory() -> Path:
    return Path(str(resources.files("trafficlight.migrations")))


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Supabase-style files: ``YYYYMMDDHHMMSS_name.sql``."""
    folder = directory or default_directory()
    found = []
    for path in sorted(folder.glob("*.sql")):
        version, sep, name = path.stem.partition("_")
        if not (sep and version.isdigit() and len(version) == 14):
            raise ConfigError(f"migration file name must be YYYYMMDDHHMMSS_name.sql: {path.name}")
        found.append(Migration(version, name, path.read_text()))
    return found


async def apply_migrations(url: str, directory: Path | None = None) -> list[Migration]:
    """Apply what is not applied yet; returns what was applied now (empty on a rerun).

    Each file runs with its bookkeeping in one transaction under a transaction-scoped
    advisory lock, so concurrent migrate jobs and transaction poolers are both safe.
    """
    migrations = load_migrations(directory)
    conn = await connect(url)
    applied_now: list[Migration] = []
    try:
        await conn.execute(_CREATE_TABLE)
        for migration in migrations:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", MIGRATIONS_TABLE)
                checksum = await conn.fetchval(
                    f"SELECT checksum FROM {MIGRATIONS_TABLE} WHERE version = $1", migration.version
                )
                if checksum is not None:
                    if checksum != migration.checksum:
                        raise ConfigError(
                            f"migration {migration.version}_{migration.name} changed after it was "
                            "applied; add a new migration instead of editing an applied one"
                        )
                    continue
                await conn.execute(migration.sql)
                await conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version, migration.name, migration.checksum,
                )
                applied_now.append(migration)
    finally:
        await conn.close()
    return applied_now
