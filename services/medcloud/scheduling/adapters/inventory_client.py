"""Inventory as scheduling sees it, over inventory's gRPC API."""

from __future__ import annotations

import grpc

from medcloud.core.errors import Unavailable
from medcloud.inventory.client import all_pages
from medcloud.inventory.v1 import inventory_pb2 as inv
from medcloud.inventory.v1 import inventory_service_pb2 as inv_api
from medcloud.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from medcloud.runtime.grpc_client import service_channel
from medcloud.runtime.tls import TlsMaterial
from medcloud.scheduling.app.ports import CapacityTaken, ProviderTake
from medcloud.scheduling.domain import model

_CENTRE_ROLES = {
    inv.CENTRE_ROLE_HOSPITAL_ROOM: model.CentreRole.HOSPITAL_ROOM,
    inv.CENTRE_ROLE_CARRIER_PRODUCTION: model.CentreRole.CARRIER_PRODUCTION,
    inv.CENTRE_ROLE_CARRIER_STANDBY: model.CentreRole.CARRIER_STANDBY,
    inv.CENTRE_ROLE_BACKUP_CENTRE: model.CentreRole.BACKUP_CENTRE,
    inv.CENTRE_ROLE_BRANCH_HOSPITAL: model.CentreRole.BRANCH_HOSPITAL,
}
_STORAGE_CLASSES = {
    inv.STORAGE_CLASS_BLOCK_FC_SAN: model.StorageClass.BLOCK_FC_SAN,
    inv.STORAGE_CLASS_FILE_NAS: model.StorageClass.FILE_NAS,
    inv.STORAGE_CLASS_OBJECT: model.StorageClass.OBJECT,
    inv.STORAGE_CLASS_DISTRIBUTED: model.StorageClass.DISTRIBUTED,
    inv.STORAGE_CLASS_COLD_DISK: model.StorageClass.COLD_DISK,
    inv.STORAGE_CLASS_COLD_OPTICAL: model.StorageClass.COLD_OPTICAL,
}


class InventoryClient:
    """Reads the region's free capacity and claims it, through `medcloud.inventory.v1`."""

    def __init__(self, address: str, tls: TlsMaterial | None) -> None:
        self._channel = service_channel(address, tls)
        self._stub = inv_grpc.InventoryServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def region_view(self) -> model.RegionView:
        try:
            centres = {
                c.id: c
                async for c in all_pages(
                    self._stub.ListCentres, inv_api.ListCentresRequest, "centres"
                )
            }
            clusters = {
                c.id: c
                async for c in all_pages(
                    self._stub.ListClusters, inv_api.ListClustersRequest, "clusters"
                )
            }
            hosts = [
                h async for h in all_pages(self._stub.ListHosts, inv_api.ListHostsRequest, "hosts")
            ]
            pools = [
                p
                async for p in all_pages(
                    self._stub.ListStoragePools, inv_api.ListStoragePoolsRequest, "pools"
                )
            ]
        except grpc.aio.AioRpcError as error:
            raise Unavailable(f"inventory: {error.code().name} {error.details()}") from error
        host_options = []
        for host in hosts:
            cluster = clusters.get(host.cluster_id)
            centre = centres.get(cluster.centre_id) if cluster else None
            if cluster is None or centre is None or host.state != inv.HOST_STATE_ACTIVE:
                continue
            host_options.append(
                model.HostOption(
                    host_id=host.id,
                    rack=host.rack,
                    cluster_id=cluster.id,
                    centre_id=centre.id,
                    city=centre.city,
                    province=centre.province,
                    centre_role=_CENTRE_ROLES[centre.role],
                    ownership=(
                        model.Ownership.PRIVATE
                        if cluster.ownership == inv.OWNERSHIP_PRIVATE
                        else model.Ownership.PUBLIC
                    ),
                    free_vcpu=host.vcpu - host.used.vcpu,
                    free_memory_gib=host.memory_gib - host.used.memory_gib,
                    traits=frozenset(host.traits),
                )
            )
        pool_options = [
            model.PoolOption(
                pool_id=pool.id,
                centre_id=pool.centre_id,
                storage_class=_STORAGE_CLASSES[pool.storage_class],
                free_gib=pool.capacity_gib - pool.used.storage_gib,
            )
            for pool in pools
        ]
        return model.RegionView(hosts=tuple(host_options), pools=tuple(pool_options))

    async def claim(self, consumer_id: str, takes: list[ProviderTake]) -> None:
        claim = inv.Claim(
            consumer_id=consumer_id,
            allocations=[
                inv.Allocation(
                    provider=(
                        inv.ProviderRef(host_id=t.host_id)
                        if t.host_id
                        else inv.ProviderRef(pool_id=t.pool_id)
                    ),
                    resources=inv.Resources(
                        vcpu=t.vcpu, memory_gib=t.memory_gib, storage_gib=t.storage_gib
                    ),
                )
                for t in takes
            ],
        )
        try:
            await self._stub.PutClaim(inv_api.PutClaimRequest(claim=claim))
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED):
                raise CapacityTaken(error.details()) from error
            raise Unavailable(f"inventory: {error.code().name} {error.details()}") from error

    async def release(self, consumer_id: str) -> None:
        try:
            await self._stub.ReleaseClaim(inv_api.ReleaseClaimRequest(consumer_id=consumer_id))
        except grpc.aio.AioRpcError as error:
            raise Unavailable(f"inventory: {error.code().name} {error.details()}") from error
