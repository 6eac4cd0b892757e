"""Monitoring's domain events as the `medcloud.monitoring.v1` messages published on the bus."""

from __future__ import annotations

from google.protobuf.message import Message

from medcloud.monitoring.adapters.codecs import (
    alert_to_proto,
    inspection_to_proto,
    timestamp,
    work_order_to_proto,
)
from medcloud.monitoring.domain import events
from medcloud.monitoring.v1 import monitoring_events_pb2 as pb


class ProtobufMonitoringEvents:
    def payload(self, event: object) -> Message:
        match event:
            case events.AlertRaised(alert=alert):
                return pb.AlertRaised(alert=alert_to_proto(alert))
            case events.AlertResolved(alert=alert):
                return pb.AlertResolved(alert=alert_to_proto(alert))
            case events.AlertAcknowledged(alert=alert):
                return pb.AlertAcknowledged(alert=alert_to_proto(alert))
            case events.AlertEscalated(alert=alert, level=level, notify=notify):
                return pb.AlertEscalated(alert=alert_to_proto(alert), level=level, notify=notify)
            case events.WorkOrderOpened(work_order=order):
                return pb.WorkOrderOpened(work_order=work_order_to_proto(order))
            case events.SiteDown():
                return pb.SiteDown(
                    centre_id=event.centre_id,
                    reason=event.reason,
                    since=timestamp(event.since),
                    nodes_missing=event.nodes_missing,
                )
            case events.SiteUp():
                return pb.SiteUp(centre_id=event.centre_id, since=timestamp(event.since))
            case events.LinkDown():
                return pb.LinkDown(link_id=event.link_id, since=timestamp(event.since))
            case events.LinkUp():
                return pb.LinkUp(link_id=event.link_id, since=timestamp(event.since))
            case events.InspectionCompleted(report=report):
                return pb.InspectionCompleted(report=inspection_to_proto(report))
        raise TypeError(f"no message for {type(event).__name__}")

    def event_id(self, event: object) -> str:
        """The same transition yields the same id, so a retried write publishes it once."""
        match event:
            case events.AlertRaised(alert=a):
                return f"AlertRaised-{a.id}-{a.raised_at!r}-{a.flapping}"
            case events.AlertResolved(alert=a):
                return f"AlertResolved-{a.id}-{a.resolved_at!r}-{a.flapping}"
            case events.AlertAcknowledged(alert=a):
                return f"AlertAcknowledged-{a.id}-{a.acknowledged_at!r}"
            case events.AlertEscalated(alert=a, level=level):
                return f"AlertEscalated-{a.id}-{a.raised_at!r}-{level}"
            case events.WorkOrderOpened(work_order=order):
                return f"WorkOrderOpened-{order.id}"
            case events.SiteDown() | events.SiteUp():
                return f"{type(event).__name__}-{event.centre_id}-{event.since!r}"
            case events.LinkDown() | events.LinkUp():
                return f"{type(event).__name__}-{event.link_id}-{event.since!r}"
            case events.InspectionCompleted(report=report):
                return f"InspectionCompleted-{report.centre_id}-{report.inspected_at!r}"
        raise TypeError(f"no id for {type(event).__name__}")
