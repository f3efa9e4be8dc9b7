"""Fixtures of the worker's integration tests."""

from __future__ import annotations

import pytest

from tests.streams.worker_harness import WorkerTopics


@pytest.fixture
def worker_topics() -> WorkerTopics:
    """This test's own topics and app id."""
    return WorkerTopics.fresh()
