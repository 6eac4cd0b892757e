"""A small hand-built region for the scheduling tests: three rooms in Guangzhou and a backup centre in
Chengdu, out of province, with a private and a public cluster."""

from __future__ import annotations

import dataclasses

from medcloud.scheduling.domain.model import (
    BusinessSystem,
    CentreRole,
    DataClassification,
    HostOption,
    Ownership,
    PoolOption,
    RegionView,
    Role,
    RoleCount,
    StorageClass,
    SystemKind,
)

# centre id -> (city, province, role)
CENTRES = {
    "hosp": ("Guangzhou", "Guangdong", CentreRole.HOSPITAL_ROOM),
    "prod": ("Guangzhou", "Guangdong", CentreRole.CARRIER_PRODUCTION),
    "stby": ("Guangzhou", "Guangdong", CentreRole.CARRIER_STANDBY),
    "bak": ("Chengdu", "Sichuan", CentreRole.BACKUP_CENTRE),
}


def host(
    host_id: str,
    centre_id: str,
    rack: str = "r1",
    ownership: Ownership = Ownership.PRIVATE,
    free_vcpu: int = 32,
    free_memory_gib: int = 128,
) -> HostOption:
    city, province, role = CENTRES[centre_id]
    return HostOption(
        host_id=host_id,
        rack=rack,
        cluster_id=f"{centre_id}-{ownership.value}",
        centre_id=centre_id,
        city=city,
        province=province,
        centre_role=role,
        ownership=ownership,
        free_vcpu=free_vcpu,
        free_memory_gib=free_memory_gib,
    )


HOSPITAL_HOSTS = (
    host("hosp-h1", "hosp", rack="r1"),
    host("hosp-h2", "hosp", rack="r1"),
    host("hosp-h3", "hosp", rack="r2"),
)
PRODUCTION_HOSTS = (
    host("prod-h1", "prod", rack="r1", ownership=Ownership.PUBLIC),
    host("prod-h2", "prod", rack="r2", ownership=Ownership.PUBLIC),
)
STANDBY_HOSTS = (host("stby-h1", "stby", ownership=Ownership.PUBLIC),)
BACKUP_PRIVATE_HOST = host("bak-h1", "bak")
BACKUP_PUBLIC_HOST = host("bak-pub-h1", "bak", rack="r9", ownership=Ownership.PUBLIC)

POOLS = (
    PoolOption("hosp-san", "hosp", StorageClass.BLOCK_FC_SAN, 2000),
    PoolOption("hosp-nas", "hosp", StorageClass.FILE_NAS, 20000),
    PoolOption("prod-san", "prod", StorageClass.BLOCK_FC_SAN, 2000),
    PoolOption("prod-dist", "prod", StorageClass.DISTRIBUTED, 5000),
    PoolOption("stby-san", "stby", StorageClass.BLOCK_FC_SAN, 1000),
    PoolOption("bak-san-1", "bak", StorageClass.BLOCK_FC_SAN, 3000),
    PoolOption("bak-san-2", "bak", StorageClass.BLOCK_FC_SAN, 4000),
    PoolOption("bak-dist", "bak", StorageClass.DISTRIBUTED, 5000),
)

REGION = RegionView(
    hosts=(
        *HOSPITAL_HOSTS,
        *PRODUCTION_HOSTS,
        *STANDBY_HOSTS,
        BACKUP_PRIVATE_HOST,
        BACKUP_PUBLIC_HOST,
    ),
    pools=POOLS,
)


def his(**changes) -> BusinessSystem:
    """A tier-5 HIS with personal health data, one primary and one standby; `changes` override."""
    system = BusinessSystem(
        id="his-1",
        kind=SystemKind.HIS,
        roles=(RoleCount(Role.PRIMARY, 1), RoleCount(Role.STANDBY, 1)),
        vcpu=8,
        memory_gib=32,
        classification=DataClassification.PERSONAL_HEALTH_DATA,
        dr_tier=5,
        storage_gib=100,
    )
    return dataclasses.replace(system, **changes)


def roles(primaries: int, standbys: int = 0, replicas: int = 0) -> tuple[RoleCount, ...]:
    counts = ((Role.PRIMARY, primaries), (Role.STANDBY, standbys), (Role.REPLICA, replicas))
    return tuple(RoleCount(role, count) for role, count in counts if count)
