"""Alerts from raise to resolve, escalated level by level until someone acknowledges (R-7.7b)."""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from medcloud.core.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from medcloud.monitoring.domain.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertEvent,
    AlertRaised,
    AlertResolved,
    WorkOrderOpened,
)
from medcloud.monitoring.domain.findings import Finding, Severity
from medcloud.monitoring.domain.samples import SeriesKey


class AlertState(enum.Enum):
    FIRING = "firing"
    # The condition still holds, but someone owns it: escalation stops.
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class WorkOrderState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


def _short_hash(*parts: object) -> str:
    # JSON keeps the parts apart unambiguously ("a|b" + "c" never hashes like "a" + "b|c").
    encoded = json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def alert_id(rule_id: str, series: SeriesKey) -> str:
    """The same rule on the same series is always the same alert, across restarts and replicas:
    that is what de-duplicates it."""
    labels = [list(pair) for pair in series.labels]
    return _short_hash(rule_id, series.metric, series.centre_id, series.node_id, labels)


@dataclass(frozen=True, slots=True)
class Alert:
    """One condition one rule found on one series. Times are Unix seconds at the centre;
    `escalation_level` counts the levels notified so far (0 before the first); `recent_changes`
    are the instants it went firing or resolved within the flapping window."""

    id: str
    rule_id: str
    requirement_id: str
    series: SeriesKey
    severity: Severity
    summary: str
    value: float
    state: AlertState
    raised_at: float
    last_seen_at: float
    resolved_at: float | None = None
    acknowledged_by: str = ""
    acknowledged_at: float | None = None
    escalation_level: int = 0
    flapping: bool = False
    recent_changes: tuple[float, ...] = ()
    work_order_id: str = ""

    @property
    def is_open(self) -> bool:
        return self.state is not AlertState.RESOLVED


@dataclass(frozen=True, slots=True)
class WorkOrder:
    """A ticket for people, opened when an alert went unacknowledged too long; `escalated_to` is
    who the alert's last escalation level notified."""

    id: str
    alert_id: str
    centre_id: str
    requirement_id: str
    severity: Severity
    summary: str
    opened_at: float
    state: WorkOrderState = WorkOrderState.OPEN
    escalated_to: str = ""


@dataclass(frozen=True, slots=True)
class EscalationLevel:
    """Who is told once an alert has gone `after_seconds` since its raise without acknowledgement."""

    after_seconds: float
    notify: str


def _escalation_violations(
    levels: Mapping[Severity, tuple[EscalationLevel, ...]],
    work_order_after_seconds: Mapping[Severity, float],
) -> Iterator[FieldViolation]:
    for severity, severity_levels in levels.items():
        previous_seconds = -math.inf
        for index, level in enumerate(severity_levels):
            path = f"escalation.levels.{severity.value}[{index}]"
            if level.after_seconds < 0:
                yield FieldViolation(
                    f"{path}.after_seconds", f"must not be negative, got {level.after_seconds}"
                )
            elif level.after_seconds <= previous_seconds:
                yield FieldViolation(
                    f"{path}.after_seconds",
                    f"must be greater than the level before ({previous_seconds} s), "
                    f"got {level.after_seconds}",
                )
            previous_seconds = max(previous_seconds, level.after_seconds)
            if not level.notify.strip():
                yield FieldViolation(f"{path}.notify", "must name who this level tells")
    for severity, seconds in work_order_after_seconds.items():
        if seconds < 0:
            yield FieldViolation(
                f"escalation.work_order_after_seconds.{severity.value}",
                f"must not be negative, got {seconds}",
            )


# The standard escalation: critical alerts reach the IT director within a quarter of an hour,
# warnings the shift lead within an hour; information never pages anyone.
_STANDARD_LEVELS: Mapping[Severity, tuple[EscalationLevel, ...]] = {
    Severity.CRITICAL: (
        EscalationLevel(0, "on-duty engineer"),
        EscalationLevel(300, "shift lead"),
        EscalationLevel(900, "IT director"),
    ),
    Severity.WARNING: (EscalationLevel(0, "on-duty engineer"), EscalationLevel(3600, "shift lead")),
}
_STANDARD_WORK_ORDER_AFTER_SECONDS: Mapping[Severity, float] = {
    Severity.CRITICAL: 900,
    Severity.WARNING: 4 * 3600,
}


