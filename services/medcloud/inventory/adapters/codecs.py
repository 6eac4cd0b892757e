"""Mapping between inventory's domain objects and its protobuf messages, on the wire and in etcd."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from medcloud.core.errors import FieldViolation, InvalidArgument
from medcloud.inventory.app.records import Record
from medcloud.inventory.domain import model
from medcloud.inventory.domain.claims import Allocation, Claim, ProviderKind, ProviderRef
from medcloud.inventory.v1 import inventory_events_pb2 as events_pb
from medcloud.inventory.v1 import inventory_pb2 as pb
from medcloud.runtime.proto_enums import enum_from_proto, enum_to_proto

T = TypeVar("T")


def resources_to_proto(resources: model.Resources) -> pb.Resources:
    return pb.Resources(
        vcpu=resources.vcpu, memory_gib=resources.memory_gib, storage_gib=resources.storage_gib
    )


def resources_from_proto(message: pb.Resources) -> model.Resources:
    return model.Resources(message.vcpu, message.memory_gib, message.storage_gib)


def centre_to_proto(record: Record[model.Centre]) -> pb.Centre:
    centre = record.fact
    return pb.Centre(
        id=centre.id,
        display_name=centre.display_name,
        role=enum_to_proto(centre.role, pb.CentreRole),
        city=centre.city,
        province=centre.province,
        generation=record.generation,
    )


def centre_from_proto(message: pb.Centre) -> model.Centre:
    return model.Centre(
        id=message.id,
        display_name=message.display_name,
        role=enum_from_proto(message.role, pb.CentreRole, model.CentreRole, "centre.role"),
        city=message.city,
        province=message.province,
    )


def node_to_proto(record: Record[model.NetworkNode]) -> pb.NetworkNode:
    node = record.fact
    return pb.NetworkNode(
        id=node.id,
        centre_id=node.centre_id,
        role=enum_to_proto(node.role, pb.NodeRole),
        generation=record.generation,
    )


def node_from_proto(message: pb.NetworkNode) -> model.NetworkNode:
    return model.NetworkNode(
        id=message.id,
        centre_id=message.centre_id,
        role=enum_from_proto(message.role, pb.NodeRole, model.NodeRole, "node.role"),
    )


def link_to_proto(record: Record[model.Link]) -> pb.Link:
    link = record.fact
    return pb.Link(
        id=link.id,
        a_node_id=link.a_node_id,
        b_node_id=link.b_node_id,
        purpose=enum_to_proto(link.purpose, pb.LinkPurpose),
        medium=enum_to_proto(link.medium, pb.LinkMedium),
        pairs=[
            pb.FibrePair(conduit=p.conduit, up_gbps=p.up_gbps, down_gbps=p.down_gbps)
            for p in link.pairs
        ],
        state=enum_to_proto(link.state, pb.LinkState),
        generation=record.generation,
    )


def link_from_proto(message: pb.Link) -> model.Link:
    return model.Link(
        id=message.id,
        a_node_id=message.a_node_id,
        b_node_id=message.b_node_id,
        purpose=enum_from_proto(message.purpose, pb.LinkPurpose, model.LinkPurpose, "link.purpose"),
        medium=enum_from_proto(message.medium, pb.LinkMedium, model.LinkMedium, "link.medium"),
        pairs=tuple(model.FibrePair(p.conduit, p.up_gbps, p.down_gbps) for p in message.pairs),
        state=(
            model.LinkState.UP
            if message.state == pb.LINK_STATE_UNSPECIFIED
            else enum_from_proto(message.state, pb.LinkState, model.LinkState, "link.state")
        ),
    )


def cluster_to_proto(record: Record[model.Cluster]) -> pb.Cluster:
    cluster = record.fact
    return pb.Cluster(
        id=cluster.id,
        centre_id=cluster.centre_id,
        platform=enum_to_proto(cluster.platform, pb.Platform),
        ownership=enum_to_proto(cluster.ownership, pb.Ownership),
        generation=record.generation,
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


def host_to_proto(record: Record[model.Host]) -> pb.Host:
    host = record.fact
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
        state=(
            model.HostState.ACTIVE
            if message.state == pb.HOST_STATE_UNSPECIFIED
            else enum_from_proto(message.state, pb.HostState, model.HostState, "host.state")
        ),
        traits=frozenset(message.traits),
    )


def pool_to_proto(record: Record[model.StoragePool]) -> pb.StoragePool:
    pool = record.fact
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


def flavor_to_proto(record: Record[model.Flavor]) -> pb.Flavor:
    flavor = record.fact
    return pb.Flavor(
        id=flavor.id, vcpu=flavor.vcpu, memory_gib=flavor.memory_gib, generation=record.generation
    )


def flavor_from_proto(message: pb.Flavor) -> model.Flavor:
    return model.Flavor(id=message.id, vcpu=message.vcpu, memory_gib=message.memory_gib)


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


@dataclass(frozen=True)
class KindMapping(Generic[T]):
    """How one kind travels: its message, the field that holds it in requests and events, its
    event message prefix, and the mapping both ways."""

    message: type[Message]
    field: str
    event_prefix: str
    to_proto: Callable[[Record[T]], Message]
    from_proto: Callable[[Any], T]


KINDS: dict[str, KindMapping[Any]] = {
    "centre": KindMapping(pb.Centre, "centre", "Centre", centre_to_proto, centre_from_proto),
    "node": KindMapping(pb.NetworkNode, "node", "NetworkNode", node_to_proto, node_from_proto),
    "link": KindMapping(pb.Link, "link", "Link", link_to_proto, link_from_proto),
    "cluster": KindMapping(pb.Cluster, "cluster", "Cluster", cluster_to_proto, cluster_from_proto),
    "host": KindMapping(pb.Host, "host", "Host", host_to_proto, host_from_proto),
    "pool": KindMapping(pb.StoragePool, "pool", "StoragePool", pool_to_proto, pool_from_proto),
    "flavor": KindMapping(pb.Flavor, "flavor", "Flavor", flavor_to_proto, flavor_from_proto),
}


class RecordCodec(Generic[T]):
    """Stores a record as its kind's protobuf message (generation and usage included)."""

    def __init__(self, mapping: KindMapping[T]) -> None:
        self._mapping = mapping

    def encode(self, record: Record[T]) -> bytes:
        return self._mapping.to_proto(record).SerializeToString(deterministic=True)

    def decode(self, data: bytes) -> Record[T]:
        message = self._mapping.message.FromString(data)
        used = getattr(message, "used", None)
        return Record(
            self._mapping.from_proto(message),
            message.generation,  # type: ignore[attr-defined]
            resources_from_proto(used) if used is not None else model.Resources(),
        )


