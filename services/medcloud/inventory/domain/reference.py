"""The standard's reference build (annex A, "three centres, four nodes, one backup") as a region, for
examples and tests."""

from __future__ import annotations

from medcloud.inventory.domain.model import (
    Centre,
    CentreRole,
    Cluster,
    FibrePair,
    FileProtocol,
    Flavor,
    Host,
    Link,
    LinkMedium,
    LinkPurpose,
    NetworkNode,
    NodeRole,
    Ownership,
    Platform,
    Region,
    StorageClass,
    StoragePool,
)

# A branch hospital's site: not one of the three centres, joined by branch lines (R-A.2.5).
BRANCH_SITE_ID = "shiqiao-branch"

_GIB_PER_TIB = 1024


def _pairs(link_id: str, count: int, gbps: float) -> tuple[FibrePair, ...]:
    # Every pair in its own conduit (R-A.2.6), named after its link so none is shared by accident.
    return tuple(
        FibrePair(conduit=f"{link_id}-conduit-{number}", up_gbps=gbps, down_gbps=gbps)
        for number in range(1, count + 1)
    )


def _link(
    link_id: str,
    a_node_id: str,
    b_node_id: str,
    purpose: LinkPurpose,
    medium: LinkMedium,
    pair_count: int,
    pair_gbps: float,
) -> Link:
    return Link(
        id=link_id,
        a_node_id=a_node_id,
        b_node_id=b_node_id,
        purpose=purpose,
        medium=medium,
        pairs=_pairs(link_id, pair_count, pair_gbps),
    )


def _hosts_in_two_racks(
    cluster_id: str, rack_prefix: str, vcpu: int, memory_gib: int
) -> tuple[Host, ...]:
    # Two racks so the cluster outlives any one server or rack (R-7.3a); 10G uplinks (R-A.2.9).
    return tuple(
        Host(
            id=f"{cluster_id}-{number:02d}",
            cluster_id=cluster_id,
            rack=f"{rack_prefix}-r{number:02d}",
            vcpu=vcpu,
            memory_gib=memory_gib,
            uplink_gbps=10,
        )
        for number in (1, 2)
    )


