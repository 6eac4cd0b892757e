"""Domain objects to and from medcloud.backup.v1 messages: what etcd stores and the API returns."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from medcloud.backup.app.ports import SnapshotInfo
from medcloud.backup.domain.drills import Drill, SystemDrillResult
from medcloud.backup.domain.failover import (
    Failover,
    Step,
    StepFailure,
    StepRecord,
    SystemProgress,
    Trigger,
    TriggerKind,
    phase_of,
)
from medcloud.backup.domain.plans import (
    Centre,
    DrPlan,
    Link,
    PlanStep,
    ProtectionPolicy,
    RegionFacts,
    Target,
    TargetKind,
)
from medcloud.backup.domain.protection import ActiveCopy, Endpoint, ProtectedSystem
from medcloud.backup.domain.tiers import MAX_TIER, MIN_TIER, profile
from medcloud.backup.v1 import backup_events_pb2 as events_pb
from medcloud.backup.v1 import backup_pb2 as pb
from medcloud.common.v1.audit_entry_pb2 import AuditEntry
from medcloud.runtime.proto_enums import enum_from_proto, enum_to_proto


def _timestamp(at: datetime | None) -> timestamp_pb2.Timestamp | None:
    if at is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(at)
    return stamp


def _datetime(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


# -- region facts ---------------------------------------------------------------------------------


def facts_to_pb(facts: RegionFacts) -> pb.RegionFacts:
    return pb.RegionFacts(
        centres=[pb.Centre(id=c.id, city=c.city, province=c.province) for c in facts.centres],
        links=[
            pb.Link(
                a_centre_id=link.a,
                b_centre_id=link.b,
                bandwidth_gbps=link.bandwidth_gbps,
                distance_km=link.distance_km,
                up=link.up,
            )
            for link in facts.links
        ],
    )


def facts_from_pb(message: pb.RegionFacts) -> RegionFacts:
    return RegionFacts(
        tuple(Centre(c.id, c.city, c.province) for c in message.centres),
        tuple(
            Link(link.a_centre_id, link.b_centre_id, link.bandwidth_gbps, link.distance_km, link.up)
            for link in message.links
        ),
    )


# -- protection -----------------------------------------------------------------------------------


def _endpoint_to_pb(endpoint: Endpoint) -> pb.Endpoint:
    return pb.Endpoint(
        centre_id=endpoint.centre_id,
        cluster=endpoint.cluster,
        namespace=endpoint.namespace,
        workload=endpoint.workload,
    )


def _endpoint_from_pb(message: pb.Endpoint) -> Endpoint:
    return Endpoint(message.centre_id, message.cluster, message.namespace, message.workload)


def system_to_pb(system: ProtectedSystem) -> pb.ProtectedSystem:
    policy = system.policy
    message = pb.ProtectedSystem(
        hospital_id=system.hospital_id,
        system_id=policy.system_id,
        tier=policy.tier,
        rpo_seconds=policy.rpo_seconds,
        rto_seconds=policy.rto_seconds,
        backup_schedule_seconds=policy.backup_schedule_seconds,
        retention_days=policy.retention_days,
        targets=[
            pb.Target(kind=enum_to_proto(t.kind, pb.TargetKind), centre_id=t.centre_id)
            for t in policy.targets
        ],
        write_rate_mbps=system.write_rate_mbps,
        depends_on=sorted(system.depends_on),
        driver=system.driver,
        primary=_endpoint_to_pb(system.primary),
        standby=_endpoint_to_pb(system.standby),
        active=enum_to_proto(system.active, pb.ActiveCopy),
        generation=system.generation,
        copies_scheduled=system.copies_scheduled,
        schedule_status=system.schedule_status,
    )
    if MIN_TIER <= policy.tier <= MAX_TIER:
        tier = profile(policy.tier)
        message.gbt20988_level = tier.gbt20988_level or 0
        message.replication_mode = tier.mode.value
    return message


def system_from_pb(message: pb.ProtectedSystem) -> ProtectedSystem:
    """Reads a request or a stored record; unset enums are left for validation to name."""
    targets = tuple(
        Target(
            enum_from_proto(t.kind, pb.TargetKind, TargetKind, "system.targets.kind"), t.centre_id
        )
        for t in message.targets
    )
    policy = ProtectionPolicy(
        system_id=message.system_id,
        tier=message.tier,
        rpo_seconds=message.rpo_seconds,
        rto_seconds=message.rto_seconds,
        backup_schedule_seconds=message.backup_schedule_seconds,
        retention_days=message.retention_days,
        targets=targets,
    )
    active = (
        enum_from_proto(message.active, pb.ActiveCopy, ActiveCopy, "system.active")
        if message.active
        else ActiveCopy.PRIMARY
    )
    return ProtectedSystem(
        hospital_id=message.hospital_id,
        policy=policy,
        depends_on=frozenset(message.depends_on),
        driver=message.driver,
        primary=_endpoint_from_pb(message.primary),
        standby=_endpoint_from_pb(message.standby),
        write_rate_mbps=message.write_rate_mbps,
        active=active,
        generation=message.generation,
        copies_scheduled=message.copies_scheduled,
        schedule_status=message.schedule_status,
    )


# -- failovers ------------------------------------------------------------------------------------


def _record_to_pb(record: StepRecord) -> pb.StepRecord:
    return pb.StepRecord(step=record.step.value, at=_timestamp(record.at))


def _record_from_pb(message: pb.StepRecord) -> StepRecord:
    return StepRecord(Step(message.step), _datetime(message.at))


def failover_to_pb(failover: Failover) -> pb.Failover:
    systems = []
    for plan_step, progress in zip(failover.plan.steps, failover.system_states, strict=True):
        message = pb.SystemProgress(
            system_id=progress.system_id,
            depends_on=sorted(plan_step.depends_on),
            done=[_record_to_pb(r) for r in progress.done],
            undone=[_record_to_pb(r) for r in progress.undone],
            state=failover.state_of(progress.system_id).value,
            lag_seconds=progress.lag_seconds if progress.lag_seconds is not None else -1.0,
        )
        if progress.failure is not None:
            message.failed.CopyFrom(
                _record_to_pb(StepRecord(progress.failure.step, progress.failure.at))
            )
            message.failure_reason = progress.failure.reason
        systems.append(message)
    message = pb.Failover(
        id=failover.id,
        hospital_id=failover.plan.hospital_id,
        trigger_kind=enum_to_proto(failover.trigger.kind, pb.TriggerKind),
        trigger_event_id=failover.trigger.event_id,
        started_at=_timestamp(failover.started_at),
        systems=systems,
        phase=enum_to_proto(phase_of(failover), pb.FailoverPhase),
        failback=failover.failback,
        dry_run=failover.dry_run,
        failed_centre_id=failover.failed_centre_id,
    )
    if failover.finished_at is not None:
        message.finished_at.CopyFrom(_timestamp(failover.finished_at))
    return message


def failover_from_pb(message: pb.Failover) -> Failover:
    plan = DrPlan(
        message.hospital_id,
        tuple(PlanStep(s.system_id, frozenset(s.depends_on)) for s in message.systems),
    )
    states = tuple(
        SystemProgress(
            system_id=s.system_id,
            done=tuple(_record_from_pb(r) for r in s.done),
            failure=(
                StepFailure(Step(s.failed.step), _datetime(s.failed.at), s.failure_reason)
                if s.HasField("failed")
                else None
            ),
            undone=tuple(_record_from_pb(r) for r in s.undone),
            lag_seconds=s.lag_seconds if s.lag_seconds >= 0 else None,
        )
        for s in message.systems
    )
    return Failover(
        id=message.id,
        plan=plan,
        system_states=states,
        trigger=Trigger(
            enum_from_proto(message.trigger_kind, pb.TriggerKind, TriggerKind, "trigger_kind"),
            message.trigger_event_id,
        ),
        started_at=_datetime(message.started_at),
        failback=message.failback,
        dry_run=message.dry_run,
        failed_centre_id=message.failed_centre_id,
        finished_at=_datetime(message.finished_at) if message.HasField("finished_at") else None,
    )


# -- drills and snapshots -------------------------------------------------------------------------


def drill_to_pb(drill: Drill) -> pb.Drill:
    rpo = drill.measured_rpo_seconds
    return pb.Drill(
        id=drill.id,
        hospital_id=drill.hospital_id,
        dry_run=drill.dry_run,
        failover_id=drill.failover_id,
        started_at=_timestamp(drill.started_at),
        finished_at=_timestamp(drill.finished_at),
        measured_rto_seconds=drill.measured_rto_seconds,
        measured_rpo_seconds=-1.0 if rpo is None else rpo,
        passed=drill.passed,
        systems=[
            pb.SystemDrillResult(
                system_id=s.system_id,
                rto_target_seconds=s.rto_target_seconds,
                rpo_target_seconds=s.rpo_target_seconds,
                measured_rto_seconds=s.measured_rto_seconds,
                measured_rpo_seconds=-1.0
                if s.measured_rpo_seconds is None
                else s.measured_rpo_seconds,
                met=s.met,
            )
            for s in drill.systems
        ],
        summary=drill.summary(),
    )


def drill_from_pb(message: pb.Drill) -> Drill:
    return Drill(
        id=message.id,
        hospital_id=message.hospital_id,
        dry_run=message.dry_run,
        failover_id=message.failover_id,
        started_at=_datetime(message.started_at),
        finished_at=_datetime(message.finished_at),
        systems=tuple(
            SystemDrillResult(
                s.system_id,
                s.rto_target_seconds,
                s.rpo_target_seconds,
                s.measured_rto_seconds,
                None if s.measured_rpo_seconds < 0 else s.measured_rpo_seconds,
                s.met,
            )
            for s in message.systems
        ),
        # A stored drill that did not pass with every target met did not complete.
        completed=message.passed or all(s.met for s in message.systems),
    )


def snapshot_to_pb(info: SnapshotInfo) -> pb.ControlPlaneSnapshot:
    return pb.ControlPlaneSnapshot(
        name=info.name,
        size_bytes=info.size_bytes,
        sha256=info.sha256,
        revision=info.revision,
        taken_at=_timestamp(datetime.fromtimestamp(info.taken_at_unix, UTC)),
    )


class _MessageCodec:
    def __init__(self, message_type, to_pb, from_pb) -> None:  # type: ignore[no-untyped-def]
        self._type, self._to_pb, self._from_pb = message_type, to_pb, from_pb

    def encode(self, value: object) -> bytes:
        return self._to_pb(value).SerializeToString(deterministic=True)

    def decode(self, data: bytes):  # type: ignore[no-untyped-def]
        return self._from_pb(self._type.FromString(data))


FACTS_CODEC = _MessageCodec(pb.RegionFacts, facts_to_pb, facts_from_pb)
SYSTEM_CODEC = _MessageCodec(pb.ProtectedSystem, system_to_pb, system_from_pb)
FAILOVER_CODEC = _MessageCodec(pb.Failover, failover_to_pb, failover_from_pb)
DRILL_CODEC = _MessageCodec(pb.Drill, drill_to_pb, drill_from_pb)


class ProtobufBackupEvents:
    """The BackupEvents port in medcloud.backup.v1 messages."""

    def failover_started(self, failover: Failover) -> events_pb.FailoverStarted:
        return events_pb.FailoverStarted(failover=failover_to_pb(failover))

    def failover_completed(self, failover: Failover) -> events_pb.FailoverCompleted:
        return events_pb.FailoverCompleted(failover=failover_to_pb(failover))

    def failover_failed(self, failover: Failover, reason: str) -> events_pb.FailoverFailed:
        return events_pb.FailoverFailed(failover=failover_to_pb(failover), reason=reason)

    def system_repointed(
        self, failover: Failover, system: ProtectedSystem
    ) -> events_pb.SystemRepointed:
        return events_pb.SystemRepointed(
            failover_id=failover.id,
            hospital_id=system.hospital_id,
            system_id=system.system_id,
            serving=_endpoint_to_pb(system.serving()),
        )

    def drill_completed(self, drill: Drill) -> events_pb.DrillCompleted:
        return events_pb.DrillCompleted(drill=drill_to_pb(drill))

    def drill_evidence(self, drill: Drill) -> AuditEntry:
        rpo = drill.measured_rpo_seconds
        detail = {
            "hospital": drill.hospital_id,
            "failover": drill.failover_id,
            "dry_run": str(drill.dry_run).lower(),
            "measured_rto_seconds": f"{drill.measured_rto_seconds:.3f}",
            "measured_rpo_seconds": "unmeasured" if rpo is None else f"{rpo:.3f}",
            "summary": drill.summary(),
        }
        for result in drill.systems:
            detail[f"system.{result.system_id}"] = (
                f"rto {result.measured_rto_seconds:.3f}/{result.rto_target_seconds} s, "
                f"{'met' if result.met else 'missed'}"
            )
        return AuditEntry(
            actor="backup",
            roles=["service"],
            action="backup.drill.record",
            target=drill.id,
            outcome="passed" if drill.passed else "failed",
            detail=detail,
            occurred_at=_timestamp(drill.finished_at),
        )

    def backup_completed(self, snapshot: SnapshotInfo) -> events_pb.BackupCompleted:
        return events_pb.BackupCompleted(snapshot=snapshot_to_pb(snapshot))

    def backup_failed(self, reason: str) -> events_pb.BackupFailed:
        return events_pb.BackupFailed(reason=reason)
