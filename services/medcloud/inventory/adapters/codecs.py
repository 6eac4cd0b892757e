"""Mapping between inventory's domain objects and its protobuf messages, on the wire and in etcd."""

from __future__ import annotations

import enum
from typing import TypeVar

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from medcloud.core.errors import FieldViolation, InvalidArgument
from medcloud.inventory.app.records import HostRecord, PoolRecord
from medcloud.inventory.domain import model
from medcloud.inventory.domain.claims import Allocation, Claim, ProviderKind, ProviderRef
from medcloud.inventory.v1 import inventory_pb2 as pb

E = TypeVar("E", bound=enum.Enum)


def _enum_prefix(wrapper: EnumTypeWrapper) -> str:
    unspecified = wrapper.Name(0)
    return unspecified[: -len("UNSPECIFIED")]


def enum_to_proto(value: enum.Enum, wrapper: EnumTypeWrapper) -> int:
    return wrapper.Value(_enum_prefix(wrapper) + value.name)


def enum_from_proto(number: int, wrapper: EnumTypeWrapper, domain: type[E], field: str) -> E:
    """The domain value of a proto enum; UNSPECIFIED or unknown numbers are refused by name."""
    prefix = _enum_prefix(wrapper)
    try:
        name = wrapper.Name(number)
    except ValueError:
        name = ""
    if not name or name == wrapper.Name(0):
        allowed = ", ".join(prefix + member.name for member in domain)
        raise InvalidArgument.single(field, f"must be one of {allowed}, got {number}")
    return domain[name[len(prefix) :]]


def resources_to_proto(resources: model.Resources) -> pb.Resources:
    return pb.Resources(
        vcpu=resources.vcpu, memory_gib=resources.memory_gib, storage_gib=resources.storage_gib
    )


def resources_from_proto(message: pb.Resources) -> model.Resources:
    return model.Resources(message.vcpu, message.memory_gib, message.storage_gib)


def centre_to_proto(centre: model.Centre, generation: int) -> pb.Centre:
    return pb.Centre(
        id=centre.id,
        display_name=centre.display_name,
        role=enum_to_proto(centre.role, pb.CentreRole),
        city=centre.city,
        province=centre.province,
        generation=generation,
    )


def centre_from_proto(message: pb.Centre) -> model.Centre:
    return model.Centre(
        id=message.id,
        display_name=message.display_name,
        role=enum_from_proto(message.role, pb.CentreRole, model.CentreRole, "centre.role"),
        city=message.city,
        province=message.province,
    )


def cluster_to_proto(cluster: model.Cluster, generation: int) -> pb.Cluster:
    return pb.Cluster(
        id=cluster.id,
        centre_id=cluster.centre_id,
        platform=enum_to_proto(cluster.platform, pb.Platform),
        ownership=enum_to_proto(cluster.ownership, pb.Ownership),
        generation=generation,
    )


def cluster_from_proto(message: pb.Cluster) -> model.Cluster:
    return model.Cluster(
        id=message.id,
        centre_id=message.centre_id,
        platform=enum_from_proto(message.platform, pb.Platform, model.Platform, "cluster.platform"),
        ownership=enum_from_proto(
            message.ownership, pb.Ownership, model.Ownership, "cluster.ownership"
        ),
    )


def host_to_proto(record: HostRecord) -> pb.Host:
    host = record.host
    return pb.Host(
        id=host.id,
        cluster_id=host.cluster_id,
        rack=host.rack,
        vcpu=host.vcpu,
        memory_gib=host.memory_gib,
        uplink_gbps=host.uplink_gbps,
        state=enum_to_proto(host.state, pb.HostState),
        traits=sorted(host.traits),
        used=resources_to_proto(record.used),
        generation=record.generation,
    )


def host_from_proto(message: pb.Host) -> model.Host:
    return model.Host(
        id=message.id,
        cluster_id=message.cluster_id,
        rack=message.rack,
        vcpu=message.vcpu,
        memory_gib=message.memory_gib,
        uplink_gbps=message.uplink_gbps,
        state=enum_from_proto(message.state, pb.HostState, model.HostState, "host.state"),
        traits=frozenset(message.traits),
    )


def pool_to_proto(record: PoolRecord) -> pb.StoragePool:
    pool = record.pool
    return pb.StoragePool(
        id=pool.id,
        centre_id=pool.centre_id,
        storage_class=enum_to_proto(pool.storage_class, pb.StorageClass),
        capacity_gib=pool.capacity_gib,
        protocols=sorted(enum_to_proto(p, pb.FileProtocol) for p in pool.protocols),
        traits=sorted(pool.traits),
        used=resources_to_proto(record.used),
        generation=record.generation,
    )


def pool_from_proto(message: pb.StoragePool) -> model.StoragePool:
    return model.StoragePool(
        id=message.id,
        centre_id=message.centre_id,
        storage_class=enum_from_proto(
            message.storage_class, pb.StorageClass, model.StorageClass, "pool.storage_class"
        ),
        capacity_gib=message.capacity_gib,
        protocols=frozenset(
            enum_from_proto(p, pb.FileProtocol, model.FileProtocol, f"pool.protocols[{i}]")
            for i, p in enumerate(message.protocols)
        ),
        traits=frozenset(message.traits),
    )


def claim_to_proto(claim: Claim) -> pb.Claim:
    return pb.Claim(
        consumer_id=claim.consumer_id,
        allocations=[
            pb.Allocation(
                provider=(
                    pb.ProviderRef(host_id=a.provider.id)
                    if a.provider.kind is ProviderKind.HOST
                    else pb.ProviderRef(pool_id=a.provider.id)
                ),
                resources=resources_to_proto(a.resources),
            )
            for a in claim.allocations
        ],
    )


def claim_from_proto(message: pb.Claim) -> Claim:
    allocations = []
    for index, allocation in enumerate(message.allocations):
        which = allocation.provider.WhichOneof("provider")
        if which is None:
            raise InvalidArgument(
                [
                    FieldViolation(
                        f"claim.allocations[{index}].provider", "must name a host or a pool"
                    )
                ]
            )
        kind = ProviderKind.HOST if which == "host_id" else ProviderKind.POOL
        provider = ProviderRef(kind, getattr(allocation.provider, which))
        allocations.append(Allocation(provider, resources_from_proto(allocation.resources)))
    return Claim(message.consumer_id, tuple(allocations))


class HostRecordCodec:
    def encode(self, record: HostRecord) -> bytes:
        return host_to_proto(record).SerializeToString(deterministic=True)

    def decode(self, data: bytes) -> HostRecord:
        message = pb.Host.FromString(data)
        return HostRecord(
            host_from_proto(message), resources_from_proto(message.used), message.generation
        )


class PoolRecordCodec:
    def encode(self, record: PoolRecord) -> bytes:
        return pool_to_proto(record).SerializeToString(deterministic=True)

    def decode(self, data: bytes) -> PoolRecord:
        message = pb.StoragePool.FromString(data)
        return PoolRecord(
            pool_from_proto(message), resources_from_proto(message.used), message.generation
        )


class ClaimCodec:
    def encode(self, claim: Claim) -> bytes:
        return claim_to_proto(claim).SerializeToString(deterministic=True)

    def decode(self, data: bytes) -> Claim:
        return claim_from_proto(pb.Claim.FromString(data))
