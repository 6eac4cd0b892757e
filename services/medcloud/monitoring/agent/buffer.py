"""The agent's durable queue of samples on local disk, numbered in the order they were taken, so
the centre can be backfilled with every sample of an outage, once each and in order."""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import functools
import json
import logging
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medcloud.monitoring.domain.samples import Sample, SeriesKey

log = logging.getLogger(__name__)

MIB = 1024 * 1024

_STATE_FILE = "state.json"
_LOCK_FILE = "lock"
_SEGMENT_SUFFIX = ".segment"
# A record is one line: eight hex digits of the CRC-32 of the payload, a space, the payload (a JSON
# array [sequence, metric, centre_id, node_id, {labels}, observed_at, value]) and a newline. A line
# cut short by a power failure, or otherwise damaged, fails the checksum and is skipped.
_CHECKSUM_DIGITS = 8


@dataclass
class _Segment:
    """One append-only file of records, named after the first sequence it was opened for."""

    path: Path
    first_sequence: int
    last_sequence: int
    size_bytes: int
    # Sequences between first and last whose records were damaged on disk: rare, and counted so
    # that `pending_count` stays exact.
    missing_sequences: tuple[int, ...] = ()

    def count_after(self, sequence: int) -> int:
        lowest = max(self.first_sequence, sequence + 1)
        if lowest > self.last_sequence:
            return 0
        missing = sum(1 for gap in self.missing_sequences if gap >= lowest)
        return self.last_sequence - lowest + 1 - missing


@functools.lru_cache(maxsize=4096)
def _series_json(series: SeriesKey) -> str:
    """The series part of a record. An agent writes the same few dozen series over and over;
    encoding each once halves the cost of a record."""
    fields = [series.metric, series.centre_id, series.node_id, dict(series.labels)]
    return json.dumps(fields, separators=(",", ":"))[1:-1]


def _encode(sample: Sample) -> bytes:
    # The repr of a finite float is valid JSON and reads back exactly.
    payload = (
        f"[{sample.sequence},{_series_json(sample.series)},"
        f"{float(sample.observed_at)!r},{float(sample.value)!r}]"
    ).encode()
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def _checked_payload(line: bytes) -> tuple[int, bytes] | None:
    """The sequence and payload of a record line (without its newline), or None if it is damaged."""
    if len(line) <= _CHECKSUM_DIGITS + 1 or line[_CHECKSUM_DIGITS] != ord(" "):
        return None
    payload = line[_CHECKSUM_DIGITS + 1 :]
    try:
        if int(line[:_CHECKSUM_DIGITS], 16) != zlib.crc32(payload):
            return None
    except ValueError:
        return None
    return int(payload[1 : payload.index(b",")]), payload


def _decode(payload: bytes) -> Sample:
    sequence, metric, centre_id, node_id, labels, observed_at, value = json.loads(payload)
    series = SeriesKey(metric, centre_id, node_id, tuple(labels.items()))
    return Sample(series, observed_at, value, sequence)


