"""Business systems to be placed and the region as scheduling sees it: hosts and storage pools with what
they have free, and where they stand."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

from medcloud.core.errors import FieldViolation
from medcloud.core.identifiers import DNS_LABEL, DNS_LABEL_RULE


class SystemKind(enum.Enum):
    """The business systems the standard names (clause 3), plus CUSTOM for anything else."""

    HIS = "his"
    EMR = "emr"
    LIS = "lis"
    RIS = "ris"
    PACS_DATABASE = "pacs-database"
    PACS_IMAGES = "pacs-images"
    CDR = "cdr"
    CLINICAL_PATHWAY = "clinical-pathway"
    PORTAL = "portal"
    EMAIL = "email"
    OA = "oa"
    CUSTOM = "custom"


class Role(enum.Enum):
    """What an instance does for its system (R-7.9.4: single instance becomes primary/replica)."""

    PRIMARY = "primary"
    STANDBY = "standby"
    REPLICA = "replica"


class DataClassification(enum.Enum):
    """How sensitive the system's data is (GB/T 39725-2020, clause 3)."""

    PUBLIC = "public"
    INTERNAL = "internal"
    DE_IDENTIFIED = "de-identified"
    LIMITED_DATA_SET = "limited-data-set"
    PERSONAL_HEALTH_DATA = "personal-health-data"


class StorageClass(enum.Enum):
    """Storage offered by the region (R-7.4-0, R-7.4a-d)."""

    BLOCK_FC_SAN = "block-fc-san"
    FILE_NAS = "file-nas"
    OBJECT = "object"
    DISTRIBUTED = "distributed"
    COLD_DISK = "cold-disk"
    COLD_OPTICAL = "cold-optical"


class Ownership(enum.Enum):
    PRIVATE = "private"
    PUBLIC = "public"


class CentreRole(enum.Enum):
    """What a machine room is for in the "three centres, four nodes, one backup" shape (R-A.2)."""

    HOSPITAL_ROOM = "hospital-room"
    CARRIER_PRODUCTION = "carrier-production"
    CARRIER_STANDBY = "carrier-standby"
    BACKUP_CENTRE = "backup-centre"
    BRANCH_HOSPITAL = "branch-hospital"


# R-7.3c: the largest single instance.
MAX_INSTANCE_VCPU = 64
MAX_INSTANCE_MEMORY_GIB = 256

# SHARE78 tiers run from 0 (no off-site data) to 7 (fully automated, zero data loss).
MIN_DR_TIER = 0
MAX_DR_TIER = 7

# R-7.4a: database-backed, latency-critical systems.
DATABASE_BACKED_KINDS = frozenset(
    {
        SystemKind.HIS,
        SystemKind.EMR,
        SystemKind.LIS,
        SystemKind.RIS,
        SystemKind.PACS_DATABASE,
        SystemKind.CDR,
        SystemKind.CLINICAL_PATHWAY,
    }
)
# R-7.4c: low-pressure systems, where cost comes first.
LOW_PRESSURE_KINDS = frozenset({SystemKind.PORTAL, SystemKind.EMAIL, SystemKind.OA})

_DEFAULT_STORAGE_CLASS = {
    **dict.fromkeys(DATABASE_BACKED_KINDS, StorageClass.BLOCK_FC_SAN),
    SystemKind.PACS_IMAGES: StorageClass.FILE_NAS,
    **dict.fromkeys(LOW_PRESSURE_KINDS, StorageClass.DISTRIBUTED),
}


@dataclass(frozen=True)
class RoleCount:
    role: Role
    count: int


@dataclass(frozen=True)
class Preferences:
    """Where the hospital would like the system to run; placement honours it when it can."""

    centre_ids: frozenset[str] = field(default_factory=frozenset)
    cities: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Instance:
    """One virtual machine of a business system; `index` counts from 0 within its role."""

    system_id: str
    role: Role
    index: int

    def __str__(self) -> str:
        return f"{self.role.value} #{self.index} of {self.system_id}"


_ROLE_ORDER = (Role.PRIMARY, Role.STANDBY, Role.REPLICA)


