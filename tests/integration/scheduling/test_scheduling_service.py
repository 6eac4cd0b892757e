"""The scheduling service as a real process, placing onto a real inventory service."""

from __future__ import annotations

import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from medcloud.common.v1 import data_classification_pb2 as classification
from medcloud.inventory.client import register_region
from medcloud.inventory.domain.reference import annex_a_region
from medcloud.inventory.v1 import inventory_pb2 as inv
from medcloud.inventory.v1 import inventory_service_pb2 as inv_api
from medcloud.scheduling.v1 import scheduling_pb2 as pb
from medcloud.scheduling.v1 import scheduling_service_pb2 as api

pytestmark = pytest.mark.integration


@pytest.fixture
def services(inventory_and_scheduler):
    """Inventory holding annex A's region, and scheduling pointed at it."""
    inventory, scheduling = inventory_and_scheduler
    register_region(inventory, annex_a_region())
    return inventory, scheduling


def his(system_id: str = "his", vcpu: int = 8, dr_tier: int = 5) -> pb.BusinessSystem:
    return pb.BusinessSystem(
        id=system_id,
        kind=pb.SYSTEM_KIND_HIS,
        roles=[
            pb.RoleCount(role=pb.ROLE_PRIMARY, count=1),
            pb.RoleCount(role=pb.ROLE_STANDBY, count=1),
        ],
        vcpu=vcpu,
        memory_gib=32,
        storage_gib=200,
        classification=classification.DATA_CLASSIFICATION_PERSONAL_HEALTH_DATA,
        dr_tier=dr_tier,
    )


def test_a_tier_5_his_is_placed_in_two_rooms_of_one_city_and_claimed(services):
    inventory, scheduling = services
    placement = scheduling.Place(api.PlaceRequest(system=his())).placement
    assert placement.state == pb.PLACEMENT_STATE_PLACED
    primary, standby = placement.assignments
    assert primary.host_id != standby.host_id
    assert primary.centre_id != standby.centre_id  # R-7.6b: two rooms ...
    centres = {c.id: c for c in inventory.ListCentres(inv_api.ListCentresRequest()).centres}
    assert centres[primary.centre_id].city == centres[standby.centre_id].city  # ... one city
    claim = inventory.GetClaim(inv_api.GetClaimRequest(consumer_id="his")).claim
    assert sorted(a.provider.host_id for a in claim.allocations if a.provider.host_id) == sorted(
        [primary.host_id, standby.host_id]
    )
    again = scheduling.GetPlacement(api.GetPlacementRequest(system_id="his")).placement
    assert [a.host_id for a in again.assignments] == [primary.host_id, standby.host_id]


