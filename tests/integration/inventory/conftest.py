"""An inventory service process per test, on the session's etcd and NATS, in a region of its own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from medcloud.devstack.processes import ManagedProcess
from medcloud.inventory.v1 import inventory_service_pb2_grpc as api_grpc
from tests.support.identities import client_channel
from tests.support.processes import start_service


@dataclass
class InventoryProcess:
    process: ManagedProcess
    address: str
    channel: grpc.Channel
    stub: api_grpc.InventoryServiceStub


@pytest.fixture
def inventory(etcd_server, nats_server, region, tmp_path) -> Iterator[InventoryProcess]:
    process, address = start_service(
        "medcloud.inventory",
        etcd_server.endpoint,
        nats_server.url,
        region,
        tmp_path / "inventory.log",
    )
    channel = client_channel(address)
    yield InventoryProcess(process, address, channel, api_grpc.InventoryServiceStub(channel))
    channel.close()
    process.stop()
