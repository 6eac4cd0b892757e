"""Mapping between security's domain and `medcloud.security.v1` messages."""

from __future__ import annotations

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from medcloud.common.v1 import data_classification_pb2 as classification
from medcloud.core.errors import InvalidArgument
from medcloud.runtime.proto_enums import enum_from_proto, enum_to_proto
from medcloud.security.domain.anonymity import Group
from medcloud.security.domain.audit import AuditRecord, Checkpoint, Problem
from medcloud.security.domain.baseline import BaselineFinding
from medcloud.security.domain.classification import (
    DataClass,
    FieldKind,
    FieldLabel,
    FieldRole,
    RecordSchema,
)
from medcloud.security.domain.deidentification import (
    DeidentificationPolicy,
    GeneraliseAddress,
    GeneraliseAge,
    GeneraliseDate,
    GeneralisePostcode,
    Keep,
    Pseudonymise,
    Suppress,
    Technique,
)
from medcloud.security.domain.pool import Allocation, Capability, SecurityInstance, Zone
from medcloud.security.domain.sharing import ExportRequest, SharingMode
from medcloud.security.v1 import security_events_pb2 as events_pb
from medcloud.security.v1 import security_pb2 as pb
from medcloud.security.v1 import security_service_pb2 as svc


def record_to_proto(record: AuditRecord) -> pb.AuditRecord:
    recorded_at = timestamp_pb2.Timestamp()
    recorded_at.FromMicroseconds(record.recorded_at_us)
    return pb.AuditRecord(
        sequence=record.sequence,
        recorded_at=recorded_at,
        recorded_at_us=record.recorded_at_us,
        actor=record.actor,
        role=record.role,
        action=record.action,
        target=record.target,
        outcome=record.outcome,
        detail=dict(record.detail),
        previous_hash=record.previous_hash,
        hash=record.hash,
    )


def record_from_proto(message: pb.AuditRecord) -> AuditRecord:
    return AuditRecord(
        sequence=message.sequence,
        recorded_at_us=message.recorded_at_us,
        actor=message.actor,
        role=message.role,
        action=message.action,
        target=message.target,
        outcome=message.outcome,
        detail=dict(message.detail),
        previous_hash=message.previous_hash,
        hash=message.hash,
    )


class AuditRecordCodec:
    def encode(self, value: AuditRecord) -> bytes:
        return record_to_proto(value).SerializeToString(deterministic=True)

    def decode(self, data: bytes) -> AuditRecord:
        return record_from_proto(pb.AuditRecord.FromString(data))


class CheckpointCodec:
    def encode(self, value: Checkpoint) -> bytes:
        return pb.AuditCheckpoint(
            sequence=value.sequence,
            record_hash=value.record_hash,
            signed_at_us=value.signed_at_us,
            key_id=value.key_id,
            signature_hex=value.signature,
        ).SerializeToString()

    def decode(self, data: bytes) -> Checkpoint:
        message = pb.AuditCheckpoint.FromString(data)
        return Checkpoint(
            sequence=message.sequence,
            record_hash=message.record_hash,
            signed_at_us=message.signed_at_us,
            key_id=message.key_id,
            signature=message.signature_hex,
        )


class TextCodec:
    def encode(self, value: str) -> bytes:
        return value.encode()

    def decode(self, data: bytes) -> str:
        return data.decode()


def problem_to_proto(problem: Problem) -> pb.AuditProblem:
    return pb.AuditProblem(sequence=problem.sequence, kind=str(problem.kind), detail=problem.detail)


def instance_to_proto(instance: SecurityInstance, allocated_units: int = 0) -> pb.SecurityInstance:
    return pb.SecurityInstance(
        id=instance.id,
        capability=enum_to_proto(instance.capability, pb.Capability),
        centre_id=instance.centre_id,
        capacity_units=instance.capacity_units,
        vendor=instance.vendor,
        allocated_units=allocated_units,
    )


def instance_from_proto(message: pb.SecurityInstance) -> SecurityInstance:
    return SecurityInstance(
        id=message.id,
        capability=capability_from_proto(message.capability, "instance.capability"),
        centre_id=message.centre_id,
        capacity_units=message.capacity_units,
        vendor=message.vendor,
    )


def capability_from_proto(number: int, field: str) -> Capability:
    return enum_from_proto(number, pb.Capability, Capability, field)


def zone_from_proto(number: int, field: str) -> Zone:
    return enum_from_proto(number, pb.Zone, Zone, field)


def allocation_to_proto(allocation: Allocation) -> pb.SecurityAllocation:
    return pb.SecurityAllocation(
        instance_id=allocation.instance_id,
        site_id=allocation.site_id,
        zone=enum_to_proto(allocation.zone, pb.Zone),
        units=allocation.units,
    )


