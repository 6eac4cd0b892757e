"""An inspection of a centre checks every environment rule on every series of the centre, fails a
rule nobody fresh is measuring, and fails a node that has gone quiet."""

from __future__ import annotations

from datetime import UTC, datetime

from medcloud.monitoring.domain.evaluation import RuleEngine
from medcloud.monitoring.domain.inspection import Check, InspectionReport, inspect
from medcloud.monitoring.domain.rule_pack import environment_rules
from medcloud.monitoring.domain.samples import Metric, Sample, SeriesKey

AT = datetime(2024, 7, 15, 4, tzinfo=UTC).timestamp()
STALE_AFTER = 300.0
CENTRE = "hospital-a"
RULES = environment_rules()

# One reading within limits for every environment rule, by metric and labels.
GOOD_READINGS = [
    (Metric.TEMPERATURE_CELSIUS, {}, 23.0),
    (Metric.RELATIVE_HUMIDITY_PERCENT, {}, 55.0),
    (Metric.DUST_PARTICLES_PER_LITRE, {}, 9_000.0),
    (Metric.MAGNETIC_FIELD_A_PER_M, {}, 100.0),
    (Metric.FLOOR_VIBRATION_MM_PER_S2, {}, 50.0),
    (Metric.RADIO_INTERFERENCE_DB, {}, 90.0),
    (Metric.MAINS_FREQUENCY_HZ, {}, 50.0),
    (Metric.MAINS_VOLTAGE_VOLTS, {"supply": "three-phase"}, 380.0),
    (Metric.MAINS_VOLTAGE_VOLTS, {"supply": "single-phase"}, 220.0),
    (Metric.WAVEFORM_DISTORTION_PERCENT, {}, 2.0),
    (Metric.NOISE_DB, {}, 55.0),
    (Metric.ILLUMINANCE_LUX, {"area": "machine-room"}, 500.0),
    (Metric.ILLUMINANCE_LUX, {"area": "auxiliary-room"}, 350.0),
    (Metric.ILLUMINANCE_LUX, {"area": "emergency"}, 80.0),
    (Metric.GROUND_RESISTANCE_OHMS, {"ground": "dc"}, 0.5),
    (Metric.NEUTRAL_TO_GROUND_VOLTS, {}, 0.3),
    (Metric.GROUND_RESISTANCE_OHMS, {"ground": "ac-working"}, 2.0),
    (Metric.GROUND_RESISTANCE_OHMS, {"ground": "safety"}, 2.0),
    (Metric.GROUND_RESISTANCE_OHMS, {"ground": "lightning"}, 5.0),
    (Metric.ELECTROSTATIC_POTENTIAL_VOLTS, {}, 200.0),
]


def key(metric: str, node_id: str = "env-1", centre_id: str = CENTRE, **labels: str):
    return SeriesKey.of(metric, centre_id, node_id, **labels)


def healthy_engine(skip: str = "") -> RuleEngine:
    engine = RuleEngine(RULES)
    for metric, labels, value in GOOD_READINGS:
        if metric != skip:
            engine.ingest(Sample(key(metric, **labels), AT - 30, value))
    return engine


def run(engine: RuleEngine, nodes=("env-1",)) -> InspectionReport:
    return inspect(CENTRE, AT, engine, RULES, nodes, STALE_AFTER)


def test_a_healthy_centre_passes_every_check():
    report = run(healthy_engine())
    assert report.passed
    assert report.failures() == ()
    assert (report.centre_id, report.inspected_at) == (CENTRE, AT)
    # One check per rule and series (the temperature series has two rules), one per node.
    assert len(report.checks) == len(RULES) + 1
    assert {check.requirement_id for check in report.checks} >= {"R-7.1-1", "R-7.1-19", "R-7.7c"}
    temperature = next(c for c in report.checks if c.requirement_id == "R-7.1-1")
    assert temperature == Check(
        "R-7.1-1",
        "temperature",
        "env-1",
        True,
        "R-7.1-1: temperature 23.0 °C within limits (summer 23±2 °C)",
        23.0,
    )
    # One sample cannot show a rate: reported, not failed.
    rate = next(c for c in report.checks if c.requirement_id == "R-7.1-2")
    assert rate.passed
    assert rate.value is None
    assert "not judged" in rate.detail


def test_a_reading_outside_its_limits_fails_its_check():
    engine = healthy_engine()
    engine.ingest(Sample(key(Metric.RELATIVE_HUMIDITY_PERCENT), AT - 10, 70.0))
    report = run(engine)
    assert not report.passed
    assert report.failures() == (
        Check(
            "R-7.1-4",
            "relative humidity",
            "env-1",
            False,
            "R-7.1-4: relative humidity 70.0 % above 65.0 % (limit 45\N{EN DASH}65 %, best 55 %)",
            70.0,
        ),
    )


def test_every_series_of_the_centre_is_checked_and_other_centres_are_not():
    engine = healthy_engine()
    engine.ingest(Sample(key(Metric.NOISE_DB, node_id="env-2"), AT - 10, 70.0))
    engine.ingest(Sample(key(Metric.NOISE_DB, centre_id="hospital-b"), AT - 10, 90.0))
    noise = [c for c in run(engine).checks if c.requirement_id == "R-7.1-12"]
    assert [(c.node_id, c.passed) for c in noise] == [("env-1", True), ("env-2", False)]


def test_a_rule_nobody_measures_fails_as_no_reading():
    report = run(healthy_engine(skip=Metric.NOISE_DB))
    assert report.failures() == (
        Check(
            "R-7.1-12",
            "noise",
            "",
            False,
            "R-7.1-12: no reading of noise in centre hospital-a",
            None,
        ),
    )


def test_a_stale_series_fails_as_no_reading_at_its_node():
    engine = healthy_engine(skip=Metric.NOISE_DB)
    engine.ingest(Sample(key(Metric.NOISE_DB, node_id="env-2"), AT - 900, 50.0))
    failures = run(engine).failures()
    assert [(c.requirement_id, c.node_id, c.value) for c in failures] == [
        ("R-7.1-12", "env-2", None)
    ]
    assert failures[0].detail == (
        "R-7.1-12: no reading of noise at node env-2 for 900 s (stale after 300 s)"
    )


def test_every_expected_node_must_report():
    engine = healthy_engine()
    engine.ingest(Sample(key(Metric.HOST_CPU_UTILISATION_PERCENT, node_id="host-1"), AT - 5, 10.0))
    engine.ingest(Sample(key(Metric.HOST_CPU_UTILISATION_PERCENT, node_id="host-2"), AT - 600, 10))
    report = run(engine, nodes=("env-1", "host-1", "host-2", "host-3"))
    nodes = [c for c in report.checks if c.name == "node reports"]
    assert [(c.node_id, c.passed, c.value) for c in nodes] == [
        ("env-1", True, 30.0),
        ("host-1", True, 5.0),
        ("host-2", False, 600.0),
        ("host-3", False, None),
    ]
    assert {c.requirement_id for c in nodes} == {"R-7.7c"}
    assert nodes[2].detail == "R-7.7c: node host-2 last reported 600 s ago (stale after 300 s)"
    assert nodes[3].detail == "R-7.7c: node host-3 has sent no sample"
    assert [c.node_id for c in report.failures()] == ["host-2", "host-3"]


def test_an_empty_centre_fails_every_rule_once():
    report = run(RuleEngine(RULES), nodes=())
    assert len(report.checks) == len(RULES)
    assert not any(check.passed for check in report.checks)
    assert all(check.node_id == "" for check in report.checks)
