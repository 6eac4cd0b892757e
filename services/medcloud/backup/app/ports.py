"""What the backup service's use cases need from the outside: drivers that move a system between
its primary and standby, and a store for control-plane snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from medcloud.backup.domain.drills import Drill
from medcloud.backup.domain.failover import Failover, Step, TriggerKind
from medcloud.backup.domain.plans import ProtectionPolicy
from medcloud.backup.domain.protection import Endpoint, ProtectedSystem, SystemCopies

__all__ = [
    "BackupEvents",
    "Endpoint",
    "RecoveryDriver",
    "SnapshotInfo",
    "SnapshotStore",
    "StepContext",
    "StepOutcome",
    "SystemCopies",
]


@dataclass(frozen=True)
class StepContext:
    """Why a step runs: `dry_run` (a drill that must change nothing, only prove each step could
    run) and whether the primary's site is known down (so an unreachable primary counts as
    fenced by isolation rather than as a failure)."""

    failover_id: str
    trigger: TriggerKind
    dry_run: bool = False
    primary_site_down: bool = False


@dataclass(frozen=True)
class StepOutcome:
    """How a step went. `lag_seconds` is what the standby had not yet received when the primary
    was fenced (a drill's measured RPO); None when the driver cannot tell."""

    ok: bool
    reason: str = ""
    lag_seconds: float | None = None


class RecoveryDriver(Protocol):
    """Moves one kind of system. Every call must be idempotent (setting a desired state, never
    toggling): a resumed failover may run a step again after a crash mid-step."""

    name: str

    async def run(self, step: Step, system: SystemCopies, context: StepContext) -> StepOutcome: ...

    async def undo(self, step: Step, system: SystemCopies, context: StepContext) -> StepOutcome: ...

    async def protect(self, system: SystemCopies, policy: ProtectionPolicy) -> StepOutcome:
        """Makes the policy's scheduled point-in-time copies of the serving copy
        (`system.primary`) exist, e.g. a Velero Schedule; idempotent."""
        ...


@dataclass(frozen=True)
class SnapshotInfo:
    """One control-plane snapshot in the backup centre's object store."""

    name: str
    path: Path
    size_bytes: int
    sha256: str
    revision: int
    taken_at_unix: float


class SnapshotStore(Protocol):
    """The control plane's own state: etcd snapshots kept in the backup centre's object store."""

    async def save(self) -> SnapshotInfo: ...

    def list(self) -> list[SnapshotInfo]: ...

    def prune(self, keep: int, max_age_seconds: float) -> list[SnapshotInfo]: ...


class BackupEvents(Protocol):
    """Builds the payloads the use cases publish through the outbox (wire types stay in the
    adapters)."""

    def failover_started(self, failover: Failover) -> Any: ...

    def failover_completed(self, failover: Failover) -> Any: ...

    def failover_failed(self, failover: Failover, reason: str) -> Any: ...

    def system_repointed(self, failover: Failover, system: ProtectedSystem) -> Any: ...

    def drill_completed(self, drill: Drill) -> Any: ...

    def drill_evidence(self, drill: Drill) -> Any:
        """The audit-trail entry that keeps the drill's measured RTO and RPO (R-7.5b)."""

    def backup_completed(self, snapshot: SnapshotInfo) -> Any: ...

    def backup_failed(self, reason: str) -> Any: ...