class ClaimCodec:
    def encode(self, claim: Claim) -> bytes:
        return claim_to_proto(claim).SerializeToString(deterministic=True)

    def decode(self, data: bytes) -> Claim:
        return claim_from_proto(pb.Claim.FromString(data))


class ProtobufChangeEvents:
    """Inventory's events (inventory_events.proto) for each kind of change."""

    def _event(self, kind: str, verb: str, record: Record[Any], **extra: Any) -> Message:
        mapping = KINDS[kind]
        event_type = getattr(events_pb, f"{mapping.event_prefix}{verb}")
        return event_type(**{mapping.field: mapping.to_proto(record)}, **extra)

    def registered(self, kind: str, record: Record[Any]) -> Message:
        return self._event(kind, "Registered", record)

    def changed(self, kind: str, record: Record[Any], previous: Record[Any]) -> list[Message]:
        payloads = [self._event(kind, "Changed", record, previous_generation=previous.generation)]
        if kind == "host" and record.fact.state is not previous.fact.state:
            payloads.append(
                events_pb.HostStateChanged(
                    host=host_to_proto(record),
                    previous_state=enum_to_proto(previous.fact.state, pb.HostState),
                )
            )
        if kind == "link" and record.fact.state is not previous.fact.state:
            payloads.append(
                events_pb.LinkStateChanged(
                    link=link_to_proto(record),
                    previous_state=enum_to_proto(previous.fact.state, pb.LinkState),
                )
            )
        return payloads

    def removed(self, kind: str, record: Record[Any]) -> Message:
        return self._event(kind, "Removed", record)

    def claim_changed(self, claim: Claim) -> Message:
        return events_pb.ClaimChanged(claim=claim_to_proto(claim))

    def claim_released(self, consumer_id: str) -> Message:
        return events_pb.ClaimReleased(consumer_id=consumer_id)
