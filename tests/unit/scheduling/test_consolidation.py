"""A consolidating batch uses fewer hosts where greedy packing wastes one, and never at the price of a
rule: capacity, primary/standby anti-affinity and every other hard rule hold, refusals stay refusals,
and a moved instance's assignment and explanation say where it ends."""

from __future__ import annotations

import dataclasses
from collections import Counter

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
    StorageClass,
    SystemKind,
)
from medcloud.scheduling.domain.placement import Decision, Refusal, place_batch
from medcloud.scheduling.domain.rules import (
    DEFAULT_WEIGHERS,
    PACKING_WEIGHERS,
    CapacityFilter,
    Filter,
    PrimaryStandbyAntiAffinityFilter,
)
from tests.unit.scheduling.regions import POOLS, his, host, roles
from tests.unit.scheduling.test_placement_properties import (
    CITIES,
    check_decision,
    regions,
    systems,
)

THREE_HOSTS = RegionView(tuple(host(f"h{n}", "hosp", rack=f"r{n}") for n in range(3)), POOLS)


def custom(
    system_id: str, vcpu: int, memory_gib: int, standbys: int = 0, replicas: int = 0
) -> BusinessSystem:
    """A tier-0 custom system without storage: only capacity and anti-affinity decide."""
    return BusinessSystem(
        id=system_id,
        kind=SystemKind.CUSTOM,
        roles=roles(1, standbys=standbys, replicas=replicas),
        vcpu=vcpu,
        memory_gib=memory_gib,
        classification=DataClassification.INTERNAL,
        dr_tier=0,
    )


# Placed in this order (most vCPU first), greedy packing fills h0 with app and db, then needs two
# more hosts for ha, whose primary and standby may not share one; two hosts hold all of it.
APP, DB, HA = custom("app", 16, 32), custom("db", 16, 64), custom("ha", 4, 16, standbys=1)


def hosts_used(results: list[Decision | Refusal]) -> set[str]:
    return {a.host_id for r in results if isinstance(r, Decision) for a in r.assignments}


def check_batch(
    batch: list[BusinessSystem], view: RegionView, results: list[Decision | Refusal]
) -> None:
    """Each decision keeps the hard rules, all of them together fit what the region has free, and
    every assignment is the host its explanation chose."""
    free_vcpu = {h.host_id: h.free_vcpu for h in view.hosts}
    free_memory = {h.host_id: h.free_memory_gib for h in view.hosts}
    free_gib = {p.pool_id: p.free_gib for p in view.pools}
    vcpu, memory, gib = Counter(), Counter(), Counter()
    for system, result in zip(batch, results, strict=True):
        if not isinstance(result, Decision):
            continue
        check_decision(system, view, result)
        for assignment in result.assignments:
            vcpu[assignment.host_id] += system.vcpu
            memory[assignment.host_id] += system.memory_gib
            if assignment.pool_id:
                gib[assignment.pool_id] += system.storage_gib
            explained = result.explanation.of(assignment.instance)
            assert explained.chosen_host_id == assignment.host_id
            assert dict(explained.scores) == dict(assignment.scores)
            assert explained.total_score == assignment.total_score
            if explained.moved_from_host_id:
                check_moved(explained, assignment.host_id)
    assert all(vcpu[h] <= free_vcpu[h] and memory[h] <= free_memory[h] for h in vcpu)
    assert all(gib[p] <= free_gib[p] for p in gib)


def check_moved(explained, host_id: str) -> None:
    """No rule removed the host a moved instance ended on, and the removals, rebuilt when asked,
    are the ones the summary counts."""
    assert explained.removed_by(host_id) is None
    assert f"moved from host {explained.moved_from_host_id}" in explained.summary()
    counted = {rule: len(removals) for rule, removals in explained.removed.items()}
    for rule, count in counted.items():
        noun = "host" if count == 1 else "hosts"
        assert f"{rule} removed {count} {noun}" in explained.summary()


