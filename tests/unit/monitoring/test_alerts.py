"""An alert is raised once per condition, escalates on schedule until someone acknowledges it,
keeps quiet while it flaps, and a book rebuilt from stored alerts carries on where it was."""

from __future__ import annotations

import pytest

from medcloud.core.errors import FailedPrecondition, InvalidArgument, NotFound
from medcloud.monitoring.domain.alerts import (
    DEFAULT_ESCALATION,
    AlertBook,
    AlertState,
    EscalationLevel,
    EscalationPolicy,
    FlappingPolicy,
    WorkOrderState,
    alert_id,
)
from medcloud.monitoring.domain.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertRaised,
    AlertResolved,
    WorkOrderOpened,
)
from medcloud.monitoring.domain.findings import Finding, Severity
from medcloud.monitoring.domain.samples import Metric, SeriesKey

SERIES = SeriesKey.of(Metric.TEMPERATURE_CELSIUS, "hospital-a", "room-sensor-1")
RULE = "room-temperature"


def finding(
    firing: bool = True,
    value: float = 26.1,
    severity: Severity = Severity.CRITICAL,
    series: SeriesKey = SERIES,
) -> Finding:
    return Finding(
        rule_id=RULE,
        requirement_id="R-7.1-1",
        series=series,
        severity=severity,
        firing=firing,
        value=value,
        observed_at=0.0,
        summary=f"temperature {value} °C above 25.0 °C (summer 23±2 °C)",
    )


def book(*alerts) -> AlertBook:
    return AlertBook(DEFAULT_ESCALATION, FlappingPolicy(), alerts)


def kinds(events) -> list[str]:
    return [type(event).__name__ for event in events]


def levels(events) -> list[tuple[int, str]]:
    return [(e.level, e.notify) for e in events if isinstance(e, AlertEscalated)]


def test_the_same_condition_twice_is_one_alert():
    alerts = book()
    first = alerts.observe(finding(value=26.1), now=0)
    second = alerts.observe(finding(value=26.4), now=10)
    assert kinds(first) == ["AlertRaised", "AlertEscalated"]
    assert second == []
    (alert,) = alerts.all()
    assert alert.id == alert_id(RULE, SERIES)
    assert (alert.raised_at, alert.last_seen_at, alert.value) == (0, 10, 26.4)
    assert "26.4" in alert.summary


def test_the_id_is_stable_and_tells_series_apart():
    other_node = SeriesKey.of(Metric.TEMPERATURE_CELSIUS, "hospital-a", "room-sensor-2")
    assert alert_id(RULE, SERIES) == alert_id(RULE, SERIES)
    assert alert_id(RULE, SERIES) != alert_id(RULE, other_node)
    assert alert_id(RULE, SERIES) != alert_id("room-humidity", SERIES)
    assert len(alert_id(RULE, SERIES)) == 16


def test_a_critical_alert_tells_the_on_duty_engineer_at_once():
    events = book().observe(finding(), now=0)
    assert isinstance(events[0], AlertRaised)
    assert levels(events) == [(1, "on-duty engineer")]
    assert events[1].alert.escalation_level == 1


def test_an_info_finding_raises_without_escalating():
    alerts = book()
    assert kinds(alerts.observe(finding(severity=Severity.INFO), now=0)) == ["AlertRaised"]
    assert alerts.tick(now=10 * 24 * 3600) == []
    assert alerts.drain_work_orders() == []


def test_a_cleared_condition_resolves_and_escalation_stops():
    alerts = book()
    alerts.observe(finding(), now=0)
    events = alerts.observe(finding(firing=False, value=24.0), now=120)
    assert kinds(events) == ["AlertResolved"]
    assert events[0].alert.state is AlertState.RESOLVED
    assert events[0].alert.resolved_at == 120
    assert alerts.open_alerts() == []
    assert alerts.tick(now=2000) == []


def test_a_clear_finding_without_an_alert_does_nothing():
    alerts = book()
    assert alerts.observe(finding(firing=False), now=0) == []
    assert alerts.all() == []
    alerts.observe(finding(), now=10)
    alerts.observe(finding(firing=False), now=20)
    assert alerts.observe(finding(firing=False), now=30) == []


def test_a_re_fire_after_resolve_is_a_new_raise_under_the_same_id():
    alerts = book()
    alerts.observe(finding(), now=0)
    alerts.acknowledge(alert_id(RULE, SERIES), "alice", now=5)
    alerts.observe(finding(firing=False), now=100)
    events = alerts.observe(finding(), now=1000)
    assert kinds(events) == ["AlertRaised", "AlertEscalated"]
    alert = alerts.get(alert_id(RULE, SERIES))
    assert alert.state is AlertState.FIRING
    assert (alert.raised_at, alert.resolved_at, alert.acknowledged_by) == (1000, None, "")
    assert alert.escalation_level == 1


