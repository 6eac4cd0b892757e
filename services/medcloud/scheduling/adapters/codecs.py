"""Mapping between scheduling's domain objects and its protobuf messages, on the wire and in etcd."""

from __future__ import annotations

from typing import Any

from medcloud.common.v1 import data_classification_pb2 as common_pb
from medcloud.runtime.proto_enums import enum_from_proto, enum_to_proto
from medcloud.scheduling.app.ports import Degraded, PlacementRecord
from medcloud.scheduling.domain import model
from medcloud.scheduling.domain.placement import (
    Assignment,
    Decision,
    Explanation,
    InstanceExplanation,
    Refusal,
    Removal,
)
from medcloud.scheduling.domain.rules import RuleRef
from medcloud.scheduling.v1 import scheduling_events_pb2 as events_pb
from medcloud.scheduling.v1 import scheduling_pb2 as pb


def system_from_proto(message: pb.BusinessSystem) -> model.BusinessSystem:
    return model.BusinessSystem(
        id=message.id,
        kind=enum_from_proto(message.kind, pb.SystemKind, model.SystemKind, "system.kind"),
        roles=roles_from_proto(message.roles),
        vcpu=message.vcpu,
        memory_gib=message.memory_gib,
        classification=enum_from_proto(
            message.classification,
            common_pb.DataClassification,
            model.DataClassification,
            "system.classification",
        ),
        dr_tier=message.dr_tier,
        storage_gib=message.storage_gib,
        storage_class=(
            enum_from_proto(
                message.storage_class, pb.StorageClass, model.StorageClass, "system.storage_class"
            )
            if message.storage_class
            else None
        ),
        preferences=model.Preferences(
            centre_ids=frozenset(message.preferences.centre_ids),
            cities=frozenset(message.preferences.cities),
        ),
    )


def roles_from_proto(messages: Any) -> tuple[model.RoleCount, ...]:
    return tuple(
        model.RoleCount(
            enum_from_proto(r.role, pb.Role, model.Role, f"system.roles[{i}].role"), r.count
        )
        for i, r in enumerate(messages)
    )


def system_to_proto(system: model.BusinessSystem) -> pb.BusinessSystem:
    return pb.BusinessSystem(
        id=system.id,
        kind=enum_to_proto(system.kind, pb.SystemKind),
        roles=[
            pb.RoleCount(role=enum_to_proto(r.role, pb.Role), count=r.count) for r in system.roles
        ],
        vcpu=system.vcpu,
        memory_gib=system.memory_gib,
        storage_class=enum_to_proto(system.storage_class, pb.StorageClass)
        if system.storage_class
        else 0,
        storage_gib=system.storage_gib,
        classification=enum_to_proto(system.classification, common_pb.DataClassification),
        dr_tier=system.dr_tier,
        preferences=pb.Preferences(
            centre_ids=sorted(system.preferences.centre_ids),
            cities=sorted(system.preferences.cities),
        ),
    )


def _instance_to_proto(instance: model.Instance) -> pb.Instance:
    return pb.Instance(role=enum_to_proto(instance.role, pb.Role), index=instance.index)


def _instance_from_proto(system_id: str, message: pb.Instance) -> model.Instance:
    return model.Instance(
        system_id, enum_from_proto(message.role, pb.Role, model.Role, "role"), message.index
    )


def _removals_to_proto(removals: Any) -> list[pb.RuleRemovals]:
    return [
        pb.RuleRemovals(
            requirement_id=rule.requirement_id,
            rule=rule.name,
            hosts=[pb.HostReason(host_id=r.host_id, reason=r.reason) for r in found],
        )
        for rule, found in removals.items()
    ]


def _removals_from_proto(messages: Any) -> dict[RuleRef, tuple[Removal, ...]]:
    return {
        RuleRef(m.requirement_id, m.rule): tuple(Removal(h.host_id, h.reason) for h in m.hosts)
        for m in messages
    }


def _scores_to_proto(scores: Any) -> dict[str, float]:
    return {str(rule): score for rule, score in scores.items()}


