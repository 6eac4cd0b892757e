"""Agent buffer throughput: samples/s appended in batches of 100 (one write and one fdatasync per
batch), samples/s streamed back with `pending_after` in the sender's batches of 500, and the time
to reopen a buffer holding the whole backlog (a restart in the middle of an outage). Prints
figures; asserts nothing.

The samples are the simulator's machine-room series for one node, so records have the size a
real agent writes."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from medcloud.monitoring.agent.buffer import SampleBuffer
from medcloud.monitoring.agent.sources import SimulatorSource
from medcloud.monitoring.domain.samples import Sample, SeriesKey

SAMPLES = 200_000
APPEND_BATCH = 100
SEND_BATCH = 500
ROUNDS = 3


def _node_samples(count: int) -> list[Sample]:
    simulator = SimulatorSource(seed=1)
    samples: list[Sample] = []
    at = 1_764_150_000.0
    while len(samples) < count:
        for reading in simulator.readings_at(at):
            labels = tuple(sorted(reading.labels.items()))
            series = SeriesKey(reading.metric, "centre-1", "node-7", labels)
            samples.append(Sample(series, at, reading.value))
        at += 10.0
    return samples[:count]


def _round(directory: Path, samples: list[Sample]) -> tuple[float, float, float, int]:
    with SampleBuffer(directory) as buffer:
        started = time.perf_counter()
        for start in range(0, len(samples), APPEND_BATCH):
            buffer.append(samples[start : start + APPEND_BATCH])
        append_rate = len(samples) / (time.perf_counter() - started)
        size_bytes = buffer.size_bytes

    started = time.perf_counter()
    buffer = SampleBuffer(directory)
    reopen_seconds = time.perf_counter() - started

    with buffer:
        started = time.perf_counter()
        sent_up_to, streamed = buffer.acknowledged_sequence, 0
        while batch := buffer.pending_after(sent_up_to, SEND_BATCH):
            streamed += len(batch)
            sent_up_to = batch[-1].sequence
        read_rate = streamed / (time.perf_counter() - started)
    return append_rate, read_rate, reopen_seconds, size_bytes


def main() -> None:
    samples = _node_samples(SAMPLES)
    results = []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory() as directory:
            results.append(_round(Path(directory), samples))
    append_rate = statistics.median(result[0] for result in results)
    read_rate = statistics.median(result[1] for result in results)
    reopen_seconds = statistics.median(result[2] for result in results)
    size_bytes = results[0][3]
    print(f"agent buffer, {SAMPLES} samples, median of {ROUNDS} rounds")
    print(f"  append (batches of {APPEND_BATCH}, fdatasync each): {append_rate:,.0f} samples/s")
    print(f"  pending_after (batches of {SEND_BATCH}):            {read_rate:,.0f} samples/s")
    print(f"  reopen with the backlog on disk:                 {reopen_seconds:.2f} s")
    print(f"  on disk: {size_bytes / SAMPLES:.0f} bytes/sample ({size_bytes / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
