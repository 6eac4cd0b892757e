"""The transactional outbox against real etcd and NATS: an event is published if and only if the
change it reports committed, even when the process that wrote it died before relaying it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from google.protobuf import wrappers_pb2

from medcloud.core.errors import ConcurrencyConflict
from medcloud.runtime.bus import EventBus, ReceivedEvent
from medcloud.runtime.outbox import Outbox
from medcloud.runtime.store import EtcdStore, ProtobufCodec, Transaction
from tests.support.identities import connect_store

pytestmark = pytest.mark.integration


@pytest.fixture
async def wiring(etcd_server, nats_server, region) -> AsyncIterator[tuple[EtcdStore, EventBus]]:
    store = await connect_store(etcd_server.endpoint, region, "inventory")
    bus = await EventBus.connect(nats_server.url, region, "inventory")
    yield store, bus
    await bus.close()
    await store.close()


async def _received(nats_url: str, region: str, count: int) -> list[str]:
    listener = await EventBus.connect(nats_url, region, "scheduling")
    values: list[str] = []
    done = asyncio.Event()

    async def record(event: ReceivedEvent) -> None:
        values.append(event.payload.value)
        if len(values) == count:
            done.set()

    await listener.subscribe(
        source_service="inventory",
        event_types=[wrappers_pb2.StringValue],
        durable="outbox-test",
        handler=record,
    )
    try:
        await asyncio.wait_for(done.wait(), 10)
        await asyncio.sleep(0.5)  # room for a wrong extra event
    finally:
        await listener.close()
    return values


async def test_an_event_left_by_a_crashed_writer_is_published_by_the_next_relay(
    wiring, nats_server, region
):
    store, bus = wiring
    things = store.collection("things", ProtobufCodec(wrappers_pb2.StringValue))
    crashed_writer = Outbox(store, bus)

    async def change(transaction: Transaction) -> None:
        transaction.put(things, "t1", wrappers_pb2.StringValue(value="t1"))
        crashed_writer.add(transaction, wrappers_pb2.StringValue(value="t1 registered"), "t1-1")

    await store.transact(change)  # committed, never relayed: the writer "died" here

    async def refused(transaction: Transaction) -> None:
        transaction.expect_revision(things, "t1", 0)  # fails: t1 exists
        transaction.put(things, "t1", wrappers_pb2.StringValue(value="again"))
        crashed_writer.add(transaction, wrappers_pb2.StringValue(value="never happened"), "t1-x")

    with pytest.raises(ConcurrencyConflict):
        await store.transact(refused, max_attempts=1)

    successor = Outbox(store, bus)
    assert await successor.flush() == 1
    assert await successor.flush() == 0  # published once, then gone from the outbox
    assert await _received(nats_server.url, region, 1) == ["t1 registered"]


async def test_the_relay_publishes_in_commit_order(wiring, nats_server, region):
    store, bus = wiring
    things = store.collection("things", ProtobufCodec(wrappers_pb2.StringValue))
    outbox = Outbox(store, bus)
    relay = asyncio.create_task(outbox.relay())
    try:
        for name in ("z", "a", "m"):

            async def change(transaction: Transaction, name: str = name) -> None:
                transaction.put(things, name, wrappers_pb2.StringValue(value=name))
                outbox.add(transaction, wrappers_pb2.StringValue(value=name), f"{name}-1")

            await store.transact(change)
            outbox.notify()
        assert await _received(nats_server.url, region, 3) == ["z", "a", "m"]
    finally:
        relay.cancel()
