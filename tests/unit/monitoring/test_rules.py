"""Each kind of rule fires on the wrong side of its limit, reports "within limits" on the right
side so alerts can resolve, says nothing without enough data, and names the requirement, the
value and the limit in its summary."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfoNotFoundError

import pytest

from medcloud.monitoring.domain.findings import Severity
from medcloud.monitoring.domain.rules import (
    DaysToFullRule,
    Limits,
    Quantity,
    RangeRule,
    RateOfChangeRule,
    Season,
    SeasonalRangeRule,
    UtilisationRule,
)
from medcloud.monitoring.domain.samples import Metric, Sample, SeriesKey
from medcloud.monitoring.domain.windows import SeriesWindow

TEMPERATURE = SeriesKey.of(Metric.TEMPERATURE_CELSIUS, "hospital-a", "sensor-1")
CPU = SeriesKey.of(Metric.HOST_CPU_UTILISATION_PERCENT, "hospital-a", "host-1")
VCPU = SeriesKey.of(Metric.CAPACITY_UTILISATION_PERCENT, "hospital-a", "", resource="vcpu")
DAY = 86400.0


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


JULY = utc(2024, 7, 15, 4)  # noon in Shanghai
JANUARY = utc(2024, 1, 15, 4)


def window_of(series: SeriesKey, *points: tuple[float, float], retention: float = 30 * DAY):
    window = SeriesWindow(retention)
    for at, value in points:
        window.add(Sample(series, at, value))
    return window


def temperature_rule(**overrides) -> SeasonalRangeRule:
    fields = dict(
        id="env.temperature",
        requirement_id="R-7.1-1",
        metric=Metric.TEMPERATURE_CELSIUS,
        quantity=Quantity("temperature", "°C"),
        severity=Severity.CRITICAL,
        summer=Limits(21.0, 25.0, text="23±2 °C"),
        winter=Limits(18.0, 22.0, text="20±2 °C"),
    )
    return SeasonalRangeRule(**(fields | overrides))


def cpu_rule(for_seconds: float = 300.0) -> RangeRule:
    return RangeRule(
        id="perf.host-cpu",
        requirement_id="R-6.5b",
        metric=Metric.HOST_CPU_UTILISATION_PERCENT,
        quantity=Quantity("host CPU utilisation", "%"),
        severity=Severity.WARNING,
        limits=Limits(maximum=90.0),
        for_seconds=for_seconds,
    )


# Limits and quantities


@pytest.mark.parametrize(
    ("limits", "inside", "outside"),
    [
        (Limits(maximum=500.0), [500.0, -1.0], [500.01]),
        (Limits(maximum=800.0, maximum_inclusive=False), [799.99], [800.0, 801.0]),
        (Limits(minimum=450.0), [450.0, 1e6], [449.9]),
        (Limits(minimum=0.0, minimum_inclusive=False), [0.01], [0.0]),
        (Limits(49.8, 50.2), [49.8, 50.0, 50.2], [49.79, 50.21]),
    ],
)
def test_limits_allow_their_bounds_unless_strict(limits, inside, outside):
    assert all(limits.breached_bound(value) is None for value in inside)
    assert all(limits.breached_bound(value) is not None for value in outside)


def test_limits_describe_themselves():
    percent = Quantity("humidity", "%")
    assert Limits(45.0, 65.0).describe(percent) == "45.0\N{EN DASH}65.0 %"
    assert Limits(maximum=18000.0).describe(Quantity("dust", "particles/L", 0)) == (
        "≤ 18,000 particles/L"
    )
    assert Limits(maximum=800.0, maximum_inclusive=False).describe(Quantity("B", "A/m", 0)) == (
        "< 800 A/m"
    )
    assert Limits(minimum=450.0).describe(Quantity("light", "lx", 0)) == "≥ 450 lx"
    assert Limits(21.0, 25.0, text="23±2 °C").describe(percent) == "23±2 °C"
    with pytest.raises(ValueError):
        Limits()
    with pytest.raises(ValueError):
        Limits(25.0, 21.0)


def test_a_value_next_to_its_limit_never_reads_the_same_as_the_limit():
    hertz = Quantity("mains frequency", "Hz", 2)
    assert hertz.format_against(50.205, 50.2) == "50.205 Hz"
    assert hertz.format_against(50.21, 50.2) == "50.21 Hz"
    assert hertz.format_against(50.2, 50.2) == "50.20 Hz"


# Label filters


def test_a_rule_applies_to_its_metric_and_labels_only():
    three_phase = RangeRule(
        id="env.mains-voltage.three-phase",
        requirement_id="R-7.1-10",
        metric=Metric.MAINS_VOLTAGE_VOLTS,
        quantity=Quantity("three-phase mains voltage", "V"),
        severity=Severity.CRITICAL,
        limits=Limits(375.0, 385.0),
        labels={"supply": "three-phase"},
    )
    assert three_phase.labels == (("supply", "three-phase"),)
    assert three_phase.applies_to(
        SeriesKey.of(Metric.MAINS_VOLTAGE_VOLTS, "c", "n", supply="three-phase", phase="L1")
    )
    assert not three_phase.applies_to(
        SeriesKey.of(Metric.MAINS_VOLTAGE_VOLTS, "c", "n", supply="single-phase")
    )
    assert not three_phase.applies_to(SeriesKey.of(Metric.MAINS_VOLTAGE_VOLTS, "c", "n"))
    assert not three_phase.applies_to(
        SeriesKey.of(Metric.MAINS_FREQUENCY_HZ, "c", "n", supply="three-phase")
    )


# Seasons


@pytest.mark.parametrize(
    ("at", "season"),
    [
        (JULY, "summer"),
        (JANUARY, "winter"),
        (utc(2024, 10, 31, 15, 59), "summer"),  # 31 Oct 23:59 in Shanghai
        (utc(2024, 10, 31, 23, 30), "winter"),  # 1 Nov 07:30 in Shanghai
        (utc(2024, 4, 30, 16, 30), "summer"),  # 1 May 00:30 in Shanghai, still April in UTC
        (utc(2024, 4, 30, 15, 30), "winter"),  # 30 Apr 23:30 in Shanghai
    ],
)
def test_the_season_follows_the_local_date(at, season):
    assert Season().name_at(at) == season


def test_a_season_can_be_configured_and_checks_itself():
    season = Season(summer_months=[6, 7, 8], time_zone="Europe/Berlin")
    assert season.summer_months == frozenset({6, 7, 8})
    assert season.name_at(utc(2024, 5, 31, 22, 30)) == "summer"  # 1 June 00:30 in Berlin
    assert season.name_at(utc(2024, 5, 31, 21, 30)) == "winter"
    with pytest.raises(ValueError):
        Season(summer_months=frozenset({0, 7}))
    with pytest.raises(ZoneInfoNotFoundError):
        Season(time_zone="Mars/Olympus_Mons")


# Range rules


def test_summer_temperature_above_its_range_fires_and_names_everything():
    finding = temperature_rule().evaluate(window_of(TEMPERATURE, (JULY, 26.1)), JULY)
    assert finding is not None
    assert finding.firing
    assert finding.summary == "R-7.1-1: temperature 26.1 °C above 25.0 °C (summer 23±2 °C)"
    assert (finding.rule_id, finding.requirement_id) == ("env.temperature", "R-7.1-1")
    assert (finding.series, finding.value, finding.observed_at) == (TEMPERATURE, 26.1, JULY)
    assert finding.severity is Severity.CRITICAL


def test_within_limits_is_a_finding_too():
    finding = temperature_rule().evaluate(window_of(TEMPERATURE, (JANUARY, 19.5)), JANUARY)
    assert finding is not None
    assert not finding.firing
    assert finding.summary == "R-7.1-1: temperature 19.5 °C within limits (winter 20±2 °C)"


def test_below_the_range_fires():
    finding = temperature_rule().evaluate(window_of(TEMPERATURE, (JANUARY, 17.2)), JANUARY)
    assert finding.firing
    assert finding.summary == "R-7.1-1: temperature 17.2 °C below 18.0 °C (winter 20±2 °C)"


def test_a_strict_bound_fires_at_the_bound():
    rule = RangeRule(
        id="env.magnetic-field",
        requirement_id="R-7.1-6",
        metric=Metric.MAGNETIC_FIELD_A_PER_M,
        quantity=Quantity("magnetic field", "A/m", 0),
        severity=Severity.WARNING,
        limits=Limits(maximum=800.0, maximum_inclusive=False),
    )
    series = SeriesKey.of(Metric.MAGNETIC_FIELD_A_PER_M, "c", "n")
    finding = rule.evaluate(window_of(series, (JULY, 800.0)), JULY)
    assert finding.firing
    assert finding.summary == "R-7.1-6: magnetic field 800 A/m at 800 A/m (limit < 800 A/m)"


def test_the_rule_judges_as_of_at_ignoring_later_samples():
    window = window_of(TEMPERATURE, (JULY, 26.0), (JULY + 60, 23.0))
    assert temperature_rule().evaluate(window, JULY).firing
    assert not temperature_rule().evaluate(window, JULY + 60).firing
    assert temperature_rule().evaluate(window, JULY + 30).firing  # the sample at JULY still holds
    assert temperature_rule().evaluate(window, JULY - 1) is None


def test_unfiltered_labels_tell_series_apart_in_the_summary():
    rule = RangeRule(
        id="perf.host-disk",
        requirement_id="R-6.5b",
        metric=Metric.HOST_DISK_UTILISATION_PERCENT,
        quantity=Quantity("host disk utilisation", "%"),
        severity=Severity.WARNING,
        limits=Limits(maximum=90.0),
    )
    series = SeriesKey.of(Metric.HOST_DISK_UTILISATION_PERCENT, "c", "n", mount="/var")
    finding = rule.evaluate(window_of(series, (JULY, 93.0)), JULY)
    assert finding.summary == (
        "R-6.5b: host disk utilisation (mount /var) 93.0 % above 90.0 % (limit ≤ 90.0 %)"
    )


# Sustained rules (Prometheus `for`)


def cpu_window(*minutes_and_values: tuple[float, float]) -> SeriesWindow:
    return window_of(CPU, *((JULY + minute * 60, value) for minute, value in minutes_and_values))


def test_a_sustained_rule_fires_once_every_sample_of_the_period_is_outside():
    window = cpu_window(*((minute, 95.0) for minute in range(6)))
    finding = cpu_rule().evaluate(window, JULY + 300)
    assert finding.firing
    assert finding.summary == (
        "R-6.5b: host CPU utilisation 95.0 % above 90.0 % for at least 5 min (limit ≤ 90.0 %)"
    )


def test_a_sustained_rule_is_pending_until_the_period_has_passed():
    window = cpu_window((0, 50.0), (1, 95.0), (2, 95.0), (3, 95.0), (4, 95.0), (5, 95.0))
    finding = cpu_rule().evaluate(window, JULY + 300)
    assert not finding.firing
    assert finding.summary == (
        "R-6.5b: host CPU utilisation 95.0 % above 90.0 % for 4 min of 5 min (limit ≤ 90.0 %)"
    )
    window.add(Sample(CPU, JULY + 360, 95.0))
    assert cpu_rule().evaluate(window, JULY + 360).firing


def test_one_sample_back_inside_restarts_the_period():
    window = cpu_window((0, 95.0), (1, 95.0), (2, 95.0), (3, 80.0), (4, 95.0), (5, 95.0))
    assert not cpu_rule().evaluate(window, JULY + 300).firing


def test_a_run_that_began_before_the_period_fires_without_a_sample_exactly_on_its_start():
    # Samples every 45 s: none falls exactly on at - 300.
    window = window_of(CPU, *((JULY + i * 45, 95.0) for i in range(9)))
    assert cpu_rule().evaluate(window, JULY + 8 * 45).firing


def test_a_fresh_window_does_not_fire_a_sustained_rule():
    # Four minutes of data, all high: nobody knows whether it has been high for five.
    window = cpu_window(*((minute, 95.0) for minute in range(5)))
    assert not cpu_rule().evaluate(window, JULY + 240).firing


def test_within_limits_clears_a_sustained_rule_at_once():
    window = cpu_window(*((minute, 95.0) for minute in range(10)), (10, 60.0))
    finding = cpu_rule().evaluate(window, JULY + 600)
    assert not finding.firing
    assert finding.summary == "R-6.5b: host CPU utilisation 60.0 % within limits (limit ≤ 90.0 %)"


# Rate of change (R-7.1-2)


def rate_rule() -> RateOfChangeRule:
    return RateOfChangeRule(
        id="env.temperature-change",
        requirement_id="R-7.1-2",
        metric=Metric.TEMPERATURE_CELSIUS,
        quantity=Quantity("temperature", "°C"),
        severity=Severity.WARNING,
        max_change_per_hour=5.0,
    )


def ramp(change: float, minutes: int = 60, start: float = JULY) -> SeriesWindow:
    return window_of(
        TEMPERATURE,
        *((start + m * 60, 22.0 + change * m / minutes) for m in range(minutes + 1)),
    )


def test_four_degrees_in_an_hour_is_within_limits():
    finding = rate_rule().evaluate(ramp(4.0), JULY + 3600)
    assert not finding.firing
    assert finding.value == pytest.approx(4.0)
    assert finding.summary == (
        "R-7.1-2: temperature rising 4.0 °C/h over the last 1 h, within limits (limit < 5.0 °C/h)"
    )


def test_five_and_a_half_degrees_in_an_hour_fires():
    finding = rate_rule().evaluate(ramp(5.5), JULY + 3600)
    assert finding.firing
    assert finding.summary == (
        "R-7.1-2: temperature rising 5.5 °C/h over the last 1 h (limit < 5.0 °C/h)"
    )


def test_a_fall_fires_as_well_as_a_rise():
    finding = rate_rule().evaluate(ramp(-6.0), JULY + 3600)
    assert finding.firing
    assert finding.value == pytest.approx(-6.0)
    assert "falling 6.0 °C/h" in finding.summary


def test_exactly_five_degrees_an_hour_fires():
    assert rate_rule().evaluate(ramp(5.0), JULY + 3600).firing


def test_too_little_data_gives_no_rate_finding():
    assert rate_rule().evaluate(window_of(TEMPERATURE, (JULY, 22.0)), JULY) is None
    assert rate_rule().evaluate(ramp(5.0, minutes=10), JULY + 600) is None
    assert rate_rule().evaluate(SeriesWindow(3600), JULY) is None


# Capacity (R-6.5b)


def test_utilisation_at_the_threshold_fires():
    rule = UtilisationRule(
        id="capacity.utilisation.warning",
        requirement_id="R-6.5b",
        severity=Severity.WARNING,
        threshold_percent=80.0,
    )
    assert rule.applies_to(VCPU)
    assert not rule.evaluate(window_of(VCPU, (JULY, 79.9)), JULY).firing
    finding = rule.evaluate(window_of(VCPU, (JULY, 80.0)), JULY)
    assert finding.firing
    assert finding.summary == (
        "R-6.5b: capacity utilisation (resource vcpu) 80.0 % at 80.0 % (limit < 80.0 %)"
    )


def days_rule() -> DaysToFullRule:
    return DaysToFullRule(
        id="capacity.days-to-full",
        requirement_id="R-6.5b",
        severity=Severity.WARNING,
        within_days=30.0,
    )


def growth(per_day: float, start: float = 50.0, days: int = 7) -> SeriesWindow:
    return window_of(VCPU, *((JULY + d * DAY, start + d * per_day) for d in range(days + 1)))


def test_days_to_full_fires_when_the_trend_reaches_full_within_the_limit():
    # From 50 %: 57 % after a week at 1 %/day is full in 43 days; 64 % at 2 %/day in 18.
    slow = days_rule().evaluate(growth(1.0), JULY + 7 * DAY)
    assert not slow.firing
    assert slow.value == pytest.approx(43.0)
    fast = days_rule().evaluate(growth(2.0), JULY + 7 * DAY)
    assert fast.firing
    assert fast.value == pytest.approx(18.0)
    assert fast.summary == (
        "R-6.5b: capacity utilisation (resource vcpu) 64.0 % reaches 100.0 % in 18.0 days "
        "at +2.00 %/day (limit 30 days)"
    )


def test_days_to_full_is_infinite_when_usage_is_flat_or_falling():
    finding = days_rule().evaluate(growth(-1.0), JULY + 7 * DAY)
    assert not finding.firing
    assert finding.value == math.inf
    assert "not growing" in finding.summary


def test_days_to_full_fires_when_already_full():
    finding = days_rule().evaluate(growth(-1.0, start=107.0), JULY + 7 * DAY)
    assert finding.firing
    assert finding.value == 0.0


def test_days_to_full_needs_a_day_of_trend():
    assert days_rule().evaluate(growth(5.0, days=0), JULY) is None
    hours = window_of(VCPU, (JULY, 50.0), (JULY + 3600, 60.0))
    assert days_rule().evaluate(hours, JULY + 3600) is None


# Descriptions, for the rule list


def test_rules_describe_their_limits():
    assert temperature_rule().description == "23±2 °C in summer, 20±2 °C in winter"
    assert cpu_rule().description == "≤ 90.0 %, firing once outside for 5 min"
    assert rate_rule().description == "change < 5.0 °C/h"
    assert days_rule().description == (
        "100.0 % not reached within 30 days on the trend of the last 7 d"
    )
    assert rate_rule().lookback_seconds == 3600
    assert days_rule().lookback_seconds == 7 * DAY
    assert cpu_rule().lookback_seconds == 300
