"""Capacity utilisation per centre from inventory's claims (R-6.5b capacity management): what
hosts and storage pools have in use against what they have, read over inventory's gRPC API."""

from __future__ import annotations

from collections import defaultdict

import grpc

from medcloud.core.errors import Unavailable
from medcloud.inventory.client import all_pages
from medcloud.inventory.v1 import inventory_service_pb2 as inv_api
from medcloud.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from medcloud.monitoring.domain.samples import Metric, Sample, SeriesKey
from medcloud.runtime.grpc_client import service_channel
from medcloud.runtime.tls import TlsMaterial


class InventoryCapacity:
    def __init__(self, address: str, tls: TlsMaterial | None) -> None:
        self._channel = service_channel(address, tls)
        self._stub = inv_grpc.InventoryServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def utilisation(self, now: float) -> list[Sample]:
        """One sample per centre and resource (vcpu, memory, storage) that has any capacity."""
        stub = self._stub
        try:
            clusters = {
                c.id: c.centre_id
                async for c in all_pages(stub.ListClusters, inv_api.ListClustersRequest, "clusters")
            }
            hosts = [h async for h in all_pages(stub.ListHosts, inv_api.ListHostsRequest, "hosts")]
            pools = [
                p
                async for p in all_pages(
                    stub.ListStoragePools, inv_api.ListStoragePoolsRequest, "pools"
                )
            ]
        except grpc.aio.AioRpcError as error:
            raise Unavailable(f"inventory: {error.code().name} {error.details()}") from error
        # (centre, resource) -> [used, total]
        totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
        for host in hosts:
            centre_id = clusters.get(host.cluster_id)
            if centre_id is None:
                continue
            for resource, used, total in (
                ("vcpu", host.used.vcpu, host.vcpu),
                ("memory", host.used.memory_gib, host.memory_gib),
            ):
                totals[(centre_id, resource)][0] += used
                totals[(centre_id, resource)][1] += total
        for pool in pools:
            totals[(pool.centre_id, "storage")][0] += pool.used.storage_gib
            totals[(pool.centre_id, "storage")][1] += pool.capacity_gib
        return [
            Sample(
                SeriesKey.of(Metric.CAPACITY_UTILISATION_PERCENT, centre_id, "", resource=resource),
                now,
                100.0 * used / total,
            )
            for (centre_id, resource), (used, total) in sorted(totals.items())
            if total > 0
        ]
