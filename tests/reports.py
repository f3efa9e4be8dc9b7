"""Test outcomes for fixtures: a fixture's teardown adds evidence (a worker's log) only to a
failure. The conftest's report hook fills the stash."""

from __future__ import annotations

import pytest

#: Each test's phase reports ("setup", "call", "teardown").
PHASE_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def has_failed(node: pytest.Item) -> bool:
    """Whether the test at `node` failed in setup or call (asked from fixture teardown)."""
    return any(r.failed for r in node.stash.get(PHASE_REPORTS, {}).values())
