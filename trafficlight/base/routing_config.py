"""The routing config read model: one row of ``webhook_routing_config`` and the query for it.

The table is append-only; the config in force is its newest row (SPEC: ``ORDER BY created_at
DESC LIMIT 1``, ties broken by id). Routers, workers' actions and operators' commands all read
it through `fetch_current_config`, so they agree on what "current" means. To read more of a
row (per-domain settings, say), add a column to `CONFIG_COLUMNS` and a defaulted field here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

#: Never rolled out, whatever a config row says: checked in code as well as in the database.
BUILTIN_PROTECTED_DOMAINS = frozenset({"mobility", "profile", "insurance"})

#: A config row as the read model wants it: version = row id, times as epoch seconds.
CONFIG_COLUMNS = """
    id AS version, percentage::float8 AS percentage, enabled, domains, protected_domains,
    notes, created_by, extract(epoch FROM created_at)::float8 AS created_at,
    domain_overrides::text AS domain_overrides
"""

#: The newest row (the config in force), the one query for it.
CURRENT_CONFIG_SQL = f"""
SELECT {CONFIG_COLUMNS} FROM webhook_routing_config
ORDER BY webhook_routing_config.created_at DESC, id DESC LIMIT 1
"""


@dataclass(frozen=True)
class DomainSetting:
    """A rollout domain's own percentage and switch (an entry of ``domain_overrides``)."""

    percentage: float
    enabled: bool


@dataclass(frozen=True)
class RoutingConfig:
    """One row of ``webhook_routing_config``; ``version`` is the row id (0: none loaded).

    ``percentage``/``enabled`` hold for every rollout domain without an entry in
    ``domain_overrides`` (set by the three-argument SQL forms, cleared by the two-argument ones).
    """

    version: int
    percentage: float
    enabled: bool
    domains: frozenset[str] = field(default_factory=frozenset)
    protected_domains: frozenset[str] = field(default_factory=frozenset)
    created_at: float = 0.0
    #: Who and why: shown to operators, not part of what routes (NOTIFY payloads omit them).
    notes: str | None = field(default=None, compare=False)
    created_by: str | None = field(default=None, compare=False)
    domain_overrides: Mapping[str, DomainSetting] = field(default_factory=dict)
    #: Every protected name in lower case (built in and the row's): checked per webhook.
    _protected_folded: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_protected_folded", BUILTIN_PROTECTED_DOMAINS | frozenset(
            protected.lower() for protected in self.protected_domains))

    def setting_for(self, domain: str) -> DomainSetting:
        """The percentage and switch in force for one rollout domain."""
        own = self.domain_overrides.get(domain)
        return own if own is not None else DomainSetting(self.percentage, self.enabled)

    def is_protected(self, domain: str) -> bool:
        """By name in any letter case: ``/webhook/Mobility`` is still mobility's traffic."""
        return domain.lower() in self._protected_folded

    def knows(self, domain: str) -> bool:
        return domain in self.domains or self.is_protected(domain)

    @property
    def created_at_utc(self) -> datetime:
        return datetime.fromtimestamp(self.created_at, UTC)

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> RoutingConfig:
        """From a row of `CONFIG_COLUMNS` or a NOTIFY payload (``version`` or ``id``).

        Raises KeyError/TypeError/ValueError when a field is missing or malformed.
        """
        version = row["version"] if "version" in row else row["id"]
        return cls(
            version=int(version),
            percentage=float(row["percentage"]),
            enabled=bool(row["enabled"]),
            domains=_names(row["domains"]),
            protected_domains=_names(row["protected_domains"]),
            created_at=_epoch_s(row.get("created_at")),
            notes=row.get("notes"),
            created_by=row.get("created_by"),
            domain_overrides=_overrides(row.get("domain_overrides")),
        )

    def to_dict(self) -> dict[str, Any]:
        """As operators' ``--json`` shows it (domains sorted, time as ISO 8601)."""
        return {
            "version": self.version, "percentage": self.percentage, "enabled": self.enabled,
            "domains": sorted(self.domains), "protected_domains": sorted(self.protected_domains),
            "domain_overrides": {d: {"percentage": s.percentage, "enabled": s.enabled}
                                 for d, s in sorted(self.domain_overrides.items())},
            "per_domain": {d: {"percentage": s.percentage, "enabled": s.enabled}
                           for d in sorted(self.domains) for s in [self.setting_for(d)]},
            "notes": self.notes, "created_by": self.created_by,
            "created_at": self.created_at_utc.isoformat(),
        }


#: Before any config is loaded everything goes to legacy.
NO_CONFIG = RoutingConfig(version=0, percentage=0.0, enabled=False)


def _names(values: Iterable[Any] | None) -> frozenset[str]:
    return frozenset(str(v) for v in values or ())


def _overrides(raw: object) -> dict[str, DomainSetting]:
    """``{"jobs": {"percentage": 0, "enabled": false}}`` (JSON text or decoded) -> settings."""
    if raw is None:
        return {}
    decoded = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(decoded, Mapping):
        raise TypeError(f"domain_overrides must be an object, got {type(decoded).__name__}")
    settings: dict[str, DomainSetting] = {}
    for domain, value in decoded.items():
        enabled = value["enabled"]
        if not isinstance(enabled, bool):
            raise TypeError(f"domain_overrides[{domain!r}].enabled must be true or false")
        settings[str(domain)] = DomainSetting(float(value["percentage"]), enabled)
    return settings


def _epoch_s(value: object) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return datetime.fromisoformat(value).timestamp()
    return float(value or 0.0)  # type: ignore[arg-type]


async def fetch_current_config(conn: asyncpg.Connection, *,
                               timeout: float | None = None) -> RoutingConfig | None:
    """The config in force, or None when the table is empty."""
    row = await conn.fetchrow(CURRENT_CONFIG_SQL, timeout=timeout)
    return None if row is None else RoutingConfig.from_mapping(row)
