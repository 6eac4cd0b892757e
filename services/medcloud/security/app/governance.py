"""The security pool, each site's MLPS level-3 baseline, the data-sharing gate and
de-identification, every change and decision written to the audit trail with who made it
(R-7.2.4, R-7.5a-c)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from medcloud.core.access import Identity
from medcloud.runtime.store import Collection, EtcdStore, Transaction
from medcloud.security.app.trail import AuditTrail
from medcloud.security.domain.audit import AuditEvent, RetentionPolicy
from medcloud.security.domain.baseline import BaselineReport, evaluate_baseline, site_facts
from medcloud.security.domain.deidentification import (
    MIN_KEY_BYTES,
    DeidentificationPolicy,
    KeyRing,
    Release,
    prepare_release,
)
from medcloud.security.domain.pool import (
    Allocation,
    Capability,
    SecurityInstance,
    SecurityPool,
    Zone,
)
from medcloud.security.domain.sharing import ExportRequest, SharingDecision, decide


@dataclass(frozen=True)
class PoolCollections:
    instances: Collection[SecurityInstance]
    allocations: Collection[Allocation]


class Governance:
    def __init__(
        self,
        store: EtcdStore,
        pool: PoolCollections,
        trail: AuditTrail,
        retention: RetentionPolicy,
        transport_encrypted: bool,
    ) -> None:
        self._store = store
        self._pool = pool
        self._trail = trail
        self._retention = retention
        self._transport_encrypted = transport_encrypted

    async def _audit(
        self, identity: Identity, action: str, target: str, outcome: str, **detail: str
    ) -> None:
        await self._trail.append(
            AuditEvent(identity.subject, identity.role_names, action, target, outcome, detail)
        )

    async def _loaded(
        self, transaction: Transaction
    ) -> tuple[SecurityPool, dict[Allocation, list[str]]]:
        """The pool as stored, every key guarded, with the keys each allocation is stored under
        (two equal allocations are two keys)."""
        instances = [item.value for item in await transaction.scan(self._pool.instances)]
        allocations = await transaction.scan(self._pool.allocations)
        keys: dict[Allocation, list[str]] = {}
        for item in allocations:
            keys.setdefault(item.value, []).append(item.id)
        return SecurityPool(instances, [item.value for item in allocations]), keys

    async def add_instance(
        self, identity: Identity, instance: SecurityInstance
    ) -> SecurityInstance:
        async def write(transaction: Transaction) -> None:
            pool, _ = await self._loaded(transaction)
            pool.add_instance(instance)
            transaction.put(self._pool.instances, instance.id, instance)

        await self._store.transact(write)
        await self._audit(
            identity,
            "security.policy.write",
            f"instance/{instance.id}",
            "added",
            capability=instance.capability.value,
            centre=instance.centre_id,
        )
        return instance

    async def pool(self) -> SecurityPool:
        instances = [item.value for item in await self._pool.instances.list()]
        allocations = [item.value for item in await self._pool.allocations.list()]
        return SecurityPool(instances, allocations)

    async def allocate(
        self,
        identity: Identity,
        site_id: str,
        zone: Zone,
        capability: Capability,
        units: int,
        prefer_centre_id: str | None,
    ) -> Allocation:
        async def write(transaction: Transaction) -> Allocation:
            pool, _ = await self._loaded(transaction)
            allocation = pool.allocate(
                site_id, zone, capability, units, prefer_centre_id=prefer_centre_id
            )
            transaction.put(self._pool.allocations, uuid.uuid4().hex, allocation)
            return allocation

        allocation = (await self._store.transact(write)).result
        await self._audit(
            identity,
            "security.policy.write",
            f"site/{site_id}",
            "allocated",
            zone=zone.value,
            capability=capability.value,
            units=str(units),
            instance=allocation.instance_id,
        )
        return allocation

    async def release(
        self, identity: Identity, site_id: str, zone: Zone, capability: Capability
    ) -> tuple[Allocation, ...]:
        async def write(transaction: Transaction) -> tuple[Allocation, ...]:
            pool, keys = await self._loaded(transaction)
            released = pool.release(site_id, zone, capability)
            for allocation in released:
                transaction.delete(self._pool.allocations, keys[allocation].pop())
            return released

        released = (await self._store.transact(write)).result
        await self._audit(
            identity,
            "security.policy.write",
            f"site/{site_id}",
            "released",
            zone=zone.value,
            capability=capability.value,
        )
        return released

    async def evaluate_baseline(self, identity: Identity, site_id: str) -> BaselineReport:
        """The site's coverage from the pool; the platform's own facts as this service knows
        them: transport encryption as configured, roles separated by medcloud.core.access, and
        the trail as its last verification found it (unverified counts as not met)."""
        verified = self._trail.last_verification
        facts = site_facts(
            await self.pool(),
            site_id,
            log_retention_days=self._retention.minimum_days,
            transport_encrypted=self._transport_encrypted,
            separate_admin_roles=True,
            audit_trail_verified=verified is not None and verified.ok,
        )
        report = evaluate_baseline(facts)
        await self._audit(
            identity,
            "security.baseline.evaluate",
            f"site/{site_id}",
            "passed" if report.passed else "failed",
            score=f"{report.score:.3f}",
        )
        return report

    async def decide_export(self, identity: Identity, request: ExportRequest) -> SharingDecision:
        decision = decide(request)
        await self._audit(
            identity,
            "data.export.decide",
            f"dataset/{request.dataset_id}",
            "allowed" if decision.allowed else "refused",
            mode=request.mode.value,
            data_class=request.data_class.value,
            recipient=request.recipient,
            agreement=request.agreement_id,
            reason=decision.reason[:1000],
        )
        return decision


@dataclass(frozen=True)
class KeyCollections:
    # Secrets by key id (hex), and the id new pseudonyms use under CURRENT_KEY.
    keys: Collection[str]
    current: Collection[str]


CURRENT_KEY = "current"


class Deidentification:
    """De-identification with the region's pseudonym keys, kept in etcd; every release and every
    rotation is audited (counts and classes, never a value)."""

    def __init__(self, store: EtcdStore, keys: KeyCollections, trail: AuditTrail) -> None:
        self._store = store
        self._keys = keys
        self._trail = trail

    async def _ring(self) -> KeyRing:
        current = await self._keys.current.get(CURRENT_KEY)
        if current is None:
            return await self._rotate()
        keys = {item.id: bytes.fromhex(item.value) for item in await self._keys.keys.list()}
        return KeyRing(keys, current.value)

    async def _rotate(self) -> KeyRing:
        async def write(transaction: Transaction) -> KeyRing:
            current = await transaction.get(self._keys.current, CURRENT_KEY)
            stored = await transaction.scan(self._keys.keys)
            key_id = f"k{len(stored) + 1}"
            secret = secrets.token_bytes(MIN_KEY_BYTES)
            transaction.put(self._keys.keys, key_id, secret.hex())
            transaction.put(self._keys.current, CURRENT_KEY, key_id)
            keys = {item.id: bytes.fromhex(item.value) for item in stored}
            ring = KeyRing(keys, current.value) if current else None
            return ring.rotate(key_id, secret) if ring else KeyRing({key_id: secret}, key_id)

        return (await self._store.transact(write)).result

    async def rotate(self, identity: Identity) -> str:
        ring = await self._rotate()
        await self._trail.append(
            AuditEvent(
                identity.subject,
                identity.role_names,
                "security.deidentification-key.manage",
                f"pseudonym-key/{ring.current}",
                "rotated",
            )
        )
        return ring.current

    async def deidentify(
        self,
        identity: Identity,
        policy: DeidentificationPolicy,
        records: list[dict[str, object]],
        k_required: int,
    ) -> tuple[Release, str]:
        ring = await self._ring()
        release = prepare_release(records, policy, ring, k_required)
        await self._trail.append(
            AuditEvent(
                identity.subject,
                identity.role_names,
                "data.deidentify",
                "records",
                release.data_class.value,
                {
                    "records": str(len(records)),
                    "k": str(release.anonymity.k),
                    "k_required": str(k_required),
                    "key_id": ring.current,
                },
            )
        )
        return release, ring.current
