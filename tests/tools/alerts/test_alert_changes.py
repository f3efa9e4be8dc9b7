"""What counts as news on the verdict topic, and the Slack message for it (pure, no services)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trafficlight.streams.verdicts import Verdict
from trafficlight.tools.alerts.changes import (
    BadVerdict,
    ChangeDetector,
    check_verdict,
    slack_message,
)
from trafficlight.tools.alerts.delivery import RetryPolicy


def verdict(window_end: float, state: str = "healthy", decision: str = "proceed",
            domain: str = "jobs", routed_to: str = "unified") -> Verdict:
    return Verdict.from_dict({
        "domain": domain, "routed_to": routed_to, "window_start": window_end - 300,
        "window_end": window_end, "requests": 600, "errors": 30, "error_pct": 5.0,
        "p50_ms": 80.0, "p95_ms": 240.0, "p99_ms": 410.0, "verdict": state,
        "decision": decision, "reasons": ["error 5.00% >= 0.5%"]})


def test_a_repeated_verdict_is_not_news() -> None:
    detector = ChangeDetector()
    detector.observe(verdict(1, "warning", "hold"))
    assert detector.observe(verdict(2, "warning", "hold")) is None


def test_a_changed_verdict_is_news_with_what_it_was() -> None:
    detector = ChangeDetector()
    detector.observe(verdict(1))
    change = detector.observe(verdict(2, "critical", "hold"))
    assert change is not None
    assert change.previous == ("healthy", "proceed")


def test_a_changed_decision_alone_is_news() -> None:
    detector = ChangeDetector()
    detector.observe(verdict(1, "critical", "hold"))
    assert detector.observe(verdict(2, "critical", "rollback")) is not None


def test_a_redelivered_older_verdict_is_ignored() -> None:
    detector = ChangeDetector()
    detector.observe(verdict(1))
    detector.observe(verdict(2, "critical", "rollback"))
    assert detector.observe(verdict(1)) is None  # a rebalance re-read it
    assert detector.observe(verdict(2, "critical", "rollback")) is None


def test_targets_are_tracked_apart() -> None:
    detector = ChangeDetector()
    detector.observe(verdict(1, domain="jobs"))
    assert detector.observe(verdict(2, "critical", "hold", domain="property")) is not None


@pytest.mark.parametrize(("state", "decision", "alerted"), [
    ("healthy", "proceed", False),
    ("insufficient_data", "hold", False),
    ("warning", "hold", True),
    ("critical", "rollback", True),
    ("insufficient_data", "rollback", True),  # a rollback still standing after a restart
])
def test_first_sighting_alerts_only_a_problem(state: str, decision: str, alerted: bool) -> None:
    assert (ChangeDetector().observe(verdict(1, state, decision)) is not None) is alerted


@given(st.lists(st.tuples(st.sampled_from(["healthy", "warning", "critical"]),
                          st.sampled_from(["proceed", "hold", "rollback"])), max_size=40))
def test_alerts_equal_the_number_of_state_changes(states: list[tuple[str, str]]) -> None:
    detector = ChangeDetector()
    alerts = sum(detector.observe(verdict(i + 1, s, d)) is not None
                 for i, (s, d) in enumerate(states))
    changes = sum(1 for a, b in itertools.pairwise(states) if a != b)
    first_is_loud = bool(states) and (states[0][0] != "healthy" or states[0][1] == "rollback")
    assert alerts == changes + first_is_loud


@pytest.mark.parametrize(("bad", "message"), [
    ([1, 2], "JSON object"),
    ({**verdict(1).to_dict(), "verdict": "purple"}, "verdict must be one of"),
    ({**verdict(1).to_dict(), "decision": None}, "decision must be one of"),
    ({**verdict(1).to_dict(), "domain": ""}, "domain must be"),
    ({**verdict(1).to_dict(), "window_end": "yesterday"}, "window_end"),
])
def test_malformed_verdicts_are_refused_with_a_reason(bad: object, message: str) -> None:
    with pytest.raises(BadVerdict, match=message):
        check_verdict(bad)


def test_slack_message_has_text_colour_and_figures() -> None:
    detector = ChangeDetector()
    detector.observe(verdict(1))
    message = slack_message(detector.observe(verdict(2, "critical", "rollback")))
    assert message["text"] == (":red_circle: trafficlight jobs/unified: critical -> rollback "
                               "(was healthy / proceed)")
    attachment = message["attachments"][0]
    assert attachment["color"] == "#e01e5a"
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields == {"requests": "600", "error %": "5.00 %", "P95": "240 ms", "P99": "410 ms",
                      "why": "error 5.00% >= 0.5%"}


@pytest.mark.parametrize(("failed", "retry_after", "delay"), [
    (1, None, 0.5), (2, None, 1.0), (3, None, 2.0), (10, None, 30.0), (1, 7.0, 7.0),
    (1, 900.0, 30.0),
])
def test_backoff_doubles_up_to_a_cap_and_honours_retry_after(
        failed: int, retry_after: float | None, delay: float) -> None:
    assert RetryPolicy().delay_s(failed, retry_after) == delay


def test_the_domain_decision_on_a_legacy_row_is_not_news() -> None:
    detector = ChangeDetector()
    detector.observe(verdict(1, "insufficient_data", "hold", routed_to="legacy"))
    assert detector.observe(verdict(2, "insufficient_data", "rollback", routed_to="legacy")) is None
    assert detector.observe(verdict(3, "insufficient_data", "rollback", routed_to="unified"))


def test_a_legacy_row_is_news_when_the_baseline_itself_changes() -> None:
    detector = ChangeDetector()
    assert detector.observe(verdict(1, "insufficient_data", "rollback", routed_to="legacy")) is None
    assert detector.observe(verdict(2, "critical", "rollback", routed_to="legacy")) is not None


def _mismatch_hold(window_end: float) -> Verdict:
    v = verdict(window_end, "insufficient_data", "hold")
    return Verdict.from_dict({**v.to_dict(), "rule": "sample_ratio_mismatch", "reasons": [
        "sample ratio: unified 312/10000 (3.1%) of requests vs 10% configured "
        "(e-value 2.34e+21 >= 1e+03)"]})


def test_a_sample_ratio_mismatch_is_news_even_when_the_domain_was_already_holding() -> None:
    detector = ChangeDetector()
    detector.observe(verdict(1, "insufficient_data", "hold"))
    change = detector.observe(_mismatch_hold(2))
    assert change is not None and change.previous == ("insufficient_data", "hold")
    assert "sample ratio: unified 312/10000" in slack_message(change)["attachments"][0][
        "fields"][-1]["value"]
    assert detector.observe(_mismatch_hold(3)) is None
    # The routing is put right: the end of the mismatch is news too.
    assert detector.observe(verdict(4, "insufficient_data", "hold")) is not None


def test_a_first_sighting_of_a_mismatch_is_alerted() -> None:
    assert ChangeDetector().observe(_mismatch_hold(1)) is not None
