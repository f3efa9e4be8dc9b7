"""Session-wide services for the tests: a broker and a Postgres server, isolated per test.

Where they come from, in order: KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set; testcontainers
(Apache Kafka, PostgreSQL) with TRAFFICLIGHT_TEST_CONTAINERS=1 and a Docker engine; otherwise
local services: pgserver Postgres and the broker TRAFFICLIGHT_TEST_KAFKA names, ``tansu`` (the
embedded broker, default, starts in about a second) or ``apache`` (Apache Kafka from Maven
Central, KRaft, logs on disk; needs Java 17+ and Maven; starts in a few seconds).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.reports import PHASE_REPORTS
from trafficlight.base.db import connect
from trafficlight.base.local_services import BrokerKind
from trafficlight.tools.migrate import apply_migrations

#: The local broker the session runs on, from TRAFFICLIGHT_TEST_KAFKA (tansu or apache).
TEST_BROKER = BrokerKind(os.environ.get("TRAFFICLIGHT_TEST_KAFKA", "tansu").strip().lower()
                         or "tansu")


@dataclass(frozen=True)
class TestServices:
    bootstrap_servers: str
    #: A server URL whose role may CREATE DATABASE; tests get their own databases from it.
    admin_database_url: str


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextlib.contextmanager
def _containers() -> Iterator[TestServices]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with KafkaContainer().with_kraft() as kafka, PostgresContainer("postgres:16") as postgres:
        url = postgres.get_connection_url().replace("postgresql+psycopg2://", "postgresql://")
        yield TestServices(kafka.get_bootstrap_server(), url)


def _service_folder() -> Iterator[Path]:
    """A data folder for embedded services, outside pytest's tmp tree.

    Postgres runs as another user when we are root, and every pytest run resets its own tmp
    root to mode 0700: a Postgres with its data in there is locked out of it the moment
    another pytest starts (its shutdown checkpoint PANICs, recent commits are lost).
    """
    folder = Path(tempfile.mkdtemp(prefix="trafficlight-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def service_dir() -> Iterator[Path]:
    """This test's folder for the services it starts itself (see `_service_folder`)."""
    yield from _service_folder()


@pytest.fixture(scope="module")
def module_service_dir() -> Iterator[Path]:
    """The module's folder for the services its fixtures start (see `_service_folder`)."""
    yield from _service_folder()


@pytest.fixture(scope="session")
def test_services() -> Iterator[TestServices]:
    env_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    env_db = os.environ.get("DATABASE_URL")
    if env_kafka and env_db:
        yield TestServices(env_kafka, env_db)
    elif os.environ.get("TRAFFICLIGHT_TEST_CONTAINERS") == "1":
        with _containers() as found:
            yield found
    else:
        from trafficlight.base.local_services import embedded_services

        with embedded_services(kafka=TEST_BROKER) as running:
            yield TestServices(running.bootstrap_servers, running.database_url)


@pytest.fixture(scope="session")
def broker_kind() -> BrokerKind:
    """The kind of local broker this session runs on (what a test's own broker must be)."""
    return TEST_BROKER


@pytest.fixture(scope="session")
def kafka_bootstrap(test_services: TestServices) -> str:
    return test_services.bootstrap_servers


@pytest.fixture
def unique_topic() -> Callable[[str], str]:
    """Topic names of this test only, so tests never read each other's records."""
    suffix = uuid.uuid4().hex[:10]
    return lambda name: f"{name}-{suffix}"


@pytest.fixture(scope="session")
async def migrated_template(test_services: TestServices) -> str:
    """A migrated database that each test's database is copied from (fast: no re-migration)."""
    name = f"tl_template_{uuid.uuid4().hex[:8]}"
    admin = await connect(test_services.admin_database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await apply_migrations(_with_database(test_services.admin_database_url, name))
    return name


@contextlib.asynccontextmanager
async def _fresh_database(admin_url: str, template: str | None = None) -> AsyncIterator[str]:
    name = f"tl_test_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    admin = await connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await admin.close()
    try:
        yield _with_database(admin_url, name)
    finally:
        admin = await connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def database_url(test_services: TestServices, migrated_template: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test alone."""
    async with _fresh_database(test_services.admin_database_url, migrated_template) as url:
        yield url


@pytest.fixture
async def empty_database_url(test_services: TestServices) -> AsyncIterator[str]:
    """A fresh database with no migrations applied."""
    async with _fresh_database(test_services.admin_database_url) as url:
        yield url


@pytest.fixture(scope="module")
async def module_database_url(test_services: TestServices,
                              migrated_template: str) -> AsyncIterator[str]:
    """A fresh, migrated database shared by one test module (e.g. one router process)."""
    async with _fresh_database(test_services.admin_database_url, migrated_template) as url:
        yield url



@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report