def _fsync_directory(directory: Path) -> None:
    """Makes a created, renamed or deleted file's directory entry durable."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class SampleBuffer:
    """Samples written to segment files under `directory` until the centre acknowledges them.

    Sequences start at 1 and only ever grow, across restarts and after everything was
    acknowledged. Each `append` is one write and one fdatasync. When the files pass `max_bytes`
    (within one segment) the oldest segments are dropped and counted in `dropped_samples`: after a
    very long outage the newest readings matter most. One process owns a directory at a time (a
    lock file says so); the object is not thread-safe."""

    def __init__(
        self, directory: Path, max_bytes: int = 512 * MIB, segment_bytes: int = 4 * MIB
    ) -> None:
        if segment_bytes < 1:
            raise ValueError(f"segment_bytes must be positive, got {segment_bytes}")
        if max_bytes < segment_bytes:
            raise ValueError(
                f"max_bytes ({max_bytes}) must be at least segment_bytes ({segment_bytes})"
            )
        self._directory = directory
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_descriptor = self._lock()
        self._acknowledged_sequence = 0
        # Sequences up to here were dropped by the size bound; the sender skips them too.
        self._dropped_through_sequence = 0
        self._dropped_samples = 0
        self._read_state()
        self._segments = self._scan_segments()
        self._last_sequence = max(
            self._acknowledged_sequence,
            self._dropped_through_sequence,
            self._segments[-1].last_sequence if self._segments else 0,
        )
        # Always a fresh segment after opening, so a torn tail left by a crash stays at the end of
        # its own file instead of running into the next record.
        self._writing: _Segment | None = None
        self._write_descriptor: int | None = None
        self._delete_segments_through(self._floor)
        # Where the last read stopped: (sequence returned last, segment, byte offset after it), so
        # a sender streaming the backlog in batches does not rescan a segment for every batch.
        self._cursor: tuple[int, Path, int] | None = None

    @property
    def last_sequence(self) -> int:
        return self._last_sequence

    @property
    def acknowledged_sequence(self) -> int:
        return self._acknowledged_sequence

    @property
    def dropped_samples(self) -> int:
        return self._dropped_samples

    @property
    def pending_count(self) -> int:
        return sum(segment.count_after(self._floor) for segment in self._segments)

    @property
    def size_bytes(self) -> int:
        return sum(segment.size_bytes for segment in self._segments)

    @property
    def _floor(self) -> int:
        return max(self._acknowledged_sequence, self._dropped_through_sequence)

    def append(self, samples: Sequence[Sample]) -> list[Sample]:
        """Numbers `samples` in order and makes them durable; returns them with their sequence."""
        if not samples:
            return []
        for index, sample in enumerate(samples):
            # The centre refuses a whole batch over one such sample, which would stall the backlog.
            if not (math.isfinite(sample.value) and math.isfinite(sample.observed_at)):
                raise ValueError(
                    f"samples[{index}] ({sample.series.metric}): value and observed_at must be "
                    f"finite, got {sample.value} at {sample.observed_at}"
                )
        segment, descriptor = self._segment_for_writing()
        first = self._last_sequence + 1
        numbered = [
            Sample(sample.series, sample.observed_at, sample.value, sequence)
            for sequence, sample in enumerate(samples, start=first)
        ]
        data = b"".join(_encode(sample) for sample in numbered)
        try:
            written = 0
            while written < len(data):
                written += os.write(descriptor, data[written:])
            os.fdatasync(descriptor)
        except OSError:
            self._abandon_segment(segment, descriptor)
            # Whatever of this batch reached the disk may be read back after a restart; numbers
            # are never given twice, so this batch's are spent.
            self._last_sequence = numbered[-1].sequence
            raise
        segment.last_sequence = numbered[-1].sequence
        segment.size_bytes += len(data)
        self._last_sequence = numbered[-1].sequence
        if segment.size_bytes >= self._segment_bytes:
            self._close_writing()
        self._keep_within_bound()
        return numbered

    def pending(self, limit: int) -> list[Sample]:
        """The oldest samples not yet acknowledged, in sequence order, at most `limit`."""
        return self.pending_after(self._acknowledged_sequence, limit)

    def pending_after(self, sequence: int, limit: int) -> list[Sample]:
        """Samples after `sequence` that are still held, in order, at most `limit`: a sender
        passes the last sequence it sent to stream the backlog while new samples arrive."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        after = max(sequence, self._floor)
        start = bisect.bisect_right(
            self._segments, after, key=lambda segment: segment.last_sequence
        )
        samples: list[Sample] = []
        stopped_at: tuple[Path, int] | None = None
        for segment in self._segments[start:]:
            offset = 0
            if self._cursor is not None and self._cursor[:2] == (after, segment.path):
                offset = self._cursor[2]
            with segment.path.open("rb") as file:
                file.seek(offset)
                for line in file:
                    offset += len(line)
                    record = _checked_payload(line[:-1]) if line.endswith(b"\n") else None
                    if record is None or record[0] <= after:
                        continue
                    samples.append(_decode(record[1]))
                    stopped_at = (segment.path, offset)
                    if len(samples) == limit:
                        break
            if len(samples) == limit:
                break
        if stopped_at is not None:
            self._cursor = (samples[-1].sequence, *stopped_at)
        return samples

    def acknowledge(self, up_to_sequence: int) -> None:
        """The centre holds every sample up to `up_to_sequence`; their files can go. Acknowledging
        less than before is a no-op, so a late or repeated acknowledgement is harmless."""
        if up_to_sequence > self._last_sequence:
            raise ValueError(
                f"cannot acknowledge sequence {up_to_sequence}: "
                f"the last sequence appended is {self._last_sequence}"
            )
        if up_to_sequence <= self._acknowledged_sequence:
            return
        self._acknowledged_sequence = up_to_sequence
        self._write_state()
        self._delete_segments_through(self._floor)

    def continue_after(self, sequence: int) -> int:
        """The centre holds sequences up to `sequence`, beyond anything this buffer numbered: the
        node's disk was wiped or replaced. Numbering continues above the centre's mark, or every
        new sample would be skipped as a resend. Samples still pending here carry numbers the
        centre would skip too, so they are counted as dropped; returns how many."""
        if sequence <= self._last_sequence:
            return 0
        dropped = self.pending_count
        self._dropped_samples += dropped
        self._dropped_through_sequence = sequence
        self._acknowledged_sequence = sequence
        self._last_sequence = sequence
        self._cursor = None
        self._write_state()
        self._delete_segments_through(sequence)
        return dropped

    def close(self) -> None:
        self._close_writing()
        os.close(self._lock_descriptor)

    def __enter__(self) -> SampleBuffer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _lock(self) -> int:
        descriptor = os.open(self._directory / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise RuntimeError(
                f"sample buffer {self._directory} is in use by another agent process"
            ) from None
        return descriptor

    def _read_state(self) -> None:
        path = self._directory / _STATE_FILE
        if not path.exists():
            return
        # Written whole by rename, so never torn: anything unreadable is a real fault to look at.
        state = json.loads(path.read_bytes())
        self._acknowledged_sequence = state["acknowledged_sequence"]
        self._dropped_through_sequence = state["dropped_through_sequence"]
        self._dropped_samples = state["dropped_samples"]

    def _write_state(self) -> None:
        data = json.dumps(
            {
                "acknowledged_sequence": self._acknowledged_sequence,
                "dropped_through_sequence": self._dropped_through_sequence,
                "dropped_samples": self._dropped_samples,
            }
        ).encode()
        temporary = self._directory / (_STATE_FILE + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, self._directory / _STATE_FILE)
        _fsync_directory(self._directory)

    def _scan_segments(self) -> list[_Segment]:
        segments = []
        paths = sorted(self._directory.glob("*" + _SEGMENT_SUFFIX), key=lambda path: int(path.stem))
        for path in paths:
            segment = self._scan_segment(path)
            if segment is None:
                path.unlink()
            else:
                segments.append(segment)
        return segments

    def _scan_segment(self, path: Path) -> _Segment | None:
        data = path.read_bytes()
        lines = data.split(b"\n")
        # The piece after the last newline is empty, or a record a crash cut short.
        damaged = 1 if lines.pop() else 0
        first = last = 0
        missing: list[int] = []
        for line in lines:
            record = _checked_payload(line)
            if record is None or record[0] <= last:
                damaged += 1
                continue
            sequence = record[0]
            if not first:
                first = sequence
            elif sequence > last + 1:
                missing.extend(range(last + 1, sequence))
            last = sequence
        if damaged:
            log.warning(
                "sample buffer segment has damaged records; skipping them",
                extra={"segment": str(path), "damaged_records": damaged},
            )
        if not first:
            return None
        return _Segment(path, first, last, len(data), tuple(missing))

    def _segment_for_writing(self) -> tuple[_Segment, int]:
        if self._writing is None or self._write_descriptor is None:
            first = self._last_sequence + 1
            path = self._directory / f"{first:020d}{_SEGMENT_SUFFIX}"
            self._write_descriptor = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o644
            )
            # Registered before the directory is synced, so that if the sync fails the next append
            # uses this file rather than failing to create it again.
            self._writing = _Segment(path, first, first - 1, 0)
            self._segments.append(self._writing)
            _fsync_directory(self._directory)
        return self._writing, self._write_descriptor

    def _abandon_segment(self, segment: _Segment, descriptor: int) -> None:
        """After a failed write (a full disk, an I/O error): cut the file back to its last whole
        batch if the disk lets us, and write the next batch to a new segment."""
        with contextlib.suppress(OSError):
            os.ftruncate(descriptor, segment.size_bytes)
        self._close_writing()

    def _close_writing(self) -> None:
        if self._write_descriptor is not None:
            os.close(self._write_descriptor)
        self._write_descriptor = None
        self._writing = None

    def _delete_segments_through(self, sequence: int) -> None:
        # No directory sync: a deleted segment that a crash brings back is deleted again on
        # opening, being at or below the acknowledged or dropped mark kept in the state file.
        while self._segments and self._segments[0].last_sequence <= sequence:
            segment = self._segments.pop(0)
            if segment is self._writing:
                self._close_writing()
            segment.path.unlink(missing_ok=True)

    def _keep_within_bound(self) -> None:
        while len(self._segments) > 1 and self.size_bytes > self._max_bytes:
            oldest = self._segments[0]
            dropped = oldest.count_after(self._floor)
            self._dropped_samples += dropped
            self._dropped_through_sequence = max(
                self._dropped_through_sequence, oldest.last_sequence
            )
            self._write_state()
            self._delete_segments_through(oldest.last_sequence)
            log.warning(
                "sample buffer is full; dropped the oldest samples",
                extra={
                    "dropped_samples": dropped,
                    "dropped_through_sequence": oldest.last_sequence,
                    "max_bytes": self._max_bytes,
                },
            )
