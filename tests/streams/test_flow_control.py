"""The worker's flow control: a resume clears the streams' buffers only after a suspension
(Faust's redundant resume after its seek dropped a record of every restart)."""

from __future__ import annotations

from mode.utils.queues import FlowControlQueue

from trafficlight.streams.app import ClearOnlyAfterSuspend


def _queue_with(flow: ClearOnlyAfterSuspend, *items: int) -> FlowControlQueue:
    queue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    for item in items:
        queue.put_nowait(item)
    return queue


def test_a_resume_while_flowing_keeps_the_records_delivered() -> None:
    flow = ClearOnlyAfterSuspend()
    flow.resume()
    queue = _queue_with(flow, 12, 13)

    flow.resume()

    assert [queue.get_nowait(), queue.get_nowait()] == [12, 13]


def test_a_resume_after_a_suspension_clears_what_the_old_assignment_delivered() -> None:
    flow = ClearOnlyAfterSuspend()
    flow.resume()
    queue = _queue_with(flow, 12, 13)
    flow.suspend()

    flow.resume()

    assert queue.empty()
    assert flow.is_active()
