"""Failover as a durable state machine: each system fences its primary, promotes its standby,
repoints, verifies and records, in dependency order, with every step recorded exactly once."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime

from medcloud.backup.domain.plans import DrPlan, ProtectionPolicy
from medcloud.backup.domain.tiers import SAME_CITY_ACTIVE_ACTIVE_TIER
from medcloud.core.errors import FailedPrecondition, NotFound


class Step(enum.Enum):
    """The steps of one system's failover, in the order they run."""

    # Stop the old primary from taking writes first, so two primaries never diverge (split brain).
    FENCE_PRIMARY = "fence-primary"
    PROMOTE_STANDBY = "promote-standby"
    REPOINT = "repoint"
    VERIFY = "verify"
    # The evidence that the failover (or drill) happened and how long it took.
    RECORD = "record"


STEPS = tuple(Step)
# Steps whose effect a rollback undoes, latest first; VERIFY only reads and RECORD is evidence that
# stays.
UNDOABLE_STEPS = (Step.FENCE_PRIMARY, Step.PROMOTE_STANDBY, Step.REPOINT)


class FailoverState(enum.Enum):
    """Where one system stands: the step it runs next, or how it ended."""

    FENCE_PRIMARY = "fence-primary"
    PROMOTE_STANDBY = "promote-standby"
    REPOINT = "repoint"
    VERIFY = "verify"
    RECORD = "record"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"


class TriggerKind(enum.Enum):
    SITE_DOWN = "site-down"
    MANUAL = "manual"
    DRILL = "drill"


@dataclass(frozen=True)
class Trigger:
    """What started a failover: for SITE_DOWN the event's id, otherwise the request's id, which
    makes a retried request find the failover it started the first time."""

    kind: TriggerKind
    event_id: str


@dataclass(frozen=True)
class StepRecord:
    step: Step
    at: datetime


@dataclass(frozen=True)
class StepFailure:
    step: Step
    at: datetime
    reason: str


@dataclass(frozen=True)
class SystemProgress:
    """What has happened to one system; its state is derived from this, never stored beside it, so
    the persisted record cannot disagree with itself."""

    system_id: str
    done: tuple[StepRecord, ...] = ()
    failure: StepFailure | None = None
    undone: tuple[StepRecord, ...] = ()
    # What the standby lacked when the primary was fenced, when the driver could tell.
    lag_seconds: float | None = None

    def has_done(self, step: Step) -> bool:
        return any(record.step is step for record in self.done)

    def has_undone(self, step: Step) -> bool:
        return any(record.step is step for record in self.undone)

    @property
    def next_step(self) -> Step | None:
        """The first step not done yet; None once all five are."""
        return STEPS[len(self.done)] if len(self.done) < len(STEPS) else None

    @property
    def pending_undo(self) -> Step | None:
        """The latest undoable step done and not yet undone."""
        return next(
            (
                step
                for step in reversed(UNDOABLE_STEPS)
                if self.has_done(step) and not self.has_undone(step)
            ),
            None,
        )


@dataclass(frozen=True)
class Action:
    """Run `step` for `system_id`, or undo it when `undo` is set."""

    system_id: str
    step: Step
    undo: bool = False


@dataclass(frozen=True)
class Failover:
    """One failover of a hospital's plan; `system_states` follows the plan's order."""

    id: str
    plan: DrPlan
    system_states: tuple[SystemProgress, ...]
    trigger: Trigger
    started_at: datetime
    # From the standby back to the primary.
    failback: bool = False
    # A drill that changes nothing and only proves each step could run.
    dry_run: bool = False
    # The centre that was lost (SiteDown).
    failed_centre_id: str = ""
    finished_at: datetime | None = None

    def progress(self, system_id: str) -> SystemProgress:
        for progress in self.system_states:
            if progress.system_id == system_id:
                return progress
        raise NotFound("system in failover", system_id)

    @property
    def rolling_back(self) -> bool:
        """A failed step anywhere turns the whole failover back: a half-failed-over hospital has
        applications on one site talking to databases on the other."""
        return any(progress.failure is not None for progress in self.system_states)

    def state_of(self, system_id: str) -> FailoverState:
        progress = self.progress(system_id)
        if progress.failure is not None:
            return FailoverState.FAILED if progress.pending_undo else FailoverState.ROLLED_BACK
        if self.rolling_back and progress.pending_undo is None:
            return FailoverState.ROLLED_BACK
        step = progress.next_step
        return FailoverState.COMPLETED if step is None else FailoverState(step.value)

    def dependents_of(self, system_id: str) -> list[str]:
        return [s.system_id for s in self.plan.steps if system_id in s.depends_on]

    def _with(self, progress: SystemProgress) -> Failover:
        return dataclasses.replace(
            self,
            system_states=tuple(
                progress if p.system_id == progress.system_id else p for p in self.system_states
            ),
        )


