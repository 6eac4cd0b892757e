"""An inventory service process per test, on the session's etcd and NATS, in a region of its own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from medcloud.devstack.processes import ManagedProcess
from medcloud.inventory.adapters.codecs import KINDS
from medcloud.inventory.app.records import Record
from medcloud.inventory.domain.model import Region
from medcloud.inventory.v1 import inventory_service_pb2 as api
from medcloud.inventory.v1 import inventory_service_pb2_grpc as api_grpc
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
    channel = grpc.insecure_channel(address)
    yield InventoryProcess(process, address, channel, api_grpc.InventoryServiceStub(channel))
    channel.close()
    process.stop()


def register_region(stub: api_grpc.InventoryServiceStub, region: Region) -> None:
    """Registers every fact of `region` through the API, in dependency order."""
    for kind, facts in (
        ("centre", region.centres),
        ("node", region.nodes),
        ("link", region.links),
        ("cluster", region.clusters),
        ("host", region.hosts),
        ("pool", region.pools),
        ("flavor", region.flavors),
    ):
        for fact in facts:
            create(stub, kind, fact)


def create(stub: api_grpc.InventoryServiceStub, kind: str, fact: Any) -> Any:
    mapping = KINDS[kind]
    name = mapping.message.DESCRIPTOR.name
    request = getattr(api, f"Create{name}Request")(
        **{mapping.field: mapping.to_proto(Record(fact, 0))}
    )
    return getattr(getattr(stub, f"Create{name}")(request, timeout=10), mapping.field)
