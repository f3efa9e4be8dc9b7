"""`trafficlight demo-knob` without a running demo: one clear line, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from trafficlight.base import settings
from trafficlight.cli import main


def test_without_a_running_demo_it_says_how_to_start_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(settings, "STATE_DIR", tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["demo-knob", "unified", "--error-pct", "5"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "start `trafficlight demo`" in err


def test_a_change_needs_a_target(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo-knob", "--error-pct", "5"])
    assert exit_info.value.code == 2
    assert "name the TARGET" in capsys.readouterr().err
