"""Use cases: place a business system (claiming its capacity in inventory), read and release it."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence

from medcloud.core.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from medcloud.runtime.outbox import Outbox
from medcloud.runtime.store import Collection, EtcdStore, Transaction
from medcloud.scheduling.app.ports import (
    CapacityTaken,
    Degraded,
    Inventory,
    PlacementEvents,
    PlacementRecord,
    ProviderTake,
)
from medcloud.scheduling.domain.model import (
    BusinessSystem,
    RegionView,
    RoleCount,
    system_violations,
)
from medcloud.scheduling.domain.placement import (
    Assignment,
    Decision,
    Refusal,
    place_batch,
    place_system,
)

PLACEMENT_ATTEMPTS = 3


def takes_of(system: BusinessSystem, assignments: Sequence[Assignment]) -> list[ProviderTake]:
    """One claim for the whole system: instances sharing a host or pool add up."""
    per_host: dict[str, int] = defaultdict(int)
    per_pool: dict[str, int] = defaultdict(int)
    for assignment in assignments:
        per_host[assignment.host_id] += 1
        if assignment.pool_id:
            per_pool[assignment.pool_id] += 1
    return [
        ProviderTake(host_id=host, vcpu=system.vcpu * n, memory_gib=system.memory_gib * n)
        for host, n in sorted(per_host.items())
    ] + [
        ProviderTake(pool_id=pool, storage_gib=system.storage_gib * n)
        for pool, n in sorted(per_pool.items())
    ]


class Placements:
    """Places systems, records every decision and refusal with its explanation, and announces it."""

    def __init__(
        self,
        store: EtcdStore,
        placements: Collection[PlacementRecord],
        inventory: Inventory,
        outbox: Outbox,
        events: PlacementEvents,
    ) -> None:
        self._store = store
        self._placements = placements
        self._inventory = inventory
        self._outbox = outbox
        self._events = events

    async def place(self, system: BusinessSystem) -> PlacementRecord:
        """Places every instance or none; a system already placed is refused (scale it instead)."""
        if violations := system_violations(system):
            raise InvalidArgument(violations)
        previous = await self._placements.get(system.id)
        if previous is not None and previous.value.holds_capacity:
            raise AlreadyExists("placement", system.id)
        return await self._place_and_claim(system, keep=())

    async def place_batch(self, systems: Sequence[BusinessSystem]) -> list[PlacementRecord]:
        """Places each system whole or not at all on one view of the region, most constrained first
        (see `place_batch` in the domain), then claims each; results in the order given."""
        violations = [
            dataclasses.replace(v, field=f"systems[{index}].{v.field.removeprefix('system.')}")
            for index, system in enumerate(systems)
            for v in system_violations(system)
        ]
        if violations:
            raise InvalidArgument(violations)
        ids = [system.id for system in systems]
        if duplicates := sorted({i for i in ids if ids.count(i) > 1}):
            raise InvalidArgument.single("systems", f"system ids must be unique: {duplicates}")
        for system in systems:  # before placing any, so that a refused batch leaves nothing
            found = await self._placements.get(system.id)
            if found is not None and found.value.holds_capacity:
                raise AlreadyExists("placement", system.id)
        outcomes = place_batch(systems, await self._inventory.region_view())
        records = []
        for system, outcome in zip(systems, outcomes, strict=True):
            if isinstance(outcome, Decision):
                try:
                    await self._inventory.claim(system.id, takes_of(system, outcome.assignments))
                except CapacityTaken:
                    # The region changed under the batch: this one is placed again on its own.
                    records.append(await self._place_and_claim(system, keep=()))
                    continue
            records.append(await self._record(system, outcome))
        return records

    async def explain(self, system: BusinessSystem) -> PlacementRecord:
        """What placing `system` would decide now; nothing is claimed or stored."""
        if violations := system_violations(system):
            raise InvalidArgument(violations)
        outcome = place_system(system, await self._inventory.region_view())
        return PlacementRecord(system, outcome, generation=0)

    async def scale(self, system_id: str, roles: tuple[RoleCount, ...]) -> PlacementRecord:
        """Scales a placed system out or in (R-7.3b): instances that remain stay where they are,
        new ones are placed by the same rules, and the claim follows in one step."""
        current = await self.get(system_id)
        if isinstance(current.outcome, Degraded):
            raise FailedPrecondition(
                f"system {system_id!r} is degraded: it is placed whole again when capacity returns"
            )
        if not isinstance(current.outcome, Decision):
            raise FailedPrecondition(f"system {system_id!r} is not placed; place it first")
        scaled = dataclasses.replace(current.system, roles=roles)
        if violations := system_violations(scaled):
            raise InvalidArgument(violations)
        remaining = set(scaled.instances())
        keep = [a for a in current.outcome.assignments if a.instance in remaining]
        return await self._place_and_claim(scaled, keep)

    async def replace_instances_on(self, host_id: str) -> list[PlacementRecord]:
        """Moves exactly the instances that ran on `host_id` (gone down) and keeps the rest; each
        affected system is placed again as a whole, so every rule still holds."""
        return await self._replace(lambda assignment: assignment.host_id == host_id)

    async def replace_instances_in_centre(self, centre_id: str) -> list[PlacementRecord]:
        """Moves exactly the instances that ran in a centre monitoring declared down, onto hosts
        elsewhere. Inventory still lists the centre's hosts as active (a site down is a judgement
        of reachability, not of each host), so they are left out of the view here."""
        return await self._replace(
            lambda assignment: assignment.centre_id == centre_id, avoid_centre=centre_id
        )

    async def _replace(
        self, lost: Callable[[Assignment], bool], avoid_centre: str = ""
    ) -> list[PlacementRecord]:
        affected = [
            item.value
            for item in await self._placements.list()
            if any(lost(a) for a in item.value.running)
        ]
        results = []
        for record in affected:
            keep = [a for a in record.running if not lost(a)]
            results.append(
                await self._place_and_claim(record.system, keep, avoid_centre, degrade=True)
            )
        return results

    async def retry_degraded(self) -> list[PlacementRecord]:
        """Places degraded systems whole again where the region now admits them (a host or a
        centre came back); the others stay degraded, unchanged."""
        results = []
        for item in await self._placements.list():
            degraded = item.value.outcome
            if isinstance(degraded, Degraded):
                outcome = await self._decide(item.value.system, degraded.kept)
                if isinstance(outcome, Decision):
                    results.append(await self._record(item.value.system, outcome))
        return results

    async def _place_and_claim(
        self,
        system: BusinessSystem,
        keep: Sequence[Assignment],
        avoid_centre: str = "",
        *,
        degrade: bool = False,
    ) -> PlacementRecord:
        return await self._record(system, await self._decide(system, keep, avoid_centre, degrade))

    async def _decide(
        self,
        system: BusinessSystem,
        keep: Sequence[Assignment],
        avoid_centre: str = "",
        degrade: bool = False,
    ) -> Decision | Refusal | Degraded:
        """Places and claims. The claim in inventory is the commit point: if the region changed
        since it was read, placement runs again on a fresh view. With `degrade`, a refusal keeps
        the instances in `keep` running and claimed (Degraded) rather than failing the system."""
        for _attempt in range(PLACEMENT_ATTEMPTS):
            view = await self._inventory.region_view()
            if avoid_centre:
                view = RegionView(
                    hosts=tuple(h for h in view.hosts if h.centre_id != avoid_centre),
                    pools=tuple(p for p in view.pools if p.centre_id != avoid_centre),
                )
            outcome: Decision | Refusal | Degraded = place_system(system, view, keep=keep)
            if isinstance(outcome, Refusal) and degrade and keep:
                outcome = Degraded(tuple(keep), outcome)
            if isinstance(outcome, Decision | Degraded):
                running = outcome.assignments if isinstance(outcome, Decision) else outcome.kept
                try:
                    await self._inventory.claim(system.id, takes_of(system, running))
                except CapacityTaken:
                    continue
            return outcome
        raise ConcurrencyConflict(
            f"placing {system.id!r}: the region kept changing under {PLACEMENT_ATTEMPTS} attempts"
        )

    async def list(self, page_size: int, page_token: str) -> tuple[list[PlacementRecord], str]:
        """One page of placements in system-id order, and the next page's token ("" on the last)."""
        if page_size < 0:
            raise InvalidArgument.single("page_size", "must not be negative")
        limit = min(page_size or 100, 1000)
        page = await self._placements.page(page_token, limit + 1)
        records = [item.value for item in page[:limit]]
        return records, page[limit - 1].id if len(page) > limit else ""

    async def get(self, system_id: str) -> PlacementRecord:
        found = await self._placements.get(system_id)
        if found is None:
            raise NotFound("placement", system_id)
        return found.value

    async def release(self, system_id: str) -> None:
        await self._inventory.release(system_id)

        async def forget(transaction: Transaction) -> bool:
            if await transaction.get(self._placements, system_id) is None:
                return False
            transaction.delete(self._placements, system_id)
            self._outbox.add(transaction, self._events.released(system_id))
            return True

        if (await self._store.transact(forget)).result:
            self._outbox.notify()

    async def _record(self, system: BusinessSystem, outcome: object) -> PlacementRecord:
        async def write(transaction: Transaction) -> PlacementRecord:
            previous = await transaction.get(self._placements, system.id)
            generation = previous.value.generation + 1 if previous else 1
            record = PlacementRecord(system, outcome, generation)  # type: ignore[arg-type]
            transaction.put(self._placements, system.id, record)
            if isinstance(outcome, Decision):
                payload = self._events.decided(record)
            elif isinstance(outcome, Degraded):
                payload = self._events.degraded(record)
            else:
                payload = self._events.failed(record)
            self._outbox.add(transaction, payload, f"placement-{system.id}-{generation}")
            return record

        committed = await self._store.transact(write)
        self._outbox.notify()
        return committed.result
