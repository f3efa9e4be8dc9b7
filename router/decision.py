"""Where a webhook goes: pure rules, identical in every router process and after restarts."""

from __future__ import annotations

from dataclasses import dataclass, field

import mmh3

from trafficlight.streams.events import Target

__all__ = ["BUCKETS", "NO_CONFIG", "RoutingConfig", "Target", "choose_target", "sticky_bucket",
           "unified_buckets"]

#: Sticky buckets: a percentage with two decimals maps exactly onto them.
BUCKETS = 10_000

#: Never rolled out, whatever a config row says: checked in code as well as in the database.
BUILTIN_PROTECTED_DOMAINS = frozenset({"mobility", "profile", "insurance"})


@dataclass(frozen=True)
class RoutingConfig:
    """One row of ``webhook_routing_config``; ``version`` is the row id (0: none loaded)."""

    version: int
    percentage: float
    enabled: bool
    domains: frozenset[str] = field(default_factory=frozenset)
    protected_domains: frozenset[str] = field(default_factory=frozenset)
    created_at: float = 0.0

    def is_protected(self, domain: str) -> bool:
        """By name in any letter case: ``/webhook/Mobility`` is still mobility's traffic."""
        folded = domain.lower()
        return folded in BUILTIN_PROTECTED_DOMAINS or any(
            folded == protected.lower() for protected in self.protected_domains)

    def knows(self, domain: str) -> bool:
        return domain in self.domains or self.is_protected(domain)


#: Before any config is loaded everything goes to legacy.
NO_CONFIG = RoutingConfig(version=0, percentage=0.0, enabled=False)


def sticky_bucket(domain: str, sticky_key: str) -> int:
    """The key's bucket in 0..9999: murmur3 of (domain, key), stable across processes."""
    return mmh3.hash(f"{domain}\x00{sticky_key}", signed=False) % BUCKETS


def unified_buckets(percentage: float) -> int:
    """How many buckets go to unified: rounded, so 12.34% is exactly 1234 buckets."""
    return max(0, min(BUCKETS, round(percentage * BUCKETS / 100)))


def choose_target(config: RoutingConfig, domain: str, sticky_key: str,
                  body_is_json: bool = True) -> Target:
    """Legacy unless the domain is an enabled rollout domain and its key's bucket is in range.

    Bucket < the unified count, so a key on unified at p% stays on unified at any higher p.
    """
    # Protected domains never leave legacy, whatever the row says.
    if config.is_protected(domain):
        return Target.LEGACY
    # Routing switched off (or no config ever loaded): everything to legacy.
    if not config.enabled:
        return Target.LEGACY
    # Not a rollout domain (unknown domains included): legacy.
    if domain not in config.domains:
        return Target.LEGACY
    # A body that is not JSON is no webhook unified knows: legacy takes whatever senders send.
    if not body_is_json:
        return Target.LEGACY
    if sticky_bucket(domain, sticky_key) < unified_buckets(config.percentage):
        return Target.UNIFIED
    return Target.LEGACY