def failover_id_for(trigger_event_id: str, hospital_id: str) -> str:
    """The failover's id, derived from what triggered it: the same SiteDown delivered twice names
    the same failover, so the second delivery finds the first instead of starting another."""
    digest = hashlib.sha256(f"{hospital_id}\n{trigger_event_id}".encode()).hexdigest()
    return f"fo-{digest[:20]}"


def start_failover(
    plan: DrPlan,
    trigger: Trigger,
    started_at: datetime,
    *,
    failback: bool = False,
    dry_run: bool = False,
    failed_centre_id: str = "",
) -> Failover:
    return Failover(
        id=failover_id_for(trigger.event_id, plan.hospital_id),
        plan=plan,
        system_states=tuple(SystemProgress(step.system_id) for step in plan.steps),
        trigger=trigger,
        started_at=started_at,
        failback=failback,
        dry_run=dry_run,
        failed_centre_id=failed_centre_id,
    )


class Phase(enum.Enum):
    RUNNING = "running"
    COMPLETED = "completed"
    ROLLING_BACK = "rolling-back"
    ROLLED_BACK = "rolled-back"


def phase_of(failover: Failover) -> Phase:
    if is_complete(failover):
        return Phase.COMPLETED
    if is_rolled_back(failover):
        return Phase.ROLLED_BACK
    return Phase.ROLLING_BACK if failover.rolling_back else Phase.RUNNING


def finished(failover: Failover, at: datetime) -> Failover:
    """Stamps the end once; a finished failover keeps its first end time."""
    if failover.finished_at is not None:
        return failover
    return dataclasses.replace(failover, finished_at=at)


def with_lag(failover: Failover, system_id: str, lag_seconds: float | None) -> Failover:
    if lag_seconds is None:
        return failover
    progress = failover.progress(system_id)
    return failover._with(dataclasses.replace(progress, lag_seconds=lag_seconds))


def failure_summary(failover: Failover) -> str:
    """Which system failed at which step, and why (the first failure, in plan order)."""
    for progress in failover.system_states:
        if progress.failure is not None:
            return (
                f"{progress.system_id} failed at {progress.failure.step.value}: "
                f"{progress.failure.reason}"
            )
    return ""


def automatic_on_site_down(policy: ProtectionPolicy) -> bool:
    """Only tiers 5 and up fail over without a person deciding (R-7.6b recovery in minutes or
    seconds, R-7.6c automatic failover); below that an operator starts it."""
    return policy.tier >= SAME_CITY_ACTIVE_ACTIVE_TIER


def next_actions(failover: Failover) -> list[Action]:
    """The forward steps that may run now, in plan order: a system's next step once everything it
    depends on has COMPLETED; none while the failover rolls back."""
    if failover.rolling_back:
        return []
    actions = []
    for plan_step in failover.plan.steps:
        step = failover.progress(plan_step.system_id).next_step
        if step is not None and all(
            failover.state_of(dep) is FailoverState.COMPLETED for dep in plan_step.depends_on
        ):
            actions.append(Action(plan_step.system_id, step))
    return actions


