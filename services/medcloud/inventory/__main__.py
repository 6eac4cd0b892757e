"""`python -m medcloud.inventory`: the inventory service process."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from medcloud.inventory.adapters.codecs import KINDS, ClaimCodec, ProtobufChangeEvents, RecordCodec
from medcloud.inventory.app.capacity import Capacity
from medcloud.inventory.app.facts import Facts, inventory_kinds
from medcloud.inventory.entrypoints.grpc_api import InventoryApi, binding
from medcloud.runtime.grpc_server import ServiceBinding
from medcloud.runtime.outbox import Outbox
from medcloud.runtime.service import ServiceContext, run_service
from medcloud.runtime.store import Mirror

# The etcd collection (key segment) of each kind.
COLLECTIONS = {
    "centres": "centre",
    "nodes": "node",
    "links": "link",
    "clusters": "cluster",
    "hosts": "host",
    "pools": "pool",
    "flavors": "flavor",
}
# What allocation-candidate queries read from memory.
MIRRORED = ("centre", "cluster", "host", "pool")


async def bootstrap(context: ServiceContext) -> Sequence[ServiceBinding]:
    store = context.store
    kinds = inventory_kinds(
        lambda collection: store.collection(collection, RecordCodec(KINDS[COLLECTIONS[collection]]))
    )
    outbox = Outbox(store, context.bus)
    events = ProtobufChangeEvents()
    facts = Facts(store, kinds, outbox, events)
    capacity = Capacity(
        store,
        kinds["host"],
        kinds["pool"],
        store.collection("claims", ClaimCodec()),
        outbox,
        events,
    )
    mirrors: dict[str, Mirror[Any]] = {kind: Mirror(kinds[kind].collection) for kind in MIRRORED}
    for kind, mirror in mirrors.items():
        context.run_in_background(mirror.run(), name=f"mirror {kind}")
    context.run_in_background(outbox.relay(), name="outbox relay")
    for mirror in mirrors.values():
        await mirror.loaded.wait()
    return [binding(InventoryApi(facts, capacity, mirrors))]


if __name__ == "__main__":
    sys.exit(run_service("inventory", bootstrap))
