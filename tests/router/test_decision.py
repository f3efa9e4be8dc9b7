"""The routing decision: sticky, monotone in the percentage, never unified for protected domains."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trafficlight.router.decision import (
    BUILTIN_PROTECTED_DOMAINS,
    NO_CONFIG,
    DomainSetting,
    RoutingConfig,
    choose_target,
    sticky_bucket,
    unified_buckets,
)

ROLLOUT = frozenset({"jobs", "marketplace", "property"})

percentages = st.decimals(min_value=0, max_value=100, places=2).map(float)
keys = st.text(min_size=1, max_size=40)
domains = st.sampled_from(sorted(ROLLOUT))


def rollout(percentage: float, enabled: bool = True, **extra: frozenset[str]) -> RoutingConfig:
    return RoutingConfig(version=7, percentage=percentage, enabled=enabled, domains=ROLLOUT,
                         protected_domains=frozenset({"mobility", "profile", "insurance"}),
                         **extra)


@given(domain=domains, key=keys, percentage=percentages, other_version=st.integers(1, 10**6))
def test_a_key_gets_the_same_target_whatever_the_config_version(
        domain: str, key: str, percentage: float, other_version: int) -> None:
    config = rollout(percentage)
    same_row_again = RoutingConfig(other_version, percentage, True, ROLLOUT,
                                   config.protected_domains)
    assert choose_target(config, domain, key) == choose_target(same_row_again, domain, key)


def test_buckets_are_pinned_so_every_release_agrees() -> None:
    # murmur3 x86_32, seed 0, unsigned, of "domain\0key", modulo 10,000: a change here would
    # move senders between targets in the middle of a rollout.
    assert sticky_bucket("jobs", "abc") == 9609


def test_another_process_with_another_hash_seed_computes_the_same_buckets() -> None:
    probe = ("from trafficlight.router.decision import sticky_bucket as b; "
             "print(b('property', 'wa-4917612345'))")
    other = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert int(other.stdout) == sticky_bucket("property", "wa-4917612345")


@given(domain=domains, key=keys, low=percentages, high=percentages)
def test_a_key_on_unified_stays_on_unified_at_any_higher_percentage(
        domain: str, key: str, low: float, high: float) -> None:
    low, high = min(low, high), max(low, high)
    if choose_target(rollout(low), domain, key) == "unified":
        assert choose_target(rollout(high), domain, key) == "unified"


@given(domain=st.sampled_from(sorted(BUILTIN_PROTECTED_DOMAINS)), key=keys,
       percentage=percentages)
def test_builtin_protected_domains_stay_on_legacy_even_if_a_row_rolls_them_out(
        domain: str, key: str, percentage: float) -> None:
    careless_row = RoutingConfig(9, percentage, True, ROLLOUT | {domain}, frozenset())
    assert choose_target(careless_row, domain, key) == "legacy"


@given(key=keys, percentage=percentages)
def test_a_domain_the_row_protects_stays_on_legacy(key: str, percentage: float) -> None:
    config = RoutingConfig(9, percentage, True, ROLLOUT, frozenset({"jobs"}))
    assert choose_target(config, "jobs", key) == "legacy"


@given(key=keys, percentage=percentages,
       spelling=st.sampled_from(["jobs", "JOBS", "Jobs"]), row_spelling=st.sampled_from(
           ["jobs", "JOBS", "Jobs"]))
def test_a_protected_domain_stays_on_legacy_in_any_letter_case(
        key: str, percentage: float, spelling: str, row_spelling: str) -> None:
    config = RoutingConfig(9, percentage, True, ROLLOUT | {spelling}, frozenset({row_spelling}))
    assert choose_target(config, spelling, key) == "legacy"
    assert config.knows(spelling)


@given(domain=domains, key=keys, percentage=percentages)
def test_disabled_routing_sends_everything_to_legacy(
        domain: str, key: str, percentage: float) -> None:
    assert choose_target(rollout(percentage, enabled=False), domain, key) == "legacy"


@given(domain=domains, key=keys)
def test_no_config_loaded_sends_everything_to_legacy(domain: str, key: str) -> None:
    assert choose_target(NO_CONFIG, domain, key) == "legacy"


@given(key=keys)
def test_a_domain_outside_the_rollout_goes_to_legacy(key: str) -> None:
    assert choose_target(rollout(100), "newsletter", key) == "legacy"


@given(domain=domains, key=keys)
def test_the_ends_of_the_range_are_all_or_nothing(domain: str, key: str) -> None:
    assert choose_target(rollout(0), domain, key) == "legacy"
    assert choose_target(rollout(100), domain, key) == "unified"


@pytest.mark.parametrize(("percentage", "buckets"), [
    (0, 0), (0.01, 1), (12.34, 1234), (33.33, 3333), (50, 5000), (99.99, 9999), (100, 10_000),
])
def test_a_two_decimal_percentage_maps_onto_exact_buckets(percentage: float, buckets: int) -> None:
    assert unified_buckets(percentage) == buckets


@pytest.mark.parametrize("percentage", [1, 5, 10, 25, 50, 90])
@pytest.mark.parametrize("domain", sorted(ROLLOUT))
def test_over_100_000_keys_the_split_is_within_one_point(domain: str, percentage: float) -> None:
    config = rollout(percentage)
    unified = sum(choose_target(config, domain, f"sender-{i}") == "unified"
                  for i in range(100_000))
    assert abs(unified / 1000 - percentage) <= 1.0


@given(domain=domains, key=keys)
def test_a_body_that_is_not_json_goes_to_legacy_even_at_100_percent(domain: str, key: str) -> None:
    assert choose_target(rollout(100), domain, key, body_is_json=False) == "legacy"


# --- per-domain settings --------------------------------------------------------------------

def test_a_domain_switched_off_alone_goes_to_legacy_while_the_others_route() -> None:
    config = RoutingConfig(7, 100.0, True, ROLLOUT, frozenset({"mobility"}),
                           domain_overrides={"jobs": DomainSetting(100.0, False)})

    assert choose_target(config, "jobs", "k") == "legacy"
    assert choose_target(config, "marketplace", "k") == "unified"


def test_a_domain_switched_on_alone_routes_while_routing_is_off_for_the_others() -> None:
    config = RoutingConfig(7, 0.0, False, ROLLOUT, frozenset({"mobility"}),
                           domain_overrides={"property": DomainSetting(100.0, True)})

    assert choose_target(config, "property", "k") == "unified"
    assert choose_target(config, "jobs", "k") == "legacy"


@given(domain=domains, key=keys, percentage=percentages, own=percentages)
def test_a_domain_with_its_own_percentage_routes_exactly_as_a_config_of_that_percentage(
        domain: str, key: str, percentage: float, own: float) -> None:
    overridden = RoutingConfig(7, percentage, True, ROLLOUT, frozenset(),
                               domain_overrides={domain: DomainSetting(own, True)})

    assert choose_target(overridden, domain, key) == choose_target(rollout(own), domain, key)


@given(key=keys, own=percentages)
def test_an_override_never_routes_a_protected_domain(key: str, own: float) -> None:
    config = RoutingConfig(7, 100.0, True, ROLLOUT | {"mobility"}, frozenset(),
                           domain_overrides={"mobility": DomainSetting(own, True)})

    assert choose_target(config, "mobility", key) == "legacy"
