"""Monitoring's use cases: accept each agent's samples exactly once, judge them by the rules, keep
alerts and work orders in etcd with their events, supervise escalation and site health, and inspect
centres."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from medcloud.core.errors import FailedPrecondition
from medcloud.monitoring.app.ports import CapacitySource, MonitoringEvents, SampleLog
from medcloud.monitoring.domain.alerts import (
    Alert,
    AlertBook,
    AlertState,
    EscalationPolicy,
    FlappingPolicy,
    WorkOrder,
    WorkOrderState,
)
from medcloud.monitoring.domain.evaluation import RuleEngine
from medcloud.monitoring.domain.events import InspectionCompleted
from medcloud.monitoring.domain.inspection import InspectionReport, inspect
from medcloud.monitoring.domain.intake import Intake, check_batch, check_centre_id, check_sender
from medcloud.monitoring.domain.rule_pack import default_rules, environment_rules
from medcloud.monitoring.domain.rules import Rule, Season
from medcloud.monitoring.domain.samples import Sample, SeriesKey
from medcloud.monitoring.domain.settings import RuleSettings
from medcloud.monitoring.domain.site_health import SiteHealth, SiteHealthPolicy
from medcloud.runtime.outbox import Outbox
from medcloud.runtime.store import Collection, EtcdStore, Transaction

log = logging.getLogger(__name__)

# etcd refuses a transaction of more than 128 operations by default.
_OPERATIONS_PER_TRANSACTION = 100
SETTINGS_ID = "rules"


@dataclass(frozen=True)
class MonitoringCollections:
    alerts: Collection[Alert]
    work_orders: Collection[WorkOrder]
    inspections: Collection[InspectionReport]
    settings: Collection[RuleSettings]


@dataclass(frozen=True)
class MonitoringPolicies:
    retention_seconds: float = 6 * 3600
    escalation: EscalationPolicy = EscalationPolicy()
    flapping: FlappingPolicy = FlappingPolicy()
    site_health: SiteHealthPolicy = SiteHealthPolicy()
    # A centre's readings older than this count as missing in an inspection.
    stale_after_seconds: float = 300.0


@dataclass(frozen=True)
class ActiveRules:
    """The pack as a region configured it: every rule, and those it evaluates."""

    settings: RuleSettings
    every: list[Rule]
    enabled: list[Rule]
    # What an inspection checks per centre: the machine-room environment of clause 7.1.
    environment: list[Rule]

    @classmethod
    def of(cls, settings: RuleSettings) -> ActiveRules:
        season = Season(summer_months=settings.summer_months, time_zone=settings.time_zone)
        disabled = set(settings.disabled_rule_ids)
        environment_ids = {rule.id for rule in environment_rules(season)}
        every = default_rules(season)
        enabled = [rule for rule in every if rule.id not in disabled]
        return cls(settings, every, enabled, [r for r in enabled if r.id in environment_ids])


class Monitoring:
    """One region's monitoring state. Samples, findings and alerts live in this process; alerts,
    work orders, inspections and settings are also written to etcd, and accepted samples to the
    sample log, so a restart loses nothing but heartbeats (see SiteHealth)."""

    def __init__(
        self,
        store: EtcdStore,
        collections: MonitoringCollections,
        sample_log: SampleLog,
        outbox: Outbox,
        events: MonitoringEvents,
        policies: MonitoringPolicies = MonitoringPolicies(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._collections = collections
        self._sample_log = sample_log
        self._outbox = outbox
        self._events = events
        self._policies = policies
        self._clock = clock
        self._rules = ActiveRules.of(RuleSettings())
        self._engine = RuleEngine(self._rules.enabled, policies.retention_seconds)
        self._book = AlertBook(policies.escalation, policies.flapping)
        self._health = SiteHealth(policies.site_health)
        self._intake = Intake({})
        self._node_locks: dict[str, asyncio.Lock] = {}
        self._persist_lock = asyncio.Lock()
        self._unpublished: list[object] = []
        self.samples_accepted = 0

    async def start(self) -> None:
        """Loads settings and alerts from etcd and rebuilds the windows from the sample log. The
        stored alerts are the truth: replayed samples fill windows and are not judged again (the
        next sample of each series is)."""
        stored = await self._collections.settings.get(SETTINGS_ID)
        if stored is not None:
            self._apply_settings(stored.value)
        alerts = [item.value for item in await self._collections.alerts.list()]
        self._book = AlertBook(self._policies.escalation, self._policies.flapping, alerts)
        replayed = 0
        async for node_id, samples in self._sample_log.replay():
            for sample in samples:
                self._engine.ingest(sample)
            if node_id:  # a centre's own series (capacity) carry no agent sequence
                self._intake.mark_held(node_id, samples)
            replayed += len(samples)
        log.info("monitoring state rebuilt", extra={"alerts": len(alerts), "samples": replayed})

    # Samples and signs of life

    async def accept(self, node_id: str, centre_id: str, samples: Sequence[Sample]) -> int:
        """Takes a batch from an agent; returns the highest sequence now held for the node.
        Samples at or below that mark are a resend and are skipped."""
        check_batch(node_id, centre_id, samples)
        lock = self._node_locks.setdefault(node_id, asyncio.Lock())
        async with lock:
            fresh = self._intake.fresh(node_id, samples)
            if fresh:
                await self._sample_log.append(node_id, centre_id, fresh)
                self._intake.mark_held(node_id, fresh)
                self.samples_accepted += len(fresh)
                self._judge(fresh)
        await self._persist()
        return self._intake.acknowledged(node_id)

    def _judge(self, samples: Iterable[Sample]) -> None:
        now = self._clock()
        for sample in samples:
            for finding in self._engine.ingest(sample):
                # Judged as of the sample's own time, so a backfilled outage reads as it happened;
                # a node clock running ahead of the centre's must not date an alert in the future.
                at = min(finding.observed_at, now)
                self._unpublished.extend(self._book.observe(finding, at))

    async def record_capacity(self, source: CapacitySource) -> int:
        """Reads capacity utilisation per centre and judges it like any sample; returns how
        many samples it took. These series belong to a centre, not a node."""
        by_centre: dict[str, list[Sample]] = {}
        for sample in await source.utilisation(self._clock()):
            by_centre.setdefault(sample.series.centre_id, []).append(sample)
        for centre_id, samples in by_centre.items():
            await self._sample_log.append("", centre_id, samples)
            self._judge(samples)
        await self._persist()
        return sum(len(samples) for samples in by_centre.values())

    async def record_capacity_every(self, source: CapacitySource, interval_seconds: float) -> None:
        while True:
            try:
                await self.record_capacity(source)
            except Exception:
                log.exception("capacity reading failed; trying again next interval")
            await asyncio.sleep(interval_seconds)

    def heartbeat(self, node_id: str, centre_id: str) -> None:
        check_sender(node_id, centre_id)
        self._health.heartbeat(node_id, centre_id, self._clock())

    def report_link(self, link_id: str, centre_ids: tuple[str, str], up: bool) -> None:
        self._health.link_report(link_id, centre_ids, up, self._clock())

    def expect_node(self, node_id: str, centre_id: str) -> None:
        self._health.expect_node(node_id, centre_id)

    def series(self, centre_id: str = "", node_id: str = "") -> list[SeriesKey]:
        return sorted(
            (
                key
                for key in self._engine.series()
                if (not centre_id or key.centre_id == centre_id)
                and (not node_id or key.node_id == node_id)
            ),
            key=lambda key: (key.centre_id, key.node_id, key.metric, key.labels),
        )

    def query(self, series: SeriesKey, start: float, end: float) -> list[Sample]:
        window = self._engine.window(series)
        return [] if window is None else window.between(start, end)

    def latest_samples(self) -> list[Sample]:
        return [
            sample
            for series in self._engine.series()
            if (sample := self._engine.latest(series)) is not None
        ]

    # Alerts and work orders

    def alerts(self, states: Sequence[AlertState] = (), centre_id: str = "") -> list[Alert]:
        return [
            alert
            for alert in self._book.all()
            if (not states or alert.state in states)
            and (not centre_id or alert.series.centre_id == centre_id)
        ]

    def alert(self, alert_id: str) -> Alert:
        return self._book.get(alert_id)

    async def acknowledge(self, alert_id: str, by: str) -> Alert:
        self._unpublished.extend(self._book.acknowledge(alert_id, by, self._clock()))
        await self._persist()
        return self.alert(alert_id)

    async def work_orders(self, open_only: bool) -> list[WorkOrder]:
        orders = [item.value for item in await self._collections.work_orders.list()]
        return [o for o in orders if not open_only or o.state is WorkOrderState.OPEN]

    async def close_work_order(self, work_order_id: str) -> WorkOrder:
        def close(order: WorkOrder) -> WorkOrder:
            if order.state is WorkOrderState.CLOSED:
                raise FailedPrecondition(f"work order {work_order_id} is already closed")
            return replace(order, state=WorkOrderState.CLOSED)

        return (await self._collections.work_orders.update(work_order_id, close)).value

    # Supervision

    async def supervise_once(self) -> None:
        """Escalates what nobody acknowledged and judges site and link health, now."""
        now = self._clock()
        self._unpublished.extend(self._book.tick(now))
        self._unpublished.extend(self._health.evaluate(now))
        await self._persist()

    async def supervise(self, interval_seconds: float) -> None:
        while True:
            try:
                await self.supervise_once()
            except Exception:
                log.exception("supervision failed; trying again")
            await asyncio.sleep(interval_seconds)

    def site_health(self):
        return self._health.states()

    # Inspection

    def centres(self) -> list[str]:
        known = {series.centre_id for series in self._engine.series()}
        known.update(state.centre_id for state in self._health.states())
        return sorted(known)

    async def inspect(self, centre_id: str) -> InspectionReport:
        check_centre_id(centre_id)
        report = inspect(
            centre_id,
            self._clock(),
            self._engine,
            self._rules.environment,
            self._health.nodes_of(centre_id),
            self._policies.stale_after_seconds,
        )
        event = InspectionCompleted(report)

        async def write(transaction: Transaction) -> None:
            transaction.put(self._collections.inspections, centre_id, report)
            self._outbox.add(transaction, self._events.payload(event), self._events.event_id(event))

        await self._store.transact(write)
        self._outbox.notify()
        return report

    async def inspect_every(self, interval_seconds: float) -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            for centre_id in self.centres():
                try:
                    await self.inspect(centre_id)
                except Exception:
                    log.exception("inspection failed", extra={"centre_id": centre_id})

    async def latest_inspection(self, centre_id: str) -> InspectionReport:
        return (await self._collections.inspections.require(centre_id)).value

    # Rules

    def rules(self) -> ActiveRules:
        return self._rules

    def _apply_settings(self, settings: RuleSettings) -> None:
        self._rules = ActiveRules.of(settings)
        self._engine.replace_rules(self._rules.enabled)

    async def update_settings(self, settings: RuleSettings) -> RuleSettings:
        settings.check({rule.id for rule in self._rules.every})

        async def write(transaction: Transaction) -> None:
            transaction.put(self._collections.settings, SETTINGS_ID, settings)

        await self._store.transact(write)
        self._apply_settings(settings)
        return settings

    # Persistence

    async def _persist(self) -> None:
        """Writes changed alerts, new work orders and their events to etcd in commit order; the
        outbox publishes the events. One writer at a time, so an older state never lands last."""
        async with self._persist_lock:
            alerts = self._book.drain_changed()
            orders = self._book.drain_work_orders()
            events, self._unpublished = self._unpublished, []
            if not (alerts or orders or events):
                return
            writes: list[Callable[[Transaction], None]] = []
            writes += [_put(self._collections.alerts, a.id, a) for a in alerts]
            writes += [_put(self._collections.work_orders, o.id, o) for o in orders]
            writes += [self._add_event(event) for event in events]
            for start in range(0, len(writes), _OPERATIONS_PER_TRANSACTION):
                chunk = writes[start : start + _OPERATIONS_PER_TRANSACTION]

                async def write(transaction: Transaction, chunk=chunk) -> None:
                    for step in chunk:
                        step(transaction)

                await self._store.transact(write)
            self._outbox.notify()

    def _add_event(self, event: object) -> Callable[[Transaction], None]:
        def add(transaction: Transaction) -> None:
            self._outbox.add(transaction, self._events.payload(event), self._events.event_id(event))

        return add


def _put(collection: Collection, object_id: str, value: object) -> Callable[[Transaction], None]:
    def put(transaction: Transaction) -> None:
        transaction.put(collection, object_id, value)

    return put
