from __future__ import annotations

from pathlib import Path

import pytest

from trafficlight.base.errors import ConfigError
from trafficlight.streams.thresholds import Thresholds, load_thresholds


def test_spec_defaults_and_domain_overrides(tmp_path: Path) -> None:
    path = tmp_path / "strict.toml"
    path.write_text('[thresholds]\ncritical_error_pct = 0.3\n'
                    '[thresholds.domains.jobs]\ncritical_p95_ms = 2500\n'
                    '[judge]\nwindow = "2m"\nrollback_after = 3\n')
    loaded = load_thresholds(path)
    assert loaded.name == "strict"
    assert loaded.for_domain("property") == Thresholds(critical_error_pct=0.3)
    assert loaded.for_domain("jobs") == Thresholds(critical_error_pct=0.3, critical_p95_ms=2500)
    assert (loaded.settings.window_s, loaded.settings.rollback_after) == (120, 3)


@pytest.mark.parametrize(("text", "message"), [
    ("[thresholds]\ncritical_error_pct = 'high'", "critical_error_pct must be a number"),
    ("[thresholds]\nwarning_error_pct = 2", "warning_error_pct is above critical"),
    ("[thresholds]\nbogus = 1", "unknown key 'bogus'"),
    ("[judge]\nstep = 'soon'", "judge.step: not a duration"),
    ("[thresholds", "not valid TOML"),
])
def test_a_bad_file_is_one_clear_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_thresholds(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
