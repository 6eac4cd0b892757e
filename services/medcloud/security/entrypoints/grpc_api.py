"""The gRPC API `medcloud.security.v1.SecurityService`: translation only."""

from __future__ import annotations

from typing import Any

from medcloud.common.v1 import data_classification_pb2 as classification
from medcloud.core import access
from medcloud.runtime.grpc_server import ServiceBinding, identity_of
from medcloud.runtime.proto_enums import enum_to_proto
from medcloud.runtime.tls import caller_of
from medcloud.security.adapters.codecs import (
    allocation_to_proto,
    capability_from_proto,
    export_request_from_proto,
    finding_to_proto,
    group_to_proto,
    instance_from_proto,
    instance_to_proto,
    policy_from_proto,
    problem_to_proto,
    record_to_proto,
    record_to_struct,
    records_from_proto,
    zone_from_proto,
)
from medcloud.security.app.governance import Deidentification, Governance
from medcloud.security.app.trail import AuditTrail
from medcloud.security.domain.audit import AuditEvent
from medcloud.security.v1 import security_service_pb2 as api
from medcloud.security.v1 import security_service_pb2_grpc as api_grpc

SERVICE_NAME = api.DESCRIPTOR.services_by_name["SecurityService"].full_name


class SecurityApi(api_grpc.SecurityServiceServicer):
    def __init__(
        self, trail: AuditTrail, governance: Governance, deidentification: Deidentification
    ) -> None:
        self._trail = trail
        self._governance = governance
        self._deidentification = deidentification

    async def ListAuditRecords(
        self, request: api.ListAuditRecordsRequest, context: Any
    ) -> api.ListAuditRecordsResponse:
        limit = min(request.limit or 100, 1000)
        identity = identity_of(caller_of(context))
        records = await self._trail.records(
            request.after_sequence,
            limit,
            AuditEvent(identity.subject, identity.role_names, access.AUDIT_READ, "trail", "read"),
        )
        return api.ListAuditRecordsResponse(records=[record_to_proto(r) for r in records])

    async def VerifyAuditTrail(
        self, request: api.VerifyAuditTrailRequest, context: Any
    ) -> api.VerifyAuditTrailResponse:
        identity = identity_of(caller_of(context))
        report, checkpoints = await self._trail.verify(
            AuditEvent(identity.subject, identity.role_names, access.AUDIT_VERIFY, "trail", "asked")
        )
        return api.VerifyAuditTrailResponse(
            ok=report.ok,
            records_checked=report.records_checked,
            problems=[problem_to_proto(p) for p in report.problems],
            head=report.head.sequence,
            checkpoints=checkpoints,
        )

    async def AddSecurityInstance(
        self, request: api.AddSecurityInstanceRequest, context: Any
    ) -> api.AddSecurityInstanceResponse:
        instance = await self._governance.add_instance(
            identity_of(caller_of(context)), instance_from_proto(request.instance)
        )
        return api.AddSecurityInstanceResponse(instance=instance_to_proto(instance))

    async def ListSecurityInstances(
        self, request: api.ListSecurityInstancesRequest, context: Any
    ) -> api.ListSecurityInstancesResponse:
        pool = await self._governance.pool()
        return api.ListSecurityInstancesResponse(
            instances=[instance_to_proto(i, pool.allocated_units(i.id)) for i in pool.instances],
            allocations=[allocation_to_proto(a) for a in pool.allocations],
        )

    async def AllocateCapability(
        self, request: api.AllocateCapabilityRequest, context: Any
    ) -> api.AllocateCapabilityResponse:
        allocation = await self._governance.allocate(
            identity_of(caller_of(context)),
            request.site_id,
            zone_from_proto(request.zone, "zone"),
            capability_from_proto(request.capability, "capability"),
            request.units,
            request.prefer_centre_id or None,
        )
        return api.AllocateCapabilityResponse(allocation=allocation_to_proto(allocation))

    async def ReleaseCapability(
        self, request: api.ReleaseCapabilityRequest, context: Any
    ) -> api.ReleaseCapabilityResponse:
        released = await self._governance.release(
            identity_of(caller_of(context)),
            request.site_id,
            zone_from_proto(request.zone, "zone"),
            capability_from_proto(request.capability, "capability"),
        )
        return api.ReleaseCapabilityResponse(released=[allocation_to_proto(a) for a in released])

    async def EvaluateBaseline(
        self, request: api.EvaluateBaselineRequest, context: Any
    ) -> api.EvaluateBaselineResponse:
        report = await self._governance.evaluate_baseline(
            identity_of(caller_of(context)), request.site_id
        )
        return api.EvaluateBaselineResponse(
            site_id=report.site_id,
            passed=report.passed,
            score=report.score,
            findings=[finding_to_proto(f) for f in report.findings],
        )

    async def DecideExport(
        self, request: api.DecideExportRequest, context: Any
    ) -> api.DecideExportResponse:
        decision = await self._governance.decide_export(
            identity_of(caller_of(context)), export_request_from_proto(request.request)
        )
        return api.DecideExportResponse(
            allowed=decision.allowed,
            reason=decision.reason,
            requirement_id=decision.requirement_id,
        )

    async def DeidentifyRecords(
        self, request: api.DeidentifyRecordsRequest, context: Any
    ) -> api.DeidentifyRecordsResponse:
        release, key_id = await self._deidentification.deidentify(
            identity_of(caller_of(context)),
            policy_from_proto(request),
            records_from_proto(request.records),
            request.k_required,
        )
        return api.DeidentifyRecordsResponse(
            records=[record_to_struct(record) for record in release.records],
            data_class=enum_to_proto(release.data_class, classification.DataClassification),
            k=release.anonymity.k,
            groups_below_k=[group_to_proto(g) for g in release.anonymity.offending_groups],
            key_id=key_id,
        )

    async def RotatePseudonymKey(
        self, request: api.RotatePseudonymKeyRequest, context: Any
    ) -> api.RotatePseudonymKeyResponse:
        key_id = await self._deidentification.rotate(identity_of(caller_of(context)))
        return api.RotatePseudonymKeyResponse(key_id=key_id)


ACTIONS = {
    "ListAuditRecords": access.AUDIT_READ,
    "VerifyAuditTrail": access.AUDIT_VERIFY,
    "AddSecurityInstance": access.SECURITY_POLICY_WRITE,
    "ListSecurityInstances": access.SECURITY_POLICY_READ,
    "AllocateCapability": access.SECURITY_POLICY_WRITE,
    "ReleaseCapability": access.SECURITY_POLICY_WRITE,
    "EvaluateBaseline": access.SECURITY_BASELINE_EVALUATE,
    "DecideExport": access.DATA_EXPORT_DECIDE,
    "DeidentifyRecords": access.DATA_DEIDENTIFY,
    "RotatePseudonymKey": access.SECURITY_DEIDENTIFICATION_KEY_MANAGE,
}


def binding(servicer: SecurityApi) -> ServiceBinding:
    return ServiceBinding(
        SERVICE_NAME,
        lambda server: api_grpc.add_SecurityServiceServicer_to_server(servicer, server),
        ACTIONS,
        audits_itself=True,
    )