@dataclass(frozen=True)
class EscalationPolicy:
    """Escalation levels and when a work order opens, per severity; a severity missing from a
    mapping neither escalates nor opens work orders. The defaults are the standard escalation."""

    levels: Mapping[Severity, tuple[EscalationLevel, ...]] = field(
        default_factory=lambda: dict(_STANDARD_LEVELS)
    )
    work_order_after_seconds: Mapping[Severity, float] = field(
        default_factory=lambda: dict(_STANDARD_WORK_ORDER_AFTER_SECONDS)
    )

    def __post_init__(self) -> None:
        violations = list(_escalation_violations(self.levels, self.work_order_after_seconds))
        if violations:
            raise InvalidArgument(violations)

    def levels_for(self, severity: Severity) -> tuple[EscalationLevel, ...]:
        return self.levels.get(severity, ())

    def work_order_after(self, severity: Severity) -> float | None:
        return self.work_order_after_seconds.get(severity)


DEFAULT_ESCALATION = EscalationPolicy()


@dataclass(frozen=True, slots=True)
class FlappingPolicy:
    """An alert that goes firing or resolved more than `max_changes` times within `window_seconds`
    is flapping; it stops once it has not changed for `window_seconds`."""

    window_seconds: float = 600
    max_changes: int = 4

    def __post_init__(self) -> None:
        violations = []
        if self.window_seconds <= 0:
            violations.append(
                FieldViolation(
                    "flapping.window_seconds", f"must be greater than 0, got {self.window_seconds}"
                )
            )
        if self.max_changes < 1:
            violations.append(
                FieldViolation(
                    "flapping.max_changes", f"must be at least 1, got {self.max_changes}"
                )
            )
        if violations:
            raise InvalidArgument(violations)


