from __future__ import annotations

from aiokafka import TopicPartition as AioTopicPartition
from faust.types import TP

from trafficlight.streams.recovery_guard import stalled_partitions

CL0, CL1 = TP("judge-state-changelog", 0), TP("judge-state-changelog", 1)


def test_a_partition_behind_that_got_nothing_since_the_start_is_sought_to_its_start() -> None:
    stalled = stalled_partitions(started_s=100.0, remaining={CL0: 39}, received_s={},
                                 offsets={CL0: -1}, now_s=110.0, stall_s=10.0)
    assert stalled == {CL0: 0}


def test_a_partition_that_stopped_getting_records_is_sought_where_recovery_stands() -> None:
    stalled = stalled_partitions(started_s=100.0, remaining={CL0: 12}, received_s={CL0: 103.0},
                                 offsets={CL0: 27}, now_s=113.5, stall_s=10.0)
    assert stalled == {CL0: 27}


def test_a_partition_that_got_a_record_within_the_stall_time_is_left_alone() -> None:
    stalled = stalled_partitions(started_s=100.0, remaining={CL0: 12}, received_s={CL0: 104.0},
                                 offsets={CL0: 27}, now_s=113.5, stall_s=10.0)
    assert stalled == {}


def test_a_partition_at_its_highwater_is_never_stalled() -> None:
    stalled = stalled_partitions(started_s=100.0, remaining={CL0: 0, CL1: 5}, received_s={},
                                 offsets={CL0: 39, CL1: 3}, now_s=200.0, stall_s=10.0)
    assert stalled == {CL1: 3}


def test_nothing_is_stalled_outside_a_recovery() -> None:
    assert stalled_partitions(started_s=None, remaining={CL0: 39}, received_s={},
                              offsets={CL0: -1}, now_s=1e6) == {}


def test_stalled_partitions_are_faust_topic_partitions_whatever_the_input() -> None:
    aiokafka_tp = AioTopicPartition("judge-state-changelog", 0)
    stalled = stalled_partitions(started_s=100.0, remaining={aiokafka_tp: 3}, received_s={},
                                 offsets={aiokafka_tp: 4}, now_s=120.0)
    assert [type(tp) for tp in stalled] == [TP]
    assert stalled == {CL0: 4}
