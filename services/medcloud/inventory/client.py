"""Helpers for programs that talk to the inventory service (the local stack, tests, tools)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from medcloud.inventory.adapters.codecs import KINDS
from medcloud.inventory.app.records import Record
from medcloud.inventory.domain.model import Region
from medcloud.inventory.v1 import inventory_service_pb2 as api
from medcloud.inventory.v1 import inventory_service_pb2_grpc as api_grpc

PAGE_SIZE = 1000


async def all_pages(
    call: Callable[[Any], Awaitable[Any]], request_type: type, field: str
) -> AsyncIterator[Any]:
    """Every item of a List call (an asyncio stub's method), page after page."""
    token = ""
    while True:
        page = await call(request_type(page_size=PAGE_SIZE, page_token=token))
        for item in getattr(page, field):
            yield item
        token = page.next_page_token
        if not token:
            return


def create(stub: api_grpc.InventoryServiceStub, kind: str, fact: Any) -> Any:
    """Registers one fact of `kind` ("centre", "host", ...) and returns it as stored."""
    mapping = KINDS[kind]
    name = mapping.message.DESCRIPTOR.name
    request = getattr(api, f"Create{name}Request")(
        **{mapping.field: mapping.to_proto(Record(fact, 0))}
    )
    return getattr(getattr(stub, f"Create{name}")(request, timeout=10), mapping.field)


def register_region(stub: api_grpc.InventoryServiceStub, region: Region) -> dict[str, int]:
    """Registers every fact of `region`, referenced objects first; returns how many of each kind."""
    counts = {}
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
        counts[kind] = len(facts)
    return counts
