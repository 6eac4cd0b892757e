"""Claims against real etcd: concurrent claimers never oversubscribe a provider, and what was
claimed is exactly what a fresh reader finds afterwards."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medcloud.core.errors import ConcurrencyConflict
from medcloud.inventory.adapters.codecs import ClaimCodec, HostRecordCodec, PoolRecordCodec
from medcloud.inventory.app.capacity import Capacity
from medcloud.inventory.domain.claims import (
    Allocation,
    Claim,
    InsufficientCapacity,
    ProviderKind,
    ProviderRef,
)
from medcloud.inventory.domain.model import (
    Host,
    HostState,
    Resources,
    StorageClass,
    StoragePool,
)
from medcloud.runtime.config import HostPort
from medcloud.runtime.store import EtcdStore

pytestmark = pytest.mark.integration
HOSTS = {"h1": 16, "h2": 24}
POOL_GIB = 100


async def _open(endpoint: str, region: str) -> tuple[EtcdStore, Capacity]:
    """A connection and the use cases over it, as one service process has them."""
    store = await EtcdStore.connect(HostPort.parse(endpoint), region, "inventory")
    capacity = Capacity(
        store,
        store.collection("hosts", HostRecordCodec()),
        store.collection("pools", PoolRecordCodec()),
        store.collection("claims", ClaimCodec()),
    )
    return store, capacity


async def _seed(capacity: Capacity) -> None:
    for host_id, vcpu in HOSTS.items():
        await capacity.register_host(Host(host_id, "c1", "r1", vcpu, vcpu * 4, 10.0))
    await capacity.register_pool(StoragePool("san", "hosp", StorageClass.BLOCK_FC_SAN, POOL_GIB))


def _claim(consumer: str, host_id: str, vcpu: int, storage_gib: int) -> Claim:
    return Claim(
        consumer,
        (
            Allocation(
                ProviderRef(ProviderKind.HOST, host_id), Resources(vcpu=vcpu, memory_gib=vcpu)
            ),
            Allocation(ProviderRef(ProviderKind.POOL, "san"), Resources(storage_gib=storage_gib)),
        ),
    )


claims_strategy = st.lists(
    st.tuples(st.sampled_from(sorted(HOSTS)), st.integers(1, 8), st.integers(1, 30)),
    min_size=4,
    max_size=24,
)


@settings(max_examples=12, deadline=None)
@given(requests=claims_strategy)
def test_concurrent_claimers_never_oversubscribe_and_every_success_is_accounted_for(
    etcd_server, requests
):
    asyncio.run(_claim_concurrently(etcd_server.endpoint, f"p{uuid.uuid4().hex[:10]}", requests))


async def _claim_concurrently(endpoint: str, region: str, requests) -> None:
    connections = [await _open(endpoint, region) for _ in range(4)]
    clients = [capacity for _, capacity in connections]
    await _seed(clients[0])
    outcomes: dict[str, str] = {}

    async def attempt(index: int, host_id: str, vcpu: int, storage_gib: int) -> None:
        consumer = f"consumer-{index}"
        try:
            await clients[index % len(clients)].put_claim(
                _claim(consumer, host_id, vcpu, storage_gib)
            )
            outcomes[consumer] = "claimed"
        except InsufficientCapacity:
            outcomes[consumer] = "refused"
        except ConcurrencyConflict:
            outcomes[consumer] = "aborted"

    await asyncio.gather(*(attempt(i, *request) for i, request in enumerate(requests)))
    for store, _ in connections:
        await store.close()

    store, fresh = await _open(endpoint, region)  # as a restarted service would read it
    try:
        stored = {c.id: c.value for c in await fresh.claims.list()}
        assert set(stored) == {c for c, outcome in outcomes.items() if outcome == "claimed"}
        for host_id, vcpu in HOSTS.items():
            record = await fresh.require_host(host_id)
            claimed = sum(
                c.on(ProviderRef(ProviderKind.HOST, host_id)).vcpu for c in stored.values()
            )
            assert record.used.vcpu == claimed <= vcpu
        pool = await fresh.require_pool("san")
        claimed_gib = sum(
            c.on(ProviderRef(ProviderKind.POOL, "san")).storage_gib for c in stored.values()
        )
        assert pool.used.storage_gib == claimed_gib <= POOL_GIB
    finally:
        await store.close()


async def test_release_is_idempotent_and_gives_everything_back(etcd_server, region):
    store, capacity = await _open(etcd_server.endpoint, region)
    try:
        await _seed(capacity)
        await capacity.put_claim(_claim("his-0", "h1", 8, 50))
        await capacity.release_claim("his-0")
        await capacity.release_claim("his-0")
        assert (await capacity.require_host("h1")).used == Resources()
        assert (await capacity.require_pool("san")).used == Resources()
        assert await capacity.claims.get("his-0") is None
    finally:
        await store.close()


async def test_a_host_in_maintenance_takes_no_new_claim(etcd_server, region):
    store, capacity = await _open(etcd_server.endpoint, region)
    try:
        await capacity.register_host(Host("h9", "c1", "r1", 16, 64, 10.0, HostState.MAINTENANCE))
        await capacity.register_pool(StoragePool("san", "hosp", StorageClass.BLOCK_FC_SAN, 10))
        with pytest.raises(
            InsufficientCapacity, match="host/h9 accepts no new claims: host state is maintenance"
        ):
            await capacity.put_claim(_claim("lis-0", "h9", 1, 1))
        assert (await capacity.require_pool("san")).used == Resources()  # nothing half-written
    finally:
        await store.close()
