"""Re-placement after monitoring declares a centre down: exactly what ran there moves, and every
rule still holds (R-7.6b, R-7.9.9)."""

from __future__ import annotations

import time

import grpc
import pytest

from medcloud.inventory.client import register_region
from medcloud.inventory.domain.reference import annex_a_region
from medcloud.monitoring.v1 import monitoring_service_pb2 as mon_api
from medcloud.monitoring.v1 import monitoring_service_pb2_grpc as mon_grpc
from medcloud.scheduling.v1 import scheduling_pb2 as pb
from medcloud.scheduling.v1 import scheduling_service_pb2 as api
from tests.integration.scheduling.test_scheduling_service import his
from tests.support.processes import start_service

pytestmark = pytest.mark.integration


def test_a_centre_declared_down_loses_its_instances_to_the_rest_of_the_region(
    inventory_and_scheduler, etcd_server, nats_server, region, tmp_path
):
    inventory, scheduling = inventory_and_scheduler
    register_region(inventory, annex_a_region())
    monitoring, address = start_service(
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
    try:
        placement = scheduling.Place(api.PlaceRequest(system=his(dr_tier=2))).placement
        _, standby = placement.assignments
        with grpc.insecure_channel(address) as channel:
            health = mon_grpc.MonitoringServiceStub(channel)
            for _ in range(3):  # the standby's room is heard from, then falls silent
                health.Heartbeat(
                    mon_api.HeartbeatRequest(node_id="core", centre_id=standby.centre_id)
                )
                time.sleep(0.2)

        deadline = time.monotonic() + 20
        while True:
            moved = scheduling.GetPlacement(api.GetPlacementRequest(system_id="his")).placement
            if moved.generation > placement.generation or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert moved.state == pb.PLACEMENT_STATE_PLACED
        down = standby.centre_id
        for before, after in zip(placement.assignments, moved.assignments, strict=True):
            if before.centre_id == down:
                assert after.centre_id != down  # off the centre that went down
            else:
                assert after.host_id == before.host_id  # untouched
        new_primary, new_standby = moved.assignments
        assert new_primary.host_id != new_standby.host_id
    finally:
        monitoring.stop()
