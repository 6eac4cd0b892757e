"""A series window keeps samples in observed order whatever order they arrive in, refuses what it
already holds, forgets what is older than its retention, and measures change over time."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medcloud.monitoring.domain.samples import Metric, Sample, SeriesKey
from medcloud.monitoring.domain.windows import SeriesWindow

SERIES = SeriesKey.of(Metric.TEMPERATURE_CELSIUS, "hospital-a", "sensor-1")
T0 = 1_720_000_000.0  # July 2024: Unix seconds large enough to lose digits if squared


def sample(at: float, value: float = 23.0) -> Sample:
    return Sample(SERIES, at, value)


def times(window: SeriesWindow, since: float | None = None) -> list[float]:
    return [s.observed_at for s in window.samples(since)]


def test_in_order_samples_are_appended():
    window = SeriesWindow(3600)
    for offset in (0, 10, 20):
        assert window.add(sample(T0 + offset))
    assert times(window) == [T0, T0 + 10, T0 + 20]
    assert window.latest() == sample(T0 + 20)
    assert len(window) == 3


def test_a_backfilled_sample_goes_between_the_ones_already_held():
    window = SeriesWindow(3600)
    for offset in (0, 30, 60):
        window.add(sample(T0 + offset))
    assert window.add(sample(T0 + 45, 24.0))
    assert window.add(sample(T0 + 15, 22.0))
    assert times(window) == [T0, T0 + 15, T0 + 30, T0 + 45, T0 + 60]
    assert window.latest() == sample(T0 + 60)


def test_a_duplicate_instant_is_refused_and_changes_nothing():
    window = SeriesWindow(3600)
    window.add(sample(T0, 23.0))
    window.add(sample(T0 + 10, 23.5))
    assert not window.add(sample(T0, 99.0))
    assert not window.add(sample(T0 + 10, 99.0))
    assert [s.value for s in window.samples()] == [23.0, 23.5]


def test_retention_drops_samples_older_than_the_newest_minus_retention():
    window = SeriesWindow(60)
    for offset in range(0, 121, 10):
        window.add(sample(T0 + offset))
    # The newest is T0+120: T0+60 is exactly at the horizon and stays.
    assert times(window) == [T0 + offset for offset in range(60, 121, 10)]


def test_a_backfill_older_than_the_retention_is_refused():
    window = SeriesWindow(60)
    window.add(sample(T0 + 100))
    assert not window.add(sample(T0 + 39))
    assert window.add(sample(T0 + 40))
    assert times(window) == [T0 + 40, T0 + 100]


def test_nan_is_refused():
    window = SeriesWindow(60)
    assert not window.add(sample(T0, math.nan))
    assert not window.add(sample(math.nan))
    assert len(window) == 0


def test_many_samples_stay_right_across_compaction():
    window = SeriesWindow(100)
    for offset in range(1000):
        window.add(sample(T0 + offset, offset))
    assert times(window) == [T0 + offset for offset in range(899, 1000)]
    assert window.add(sample(T0 + 950.5))
    assert window.between(T0 + 950, T0 + 951) == [
        sample(T0 + 950, 950),
        sample(T0 + 950.5),
        sample(T0 + 951, 951),
    ]


def test_latest_at_an_instant_ignores_later_samples():
    window = SeriesWindow(3600)
    for offset in (0, 10, 20):
        window.add(sample(T0 + offset, offset))
    assert window.latest(T0 + 15) == sample(T0 + 10, 10)
    assert window.latest(T0 + 10) == sample(T0 + 10, 10)
    assert window.latest(T0 - 1) is None
    assert SeriesWindow(60).latest() is None


def test_samples_since_and_between_include_their_ends():
    window = SeriesWindow(3600)
    for offset in (0, 10, 20, 30):
        window.add(sample(T0 + offset))
    assert times(window, since=T0 + 10) == [T0 + 10, T0 + 20, T0 + 30]
    assert [s.observed_at for s in window.between(T0 + 10, T0 + 20)] == [T0 + 10, T0 + 20]
    assert window.between(T0 + 11, T0 + 19) == []


def test_rate_per_hour_over_the_last_hour():
    window = SeriesWindow(7200)
    for minute in range(61):
        window.add(sample(T0 + minute * 60, 20.0 + minute * 4.0 / 60))
    assert window.rate_per_hour(T0 + 3600, 3600) == pytest.approx(4.0)
    # As of half an hour in, only the first half counts.
    assert window.rate_per_hour(T0 + 1800, 1800) == pytest.approx(4.0)


def test_rate_needs_two_samples_spanning_half_the_period():
    window = SeriesWindow(7200)
    assert window.rate_per_hour(T0, 3600) is None
    window.add(sample(T0, 20.0))
    assert window.rate_per_hour(T0, 3600) is None
    window.add(sample(T0 + 600, 22.0))
    assert window.rate_per_hour(T0 + 600, 3600) is None  # ten minutes is not an hour
    assert window.rate_per_hour(T0 + 600, 3600, min_span_seconds=600) == pytest.approx(12.0)
    window.add(sample(T0 + 1800, 22.0))
    assert window.rate_per_hour(T0 + 1800, 3600) == pytest.approx(4.0)


def test_trend_is_the_least_squares_slope():
    window = SeriesWindow(10 * 86400)
    # 1 % a day with noise that cancels out.
    for day in range(8):
        noise = 0.5 if day % 2 else -0.5
        window.add(sample(T0 + day * 86400, 50.0 + day + noise))
    slope = window.trend_per_second(T0 + 7 * 86400, 7 * 86400)
    assert slope * 86400 == pytest.approx(1.0, abs=0.1)
    assert window.trend_per_second(T0 + 7 * 86400, 7 * 86400, min_span_seconds=8 * 86400) is None


def test_retention_must_be_positive():
    with pytest.raises(ValueError):
        SeriesWindow(0)


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=500), st.floats(-50, 50)),
        max_size=200,
    )
)
def test_whatever_the_arrival_order_the_window_holds_the_first_of_each_recent_instant(arrivals):
    window = SeriesWindow(100)
    kept: dict[float, float] = {}
    newest = -math.inf
    for offset, value in arrivals:
        at = T0 + offset
        accepted = window.add(sample(at, value))
        expected = at not in kept and at >= newest - 100
        assert accepted == expected
        if accepted:
            kept[at] = value
            newest = max(newest, at)
            kept = {t: v for t, v in kept.items() if t >= newest - 100}
    assert [(s.observed_at, s.value) for s in window.samples()] == sorted(kept.items())