def test_an_unacknowledged_critical_alert_escalates_on_schedule():
    alerts = book()
    alerts.observe(finding(), now=0)
    assert alerts.tick(now=299) == []
    assert levels(alerts.tick(now=300)) == [(2, "shift lead")]
    assert alerts.tick(now=301) == []
    events = alerts.tick(now=900)
    assert levels(events) == [(3, "IT director")]
    (opened,) = [e for e in events if isinstance(e, WorkOrderOpened)]
    work_order = opened.work_order
    assert work_order.alert_id == alert_id(RULE, SERIES)
    assert (work_order.centre_id, work_order.requirement_id) == ("hospital-a", "R-7.1-1")
    assert (work_order.severity, work_order.opened_at) == (Severity.CRITICAL, 900)
    assert work_order.state is WorkOrderState.OPEN
    assert work_order.escalated_to == "IT director"
    assert alerts.get(alert_id(RULE, SERIES)).work_order_id == work_order.id
    assert alerts.drain_work_orders() == [work_order]
    assert alerts.tick(now=901) == []
    assert alerts.tick(now=100_000) == []
    assert alerts.drain_work_orders() == []


def test_a_late_tick_catches_up_every_level_it_missed():
    alerts = book()
    alerts.observe(finding(), now=0)
    events = alerts.tick(now=1200)
    assert levels(events) == [(2, "shift lead"), (3, "IT director")]
    assert kinds(events)[-1] == "WorkOrderOpened"


def test_acknowledging_stops_escalation_and_no_work_order_opens():
    alerts = book()
    alerts.observe(finding(), now=0)
    events = alerts.acknowledge(alert_id(RULE, SERIES), "alice", now=60)
    assert kinds(events) == ["AlertAcknowledged"]
    alert = events[0].alert
    assert alert.state is AlertState.ACKNOWLEDGED
    assert (alert.acknowledged_by, alert.acknowledged_at) == ("alice", 60)
    assert alerts.tick(now=300) == []
    assert alerts.tick(now=100_000) == []
    assert alerts.drain_work_orders() == []
    assert alerts.get(alert.id).work_order_id == ""


def test_an_acknowledged_alert_still_dedups_and_resolves():
    alerts = book()
    alerts.observe(finding(), now=0)
    alerts.acknowledge(alert_id(RULE, SERIES), "alice", now=60)
    assert alerts.observe(finding(), now=70) == []
    assert alerts.get(alert_id(RULE, SERIES)).state is AlertState.ACKNOWLEDGED
    assert kinds(alerts.observe(finding(firing=False), now=80)) == ["AlertResolved"]


def test_acknowledging_twice_by_the_same_person_changes_nothing():
    alerts = book()
    alerts.observe(finding(), now=0)
    alerts.acknowledge(alert_id(RULE, SERIES), "alice", now=60)
    assert alerts.acknowledge(alert_id(RULE, SERIES), "alice", now=70) == []
    assert alerts.get(alert_id(RULE, SERIES)).acknowledged_at == 60


def test_acknowledge_refusals():
    alerts = book()
    with pytest.raises(NotFound):
        alerts.acknowledge("no-such-alert", "alice", now=0)
    alerts.observe(finding(), now=0)
    with pytest.raises(InvalidArgument) as empty:
        alerts.acknowledge(alert_id(RULE, SERIES), "  ", now=1)
    assert empty.value.violations[0].field == "by"
    alerts.acknowledge(alert_id(RULE, SERIES), "alice", now=2)
    with pytest.raises(FailedPrecondition, match="alice"):
        alerts.acknowledge(alert_id(RULE, SERIES), "bob", now=3)
    alerts.observe(finding(firing=False), now=4)
    with pytest.raises(FailedPrecondition, match="resolved"):
        alerts.acknowledge(alert_id(RULE, SERIES), "alice", now=5)


def test_a_flapping_alert_keeps_quiet_until_it_settles():
    alerts = book()
    heard = []
    # Five changes within ten minutes: the fifth makes it flapping.
    for now, firing in [(0, True), (60, False), (120, True), (180, False), (240, True)]:
        heard += alerts.observe(finding(firing=firing), now=now)
    assert kinds(heard) == [
        "AlertRaised",
        "AlertEscalated",
        "AlertResolved",
        "AlertRaised",
        "AlertEscalated",
        "AlertResolved",
    ]
    assert alerts.get(alert_id(RULE, SERIES)).flapping
    assert alerts.observe(finding(firing=False), now=300) == []
    assert alerts.observe(finding(firing=True), now=360) == []
    # Neither escalation nor work orders while it flaps.
    assert alerts.tick(now=959) == []
    settled = alerts.tick(now=960)
    assert kinds(settled[:1]) == ["AlertRaised"]
    # Firing steadily since 360, it owes the levels of the last ten minutes.
    assert levels(settled) == [(1, "on-duty engineer"), (2, "shift lead")]
    alert = alerts.get(alert_id(RULE, SERIES))
    assert not alert.flapping
    assert alert.recent_changes == ()
    assert alerts.tick(now=961) == []


def test_a_flapping_alert_that_settles_resolved_says_so_once():
    alerts = book()
    for now, firing in [(0, True), (10, False), (20, True), (30, False), (40, True), (50, False)]:
        alerts.observe(finding(firing=firing), now=now)
    assert kinds(alerts.tick(now=650)) == ["AlertResolved"]
    assert alerts.tick(now=651) == []