def _assignment_to_proto(a: Assignment) -> pb.Assignment:
    return pb.Assignment(
        instance=_instance_to_proto(a.instance),
        host_id=a.host_id,
        pool_id=a.pool_id,
        centre_id=a.centre_id,
        scores=_scores_to_proto(a.scores),
        total_score=a.total_score,
    )


def _assignment_from_proto(system_id: str, a: pb.Assignment) -> Assignment:
    return Assignment(
        instance=_instance_from_proto(system_id, a.instance),
        host_id=a.host_id,
        pool_id=a.pool_id,
        centre_id=a.centre_id,
        scores={_rule_from_text(k): v for k, v in a.scores.items()},
        total_score=a.total_score,
    )


def record_to_proto(record: PlacementRecord) -> pb.Placement:
    outcome = record.outcome
    if isinstance(outcome, Decision):
        state, explanation, message = pb.PLACEMENT_STATE_PLACED, outcome.explanation, ""
    elif isinstance(outcome, Degraded):
        refusal = outcome.refusal
        state, explanation, message = (
            pb.PLACEMENT_STATE_DEGRADED,
            refusal.explanation,
            refusal.message,
        )
    else:
        state, explanation, message = (
            pb.PLACEMENT_STATE_FAILED,
            outcome.explanation,
            outcome.message,
        )
    return pb.Placement(
        system=system_to_proto(record.system),
        state=state,
        assignments=[_assignment_to_proto(a) for a in record.running],
        explanation=[
            pb.InstanceExplanation(
                instance=_instance_to_proto(e.instance),
                removed=_removals_to_proto(e.removed),
                relaxed=_removals_to_proto(e.relaxed),
                chosen_host_id=e.chosen_host_id,
                summary=e.summary(),
            )
            for e in explanation.instances
        ],
        message=message,
        generation=record.generation,
    )


def record_from_proto(message: pb.Placement) -> PlacementRecord:
    system = system_from_proto(message.system)
    explanation = Explanation(
        tuple(
            InstanceExplanation(
                instance=_instance_from_proto(system.id, e.instance),
                removed=_removals_from_proto(e.removed),
                relaxed=_removals_from_proto(e.relaxed),
                chosen_host_id=e.chosen_host_id,
            )
            for e in message.explanation
        )
    )
    assignments = tuple(_assignment_from_proto(system.id, a) for a in message.assignments)
    outcome: Decision | Refusal | Degraded
    if message.state == pb.PLACEMENT_STATE_PLACED:
        outcome = Decision(system.id, assignments, explanation)
    else:
        failed = next(e for e in explanation.instances if not e.chosen_host_id)
        outcome = Refusal(system.id, failed.instance, explanation)
        if message.state == pb.PLACEMENT_STATE_DEGRADED:
            outcome = Degraded(assignments, outcome)
    return PlacementRecord(system, outcome, message.generation)


def _rule_from_text(text: str) -> RuleRef:
    requirement, _, name = text.partition(" ")
    return RuleRef(requirement, name) if requirement.startswith("R-") else RuleRef("", text)


class PlacementCodec:
    def encode(self, record: PlacementRecord) -> bytes:
        return record_to_proto(record).SerializeToString(deterministic=True)

    def decode(self, data: bytes) -> PlacementRecord:
        return record_from_proto(pb.Placement.FromString(data))


class ProtobufPlacementEvents:
    def decided(self, record: PlacementRecord) -> events_pb.PlacementDecided:
        return events_pb.PlacementDecided(placement=record_to_proto(record))

    def failed(self, record: PlacementRecord) -> events_pb.PlacementFailed:
        return events_pb.PlacementFailed(placement=record_to_proto(record))

    def degraded(self, record: PlacementRecord) -> events_pb.PlacementDegraded:
        return events_pb.PlacementDegraded(placement=record_to_proto(record))

    def released(self, system_id: str) -> events_pb.PlacementReleased:
        return events_pb.PlacementReleased(system_id=system_id)
