"""The filters a run reads new Kafka messages with: only what is above the watermark."""

from __future__ import annotations

from clientpipelines.runner.watermark import new_offsets_filters


def test_first_run_reads_everything() -> None:
    assert new_offsets_filters([]) == ["true"]


def test_one_partition_reads_above_its_watermark_and_any_new_partition() -> None:
    assert new_offsets_filters([(0, 41)]) == [
        "_partition_id = 0 and _partition_offset > 41",
        "_partition_id > 0",
    ]


def test_partitions_never_loaded_are_read_whole_without_not_in() -> None:
    filters = new_offsets_filters([(3, 7), (0, 5)])
    assert filters == [
        "_partition_id = 0 and _partition_offset > 5",
        "_partition_id = 3 and _partition_offset > 7",
        "_partition_id = 1",
        "_partition_id = 2",
        "_partition_id > 3",
    ]
    # The kafka connector prunes on = and > only; <>, NOT IN and OR read the topic.
    assert not any(word in f for f in filters for word in ("<>", "not in", " or "))
