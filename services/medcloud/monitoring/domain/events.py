"""What monitoring publishes: changes in an alert's life, work orders, sites and links going down
or coming back, and inspections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # alerts.py makes these events, so it imports this module; importing its records back for type
    # checking only keeps the modules free of an import cycle at run time.
    from medcloud.monitoring.domain.alerts import Alert, WorkOrder
    from medcloud.monitoring.domain.inspection import InspectionReport


@dataclass(frozen=True, slots=True)
class AlertRaised:
    """A condition holds: a new alert, a re-fire after a resolve, or a flapping alert that settled
    while firing."""

    alert: Alert


@dataclass(frozen=True, slots=True)
class AlertResolved:
    alert: Alert


@dataclass(frozen=True, slots=True)
class AlertAcknowledged:
    alert: Alert


@dataclass(frozen=True, slots=True)
class AlertEscalated:
    """Level `level` (from 1) of the escalation was reached: `notify` is who it tells (R-7.7b)."""

    alert: Alert
    level: int
    notify: str


@dataclass(frozen=True, slots=True)
class WorkOrderOpened:
    work_order: WorkOrder


@dataclass(frozen=True, slots=True)
class SiteDown:
    """`reason` is "heartbeats" (every node silent) or "links" (every link down); `since` is when
    the centre was last heard from, or when its last link went down. Backup fails over on this."""

    centre_id: str
    reason: str
    since: float
    nodes_missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SiteUp:
    """`since` is when the centre has been reachable again from."""

    centre_id: str
    since: float


@dataclass(frozen=True, slots=True)
class LinkDown:
    """`since` is the first of the consecutive down reports that took the link down."""

    link_id: str
    since: float


@dataclass(frozen=True, slots=True)
class LinkUp:
    link_id: str
    since: float


@dataclass(frozen=True, slots=True)
class InspectionCompleted:
    report: InspectionReport


AlertEvent = AlertRaised | AlertResolved | AlertAcknowledged | AlertEscalated | WorkOrderOpened
SiteEvent = SiteDown | SiteUp | LinkDown | LinkUp
