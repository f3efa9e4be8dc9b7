"""Where a webhook goes: pure rules, identical in every router process and after restarts."""

from __future__ import annotations

import mmh3

from trafficlight.base.routing_config import (
    BUILTIN_PROTECTED_DOMAINS,
    NO_CONFIG,
    DomainSetting,
    RoutingConfig,
)
from trafficlight.streams.events import Target

__all__ = ["BUCKETS", "BUILTIN_PROTECTED_DOMAINS", "NO_CONFIG", "DomainSetting",
           "RoutingConfig", "Target", "choose_target", "sticky_bucket", "unified_buckets"]

#: Sticky buckets: a percentage with two decimals maps exactly onto them.
BUCKETS = 10_000


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
    # Not a rollout domain (unknown domains included): legacy.
    if domain not in config.domains:
        return Target.LEGACY
    # The domain's own setting when it has one, else the all-domains one.
    setting = config.setting_for(domain)
    # Routing switched off for this domain (or no config ever loaded): legacy.
    if not setting.enabled:
        return Target.LEGACY
    # A body that is not JSON is no webhook unified knows: legacy takes whatever senders send.
    if not body_is_json:
        return Target.LEGACY
    if sticky_bucket(domain, sticky_key) < unified_buckets(setting.percentage):
        return Target.UNIFIED
    return Target.LEGACY
