"""The router's settings: the ``[router]`` table of a TOML file, every key with a default.

```toml
[router]
host = "0.0.0.0"                 # where the router listens
port = 8080
legacy_url = "http://legacy:8000/webhook/{domain}"   # {domain} is replaced
unified_url = "http://unified:8000/webhook/{domain}" # {domain} optional here too
router_id = "<hostname>:<pid>"   # carried by every routing event
events_topic = "webhook-routing-events"
connect_timeout_s = 2.0          # upstream TCP connect
upstream_timeout_s = 10.0        # whole upstream exchange; then the sender gets 504
max_body_bytes = 1048576         # 1 MiB; over it the sender gets 413
body_timeout_s = 10.0            # the whole body must arrive within this; else 408, closed
idle_timeout_s = 30.0            # a connection idle (or still sending headers) this long is closed
max_header_bytes = 32768         # request line + headers; over it the sender gets 431, closed
max_headers = 100                # header lines; over it 431, closed
max_in_flight = 1024             # webhooks handled at once; past it 503 + Retry-After at once
upstream_connections = 256       # pooled keep-alive connections, all upstreams together
batch_max_events = 250           # one Kafka record holds at most this many events ...
batch_linger_s = 0.05            # ... and waits at most this long for more
buffer_max_bytes = 67108864      # 64 MiB of records in memory while Kafka is slow or down ...
spool_dir = ".trafficlight/router-spool"  # ... then an append-only file here ...
spool_max_bytes = 1073741824     # ... up to 1 GiB; past that new events are dropped and counted
config_poll_s = 5.0              # re-read the config row even when LISTEN is working
reuse_port = false               # true: several router processes share the port (SO_REUSEPORT),
                                 # one per core; give each its own spool_dir
processes = "auto"               # serving processes: "auto" = one per core (SO_REUSEPORT, each
                                 # spooling to spool_dir/process-<i>, supervised), or a number;
                                 # 1 = this process serves, spooling to spool_dir itself
drain_timeout_s = 30.0           # on SIGTERM: how long in-flight webhooks get to be answered
```
``DATABASE_URL`` and ``KAFKA_BOOTSTRAP_SERVERS`` come from the environment, never the file.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from trafficlight.base.errors import ConfigError
from trafficlight.base.settings import EVENTS_TOPIC, STATE_DIR, read_toml
from trafficlight.streams.events import Target


def default_router_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class RouterSettings:
    legacy_url: str
    unified_url: str
    host: str = "0.0.0.0"
    port: int = 8080
    router_id: str = field(default_factory=default_router_id)
    events_topic: str = EVENTS_TOPIC
    connect_timeout_s: float = 2.0
    upstream_timeout_s: float = 10.0
    max_body_bytes: int = 1024 * 1024
    body_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    max_in_flight: int = 1024
    upstream_connections: int = 256
    batch_max_events: int = 250
    batch_linger_s: float = 0.05
    buffer_max_bytes: int = 64 * 1024 * 1024
    spool_dir: Path = STATE_DIR / "router-spool"
    spool_max_bytes: int = 1024 * 1024 * 1024
    config_poll_s: float = 5.0
    reuse_port: bool = False
    processes: int | str = "auto"
    drain_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("legacy_url", "unified_url"):
            url = getattr(self, name)
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"[router] {name} must be an http(s) URL, got {url!r}")
        positive = ("port", "connect_timeout_s", "upstream_timeout_s", "max_body_bytes",
                    "body_timeout_s", "idle_timeout_s", "max_in_flight",
                    "upstream_connections", "batch_max_events", "batch_linger_s",
                    "buffer_max_bytes", "spool_max_bytes", "config_poll_s",
                    "max_header_bytes", "max_headers", "drain_timeout_s")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"[router] {name} must be positive, got {getattr(self, name)}")
        if self.processes != "auto" and not (isinstance(self.processes, int)
                                             and self.processes >= 1):
            raise ConfigError(f"[router] processes must be \"auto\" or a number >= 1, "
                              f"got {self.processes!r}")

    @property
    def process_count(self) -> int:
        """How many serving processes: ``processes``, with "auto" = the cores usable here."""
        if isinstance(self.processes, int):
            return self.processes
        return max(1, len(os.sched_getaffinity(0)))

    def upstream_url(self, routed_to: str, domain: str) -> str:
        template = self.unified_url if routed_to == Target.UNIFIED else self.legacy_url
        return template.replace("{domain}", domain)


#: Field name -> its annotation as written (a string, under postponed annotations).
_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(RouterSettings)}


def _coerce(name: str, value: Any) -> Any:
    wanted = _TYPES[name]
    if isinstance(value, bool):
        if wanted == "bool":
            return value
        raise ConfigError(f"[router] {name} has the wrong type: {value!r}")
    if wanted == "float" and isinstance(value, int | float):
        return float(value)
    if wanted == "int" and isinstance(value, int):
        return value
    if wanted == "str" and isinstance(value, str):
        return value
    if wanted == "int | str" and isinstance(value, int | str):
        return value
    if wanted == "Path" and isinstance(value, str):
        return Path(value)
    raise ConfigError(f"[router] {name} has the wrong type: {value!r}")


def settings_from_table(table: dict[str, Any]) -> RouterSettings:
    """Settings from a parsed ``[router]`` table; unknown keys are an error, not ignored."""
    unknown = sorted(set(table) - set(_TYPES))
    if unknown:
        raise ConfigError(f"[router] has unknown keys: {', '.join(unknown)}")
    for required in ("legacy_url", "unified_url"):
        if required not in table:
            raise ConfigError(f"[router] {required} is required")
    return RouterSettings(**{name: _coerce(name, value) for name, value in table.items()})


def load_settings(path: Path) -> RouterSettings:
    document = read_toml(path, "router config")
    table = document.get("router")
    if not isinstance(table, dict):
        raise ConfigError(f"router config {path} has no [router] table")
    return settings_from_table(table)
