"""Bad facts are refused with one violation per broken rule, naming the field and the rule."""

from __future__ import annotations

import pytest

from medcloud.core.errors import InvalidArgument
from medcloud.inventory.domain.model import (
    FibrePair,
    FileProtocol,
    Flavor,
    Host,
    Link,
    LinkMedium,
    LinkPurpose,
    StorageClass,
    StoragePool,
)
from medcloud.inventory.domain.validation import (
    flavor_violations,
    host_violations,
    link_violations,
    pool_violations,
    require_valid,
)


def rules(violations) -> list[tuple[str, str]]:
    return [(v.field, v.description) for v in violations]


def test_a_96_vcpu_flavor_breaks_r_7_3c():
    assert rules(flavor_violations(Flavor("huge", vcpu=96, memory_gib=512))) == [
        ("flavor.vcpu", "must be at most 64 (R-7.3c), got 96"),
        ("flavor.memory_gib", "must be at most 256 (R-7.3c), got 512"),
    ]


def test_the_largest_allowed_flavor_is_fine():
    assert flavor_violations(Flavor("max", vcpu=64, memory_gib=256)) == []


def test_negative_capacity_and_bad_ids_are_named():
    host = Host(
        "Host_1", "c1", "r1", vcpu=-4, memory_gib=0, uplink_gbps=10, traits=frozenset({"gpu"})
    )
    assert [field for field, _ in rules(host_violations(host))] == [
        "host.id",
        "host.vcpu",
        "host.memory_gib",
        "host.traits",
    ]
    assert "must be greater than 0, got -4" in dict(rules(host_violations(host)))["host.vcpu"]


def test_a_nas_pool_needs_a_file_protocol_and_others_have_none():
    nas = StoragePool("nas-1", "hosp", StorageClass.FILE_NAS, 1000)
    san = StoragePool(
        "san-1", "hosp", StorageClass.BLOCK_FC_SAN, 1000, frozenset({FileProtocol.NFS})
    )
    assert rules(pool_violations(nas)) == [
        ("pool.protocols", "a file-nas pool must offer NFS, CIFS or both (R-7.4b)")
    ]
    assert rules(pool_violations(san)) == [
        ("pool.protocols", "only a file-nas pool offers file protocols")
    ]


def test_a_link_to_itself_without_pairs_is_refused():
    link = Link("l1", "core-a", "core-a", LinkPurpose.LOCAL, LinkMedium.DARK_FIBRE, ())
    assert rules(link_violations(link)) == [
        ("link.b_node_id", "must differ from link.a_node_id"),
        ("link.pairs", "must hold at least one pair"),
    ]
    bad_pair = Link("l2", "a", "b", LinkPurpose.IP, LinkMedium.DARK_FIBRE, (FibrePair("", 10, -1),))
    assert [field for field, _ in rules(link_violations(bad_pair))] == [
        "link.pairs[0].conduit",
        "link.pairs[0].down_gbps",
    ]


def test_require_valid_raises_with_every_violation():
    with pytest.raises(InvalidArgument) as raised:
        require_valid(flavor_violations(Flavor("huge", vcpu=96, memory_gib=16)))
    assert [v.field for v in raised.value.violations] == ["flavor.vcpu"]
