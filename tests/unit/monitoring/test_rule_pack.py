"""The rule pack holds every clause 7.1 limit with its requirement ID: each fires on the wrong side
of its limit and not on the right side, boundaries included, plus the capacity and performance
thresholds of R-6.5b."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from medcloud.monitoring.domain.findings import Severity
from medcloud.monitoring.domain.rule_pack import (
    capacity_rules,
    default_rules,
    environment_rules,
    performance_rules,
)
from medcloud.monitoring.domain.rules import Rule, Season
from medcloud.monitoring.domain.samples import Metric, Sample, SeriesKey
from medcloud.monitoring.domain.windows import SeriesWindow


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


JULY = utc(2024, 7, 15, 4)
JANUARY = utc(2024, 1, 15, 4)
LAST_OF_OCTOBER_LOCAL = utc(2024, 10, 31, 15)  # 31 Oct 23:00 in Shanghai
FIRST_OF_NOVEMBER_LOCAL = utc(2024, 10, 31, 23, 30)  # still 31 Oct in UTC, 1 Nov 07:30 local

ENVIRONMENT = {rule.id: rule for rule in environment_rules()}


def series(metric: str, **labels: str) -> SeriesKey:
    return SeriesKey.of(metric, "hospital-a", "node-1", **labels)


def judge(rule: Rule, key: SeriesKey, value: float, at: float = JULY):
    window = SeriesWindow(3600)
    window.add(Sample(key, at, value))
    return rule.evaluate(window, at)


# rule id, requirement, metric, labels, values within limits, values outside
THRESHOLDS = [
    ("env.humidity", "R-7.1-4", Metric.RELATIVE_HUMIDITY_PERCENT, {}, [45, 55, 65], [44.9, 65.1]),
    ("env.dust", "R-7.1-3", Metric.DUST_PARTICLES_PER_LITRE, {}, [0, 18_000], [18_001]),
    ("env.magnetic-field", "R-7.1-6", Metric.MAGNETIC_FIELD_A_PER_M, {}, [799.9], [800, 900]),
    ("env.floor-vibration", "R-7.1-7", Metric.FLOOR_VIBRATION_MM_PER_S2, {}, [500], [500.1]),
    ("env.radio-interference", "R-7.1-8", Metric.RADIO_INTERFERENCE_DB, {}, [126], [126.1]),
    (
        "env.mains-frequency",
        "R-7.1-9",
        Metric.MAINS_FREQUENCY_HZ,
        {},
        [49.8, 50.0, 50.2],
        [49.79, 50.21],
    ),
    (
        "env.mains-voltage.three-phase",
        "R-7.1-10",
        Metric.MAINS_VOLTAGE_VOLTS,
        {"supply": "three-phase"},
        [375, 380, 385],
        [374.9, 385.1, 220],
    ),
    (
        "env.mains-voltage.single-phase",
        "R-7.1-10",
        Metric.MAINS_VOLTAGE_VOLTS,
        {"supply": "single-phase"},
        [215, 220, 225],
        [214.9, 225.1, 380],
    ),
    ("env.waveform-distortion", "R-7.1-11", Metric.WAVEFORM_DISTORTION_PERCENT, {}, [5], [5.1]),
    ("env.noise", "R-7.1-12", Metric.NOISE_DB, {}, [64.9], [65, 70]),
    (
        "env.illuminance.machine-room",
        "R-7.1-13",
        Metric.ILLUMINANCE_LUX,
        {"area": "machine-room"},
        [450, 1000],
        [449],
    ),
    (
        "env.illuminance.auxiliary-room",
        "R-7.1-13",
        Metric.ILLUMINANCE_LUX,
        {"area": "auxiliary-room"},
        [300],
        [299],
    ),
    (
        "env.illuminance.emergency",
        "R-7.1-13",
        Metric.ILLUMINANCE_LUX,
        {"area": "emergency"},
        [50],
        [49],
    ),
    ("env.ground.dc", "R-7.1-15", Metric.GROUND_RESISTANCE_OHMS, {"ground": "dc"}, [1], [1.01]),
    ("env.neutral-to-ground", "R-7.1-15", Metric.NEUTRAL_TO_GROUND_VOLTS, {}, [0.99], [1, 2]),
    (
        "env.ground.ac-working",
        "R-7.1-16",
        Metric.GROUND_RESISTANCE_OHMS,
        {"ground": "ac-working"},
        [3.99],
        [4],
    ),
    (
        "env.ground.safety",
        "R-7.1-17",
        Metric.GROUND_RESISTANCE_OHMS,
        {"ground": "safety"},
        [3.99],
        [4],
    ),
    (
        "env.ground.lightning",
        "R-7.1-18",
        Metric.GROUND_RESISTANCE_OHMS,
        {"ground": "lightning"},
        [9.99],
        [10],
    ),
    (
        "env.electrostatic-potential",
        "R-7.1-19",
        Metric.ELECTROSTATIC_POTENTIAL_VOLTS,
        {},
        [999],
        [1000],
    ),
]


def test_every_environment_rule_is_covered_here():
    tested = {case[0] for case in THRESHOLDS} | {"env.temperature", "env.temperature-change"}
    assert tested == set(ENVIRONMENT)


@pytest.mark.parametrize(
    ("rule_id", "requirement_id", "metric", "labels", "within", "outside"),
    THRESHOLDS,
    ids=[case[0] for case in THRESHOLDS],
)
def test_each_threshold_fires_outside_and_not_within(
    rule_id, requirement_id, metric, labels, within, outside
):
    rule = ENVIRONMENT[rule_id]
    key = series(metric, **labels)
    assert rule.requirement_id == requirement_id
    # Exactly this one rule of the pack judges the series.
    assert [r.id for r in environment_rules() if r.applies_to(key)] == [rule_id]
    for value in within:
        finding = judge(rule, key, value)
        assert not finding.firing, finding.summary
        assert finding.summary.startswith(f"{requirement_id}: ")
    for value in outside:
        finding = judge(rule, key, value)
        assert finding.firing, finding.summary
        assert finding.summary.startswith(f"{requirement_id}: {rule.quantity.name} ")
        assert rule.quantity.unit in finding.summary


def test_the_frequency_summary_shows_enough_digits():
    finding = judge(ENVIRONMENT["env.mains-frequency"], series(Metric.MAINS_FREQUENCY_HZ), 50.21)
    assert finding.summary == "R-7.1-9: mains frequency 50.21 Hz above 50.20 Hz (limit 50±0.2 Hz)"


TEMPERATURE = series(Metric.TEMPERATURE_CELSIUS)


@pytest.mark.parametrize(
    ("at", "value", "firing"),
    [
        (JULY, 25.0, False),
        (JULY, 25.1, True),
        (JULY, 21.0, False),
        (JULY, 20.9, True),
        (JULY, 23.0, False),
        (JANUARY, 22.0, False),
        (JANUARY, 22.1, True),
        (JANUARY, 23.0, True),
        (JANUARY, 18.0, False),
        (JANUARY, 17.9, True),
        (LAST_OF_OCTOBER_LOCAL, 23.0, False),
        (FIRST_OF_NOVEMBER_LOCAL, 23.0, True),
        (FIRST_OF_NOVEMBER_LOCAL, 20.0, False),
    ],
)
def test_temperature_follows_the_season_r_7_1_1(at, value, firing):
    rule = ENVIRONMENT["env.temperature"]
    assert rule.requirement_id == "R-7.1-1"
    assert judge(rule, TEMPERATURE, value, at).firing is firing


def test_the_temperature_summary_names_the_season():
    rule = ENVIRONMENT["env.temperature"]
    assert judge(rule, TEMPERATURE, 26.1).summary == (
        "R-7.1-1: temperature 26.1 °C above 25.0 °C (summer 23±2 °C)"
    )
    assert judge(rule, TEMPERATURE, 23.0, FIRST_OF_NOVEMBER_LOCAL).summary == (
        "R-7.1-1: temperature 23.0 °C above 22.0 °C (winter 20±2 °C)"
    )


def test_the_season_is_the_pack_s_to_choose():
    only_july = {r.id: r for r in environment_rules(Season(summer_months=frozenset({7})))}
    june = utc(2024, 6, 15, 4)
    assert not judge(ENVIRONMENT["env.temperature"], TEMPERATURE, 24.0, june).firing
    assert judge(only_july["env.temperature"], TEMPERATURE, 24.0, june).firing


def hour_of_temperature(change: float, minutes: int = 60) -> SeriesWindow:
    window = SeriesWindow(7200)
    for minute in range(minutes + 1):
        window.add(Sample(TEMPERATURE, JULY + minute * 60, 22.0 + change * minute / 60))
    return window


def test_temperature_change_per_hour_r_7_1_2():
    rule = ENVIRONMENT["env.temperature-change"]
    assert rule.requirement_id == "R-7.1-2"
    assert not rule.evaluate(hour_of_temperature(4.0), JULY + 3600).firing
    assert rule.evaluate(hour_of_temperature(5.5), JULY + 3600).firing
    assert rule.evaluate(hour_of_temperature(-5.5), JULY + 3600).firing
    assert rule.evaluate(hour_of_temperature(5.5, minutes=5), JULY + 300) is None


def test_climate_and_power_are_critical_the_rest_a_warning():
    critical = {
        rule_id for rule_id, rule in ENVIRONMENT.items() if rule.severity is Severity.CRITICAL
    }
    assert {
        "env.temperature",
        "env.humidity",
        "env.mains-frequency",
        "env.mains-voltage.three-phase",
        "env.mains-voltage.single-phase",
    } <= critical
    assert not {rule_id for rule_id in critical if rule_id.startswith("env.illuminance")}


# Capacity and performance (R-6.5b)

CAPACITY = {rule.id: rule for rule in capacity_rules()}
PERFORMANCE = {rule.id: rule for rule in performance_rules()}
VCPU = series(Metric.CAPACITY_UTILISATION_PERCENT, resource="vcpu")


@pytest.mark.parametrize(
    ("value", "firing"),
    [(79.9, set()), (80.0, {"warning"}), (89.9, {"warning"}), (90.0, {"warning", "critical"})],
)
def test_utilisation_warns_at_80_and_is_critical_at_90(value, firing):
    fired = {
        rule.severity.value
        for rule in CAPACITY.values()
        if rule.id.startswith("capacity.utilisation") and judge(rule, VCPU, value).firing
    }
    assert fired == firing


def test_days_to_full_warns_under_30_days():
    rule = CAPACITY["capacity.days-to-full"]
    assert rule.severity is Severity.WARNING
    window = SeriesWindow(30 * 86400)
    for day in range(8):
        window.add(Sample(VCPU, JULY + day * 86400, 40.0 + 2.0 * day))  # 54 % and 2 %/day: 23 days
    finding = rule.evaluate(window, JULY + 7 * 86400)
    assert finding.firing
    assert finding.value == pytest.approx(23.0)


def sustained(key: SeriesKey, value: float, minutes: int) -> SeriesWindow:
    window = SeriesWindow(3600)
    for minute in range(minutes + 1):
        window.add(Sample(key, JULY + minute * 60, value))
    return window


@pytest.mark.parametrize(
    ("rule_id", "metric", "high", "normal", "severity"),
    [
        ("perf.host-cpu", Metric.HOST_CPU_UTILISATION_PERCENT, 95.0, 90.0, Severity.WARNING),
        ("perf.host-memory", Metric.HOST_MEMORY_UTILISATION_PERCENT, 96.0, 95.0, Severity.CRITICAL),
        ("perf.host-load", Metric.HOST_LOAD_PER_CPU, 2.5, 2.0, Severity.WARNING),
    ],
)
def test_host_load_must_last_five_minutes(rule_id, metric, high, normal, severity):
    rule = PERFORMANCE[rule_id]
    key = series(metric)
    assert rule.severity is severity
    assert rule.evaluate(sustained(key, high, 5), JULY + 300).firing
    assert not rule.evaluate(sustained(key, high, 4), JULY + 240).firing
    assert not rule.evaluate(sustained(key, normal, 5), JULY + 300).firing


def test_a_full_disk_warns_at_once():
    rule = PERFORMANCE["perf.host-disk"]
    key = series(Metric.HOST_DISK_UTILISATION_PERCENT, mount="/")
    assert judge(rule, key, 90.1).firing
    assert not judge(rule, key, 90.0).firing


def test_default_rules_are_all_the_packs_with_stable_readable_ids():
    rules = default_rules()
    ids = [rule.id for rule in rules]
    assert ids == [r.id for r in (*environment_rules(), *capacity_rules(), *performance_rules())]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+(\.[a-z0-9-]+)+", rule_id) for rule_id in ids)
    assert all(re.fullmatch(r"R-(7\.1-\d+|6\.5b)", rule.requirement_id) for rule in rules)
    assert all(rule.description for rule in rules)