def rollback_actions(failover: Failover) -> list[Action]:
    """The undo steps that may run now once a step has failed, in reverse plan order: a system's
    latest undoable step, once every system depending on it has nothing left to undo."""
    if not failover.rolling_back:
        return []
    actions = []
    for plan_step in reversed(failover.plan.steps):
        step = failover.progress(plan_step.system_id).pending_undo
        if step is not None and not _dependents_still_undoing(failover, plan_step.system_id):
            actions.append(Action(plan_step.system_id, step, undo=True))
    return actions


def _dependents_still_undoing(failover: Failover, system_id: str) -> list[str]:
    return [
        dependent
        for dependent in failover.dependents_of(system_id)
        if failover.progress(dependent).pending_undo is not None
    ]


def record_step_done(failover: Failover, system_id: str, step: Step, at: datetime) -> Failover:
    """The failover with `step` done for `system_id`; the same failover, unchanged, if it was done
    already (a redelivered event or a resumed service must not advance twice)."""
    progress = failover.progress(system_id)
    if progress.has_done(step):
        return failover
    if progress.failure is not None or progress.undone:
        raise FailedPrecondition(
            f"failover {failover.id}: {system_id} is rolling back, {step.value} cannot complete"
        )
    if step is not progress.next_step:
        raise FailedPrecondition(
            f"failover {failover.id}: {system_id} is at {failover.state_of(system_id).value}, "
            f"not {step.value}; steps run " + " -> ".join(s.value for s in STEPS)
        )
    # A step already under way when another system failed still happened and is recorded, so the
    # rollback undoes it; outside a rollback the dependency gate must hold.
    if not failover.rolling_back:
        plan_step = failover.plan.step(system_id)
        assert plan_step is not None
        waiting = sorted(
            dep
            for dep in plan_step.depends_on
            if failover.state_of(dep) is not FailoverState.COMPLETED
        )
        if waiting:
            raise FailedPrecondition(
                f"failover {failover.id}: {system_id} waits for {', '.join(waiting)} to complete"
            )
    return failover._with(
        dataclasses.replace(progress, done=(*progress.done, StepRecord(step, at)))
    )


def record_step_failed(
    failover: Failover, system_id: str, step: Step, at: datetime, reason: str
) -> Failover:
    """The failover with `system_id` FAILED at `step`, which turns it to rolling back; unchanged if
    that failure is recorded already (the first reason stands)."""
    progress = failover.progress(system_id)
    if progress.failure is not None:
        if progress.failure.step is step:
            return failover
        raise FailedPrecondition(
            f"failover {failover.id}: {system_id} already failed at {progress.failure.step.value}"
        )
    if step is not progress.next_step:
        raise FailedPrecondition(
            f"failover {failover.id}: {system_id} is at {failover.state_of(system_id).value}, "
            f"so {step.value} cannot have failed"
        )
    return failover._with(dataclasses.replace(progress, failure=StepFailure(step, at, reason)))


def record_step_undone(failover: Failover, system_id: str, step: Step, at: datetime) -> Failover:
    """The failover with `step` of `system_id` undone; unchanged if it was undone already."""
    progress = failover.progress(system_id)
    if progress.has_undone(step):
        return failover
    if not failover.rolling_back:
        raise FailedPrecondition(f"failover {failover.id} is not rolling back")
    if step is not progress.pending_undo:
        pending = progress.pending_undo
        raise FailedPrecondition(
            f"failover {failover.id}: {system_id} has "
            + (f"{pending.value} to undo next" if pending else "nothing to undo")
            + f", not {step.value}"
        )
    dependents = _dependents_still_undoing(failover, system_id)
    if dependents:
        raise FailedPrecondition(
            f"failover {failover.id}: {system_id} waits for {', '.join(dependents)} to roll back"
        )
    return failover._with(
        dataclasses.replace(progress, undone=(*progress.undone, StepRecord(step, at)))
    )


def is_complete(failover: Failover) -> bool:
    return all(
        failover.state_of(p.system_id) is FailoverState.COMPLETED for p in failover.system_states
    )


def is_rolled_back(failover: Failover) -> bool:
    return failover.rolling_back and all(p.pending_undo is None for p in failover.system_states)
