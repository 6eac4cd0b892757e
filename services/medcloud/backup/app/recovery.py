"""Protection, failover, failback and drills: the backup service's use cases.

A failover lives in etcd and advances one recorded step at a time, so a redelivered SiteDown finds
the failover it started (its id derives from the event) and a restarted service resumes each
unfinished one where the record says it stands. Drivers set desired states, so a step that ran
before a crash but was not yet recorded runs again harmlessly."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from medcloud.backup.app.ports import BackupEvents, RecoveryDriver, StepContext, StepOutcome
from medcloud.backup.domain.drills import Drill, measure_drill
from medcloud.backup.domain.failover import (
    Action,
    Failover,
    Phase,
    Step,
    Trigger,
    TriggerKind,
    automatic_on_site_down,
    failover_id_for,
    failure_summary,
    finished,
    next_actions,
    phase_of,
    record_step_done,
    record_step_failed,
    record_step_undone,
    rollback_actions,
    start_failover,
    with_lag,
)
from medcloud.backup.domain.plans import DrPlan, RegionFacts
from medcloud.backup.domain.protection import (
    ProtectedSystem,
    plan_systems,
    protection_key,
    require_valid,
)
from medcloud.backup.domain.region import check_region_facts
from medcloud.core.errors import (
    ConcurrencyConflict,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from medcloud.runtime.outbox import Outbox
from medcloud.runtime.store import Collection, EtcdStore, Transaction

log = logging.getLogger(__name__)

FACTS_ID = "region"
FINAL_PHASES = (Phase.COMPLETED, Phase.ROLLED_BACK)
# etcd allows 128 operations per transaction; a round records this many systems per transaction
# (each may add an event and a protection update besides the failover itself).
SYSTEMS_PER_TRANSACTION = 40


@dataclass(frozen=True)
class BackupCollections:
    facts: Collection[RegionFacts]
    systems: Collection[ProtectedSystem]
    failovers: Collection[Failover]
    drills: Collection[Drill]


@dataclass(frozen=True)
class StepRetry:
    """A step that fails is tried again before the failover gives up and rolls back: an API
    timeout during an emergency should not undo the whole hospital's switch."""

    attempts: int = 3
    backoff_seconds: float = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


