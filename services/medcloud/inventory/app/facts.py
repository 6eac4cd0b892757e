"""Use cases for the region's facts: register, read, list, update and remove centres, nodes,
links, clusters, hosts, storage pools and flavors, keeping every reference between them true."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from medcloud.core.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from medcloud.inventory.app.ports import ChangeEvents
from medcloud.inventory.app.records import Record
from medcloud.inventory.domain import model, validation
from medcloud.inventory.domain.model import Region
from medcloud.runtime.outbox import Outbox
from medcloud.runtime.store import Collection, EtcdStore, Transaction

T = TypeVar("T")

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class Reference:
    """A field of one kind that names an object of another kind, which must exist."""

    field: str
    kind: str
    id_of: Callable[[Any], str]


@dataclass(frozen=True)
class Kind(Generic[T]):
    """How inventory keeps one kind of fact."""

    name: str
    collection: Collection[Record[T]]
    violations: Callable[[T], list[FieldViolation]]
    references: tuple[Reference, ...] = ()
    # Whether a record still holds claims and so cannot be removed.
    holds_claims: Callable[[Record[T]], bool] = field(default=lambda record: False)

    def id_of(self, fact: T) -> str:
        return fact.id  # type: ignore[attr-defined,no-any-return]


class Facts:
    """Registers and maintains the region's facts; each change and its event commit together."""

    def __init__(
        self, store: EtcdStore, kinds: dict[str, Kind[Any]], outbox: Outbox, events: ChangeEvents
    ) -> None:
        self._store = store
        self.kinds = kinds
        self._outbox = outbox
        self._events = events

    async def create(self, kind_name: str, fact: T) -> Record[T]:
        kind = self.kinds[kind_name]
        validation.require_valid(kind.violations(fact))
        object_id = kind.id_of(fact)
        record = Record(fact, generation=1)

        async def step(transaction: Transaction) -> None:
            if await transaction.get(kind.collection, object_id) is not None:
                raise AlreadyExists(kind_name, object_id)
            await self._require_references(transaction, kind, fact)
            transaction.put(kind.collection, object_id, record)
            self._outbox.add(
                transaction,
                self._events.registered(kind_name, record),
                f"{kind_name}-{object_id}-1",
            )

        await self._store.transact(step)
        self._outbox.notify()
        return record

    async def get(self, kind_name: str, object_id: str) -> Record[T]:
        kind = self.kinds[kind_name]
        found = await kind.collection.get(object_id)
        if found is None:
            raise NotFound(kind_name, object_id)
        return found.value

    async def list(
        self,
        kind_name: str,
        page_size: int,
        page_token: str,
        keep: Callable[[T], bool] = lambda fact: True,
    ) -> tuple[list[Record[T]], str]:
        """One page of the kind's objects that `keep` accepts, in id order, and the token of the
        next page ("" on the last). The token is the last id examined; a page after it may be
        empty when no later object passes `keep`."""
        if page_size < 0:
            raise InvalidArgument.single("page_size", "must not be negative")
        limit = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        collection = self.kinds[kind_name].collection
        found: list[Record[T]] = []
        after = page_token
        while True:
            batch = await collection.page(after, limit)
            for item in batch:
                if len(found) == limit:
                    return found, after  # `item` is proof that more follow
                after = item.id
                if keep(item.value.fact):
                    found.append(item.value)
            if len(batch) < limit:
                return found, ""

    async def update(self, kind_name: str, fact: T, expected_generation: int) -> Record[T]:
        """Replaces the object's facts if it is still at `expected_generation` (ABORTED if not)."""
        kind = self.kinds[kind_name]
        validation.require_valid(kind.violations(fact))
        object_id = kind.id_of(fact)

        async def step(transaction: Transaction) -> Record[T]:
            current = await self._require(transaction, kind, object_id)
            _require_generation(kind_name, current, expected_generation)
            self._check_capacity_still_covers_claims(kind_name, current, fact)
            await self._require_references(transaction, kind, fact)
            updated = current.with_fact(fact)
            transaction.put(kind.collection, object_id, updated)
            for index, payload in enumerate(self._events.changed(kind_name, updated, current)):
                event_id = f"{kind_name}-{object_id}-{updated.generation}-{index}"
                self._outbox.add(transaction, payload, event_id)
            return updated

        committed = await self._store.transact(step)
        self._outbox.notify()
        return committed.result

    async def delete(self, kind_name: str, object_id: str, expected_generation: int = 0) -> None:
        """Removes the object; refused while claims hold it or other objects refer to it."""
        kind = self.kinds[kind_name]

        async def step(transaction: Transaction) -> None:
            current = await self._require(transaction, kind, object_id)
            if expected_generation:
                _require_generation(kind_name, current, expected_generation)
            if kind.holds_claims(current):
                raise FailedPrecondition(
                    f"{kind_name} {object_id!r} still holds claims; release them first"
                )
            await self._refuse_if_referred_to(transaction, kind_name, object_id)
            transaction.delete(kind.collection, object_id)
            self._outbox.add(
                transaction,
                self._events.removed(kind_name, current),
                f"{kind_name}-{object_id}-{current.generation}-removed",
            )

        await self._store.transact(step)
        self._outbox.notify()

    async def region(self) -> Region:
        """Everything inventory knows, as the topology rules see it."""

        async def facts(kind_name: str) -> tuple[Any, ...]:
            return tuple(item.value.fact for item in await self.kinds[kind_name].collection.list())

        return Region(
            centres=await facts("centre"),
            nodes=await facts("node"),
            links=await facts("link"),
            clusters=await facts("cluster"),
            hosts=await facts("host"),
            pools=await facts("pool"),
            flavors=await facts("flavor"),
        )

    async def _require(self, transaction: Transaction, kind: Kind[T], object_id: str) -> Record[T]:
        found = await transaction.get(kind.collection, object_id)
        if found is None:
            raise NotFound(kind.name, object_id)
        return found.value

    async def _require_references(self, transaction: Transaction, kind: Kind[T], fact: T) -> None:
        """Every object `fact` names exists; the read guards the commit against its removal."""
        missing = []
        for reference in kind.references:
            target = reference.id_of(fact)
            if await transaction.get(self.kinds[reference.kind].collection, target) is None:
                missing.append(
                    f"{kind.name}.{reference.field}: {reference.kind} {target!r} does not exist"
                )
        if missing:
            raise FailedPrecondition("; ".join(missing))

    async def _refuse_if_referred_to(
        self, transaction: Transaction, kind_name: str, object_id: str
    ) -> None:
        referrers = []
        for other in self.kinds.values():
            pointing = [r for r in other.references if r.kind == kind_name]
            if not pointing:
                continue
            for item in await transaction.scan(other.collection):
                if any(r.id_of(item.value.fact) == object_id for r in pointing):
                    referrers.append(f"{other.name} {item.id!r}")
        if referrers:
            raise FailedPrecondition(
                f"{kind_name} {object_id!r} is still referred to by {', '.join(referrers[:10])}"
                + (f" and {len(referrers) - 10} more" if len(referrers) > 10 else "")
            )

    @staticmethod
    def _check_capacity_still_covers_claims(
        kind_name: str, current: Record[Any], fact: Any
    ) -> None:
        if kind_name not in ("host", "pool"):
            return
        if not current.used.fits_within(fact.capacity):
            raise FailedPrecondition(
                f"{kind_name} {fact.id!r}: the new capacity is below what claims hold "
                f"({current.used}); release claims first"
            )


