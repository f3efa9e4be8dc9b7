"""deploy/prometheus-alerts.yml: valid rules over metric names the worker really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from trafficlight.streams.metrics import PartitionPosition, WorkerFigures, WorkerMetrics
from trafficlight.streams.partition import PartitionCounters
from trafficlight.streams.verdicts import Verdict

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus-alerts.yml"


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_rule_is_a_named_alert_with_an_expression_and_a_summary() -> None:
    rules = _rules()
    assert rules
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
        assert re.fullmatch(r"Trafficlight[A-Za-z]+", rule["alert"])
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"])


def _exported_names() -> set[str]:
    """Sample names a worker's registry renders (figures of one partition, one verdict)."""
    metrics = WorkerMetrics(WorkerFigures(
        counters=PartitionCounters, positions=lambda: [PartitionPosition(0, 4, 5)],
        last_rollback_s=lambda: {"jobs": 1.0}))
    metrics.observe_verdicts([Verdict("jobs", "unified", 0.0, 300.0, 100, 0, 0.0, 1.0, 2.0,
                                      3.0, "healthy", "proceed", ())])
    metrics.observe_apply(0.001)
    text = generate_latest(metrics.registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_rules_name_only_metrics_the_worker_exports() -> None:
    exported = _exported_names()
    for rule in _rules():
        for name in re.findall(r"trafficlight_worker_[a-z_]+", rule["expr"]):
            assert name in exported, name


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