def test_consolidation_empties_the_host_greedy_packing_wastes():
    batch = [APP, DB, HA]
    greedy = place_batch(batch, THREE_HOSTS, weighers=PACKING_WEIGHERS)
    consolidated = place_batch(batch, THREE_HOSTS, weighers=PACKING_WEIGHERS, consolidate=True)
    assert len(hosts_used(greedy)) == 3
    assert len(hosts_used(consolidated)) == 2
    check_batch(batch, THREE_HOSTS, consolidated)
    ha = consolidated[2]
    assert isinstance(ha, Decision)
    primary, standby = ha.assignments
    assert primary.host_id != standby.host_id


def test_a_moved_instance_is_explained_and_scored_where_it_ends():
    greedy = place_batch([APP, DB, HA], THREE_HOSTS, weighers=PACKING_WEIGHERS)
    consolidated = place_batch(
        [APP, DB, HA], THREE_HOSTS, weighers=PACKING_WEIGHERS, consolidate=True
    )
    moved = [
        (before, after)
        for old, new in zip(greedy, consolidated, strict=True)
        for before, after in zip(old.assignments, new.assignments, strict=True)
        if before.host_id != after.host_id
    ]
    assert moved
    for before, after in moved:
        explained = next(
            e
            for r in consolidated
            for e in r.explanation.instances
            if e.instance == after.instance and r.system_id == after.instance.system_id
        )
        assert explained.moved_from_host_id == before.host_id
        assert explained.summary().startswith(
            f"{after.instance} on host {after.host_id}, moved from host {before.host_id}"
        )
        check_moved(explained, after.host_id)


def test_a_primary_and_its_standby_never_share_a_host_to_empty_one():
    two_hosts = RegionView((host("h0", "hosp"), host("h1", "hosp")), POOLS)
    results = place_batch([HA], two_hosts, weighers=PACKING_WEIGHERS, consolidate=True)
    (decision,) = results
    assert isinstance(decision, Decision)
    assert len({a.host_id for a in decision.assignments}) == 2
    assert not any(e.moved_from_host_id for e in decision.explanation.instances)


def test_a_host_never_gives_more_than_it_has_free():
    # The small systems would fit beside the big one by vCPU (32 of 32), not by memory (144 of 128).
    tight = RegionView((host("h0", "hosp"), host("h1", "hosp", free_memory_gib=100)), POOLS)
    batch = [custom("big", 24, 96), custom("small-1", 4, 24), custom("small-2", 4, 24)]
    results = place_batch(batch, tight, weighers=PACKING_WEIGHERS, consolidate=True)
    check_batch(batch, tight, results)
    assert len(hosts_used(results)) == 2


def test_without_the_capacity_filter_a_host_still_never_gives_more_than_it_has_free():
    # Spread over two hosts, either system would fit beside the other but for one vCPU.
    two_hosts = RegionView((host("h0", "hosp"), host("h1", "hosp")), POOLS)
    batch = [custom("a", 16, 32), custom("b", 17, 32)]
    filters = (PrimaryStandbyAntiAffinityFilter(),)
    results = place_batch(batch, two_hosts, filters=filters, consolidate=True)
    check_batch(batch, two_hosts, results)
    assert len(hosts_used(results)) == 2


class ReplicaApartFromPrimaries(Filter):
    """A caller's rule that reads where the system's other instances are, but only for replicas: a
    primary's own check never asks it, so moving a primary onto its replica's host breaks it."""

    name = "replica apart from its primaries"

    def applies(self, system, instance):
        return instance.role is Role.REPLICA

    def refusal(self, system, instance, host, placed, view):
        if placed.holds(host.host_id, Role.PRIMARY):
            return f"host {host.host_id} holds a primary of {system.id}"
        return None


