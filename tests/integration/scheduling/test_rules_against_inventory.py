"""Each placement rule against a real inventory: a system it refuses (and the explanation names
the rule and the hosts it removed), then admitted once the region offers what the rule asks for."""

from __future__ import annotations

from typing import Any

import pytest

from medcloud.common.v1 import data_classification_pb2 as classification
from medcloud.inventory.client import create
from medcloud.inventory.domain.model import (
    Centre,
    CentreRole,
    Cluster,
    FileProtocol,
    Host,
    Ownership,
    Platform,
    StorageClass,
    StoragePool,
)
from medcloud.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from medcloud.scheduling.v1 import scheduling_pb2 as pb
from medcloud.scheduling.v1 import scheduling_service_pb2 as api

pytestmark = pytest.mark.integration

CENTRES = {
    "hosp": Centre("hosp", "Hospital room", CentreRole.HOSPITAL_ROOM, "Guangzhou", "Guangdong"),
    "prod": Centre(
        "prod", "Carrier production", CentreRole.CARRIER_PRODUCTION, "Guangzhou", "Guangdong"
    ),
    "bak": Centre("bak", "Backup centre", CentreRole.BACKUP_CENTRE, "Guiyang", "Guizhou"),
}


class Region:
    """Registers facts in inventory on demand: a centre, a cluster in it, hosts and pools."""

    def __init__(self, inventory: inv_grpc.InventoryServiceStub) -> None:
        self.inventory = inventory
        self._done: set[str] = set()

    def _once(self, kind: str, fact: Any) -> None:
        if f"{kind}/{fact.id}" not in self._done:
            create(self.inventory, kind, fact)
            self._done.add(f"{kind}/{fact.id}")

    def host(
        self, host_id: str, centre: str, vcpu: int = 16, ownership: Ownership = Ownership.PRIVATE
    ) -> None:
        self._once("centre", CENTRES[centre])
        cluster_id = f"{centre}-{ownership.value}"
        self._once("cluster", Cluster(cluster_id, centre, Platform.OPENSTACK, ownership))
        self._once("host", Host(host_id, cluster_id, f"rack-{host_id}", vcpu, 128, 10.0))

    def pool(self, centre: str, storage_class: StorageClass = StorageClass.BLOCK_FC_SAN) -> None:
        self._once("centre", CENTRES[centre])
        protocols = (
            frozenset({FileProtocol.NFS}) if storage_class is StorageClass.FILE_NAS else frozenset()
        )
        pool_id = f"{centre}-{storage_class.value}"
        self._once("pool", StoragePool(pool_id, centre, storage_class, 10_000, protocols))


@pytest.fixture
def region_and_scheduler(inventory_and_scheduler):
    inventory, scheduling = inventory_and_scheduler
    return Region(inventory), scheduling


def system(
    kind: int = pb.SYSTEM_KIND_HIS,
    *,
    standby: bool = True,
    tier: int = 0,
    vcpu: int = 4,
    data: int = classification.DATA_CLASSIFICATION_INTERNAL,
) -> pb.BusinessSystem:
    roles = [pb.RoleCount(role=pb.ROLE_PRIMARY, count=1)]
    if standby:
        roles.append(pb.RoleCount(role=pb.ROLE_STANDBY, count=1))
    return pb.BusinessSystem(
        id="sys",
        kind=kind,
        roles=roles,
        vcpu=vcpu,
        memory_gib=8,
        storage_gib=100,
        classification=data,
        dr_tier=tier,
    )


def removed_by(placement: pb.Placement) -> dict[str, set[str]]:
    """For the instance that found no host: requirement ID -> hosts that rule removed."""
    (failed,) = [e for e in placement.explanation if not e.chosen_host_id]
    return {r.requirement_id: {h.host_id for h in r.hosts} for r in failed.removed}


def place(scheduler: Any, wanted: pb.BusinessSystem) -> pb.Placement:
    return scheduler.Place(api.PlaceRequest(system=wanted)).placement


CASES = {
    # rule: (region refusing it, the system, what to add so it is admitted)
    "R-7.2.5": (
        lambda r: (r.host("bak-pub-1", "bak", ownership=Ownership.PUBLIC), r.pool("bak")),
        system(standby=False, data=classification.DATA_CLASSIFICATION_PERSONAL_HEALTH_DATA),
        lambda r: r.host("bak-priv-1", "bak"),
    ),
    "R-7.9.9": (
        lambda r: (r.host("hosp-1", "hosp"), r.pool("hosp")),
        system(),
        lambda r: r.host("hosp-2", "hosp"),
    ),
    "R-7.6b": (
        lambda r: (r.host("hosp-1", "hosp"), r.host("hosp-2", "hosp"), r.pool("hosp")),
        system(tier=5),
        lambda r: (r.host("prod-1", "prod", ownership=Ownership.PUBLIC), r.pool("prod")),
    ),
    "R-7.6c": (
        lambda r: (
            r.host("hosp-1", "hosp"),
            r.host("prod-1", "prod"),
            r.pool("hosp"),
            r.pool("prod"),
        ),
        system(tier=6),
        lambda r: (r.host("bak-1", "bak"), r.pool("bak")),
    ),
    "R-7.3a": (
        lambda r: (r.host("hosp-1", "hosp", vcpu=16), r.pool("hosp")),
        system(standby=False, vcpu=32),
        lambda r: r.host("hosp-big", "hosp", vcpu=64),
    ),
    "R-7.4a": (
        lambda r: (r.host("hosp-1", "hosp"), r.pool("hosp", StorageClass.FILE_NAS)),
        system(standby=False),
        lambda r: r.pool("hosp", StorageClass.BLOCK_FC_SAN),
    ),
    "R-7.4b": (
        lambda r: (r.host("hosp-1", "hosp"), r.pool("hosp", StorageClass.BLOCK_FC_SAN)),
        system(pb.SYSTEM_KIND_PACS_IMAGES, standby=False),
        lambda r: r.pool("hosp", StorageClass.FILE_NAS),
    ),
}


@pytest.mark.parametrize("requirement", sorted(CASES))
def test_each_rule_refuses_and_explains_then_admits_once_satisfied(
    region_and_scheduler, requirement
):
    region, scheduler = region_and_scheduler
    refusing_region, wanted, missing = CASES[requirement]
    refusing_region(region)
    refused = place(scheduler, wanted)
    assert refused.state == pb.PLACEMENT_STATE_FAILED
    assert requirement in removed_by(refused), removed_by(refused)
    missing(region)
    admitted = place(scheduler, wanted)
    assert admitted.state == pb.PLACEMENT_STATE_PLACED, admitted.message
