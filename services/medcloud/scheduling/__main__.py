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


async def follow_site_health(placements: Placements, event: ReceivedEvent) -> None:
    """Monitoring declared a centre down (every node silent, or every link down, past its
    hysteresis): what ran there is placed elsewhere. A centre back up may admit what stayed
    degraded. Idempotent: a second delivery finds nothing left to move."""
    if isinstance(event.payload, monitoring_events.SiteDown):
        await placements.replace_instances_in_centre(event.payload.centre_id)
    else:
        await placements.retry_degraded()


async def follow_host_state(placements: Placements, event: ReceivedEvent) -> None:
    """A host that went down takes its instances with it: place them again. A host back in
    service may admit what stayed degraded. Idempotent like the above."""
    host = event.payload.host
    if host.state == inventory_pb.HOST_STATE_DOWN:
        await placements.replace_instances_on(host.id)
    elif host.state == inventory_pb.HOST_STATE_ACTIVE:
        await placements.retry_degraded()


def main() -> int:
    try:
        settings = load_settings(SchedulingSettings)
    except ConfigError as error:
        print(f"medcloud-scheduling: {error}", file=sys.stderr)
        return EXIT_CONFIG

    async def bootstrap(context: ServiceContext) -> Sequence[ServiceBinding]:
        store = context.store
        outbox = Outbox(store, context.bus)
        inventory = InventoryClient(str(settings.inventory_address), context.tls)
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
            handler=lambda event: follow_host_state(placements, event),
        )
        await context.bus.subscribe(
            source_service="monitoring",
            event_types=[monitoring_events.SiteDown, monitoring_events.SiteUp],
            durable="scheduling-site-health",
            handler=lambda event: follow_site_health(placements, event),
        )
        return [binding(SchedulingApi(placements))]

    return run_service("scheduling", bootstrap)


if __name__ == "__main__":
    sys.exit(main())