@dataclass(frozen=True)
class BusinessSystem:
    """A hospital business system to place; vCPU, memory and storage are per instance."""

    id: str
    kind: SystemKind
    roles: tuple[RoleCount, ...]
    vcpu: int
    memory_gib: int
    classification: DataClassification
    dr_tier: int
    storage_gib: int = 0
    # None means the class the standard prescribes for the kind (R-7.4a-c).
    storage_class: StorageClass | None = None
    preferences: Preferences = field(default_factory=Preferences)

    @property
    def effective_storage_class(self) -> StorageClass | None:
        """The class asked for, else the kind's default; None only for a CUSTOM system without one."""
        return self.storage_class or _DEFAULT_STORAGE_CLASS.get(self.kind)

    def instances(self) -> tuple[Instance, ...]:
        """Every instance, primaries first, then standbys, then replicas: later rules (R-7.9.9,
        R-7.6b, R-7.6c) place standbys relative to where the primaries went."""
        counts = {role: 0 for role in _ROLE_ORDER}
        for role_count in self.roles:
            counts[role_count.role] += role_count.count
        return tuple(
            Instance(self.id, role, index)
            for role in _ROLE_ORDER
            for index in range(max(counts[role], 0))
        )


def _roles_violations(roles: tuple[RoleCount, ...]) -> Iterator[FieldViolation]:
    seen: set[Role] = set()
    for index, role_count in enumerate(roles):
        if role_count.role in seen:
            yield FieldViolation(
                f"system.roles[{index}].role", f"{role_count.role.value} appears twice"
            )
        seen.add(role_count.role)
        if role_count.count < 1:
            yield FieldViolation(
                f"system.roles[{index}].count", f"must be at least 1, got {role_count.count}"
            )
    if Role.PRIMARY not in seen:
        yield FieldViolation("system.roles", "must include at least one primary")


def _size_violations(
    field_name: str, value: int, limit: int, unit: str
) -> Iterator[FieldViolation]:
    if value <= 0:
        yield FieldViolation(field_name, f"must be greater than 0, got {value}")
    elif value > limit:
        yield FieldViolation(
            field_name,
            f"must be at most {limit}{unit} (R-7.3c), got {value}{unit}: split the system into "
            "more instances (scale out) instead",
        )


def _storage_violations(system: BusinessSystem) -> Iterator[FieldViolation]:
    if system.storage_gib < 0:
        yield FieldViolation(
            "system.storage_gib", f"must not be negative, got {system.storage_gib}"
        )
    given = system.storage_class
    if given is None:
        if system.kind is SystemKind.CUSTOM and system.storage_gib > 0:
            yield FieldViolation(
                "system.storage_class", "is required for a custom system that needs storage"
            )
        return
    if system.kind in DATABASE_BACKED_KINDS and given is not StorageClass.BLOCK_FC_SAN:
        yield FieldViolation(
            "system.storage_class",
            f"must be {StorageClass.BLOCK_FC_SAN.value} for a database-backed "
            f"{system.kind.value} system (R-7.4a), got {given.value}",
        )
    if system.kind is SystemKind.PACS_IMAGES and given is not StorageClass.FILE_NAS:
        yield FieldViolation(
            "system.storage_class",
            f"must be {StorageClass.FILE_NAS.value} for PACS image archives (R-7.4b), "
            f"got {given.value}",
        )


def system_violations(system: BusinessSystem) -> list[FieldViolation]:
    """Every rule the system breaks, one violation each; an empty list means it can be placed."""
    violations: list[FieldViolation] = []
    if not DNS_LABEL.match(system.id):
        violations.append(FieldViolation("system.id", DNS_LABEL_RULE))
    violations += _roles_violations(system.roles)
    violations += _size_violations("system.vcpu", system.vcpu, MAX_INSTANCE_VCPU, "")
    violations += _size_violations(
        "system.memory_gib", system.memory_gib, MAX_INSTANCE_MEMORY_GIB, " GiB"
    )
    if not MIN_DR_TIER <= system.dr_tier <= MAX_DR_TIER:
        violations.append(
            FieldViolation(
                "system.dr_tier",
                f"must be a SHARE78 tier from {MIN_DR_TIER} to {MAX_DR_TIER}, got {system.dr_tier}",
            )
        )
    violations += _storage_violations(system)
    for centre_id in sorted(system.preferences.centre_ids):
        if not DNS_LABEL.match(centre_id):
            violations.append(
                FieldViolation("system.preferences.centre_ids", f"{centre_id!r} {DNS_LABEL_RULE}")
            )
    return violations


@dataclass(frozen=True)
class HostOption:
    """A host that could take instances, with what it has free and where it stands."""

    host_id: str
    rack: str
    cluster_id: str
    centre_id: str
    city: str
    province: str
    centre_role: CentreRole
    ownership: Ownership
    free_vcpu: int
    free_memory_gib: int
    traits: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class PoolOption:
    """A storage pool in a centre, with the room it has free."""

    pool_id: str
    centre_id: str
    storage_class: StorageClass
    free_gib: int


@dataclass(frozen=True)
class RegionView:
    """The region at one moment, as the app layer reads it from inventory."""

    hosts: tuple[HostOption, ...] = ()
    pools: tuple[PoolOption, ...] = ()
