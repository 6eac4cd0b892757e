"""Claims through the real service: never past capacity, all or nothing, and nothing lost when the
process dies; every change announced on NATS; candidates that fit."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medcloud.inventory.client import create
from medcloud.inventory.domain.model import (
    Centre,
    CentreRole,
    Cluster,
    Host,
    Ownership,
    Platform,
    StorageClass,
    StoragePool,
)
from medcloud.inventory.v1 import inventory_events_pb2 as events
from medcloud.inventory.v1 import inventory_pb2 as pb
from medcloud.inventory.v1 import inventory_service_pb2 as api
from medcloud.inventory.v1 import inventory_service_pb2_grpc as api_grpc
from medcloud.runtime.bus import EventBus, ReceivedEvent
from tests.support.identities import client_channel
from tests.support.processes import start_service

pytestmark = pytest.mark.integration
HOSTS = {"h1": 16, "h2": 24}
POOL_GIB = 100


def _seed(stub: api_grpc.InventoryServiceStub) -> None:
    create(
        stub,
        "centre",
        Centre("hosp", "Hospital room", CentreRole.HOSPITAL_ROOM, "Guangzhou", "Guangdong"),
    )
    create(stub, "cluster", Cluster("c1", "hosp", Platform.OPENSTACK, Ownership.PRIVATE))
    for host_id, vcpu in HOSTS.items():
        create(
            stub, "host", Host(host_id, "c1", "r1", vcpu, vcpu * 4, 10.0, traits=frozenset({"SSD"}))
        )
    create(stub, "pool", StoragePool("san", "hosp", StorageClass.BLOCK_FC_SAN, POOL_GIB))


def _claim(consumer: str, host_id: str, vcpu: int, storage_gib: int) -> pb.Claim:
    return pb.Claim(
        consumer_id=consumer,
        allocations=[
            pb.Allocation(
                provider=pb.ProviderRef(host_id=host_id),
                resources=pb.Resources(vcpu=vcpu, memory_gib=vcpu),
            ),
            pb.Allocation(
                provider=pb.ProviderRef(pool_id="san"),
                resources=pb.Resources(storage_gib=storage_gib),
            ),
        ],
    )


def _accounted(stub: api_grpc.InventoryServiceStub, consumers: list[str]) -> dict[str, int]:
    """What the service says is used, checked against the claims it says exist."""
    stored = {}
    for consumer in consumers:
        try:
            stored[consumer] = stub.GetClaim(api.GetClaimRequest(consumer_id=consumer)).claim
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
    used = {h: stub.GetHost(api.GetHostRequest(id=h)).host.used.vcpu for h in HOSTS}
    used["san"] = stub.GetStoragePool(api.GetStoragePoolRequest(id="san")).pool.used.storage_gib
    for host_id in HOSTS:
        assert (
            used[host_id]
            == sum(
                a.resources.vcpu
                for c in stored.values()
                for a in c.allocations
                if a.provider.host_id == host_id
            )
            <= HOSTS[host_id]
        )
    assert (
        used["san"]
        == sum(
            a.resources.storage_gib
            for c in stored.values()
            for a in c.allocations
            if a.provider.pool_id
        )
        <= POOL_GIB
    )
    return {"claims": len(stored), **used}


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    requests=st.lists(
        st.tuples(st.sampled_from(sorted(HOSTS)), st.integers(1, 8), st.integers(1, 30)),
        min_size=8,
        max_size=32,
    )
)
def test_concurrent_claimers_never_oversubscribe_and_every_claim_survives_a_restart(
    etcd_server, nats_server, tmp_path, requests
):
    region = f"p{uuid.uuid4().hex[:10]}"
    process, address = start_service(
        "medcloud.inventory",
        etcd_server.endpoint,
        nats_server.url,
        region,
        tmp_path / f"{region}.log",
    )
    try:
        with client_channel(address) as channel:
            stub = api_grpc.InventoryServiceStub(channel)
            _seed(stub)
            outcomes: dict[str, grpc.StatusCode] = {}

            def attempt(index: int) -> None:
                host_id, vcpu, storage_gib = requests[index]
                consumer = f"consumer-{index}"
                try:
                    stub.PutClaim(
                        api.PutClaimRequest(claim=_claim(consumer, host_id, vcpu, storage_gib))
                    )
                    outcomes[consumer] = grpc.StatusCode.OK
                except grpc.RpcError as error:
                    outcomes[consumer] = error.code()

            with ThreadPoolExecutor(8) as pool:  # 8 concurrent clients
                list(pool.map(attempt, range(len(requests))))
            assert set(outcomes.values()) <= {
                grpc.StatusCode.OK,
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.ABORTED,
            }
            before = _accounted(stub, list(outcomes))
            assert before["claims"] == sum(code == grpc.StatusCode.OK for code in outcomes.values())
    finally:
        process.process.send_signal(signal.SIGKILL)  # no drain, no goodbye
        process.process.wait()
    process, address = start_service(
        "medcloud.inventory",
        etcd_server.endpoint,
        nats_server.url,
        region,
        tmp_path / f"{region}-2.log",
    )
    try:
        with client_channel(address) as channel:
            assert _accounted(api_grpc.InventoryServiceStub(channel), list(outcomes)) == before
    finally:
        process.stop()


def test_a_claim_that_does_not_fit_takes_nothing(inventory):
    _seed(inventory.stub)
    with pytest.raises(grpc.RpcError) as raised:
        inventory.stub.PutClaim(api.PutClaimRequest(claim=_claim("pacs-0", "h1", 4, POOL_GIB + 1)))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "pool/san: 101 storage_gib requested, 100 free of 100" in raised.value.details()
    assert inventory.stub.GetHost(api.GetHostRequest(id="h1")).host.used.vcpu == 0


def test_release_is_idempotent(inventory):
    _seed(inventory.stub)
    inventory.stub.PutClaim(api.PutClaimRequest(claim=_claim("his-0", "h1", 8, 50)))
    for _ in range(2):
        inventory.stub.ReleaseClaim(api.ReleaseClaimRequest(consumer_id="his-0"))
    assert inventory.stub.GetHost(api.GetHostRequest(id="h1")).host.used == pb.Resources()
    with pytest.raises(grpc.RpcError) as raised:
        inventory.stub.DeleteHost(api.DeleteHostRequest(id="h2", generation=99))
    assert raised.value.code() == grpc.StatusCode.ABORTED


def test_a_host_holding_claims_cannot_be_removed(inventory):
    _seed(inventory.stub)
    inventory.stub.PutClaim(api.PutClaimRequest(claim=_claim("his-0", "h1", 8, 50)))
    with pytest.raises(grpc.RpcError) as raised:
        inventory.stub.DeleteHost(api.DeleteHostRequest(id="h1"))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_candidates_fit_the_request_and_its_filters(inventory):
    _seed(inventory.stub)
    inventory.stub.PutClaim(api.PutClaimRequest(claim=_claim("his-0", "h1", 12, 10)))

    def candidates(**request) -> list[tuple[str, str, int]]:
        found = inventory.stub.ListAllocationCandidates(
            api.ListAllocationCandidatesRequest(**request)
        )
        return [(c.host_id, c.pool_id, c.free.vcpu) for c in found.candidates]

    wanted = {
        "vcpu": 8,
        "memory_gib": 8,
        "storage_class": pb.STORAGE_CLASS_BLOCK_FC_SAN,
        "storage_gib": 50,
    }
    assert _eventually(lambda: candidates(**wanted) == [("h2", "san", 24)])
    assert candidates(**wanted, excluded_host_ids=["h2"]) == []
    assert candidates(vcpu=2, required_traits=["SSD"]) == [("h1", "", 4), ("h2", "", 24)]
    assert candidates(vcpu=2, forbidden_traits=["SSD"]) == []
    assert candidates(vcpu=2, ownership=pb.OWNERSHIP_PUBLIC) == []
    assert candidates(vcpu=2, cities=["Guiyang"]) == []
    assert candidates(storage_class=pb.STORAGE_CLASS_FILE_NAS, storage_gib=1) == []


def _eventually(check, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def test_every_change_is_announced_on_nats(inventory, nats_server, region):
    listener = await EventBus.connect(nats_server.url, region, "scheduling")
    received: list[Message] = []
    all_arrived = asyncio.Event()

    async def record(event: ReceivedEvent) -> None:
        received.append(event.payload)
        if len(received) == 7:
            all_arrived.set()

    await listener.subscribe(
        source_service="inventory",
        event_types=[
            events.HostRegistered,
            events.HostChanged,
            events.HostStateChanged,
            events.ClaimChanged,
            events.ClaimReleased,
            events.HostRemoved,
        ],
        durable="scheduling-inventory",
        handler=record,
    )
    try:
        stub = inventory.stub
        await asyncio.to_thread(_seed, stub)
        host = (await asyncio.to_thread(stub.GetHost, api.GetHostRequest(id="h2"))).host
        host.state = pb.HOST_STATE_MAINTENANCE
        await asyncio.to_thread(stub.UpdateHost, api.UpdateHostRequest(host=host))
        await asyncio.to_thread(
            stub.PutClaim, api.PutClaimRequest(claim=_claim("his-0", "h1", 2, 2))
        )
        await asyncio.to_thread(stub.ReleaseClaim, api.ReleaseClaimRequest(consumer_id="his-0"))
        await asyncio.to_thread(stub.DeleteHost, api.DeleteHostRequest(id="h2"))
        await asyncio.wait_for(all_arrived.wait(), 15)
        await asyncio.sleep(0.5)  # room for a wrong extra event to show up
    finally:
        await listener.close()
    assert [type(p).__name__ for p in received] == [
        "HostRegistered",
        "HostRegistered",
        "HostChanged",
        "HostStateChanged",
        "ClaimChanged",
        "ClaimReleased",
        "HostRemoved",
    ]
    assert received[3].previous_state == pb.HOST_STATE_ACTIVE
