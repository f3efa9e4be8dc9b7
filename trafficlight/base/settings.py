"""Where the services are: the environment, per SPEC "Services"."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from trafficlight.base.errors import ConfigError

KAFKA_BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
DATABASE_URL_ENV = "DATABASE_URL"

EVENTS_TOPIC = "webhook-routing-events"
VERDICTS_TOPIC = "webhook-routing-verdicts"
CONFIG_CHANNEL = "webhook_routing_config"

#: Where embedded services keep their data when no other folder is given.
STATE_DIR = Path(os.environ.get("TRAFFICLIGHT_HOME", ".trafficlight"))


def kafka_bootstrap_servers() -> str | None:
    return os.environ.get(KAFKA_BOOTSTRAP_ENV) or None


def database_url() -> str | None:
    return os.environ.get(DATABASE_URL_ENV) or None


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(
            f"{name} is not set (run `trafficlight services` and paste its export lines)")
    return value


def required_database_url() -> str:
    return _required(DATABASE_URL_ENV)


def required_kafka_bootstrap_servers() -> str:
    return _required(KAFKA_BOOTSTRAP_ENV)


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A settings file as a dict; unreadable or malformed is one `ConfigError` line naming it."""
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None
