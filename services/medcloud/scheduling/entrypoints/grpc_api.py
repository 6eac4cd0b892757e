"""The gRPC API `medcloud.scheduling.v1.SchedulingService`: translation only."""

from __future__ import annotations

from typing import Any

from medcloud.core import access
from medcloud.runtime.grpc_server import ServiceBinding
from medcloud.scheduling.adapters.codecs import (
    record_to_proto,
    roles_from_proto,
    system_from_proto,
)
from medcloud.scheduling.app.placements import Placements
from medcloud.scheduling.v1 import scheduling_service_pb2 as api
from medcloud.scheduling.v1 import scheduling_service_pb2_grpc as api_grpc

SERVICE_NAME = api.DESCRIPTOR.services_by_name["SchedulingService"].full_name


class SchedulingApi(api_grpc.SchedulingServiceServicer):
    def __init__(self, placements: Placements) -> None:
        self._placements = placements

    async def Place(self, request: api.PlaceRequest, context: Any) -> api.PlaceResponse:
        record = await self._placements.place(system_from_proto(request.system))
        return api.PlaceResponse(placement=record_to_proto(record))

    async def PlaceBatch(
        self, request: api.PlaceBatchRequest, context: Any
    ) -> api.PlaceBatchResponse:
        records = await self._placements.place_batch(
            [system_from_proto(system) for system in request.systems]
        )
        return api.PlaceBatchResponse(placements=[record_to_proto(r) for r in records])

    async def Explain(self, request: api.ExplainRequest, context: Any) -> api.ExplainResponse:
        record = await self._placements.explain(system_from_proto(request.system))
        return api.ExplainResponse(placement=record_to_proto(record))

    async def GetPlacement(
        self, request: api.GetPlacementRequest, context: Any
    ) -> api.GetPlacementResponse:
        record = await self._placements.get(request.system_id)
        return api.GetPlacementResponse(placement=record_to_proto(record))

    async def ListPlacements(
        self, request: api.ListPlacementsRequest, context: Any
    ) -> api.ListPlacementsResponse:
        records, token = await self._placements.list(request.page_size, request.page_token)
        return api.ListPlacementsResponse(
            placements=[record_to_proto(r) for r in records], next_page_token=token
        )

    async def Scale(self, request: api.ScaleRequest, context: Any) -> api.ScaleResponse:
        record = await self._placements.scale(request.system_id, roles_from_proto(request.roles))
        return api.ScaleResponse(placement=record_to_proto(record))

    async def ReleasePlacement(
        self, request: api.ReleasePlacementRequest, context: Any
    ) -> api.ReleasePlacementResponse:
        await self._placements.release(request.system_id)
        return api.ReleasePlacementResponse()


ACTIONS = {
    "Place": access.SCHEDULING_PLACE,
    "PlaceBatch": access.SCHEDULING_PLACE,
    "Scale": access.SCHEDULING_PLACE,
    "ReleasePlacement": access.SCHEDULING_PLACE,
    "Explain": access.SCHEDULING_READ,
    "GetPlacement": access.SCHEDULING_READ,
    "ListPlacements": access.SCHEDULING_READ,
}


def binding(servicer: SchedulingApi) -> ServiceBinding:
    return ServiceBinding(
        SERVICE_NAME,
        lambda server: api_grpc.add_SchedulingServiceServicer_to_server(servicer, server),
        ACTIONS,
    )
