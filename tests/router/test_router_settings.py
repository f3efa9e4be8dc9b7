"""The [router] table: documented defaults, and one clear line for each mistake."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trafficlight.base.errors import ConfigError
from trafficlight.router.settings import RouterSettings, load_settings

MINIMAL = """
[router]
legacy_url = "http://legacy:8000/webhook/{domain}"
unified_url = "http://unified:9000/hooks"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "router.toml"
    path.write_text(text)
    return path


def test_a_minimal_file_gets_the_documented_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    assert (settings.host, settings.port, settings.max_body_bytes) == ("0.0.0.0", 8080, 1 << 20)
    assert (settings.batch_max_events, settings.batch_linger_s) == (250, 0.05)
    assert settings.events_topic == "webhook-routing-events"


def test_processes_default_to_one_per_usable_core(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.processes == "auto"
    assert settings.process_count == len(os.sched_getaffinity(0))
    assert load_settings(write(tmp_path, MINIMAL + "processes = 3\n")).process_count == 3


def test_the_domain_is_put_into_url_templates(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.upstream_url("legacy", "jobs") == "http://legacy:8000/webhook/jobs"
    assert settings.upstream_url("unified", "jobs") == "http://unified:9000/hooks"


def test_integers_are_accepted_for_seconds(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL + "upstream_timeout_s = 3\nport = 9001\n"))
    assert (settings.upstream_timeout_s, settings.port) == (3.0, 9001)


@pytest.mark.parametrize(("extra", "message"), [
    ("prot = 1\n", "unknown keys: prot"),
    ('port = "8080"\n', "port has the wrong type"),
    ("max_body_bytes = 0\n", "max_body_bytes must be positive"),
    ("batch_linger_s = true\n", "batch_linger_s has the wrong type"),
    ("reuse_port = 1\n", "reuse_port has the wrong type"),
    ('processes = "many"\n', "processes must be"),
    ("processes = 0\n", "processes must be"),
    ("max_headers = 0\n", "max_headers must be positive"),
])
def test_a_mistake_is_one_clear_line(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, MINIMAL + extra))


def test_the_upstream_urls_are_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unified_url is required"):
        load_settings(write(tmp_path, '[router]\nlegacy_url = "http://l/{domain}"\n'))


def test_a_file_without_a_router_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no \[router\] table"):
        load_settings(write(tmp_path, "[thresholds]\nwarning_error_pct = 0.1\n"))


def test_an_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ConfigError, match="legacy_url must be an http"):
        RouterSettings(legacy_url="legacy:8000", unified_url="http://u")
