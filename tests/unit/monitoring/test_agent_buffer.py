"""The agent's disk buffer hands the centre every sample of an outage, in order and once, across
restarts and power cuts, and stays within its size bound by giving up the oldest."""

from __future__ import annotations

from pathlib import Path

import pytest

from medcloud.monitoring.agent.buffer import SampleBuffer
from medcloud.monitoring.domain.samples import Metric, Sample, SeriesKey

ROOM = SeriesKey.of(Metric.TEMPERATURE_CELSIUS, "centre-1", "node-7")
LIGHT = SeriesKey.of(Metric.ILLUMINANCE_LUX, "centre-1", "node-7", area="machine-room")


def samples(count: int, start_at: float = 1_764_150_000.0) -> list[Sample]:
    return [Sample(ROOM if i % 2 else LIGHT, start_at + i, 20.0 + i / 8) for i in range(count)]


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.segment"))


def bytes_on_disk(directory: Path, count: int) -> int:
    """What a batch of `count` samples takes, measured with a buffer of its own."""
    with SampleBuffer(directory) as probe:
        probe.append(samples(count))
        return probe.size_bytes


# A segment per append: every batch is a segment of its own.
ONE_BATCH = 1


def test_append_numbers_samples_from_one_and_keeps_what_they_measured(tmp_path):
    with SampleBuffer(tmp_path) as buffer:
        numbered = buffer.append(samples(3))
        assert [sample.sequence for sample in numbered] == [1, 2, 3]
        assert [(s.series, s.observed_at, s.value) for s in numbered] == [
            (s.series, s.observed_at, s.value) for s in samples(3)
        ]
        assert buffer.last_sequence == 3 and buffer.pending_count == 3


def test_after_a_restart_pending_is_what_was_appended_and_not_acknowledged_in_order(tmp_path):
    with SampleBuffer(tmp_path) as buffer:
        appended = buffer.append(samples(5)) + buffer.append(samples(5, start_at=2e9))
        buffer.acknowledge(3)
    with SampleBuffer(tmp_path) as reopened:
        assert reopened.acknowledged_sequence == 3
        assert reopened.pending_count == 7
        assert reopened.pending(100) == appended[3:]
        assert reopened.append(samples(1))[0].sequence == 11


def test_pending_after_streams_the_backlog_in_batches_while_samples_keep_arriving(tmp_path):
    with SampleBuffer(tmp_path, segment_bytes=ONE_BATCH) as buffer:
        appended = [sample for _ in range(5) for sample in buffer.append(samples(10))]
        sent: list[Sample] = []
        while batch := buffer.pending_after(sent[-1].sequence if sent else 0, 7):
            sent.extend(batch)
            if len(sent) == 21:
                appended += buffer.append(samples(10))
        assert sent == appended


def test_acknowledging_deletes_finished_segments_and_survives_a_restart(tmp_path):
    with SampleBuffer(tmp_path, segment_bytes=ONE_BATCH) as buffer:
        for _ in range(10):
            buffer.append(samples(10))
        before = segment_files(tmp_path)
        buffer.acknowledge(95)
        after = segment_files(tmp_path)
        assert len(after) == 1 and len(before) == 10
        assert [s.sequence for s in buffer.pending(100)] == [96, 97, 98, 99, 100]
    with SampleBuffer(tmp_path) as reopened:
        assert reopened.acknowledged_sequence == 95
        assert [s.sequence for s in reopened.pending(100)] == [96, 97, 98, 99, 100]


def test_a_late_or_repeated_acknowledgement_changes_nothing(tmp_path):
    with SampleBuffer(tmp_path) as buffer:
        buffer.append(samples(4))
        buffer.acknowledge(3)
        buffer.acknowledge(2)
        buffer.acknowledge(3)
        assert buffer.acknowledged_sequence == 3 and buffer.pending_count == 1


def test_acknowledging_beyond_what_was_appended_is_refused(tmp_path):
    with SampleBuffer(tmp_path) as buffer:
        buffer.append(samples(2))
        with pytest.raises(ValueError, match="cannot acknowledge sequence 3: the last"):
            buffer.acknowledge(3)
        assert buffer.acknowledged_sequence == 0


def test_no_sequence_is_reused_once_everything_was_acknowledged_and_deleted(tmp_path):
    with SampleBuffer(tmp_path) as buffer:
        buffer.append(samples(6))
        buffer.acknowledge(6)
        assert segment_files(tmp_path) == [] and buffer.pending(10) == []
    with SampleBuffer(tmp_path) as reopened:
        assert reopened.last_sequence == 6
        assert [s.sequence for s in reopened.append(samples(2))] == [7, 8]


