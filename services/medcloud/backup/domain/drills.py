"""A drill's evidence: per system, the recovery time and data loss actually achieved against the
targets the policy promised (R-7.6b, R-7.6c; MLPS and DR audits)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from medcloud.backup.domain.failover import Failover, Step, is_complete
from medcloud.backup.domain.protection import ProtectedSystem


@dataclass(frozen=True)
class SystemDrillResult:
    system_id: str
    rto_target_seconds: int
    rpo_target_seconds: int
    measured_rto_seconds: float
    # None when the driver could not measure what the standby lacked.
    measured_rpo_seconds: float | None
    met: bool


@dataclass(frozen=True)
class Drill:
    id: str
    hospital_id: str
    dry_run: bool
    failover_id: str
    started_at: datetime
    finished_at: datetime
    systems: tuple[SystemDrillResult, ...]
    completed: bool

    @property
    def measured_rto_seconds(self) -> float:
        return max((s.measured_rto_seconds for s in self.systems), default=0.0)

    @property
    def measured_rpo_seconds(self) -> float | None:
        measured = [
            s.measured_rpo_seconds for s in self.systems if s.measured_rpo_seconds is not None
        ]
        return max(measured) if measured else None

    @property
    def passed(self) -> bool:
        return self.completed and all(s.met for s in self.systems)

    def summary(self) -> str:
        kind = "dry-run drill" if self.dry_run else "drill"
        rpo = self.measured_rpo_seconds
        verdict = "passed" if self.passed else "FAILED"
        missed = [s.system_id for s in self.systems if not s.met]
        return (
            f"{kind} of {self.hospital_id} {verdict}: RTO {self.measured_rto_seconds:.3f} s, "
            f"RPO {'unmeasured' if rpo is None else f'{rpo:.3f} s'}"
            + (f"; targets missed by {', '.join(missed)}" if missed else "")
            + ("" if self.completed else "; the failover did not complete")
        )


def measure_drill(
    drill_id: str, failover: Failover, systems: dict[str, ProtectedSystem], finished_at: datetime
) -> Drill:
    """A system's RTO is from the drill's start until its standby verified serving; its RPO what
    the standby lacked when the primary was fenced."""
    results = []
    for progress in failover.system_states:
        verified = next((r.at for r in progress.done if r.step is Step.VERIFY), None)
        policy = systems[progress.system_id].policy
        rto = (verified - failover.started_at).total_seconds() if verified else float("inf")
        rpo = progress.lag_seconds
        met = (
            verified is not None
            and rto <= policy.rto_seconds
            and (rpo is None or rpo <= policy.rpo_seconds)
        )
        results.append(
            SystemDrillResult(
                progress.system_id, policy.rto_seconds, policy.rpo_seconds, rto, rpo, met
            )
        )
    return Drill(
        drill_id,
        failover.plan.hospital_id,
        failover.dry_run,
        failover.id,
        failover.started_at,
        finished_at,
        tuple(results),
        is_complete(failover),
    )
