from __future__ import annotations

from pathlib import Path

import pytest

from trafficlight.base.errors import ConfigError
from trafficlight.streams.thresholds import Thresholds, ThresholdSet, load_thresholds


def test_spec_defaults_and_domain_overrides(tmp_path: Path) -> None:
    path = tmp_path / "strict.toml"
    path.write_text('[thresholds]\ncritical_error_pct = 0.3\n'
                    '[thresholds.domains.jobs]\ncritical_p95_ms = 2500\n'
                    '[judge]\nwindow = "2m"\n')
    loaded = load_thresholds(path)
    assert loaded.name == "strict"
    assert loaded.for_domain("property") == Thresholds(critical_error_pct=0.3)
    assert loaded.for_domain("jobs") == Thresholds(critical_error_pct=0.3, critical_p95_ms=2500)
    assert loaded.settings.window_s == 120


@pytest.mark.parametrize(("text", "message"), [
    ("[thresholds]\ncritical_error_pct = 'high'", "critical_error_pct must be a number"),
    ("[thresholds]\nwarning_error_pct = 2", "warning_error_pct is above critical"),
    ("[thresholds]\nbogus = 1", "unknown key 'bogus'"),
    ("[judge]\nstep = 'soon'", "judge.step: not a duration"),
    ("[judge]\ndispersion_min_hits = -1", "judge.dispersion_min_hits must be a number >= 0"),
    ("[judge]\ntemper_bursts = 1", "judge.temper_bursts must be true or false"),
    ("[thresholds", "not valid TOML"),
])
def test_a_bad_file_is_one_clear_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_thresholds(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_keys_of_the_judge_before_sequential_evidence_are_accepted_and_ignored(
        tmp_path: Path) -> None:
    path = tmp_path / "old.toml"
    path.write_text("[thresholds]\nmin_requests = 50\nconfidence_z = 2.5\n"
                    '[judge]\nrollback_after = 3\nfast_window = "10s"\n')

    assert load_thresholds(path) == ThresholdSet("old")


def test_the_burst_tempering_is_set_under_judge(tmp_path: Path) -> None:
    path = tmp_path / "bursts.toml"
    path.write_text("[judge]\ntemper_bursts = false\ndispersion_prior_hits = 40\n"
                    "dispersion_min_hits = 25\n")
    settings = load_thresholds(path).settings
    assert not settings.temper_bursts
    assert (settings.dispersion_prior_hits, settings.dispersion_min_hits) == (40.0, 25.0)
