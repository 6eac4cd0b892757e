"""The rule engine keeps a window per series, judges each new sample by the rules of its series as
of the sample's own time, and judges nothing it already holds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from medcloud.monitoring.domain.evaluation import RuleEngine
from medcloud.monitoring.domain.findings import Severity
from medcloud.monitoring.domain.rule_pack import capacity_rules, default_rules, environment_rules
from medcloud.monitoring.domain.rules import Limits, Quantity, RangeRule
from medcloud.monitoring.domain.samples import Metric, Sample, SeriesKey


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


JULY = utc(2024, 7, 15, 4)
LAST_OF_OCTOBER_LOCAL = utc(2024, 10, 31, 15)  # 23:00 in Shanghai
FIRST_OF_NOVEMBER_LOCAL = utc(2024, 10, 31, 17)  # 01:00 in Shanghai

TEMPERATURE = SeriesKey.of(Metric.TEMPERATURE_CELSIUS, "hospital-a", "sensor-1")
THREE_PHASE = SeriesKey.of(Metric.MAINS_VOLTAGE_VOLTS, "hospital-a", "pdu-1", supply="three-phase")


def by_rule(findings) -> dict[str, bool]:
    return {finding.rule_id: finding.firing for finding in findings}


def test_a_sample_is_judged_by_the_rules_of_its_series_only():
    engine = RuleEngine(environment_rules())
    findings = engine.ingest(Sample(THREE_PHASE, JULY, 391.0))
    assert by_rule(findings) == {"env.mains-voltage.three-phase": True}
    assert findings[0].summary == (
        "R-7.1-10: three-phase mains voltage 391.0 V above 385.0 V (limit 380 V ±5 V)"
    )
    assert engine.rules_for(THREE_PHASE) == tuple(
        rule for rule in environment_rules() if rule.id == "env.mains-voltage.three-phase"
    )


def test_a_rule_that_cannot_judge_yet_gives_no_finding():
    engine = RuleEngine(environment_rules())
    # The rate of change needs half an hour of samples; the range judges the first one.
    assert by_rule(engine.ingest(Sample(TEMPERATURE, JULY, 23.0))) == {"env.temperature": False}


def test_a_duplicate_sample_is_not_judged_again():
    engine = RuleEngine(environment_rules())
    assert engine.ingest(Sample(TEMPERATURE, JULY, 27.0, sequence=1))
    assert engine.ingest(Sample(TEMPERATURE, JULY, 27.0, sequence=1)) == []
    assert engine.ingest(Sample(TEMPERATURE, JULY, 23.0, sequence=2)) == []
    assert engine.latest(TEMPERATURE).value == 27.0


def test_a_backfilled_sample_is_judged_as_of_its_own_time():
    engine = RuleEngine(environment_rules())
    # After the WAN comes back, the node's newest sample arrives first, in winter ...
    winter = engine.ingest(Sample(TEMPERATURE, FIRST_OF_NOVEMBER_LOCAL, 23.0, sequence=2))
    assert by_rule(winter) == {"env.temperature": True}
    # ... then the backlog: the same 23 °C two hours earlier was still summer, and within limits.
    backfilled = engine.ingest(Sample(TEMPERATURE, LAST_OF_OCTOBER_LOCAL, 23.0, sequence=1))
    assert by_rule(backfilled) == {"env.temperature": False}
    assert backfilled[0].observed_at == LAST_OF_OCTOBER_LOCAL
    assert "summer" in backfilled[0].summary
    assert engine.latest(TEMPERATURE).observed_at == FIRST_OF_NOVEMBER_LOCAL


def test_a_backfilled_rate_sees_only_what_came_before_it():
    engine = RuleEngine(environment_rules())
    # A steady hour, then a jump of 8 °C at minute 90 that arrives before the backlog.
    engine.ingest(Sample(TEMPERATURE, JULY + 90 * 60, 30.0))
    findings = []
    for minute in range(61):
        findings = engine.ingest(Sample(TEMPERATURE, JULY + minute * 60, 22.0))
    # As of minute 60 the room had been steady for an hour; the later jump does not count.
    assert by_rule(findings) == {"env.temperature": False, "env.temperature-change": False}
    rate = next(f for f in findings if f.rule_id == "env.temperature-change")
    assert rate.value == 0.0
    assert rate.observed_at == JULY + 3600


def test_the_window_keeps_what_the_rules_need_beyond_the_retention():
    engine = RuleEngine(capacity_rules(), retention_seconds=3600)
    vcpu = SeriesKey.of(Metric.CAPACITY_UTILISATION_PERCENT, "hospital-a", "", resource="vcpu")
    findings = []
    for day in range(8):
        findings = engine.ingest(Sample(vcpu, JULY + day * 86400, 40.0 + 2.0 * day))
    assert engine.window(vcpu).retention_seconds == 7 * 86400
    assert len(engine.window(vcpu)) == 8
    assert by_rule(findings) == {
        "capacity.utilisation.warning": False,
        "capacity.utilisation.critical": False,
        "capacity.days-to-full": True,
    }
    # A series no rule reads keeps just the retention.
    other = SeriesKey.of("site.door_open", "hospital-a", "door-1")
    assert engine.ingest(Sample(other, JULY, 1.0)) == []
    assert engine.window(other).retention_seconds == 3600


def test_series_latest_and_window():
    engine = RuleEngine(default_rules())
    assert engine.series() == ()
    assert engine.latest(TEMPERATURE) is None
    assert engine.window(TEMPERATURE) is None
    engine.ingest(Sample(TEMPERATURE, JULY, 23.0))
    engine.ingest(Sample(TEMPERATURE, JULY + 60, 23.5))
    engine.ingest(Sample(THREE_PHASE, JULY, 380.0))
    assert set(engine.series()) == {TEMPERATURE, THREE_PHASE}
    assert engine.latest(TEMPERATURE) == Sample(TEMPERATURE, JULY + 60, 23.5)
    assert [s.value for s in engine.window(TEMPERATURE).samples()] == [23.0, 23.5]


def test_replacing_the_rules_keeps_the_samples():
    engine = RuleEngine(environment_rules())
    engine.ingest(Sample(TEMPERATURE, JULY, 24.0))
    strict = RangeRule(
        id="site.temperature",
        requirement_id="R-7.1-1",
        metric=Metric.TEMPERATURE_CELSIUS,
        quantity=Quantity("temperature", "°C"),
        severity=Severity.WARNING,
        limits=Limits(maximum=23.5),
    )
    engine.replace_rules([strict])
    assert engine.rules == (strict,)
    assert engine.rules_for(TEMPERATURE) == (strict,)
    assert engine.latest(TEMPERATURE).value == 24.0
    assert by_rule(engine.ingest(Sample(TEMPERATURE, JULY + 60, 24.0))) == {
        "site.temperature": True
    }


def test_rule_ids_must_be_unique():
    with pytest.raises(ValueError, match=r"env\.temperature"):
        RuleEngine([*environment_rules(), *environment_rules()[:1]])
