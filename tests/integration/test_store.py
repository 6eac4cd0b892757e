"""The etcd store against a real etcd server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from google.protobuf import wrappers_pb2

from medcloud.core.errors import AlreadyExists, ConcurrencyConflict, NotFound
from medcloud.runtime.store import Collection, EtcdStore, Mirror, ProtobufCodec, Transaction
from tests.support.identities import connect_store, secured_etcd

pytestmark = pytest.mark.integration
Counter = wrappers_pb2.Int64Value


@pytest.fixture
async def store(etcd_server, region) -> AsyncIterator[EtcdStore]:
    store = await connect_store(etcd_server.endpoint, region, "inventory")
    yield store
    await store.close()


@pytest.fixture
def counters(store) -> Collection[Counter]:
    return store.collection("counters", ProtobufCodec(Counter))


async def test_keys_live_under_the_region_and_service_prefix(store, counters, region):
    await counters.create("beds", Counter(value=1))
    assert counters.key("beds") == f"/medcloud/{region}/inventory/counters/beds".encode()
    assert [(c.id, c.value.value) for c in await counters.list()] == [("beds", 1)]


async def test_create_refuses_an_existing_id(counters):
    await counters.create("beds", Counter(value=1))
    with pytest.raises(AlreadyExists):
        await counters.create("beds", Counter(value=2))
    assert (await counters.require("beds")).value.value == 1


async def test_two_concurrent_read_modify_writes_both_land(store, counters, etcd_server, region):
    await counters.create("beds", Counter(value=0))
    # A second client, so the two updates really race through etcd.
    other = await connect_store(etcd_server.endpoint, region, "inventory")
    other_counters = other.collection("counters", ProtobufCodec(Counter))
    both_read = asyncio.Barrier(2)
    calls = {"mine": 0, "theirs": 0}

    def add(amount: int, who: str):
        def change(current: Counter) -> Counter:
            calls[who] += 1
            return Counter(value=current.value + amount)

        return change

    async def racing_update(collection: Collection[Counter], amount: int, who: str) -> None:
        async def step(transaction: Transaction) -> None:
            current = await transaction.get(collection, "beds")
            if calls[who] == 0:
                await both_read.wait()  # both have read revision N before either writes
            transaction.put(collection, "beds", add(amount, who)(current.value))

        await collection._store.transact(step)

    try:
        await asyncio.gather(
            racing_update(counters, 1, "mine"), racing_update(other_counters, 10, "theirs")
        )
    finally:
        await other.close()
    assert (await counters.require("beds")).value.value == 11
    assert sorted(calls.values()) == [1, 2]  # exactly one of them lost the race and retried


async def test_many_concurrent_updates_never_lose_one(counters):
    await counters.create("beds", Counter(value=0))
    await asyncio.gather(
        *(
            counters.update("beds", lambda c: Counter(value=c.value + 1), max_attempts=50)
            for _ in range(20)
        )
    )
    assert (await counters.require("beds")).value.value == 20


async def test_a_race_lost_every_time_surfaces_as_concurrency_conflict(store, counters):
    await counters.create("beds", Counter(value=0))

    async def always_overtaken(transaction: Transaction) -> None:
        current = await transaction.get(counters, "beds")
        await counters.update("beds", lambda c: Counter(value=c.value + 1))  # someone else wins
        transaction.put(counters, "beds", Counter(value=current.value.value + 100))

    with pytest.raises(ConcurrencyConflict):
        await store.transact(always_overtaken, max_attempts=3)
    assert (await counters.require("beds")).value.value == 3


async def test_a_transaction_writes_several_keys_all_or_nothing(store, counters):
    await counters.create("host-a", Counter(value=8))
    await counters.create("host-b", Counter(value=8))

    async def claim_both(transaction: Transaction) -> None:
        a = await transaction.get(counters, "host-a")
        b = await transaction.get(counters, "host-b")
        transaction.put(counters, "host-a", Counter(value=a.value.value - 4))
        transaction.put(counters, "host-b", Counter(value=b.value.value - 4))

    committed = await store.transact(claim_both)
    values = {c.id: (c.value.value, c.mod_revision) for c in await counters.list()}
    assert values == {"host-a": (4, committed.revision), "host-b": (4, committed.revision)}


async def test_update_of_a_missing_object_is_not_found(counters):
    with pytest.raises(NotFound):
        await counters.update("ghost", lambda c: c)


async def test_watch_sees_changes_in_order(counters):
    changes = []

    async def follow() -> None:
        async for change in counters.watch():
            changes.append(change)
            if len(changes) == 4:
                return

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.3)
    await counters.create("a", Counter(value=1))
    await counters.update("a", lambda c: Counter(value=2))
    await counters.create("b", Counter(value=3))
    await counters.delete("a")
    await asyncio.wait_for(follower, 10)
    assert [(c.id, None if c.deleted else c.value.value) for c in changes] == [
        ("a", 1),
        ("a", 2),
        ("b", 3),
        ("a", None),
    ]
    assert [c.revision for c in changes] == sorted(c.revision for c in changes)


async def test_watch_resumes_after_etcd_restarts_without_missing_a_change(tmp_path, region):
    etcd = secured_etcd(tmp_path)
    etcd.start()
    store = await connect_store(etcd.endpoint, region, "inventory")
    counters = store.collection("counters", ProtobufCodec(Counter))
    seen: list[tuple[str, int]] = []

    async def follow() -> None:
        async for change in counters.watch():
            seen.append((change.id, change.value.value))
            if len(seen) == 2:
                return

    follower = asyncio.create_task(follow())
    try:
        await asyncio.sleep(0.3)
        await counters.create("before", Counter(value=1))
        await asyncio.sleep(0.3)
        etcd.stop()
        await asyncio.sleep(1.0)
        etcd.start()  # same ports, same data directory
        writer = await connect_store(etcd.endpoint, region, "inventory")
        await writer.collection("counters", ProtobufCodec(Counter)).create(
            "after", Counter(value=2)
        )
        await writer.close()
        await asyncio.wait_for(follower, 20)
    finally:
        follower.cancel()
        await store.close()
        etcd.stop()
    assert seen == [("before", 1), ("after", 2)]


async def test_a_key_written_with_a_lease_vanishes_when_the_lease_is_revoked(store, counters):
    lease = await store.grant_lease(ttl_seconds=2)
    transaction = Transaction(store)
    transaction.put(counters, "heartbeat", Counter(value=1), lease_id=lease.id)
    assert await transaction.commit()
    await asyncio.sleep(3)  # longer than the TTL: the keep-alive loop must hold it
    assert await counters.get("heartbeat") is not None
    await lease.revoke()
    assert await counters.get("heartbeat") is None


async def test_pages_walk_the_collection_in_id_order(counters):
    for name in ("e", "a", "c", "b", "d"):
        await counters.create(name, Counter(value=1))
    pages, after = [], ""
    while page := await counters.page(after, 2):
        pages.append([item.id for item in page])
        after = page[-1].id
    assert pages == [["a", "b"], ["c", "d"], ["e"]]


async def test_a_mirror_follows_creates_updates_and_deletes(counters):
    await counters.create("before", Counter(value=1))
    mirror = Mirror(counters)
    follower = asyncio.create_task(mirror.run())
    try:
        await asyncio.wait_for(mirror.loaded.wait(), 10)
        await counters.create("after", Counter(value=2))
        await counters.update("before", lambda c: Counter(value=5))
        await counters.delete("after")
        await counters.create("last", Counter(value=3))
        deadline = asyncio.get_running_loop().time() + 10
        while "last" not in mirror.items:
            assert asyncio.get_running_loop().time() < deadline, mirror.items
            await asyncio.sleep(0.05)
    finally:
        follower.cancel()
    assert {key: value.value for key, value in mirror.items.items()} == {"before": 5, "last": 3}
