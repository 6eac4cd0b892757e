"""Across many random regions and systems, every placement keeps the hard rules and every refusal
accounts for every host."""

from __future__ import annotations

from collections import Counter, defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from medcloud.scheduling.domain.model import (
    BusinessSystem,
    CentreRole,
    DataClassification,
    HostOption,
    Ownership,
    PoolOption,
    RegionView,
    Role,
    RoleCount,
    StorageClass,
    SystemKind,
)
from medcloud.scheduling.domain.placement import Decision, place_system

CITIES = (("Guangzhou", "Guangdong"), ("Chengdu", "Sichuan"))
CARRIER_ROOMS = {CentreRole.CARRIER_PRODUCTION, CentreRole.CARRIER_STANDBY}


@st.composite
def regions(draw) -> RegionView:
    centres = [
        (f"c{index}", *draw(st.sampled_from(CITIES)), draw(st.sampled_from(CentreRole)))
        for index in range(draw(st.integers(1, 6)))
    ]
    hosts = []
    for index in range(draw(st.integers(1, 20))):
        centre_id, city, province, role = draw(st.sampled_from(centres))
        ownership = draw(st.sampled_from(Ownership))
        hosts.append(
            HostOption(
                host_id=f"h{index}",
                rack=draw(st.sampled_from(("r1", "r2"))),
                cluster_id=f"{centre_id}-{ownership.value}",
                centre_id=centre_id,
                city=city,
                province=province,
                centre_role=role,
                ownership=ownership,
                free_vcpu=draw(st.integers(0, 64)),
                free_memory_gib=draw(st.integers(0, 256)),
            )
        )
    # Most centres offer most classes, so that enough placements succeed to test something.
    pools = [
        PoolOption(f"{centre_id}-{storage_class.value}", centre_id, storage_class, free_gib)
        for centre_id, *_ in centres
        for storage_class in StorageClass
        if (free_gib := draw(st.integers(-500, 2000))) >= 0
    ]
    return RegionView(tuple(hosts), tuple(pools))


@st.composite
def systems(draw) -> BusinessSystem:
    kind = draw(st.sampled_from(SystemKind))
    counts = (
        (Role.PRIMARY, draw(st.integers(1, 3))),
        (Role.STANDBY, draw(st.integers(0, 2))),
        (Role.REPLICA, draw(st.integers(0, 2))),
    )
    return BusinessSystem(
        id="sys-1",
        kind=kind,
        roles=tuple(RoleCount(role, count) for role, count in counts if count),
        vcpu=draw(st.integers(1, 16)),
        memory_gib=draw(st.integers(1, 64)),
        classification=draw(st.sampled_from(DataClassification)),
        dr_tier=draw(st.integers(0, 7)),
        storage_gib=draw(st.integers(0, 300)),
        # Only a custom system chooses; the others take what the standard prescribes.
        storage_class=draw(st.sampled_from(StorageClass)) if kind is SystemKind.CUSTOM else None,
    )


def check_decision(system: BusinessSystem, view: RegionView, decision: Decision) -> None:
    hosts = {host.host_id: host for host in view.hosts}
    pools = {pool.pool_id: pool for pool in view.pools}
    assert len(decision.assignments) == len(system.instances())

    roles_by_host: dict[str, set[Role]] = defaultdict(set)
    vcpu_by_host: Counter[str] = Counter()
    memory_by_host: Counter[str] = Counter()
    gib_by_pool: Counter[str] = Counter()
    for assignment in decision.assignments:
        host = hosts[assignment.host_id]
        roles_by_host[host.host_id].add(assignment.instance.role)
        vcpu_by_host[host.host_id] += system.vcpu
        memory_by_host[host.host_id] += system.memory_gib
        if system.storage_gib:
            pool = pools[assignment.pool_id]
            assert pool.centre_id == host.centre_id
            assert pool.storage_class is system.effective_storage_class
            gib_by_pool[pool.pool_id] += system.storage_gib
        if system.classification in {
            DataClassification.PERSONAL_HEALTH_DATA,
            DataClassification.LIMITED_DATA_SET,
        }:
            assert host.ownership is Ownership.PRIVATE or host.centre_role in CARRIER_ROOMS

    for host_id, held in roles_by_host.items():
        assert not {Role.PRIMARY, Role.STANDBY} <= held, host_id
        assert vcpu_by_host[host_id] <= hosts[host_id].free_vcpu
        assert memory_by_host[host_id] <= hosts[host_id].free_memory_gib
    for pool_id, taken_gib in gib_by_pool.items():
        assert taken_gib <= pools[pool_id].free_gib

    if system.dr_tier >= 5:
        assert len(roles_by_host) == len(decision.assignments)
    primary_hosts = [
        hosts[a.host_id] for a in decision.assignments if a.instance.role is Role.PRIMARY
    ]
    for assignment in decision.assignments:
        if assignment.instance.role is not Role.STANDBY:
            continue
        standby_host = hosts[assignment.host_id]
        if system.dr_tier == 5:
            assert standby_host.centre_id not in {h.centre_id for h in primary_hosts}
            assert standby_host.city in {h.city for h in primary_hosts}
        elif system.dr_tier >= 6:
            assert standby_host.city not in {h.city for h in primary_hosts}


@settings(max_examples=200, deadline=None)
@given(view=regions(), system=systems())
def test_placements_keep_the_hard_rules_and_refusals_explain_every_host(view, system):
    outcome = place_system(system, view)
    if isinstance(outcome, Decision):
        check_decision(system, view, outcome)
    else:
        refused = outcome.explanation.of(outcome.instance)
        assert not refused.chosen_host_id
        charged = [removal.host_id for removals in refused.removed.values() for removal in removals]
        assert sorted(charged) == sorted(host.host_id for host in view.hosts)