def annex_a_region() -> Region:
    """Panyu's region as annex A builds it: the hospital room and the carrier's production and standby
    rooms in Guangzhou, a backup centre in Guiyang, one branch hospital, and the links, clusters,
    hosts, pools and flavors R-A.2-R-A.2.10 describe."""
    return Region(
        centres=(
            Centre(
                "panyu-hospital",
                "Panyu Central Hospital machine room",
                CentreRole.HOSPITAL_ROOM,
                "Guangzhou",
                "Guangdong",
            ),
            Centre(
                "panyu-carrier-production",
                "Carrier medical cloud production room",
                CentreRole.CARRIER_PRODUCTION,
                "Guangzhou",
                "Guangdong",
            ),
            Centre(
                "panyu-carrier-standby",
                "Carrier medical cloud standby room",
                CentreRole.CARRIER_STANDBY,
                "Guangzhou",
                "Guangdong",
            ),
            Centre(
                "guiyang-backup",
                "Carrier out-of-province medical cloud backup base",
                CentreRole.BACKUP_CENTRE,
                "Guiyang",
                "Guizhou",
            ),
            Centre(
                BRANCH_SITE_ID,
                "Shiqiao branch hospital",
                CentreRole.BRANCH_HOSPITAL,
                "Guangzhou",
                "Guangdong",
            ),
        ),
        nodes=(
            NetworkNode("hospital-core-a", "panyu-hospital", NodeRole.CORE_A),
            NetworkNode("hospital-core-b", "panyu-hospital", NodeRole.CORE_B),
            NetworkNode("production-core", "panyu-carrier-production", NodeRole.CORE),
            NetworkNode("standby-core", "panyu-carrier-standby", NodeRole.CORE),
            NetworkNode("backup-core", "guiyang-backup", NodeRole.CORE),
            NetworkNode("shiqiao-access", BRANCH_SITE_ID, NodeRole.BRANCH_ACCESS),
        ),
        links=(
            # R-A.2.1-R-A.2.4: 10G dark fibre, 2 pairs to the carrier rooms, 4 pairs locally.
            _link(
                "core-a-production-ip",
                "hospital-core-a",
                "production-core",
                LinkPurpose.IP,
                LinkMedium.DARK_FIBRE,
                pair_count=2,
                pair_gbps=10,
            ),
            _link(
                "hospital-production-fc-san",
                "hospital-core-a",
                "production-core",
                LinkPurpose.FC_SAN,
                LinkMedium.DARK_FIBRE,
                pair_count=2,
                pair_gbps=10,
            ),
            _link(
                "core-b-standby-ip",
                "hospital-core-b",
                "standby-core",
                LinkPurpose.IP,
                LinkMedium.DARK_FIBRE,
                pair_count=2,
                pair_gbps=10,
            ),
            _link(
                "core-a-core-b-local",
                "hospital-core-a",
                "hospital-core-b",
                LinkPurpose.LOCAL,
                LinkMedium.DARK_FIBRE,
                pair_count=4,
                pair_gbps=10,
            ),
            _link(
                "production-standby-local",
                "production-core",
                "standby-core",
                LinkPurpose.LOCAL,
                LinkMedium.DARK_FIBRE,
                pair_count=4,
                pair_gbps=10,
            ),
            # R-A.2.5: six 1000M lines, three to the hospital room and three to carrier production.
            _link(
                "shiqiao-hospital-line",
                "shiqiao-access",
                "hospital-core-a",
                LinkPurpose.BRANCH_LINE,
                LinkMedium.LEASED_LINE,
                pair_count=3,
                pair_gbps=1,
            ),
            _link(
                "shiqiao-production-line",
                "shiqiao-access",
                "production-core",
                LinkPurpose.BRANCH_LINE,
                LinkMedium.LEASED_LINE,
                pair_count=3,
                pair_gbps=1,
            ),
            # Annex A names no size for the synchronous copy to the backup base; this is ours.
            _link(
                "production-backup-ip",
                "production-core",
                "backup-core",
                LinkPurpose.IP,
                LinkMedium.LEASED_LINE,
                pair_count=2,
                pair_gbps=10,
            ),
        ),
        clusters=(
            Cluster("hospital-vmware", "panyu-hospital", Platform.VMWARE, Ownership.PRIVATE),
            Cluster("hospital-private", "panyu-hospital", Platform.KUBERNETES, Ownership.PRIVATE),
            Cluster(
                "carrier-openstack",
                "panyu-carrier-production",
                Platform.OPENSTACK,
                Ownership.PUBLIC,
            ),
            Cluster(
                "carrier-public", "panyu-carrier-production", Platform.KUBERNETES, Ownership.PUBLIC
            ),
            Cluster("standby-kvm", "panyu-carrier-standby", Platform.KVM, Ownership.PUBLIC),
        ),
        hosts=(
            *_hosts_in_two_racks("hospital-vmware", "hospital", vcpu=96, memory_gib=768),
            *_hosts_in_two_racks("hospital-private", "hospital", vcpu=64, memory_gib=256),
            *_hosts_in_two_racks("carrier-openstack", "production", vcpu=128, memory_gib=1024),
            *_hosts_in_two_racks("carrier-public", "production", vcpu=64, memory_gib=256),
            *_hosts_in_two_racks("standby-kvm", "standby", vcpu=96, memory_gib=768),
        ),
        # R-A.2.9 FC-SAN plus distributed storage, R-7.4b NAS for PACS images, R-7.4-0 object
        # storage, and R-7.4d cold data on disk and optical media at the backup base.
        pools=(
            StoragePool(
                "hospital-fc-san", "panyu-hospital", StorageClass.BLOCK_FC_SAN, 200 * _GIB_PER_TIB
            ),
            StoragePool(
                "production-fc-san",
                "panyu-carrier-production",
                StorageClass.BLOCK_FC_SAN,
                200 * _GIB_PER_TIB,
            ),
            StoragePool(
                "production-distributed",
                "panyu-carrier-production",
                StorageClass.DISTRIBUTED,
                500 * _GIB_PER_TIB,
            ),
            StoragePool(
                "hospital-pacs-nas",
                "panyu-hospital",
                StorageClass.FILE_NAS,
                1000 * _GIB_PER_TIB,
                protocols=frozenset({FileProtocol.NFS, FileProtocol.CIFS}),
            ),
            StoragePool(
                "production-object",
                "panyu-carrier-production",
                StorageClass.OBJECT,
                500 * _GIB_PER_TIB,
            ),
            StoragePool(
                "backup-cold-disk", "guiyang-backup", StorageClass.COLD_DISK, 2000 * _GIB_PER_TIB
            ),
            StoragePool(
                "backup-cold-optical",
                "guiyang-backup",
                StorageClass.COLD_OPTICAL,
                5000 * _GIB_PER_TIB,
            ),
        ),
        # Named c<vCPU>m<GiB>; the largest is the largest instance R-7.3c allows.
        flavors=(
            Flavor("c2m4", vcpu=2, memory_gib=4),
            Flavor("c4m8", vcpu=4, memory_gib=8),
            Flavor("c8m32", vcpu=8, memory_gib=32),
            Flavor("c16m64", vcpu=16, memory_gib=64),
            Flavor("c32m128", vcpu=32, memory_gib=128),
            Flavor("c64m256", vcpu=64, memory_gib=256),
        ),
    )