class AlertBook:
    """Every alert the centre knows, one per rule and series. The service persists what
    `drain_changed` hands out and rebuilds the book from those alerts after a restart; every
    timer is computed from stored instants, so a rebuilt book escalates exactly where it was."""

    def __init__(
        self,
        escalation: EscalationPolicy,
        flapping: FlappingPolicy,
        alerts: Iterable[Alert] = (),
    ) -> None:
        self._escalation = escalation
        self._flapping = flapping
        self._alerts = {alert.id: alert for alert in alerts}
        # Ids in the order they changed; a dict is an ordered set.
        self._changed: dict[str, None] = {}
        self._work_orders: list[WorkOrder] = []

    def observe(self, finding: Finding, now: float) -> list[AlertEvent]:
        """Raises, refreshes or resolves the alert of the finding's rule and series."""
        key = alert_id(finding.rule_id, finding.series)
        current = self._alerts.get(key)
        if finding.firing:
            if current is not None and current.is_open:
                # Not marked changed: the next finding after a restart refreshes these, and
                # writing every firing alert to etcd on every evaluation would load it for nothing.
                self._alerts[current.id] = replace(
                    current, last_seen_at=now, value=finding.value, summary=finding.summary
                )
                return []
            return self._raise(key, finding, current, now)
        if current is None or not current.is_open:
            return []
        return self._resolve(current, now)

    def acknowledge(self, alert_id: str, by: str, now: float) -> list[AlertEvent]:
        """Someone owns the alert: it stops escalating and no work order opens for it."""
        if not by.strip():
            raise InvalidArgument.single("by", "must name who acknowledges the alert")
        alert = self.get(alert_id)
        if alert.state is AlertState.RESOLVED:
            raise FailedPrecondition(f"alert {alert_id!r} is resolved: there is nothing to own")
        if alert.state is AlertState.ACKNOWLEDGED:
            if alert.acknowledged_by == by:
                return []
            raise FailedPrecondition(
                f"alert {alert_id!r} is already acknowledged by {alert.acknowledged_by!r}"
            )
        acknowledged = replace(
            alert, state=AlertState.ACKNOWLEDGED, acknowledged_by=by, acknowledged_at=now
        )
        self._store(acknowledged)
        return [AlertAcknowledged(acknowledged)]

    def tick(self, now: float) -> list[AlertEvent]:
        """Ends flapping that has settled and escalates what is due, catching up every level a
        late tick missed; call it every few seconds."""
        events: list[AlertEvent] = []
        for alert in sorted(self._alerts.values(), key=lambda alert: alert.id):
            quiet_seconds = now - max(alert.recent_changes, default=-math.inf)
            if alert.flapping and quiet_seconds >= self._flapping.window_seconds:
                alert = replace(alert, flapping=False, recent_changes=())
                self._store(alert)
                # One notification of where it settled, for everything suppressed meanwhile.
                events.append(AlertRaised(alert) if alert.is_open else AlertResolved(alert))
            events += self._escalate(alert, now)
        return events

    def get(self, alert_id: str) -> Alert:
        alert = self._alerts.get(alert_id)
        if alert is None:
            raise NotFound("alert", alert_id)
        return alert

    def open_alerts(self) -> list[Alert]:
        """Firing and acknowledged alerts, oldest raise first."""
        return sorted(
            (alert for alert in self._alerts.values() if alert.is_open),
            key=lambda alert: (alert.raised_at, alert.id),
        )

    def all(self) -> list[Alert]:
        return sorted(self._alerts.values(), key=lambda alert: alert.id)

    def drain_changed(self) -> list[Alert]:
        """Alerts whose state, escalation, flapping or work order changed since the last drain,
        as they are now: what the service writes to etcd."""
        changed = [self._alerts[changed_id] for changed_id in self._changed]
        self._changed.clear()
        return changed

    def drain_work_orders(self) -> list[WorkOrder]:
        """Work orders opened since the last drain."""
        opened, self._work_orders = self._work_orders, []
        return opened

    def _store(self, alert: Alert) -> None:
        self._alerts[alert.id] = alert
        self._changed[alert.id] = None

    def _changes_with(self, alert: Alert | None, now: float) -> tuple[tuple[float, ...], bool]:
        """The recent changes once `now` is added, and whether the alert is flapping after it."""
        earlier = alert.recent_changes if alert is not None else ()
        window_seconds = self._flapping.window_seconds
        changes = (*(at for at in earlier if now - at < window_seconds), now)
        # Once flapping, only a quiet window ends it (in `tick`), not a thinner count.
        flapping = len(changes) > self._flapping.max_changes or (
            alert is not None and alert.flapping
        )
        return changes, flapping

    def _raise(
        self, key: str, finding: Finding, previous: Alert | None, now: float
    ) -> list[AlertEvent]:
        changes, flapping = self._changes_with(previous, now)
        # A re-fire after a resolve is a new raise under the same id: acknowledgement, escalation
        # and work order belong to the previous episode.
        alert = Alert(
            id=key,
            rule_id=finding.rule_id,
            requirement_id=finding.requirement_id,
            series=finding.series,
            severity=finding.severity,
            summary=finding.summary,
            value=finding.value,
            state=AlertState.FIRING,
            raised_at=now,
            last_seen_at=now,
            flapping=flapping,
            recent_changes=changes,
        )
        self._store(alert)
        if flapping:
            return []
        return [AlertRaised(alert), *self._escalate(alert, now)]

    def _resolve(self, alert: Alert, now: float) -> list[AlertEvent]:
        changes, flapping = self._changes_with(alert, now)
        resolved = replace(
            alert,
            state=AlertState.RESOLVED,
            resolved_at=now,
            flapping=flapping,
            recent_changes=changes,
        )
        self._store(resolved)
        return [] if flapping else [AlertResolved(resolved)]

    def _escalate(self, alert: Alert, now: float) -> list[AlertEvent]:
        if alert.state is not AlertState.FIRING or alert.flapping:
            return []
        elapsed_seconds = now - alert.raised_at
        levels = self._escalation.levels_for(alert.severity)
        events: list[AlertEvent] = []
        while (
            alert.escalation_level < len(levels)
            and levels[alert.escalation_level].after_seconds <= elapsed_seconds
        ):
            notify = levels[alert.escalation_level].notify
            alert = replace(alert, escalation_level=alert.escalation_level + 1)
            events.append(AlertEscalated(alert, alert.escalation_level, notify))
        work_order_after_seconds = self._escalation.work_order_after(alert.severity)
        if (
            work_order_after_seconds is not None
            and not alert.work_order_id
            and elapsed_seconds >= work_order_after_seconds
        ):
            escalated_to = (
                levels[alert.escalation_level - 1].notify if alert.escalation_level else ""
            )
            work_order = WorkOrder(
                # Derived, not random: a book rebuilt after a crash that lost the alert's write
                # opens the same work order again, which downstream de-duplicates by id.
                id=f"wo-{_short_hash(alert.id, repr(alert.raised_at))}",
                alert_id=alert.id,
                centre_id=alert.series.centre_id,
                requirement_id=alert.requirement_id,
                severity=alert.severity,
                summary=alert.summary,
                opened_at=now,
                escalated_to=escalated_to,
            )
            alert = replace(alert, work_order_id=work_order.id)
            self._work_orders.append(work_order)
            events.append(WorkOrderOpened(work_order))
        if events:
            self._store(alert)
        return events