def test_a_refused_placement_explains_itself_and_claims_nothing(services):
    inventory, scheduling = services
    # Tier 6 wants the standby in another city (R-7.6c); annex A has hosts only in Guangzhou.
    placement = scheduling.Place(api.PlaceRequest(system=his("his-remote", dr_tier=6))).placement
    assert placement.state == pb.PLACEMENT_STATE_FAILED
    assert placement.message.startswith("no host admits standby #0 of his-remote")
    (standby,) = [e for e in placement.explanation if e.instance.role == pb.ROLE_STANDBY]
    by_rule = {r.requirement_id: {h.host_id for h in r.hosts} for r in standby.removed}
    assert "R-7.6c" in by_rule
    assert set().union(*by_rule.values()) == {h.id for h in annex_a_region().hosts}
    assert all(
        "city" in h.reason for r in standby.removed if r.requirement_id == "R-7.6c" for h in r.hosts
    )
    with pytest.raises(grpc.RpcError) as raised:
        inventory.GetClaim(inv_api.GetClaimRequest(consumer_id="his-remote"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_128_vcpu_instance_is_refused_naming_r_7_3c_and_advising_scale_out(services):
    _, scheduling = services
    with pytest.raises(grpc.RpcError) as raised:
        scheduling.Place(api.PlaceRequest(system=his("his-huge", vcpu=128)))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad_request = error_details_pb2.BadRequest()
    rpc_status.from_call(raised.value).details[0].Unpack(bad_request)
    (violation,) = [v for v in bad_request.field_violations if v.field == "system.vcpu"]
    assert "R-7.3c" in violation.description and "scale out" in violation.description


def test_release_gives_the_capacity_back(services):
    inventory, scheduling = services
    scheduling.Place(api.PlaceRequest(system=his()))
    for _ in range(2):
        scheduling.ReleasePlacement(api.ReleasePlacementRequest(system_id="his"))
    with pytest.raises(grpc.RpcError) as raised:
        inventory.GetClaim(inv_api.GetClaimRequest(consumer_id="his"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as gone:
        scheduling.GetPlacement(api.GetPlacementRequest(system_id="his"))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


def test_when_a_host_goes_down_exactly_its_instances_move_and_every_rule_holds(services):
    inventory, scheduling = services
    placement = scheduling.Place(api.PlaceRequest(system=his())).placement
    primary, standby = placement.assignments
    host = inventory.GetHost(inv_api.GetHostRequest(id=standby.host_id)).host
    host.state = inv.HOST_STATE_DOWN
    inventory.UpdateHost(inv_api.UpdateHostRequest(host=host))

    deadline = time.monotonic() + 20
    while True:
        moved = scheduling.GetPlacement(api.GetPlacementRequest(system_id="his")).placement
        if moved.generation > placement.generation or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert moved.state == pb.PLACEMENT_STATE_PLACED
    new_primary, new_standby = moved.assignments
    assert new_primary.host_id == primary.host_id  # untouched
    assert new_standby.host_id != standby.host_id  # moved off the dead host
    assert new_standby.centre_id != new_primary.centre_id  # tier 5 still in two rooms
    claim = inventory.GetClaim(inv_api.GetClaimRequest(consumer_id="his")).claim
    assert standby.host_id not in {a.provider.host_id for a in claim.allocations}
    assert new_standby.host_id in {a.provider.host_id for a in claim.allocations}


def test_scaling_out_keeps_the_running_instances_and_claims_the_new_ones(services):
    inventory, scheduling = services
    placed = scheduling.Place(api.PlaceRequest(system=his(dr_tier=2))).placement
    scaled = scheduling.Scale(
        api.ScaleRequest(
            system_id="his",
            roles=[
                pb.RoleCount(role=pb.ROLE_PRIMARY, count=1),
                pb.RoleCount(role=pb.ROLE_STANDBY, count=1),
                pb.RoleCount(role=pb.ROLE_REPLICA, count=2),
            ],
        )
    ).placement
    assert [a.host_id for a in scaled.assignments[:2]] == [a.host_id for a in placed.assignments]
    assert len(scaled.assignments) == 4
    claim = inventory.GetClaim(inv_api.GetClaimRequest(consumer_id="his")).claim
    assert sum(a.resources.vcpu for a in claim.allocations) == 4 * 8
    listed = scheduling.ListPlacements(api.ListPlacementsRequest()).placements
    assert [p.system.id for p in listed] == ["his"]


def portal(system_id: str = "portal") -> pb.BusinessSystem:
    return pb.BusinessSystem(
        id=system_id,
        kind=pb.SYSTEM_KIND_PORTAL,
        roles=[pb.RoleCount(role=pb.ROLE_PRIMARY, count=2)],
        vcpu=4,
        memory_gib=8,
        storage_gib=20,
        classification=classification.DATA_CLASSIFICATION_PUBLIC,
        dr_tier=1,
    )


def test_a_batch_places_each_system_whole_or_not_at_all_in_request_order(services):
    inventory, scheduling = services
    systems = [portal(), his("his-remote", dr_tier=6), his()]
    placements = scheduling.PlaceBatch(api.PlaceBatchRequest(systems=systems)).placements
    assert [(p.system.id, p.state) for p in placements] == [
        ("portal", pb.PLACEMENT_STATE_PLACED),
        ("his-remote", pb.PLACEMENT_STATE_FAILED),
        ("his", pb.PLACEMENT_STATE_PLACED),
    ]
    claimed = {
        consumer for consumer in ("portal", "his-remote", "his") if _has_claim(inventory, consumer)
    }
    assert claimed == {"portal", "his"}


def _has_claim(inventory, consumer: str) -> bool:
    try:
        inventory.GetClaim(inv_api.GetClaimRequest(consumer_id=consumer))
        return True
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
        return False


def test_explain_says_what_place_would_do_and_changes_nothing(services):
    inventory, scheduling = services
    explained = scheduling.Explain(api.ExplainRequest(system=his())).placement
    assert explained.state == pb.PLACEMENT_STATE_PLACED
    assert all(e.summary for e in explained.explanation)
    assert not _has_claim(inventory, "his")
    with pytest.raises(grpc.RpcError) as raised:
        scheduling.GetPlacement(api.GetPlacementRequest(system_id="his"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