def test_a_rebuilt_book_escalates_where_the_old_one_was():
    alerts = book()
    alerts.observe(finding(), now=0)
    alerts.tick(now=300)
    rebuilt = book(*alerts.drain_changed())
    assert rebuilt.tick(now=300) == []
    assert rebuilt.tick(now=899) == []
    events = rebuilt.tick(now=900)
    assert levels(events) == [(3, "IT director")]
    assert kinds(events)[-1] == "WorkOrderOpened"
    again = book(*rebuilt.all())
    assert again.tick(now=1000) == []


def test_drain_changed_hands_out_what_changed_once():
    alerts = book()
    alerts.observe(finding(), now=0)
    (changed,) = alerts.drain_changed()
    assert changed.escalation_level == 1
    assert alerts.drain_changed() == []
    # A refresh of the same firing condition is not worth a write.
    alerts.observe(finding(value=27.0), now=10)
    assert alerts.drain_changed() == []
    alerts.tick(now=300)
    assert [a.escalation_level for a in alerts.drain_changed()] == [2]


def test_open_alerts_lists_firing_and_acknowledged_oldest_first():
    alerts = book()
    other = SeriesKey.of(Metric.TEMPERATURE_CELSIUS, "hospital-a", "room-sensor-2")
    third = SeriesKey.of(Metric.TEMPERATURE_CELSIUS, "hospital-b", "room-sensor-1")
    alerts.observe(finding(series=other), now=5)
    alerts.observe(finding(series=SERIES), now=0)
    alerts.observe(finding(series=third), now=7)
    alerts.observe(finding(series=third, firing=False), now=8)
    alerts.acknowledge(alert_id(RULE, other), "alice", now=9)
    assert [a.series for a in alerts.open_alerts()] == [SERIES, other]
    assert len(alerts.all()) == 3


def test_a_warning_escalates_after_an_hour_and_opens_a_work_order_after_four():
    alerts = book()
    alerts.observe(finding(severity=Severity.WARNING), now=0)
    assert levels(alerts.tick(now=3600)) == [(2, "shift lead")]
    assert alerts.tick(now=4 * 3600 - 1) == []
    assert kinds(alerts.tick(now=4 * 3600)) == ["WorkOrderOpened"]


def test_get_refuses_an_unknown_alert():
    with pytest.raises(NotFound):
        book().get("nope")


def test_escalation_levels_must_increase():
    with pytest.raises(InvalidArgument) as refused:
        EscalationPolicy(
            levels={
                Severity.CRITICAL: (
                    EscalationLevel(0, "on-duty engineer"),
                    EscalationLevel(600, "shift lead"),
                    EscalationLevel(300, "IT director"),
                )
            }
        )
    assert [v.field for v in refused.value.violations] == [
        "escalation.levels.critical[2].after_seconds"
    ]


def test_escalation_policy_refuses_negative_times_and_nameless_levels():
    with pytest.raises(InvalidArgument) as refused:
        EscalationPolicy(
            levels={Severity.WARNING: (EscalationLevel(-1, ""),)},
            work_order_after_seconds={Severity.WARNING: -5},
        )
    assert {v.field for v in refused.value.violations} == {
        "escalation.levels.warning[0].after_seconds",
        "escalation.levels.warning[0].notify",
        "escalation.work_order_after_seconds.warning",
    }


def test_flapping_policy_is_validated():
    with pytest.raises(InvalidArgument) as refused:
        FlappingPolicy(window_seconds=0, max_changes=0)
    assert {v.field for v in refused.value.violations} == {
        "flapping.window_seconds",
        "flapping.max_changes",
    }


def test_events_carry_the_alert_as_it_is_then():
    alerts = book()
    raised, escalated = alerts.observe(finding(), now=0)
    assert isinstance(raised, AlertRaised)
    assert raised.alert.escalation_level == 0
    assert escalated.alert.escalation_level == 1
    (acknowledged,) = alerts.acknowledge(raised.alert.id, "alice", now=1)
    assert isinstance(acknowledged, AlertAcknowledged)
    (resolved,) = alerts.observe(finding(firing=False), now=2)
    assert isinstance(resolved, AlertResolved)
    assert resolved.alert.acknowledged_by == "alice"


def test_the_default_policy_is_the_standard_escalation():
    assert EscalationPolicy() == DEFAULT_ESCALATION
    assert DEFAULT_ESCALATION.levels_for(Severity.CRITICAL) == (
        EscalationLevel(0, "on-duty engineer"),
        EscalationLevel(300, "shift lead"),
        EscalationLevel(900, "IT director"),
    )
    assert [lv.after_seconds for lv in DEFAULT_ESCALATION.levels_for(Severity.WARNING)] == [0, 3600]
    assert DEFAULT_ESCALATION.levels_for(Severity.INFO) == ()
    assert DEFAULT_ESCALATION.work_order_after(Severity.CRITICAL) == 900
    assert DEFAULT_ESCALATION.work_order_after(Severity.WARNING) == 4 * 3600
    assert DEFAULT_ESCALATION.work_order_after(Severity.INFO) is None
