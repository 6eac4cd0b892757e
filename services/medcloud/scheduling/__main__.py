"""`python -m medcloud.scheduling`: the scheduling service process."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from medcloud.inventory.v1 import inventory_events_pb2 as inventory_events
from medcloud.inventory.v1 import inventory_pb2 as inventory_pb
from medcloud.monitoring.v1 import monitoring_events_pb2 as monitoring_events
from medcloud.runtime.bus import ReceivedEvent
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


async def replace_after_site_down(placements: Placements, event: ReceivedEvent) -> None:
    """Monitoring declared a centre down (every node silent, or every link down, past its
    hysteresis): what ran there is placed elsewhere. Idempotent like the host case."""
    await placements.replace_instances_in_centre(event.payload.centre_id)


async def replace_after_host_down(placements: Placements, event: ReceivedEvent) -> None:
    """A host that went down takes its instances with it: place them again. Idempotent, since a
    second delivery finds nothing left on that host."""
    host = event.payload.host
    if host.state == inventory_pb.HOST_STATE_DOWN:
        await placements.replace_instances_on(host.id)


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
        await context.bus.subscribe(
            source_service="inventory",
            event_types=[inventory_events.HostStateChanged],
            durable="scheduling-host-state",
            handler=lambda event: replace_after_host_down(placements, event),
        )
        await context.bus.subscribe(
            source_service="monitoring",
            event_types=[monitoring_events.SiteDown],
            durable="scheduling-site-down",
            handler=lambda event: replace_after_site_down(placements, event),
        )
        return [binding(SchedulingApi(placements))]

    return run_service("scheduling", bootstrap)


if __name__ == "__main__":
    sys.exit(main())
