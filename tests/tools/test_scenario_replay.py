"""A generated scenario replays cleanly and its labelled incidents are judged as labelled."""

from __future__ import annotations

import re
from pathlib import Path

from tests.tools.conftest import RunCli


async def test_replay_detects_each_generated_incident(run_cli: RunCli, tmp_path: Path) -> None:
    scenario = tmp_path / "hour.jsonl.gz"
    made = await run_cli(
        "simulate", "--out", str(scenario), "--start", "2026-11-28T12:00Z", "--duration", "1h",
        "--volume-scale", "100", "--percentage", "50", "--seed", "2",
        "--incident", "error_spike:jobs@10m/5m", "--incident", "latency_creep:marketplace@20m/20m",
        "--incident", "outage:property@45m/5m", env={}, timeout_s=600,
    )
    assert made.exit_code == 0, made.stderr

    # Generous timeouts: the machine may be busy; nothing here measures speed.
    result = await run_cli("replay", "--input", str(scenario), "--format", "table", env={},
                           timeout_s=600)

    assert result.exit_code == 0, result.stderr
    assert "skipped" not in result.stderr
    rows = dict(re.findall(r"^(\S+ \(\w+\) -> \w+)\s*\|\s*(.+?)\s*$", result.stdout, re.M))
    detect_s = {name.split(" ")[0].rsplit("-", 1)[0]: (name.rsplit(" ", 1)[1], value)
                for name, value in rows.items()}
    # Event-time seconds from the incident's start to the decision. At ~7 unified requests a
    # second, 5 % errors give ~0.35 errors/s: the judge sees them within a minute.
    spike_decision, spike_after = detect_s["error-spike-jobs"]
    assert spike_decision == "rollback" and float(spike_after.removesuffix(" s")) <= 60
    creep_decision, creep_after = detect_s["latency-creep-marketplace"]
    assert creep_decision == "rollback" and float(creep_after.removesuffix(" s")) < 20 * 60
    assert detect_s["shared-outage-property"][0] == "hold"
