"""The recent samples of one series, kept in the order they were observed, whatever order they came in."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right

from medcloud.monitoring.domain.samples import Sample

_SECONDS_PER_HOUR = 3600.0

# Expired samples are dropped in batches: moving the live part of the list down once it is mostly
# dead keeps an in-order add at O(log n) amortised instead of a memmove per sample.
_COMPACT_AFTER = 64


class SeriesWindow:
    """Samples of one series observed within `retention_seconds` of the newest one.

    A backfill after a WAN outage inserts older samples between those already held; a sample at an
    instant already held is a duplicate and is refused, as is one older than the retention horizon
    (it would be trimmed at once). Times are the node's `observed_at`, never the time of arrival.
    """

    __slots__ = ("_retention_seconds", "_samples", "_start", "_times")

    def __init__(self, retention_seconds: float) -> None:
        if not retention_seconds > 0:
            raise ValueError(f"retention must be positive, got {retention_seconds} s")
        self._retention_seconds = float(retention_seconds)
        # Parallel lists: `_times` for bisect, `_samples` for the values. Entries before `_start`
        # have expired and wait for the next compaction.
        self._times: list[float] = []
        self._samples: list[Sample] = []
        self._start = 0

    @property
    def retention_seconds(self) -> float:
        return self._retention_seconds

    def __len__(self) -> int:
        return len(self._times) - self._start

    def add(self, sample: Sample) -> bool:
        """Keep the sample in order; False, with nothing changed, for a duplicate instant, a sample
        older than the retention horizon, or one whose time or value is NaN."""
        at = sample.observed_at
        if not math.isfinite(at) or math.isnan(sample.value):
            return False
        times = self._times
        if len(times) > self._start and at > times[-1]:
            times.append(at)
            self._samples.append(sample)
            self._trim()
            return True
        if len(times) > self._start and at < times[-1] - self._retention_seconds:
            return False
        index = bisect_left(times, at, self._start)
        if index < len(times) and times[index] == at:
            return False
        times.insert(index, at)
        self._samples.insert(index, sample)
        return True

    def latest(self, at: float | None = None) -> Sample | None:
        """The newest sample, or the newest observed at or before `at`."""
        end = len(self._times) if at is None else bisect_right(self._times, at, self._start)
        return self._samples[end - 1] if end > self._start else None

    def samples(self, since: float | None = None) -> list[Sample]:
        """Samples observed at or after `since` (all if None), oldest first."""
        start = self._start if since is None else bisect_left(self._times, since, self._start)
        return self._samples[start:]

    def between(self, start: float, end: float) -> list[Sample]:
        """Samples observed in [start, end], oldest first."""
        lo = bisect_left(self._times, start, self._start)
        hi = bisect_right(self._times, end, self._start)
        return self._samples[lo:hi]

    def rate_per_hour(
        self, at: float, over_seconds: float, min_span_seconds: float | None = None
    ) -> float | None:
        """Change per hour between the oldest and newest samples in [at - over_seconds, at].

        None with fewer than two samples or when they span less than `min_span_seconds` (half of
        `over_seconds` by default): a few minutes of data scaled up to an hour is mostly noise.
        """
        recent = self.between(at - over_seconds, at)
        if len(recent) < 2:
            return None
        first, last = recent[0], recent[-1]
        span = last.observed_at - first.observed_at
        if span < _min_span(over_seconds, min_span_seconds):
            return None
        return (last.value - first.value) / span * _SECONDS_PER_HOUR

    def trend_per_second(
        self, at: float, over_seconds: float, min_span_seconds: float | None = None
    ) -> float | None:
        """Least-squares slope, in value per second, of the samples in [at - over_seconds, at];
        None on the same conditions as `rate_per_hour`."""
        recent = self.between(at - over_seconds, at)
        if len(recent) < 2:
            return None
        span = recent[-1].observed_at - recent[0].observed_at
        if span < _min_span(over_seconds, min_span_seconds):
            return None
        # Centre on the means: Unix seconds squared lose the digits the slope lives in.
        mean_t = math.fsum(s.observed_at for s in recent) / len(recent)
        mean_v = math.fsum(s.value for s in recent) / len(recent)
        covariance = math.fsum((s.observed_at - mean_t) * (s.value - mean_v) for s in recent)
        variance = math.fsum((s.observed_at - mean_t) ** 2 for s in recent)
        return covariance / variance

    def _trim(self) -> None:
        times = self._times
        horizon = times[-1] - self._retention_seconds
        if times[self._start] >= horizon:
            return
        self._start = bisect_left(times, horizon, self._start)
        if self._start >= _COMPACT_AFTER and self._start * 2 >= len(times):
            del times[: self._start]
            del self._samples[: self._start]
            self._start = 0


def _min_span(over_seconds: float, min_span_seconds: float | None) -> float:
    return over_seconds / 2 if min_span_seconds is None else min_span_seconds
