"""Mapping between monitoring's domain and `medcloud.monitoring.v1` messages."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from medcloud.monitoring.domain.alerts import Alert, AlertState, WorkOrder, WorkOrderState
from medcloud.monitoring.domain.findings import Severity
from medcloud.monitoring.domain.inspection import Check, InspectionReport
from medcloud.monitoring.domain.rules import Rule
from medcloud.monitoring.domain.samples import Sample, SeriesKey
from medcloud.monitoring.domain.settings import RuleSettings
from medcloud.monitoring.domain.site_health import CentreHealth
from medcloud.monitoring.v1 import monitoring_pb2 as pb
from medcloud.runtime.proto_enums import enum_from_proto, enum_to_proto


def sample_to_proto(sample: Sample) -> pb.Sample:
    return pb.Sample(
        metric=sample.series.metric,
        labels=dict(sample.series.labels),
        observed_at_unix_seconds=sample.observed_at,
        value=sample.value,
        sequence=sample.sequence,
    )


def sample_from_proto(message: pb.Sample, series: SeriesKey) -> Sample:
    return Sample(series, message.observed_at_unix_seconds, message.value, message.sequence)


def series_to_proto(series: SeriesKey) -> pb.SeriesKey:
    return pb.SeriesKey(
        metric=series.metric,
        centre_id=series.centre_id,
        node_id=series.node_id,
        labels=dict(series.labels),
    )


def series_from_proto(message: pb.SeriesKey) -> SeriesKey:
    return SeriesKey(
        message.metric, message.centre_id, message.node_id, tuple(sorted(message.labels.items()))
    )


def timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def _seconds(stamp: timestamp_pb2.Timestamp) -> float:
    return stamp.ToNanoseconds() / 1e9


def alert_to_proto(alert: Alert) -> pb.Alert:
    return pb.Alert(
        id=alert.id,
        rule_id=alert.rule_id,
        requirement_id=alert.requirement_id,
        series=series_to_proto(alert.series),
        severity=enum_to_proto(alert.severity, pb.Severity),
        summary=alert.summary,
        value=alert.value,
        state=enum_to_proto(alert.state, pb.AlertState),
        raised_at=timestamp(alert.raised_at),
        last_seen_at=timestamp(alert.last_seen_at),
        resolved_at=timestamp(alert.resolved_at),
        acknowledged_by=alert.acknowledged_by,
        acknowledged_at=timestamp(alert.acknowledged_at),
        escalation_level=alert.escalation_level,
        flapping=alert.flapping,
        work_order_id=alert.work_order_id,
        recent_changes=[timestamp(at) for at in alert.recent_changes],
    )


def alert_from_proto(message: pb.Alert) -> Alert:
    return Alert(
        id=message.id,
        rule_id=message.rule_id,
        requirement_id=message.requirement_id,
        series=series_from_proto(message.series),
        severity=enum_from_proto(message.severity, pb.Severity, Severity, "alert.severity"),
        summary=message.summary,
        value=message.value,
        state=enum_from_proto(message.state, pb.AlertState, AlertState, "alert.state"),
        raised_at=_seconds(message.raised_at),
        last_seen_at=_seconds(message.last_seen_at),
        resolved_at=_seconds(message.resolved_at) if message.HasField("resolved_at") else None,
        acknowledged_by=message.acknowledged_by,
        acknowledged_at=(
            _seconds(message.acknowledged_at) if message.HasField("acknowledged_at") else None
        ),
        escalation_level=message.escalation_level,
        flapping=message.flapping,
        recent_changes=tuple(_seconds(at) for at in message.recent_changes),
        work_order_id=message.work_order_id,
    )


def alert_state_from_proto(number: int) -> AlertState:
    return enum_from_proto(number, pb.AlertState, AlertState, "states")


def work_order_to_proto(order: WorkOrder) -> pb.WorkOrder:
    return pb.WorkOrder(
        id=order.id,
        alert_id=order.alert_id,
        centre_id=order.centre_id,
        requirement_id=order.requirement_id,
        severity=enum_to_proto(order.severity, pb.Severity),
        summary=order.summary,
        opened_at=timestamp(order.opened_at),
        state=enum_to_proto(order.state, pb.WorkOrderState),
        escalated_to=order.escalated_to,
    )


def work_order_from_proto(message: pb.WorkOrder) -> WorkOrder:
    return WorkOrder(
        id=message.id,
        alert_id=message.alert_id,
        centre_id=message.centre_id,
        requirement_id=message.requirement_id,
        severity=enum_from_proto(message.severity, pb.Severity, Severity, "work_order.severity"),
        summary=message.summary,
        opened_at=_seconds(message.opened_at),
        state=enum_from_proto(message.state, pb.WorkOrderState, WorkOrderState, "work_order.state"),
        escalated_to=message.escalated_to,
    )


def settings_to_proto(settings: RuleSettings) -> pb.RuleSettings:
    return pb.RuleSettings(
        summer_months=settings.summer_months,
        time_zone=settings.time_zone,
        disabled_rule_ids=settings.disabled_rule_ids,
    )


def settings_from_proto(message: pb.RuleSettings) -> RuleSettings:
    """Empty fields take the defaults, so a client may send only what it changes."""
    defaults = RuleSettings()
    return RuleSettings(
        summer_months=tuple(message.summer_months) or defaults.summer_months,
        time_zone=message.time_zone or defaults.time_zone,
        disabled_rule_ids=tuple(message.disabled_rule_ids),
    )


class AlertCodec:
    def encode(self, value: Alert) -> bytes:
        return alert_to_proto(value).SerializeToString()

    def decode(self, data: bytes) -> Alert:
        return alert_from_proto(pb.Alert.FromString(data))


class WorkOrderCodec:
    def encode(self, value: WorkOrder) -> bytes:
        return work_order_to_proto(value).SerializeToString()

    def decode(self, data: bytes) -> WorkOrder:
        return work_order_from_proto(pb.WorkOrder.FromString(data))


class RuleSettingsCodec:
    def encode(self, value: RuleSettings) -> bytes:
        return settings_to_proto(value).SerializeToString()

    def decode(self, data: bytes) -> RuleSettings:
        return settings_from_proto(pb.RuleSettings.FromString(data))


def inspection_to_proto(report: InspectionReport) -> pb.InspectionReport:
    return pb.InspectionReport(
        centre_id=report.centre_id,
        inspected_at=timestamp(report.inspected_at),
        passed=report.passed,
        checks=[
            pb.InspectionCheck(
                requirement_id=check.requirement_id,
                name=check.name,
                node_id=check.node_id,
                passed=check.passed,
                detail=check.detail,
                value=check.value,
            )
            for check in report.checks
        ],
    )


def inspection_from_proto(message: pb.InspectionReport) -> InspectionReport:
    return InspectionReport(
        centre_id=message.centre_id,
        inspected_at=_seconds(message.inspected_at),
        checks=tuple(
            Check(
                requirement_id=check.requirement_id,
                name=check.name,
                node_id=check.node_id,
                passed=check.passed,
                detail=check.detail,
                value=check.value if check.HasField("value") else None,
            )
            for check in message.checks
        ),
    )


class InspectionCodec:
    def encode(self, value: InspectionReport) -> bytes:
        return inspection_to_proto(value).SerializeToString()

    def decode(self, data: bytes) -> InspectionReport:
        return inspection_from_proto(pb.InspectionReport.FromString(data))


def rule_to_proto(rule: Rule, enabled: bool) -> pb.Rule:
    return pb.Rule(
        id=rule.id,
        requirement_id=rule.requirement_id,
        metric=rule.metric,
        severity=enum_to_proto(rule.severity, pb.Severity),
        description=rule.description,
        enabled=enabled,
    )


def site_to_proto(centre: CentreHealth) -> pb.SiteHealth:
    return pb.SiteHealth(
        centre_id=centre.centre_id,
        state=enum_to_proto(centre.state, pb.SiteState),
        reason=centre.reason,
        since=timestamp(centre.since),
        nodes_reporting=centre.nodes_reporting,
        nodes_missing=centre.nodes_missing,
    )