class Recovery:
    def __init__(
        self,
        store: EtcdStore,
        collections: BackupCollections,
        outbox: Outbox,
        events: BackupEvents,
        drivers: Mapping[str, RecoveryDriver],
        retry: StepRetry = StepRetry(),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._store = store
        self._c = collections
        self._outbox = outbox
        self._events = events
        self._drivers = drivers
        self._retry = retry
        self._clock = clock
        self._running: dict[str, asyncio.Task[Failover]] = {}

    # -- region facts and protection -------------------------------------------------------------

    async def set_region_facts(self, facts: RegionFacts) -> RegionFacts:
        violations = check_region_facts(facts)
        if violations:
            raise InvalidArgument(violations)

        async def step(transaction: Transaction) -> RegionFacts:
            transaction.put(self._c.facts, FACTS_ID, facts)
            return facts

        return (await self._store.transact(step)).result

    async def region_facts(self) -> RegionFacts:
        found = await self._c.facts.get(FACTS_ID)
        return found.value if found else RegionFacts((), ())

    async def set_protection(self, system: ProtectedSystem) -> ProtectedSystem:
        """Creates or updates one system's protection after checking it against the region and
        the hospital's other systems (no unknown dependency, no cycle); `generation` 0 creates or
        overwrites, any other must match the stored one (ABORTED otherwise)."""
        facts = await self.region_facts()
        require_valid(system, facts, self._drivers)

        async def step(transaction: Transaction) -> ProtectedSystem:
            existing = await transaction.get(self._c.systems, system.key)
            if existing and system.generation and system.generation != existing.value.generation:
                raise ConcurrencyConflict(
                    f"protection {system.key} is at generation {existing.value.generation}, "
                    f"not {system.generation}"
                )
            siblings = [
                s.value
                for s in await transaction.scan(self._c.systems)
                if s.value.hospital_id == system.hospital_id and s.id != system.key
            ]
            _require_plannable(system.hospital_id, [*siblings, system])
            stored = dataclasses.replace(
                system,
                active=existing.value.active if existing else system.active,
                generation=(existing.value.generation if existing else 0) + 1,
            )
            transaction.put(self._c.systems, system.key, stored)
            return stored

        stored = (await self._store.transact(step)).result
        return await self._schedule_copies(stored.key)

    async def _schedule_copies(self, key: str) -> ProtectedSystem:
        """Asks the system's driver for the policy's scheduled copies where it serves now and
        records the answer on the system, so a missing schedule is visible, not silent."""
        found = await self._c.systems.get(key)
        if found is None:
            raise NotFound("protected system", key)
        system = found.value
        driver = self._drivers[system.driver]
        try:
            outcome = await driver.protect(system.serving_copies(), system.policy)
        except Exception as error:
            log.exception("driver raised scheduling copies", extra={"system": key})
            outcome = StepOutcome(False, f"{type(error).__name__}: {error}")
        status = outcome.reason if outcome.ok else f"not scheduled: {outcome.reason}"

        async def step(transaction: Transaction) -> ProtectedSystem:
            current = await transaction.get(self._c.systems, key)
            if current is None:
                raise NotFound("protected system", key)
            updated = dataclasses.replace(
                current.value, copies_scheduled=outcome.ok, schedule_status=status
            )
            transaction.put(self._c.systems, key, updated)
            return updated

        return (await self._store.transact(step)).result

    async def protection(self, hospital_id: str, system_id: str) -> ProtectedSystem:
        found = await self._c.systems.get(protection_key(hospital_id, system_id))
        if found is None:
            raise NotFound("protected system", protection_key(hospital_id, system_id))
        return found.value

    async def protections(self, hospital_id: str = "") -> list[ProtectedSystem]:
        return [
            item.value
            for item in await self._c.systems.list()
            if not hospital_id or item.value.hospital_id == hospital_id
        ]

    async def delete_protection(self, hospital_id: str, system_id: str) -> None:
        key = protection_key(hospital_id, system_id)

        async def step(transaction: Transaction) -> None:
            if await transaction.get(self._c.systems, key) is None:
                raise NotFound("protected system", key)
            dependents = sorted(
                s.value.system_id
                for s in await transaction.scan(self._c.systems)
                if s.value.hospital_id == hospital_id and system_id in s.value.depends_on
            )
            if dependents:
                raise FailedPrecondition(
                    f"{', '.join(dependents)} of {hospital_id} depend on {system_id}: "
                    "remove or change them first"
                )
            transaction.delete(self._c.systems, key)

        await self._store.transact(step)

    async def dr_plan(self, hospital_id: str) -> DrPlan:
        systems = await self.protections(hospital_id)
        if not systems:
            raise NotFound("hospital with protected systems", hospital_id)
        return DrPlan.build(hospital_id, plan_systems(systems))

    # -- failover ------------------------------------------------------------------------------

    async def start_failover(
        self,
        hospital_id: str,
        trigger: Trigger,
        *,
        failback: bool = False,
        dry_run: bool = False,
        only: Iterable[str] | None = None,
        failed_centre_id: str = "",
    ) -> Failover:
        """Starts the failover `trigger` names, or finds it if it was started before (the same
        SiteDown delivered twice, the same request retried). `only` limits it to some systems."""
        existing = await self._c.failovers.get(failover_id_for(trigger.event_id, hospital_id))
        if existing is not None:
            self._launch(existing.value.id)
            return existing.value
        systems = await self.protections(hospital_id)
        if only is not None:
            chosen = set(only)
            systems = [s for s in systems if s.system_id in chosen]
        if not systems:
            raise NotFound("hospital with protected systems", hospital_id)
        wrong_side = [s.system_id for s in systems if (s.active.value == "standby") != failback]
        if wrong_side and trigger.kind is not TriggerKind.SITE_DOWN:
            where = "the primary" if failback else "the standby"
            raise FailedPrecondition(
                f"{', '.join(sorted(wrong_side))} of {hospital_id} already serve from {where}"
            )
        included = {s.system_id for s in systems}
        # Dependencies outside this failover are not moving, so nothing waits for them.
        plan = DrPlan.build(hospital_id, {s.system_id: s.depends_on & included for s in systems})
        failover = start_failover(
            plan,
            trigger,
            self._clock(),
            failback=failback,
            dry_run=dry_run,
            failed_centre_id=failed_centre_id,
        )

        async def step(transaction: Transaction) -> Failover:
            found = await transaction.get(self._c.failovers, failover.id)
            if found is not None:
                return found.value
            transaction.put(self._c.failovers, failover.id, failover)
            self._outbox.add(
                transaction,
                self._events.failover_started(failover),
                event_id=f"{failover.id}/started",
            )
            return failover

        started = (await self._store.transact(step)).result
        self._outbox.notify()
        self._launch(started.id)
        return started

    async def on_site_down(self, event_id: str, centre_id: str) -> list[Failover]:
        """Fails over, hospital by hospital, every Tier 5+ system serving from the lost centre
        (R-7.6b, R-7.6c); lower tiers wait for a person (StartFailover). Idempotent per event."""
        affected: dict[str, list[str]] = defaultdict(list)
        for system in await self.protections():
            if system.serving().centre_id == centre_id and automatic_on_site_down(system.policy):
                affected[system.hospital_id].append(system.system_id)
        started = []
        for hospital_id, system_ids in sorted(affected.items()):
            trigger = Trigger(TriggerKind.SITE_DOWN, event_id)
            found = await self._c.failovers.get(failover_id_for(event_id, hospital_id))
            failback = (
                found.value.failback
                if found
                else _serves_from_standby(await self.protections(hospital_id), system_ids)
            )
            started.append(
                await self.start_failover(
                    hospital_id,
                    trigger,
                    failback=failback,
                    only=system_ids,
                    failed_centre_id=centre_id,
                )
            )
        return started

    async def failover(self, failover_id: str) -> Failover:
        found = await self._c.failovers.get(failover_id)
        if found is None:
            raise NotFound("failover", failover_id)
        return found.value

    async def failovers(self, hospital_id: str = "") -> list[Failover]:
        items = [
            item.value
            for item in await self._c.failovers.list()
            if not hospital_id or item.value.plan.hospital_id == hospital_id
        ]
        return sorted(items, key=lambda f: f.started_at)

    async def resume_unfinished(self) -> int:
        """After a restart: drives every failover the record says is not finished."""
        unfinished = [f for f in await self.failovers() if phase_of(f) not in FINAL_PHASES]
        for failover in unfinished:
            self._launch(failover.id)
        return len(unfinished)

    async def wait(self, failover_id: str, timeout_seconds: float) -> Failover:
        task = self._running.get(failover_id)
        if task is not None:
            await asyncio.wait_for(asyncio.shield(task), timeout_seconds)
        return await self.failover(failover_id)

    async def stop(self) -> None:
        for task in self._running.values():
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    def _launch(self, failover_id: str) -> None:
        task = self._running.get(failover_id)
        if task is None or task.done():
            self._running[failover_id] = asyncio.create_task(
                self._drive(failover_id), name=f"failover {failover_id}"
            )

    async def _drive(self, failover_id: str) -> Failover:
        while True:
            failover = await self.failover(failover_id)
            if phase_of(failover) in FINAL_PHASES and failover.finished_at is not None:
                if not failover.dry_run:
                    # Scheduled copies follow the system to where it serves now.
                    for progress in failover.system_states:
                        await self._schedule_copies(
                            protection_key(failover.plan.hospital_id, progress.system_id)
                        )
                return failover
            actions = next_actions(failover) or rollback_actions(failover)
            if not actions:
                # Final but not stamped (a crash between the two): the record step stamps it.
                await self._record(failover_id, [])
                continue
            systems = await self._systems_of(failover)
            outcomes = await asyncio.gather(
                *(self._run(action, failover, systems[action.system_id]) for action in actions)
            )
            await self._record(failover_id, list(zip(actions, outcomes, strict=True)))
            if await self.failover(failover_id) == failover:
                # Nothing advanced (an undo keeps failing): try again after a pause.
                await asyncio.sleep(self._retry.backoff_seconds)

    async def _systems_of(self, failover: Failover) -> dict[str, ProtectedSystem]:
        systems = {}
        for progress in failover.system_states:
            found = await self._c.systems.get(
                protection_key(failover.plan.hospital_id, progress.system_id)
            )
            if found is None:
                raise NotFound(
                    "protected system",
                    protection_key(failover.plan.hospital_id, progress.system_id),
                )
            systems[progress.system_id] = found.value
        return systems

    async def _run(
        self, action: Action, failover: Failover, system: ProtectedSystem
    ) -> StepOutcome:
        driver = self._drivers.get(system.driver)
        if driver is None:
            return StepOutcome(False, f"no driver {system.driver!r} in this backup service")
        copies = system.copies(failover.failback)
        context = StepContext(
            failover.id,
            failover.trigger.kind,
            dry_run=failover.dry_run,
            primary_site_down=bool(failover.failed_centre_id)
            and copies.primary.centre_id == failover.failed_centre_id,
        )
        outcome = StepOutcome(False, "not run")
        for attempt in range(1, self._retry.attempts + 1):
            try:
                if action.undo:
                    outcome = await driver.undo(action.step, copies, context)
                else:
                    outcome = await driver.run(action.step, copies, context)
            except Exception as error:  # a driver bug must fail the step, not the loop
                log.exception("driver raised", extra={"failover": failover.id})
                outcome = StepOutcome(False, f"{type(error).__name__}: {error}")
            if outcome.ok:
                return outcome
            if attempt < self._retry.attempts:
                await asyncio.sleep(self._retry.backoff_seconds * attempt)
        return outcome

    async def _record(
        self, failover_id: str, results: Sequence[tuple[Action, StepOutcome]]
    ) -> None:
        """Records a round's outcomes, a chunk of systems per transaction; the transaction that
        finishes the failover also publishes its end, once."""
        chunks = [
            results[i : i + SYSTEMS_PER_TRANSACTION]
            for i in range(0, len(results), SYSTEMS_PER_TRANSACTION)
        ] or [[]]
        for chunk in chunks:
            await self._store.transact(lambda t, chunk=chunk: self._apply(t, failover_id, chunk))
        self._outbox.notify()

    async def _apply(
        self,
        transaction: Transaction,
        failover_id: str,
        results: Sequence[tuple[Action, StepOutcome]],
    ) -> None:
        found = await transaction.get(self._c.failovers, failover_id)
        assert found is not None
        failover = found.value
        at = self._clock()
        for action, outcome in results:
            failover = await self._apply_one(transaction, failover, action, outcome, at)
        phase = phase_of(failover)
        if phase in FINAL_PHASES and failover.finished_at is None:
            failover = finished(failover, at)
            if phase is Phase.COMPLETED:
                payload = self._events.failover_completed(failover)
            else:
                payload = self._events.failover_failed(failover, failure_summary(failover))
            self._outbox.add(transaction, payload, event_id=f"{failover.id}/{phase.value}")
        transaction.put(self._c.failovers, failover.id, failover)

    async def _apply_one(
        self,
        transaction: Transaction,
        failover: Failover,
        action: Action,
        outcome: StepOutcome,
        at: datetime,
    ) -> Failover:
        system_id, step = action.system_id, action.step
        if action.undo:
            if not outcome.ok:
                # Undo keeps trying: a half-rolled-back hospital is worse than a slow one.
                log.warning(
                    "undo failed; retrying",
                    extra={"failover": failover.id, "system": system_id, "reason": outcome.reason},
                )
                return failover
            if step is Step.REPOINT and not failover.dry_run:
                await self._repoint(transaction, failover, system_id, back=True)
            return record_step_undone(failover, system_id, step, at)
        if failover.rolling_back and failover.progress(system_id).next_step is not step:
            return failover
        if not outcome.ok:
            if failover.rolling_back:
                return failover  # another system failed first; this one just rolls back
            return record_step_failed(failover, system_id, step, at, outcome.reason)
        if failover.progress(system_id).has_done(step):
            return failover
        updated = record_step_done(failover, system_id, step, at)
        if step is Step.FENCE_PRIMARY:
            updated = with_lag(updated, system_id, outcome.lag_seconds)
        if step is Step.REPOINT and not failover.dry_run:
            await self._repoint(transaction, failover, system_id, back=False)
        return updated

    async def _repoint(
        self, transaction: Transaction, failover: Failover, system_id: str, back: bool
    ) -> None:
        """Records which copy serves now, in the transaction that records the step, and tells
        whoever routes traffic (SystemRepointed)."""
        key = protection_key(failover.plan.hospital_id, system_id)
        found = await transaction.get(self._c.systems, key)
        if found is None:
            return
        # Undoing a failover's repoint is a failback's repoint, and the other way round.
        moved = found.value.after_failover(failover.failback != back)
        transaction.put(self._c.systems, key, moved)
        self._outbox.add(
            transaction,
            self._events.system_repointed(failover, moved),
            event_id=f"{failover.id}/{system_id}/{'repoint-undone' if back else 'repointed'}",
        )

    # -- drills --------------------------------------------------------------------------------

    async def run_drill(
        self, hospital_id: str, request_id: str, dry_run: bool, timeout_seconds: float
    ) -> Drill:
        """Runs the hospital's plan as a drill and keeps its measured RTO and RPO as evidence,
        in etcd and in the audit trail (through the outbox, so it cannot be lost). A live drill
        is a real failover: fail back afterwards. The same request_id returns the same drill."""
        trigger = Trigger(TriggerKind.DRILL, request_id)
        drill_id = failover_id_for(request_id, hospital_id).replace("fo-", "drill-", 1)
        recorded = await self._c.drills.get(drill_id)
        if recorded is not None:
            return recorded.value
        systems = await self.protections(hospital_id)
        failback = _serves_from_standby(systems, [s.system_id for s in systems])
        failover = await self.start_failover(
            hospital_id, trigger, failback=failback, dry_run=dry_run
        )
        failover = await self.wait(failover.id, timeout_seconds)
        if phase_of(failover) not in FINAL_PHASES:
            raise FailedPrecondition(
                f"drill {drill_id} still running after {timeout_seconds:g} s: see failover "
                f"{failover.id}"
            )
        by_id = {s.system_id: s for s in systems}
        drill = measure_drill(drill_id, failover, by_id, failover.finished_at or self._clock())

        async def step(transaction: Transaction) -> Drill:
            found = await transaction.get(self._c.drills, drill_id)
            if found is not None:
                return found.value
            transaction.put(self._c.drills, drill_id, drill)
            self._outbox.add(
                transaction, self._events.drill_completed(drill), event_id=f"{drill_id}/completed"
            )
            self._outbox.add(
                transaction, self._events.drill_evidence(drill), event_id=f"{drill_id}/evidence"
            )
            return drill

        kept = (await self._store.transact(step)).result
        self._outbox.notify()
        return kept

    async def drills(self, hospital_id: str = "") -> list[Drill]:
        items = [
            item.value
            for item in await self._c.drills.list()
            if not hospital_id or item.value.hospital_id == hospital_id
        ]
        return sorted(items, key=lambda d: d.started_at)


def _serves_from_standby(systems: Iterable[ProtectedSystem], system_ids: Iterable[str]) -> bool:
    """Whether the systems move back (a failback): they all serve from their standby. Mixed
    sides cannot move as one failover."""
    wanted = set(system_ids)
    sides = {s.active.value for s in systems if s.system_id in wanted}
    if len(sides) > 1:
        raise FailedPrecondition(
            "some of these systems serve from their primary and some from their standby: fail "
            "them over separately"
        )
    return sides == {"standby"}


def _require_plannable(hospital_id: str, systems: Sequence[ProtectedSystem]) -> None:
    try:
        DrPlan.build(hospital_id, plan_systems(systems))
    except InvalidArgument as error:
        raise InvalidArgument(
            [
                FieldViolation("system.depends_on", f"{violation.field}: {violation.description}")
                for violation in error.violations
            ]
        ) from error