def allocation_from_proto(message: pb.SecurityAllocation) -> Allocation:
    return Allocation(
        instance_id=message.instance_id,
        site_id=message.site_id,
        zone=zone_from_proto(message.zone, "allocation.zone"),
        units=message.units,
    )


class InstanceCodec:
    def encode(self, value: SecurityInstance) -> bytes:
        return instance_to_proto(value).SerializeToString()

    def decode(self, data: bytes) -> SecurityInstance:
        return instance_from_proto(pb.SecurityInstance.FromString(data))


class AllocationCodec:
    def encode(self, value: Allocation) -> bytes:
        return allocation_to_proto(value).SerializeToString()

    def decode(self, data: bytes) -> Allocation:
        return allocation_from_proto(pb.SecurityAllocation.FromString(data))


def finding_to_proto(finding: BaselineFinding) -> pb.BaselineFinding:
    return pb.BaselineFinding(
        control_id=finding.control_id,
        requirement_ids=finding.requirement_ids,
        title=finding.title,
        passed=finding.passed,
        detail=finding.detail,
    )


def export_request_from_proto(message: pb.ExportRequest) -> ExportRequest:
    return ExportRequest(
        dataset_id=message.dataset_id,
        data_class=enum_from_proto(
            message.data_class,
            classification.DataClassification,
            DataClass,
            "request.data_class",
        ),
        mode=enum_from_proto(message.mode, pb.SharingMode, SharingMode, "request.mode"),
        purpose=message.purpose,
        recipient=message.recipient,
        agreement_id=message.agreement_id,
        k_anonymity=message.k_anonymity if message.HasField("k_anonymity") else None,
    )


class ProtobufTrailEvents:
    def recorded(self, record: AuditRecord) -> events_pb.AuditRecorded:
        return events_pb.AuditRecorded(record=record_to_proto(record))


def _technique_from_proto(message: pb.Technique, at: str) -> Technique:
    kind = message.kind
    if kind == pb.TECHNIQUE_KIND_SUPPRESS:
        return Suppress()
    if kind == pb.TECHNIQUE_KIND_KEEP:
        return Keep()
    if kind == pb.TECHNIQUE_KIND_PSEUDONYMISE:
        return Pseudonymise()
    if kind == pb.TECHNIQUE_KIND_GENERALISE_AGE:
        return GeneraliseAge(band_years=message.band_years or 5)  # type: ignore[arg-type]
    if kind == pb.TECHNIQUE_KIND_GENERALISE_DATE:
        return GeneraliseDate(to=message.date_to or "month")  # type: ignore[arg-type]
    if kind == pb.TECHNIQUE_KIND_GENERALISE_ADDRESS:
        return GeneraliseAddress(keep_levels=message.keep_levels or 1)  # type: ignore[arg-type]
    if kind == pb.TECHNIQUE_KIND_GENERALISE_POSTCODE:
        return GeneralisePostcode(keep_digits=message.keep_digits or 3)
    names = pb.TechniqueKind.DESCRIPTOR.values_by_name
    allowed = ", ".join(n for n in names if not n.endswith("UNSPECIFIED"))
    raise InvalidArgument.single(f"{at}.kind", f"must be one of {allowed}, got {kind}")


def policy_from_proto(request: svc.DeidentifyRecordsRequest) -> DeidentificationPolicy:
    schema = RecordSchema(
        tuple(
            FieldLabel(
                label.name,
                enum_from_proto(label.role, pb.FieldRole, FieldRole, f"schema[{i}].role"),
                enum_from_proto(label.kind, pb.FieldKind, FieldKind, f"schema[{i}].kind"),
            )
            for i, label in enumerate(request.schema)
        )
    )
    techniques = {
        name: _technique_from_proto(technique, f"techniques.{name}")
        for name, technique in request.techniques.items()
    }
    return DeidentificationPolicy(schema, techniques)


def _plain(value: object) -> object:
    # JSON has one number type; a whole number is an age or a count, not a measurement.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def records_from_proto(records) -> list[dict[str, object]]:
    return [
        {name: _plain(value) for name, value in json_format.MessageToDict(record).items()}
        for record in records
    ]


def record_to_struct(record: dict[str, object]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(record)
    return message


def group_to_proto(group: Group) -> pb.QuasiIdentifierGroup:
    return pb.QuasiIdentifierGroup(
        values={
            name: "" if value is None else str(value)
            for name, value in zip(group.quasi_identifiers, group.values, strict=True)
        },
        size=group.size,
    )
