"""Re-placement after monitoring declares a centre down: exactly what ran there moves, and every
rule still holds (R-7.6b, R-7.9.9)."""

from __future__ import annotations

import time

import pytest

from medcloud.devstack.stack import AGENT
from medcloud.inventory.client import register_region
from medcloud.inventory.domain.reference import annex_a_region
from medcloud.inventory.v1 import inventory_service_pb2 as inv_api
from medcloud.monitoring.v1 import monitoring_service_pb2 as mon_api
from medcloud.monitoring.v1 import monitoring_service_pb2_grpc as mon_grpc
from medcloud.scheduling.v1 import scheduling_pb2 as pb
from medcloud.scheduling.v1 import scheduling_service_pb2 as api
from tests.integration.scheduling.test_scheduling_service import his
from tests.support.identities import client_channel
from tests.support.processes import start_service

pytestmark = pytest.mark.integration


@pytest.fixture
def monitoring(etcd_server, nats_server, region, tmp_path):
    process, address = start_service(
        "medcloud.monitoring",
        etcd_server.endpoint,
        nats_server.url,
        region,
        tmp_path / "monitoring.log",
        extra_env={
            "MEDCLOUD_MONITORING_METRICS_LISTEN": "127.0.0.1:0",
            "MEDCLOUD_MONITORING_SAMPLE_LOG_MAX_BYTES": str(16 * 1024**2),
            "MEDCLOUD_MONITORING_SUPERVISE_SECONDS": "0.1",
            "MEDCLOUD_MONITORING_HEARTBEAT_INTERVAL_SECONDS": "0.2",
            "MEDCLOUD_MONITORING_SITE_DOWN_AFTER_SECONDS": "1",
        },
    )
    with client_channel(address, (AGENT,)) as channel:  # heartbeats come from node agents
        yield mon_grpc.MonitoringServiceStub(channel)
    process.stop()


def _heartbeats(monitoring, centre_id: str, beats: int) -> None:
    for _ in range(beats):
        monitoring.Heartbeat(mon_api.HeartbeatRequest(node_id="core", centre_id=centre_id))
        time.sleep(0.2)


def _next_generation(scheduling, after: int) -> pb.Placement:
    deadline = time.monotonic() + 20
    while True:
        placement = scheduling.GetPlacement(api.GetPlacementRequest(system_id="his")).placement
        if placement.generation > after or time.monotonic() > deadline:
            return placement
        time.sleep(0.1)


def test_a_centre_declared_down_loses_its_instances_to_the_rest_of_the_region(
    inventory_and_scheduler, monitoring
):
    inventory, scheduling = inventory_and_scheduler
    register_region(inventory, annex_a_region())
    placement = scheduling.Place(api.PlaceRequest(system=his(dr_tier=2))).placement
    _, standby = placement.assignments
    _heartbeats(monitoring, standby.centre_id, 3)  # heard from, then silent

    moved = _next_generation(scheduling, placement.generation)
    assert moved.state == pb.PLACEMENT_STATE_PLACED
    down = standby.centre_id
    for before, after in zip(placement.assignments, moved.assignments, strict=True):
        if before.centre_id == down:
            assert after.centre_id != down  # off the centre that went down
        else:
            assert after.host_id == before.host_id  # untouched
    new_primary, new_standby = moved.assignments
    assert new_primary.host_id != new_standby.host_id


def test_with_no_room_elsewhere_the_survivors_keep_running_until_the_centre_returns(
    inventory_and_scheduler, monitoring
):
    inventory, scheduling = inventory_and_scheduler
    register_region(inventory, annex_a_region())
    # Tier 5: the standby must sit in another room of the primary's city (R-7.6b); annex A has
    # no third room there with FC-SAN storage.
    placement = scheduling.Place(api.PlaceRequest(system=his(dr_tier=5))).placement
    primary, standby = placement.assignments
    _heartbeats(monitoring, standby.centre_id, 3)

    degraded = _next_generation(scheduling, placement.generation)
    assert degraded.state == pb.PLACEMENT_STATE_DEGRADED
    assert [a.host_id for a in degraded.assignments] == [primary.host_id]
    assert "R-7.6b" in degraded.message
    claim = inventory.GetClaim(inv_api.GetClaimRequest(consumer_id="his")).claim
    assert {a.provider.host_id for a in claim.allocations if a.provider.host_id} == {
        primary.host_id
    }

    _heartbeats(monitoring, standby.centre_id, 5)  # the room is back (SiteUp)
    whole = _next_generation(scheduling, degraded.generation)
    assert whole.state == pb.PLACEMENT_STATE_PLACED
    assert whole.assignments[0].host_id == primary.host_id
    assert whole.assignments[1].centre_id == standby.centre_id
