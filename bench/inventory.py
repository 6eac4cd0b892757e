"""Inventory figures through the real service process (etcd, NATS, `python -m medcloud.inventory`):

- claims per second with 8 concurrent clients, and the share refused because races kept being lost
  (ABORTED) or the claim did not fit (FAILED_PRECONDITION);
- allocation-candidates latency (p50, p99) at 1,000, 5,000 and 20,000 hosts.

Prints figures; asserts nothing."""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import grpc

from medcloud.devstack.stack import LocalStack, open_aio_channel
from medcloud.inventory.v1 import inventory_pb2 as pb
from medcloud.inventory.v1 import inventory_service_pb2 as api
from medcloud.inventory.v1 import inventory_service_pb2_grpc as api_grpc

CLIENTS = 8
CLAIMS = 2000
CLAIM_HOSTS = 40
SCALES = (1000, 5000, 20000)
QUERIES = 200
CENTRES = 10


async def _seed_topology(stub: api_grpc.InventoryServiceStub) -> None:
    for c in range(CENTRES):
        await stub.CreateCentre(
            api.CreateCentreRequest(
                centre=pb.Centre(
                    id=f"room-{c}",
                    display_name=f"Room {c}",
                    role=pb.CENTRE_ROLE_HOSPITAL_ROOM,
                    city=f"city-{c % 3}",
                    province="Guangdong",
                )
            )
        )
        await stub.CreateCluster(
            api.CreateClusterRequest(
                cluster=pb.Cluster(
                    id=f"cluster-{c}",
                    centre_id=f"room-{c}",
                    platform=pb.PLATFORM_OPENSTACK,
                    ownership=pb.OWNERSHIP_PRIVATE if c % 2 else pb.OWNERSHIP_PUBLIC,
                )
            )
        )
        await stub.CreateStoragePool(
            api.CreateStoragePoolRequest(
                pool=pb.StoragePool(
                    id=f"san-{c}",
                    centre_id=f"room-{c}",
                    storage_class=pb.STORAGE_CLASS_BLOCK_FC_SAN,
                    capacity_gib=10**9,
                )
            )
        )


async def _add_hosts(stub: api_grpc.InventoryServiceStub, start: int, stop: int) -> None:
    async def worker(indices: range) -> None:
        for i in indices:
            await stub.CreateHost(
                api.CreateHostRequest(
                    host=pb.Host(
                        id=f"host-{i:05d}",
                        cluster_id=f"cluster-{i % CENTRES}",
                        rack=f"r{i % 40}",
                        vcpu=64,
                        memory_gib=256,
                        uplink_gbps=10,
                        traits=["SSD"] if i % 3 else [],
                    )
                )
            )

    await asyncio.gather(*(worker(range(start + w, stop, 8)) for w in range(8)))


async def claims_per_second(stub: api_grpc.InventoryServiceStub) -> None:
    outcomes: Counter[str] = Counter()
    per_client = CLAIMS // CLIENTS

    async def client(number: int) -> None:
        rng = random.Random(number)
        for i in range(per_client):
            host = f"host-{rng.randrange(CLAIM_HOSTS):05d}"
            claim = pb.Claim(
                consumer_id=f"bench-{number}-{i}",
                allocations=[
                    pb.Allocation(
                        provider=pb.ProviderRef(host_id=host),
                        resources=pb.Resources(vcpu=1, memory_gib=1),
                    ),
                    pb.Allocation(
                        provider=pb.ProviderRef(pool_id=f"san-{int(host[5:]) % CENTRES}"),
                        resources=pb.Resources(storage_gib=10),
                    ),
                ],
            )
            try:
                await stub.PutClaim(api.PutClaimRequest(claim=claim))
                outcomes["claimed"] += 1
            except grpc.aio.AioRpcError as error:
                outcomes[error.code().name] += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    elapsed = time.perf_counter() - started
    total = sum(outcomes.values())
    print(
        f"claims, {CLIENTS} concurrent clients, {total} claims over {CLAIM_HOSTS} hosts: "
        f"{total / elapsed:.0f} claims/s"
    )
    for outcome, count in sorted(outcomes.items()):
        print(f"  {outcome:<20} {count:6d}  {100 * count / total:5.1f} %")


async def candidate_latency(stub: api_grpc.InventoryServiceStub, hosts: int) -> None:
    request = api.ListAllocationCandidatesRequest(
        vcpu=8,
        memory_gib=32,
        storage_class=pb.STORAGE_CLASS_BLOCK_FC_SAN,
        storage_gib=500,
        required_traits=["SSD"],
        ownership=pb.OWNERSHIP_PRIVATE,
        limit=50,
    )
    await asyncio.sleep(1.0)  # the watch-fed mirror catches up with the registrations
    samples = []
    for _ in range(QUERIES):
        began = time.perf_counter()
        await stub.ListAllocationCandidates(request)
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    print(
        f"candidates at {hosts:>6} hosts: p50 {statistics.median(samples):6.1f} ms   "
        f"p99 {samples[int(len(samples) * 0.99) - 1]:6.1f} ms   ({QUERIES} queries)"
    )


async def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        stack = LocalStack(Path(work), region="bench", services=("inventory",), clusters=())
        stack.start()
        try:
            address = stack.services[0].address
            async with open_aio_channel(address, stack.operator_tls) as channel:
                stub = api_grpc.InventoryServiceStub(channel)
                await _seed_topology(stub)
                registered = 0
                for scale in SCALES:
                    began = time.perf_counter()
                    await _add_hosts(stub, registered, scale)
                    print(
                        f"registered hosts {registered}..{scale} in {time.perf_counter() - began:.0f} s"
                    )
                    registered = scale
                    if scale == SCALES[0]:
                        await claims_per_second(stub)
                    await candidate_latency(stub, scale)
        finally:
            stack.stop()


if __name__ == "__main__":
    asyncio.run(main())