def test_a_move_keeps_every_hard_rule_for_the_rest_of_its_system():
    # Greedy: app and db's primary on h0, db's replica on h1. All three would fit on h1, were it
    # not for the replica's rule, which only a check of the replica itself sees.
    batch = [custom("db", 4, 16, replicas=1), custom("app", 12, 16)]
    filters = (PrimaryStandbyAntiAffinityFilter(), CapacityFilter(), ReplicaApartFromPrimaries())
    results = place_batch(
        batch, THREE_HOSTS, filters=filters, weighers=PACKING_WEIGHERS, consolidate=True
    )
    db = results[0]
    assert isinstance(db, Decision)
    primary, replica = db.assignments
    assert primary.host_id != replica.host_id
    assert len(hosts_used(results)) == 2


def test_refusals_stay_refusals_and_take_nothing():
    too_many = his(id="too-many", dr_tier=5, roles=roles(4))
    batch = [too_many, APP, DB, HA]
    greedy = place_batch(batch, THREE_HOSTS, weighers=PACKING_WEIGHERS)
    consolidated = place_batch(batch, THREE_HOSTS, weighers=PACKING_WEIGHERS, consolidate=True)
    assert isinstance(greedy[0], Refusal) and isinstance(consolidated[0], Refusal)
    assert consolidated[0].message == greedy[0].message
    assert len(hosts_used(consolidated)) == 2
    check_batch(batch, THREE_HOSTS, consolidated)


@st.composite
def roomy_regions(draw) -> RegionView:
    """Regions where most systems of a batch fit, several to a host, so that there is something to
    consolidate: every centre has a pool of every class, and hosts have room."""
    centres = [
        (f"c{n}", *draw(st.sampled_from(CITIES)), draw(st.sampled_from(CentreRole)))
        for n in range(draw(st.integers(1, 4)))
    ]
    hosts = []
    for n in range(draw(st.integers(2, 12))):
        centre_id, city, province, role = draw(st.sampled_from(centres))
        ownership = draw(st.sampled_from(Ownership))
        hosts.append(
            HostOption(
                host_id=f"h{n}",
                rack=draw(st.sampled_from(("r1", "r2", "r3"))),
                cluster_id=f"{centre_id}-{ownership.value}",
                centre_id=centre_id,
                city=city,
                province=province,
                centre_role=role,
                ownership=ownership,
                free_vcpu=draw(st.integers(16, 64)),
                free_memory_gib=draw(st.integers(64, 256)),
            )
        )
    pools = [
        PoolOption(f"{centre_id}-{storage_class.value}", centre_id, storage_class, 5000)
        for centre_id, *_ in centres
        for storage_class in StorageClass
    ]
    return RegionView(tuple(hosts), tuple(pools))


@st.composite
def batches(draw) -> list[BusinessSystem]:
    drawn = draw(st.lists(systems(), min_size=1, max_size=5))
    return [dataclasses.replace(system, id=f"sys-{n}") for n, system in enumerate(drawn)]


# Thousands of batches of up to five systems: several thousand placements, each consolidated.
@settings(max_examples=2000, deadline=None)
@given(
    view=st.one_of(regions(), roomy_regions()),
    batch=batches(),
    weighers=st.sampled_from((PACKING_WEIGHERS, DEFAULT_WEIGHERS)),
)
def test_consolidated_batches_keep_every_hard_rule_and_refuse_what_greedy_refuses(
    view, batch, weighers
):
    greedy = place_batch(batch, view, weighers=weighers)
    consolidated = place_batch(batch, view, weighers=weighers, consolidate=True)
    check_batch(batch, view, consolidated)
    assert [r.message for r in consolidated if isinstance(r, Refusal)] == [
        r.message for r in greedy if isinstance(r, Refusal)
    ]
    assert [type(r) for r in consolidated] == [type(r) for r in greedy]
    assert len(hosts_used(consolidated)) <= len(hosts_used(greedy))
    for result in consolidated:
        if isinstance(result, Decision):
            roles_by_host = {}
            for a in result.assignments:
                roles_by_host.setdefault(a.host_id, set()).add(a.instance.role)
            assert not any({Role.PRIMARY, Role.STANDBY} <= held for held in roles_by_host.values())
