"""Field rules for the region's facts: each broken rule becomes one field violation that names the
field and the rule, so a bad request is refused whole and nothing is half-written."""

from __future__ import annotations

import re
from collections.abc import Iterator

from medcloud.core.errors import FieldViolation, InvalidArgument
from medcloud.core.identifiers import dns_label_violations
from medcloud.inventory.domain.model import (
    Centre,
    Cluster,
    Flavor,
    Host,
    Link,
    NetworkNode,
    StorageClass,
    StoragePool,
)

# R-7.3c: the largest single instance.
MAX_INSTANCE_VCPU = 64
MAX_INSTANCE_MEMORY_GIB = 256


def _text(field: str, value: str) -> Iterator[FieldViolation]:
    if not value.strip():
        yield FieldViolation(field, "must not be empty")


def _positive(field: str, value: float) -> Iterator[FieldViolation]:
    if value <= 0:
        yield FieldViolation(field, f"must be greater than 0, got {value:g}")


def _at_most(field: str, value: float, limit: float, requirement: str) -> Iterator[FieldViolation]:
    if value > limit:
        yield FieldViolation(field, f"must be at most {limit:g} ({requirement}), got {value:g}")


def _traits(field: str, traits: frozenset[str]) -> Iterator[FieldViolation]:
    for trait in sorted(traits):
        if not re.match(r"^[A-Z][A-Z0-9_]*$", trait):
            yield FieldViolation(field, f"trait {trait!r} must be UPPER_SNAKE_CASE like CUSTOM_GPU")


def centre_violations(centre: Centre) -> list[FieldViolation]:
    return [
        *dns_label_violations("centre.id", centre.id),
        *_text("centre.display_name", centre.display_name),
        *_text("centre.city", centre.city),
        *_text("centre.province", centre.province),
    ]


def node_violations(node: NetworkNode) -> list[FieldViolation]:
    return [
        *dns_label_violations("node.id", node.id),
        *dns_label_violations("node.centre_id", node.centre_id),
    ]


def link_violations(link: Link) -> list[FieldViolation]:
    violations = [
        *dns_label_violations("link.id", link.id),
        *dns_label_violations("link.a_node_id", link.a_node_id),
        *dns_label_violations("link.b_node_id", link.b_node_id),
    ]
    if link.a_node_id == link.b_node_id:
        violations.append(FieldViolation("link.b_node_id", "must differ from link.a_node_id"))
    if not link.pairs:
        violations.append(FieldViolation("link.pairs", "must hold at least one pair"))
    for index, pair in enumerate(link.pairs):
        violations += [
            *_text(f"link.pairs[{index}].conduit", pair.conduit),
            *_positive(f"link.pairs[{index}].up_gbps", pair.up_gbps),
            *_positive(f"link.pairs[{index}].down_gbps", pair.down_gbps),
        ]
    return violations


def cluster_violations(cluster: Cluster) -> list[FieldViolation]:
    return [
        *dns_label_violations("cluster.id", cluster.id),
        *dns_label_violations("cluster.centre_id", cluster.centre_id),
    ]


def host_violations(host: Host) -> list[FieldViolation]:
    return [
        *dns_label_violations("host.id", host.id),
        *dns_label_violations("host.cluster_id", host.cluster_id),
        *_text("host.rack", host.rack),
        *_positive("host.vcpu", host.vcpu),
        *_positive("host.memory_gib", host.memory_gib),
        *_positive("host.uplink_gbps", host.uplink_gbps),
        *_traits("host.traits", host.traits),
    ]


def pool_violations(pool: StoragePool) -> list[FieldViolation]:
    violations = [
        *dns_label_violations("pool.id", pool.id),
        *dns_label_violations("pool.centre_id", pool.centre_id),
        *_positive("pool.capacity_gib", pool.capacity_gib),
        *_traits("pool.traits", pool.traits),
    ]
    if pool.storage_class is StorageClass.FILE_NAS and not pool.protocols:
        violations.append(
            FieldViolation(
                "pool.protocols", "a file-nas pool must offer NFS, CIFS or both (R-7.4b)"
            )
        )
    if pool.storage_class is not StorageClass.FILE_NAS and pool.protocols:
        violations.append(
            FieldViolation("pool.protocols", "only a file-nas pool offers file protocols")
        )
    return violations


def flavor_violations(flavor: Flavor) -> list[FieldViolation]:
    return [
        *dns_label_violations("flavor.id", flavor.id),
        *_positive("flavor.vcpu", flavor.vcpu),
        *_positive("flavor.memory_gib", flavor.memory_gib),
        *_at_most("flavor.vcpu", flavor.vcpu, MAX_INSTANCE_VCPU, "R-7.3c"),
        *_at_most("flavor.memory_gib", flavor.memory_gib, MAX_INSTANCE_MEMORY_GIB, "R-7.3c"),
    ]


def require_valid(violations: list[FieldViolation]) -> None:
    """Raises InvalidArgument naming every broken rule, or returns when there is none."""
    if violations:
        raise InvalidArgument(violations)
