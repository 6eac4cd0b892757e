"""Use cases for resource providers and the claims on them (Placement's job, done atomically in etcd)."""

from __future__ import annotations

from medcloud.core.errors import NotFound
from medcloud.inventory.app.records import HostRecord, PoolRecord
from medcloud.inventory.domain.claims import (
    Claim,
    ProviderKind,
    ProviderRef,
    ProviderUsage,
    apply_claim,
    claim_violations,
    release_claim,
)
from medcloud.inventory.domain.model import Host, Resources, StoragePool
from medcloud.inventory.domain.validation import host_violations, pool_violations, require_valid
from medcloud.runtime.store import Collection, EtcdStore, Transaction


class Capacity:
    """Registers hosts and storage pools, and takes and releases claims on them. A claim and every
    provider it touches are written in one etcd transaction guarded by what was read, so
    concurrent claims can never together push a provider past its capacity."""

    def __init__(
        self,
        store: EtcdStore,
        hosts: Collection[HostRecord],
        pools: Collection[PoolRecord],
        claims: Collection[Claim],
    ) -> None:
        self._store = store
        self.hosts = hosts
        self.pools = pools
        self.claims = claims

    async def register_host(self, host: Host) -> HostRecord:
        require_valid(host_violations(host))
        record = HostRecord(host, Resources(), generation=1)
        await self.hosts.create(host.id, record)
        return record

    async def register_pool(self, pool: StoragePool) -> PoolRecord:
        require_valid(pool_violations(pool))
        record = PoolRecord(pool, Resources(), generation=1)
        await self.pools.create(pool.id, record)
        return record

    async def get_claim(self, consumer_id: str) -> Claim:
        return (await self.claims.require(consumer_id)).value

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
            usages = {ref: record.usage() for ref, record in records.items()}
            for ref, usage in apply_claim(usages, claim, previous_claim).items():
                self._write_provider(transaction, ref, records[ref], usage)
            transaction.put(self.claims, claim.consumer_id, claim)

        await self._store.transact(step)
        return claim

    async def release_claim(self, consumer_id: str) -> None:
        """Gives the consumer's resources back; releasing twice is harmless."""

        async def step(transaction: Transaction) -> None:
            found = await transaction.get(self.claims, consumer_id)
            if found is None:
                return
            refs = {a.provider for a in found.value.allocations}
            records = await self._read_providers(transaction, refs)
            usages = {ref: record.usage() for ref, record in records.items()}
            for ref, usage in release_claim(usages, found.value).items():
                self._write_provider(transaction, ref, records[ref], usage)
            transaction.delete(self.claims, consumer_id)

        await self._store.transact(step)

    async def require_host(self, host_id: str) -> HostRecord:
        return (await self.hosts.require(host_id)).value

    async def require_pool(self, pool_id: str) -> PoolRecord:
        found = await self.pools.get(pool_id)
        if found is None:
            raise NotFound("storage pool", pool_id)
        return found.value

    async def _read_providers(
        self, transaction: Transaction, refs: set[ProviderRef]
    ) -> dict[ProviderRef, HostRecord | PoolRecord]:
        records: dict[ProviderRef, HostRecord | PoolRecord] = {}
        for ref in sorted(refs, key=str):
            collection = self.hosts if ref.kind is ProviderKind.HOST else self.pools
            found = await transaction.get(collection, ref.id)
            if found is not None:
                records[ref] = found.value
        return records

    def _write_provider(
        self,
        transaction: Transaction,
        ref: ProviderRef,
        record: HostRecord | PoolRecord,
        usage: ProviderUsage,
    ) -> None:
        if isinstance(record, HostRecord):
            transaction.put(self.hosts, ref.id, record.with_usage(usage))
        else:
            transaction.put(self.pools, ref.id, record.with_usage(usage))