def _require_generation(kind_name: str, current: Record[Any], expected_generation: int) -> None:
    if current.generation != expected_generation:
        raise ConcurrencyConflict(
            f"{kind_name} {current.fact.id!r} is at generation {current.generation}, "
            f"not {expected_generation}: read it again and retry"
        )


def inventory_kinds(collection: Callable[[str], Collection[Record[Any]]]) -> dict[str, Kind[Any]]:
    """The kinds inventory keeps, each in the collection `collection(name)` gives."""
    kinds: list[Kind[Any]] = [
        Kind("centre", collection("centres"), validation.centre_violations),
        Kind(
            "node",
            collection("nodes"),
            validation.node_violations,
            (Reference("centre_id", "centre", lambda n: n.centre_id),),
        ),
        Kind(
            "link",
            collection("links"),
            validation.link_violations,
            (
                Reference("a_node_id", "node", lambda link: link.a_node_id),
                Reference("b_node_id", "node", lambda link: link.b_node_id),
            ),
        ),
        Kind(
            "cluster",
            collection("clusters"),
            validation.cluster_violations,
            (Reference("centre_id", "centre", lambda c: c.centre_id),),
        ),
        Kind(
            "host",
            collection("hosts"),
            validation.host_violations,
            (Reference("cluster_id", "cluster", lambda h: h.cluster_id),),
            holds_claims=lambda record: record.used != model.Resources(),
        ),
        Kind(
            "pool",
            collection("pools"),
            validation.pool_violations,
            (Reference("centre_id", "centre", lambda p: p.centre_id),),
            holds_claims=lambda record: record.used != model.Resources(),
        ),
        Kind("flavor", collection("flavors"), validation.flavor_violations),
    ]
    return {kind.name: kind for kind in kinds}
