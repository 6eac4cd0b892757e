"""Use cases for claims on hosts and storage pools (Placement's job, done atomically in etcd)."""

from __future__ import annotations

from typing import Any

from medcloud.core.errors import NotFound
from medcloud.inventory.app.facts import Kind
from medcloud.inventory.app.ports import ChangeEvents
from medcloud.inventory.app.records import Record, provider_usage
from medcloud.inventory.domain.claims import (
    Claim,
    ProviderKind,
    ProviderRef,
    apply_claim,
    claim_violations,
    release_claim,
)
from medcloud.inventory.domain.validation import require_valid
from medcloud.runtime.outbox import Outbox
from medcloud.runtime.store import Collection, EtcdStore, Transaction


class Capacity:
    """Takes and releases claims. A claim and every provider it touches are written in one etcd
    transaction guarded by what was read, so concurrent claims can never together push a provider
    past its capacity; a provider's generation moves with every claim on it."""

    def __init__(
        self,
        store: EtcdStore,
        hosts: Kind[Any],
        pools: Kind[Any],
        claims: Collection[Claim],
        outbox: Outbox,
        events: ChangeEvents,
    ) -> None:
        self._store = store
        self._providers = {ProviderKind.HOST: hosts.collection, ProviderKind.POOL: pools.collection}
        self.claims = claims
        self._outbox = outbox
        self._events = events

    async def get_claim(self, consumer_id: str) -> Claim:
        found = await self.claims.get(consumer_id)
        if found is None:
            raise NotFound("claim", consumer_id)
        return found.value

    async def put_claim(self, claim: Claim) -> Claim:
        """Takes `claim`, replacing the consumer's previous claim; all or nothing."""
        require_valid(claim_violations(claim))

        async def step(transaction: Transaction) -> None:
            previous = await transaction.get(self.claims, claim.consumer_id)
            previous_claim = previous.value if previous else None
            touched = {a.provider for a in claim.allocations}
            if previous_claim:
                touched |= {a.provider for a in previous_claim.allocations}
            records = await self._read_providers(transaction, touched)
            usages = {ref: provider_usage(record) for ref, record in records.items()}
            for ref, usage in apply_claim(usages, claim, previous_claim).items():
                transaction.put(self._providers[ref.kind], ref.id, records[ref].with_usage(usage))
            transaction.put(self.claims, claim.consumer_id, claim)
            self._outbox.add(transaction, self._events.claim_changed(claim))

        await self._store.transact(step)
        self._outbox.notify()
        return claim

    async def release_claim(self, consumer_id: str) -> None:
        """Gives the consumer's resources back; releasing twice is harmless."""

        async def step(transaction: Transaction) -> bool:
            found = await transaction.get(self.claims, consumer_id)
            if found is None:
                return False
            refs = {a.provider for a in found.value.allocations}
            records = await self._read_providers(transaction, refs)
            usages = {ref: provider_usage(record) for ref, record in records.items()}
            for ref, usage in release_claim(usages, found.value).items():
                transaction.put(self._providers[ref.kind], ref.id, records[ref].with_usage(usage))
            transaction.delete(self.claims, consumer_id)
            self._outbox.add(transaction, self._events.claim_released(consumer_id))
            return True

        if (await self._store.transact(step)).result:
            self._outbox.notify()

    async def _read_providers(
        self, transaction: Transaction, refs: set[ProviderRef]
    ) -> dict[ProviderRef, Record[Any]]:
        records: dict[ProviderRef, Record[Any]] = {}
        for ref in sorted(refs, key=str):
            found = await transaction.get(self._providers[ref.kind], ref.id)
            if found is not None:
                records[ref] = found.value
        return records
