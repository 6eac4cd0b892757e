"""Failover, failback and drills as the use cases run them, on real etcd and NATS, with a driver
that records what it was asked to move (the Kubernetes driver has its own tests)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter

import pytest

from medcloud.backup.adapters.codecs import (
    DRILL_CODEC,
    FACTS_CODEC,
    FAILOVER_CODEC,
    SYSTEM_CODEC,
    ProtobufBackupEvents,
)
from medcloud.backup.app.ports import StepContext, StepOutcome, SystemCopies
from medcloud.backup.app.recovery import BackupCollections, Recovery, StepRetry
from medcloud.backup.domain.failover import Phase, Step, Trigger, TriggerKind, phase_of
from medcloud.backup.domain.plans import (
    Centre,
    Link,
    ProtectionPolicy,
    RegionFacts,
    Target,
    TargetKind,
)
from medcloud.backup.domain.protection import ActiveCopy, Endpoint, ProtectedSystem
from medcloud.core.errors import FailedPrecondition, InvalidArgument
from medcloud.runtime.bus import EventBus, stream_name
from medcloud.runtime.outbox import Outbox
from tests.support.identities import connect_store

pytestmark = pytest.mark.integration

FACTS = RegionFacts(
    (
        Centre("gz-a", "Guangzhou", "Guangdong"),
        Centre("gz-b", "Guangzhou", "Guangdong"),
        Centre("fs", "Foshan", "Guangdong"),
        Centre("bj", "Beijing", "Beijing"),
    ),
    (
        Link("gz-a", "gz-b", 100, 30),
        Link("gz-a", "fs", 40, 40),
        Link("gz-a", "bj", 10, 2100),
    ),
)


def tier5(hospital: str, system: str, depends_on: frozenset[str] = frozenset()) -> ProtectedSystem:
    return ProtectedSystem(
        hospital_id=hospital,
        policy=ProtectionPolicy(
            system, 5, 60, 300, 3600, 30, (Target(TargetKind.SAME_CITY_DR, "gz-b"),)
        ),
        depends_on=depends_on,
        driver="recording",
        primary=Endpoint("gz-a", "hospital-private", hospital, system),
        standby=Endpoint("gz-b", "carrier-public", hospital, system),
        write_rate_mbps=200,
    )


class RecordingDriver:
    """Records each step it runs; fails the steps it is told to, every time."""

    name = "recording"

    def __init__(self, delay_seconds: float = 0.0) -> None:
        self.calls: list[tuple[str, str, bool]] = []
        self.failing: set[tuple[str, Step]] = set()
        self.delay_seconds = delay_seconds
        self.scheduled: list[tuple[str, str]] = []

    async def run(self, step: Step, system: SystemCopies, context: StepContext) -> StepOutcome:
        await asyncio.sleep(self.delay_seconds)
        self.calls.append((system.system_id, step.value, False))
        if (system.system_id, step) in self.failing:
            return StepOutcome(False, f"{step.value} refused by the test")
        lag = 0.25 if step is Step.FENCE_PRIMARY else None
        return StepOutcome(True, lag_seconds=lag)

    async def undo(self, step: Step, system: SystemCopies, context: StepContext) -> StepOutcome:
        self.calls.append((system.system_id, step.value, True))
        return StepOutcome(True)

    async def protect(self, system: SystemCopies, policy: ProtectionPolicy) -> StepOutcome:
        self.scheduled.append((system.system_id, system.primary.centre_id))
        return StepOutcome(
            True, f"copies of {system.system_id} scheduled in {system.primary.centre_id}"
        )


@pytest.fixture
async def wiring(etcd_server, nats_server, region):
    store = await connect_store(etcd_server.endpoint, region, "backup")
    bus = await EventBus.connect(nats_server.url, region, "backup")
    outbox = Outbox(store, bus)
    relay = asyncio.create_task(outbox.relay())
    driver = RecordingDriver()

    def make() -> Recovery:
        return Recovery(
            store,
            BackupCollections(
                store.collection("region-facts", FACTS_CODEC),
                store.collection("protections", SYSTEM_CODEC),
                store.collection("failovers", FAILOVER_CODEC),
                store.collection("drills", DRILL_CODEC),
            ),
            outbox,
            ProtobufBackupEvents(),
            {"recording": driver},
            StepRetry(attempts=2, backoff_seconds=0.01),
        )

    recovery = make()
    await recovery.set_region_facts(FACTS)
    yield recovery, driver, bus, make
    await recovery.stop()
    relay.cancel()
    await bus.close()
    await store.close()


async def _events(bus: EventBus, region: str, settle_seconds: float = 1.0) -> Counter[str]:
    """Every event type on backup's stream so far, counted."""
    await asyncio.sleep(settle_seconds)
    info = await bus.jetstream.stream_info(stream_name(region, "backup"))
    counts: Counter[str] = Counter()
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        message = await bus.jetstream.get_msg(stream_name(region, "backup"), sequence)
        counts[message.subject.rsplit(".", 1)[1]] += 1
    return counts


