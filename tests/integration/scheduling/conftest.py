"""An inventory service and a scheduling service pointed at it, as real processes per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from medcloud.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from medcloud.scheduling.v1 import scheduling_service_pb2_grpc as api_grpc
from tests.support.identities import client_channel
from tests.support.processes import start_service


@pytest.fixture
def inventory_and_scheduler(
    etcd_server, nats_server, region, tmp_path
) -> Iterator[tuple[inv_grpc.InventoryServiceStub, api_grpc.SchedulingServiceStub]]:
    inventory, inventory_address = start_service(
        "medcloud.inventory", etcd_server.endpoint, nats_server.url, region, tmp_path / "inv.log"
    )
    scheduling, scheduling_address = start_service(
        "medcloud.scheduling",
        etcd_server.endpoint,
        nats_server.url,
        region,
        tmp_path / "sch.log",
        extra_env={"MEDCLOUD_INVENTORY_ADDRESS": inventory_address},
    )
    with (
        client_channel(inventory_address) as inventory_channel,
        client_channel(scheduling_address) as scheduling_channel,
    ):
        yield (
            inv_grpc.InventoryServiceStub(inventory_channel),
            api_grpc.SchedulingServiceStub(scheduling_channel),
        )
    scheduling.stop()
    inventory.stop()
