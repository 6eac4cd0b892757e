"""A business system that breaks a field rule is refused with a violation naming the field and the rule."""

from __future__ import annotations

import pytest

from medcloud.core.errors import InvalidArgument
from medcloud.scheduling.domain.model import (
    Instance,
    Preferences,
    Role,
    RoleCount,
    StorageClass,
    SystemKind,
    system_violations,
)
from medcloud.scheduling.domain.placement import place_system
from tests.unit.scheduling.regions import REGION, his, roles


def fields(system) -> dict[str, str]:
    return {v.field: v.description for v in system_violations(system)}


def test_a_valid_system_has_no_violations():
    assert system_violations(his()) == []


def test_a_128_vcpu_system_breaks_r_7_3c_and_is_told_to_scale_out():
    violations = fields(his(vcpu=128, memory_gib=512))
    assert violations["system.vcpu"] == (
        "must be at most 64 (R-7.3c), got 128: split the system into more instances "
        "(scale out) instead"
    )
    assert "R-7.3c" in violations["system.memory_gib"]
    assert "scale out" in violations["system.memory_gib"]


def test_the_largest_instance_r_7_3c_allows_is_fine():
    assert system_violations(his(vcpu=64, memory_gib=256)) == []


def test_placing_an_invalid_system_raises_and_names_every_field():
    with pytest.raises(InvalidArgument) as raised:
        place_system(his(id="HIS_1", vcpu=0, dr_tier=9, storage_gib=-1), REGION)
    assert [v.field for v in raised.value.violations] == [
        "system.id",
        "system.vcpu",
        "system.dr_tier",
        "system.storage_gib",
    ]


def test_roles_need_a_primary_positive_counts_and_no_repeats():
    violations = fields(his(roles=(RoleCount(Role.STANDBY, 0), RoleCount(Role.STANDBY, 1))))
    assert violations == {
        "system.roles[0].count": "must be at least 1, got 0",
        "system.roles[1].role": "standby appears twice",
        "system.roles": "must include at least one primary",
    }


def test_a_database_backed_system_on_nas_breaks_r_7_4a():
    assert fields(his(kind=SystemKind.LIS, storage_class=StorageClass.FILE_NAS)) == {
        "system.storage_class": (
            "must be block-fc-san for a database-backed lis system (R-7.4a), got file-nas"
        )
    }


def test_pacs_images_on_block_storage_break_r_7_4b():
    violations = fields(his(kind=SystemKind.PACS_IMAGES, storage_class=StorageClass.BLOCK_FC_SAN))
    assert "R-7.4b" in violations["system.storage_class"]


def test_a_custom_system_with_storage_must_name_its_class():
    assert fields(his(kind=SystemKind.CUSTOM, storage_gib=10)) == {
        "system.storage_class": "is required for a custom system that needs storage"
    }
    assert system_violations(his(kind=SystemKind.CUSTOM, storage_gib=0)) == []


def test_preferred_centres_must_be_ids():
    violations = fields(his(preferences=Preferences(centre_ids=frozenset({"Hosp Room"}))))
    assert "DNS label" in violations["system.preferences.centre_ids"]


@pytest.mark.parametrize(
    ("kind", "storage_class"),
    [
        (SystemKind.EMR, StorageClass.BLOCK_FC_SAN),
        (SystemKind.CLINICAL_PATHWAY, StorageClass.BLOCK_FC_SAN),
        (SystemKind.PACS_IMAGES, StorageClass.FILE_NAS),
        (SystemKind.OA, StorageClass.DISTRIBUTED),
        (SystemKind.CUSTOM, None),
    ],
)
def test_the_kind_decides_the_storage_class_unless_one_is_given(kind, storage_class):
    assert his(kind=kind).effective_storage_class is storage_class


def test_a_low_pressure_system_may_pick_another_class():
    portal = his(kind=SystemKind.PORTAL, storage_class=StorageClass.OBJECT)
    assert system_violations(portal) == []
    assert portal.effective_storage_class is StorageClass.OBJECT


def test_instances_come_primaries_first_then_standbys_then_replicas():
    system = his(roles=(RoleCount(Role.REPLICA, 1), *roles(primaries=2, standbys=1)))
    assert [str(instance) for instance in system.instances()] == [
        "primary #0 of his-1",
        "primary #1 of his-1",
        "standby #0 of his-1",
        "replica #0 of his-1",
    ]
    assert system.instances()[2] == Instance("his-1", Role.STANDBY, 0)