async def test_an_infeasible_tier_6_plan_is_refused_with_the_reason(wiring):
    recovery, *_ = wiring
    system = tier5("hospital-a", "emr")
    tier6 = dataclasses.replace(
        system,
        policy=ProtectionPolicy(
            "emr", 6, 0, 60, 3600, 30, (Target(TargetKind.OUT_OF_PROVINCE, "bj"),)
        ),
        standby=Endpoint("bj", "carrier-public", "hospital-a", "emr"),
    )
    with pytest.raises(InvalidArgument) as refused:
        await recovery.set_protection(tier6)
    fields = {v.field: v.description for v in refused.value.violations}
    assert "2100 km" in fields["system.targets[0].centre_id"]
    assert "synchronous" in fields["system.targets[0].centre_id"]
    assert await recovery.protections("hospital-a") == []  # nothing half-written


async def test_site_down_delivered_twice_fails_over_once_databases_first(wiring, region):
    recovery, driver, bus, _ = wiring
    await recovery.set_protection(tier5("hospital-a", "his-db"))
    await recovery.set_protection(tier5("hospital-a", "his", frozenset({"his-db"})))
    low = dataclasses.replace(
        tier5("hospital-a", "oa"),
        policy=ProtectionPolicy(
            "oa", 3, 3600, 43200, 3600, 30, (Target(TargetKind.SAME_CITY_DR, "gz-b"),)
        ),
    )
    await recovery.set_protection(low)

    first, second = await asyncio.gather(
        recovery.on_site_down("event-1", "gz-a"), recovery.on_site_down("event-1", "gz-a")
    )
    assert [f.id for f in first] == [f.id for f in second]
    done = await recovery.wait(first[0].id, 10)
    assert phase_of(done) is Phase.COMPLETED
    # Tier 3 waits for a person (R-7.6c automatic only for tier 5 and up).
    assert {p.system_id for p in done.system_states} == {"his-db", "his"}
    forward = [(s, step) for s, step, undo in driver.calls if not undo]
    assert Counter(forward) == Counter(
        (system, step.value) for system in ("his-db", "his") for step in Step
    )
    assert forward.index(("his-db", "verify")) < forward.index(("his", "fence-primary"))
    his = await recovery.protection("hospital-a", "his")
    assert his.active is ActiveCopy.STANDBY and his.serving().centre_id == "gz-b"
    # Scheduled copies were made where it served, then follow it to where it serves now.
    assert [w for s, w in driver.scheduled if s == "his"] == ["gz-a", "gz-b"]
    assert his.copies_scheduled and "gz-b" in his.schedule_status
    assert (await recovery.protection("hospital-a", "oa")).active is ActiveCopy.PRIMARY

    await recovery.on_site_down("event-1", "gz-a")  # a third, late delivery
    counts = await _events(bus, region)
    assert counts["FailoverStarted"] == 1
    assert counts["FailoverCompleted"] == 1
    assert counts["SystemRepointed"] == 2


