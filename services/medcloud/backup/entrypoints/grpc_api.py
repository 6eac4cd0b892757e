"""The gRPC API `medcloud.backup.v1.BackupService`: translation only."""

from __future__ import annotations

from typing import Any

from medcloud.backup.adapters.codecs import (
    drill_to_pb,
    facts_from_pb,
    facts_to_pb,
    failover_to_pb,
    snapshot_to_pb,
    system_from_pb,
    system_to_pb,
)
from medcloud.backup.app.recovery import Recovery
from medcloud.backup.app.snapshots import ControlPlaneBackups
from medcloud.backup.domain.failover import Trigger, TriggerKind
from medcloud.backup.v1 import backup_service_pb2 as api
from medcloud.backup.v1 import backup_service_pb2_grpc as api_grpc
from medcloud.core import access
from medcloud.core.errors import InvalidArgument
from medcloud.core.identifiers import dns_label_violations
from medcloud.runtime.grpc_server import ServiceBinding

SERVICE_NAME = api.DESCRIPTOR.services_by_name["BackupService"].full_name
DEFAULT_DRILL_TIMEOUT_SECONDS = 300


def _require_labels(**fields: str) -> None:
    violations = [v for name, value in fields.items() for v in dns_label_violations(name, value)]
    if violations:
        raise InvalidArgument(violations)


def _require_request_id(request_id: str) -> None:
    if not 1 <= len(request_id) <= 128:
        raise InvalidArgument.single(
            "request_id", "required: 1 to 128 characters, the same for a retried request"
        )


class BackupApi(api_grpc.BackupServiceServicer):
    def __init__(self, recovery: Recovery, backups: ControlPlaneBackups) -> None:
        self._recovery = recovery
        self._backups = backups

    async def SetRegionFacts(
        self, request: api.SetRegionFactsRequest, context: Any
    ) -> api.SetRegionFactsResponse:
        facts = await self._recovery.set_region_facts(facts_from_pb(request.facts))
        return api.SetRegionFactsResponse(facts=facts_to_pb(facts))

    async def GetRegionFacts(
        self, request: api.GetRegionFactsRequest, context: Any
    ) -> api.GetRegionFactsResponse:
        return api.GetRegionFactsResponse(facts=facts_to_pb(await self._recovery.region_facts()))

    async def SetProtection(
        self, request: api.SetProtectionRequest, context: Any
    ) -> api.SetProtectionResponse:
        stored = await self._recovery.set_protection(system_from_pb(request.system))
        return api.SetProtectionResponse(system=system_to_pb(stored))

    async def GetProtection(
        self, request: api.GetProtectionRequest, context: Any
    ) -> api.GetProtectionResponse:
        _require_labels(hospital_id=request.hospital_id, system_id=request.system_id)
        found = await self._recovery.protection(request.hospital_id, request.system_id)
        return api.GetProtectionResponse(system=system_to_pb(found))

    async def ListProtections(
        self, request: api.ListProtectionsRequest, context: Any
    ) -> api.ListProtectionsResponse:
        systems = await self._recovery.protections(request.hospital_id)
        return api.ListProtectionsResponse(systems=[system_to_pb(s) for s in systems])

    async def DeleteProtection(
        self, request: api.DeleteProtectionRequest, context: Any
    ) -> api.DeleteProtectionResponse:
        _require_labels(hospital_id=request.hospital_id, system_id=request.system_id)
        await self._recovery.delete_protection(request.hospital_id, request.system_id)
        return api.DeleteProtectionResponse()

    async def GetDrPlan(self, request: api.GetDrPlanRequest, context: Any) -> api.GetDrPlanResponse:
        _require_labels(hospital_id=request.hospital_id)
        plan = await self._recovery.dr_plan(request.hospital_id)
        return api.GetDrPlanResponse(
            hospital_id=plan.hospital_id, system_ids=[s.system_id for s in plan.steps]
        )

    async def StartFailover(
        self, request: api.StartFailoverRequest, context: Any
    ) -> api.StartFailoverResponse:
        _require_labels(hospital_id=request.hospital_id)
        _require_request_id(request.request_id)
        failover = await self._recovery.start_failover(
            request.hospital_id,
            Trigger(TriggerKind.MANUAL, request.request_id),
            failback=request.failback,
        )
        return api.StartFailoverResponse(failover=failover_to_pb(failover))

    async def GetFailover(
        self, request: api.GetFailoverRequest, context: Any
    ) -> api.GetFailoverResponse:
        return api.GetFailoverResponse(
            failover=failover_to_pb(await self._recovery.failover(request.id))
        )

    async def ListFailovers(
        self, request: api.ListFailoversRequest, context: Any
    ) -> api.ListFailoversResponse:
        failovers = await self._recovery.failovers(request.hospital_id)
        return api.ListFailoversResponse(failovers=[failover_to_pb(f) for f in failovers])

    async def RunDrill(self, request: api.RunDrillRequest, context: Any) -> api.RunDrillResponse:
        _require_labels(hospital_id=request.hospital_id)
        _require_request_id(request.request_id)
        if request.timeout_seconds < 0:
            raise InvalidArgument.single(
                "timeout_seconds", f"must be 0 (default) or more, got {request.timeout_seconds}"
            )
        drill = await self._recovery.run_drill(
            request.hospital_id,
            request.request_id,
            request.dry_run,
            request.timeout_seconds or DEFAULT_DRILL_TIMEOUT_SECONDS,
        )
        return api.RunDrillResponse(drill=drill_to_pb(drill))

    async def ListDrills(
        self, request: api.ListDrillsRequest, context: Any
    ) -> api.ListDrillsResponse:
        drills = await self._recovery.drills(request.hospital_id)
        return api.ListDrillsResponse(drills=[drill_to_pb(d) for d in drills])

    async def SnapshotControlPlane(
        self, request: api.SnapshotControlPlaneRequest, context: Any
    ) -> api.SnapshotControlPlaneResponse:
        info = await self._backups.snapshot_now()
        return api.SnapshotControlPlaneResponse(snapshot=snapshot_to_pb(info))

    async def ListControlPlaneSnapshots(
        self, request: api.ListControlPlaneSnapshotsRequest, context: Any
    ) -> api.ListControlPlaneSnapshotsResponse:
        return api.ListControlPlaneSnapshotsResponse(
            snapshots=[snapshot_to_pb(s) for s in self._backups.snapshots()]
        )


ACTIONS = {
    "SetRegionFacts": access.BACKUP_PROTECT,
    "GetRegionFacts": access.BACKUP_READ,
    "SetProtection": access.BACKUP_PROTECT,
    "GetProtection": access.BACKUP_READ,
    "ListProtections": access.BACKUP_READ,
    "DeleteProtection": access.BACKUP_PROTECT,
    "GetDrPlan": access.BACKUP_READ,
    "StartFailover": access.BACKUP_FAILOVER,
    "GetFailover": access.BACKUP_READ,
    "ListFailovers": access.BACKUP_READ,
    "RunDrill": access.BACKUP_DRILL,
    "ListDrills": access.BACKUP_READ,
    "SnapshotControlPlane": access.BACKUP_SNAPSHOT,
    "ListControlPlaneSnapshots": access.BACKUP_READ,
}


def binding(servicer: BackupApi) -> ServiceBinding:
    return ServiceBinding(
        SERVICE_NAME,
        lambda server: api_grpc.add_BackupServiceServicer_to_server(servicer, server),
        ACTIONS,
    )