def test_a_torn_last_record_is_ignored_and_the_next_append_still_lands(tmp_path):
    with SampleBuffer(tmp_path) as buffer:
        kept = buffer.append(samples(4))
    [segment] = segment_files(tmp_path)
    whole = segment.read_bytes()
    last_line_starts = whole.rstrip(b"\n").rfind(b"\n") + 1
    # A power cut in the middle of writing record 4.
    segment.write_bytes(whole[: last_line_starts + (len(whole) - last_line_starts) // 2])
    with SampleBuffer(tmp_path) as reopened:
        assert reopened.last_sequence == 3
        assert reopened.pending(10) == kept[:3]
        added = reopened.append(samples(2, start_at=2e9))
        assert [s.sequence for s in added] == [4, 5]
        assert reopened.pending(10) == kept[:3] + added
    with SampleBuffer(tmp_path) as again:
        assert again.pending(10) == kept[:3] + added


def test_a_damaged_record_inside_a_segment_is_skipped_and_counted_out(tmp_path):
    with SampleBuffer(tmp_path) as buffer:
        kept = buffer.append(samples(5))
    [segment] = segment_files(tmp_path)
    lines = segment.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"[3,", b"[9,")  # the checksum no longer matches
    segment.write_bytes(b"\n".join(lines))
    with SampleBuffer(tmp_path) as reopened:
        assert reopened.pending(10) == kept[:2] + kept[3:]
        assert reopened.pending_count == 4
        reopened.acknowledge(3)
        assert reopened.pending_count == 2


def test_the_size_bound_drops_the_oldest_segments_and_counts_what_it_dropped(tmp_path):
    max_bytes = bytes_on_disk(tmp_path / "probe", 5) * 9 // 2
    directory = tmp_path / "buffer"
    with SampleBuffer(directory, max_bytes, segment_bytes=ONE_BATCH) as buffer:
        appended = []
        for _ in range(20):
            appended += buffer.append(samples(5))
        assert buffer.size_bytes <= max_bytes
        kept = buffer.pending(1000)
        assert kept == appended[-len(kept) :]
        assert buffer.dropped_samples == 100 - len(kept) > 0
        assert buffer.pending_count == len(kept)
        assert buffer.pending_after(0, 1000) == kept
    with SampleBuffer(directory, max_bytes, segment_bytes=ONE_BATCH) as reopened:
        assert reopened.dropped_samples == 100 - len(kept)
        assert reopened.pending(1000) == kept
        assert reopened.append(samples(1))[0].sequence == 101


def test_samples_acknowledged_before_the_drop_are_not_counted_as_dropped(tmp_path):
    max_bytes = bytes_on_disk(tmp_path / "probe", 12) * 5 // 2
    with SampleBuffer(tmp_path / "buffer", max_bytes, segment_bytes=ONE_BATCH) as buffer:
        buffer.append(samples(12))
        buffer.acknowledge(4)
        buffer.append(samples(12))
        buffer.append(samples(12))
        assert buffer.dropped_samples == 8


def test_a_second_process_cannot_open_the_same_buffer(tmp_path):
    with SampleBuffer(tmp_path), pytest.raises(RuntimeError, match="in use by another agent"):
        SampleBuffer(tmp_path)


def test_a_bound_smaller_than_a_segment_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"max_bytes \(100\) must be at least segment_bytes"):
        SampleBuffer(tmp_path, max_bytes=100, segment_bytes=1_000)


def test_a_failed_write_leaves_no_half_batch_and_its_numbers_are_not_given_again(
    tmp_path, monkeypatch
):
    with SampleBuffer(tmp_path) as buffer:
        first = buffer.append(samples(3))

        def disk_failure(descriptor: int) -> None:
            raise OSError(28, "No space left on device")

        with monkeypatch.context() as patched:
            patched.setattr("os.fdatasync", disk_failure)
            with pytest.raises(OSError, match="No space left"):
                buffer.append(samples(3))
        later = buffer.append(samples(2))
        assert [s.sequence for s in later] == [7, 8]
        assert buffer.pending(10) == first + later
    with SampleBuffer(tmp_path) as reopened:
        assert reopened.pending(10) == first + later


def test_a_batch_with_a_value_that_is_not_finite_is_refused_whole(tmp_path):
    broken = [*samples(2), Sample(ROOM, 1_764_150_002.0, float("nan"))]
    with SampleBuffer(tmp_path) as buffer:
        with pytest.raises(ValueError, match=r"samples\[2\] \(room.temperature_celsius\)"):
            buffer.append(broken)
        assert buffer.last_sequence == 0 and buffer.pending(10) == []
