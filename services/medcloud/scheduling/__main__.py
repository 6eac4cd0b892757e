"""`python -m medcloud.scheduling`: the scheduling service process."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from medcloud.runtime.config import ConfigError, HostPort, load_settings, setting
from medcloud.runtime.grpc_server import ServiceBinding
from medcloud.runtime.outbox import Outbox
from medcloud.runtime.service import EXIT_CONFIG, ServiceContext, run_service
from medcloud.scheduling.adapters.codecs import PlacementCodec, ProtobufPlacementEvents
from medcloud.scheduling.adapters.inventory_client import InventoryClient
from medcloud.scheduling.app.placements import Placements
from medcloud.scheduling.entrypoints.grpc_api import SchedulingApi, binding


@dataclass(frozen=True)
class SchedulingSettings:
    inventory_address: HostPort = setting(
        "MEDCLOUD_INVENTORY_ADDRESS", help="the inventory service's gRPC address, HOST:PORT"
    )


def main() -> int:
    try:
        settings = load_settings(SchedulingSettings)
    except ConfigError as error:
        print(f"medcloud-scheduling: {error}", file=sys.stderr)
        return EXIT_CONFIG

    async def bootstrap(context: ServiceContext) -> Sequence[ServiceBinding]:
        store = context.store
        outbox = Outbox(store, context.bus)
        inventory = InventoryClient(str(settings.inventory_address))
        placements = Placements(
            store,
            store.collection("placements", PlacementCodec()),
            inventory,
            outbox,
            ProtobufPlacementEvents(),
        )
        context.run_in_background(outbox.relay(), name="outbox relay")
        return [binding(SchedulingApi(placements))]

    return run_service("scheduling", bootstrap)


if __name__ == "__main__":
    sys.exit(main())
