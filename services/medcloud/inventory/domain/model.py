"""The facts of a region (clause 7, annex A): machine rooms, network nodes, links and their
conduits, clusters, hosts, storage pools and flavors."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class CentreRole(enum.Enum):
    """What a machine room is for in the "three centres, four nodes, one backup" shape (R-A.2)."""

    HOSPITAL_ROOM = "hospital-room"
    CARRIER_PRODUCTION = "carrier-production"
    CARRIER_STANDBY = "carrier-standby"
    BACKUP_CENTRE = "backup-centre"
    # A branch hospital's site, joined by branch lines (R-A.2.5); not one of the three centres.
    BRANCH_HOSPITAL = "branch-hospital"


class NodeRole(enum.Enum):
    """A network node's place: a hospital room has core nodes A and B (R-A.2); carrier rooms and
    the backup centre have a core; branch hospitals attach through access nodes (R-A.2.5)."""

    CORE_A = "core-a"
    CORE_B = "core-b"
    CORE = "core"
    BRANCH_ACCESS = "branch-access"


class LinkPurpose(enum.Enum):
    IP = "ip"
    FC_SAN = "fc-san"
    BRANCH_LINE = "branch-line"
    LOCAL = "local"


class LinkMedium(enum.Enum):
    DARK_FIBRE = "dark-fibre"
    XPON = "xpon"
    LEASED_LINE = "leased-line"


class LinkState(enum.Enum):
    UP = "up"
    DOWN = "down"


class Platform(enum.Enum):
    OPENSTACK = "openstack"
    KVM = "kvm"
    VMWARE = "vmware"
    KUBERNETES = "kubernetes"


class Ownership(enum.Enum):
    PRIVATE = "private"
    PUBLIC = "public"


class HostState(enum.Enum):
    ACTIVE = "active"
    MAINTENANCE = "maintenance"
    DOWN = "down"


class StorageClass(enum.Enum):
    """Storage offered by the region (R-7.4-0, R-7.4a-d)."""

    BLOCK_FC_SAN = "block-fc-san"
    FILE_NAS = "file-nas"
    OBJECT = "object"
    DISTRIBUTED = "distributed"
    COLD_DISK = "cold-disk"
    COLD_OPTICAL = "cold-optical"


class FileProtocol(enum.Enum):
    NFS = "nfs"
    CIFS = "cifs"


@dataclass(frozen=True)
class Centre:
    """A machine room."""

    id: str
    display_name: str
    role: CentreRole
    city: str
    province: str


@dataclass(frozen=True)
class NetworkNode:
    id: str
    centre_id: str
    role: NodeRole


@dataclass(frozen=True)
class FibrePair:
    """One pair of a link (a fibre pair, a PON branch or a leased circuit) and the physical
    conduit it runs through; rates per direction, so xPON asymmetry is visible (R-7.8b)."""

    conduit: str
    up_gbps: float
    down_gbps: float


@dataclass(frozen=True)
class Link:
    id: str
    a_node_id: str
    b_node_id: str
    purpose: LinkPurpose
    medium: LinkMedium
    pairs: tuple[FibrePair, ...]
    state: LinkState = LinkState.UP

    @property
    def up_gbps(self) -> float:
        return sum(pair.up_gbps for pair in self.pairs)

    @property
    def down_gbps(self) -> float:
        return sum(pair.down_gbps for pair in self.pairs)


@dataclass(frozen=True)
class Cluster:
    id: str
    centre_id: str
    platform: Platform
    ownership: Ownership


@dataclass(frozen=True)
class Resources:
    """Amounts of the resources a claim takes; a host offers vCPU and memory, a pool storage."""

    vcpu: int = 0
    memory_gib: int = 0
    storage_gib: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.vcpu + other.vcpu,
            self.memory_gib + other.memory_gib,
            self.storage_gib + other.storage_gib,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.vcpu - other.vcpu,
            self.memory_gib - other.memory_gib,
            self.storage_gib - other.storage_gib,
        )

    def fits_within(self, capacity: Resources) -> bool:
        return (
            self.vcpu <= capacity.vcpu
            and self.memory_gib <= capacity.memory_gib
            and self.storage_gib <= capacity.storage_gib
        )


@dataclass(frozen=True)
class Host:
    """A compute resource provider."""

    id: str
    cluster_id: str
    rack: str
    vcpu: int
    memory_gib: int
    uplink_gbps: float
    state: HostState = HostState.ACTIVE
    traits: frozenset[str] = field(default_factory=frozenset)

    @property
    def capacity(self) -> Resources:
        return Resources(vcpu=self.vcpu, memory_gib=self.memory_gib)


@dataclass(frozen=True)
class StoragePool:
    """A storage resource provider in a centre."""

    id: str
    centre_id: str
    storage_class: StorageClass
    capacity_gib: int
    protocols: frozenset[FileProtocol] = field(default_factory=frozenset)
    traits: frozenset[str] = field(default_factory=frozenset)

    @property
    def capacity(self) -> Resources:
        return Resources(storage_gib=self.capacity_gib)


@dataclass(frozen=True)
class Flavor:
    """An instance size offered to business systems; R-7.3c bounds it."""

    id: str
    vcpu: int
    memory_gib: int


@dataclass(frozen=True)
class Region:
    """Everything inventory knows about one region, as the topology rules see it."""

    centres: tuple[Centre, ...] = ()
    nodes: tuple[NetworkNode, ...] = ()
    links: tuple[Link, ...] = ()
    clusters: tuple[Cluster, ...] = ()
    hosts: tuple[Host, ...] = ()
    pools: tuple[StoragePool, ...] = ()
    flavors: tuple[Flavor, ...] = ()