async def test_a_failed_step_rolls_back_in_reverse_order_and_says_why(wiring, region):
    recovery, driver, bus, _ = wiring
    await recovery.set_protection(tier5("hospital-b", "lis-db"))
    await recovery.set_protection(tier5("hospital-b", "lis", frozenset({"lis-db"})))
    driver.failing.add(("lis", Step.PROMOTE_STANDBY))

    started = await recovery.start_failover("hospital-b", Trigger(TriggerKind.MANUAL, "req-1"))
    ended = await recovery.wait(started.id, 10)

    assert phase_of(ended) is Phase.ROLLED_BACK
    undone = [(s, step) for s, step, undo in driver.calls if undo]
    assert undone == [
        ("lis", "fence-primary"),
        ("lis-db", "repoint"),
        ("lis-db", "promote-standby"),
        ("lis-db", "fence-primary"),
    ]
    assert (await recovery.protection("hospital-b", "lis-db")).active is ActiveCopy.PRIMARY
    counts = await _events(bus, region)
    assert counts["FailoverFailed"] == 1 and counts["FailoverCompleted"] == 0


async def test_a_restarted_service_resumes_an_unfinished_failover_without_repeating_steps(wiring):
    recovery, driver, _, make = wiring
    await recovery.set_protection(tier5("hospital-c", "pacs"))
    driver.delay_seconds = 0.3
    started = await recovery.start_failover("hospital-c", Trigger(TriggerKind.MANUAL, "req-2"))
    await asyncio.sleep(0.75)  # two steps recorded, the third under way
    await recovery.stop()  # the process dies
    driver.delay_seconds = 0.0
    before = list(driver.calls)

    resumed = make()
    assert await resumed.resume_unfinished() == 1
    ended = await resumed.wait(started.id, 10)
    await resumed.stop()

    assert phase_of(ended) is Phase.COMPLETED
    assert [r.step for r in ended.progress("pacs").done] == list(Step)
    after = [step for _, step, _ in driver.calls[len(before) :]]
    # What was recorded before the crash never runs again.
    recorded_before = {step for _, step, _ in before[:2]}
    assert not recorded_before & set(after)


async def test_a_drill_keeps_measured_rto_and_rpo_as_audit_evidence(wiring, region):
    recovery, _, bus, _ = wiring
    await recovery.set_protection(tier5("hospital-d", "ris"))

    drill = await recovery.run_drill("hospital-d", "drill-1", dry_run=True, timeout_seconds=10)

    assert drill.passed and drill.dry_run
    assert 0 < drill.measured_rto_seconds < 300
    assert drill.measured_rpo_seconds == pytest.approx(0.25)
    assert (await recovery.protection("hospital-d", "ris")).active is ActiveCopy.PRIMARY
    again = await recovery.run_drill("hospital-d", "drill-1", dry_run=True, timeout_seconds=10)
    assert again == drill
    counts = await _events(bus, region)
    assert counts["DrillCompleted"] == 1 and counts["AuditEntry"] == 1
    assert counts["SystemRepointed"] == 0  # a dry run moves nothing


async def test_failover_of_systems_already_on_their_standby_is_refused(wiring):
    recovery, *_ = wiring
    await recovery.set_protection(tier5("hospital-e", "cdr"))
    done = await recovery.start_failover("hospital-e", Trigger(TriggerKind.MANUAL, "r1"))
    await recovery.wait(done.id, 10)
    with pytest.raises(FailedPrecondition, match="already serve from the standby"):
        await recovery.start_failover("hospital-e", Trigger(TriggerKind.MANUAL, "r2"))
    back = await recovery.start_failover(
        "hospital-e", Trigger(TriggerKind.MANUAL, "r3"), failback=True
    )
    assert phase_of(await recovery.wait(back.id, 10)) is Phase.COMPLETED
    assert (await recovery.protection("hospital-e", "cdr")).active is ActiveCopy.PRIMARY
