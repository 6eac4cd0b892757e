from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from medcloud.backup.domain.failover import (
    STEPS,
    Action,
    Failover,
    FailoverState,
    Step,
    Trigger,
    TriggerKind,
    automatic_on_site_down,
    failover_id_for,
    is_complete,
    is_rolled_back,
    next_actions,
    record_step_done,
    record_step_failed,
    record_step_undone,
    rollback_actions,
    start_failover,
)
from medcloud.backup.domain.plans import DrPlan, ProtectionPolicy
from medcloud.core.errors import FailedPrecondition

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SITE_DOWN = Trigger(TriggerKind.SITE_DOWN, "evt-site-down-1")


def plan() -> DrPlan:
    return DrPlan.build("h1", {"db": set(), "his": {"db"}, "portal": set()})


def started() -> Failover:
    return start_failover(plan(), SITE_DOWN, T0)


def run_all(failover: Failover, system_id: str, steps=STEPS) -> Failover:
    for minute, step in enumerate(steps):
        failover = record_step_done(failover, system_id, step, T0 + timedelta(minutes=minute))
    return failover


def test_systems_without_dependencies_start_together_and_dependents_wait():
    assert next_actions(started()) == [
        Action("db", Step.FENCE_PRIMARY),
        Action("portal", Step.FENCE_PRIMARY),
    ]


def test_steps_run_in_order():
    failover = started()
    for step in STEPS:
        assert Action("db", step) in next_actions(failover)
        assert failover.state_of("db") is FailoverState(step.value)
        failover = record_step_done(failover, "db", step, T0)
    assert failover.state_of("db") is FailoverState.COMPLETED


def test_a_step_out_of_order_is_refused():
    with pytest.raises(FailedPrecondition, match="db is at fence-primary, not repoint"):
        record_step_done(started(), "db", Step.REPOINT, T0)


def test_a_dependent_starts_only_once_its_dependency_has_completed():
    failover = run_all(started(), "db", STEPS[:-1])
    assert all(a.system_id != "his" for a in next_actions(failover))
    with pytest.raises(FailedPrecondition, match="his waits for db"):
        record_step_done(failover, "his", Step.FENCE_PRIMARY, T0)
    failover = record_step_done(failover, "db", Step.RECORD, T0)
    assert Action("his", Step.FENCE_PRIMARY) in next_actions(failover)


def test_recording_a_step_twice_changes_nothing():
    once = record_step_done(started(), "db", Step.FENCE_PRIMARY, T0)
    twice = record_step_done(once, "db", Step.FENCE_PRIMARY, T0 + timedelta(seconds=5))
    assert twice is once
    assert once.progress("db").done[0].at == T0


def test_the_whole_failover_completes_and_then_offers_nothing():
    failover = run_all(run_all(run_all(started(), "db"), "portal"), "his")
    assert is_complete(failover)
    assert next_actions(failover) == []
    assert rollback_actions(failover) == []


def test_resuming_from_any_persisted_state_gives_the_same_next_actions():
    failover = started()
    history = [failover]
    for system_id in ("db", "portal", "his"):
        for step in STEPS:
            failover = record_step_done(failover, system_id, step, T0)
            history.append(failover)
    for persisted in history:
        # What a restarted service reads back: the same fields, rebuilt from scratch.
        resumed = Failover(
            **{f.name: getattr(persisted, f.name) for f in dataclasses.fields(persisted)}
        )
        assert next_actions(resumed) == next_actions(persisted)
        # Replaying every event already applied (redelivery) leaves it unchanged.
        replayed = resumed
        for progress in persisted.system_states:
            for record in progress.done:
                replayed = record_step_done(replayed, progress.system_id, record.step, record.at)
        assert replayed == persisted


def test_a_failed_step_stops_forward_progress_and_offers_rollback_in_reverse_order():
    failover = run_all(started(), "db")
    failover = record_step_done(failover, "his", Step.FENCE_PRIMARY, T0)
    failover = record_step_done(failover, "his", Step.PROMOTE_STANDBY, T0)
    failover = record_step_failed(failover, "his", Step.REPOINT, T0, "DNS update timed out")
    assert failover.state_of("his") is FailoverState.FAILED
    assert next_actions(failover) == []
    # his is undone before the db it needs; portal never started and has nothing to undo.
    assert rollback_actions(failover) == [Action("his", Step.PROMOTE_STANDBY, undo=True)]
    assert failover.state_of("portal") is FailoverState.ROLLED_BACK
    with pytest.raises(FailedPrecondition, match="waits for his to roll back"):
        record_step_undone(failover, "db", Step.REPOINT, T0)

    expected = [
        Action("his", Step.PROMOTE_STANDBY, undo=True),
        Action("his", Step.FENCE_PRIMARY, undo=True),
        Action("db", Step.REPOINT, undo=True),
        Action("db", Step.PROMOTE_STANDBY, undo=True),
        Action("db", Step.FENCE_PRIMARY, undo=True),
    ]
    for action in expected:
        assert rollback_actions(failover) == [action]
        failover = record_step_undone(failover, action.system_id, action.step, T0)
        assert record_step_undone(failover, action.system_id, action.step, T0) is failover
    assert rollback_actions(failover) == []
    assert is_rolled_back(failover)
    assert not is_complete(failover)
    assert {failover.state_of(s) for s in ("db", "his", "portal")} == {FailoverState.ROLLED_BACK}


def test_recording_the_same_failure_twice_changes_nothing():
    failed = record_step_failed(started(), "db", Step.FENCE_PRIMARY, T0, "ipmi unreachable")
    assert record_step_failed(failed, "db", Step.FENCE_PRIMARY, T0, "again") is failed


def test_a_step_in_flight_when_another_system_failed_is_still_recorded_and_undone():
    failover = record_step_failed(started(), "portal", Step.FENCE_PRIMARY, T0, "fence failed")
    failover = record_step_done(failover, "db", Step.FENCE_PRIMARY, T0)
    assert rollback_actions(failover) == [Action("db", Step.FENCE_PRIMARY, undo=True)]


def test_the_same_trigger_maps_to_the_same_failover():
    assert failover_id_for("evt-1", "h1") == failover_id_for("evt-1", "h1")
    assert failover_id_for("evt-1", "h1") != failover_id_for("evt-2", "h1")
    assert failover_id_for("evt-1", "h1") != failover_id_for("evt-1", "h2")
    assert started().id == start_failover(plan(), SITE_DOWN, T0 + timedelta(minutes=1)).id


@pytest.mark.parametrize(
    ("tier", "automatic"), [(3, False), (4, False), (5, True), (6, True), (7, True)]
)
def test_only_tier_5_and_up_fail_over_on_their_own(tier, automatic):
    policy = ProtectionPolicy("his", tier, 0, 60, 3600, 90, ())
    assert automatic_on_site_down(policy) is automatic
